//! Report rendering benchmark: prints each figure next to its target.
//!
//! A synthetic, seeded run folder as `run` writes it: 1,000,000 operations over 100 s
//! (half writes, half reads, 1,000 keys, 10,000 users in two regions, ~1 % unknown and
//! ~1 % failed outcomes, more failures during the outage), a 200 ms latency fault from 20 s
//! to 30 s, the primary region killed at 40 s with the failover controller's steps, heal
//! at 100.5 s; a heartbeat every 50 ms (those committed in the second before the kill never
//! seen) and a `pg_stat_replication` sample every 100 ms; a final state missing the
//! writes of that second. The findings come from the real checkers (not timed).
//!
//! Timed: `render_run` on that folder — reading `results.json`, `history.jsonl` and
//! `probes.json`, then writing `report.txt`, `report.md`, `report.html` (with its three
//! SVG timelines) and `junit.xml`. Target: ≤ 5 s. Fastest of two runs.
//!
//! Run with `just bench` or `cargo bench --bench render`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use regiondrill::checker;
use regiondrill::history::{
    Event, EventKind, FinalState, Heartbeat, History, Nanos, OpKind, Operation, Outcome, Probes,
    ReplicationStat, Source,
};
use regiondrill::run_folder::{RESULTS_SCHEMA, Results, RunInfo, Timings};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const OPS: usize = 1_000_000;
const KEYS: usize = 1_000;
const USERS: u32 = 10_000;
const MS: Nanos = 1_000_000;
/// One operation every 100 µs: a 100 s run.
const OP_EVERY: Nanos = 100_000;
const KILL: Nanos = 40_000 * MS;
const DECLARED: Nanos = 41_500 * MS;
const PROMOTED: Nanos = 41_800 * MS;
const REROUTED: Nanos = 42_000 * MS;
/// us users write again (DNS TTL after the reroute); eu users a little earlier.
const US_BACK: Nanos = 43_000 * MS;
const EU_BACK: Nanos = 42_000 * MS;
const END: Nanos = OPS as u64 * OP_EVERY;
const TARGET: Duration = Duration::from_secs(5);

fn main() {
    let setup = Instant::now();
    let dir = std::env::temp_dir().join(format!("regiondrill-bench-render-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let history_bytes = write_run_folder(&dir);
    println!(
        "render benchmark ({OPS} operations, history.jsonl {:.0} MiB, folder built in {:.1} s, \
         1 thread)",
        history_bytes as f64 / 1_048_576.0,
        setup.elapsed().as_secs_f64()
    );

    let t = fastest_of_two(|| regiondrill::report::render_run(&dir).expect("render"));
    let html = std::fs::metadata(dir.join("report.html")).map_or(0, |m| m.len());
    let load = fastest_of_two(|| regiondrill::report::load_run(&dir).expect("load"));
    let met = t <= TARGET;
    println!(
        "render all formats, 1M operations: {:.2} s — target ≤ 5 s: {}",
        t.as_secs_f64(),
        if met { "met" } else { "MISSED" }
    );
    println!(
        "  of which reading the run folder: {:.2} s; rendering: {:.2} s",
        load.as_secs_f64(),
        t.saturating_sub(load).as_secs_f64()
    );
    println!(
        "report.html: {:.0} KiB (3 SVG timelines, inline; no target)",
        html as f64 / 1024.0
    );
    for f in ["report.txt", "report.md", "junit.xml"] {
        let n = std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
        println!("{f}: {:.1} KiB", n as f64 / 1024.0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `f` twice and returns the faster wall time (freeing the result is not timed).
fn fastest_of_two<T>(mut f: impl FnMut() -> T) -> Duration {
    (0..2)
        .map(|_| {
            let start = Instant::now();
            let out = std::hint::black_box(f());
            let elapsed = start.elapsed();
            drop(out);
            elapsed
        })
        .min()
        .expect("two runs")
}

/// Writes results.json, history.jsonl and probes.json as a run would; returns the
/// history's size in bytes.
fn write_run_folder(dir: &Path) -> u64 {
    let (history, final_state) = synthetic_history(42);
    let probes = synthetic_probes();
    let findings = checker::check(&history, &probes, Some(&final_state));
    let exp_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../experiments/ap-async-region-loss.toml");
    let mut exp = regiondrill::experiment::load(&exp_path).expect("shipped experiment");
    exp.duration = Duration::from_nanos(END);
    let results = Results {
        schema: RESULTS_SCHEMA.into(),
        run: RunInfo {
            id: "20260115-093012-ap-async-region-loss-beef".into(),
            backend: "native".into(),
            fault_proxy: "built-in".into(),
            durability: "fsync=off".into(),
            timings: Timings::default(),
        },
        slo: checker::verdict(&findings, &exp.slo),
        experiment: exp,
        findings,
    };
    let path = dir.join("history.jsonl");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).expect("history.jsonl"));
    history.write_jsonl(&mut w).expect("write history");
    w.flush().expect("flush");
    drop(w);
    std::fs::write(
        dir.join("probes.json"),
        serde_json::to_vec_pretty(&probes).expect("probes"),
    )
    .expect("probes.json");
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_vec_pretty(&results).expect("results"),
    )
    .expect("results.json");
    std::fs::metadata(&path).map_or(0, |m| m.len())
}

fn synthetic_history(seed: u64) -> (History, FinalState) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ops = Vec::with_capacity(OPS);
    let mut survivors = Vec::with_capacity(OPS / 2);
    let mut latest = vec![None::<u64>; KEYS];
    for i in 0..OPS {
        let id = i as u64 + 1;
        let t = i as u64 * OP_EVERY;
        let user = rng.random_range(0..USERS);
        let region = if user % 2 == 0 { "us" } else { "eu" };
        let k = rng.random_range(0..KEYS);
        let write = rng.random_bool(0.5);
        let back = if region == "us" { US_BACK } else { EU_BACK };
        let outage = (KILL..back).contains(&t) && (write || region == "us");
        let roll: f64 = rng.random();
        let base = if region == "eu" { 81 * MS } else { MS };
        let latency = base + rng.random_range(0..2 * MS);
        let (outcome, latency) = if outage || roll < 0.01 {
            (
                Outcome::Fail {
                    error: "connection refused".into(),
                },
                2 * MS,
            )
        } else if roll < 0.02 {
            (
                Outcome::Unknown {
                    error: "no answer within 2s".into(),
                },
                2_000 * MS,
            )
        } else if write {
            latest[k] = Some(id);
            if !(KILL - 1_000 * MS..KILL).contains(&t) {
                survivors.push(id);
            }
            let serving = if t >= KILL { "eu" } else { "us" };
            (
                Outcome::Ok {
                    timeline: None,
                    served_by: serving.into(),
                    version: Some(id as i64),
                    write_id: Some(id),
                    source: None,
                    committed_by: Some(serving.into()),
                    value: None,
                },
                latency,
            )
        } else {
            (
                Outcome::Ok {
                    timeline: None,
                    served_by: region.into(),
                    version: latest[k].map(|v| v as i64),
                    write_id: latest[k],
                    source: Some(if rng.random_bool(0.3) {
                        Source::Cache
                    } else {
                        Source::Db
                    }),
                    committed_by: None,
                    value: None,
                },
                MS / 2,
            )
        };
        ops.push(Operation {
            id,
            user,
            region: region.into(),
            from: None,
            kind: if write { OpKind::Write } else { OpKind::Read },
            key: format!("k{k}"),
            invoke_ns: t,
            planned_ns: None,
            complete_ns: t + latency,
            outcome,
        });
    }
    let ev = |at_ns, kind| Event { at_ns, kind };
    let events = vec![
        ev(0, EventKind::WorkloadStarted),
        ev(
            20_000 * MS,
            EventKind::FaultStarted {
                index: 0,
                fault: "latency +200ms us<->eu".into(),
                hits_primary: false,
            },
        ),
        ev(
            30_000 * MS,
            EventKind::FaultHealed {
                index: 0,
                fault: "latency +200ms us<->eu".into(),
            },
        ),
        ev(
            KILL,
            EventKind::FaultStarted {
                index: 1,
                fault: "kill region us".into(),
                hits_primary: true,
            },
        ),
        ev(
            DECLARED,
            EventKind::PrimaryDeclaredDown {
                region: "us".into(),
            },
        ),
        ev(
            PROMOTED,
            EventKind::Promoted {
                region: "eu".into(),
                from: None,
            },
        ),
        ev(
            REROUTED,
            EventKind::Rerouted {
                region: "eu".into(),
            },
        ),
        ev(END, EventKind::WorkloadStopped),
        ev(END + 500 * MS, EventKind::Healed),
    ];
    let final_state = FinalState {
        residency: None,
        primaries: Vec::new(),
        standbys: Vec::new(),
        primary_region: Some("eu".into()),
        write_ids: survivors,
        regions: Default::default(),
    };
    (History { ops, events }, final_state)
}

fn synthetic_probes() -> Probes {
    let mut rng = StdRng::seed_from_u64(43);
    let heartbeats = (0..END / (50 * MS))
        .map(|n| {
            let committed = n * 50 * MS;
            let unseen = (KILL - 1_000 * MS..KILL).contains(&committed);
            Heartbeat {
                seq: n + 1,
                committed_ns: committed,
                visible_ns: (!unseen).then(|| committed + 40 * MS + rng.random_range(0..5 * MS)),
            }
        })
        .collect();
    let replication = (0..END / (100 * MS))
        .map(|n| ReplicationStat {
            at_ns: n * 100 * MS,
            connected: n * 100 * MS < KILL,
            replay_lag_ms: Some(40.0),
            bytes_behind: Some(8192),
        })
        .collect();
    Probes {
        heartbeat_poll_ms: 5.0,
        heartbeats,
        replication,
        ..Probes::default()
    }
}
