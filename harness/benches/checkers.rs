//! Checker benchmark: prints each figure next to its target.
//!
//! A synthetic, seeded run: 1,000,000 operations (48 % writes and 48 % reads over 1,000 keys,
//! 4 % increments of 10 counters; 10,000 users in two regions, 5 % of operations by
//! travelling users), one region kill with the failover controller's events, ~1 % unknown
//! outcomes, a final state missing ~0.5 % of the acknowledged writes (with the surviving
//! region's view: each key's latest surviving write, each counter missing ~0.5 % of its
//! increments), 1,000,000 heartbeats, and in-region health checks of both regions every
//! 100 ms (us failing from the kill). Each checker is timed twice and the faster run is
//! reported.
//!
//! - lost writes: operations/s (target ≥ 1,000,000 ops/s)
//! - replication lag: heartbeats/s (target ≥ 1,000,000 /s)
//! - stale reads, read-your-writes, LWW, counters, split brain, conflicts, false failovers,
//!   and the whole `check` (every checker): operations/s (no target)
//!
//! Run with `just bench` or `cargo bench --bench checkers`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use regiondrill::checker::{
    self, conflicts, counters, false_failovers, lost_writes, lww, read_your_writes,
    replication_lag, split_brain, stale_reads,
};
use regiondrill::history::{
    Event, EventKind, FinalState, HealthSample, Heartbeat, History, Nanos, OpKind, Operation,
    Outcome, Probes, RegionState, ReplicationStat, Source,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

const OPS: usize = 1_000_000;
const HEARTBEATS: usize = 1_000_000;
const KEYS: usize = 1_000;
const COUNTERS: usize = 10;
const USERS: u32 = 10_000;
const MS: Nanos = 1_000_000;
/// One operation every 100 µs: a 100 s run.
const OP_EVERY: Nanos = 100_000;
const KILL: Nanos = 40_000 * MS;
const DECLARED: Nanos = 42_000 * MS;
const PROMOTED: Nanos = 42_500 * MS;
const REROUTED: Nanos = 43_000 * MS;
const HEAL: Nanos = 60_000 * MS;
const TARGET_PER_S: f64 = 1_000_000.0;

fn main() {
    let setup = Instant::now();
    let (history, final_state) = synthetic_history(42);
    let probes = synthetic_probes(43);
    println!(
        "checker benchmark ({} operations, {} heartbeats, built in {:.1} s, 1 thread)",
        history.ops.len(),
        probes.heartbeats.len(),
        setup.elapsed().as_secs_f64()
    );

    let t = fastest_of_two(|| lost_writes::check(&history, Some(&final_state)));
    let lost = lost_writes::check(&history, Some(&final_state));
    let per_s = OPS as f64 / t.as_secs_f64();
    report(
        "lost writes",
        format!(
            "{} ops/s ({}; {} lost)",
            fmt_rate(per_s),
            fmt_time(t),
            lost.count
        ),
        Some("≥ 1,000,000 ops/s"),
        per_s >= TARGET_PER_S,
    );

    let t = fastest_of_two(|| replication_lag::check(&probes));
    let lag = replication_lag::check(&probes);
    let per_s = HEARTBEATS as f64 / t.as_secs_f64();
    report(
        "replication lag",
        format!(
            "{} heartbeats/s ({}; p99 {:.1} ms)",
            fmt_rate(per_s),
            fmt_time(t),
            lag.p99_ms.unwrap_or(f64::NAN)
        ),
        Some("≥ 1,000,000 ops/s"),
        per_s >= TARGET_PER_S,
    );

    let t = fastest_of_two(|| stale_reads::check(&history));
    let stale = stale_reads::check(&history);
    report(
        "stale reads",
        format!(
            "{} ops/s ({}; {} of {} reads stale)",
            fmt_rate(OPS as f64 / t.as_secs_f64()),
            fmt_time(t),
            stale.count,
            stale.reads
        ),
        None,
        true,
    );

    let t = fastest_of_two(|| read_your_writes::check(&history));
    let ryw = read_your_writes::check(&history);
    report(
        "read-your-writes",
        format!(
            "{} ops/s ({}; {} of {} reads checked)",
            fmt_rate(OPS as f64 / t.as_secs_f64()),
            fmt_time(t),
            ryw.count,
            ryw.reads_checked
        ),
        None,
        true,
    );

    let t = fastest_of_two(|| lww::check(&history, Some(&final_state)));
    let l = lww::check(&history, Some(&final_state));
    report(
        "lww",
        format!(
            "{} ops/s ({}; {} wrong winners of {} keys, {} dropped)",
            fmt_rate(OPS as f64 / t.as_secs_f64()),
            fmt_time(t),
            l.wrong_winners,
            l.keys,
            l.dropped_writes
        ),
        None,
        true,
    );

    let t = fastest_of_two(|| counters::check(&history, Some(&final_state)));
    let c = counters::check(&history, Some(&final_state));
    report(
        "counters",
        format!(
            "{} ops/s ({}; {} of {} acked increments lost)",
            fmt_rate(OPS as f64 / t.as_secs_f64()),
            fmt_time(t),
            c.lost,
            c.acked
        ),
        None,
        true,
    );

    let t = fastest_of_two(|| split_brain::check(&history));
    let sb = split_brain::check(&history);
    report(
        "split brain",
        format!(
            "{} ops/s ({}; {} split-brain writes)",
            fmt_rate(OPS as f64 / t.as_secs_f64()),
            fmt_time(t),
            sb.count
        ),
        None,
        true,
    );

    let t = fastest_of_two(|| conflicts::check(&history));
    let cf = conflicts::check(&history);
    report(
        "conflicts",
        format!(
            "{} ops/s ({}; {} conflicting keys, travel p99 {:.1} ms)",
            fmt_rate(OPS as f64 / t.as_secs_f64()),
            fmt_time(t),
            cf.conflicting_keys,
            cf.travel_writes.p99_ms.unwrap_or(f64::NAN)
        ),
        None,
        true,
    );

    let t = fastest_of_two(|| false_failovers::check(&history, &probes));
    let ff = false_failovers::check(&history, &probes);
    report(
        "false failovers",
        format!(
            "{} ops/s ({}; {} failovers, {} false)",
            fmt_rate(OPS as f64 / t.as_secs_f64()),
            fmt_time(t),
            ff.failovers,
            ff.count
        ),
        None,
        true,
    );

    let t = fastest_of_two(|| checker::check(&history, &probes, Some(&final_state)));
    let all = checker::check(&history, &probes, Some(&final_state));
    report(
        "whole check",
        format!(
            "{} ops/s ({}; rto {:.0} ms, {} affected users)",
            fmt_rate(OPS as f64 / t.as_secs_f64()),
            fmt_time(t),
            all.failover.rto_ms.unwrap_or(f64::NAN),
            all.failover.affected_users
        ),
        None,
        true,
    );
}

/// Runs `f` twice and returns the faster wall time (freeing the result is not timed).
fn fastest_of_two<T>(mut f: impl FnMut() -> T) -> Duration {
    (0..2)
        .map(|_| {
            let start = Instant::now();
            let out = black_box(f());
            let elapsed = start.elapsed();
            drop(out);
            elapsed
        })
        .min()
        .unwrap()
}

fn report(what: &str, measured: String, target: Option<&str>, met: bool) {
    println!("  {what:<20} {measured}");
    if let Some(target) = target {
        let verdict = if met { "met" } else { "MISSED" };
        println!("  {:<20} target {target}: {verdict}", "");
    }
}

fn fmt_rate(per_s: f64) -> String {
    let s = format!("{:.0}", per_s);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_time(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// The run: operations one every 100 µs; the primary's region is killed at 40 s, declared
/// down at 42 s, the replica promoted at 42.5 s and traffic rerouted at 43 s; the fault heals
/// at 60 s. Operations invoked between the kill and the reroute fail (or are unknown when they
/// were in flight at the kill); elsewhere ~1 % are unknown. Reads mostly return the newest
/// write invoked on their key, sometimes the one before (stale, from the cache). Acknowledged
/// writes and increments are committed by `us` before the kill and by `eu` after it. The final
/// state is `eu`'s view: each key's latest surviving write, each counter its surviving
/// increments.
fn synthetic_history(seed: u64) -> (History, FinalState) {
    let mut rng = StdRng::seed_from_u64(seed);
    let keys: Vec<String> = (0..KEYS).map(|k| format!("key-{k}")).collect();
    let regions = ["us".to_owned(), "eu".to_owned()];
    // The two latest ok writes invoked on each key: [newest, previous].
    let mut latest: Vec<[Option<u64>; 2]> = vec![[None, None]; KEYS];
    let counter_keys: Vec<String> = (0..COUNTERS).map(|c| format!("counter-{c}")).collect();
    let mut ops = Vec::with_capacity(OPS);
    let mut final_ids = Vec::with_capacity(OPS / 2);
    // Each key's latest surviving write; each counter's surviving increments.
    let mut final_kv: Vec<Option<u64>> = vec![None; KEYS];
    let mut final_counters = vec![0i64; COUNTERS];
    for i in 0..OPS {
        let id = i as u64 + 1;
        let user = rng.random_range(0..USERS);
        let region = &regions[(user % 10 >= 6) as usize];
        let from = rng
            .random_bool(0.05)
            .then(|| regions[(user % 10 < 6) as usize].clone());
        let roll: f64 = rng.random();
        let kind = if roll < 0.04 {
            OpKind::Incr
        } else if roll < 0.52 {
            OpKind::Write
        } else {
            OpKind::Read
        };
        let k = if kind == OpKind::Incr {
            rng.random_range(0..COUNTERS)
        } else {
            rng.random_range(0..KEYS)
        };
        let invoke_ns = i as Nanos * OP_EVERY;
        let complete_ns = invoke_ns + rng.random_range(MS..50 * MS);
        let outage = (KILL..REROUTED).contains(&invoke_ns);
        let in_flight_at_kill = invoke_ns < KILL && complete_ns >= KILL;
        let outcome = if in_flight_at_kill || (!outage && rng.random_bool(0.01)) {
            Outcome::Unknown {
                error: "timeout".into(),
            }
        } else if outage {
            Outcome::Fail {
                error: "connection refused".into(),
            }
        } else {
            let served_by = from.as_ref().unwrap_or(region).clone();
            let committed_by = Some(if invoke_ns < KILL { "us" } else { "eu" }.to_owned());
            match kind {
                OpKind::Incr => {
                    // ~0.5 % of acknowledged increments missing from the final state.
                    if !rng.random_bool(0.005) {
                        final_counters[k] += 1;
                    }
                    Outcome::Ok {
                        timeline: None,
                        served_by,
                        version: None,
                        write_id: None,
                        source: None,
                        committed_by,
                        value: Some(final_counters[k]),
                    }
                }
                OpKind::Write => {
                    latest[k] = [Some(id), latest[k][0]];
                    // ~0.5 % of acknowledged writes missing from the final state.
                    if !rng.random_bool(0.005) {
                        final_ids.push(id);
                        final_kv[k] = Some(id);
                    }
                    Outcome::Ok {
                        timeline: None,
                        served_by,
                        version: Some(id as i64),
                        write_id: Some(id),
                        source: None,
                        committed_by,
                        value: None,
                    }
                }
                OpKind::Read => {
                    let stale = rng.random_bool(0.05);
                    let write_id = if stale { latest[k][1] } else { latest[k][0] };
                    Outcome::Ok {
                        timeline: None,
                        served_by,
                        version: write_id.map(|w| w as i64),
                        write_id,
                        source: Some(if stale { Source::Cache } else { Source::Db }),
                        committed_by: None,
                        value: None,
                    }
                }
                OpKind::ProfileWrite | OpKind::ProfileRead | OpKind::Erase => {
                    unreachable!("the synthetic plan has no personal-data operations")
                }
            }
        };
        if kind == OpKind::Write
            && matches!(outcome, Outcome::Unknown { .. })
            && rng.random_bool(0.5)
        {
            final_ids.push(id);
        }
        let key = if kind == OpKind::Incr {
            counter_keys[k].clone()
        } else {
            keys[k].clone()
        };
        ops.push(Operation {
            from,
            id,
            user,
            region: region.clone(),
            kind,
            key,
            invoke_ns,
            planned_ns: None,
            complete_ns,
            outcome,
        });
    }
    let end = OPS as Nanos * OP_EVERY;
    let events = vec![
        event(0, EventKind::WorkloadStarted),
        event(
            KILL,
            EventKind::FaultStarted {
                index: 0,
                fault: "kill region us".into(),
                hits_primary: true,
            },
        ),
        event(
            DECLARED,
            EventKind::PrimaryDeclaredDown {
                region: "us".into(),
            },
        ),
        event(
            PROMOTED,
            EventKind::Promoted {
                region: "eu".into(),
                from: None,
            },
        ),
        event(
            REROUTED,
            EventKind::Rerouted {
                region: "eu".into(),
            },
        ),
        event(
            HEAL,
            EventKind::FaultHealed {
                index: 0,
                fault: "kill region us".into(),
            },
        ),
        event(end, EventKind::WorkloadStopped),
        event(end + 1_000 * MS, EventKind::Healed),
    ];
    let eu = RegionState {
        kv: keys
            .iter()
            .zip(&final_kv)
            .filter_map(|(key, id)| Some((key.clone(), (*id)?)))
            .collect(),
        counters: counter_keys.iter().cloned().zip(final_counters).collect(),
    };
    let final_state = FinalState {
        residency: None,
        primaries: Vec::new(),
        standbys: Vec::new(),
        primary_region: Some("eu".into()),
        write_ids: final_ids,
        regions: [("eu".to_owned(), eu)].into_iter().collect(),
    };
    (History { ops, events }, final_state)
}

fn event(at_ns: Nanos, kind: EventKind) -> Event {
    Event { at_ns, kind }
}

/// Heartbeats every 100 µs with 0.5–30 ms of lag, 0.1 % never seen; a
/// `pg_stat_replication` sample every 10 ms; an in-region health check of each region every
/// 100 ms, us failing from the kill.
fn synthetic_probes(seed: u64) -> Probes {
    let mut rng = StdRng::seed_from_u64(seed);
    let heartbeats = (0..HEARTBEATS)
        .map(|i| {
            let committed_ns = i as Nanos * OP_EVERY;
            let visible_ns =
                (!rng.random_bool(0.001)).then(|| committed_ns + rng.random_range(MS / 2..30 * MS));
            Heartbeat {
                seq: i as u64,
                committed_ns,
                visible_ns,
            }
        })
        .collect();
    let replication = (0..10_000)
        .map(|i| ReplicationStat {
            at_ns: i * 10 * MS,
            connected: true,
            replay_lag_ms: rng.random_bool(0.8).then(|| rng.random_range(0.1..30.0)),
            bytes_behind: Some(rng.random_range(0..1 << 20)),
        })
        .collect();
    let end = OPS as Nanos * OP_EVERY;
    let health = (0..end / (100 * MS))
        .flat_map(|i| {
            let at_ns = i * 100 * MS;
            ["eu", "us"].map(|region| HealthSample {
                at_ns,
                region: region.into(),
                ok: region == "eu" || at_ns < KILL,
            })
        })
        .collect();
    Probes {
        heartbeat_poll_ms: 0.1,
        heartbeats,
        replication,
        health,
        ..Probes::default()
    }
}
