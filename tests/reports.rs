//! Reports rendered from stored run and matrix folders (no stack): every format is written,
//! says what the findings say, is deterministic, fits where it must (100 columns, valid
//! XML), and the HTML lays out in a real browser (headless Chromium, when installed).

use crate::support::TempDir;
use regiondrill::checker::{self, Findings};
use regiondrill::experiment::{self, Experiment};
use regiondrill::history::{
    Event, EventKind, FinalState, HealthSample, Heartbeat, History, Nanos, OpKind, Operation,
    Outcome, Probes, ReplicaProbes, ReplicationStat, Source,
};
use regiondrill::posture::Posture;
use regiondrill::report::{self, Entry, MatrixIndex, MatrixRun, terminal};
use regiondrill::run_folder::{RESULTS_SCHEMA, Results, RunInfo, Timings};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MS: Nanos = 1_000_000;

/// An active-passive-async experiment (80 ms apart, us killed at 5 s) with the given SLO
/// lines.
fn experiment(name: &str, posture: &str, slo: &str) -> Experiment {
    let toml = format!(
        r#"
name = "{name}"
description = "Primary in us, replica in eu; us is killed at 5s. A | pipe & <angle> brackets."
posture = "{posture}"
seed = 7
duration = "10s"

[network]
rtt = "80ms"

[workload]
users = 4
rate_per_s = 100

[failover]
mode = "auto"
interval = "500ms"
threshold = 3
dns_ttl = "1s"

[[faults]]
kind = "latency"
between = ["us", "eu"]
rtt = "200ms"
at = "2s"
heal_at = "3s"

[[faults]]
kind = "kill_region"
region = "us"
at = "5s"

[slo]
{slo}
"#
    );
    experiment::parse(&toml, Path::new(&format!("{name}.toml")))
        .unwrap_or_else(|e| panic!("experiment {name}: {e}"))
}

fn ok_write(id: u64, region: &str) -> Outcome {
    Outcome::Ok {
        timeline: None,
        served_by: region.into(),
        version: Some(id as i64),
        write_id: Some(id),
        source: None,
        committed_by: Some(region.into()),
        value: None,
    }
}

/// A hand-made run of 10 s: an operation every 10 ms by four users (two per region) over
/// eight keys; a 200 ms latency fault from 2 s to 3 s; us killed at 5 s (never healed
/// until `healed` at 10.5 s); declared down at 6.5 s, promoted at 6.7 s, rerouted at 7 s.
/// us users fail from 5 s until 7.2 s, eu users' writes fail from 5 s until 6.8 s. Writes
/// acknowledged between 4.8 s and 5 s never reached the replica: lost. Heartbeats every
/// 50 ms with a 40 ms lag, those committed from 4.8 s never seen.
fn sample_history() -> (History, Probes, FinalState) {
    let mut ops = Vec::new();
    let mut latest: BTreeMap<String, u64> = BTreeMap::new();
    let mut survivors = Vec::new();
    for i in 0..1000u64 {
        let id = i + 1;
        let t = i * 10 * MS;
        let user = (i % 4) as u32;
        let region = if user < 2 { "us" } else { "eu" };
        let key = format!("k{}", i % 8);
        let write = i % 2 == 0;
        let rtt = if region == "eu" { 80 * MS } else { MS };
        let down_until = if region == "us" { 7_200 } else { 6_800 } * MS;
        let failed = t >= 5_000 * MS && t < down_until && (write || region == "us");
        let (outcome, latency) = if failed {
            if i % 3 == 0 {
                (
                    Outcome::Unknown {
                        error: "no answer within 2s".into(),
                    },
                    2_000 * MS,
                )
            } else {
                (
                    Outcome::Fail {
                        error: "connection refused".into(),
                    },
                    3 * MS,
                )
            }
        } else if write {
            let serving = if t >= 5_000 * MS { "eu" } else { "us" };
            latest.insert(key.clone(), id);
            if !(4_800 * MS..5_000 * MS).contains(&t) {
                survivors.push(id);
            }
            (ok_write(id, serving), rtt + (i % 7) * MS)
        } else {
            let seen = latest.get(&key).copied();
            (
                Outcome::Ok {
                    timeline: None,
                    served_by: region.into(),
                    version: seen.map(|v| v as i64),
                    write_id: seen,
                    source: Some(if i % 5 == 0 {
                        Source::Cache
                    } else {
                        Source::Db
                    }),
                    committed_by: None,
                    value: None,
                },
                MS / 2 + (i % 5) * MS / 10,
            )
        };
        ops.push(Operation {
            id,
            user,
            region: region.into(),
            from: None,
            kind: if write { OpKind::Write } else { OpKind::Read },
            key,
            invoke_ns: t,
            planned_ns: None,
            complete_ns: t + latency,
            outcome,
        });
    }
    let ev = |at_ms: u64, kind: EventKind| Event {
        at_ns: at_ms * MS,
        kind,
    };
    let events = vec![
        ev(0, EventKind::WorkloadStarted),
        ev(
            2_000,
            EventKind::FaultStarted {
                index: 0,
                fault: "latency +200ms us<->eu".into(),
                hits_primary: false,
            },
        ),
        ev(
            3_000,
            EventKind::FaultHealed {
                index: 0,
                fault: "latency +200ms us<->eu".into(),
            },
        ),
        ev(
            5_000,
            EventKind::FaultStarted {
                index: 1,
                fault: "kill region us".into(),
                hits_primary: true,
            },
        ),
        ev(
            6_500,
            EventKind::PrimaryDeclaredDown {
                region: "us".into(),
            },
        ),
        ev(
            6_700,
            EventKind::Promoted {
                region: "eu".into(),
                from: None,
            },
        ),
        ev(
            7_000,
            EventKind::Rerouted {
                region: "eu".into(),
            },
        ),
        ev(10_000, EventKind::WorkloadStopped),
        ev(10_500, EventKind::Healed),
    ];
    let heartbeats = (0..200u64)
        .map(|n| {
            let committed = n * 50 * MS;
            let lost = (4_800 * MS..5_000 * MS).contains(&committed);
            Heartbeat {
                seq: n + 1,
                committed_ns: committed,
                visible_ns: (!lost).then_some(committed + 40 * MS),
            }
        })
        .collect();
    let replication = (0..100u64)
        .map(|n| ReplicationStat {
            at_ns: n * 100 * MS,
            connected: n < 50,
            replay_lag_ms: Some(3.0),
            bytes_behind: Some(4096),
        })
        .collect();
    let probes = Probes {
        heartbeat_poll_ms: 5.0,
        heartbeats,
        replication,
        ..Probes::default()
    };
    survivors.sort_unstable();
    let final_state = FinalState {
        residency: None,
        primaries: Vec::new(),
        standbys: Vec::new(),
        primary_region: Some("eu".into()),
        write_ids: survivors,
        regions: BTreeMap::new(),
    };
    (History { ops, events }, probes, final_state)
}

fn results(exp: &Experiment, findings: &Findings, run_id: &str) -> Results {
    Results {
        schema: RESULTS_SCHEMA.into(),
        run: RunInfo {
            id: run_id.into(),
            backend: "native".into(),
            fault_proxy: "built-in".into(),
            durability: "fsync=off".into(),
            timings: Timings {
                bring_up_ms: 1500.0,
                workload_ms: 10_000.0,
                heal_settle_ms: 3000.0,
                teardown_ms: 200.0,
                check_ms: 5.0,
            },
        },
        experiment: exp.clone(),
        findings: findings.clone(),
        slo: checker::verdict(findings, &exp.slo),
    }
}

/// Writes a run folder of `exp` over the sample history into `dir`, as `run` does.
fn write_run(dir: &Path, exp: &Experiment) -> Results {
    write_run_probed(dir, exp, |_| {})
}

/// [`write_run`], the sample's probes changed by `change` first.
fn write_run_probed(dir: &Path, exp: &Experiment, change: impl FnOnce(&mut Probes)) -> Results {
    let (history, mut probes, final_state) = sample_history();
    change(&mut probes);
    let findings = checker::check(&history, &probes, Some(&final_state));
    let r = results(
        exp,
        &findings,
        &format!("20260115-093012-{}-1f2e", exp.name),
    );
    std::fs::create_dir_all(dir).unwrap();
    let mut jsonl = Vec::new();
    history.write_jsonl(&mut jsonl).unwrap();
    std::fs::write(dir.join("history.jsonl"), jsonl).unwrap();
    std::fs::write(
        dir.join("probes.json"),
        serde_json::to_vec_pretty(&probes).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("final_state.json"),
        serde_json::to_vec(&final_state).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_vec_pretty(&r).unwrap(),
    )
    .unwrap();
    r
}

/// The sample experiment: RTO 6 s (met), RPO 0 (missed: writes were lost), stale reads
/// at most 50 %.
fn sample_experiment() -> Experiment {
    experiment(
        "ap-async-region-loss",
        "active-passive-async",
        "rto = \"6s\"\nrpo = \"0s\"\nmax_stale_read_rate = 0.5",
    )
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A small XML well-formedness check: one root, every tag closed in order, attribute
/// values quoted, only the five predefined entities or character references. Returns the
/// number of elements.
fn check_xml(xml: &str) -> Result<usize, String> {
    fn check_text(text: &str) -> Result<(), String> {
        let mut rest = text;
        while let Some(amp) = rest.find('&') {
            let after = &rest[amp + 1..];
            let end = after.find(';').ok_or("& without ;")?;
            let name = &after[..end];
            let ok = matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
                || (name.starts_with('#') && name[1..].chars().all(|c| c.is_ascii_digit()));
            if !ok {
                return Err(format!("unknown entity &{name};"));
            }
            rest = &after[end..];
        }
        Ok(())
    }
    let mut stack: Vec<String> = Vec::new();
    let mut elements = 0;
    let mut roots = 0;
    let mut i = 0;
    while let Some(lt) = xml[i..].find('<') {
        let text = &xml[i..i + lt];
        if stack.is_empty() && !text.trim().is_empty() {
            return Err(format!("text outside the root: {text:?}"));
        }
        check_text(text)?;
        let start = i + lt;
        let rest = &xml[start..];
        if rest.starts_with("<?") {
            i = start + rest.find("?>").ok_or("unclosed <?")? + 2;
            continue;
        }
        if rest.starts_with("<!--") {
            i = start + rest.find("-->").ok_or("unclosed comment")? + 3;
            continue;
        }
        let end = rest.find('>').ok_or("unclosed tag")?;
        let tag = &rest[1..end];
        if tag.contains('<') {
            return Err(format!("< inside a tag: {tag:?}"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or(format!("</{name}> closes nothing"))?;
            if open != name.trim() {
                return Err(format!("<{open}> closed by </{name}>"));
            }
        } else {
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name = body
                .split_whitespace()
                .next()
                .ok_or("empty tag")?
                .to_string();
            // Attributes: name="value" pairs, values without '<' or unescaped '&'.
            let mut attrs = body[name.len()..].trim();
            while !attrs.is_empty() {
                let eq = attrs
                    .find('=')
                    .ok_or(format!("attribute without = in <{name}>"))?;
                let after = &attrs[eq + 1..];
                if !after.starts_with('"') {
                    return Err(format!("unquoted attribute in <{name}>"));
                }
                let close = after[1..].find('"').ok_or("unclosed attribute")?;
                check_text(&after[1..1 + close])?;
                attrs = after[close + 2..].trim();
            }
            elements += 1;
            if stack.is_empty() {
                roots += 1;
            }
            if !self_closing {
                stack.push(name);
            }
        }
        i = start + end + 1;
    }
    if !xml[i..].trim().is_empty() {
        return Err("text after the root".into());
    }
    if !stack.is_empty() {
        return Err(format!("unclosed: {stack:?}"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(elements)
}

#[test]
fn xml_check_catches_broken_documents() {
    assert_eq!(
        check_xml("<?xml version=\"1.0\"?>\n<a x=\"1\"><b/>t &amp; u</a>\n"),
        Ok(2)
    );
    assert!(check_xml("<a><b></a></b>").is_err());
    assert!(check_xml("<a>x & y</a>").is_err());
    assert!(check_xml("<a x=1></a>").is_err());
    assert!(check_xml("<a></a><b></b>").is_err());
}

#[test]
fn a_run_folder_renders_into_four_formats() {
    let tmp = TempDir::new("report-run");
    let dir = tmp.0.join("run");
    let exp = sample_experiment();
    let r = write_run(&dir, &exp);
    // The sample's known answers, so the assertions below test the reports, not luck.
    assert!(r.findings.lost_writes.count > 0, "writes were lost");
    let rto = r.slo.checks.iter().find(|c| c.name == "rto").unwrap();
    assert!(rto.passed, "{rto:?}");
    let rpo = r.slo.checks.iter().find(|c| c.name == "rpo").unwrap();
    assert!(!rpo.passed, "{rpo:?}");

    report::render_run(&dir).unwrap();
    for f in ["report.txt", "report.md", "report.html", "junit.xml"] {
        assert!(dir.join(f).is_file(), "{f} written");
    }

    let txt = read(&dir.join("report.txt"));
    assert_eq!(
        txt,
        terminal::run_report(&r),
        "report.txt is the terminal report"
    );
    assert!(!txt.contains('\x1b'), "no colour in files");

    let md = read(&dir.join("report.md"));
    assert!(
        md.starts_with("## regiondrill: ap-async-region-loss — SLO MISSED\n"),
        "{md}"
    );
    assert!(
        md.contains(
            "| experiment | posture | RTO obs/stated | RPO obs/stated | lost writes | \
             stale-read rate | replication lag p99 | write p99 us/eu | split-brain writes | \
             verdict |"
        ),
        "comparison header:\n{md}"
    );
    assert!(md.contains("| ap-async-region-loss | ap-async |"), "{md}");
    assert!(md.contains("❌ MISSED |"), "{md}");
    assert!(
        md.contains(&format!(
            "- **RTO**: stated 6s, observed {} — ✅ pass",
            rto.observed
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "- **RPO**: stated 0s, observed {} — ❌ MISSED",
            rpo.observed
        )),
        "{md}"
    );
    assert!(md.contains("- **stale-read rate**: stated 50.0%"), "{md}");
    assert!(
        md.contains("<details open><summary>"),
        "a missed SLO is unfolded"
    );
    assert!(
        md.contains("| RPO (acked writes lost) |"),
        "findings rows: {md}"
    );
    assert!(md.contains("| &emsp;detect / promote / redirect |"), "{md}");
    assert!(
        md.contains("A \\| pipe &amp; &lt;angle&gt; brackets."),
        "escaped: {md}"
    );

    let xml = read(&dir.join("junit.xml"));
    check_xml(&xml).unwrap_or_else(|e| panic!("junit.xml is not well-formed: {e}\n{xml}"));
    assert!(
        xml.contains(
            "<testsuite name=\"ap-async-region-loss\" tests=\"3\" failures=\"1\" errors=\"0\""
        ),
        "{xml}"
    );
    assert!(
        xml.contains(
            "<testcase name=\"rto\" classname=\"ap-async-region-loss/active-passive-async\" \
             time=\"0\"/>"
        ),
        "{xml}"
    );
    assert!(
        xml.contains(&format!(
            "<failure message=\"stated 0s, observed {}\" type=\"slo-missed\">",
            rpo.observed
        )),
        "{xml}"
    );
    assert!(xml.contains("timestamp=\"2026-01-15T09:30:12\""), "{xml}");
    assert!(
        xml.contains("time=\"14.705\""),
        "suite time = the run's stages: {xml}"
    );

    let html = read(&dir.join("report.html"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg").count(), 3, "lag, error rate, latency");
    assert_eq!(html.matches("<table").count(), 2, "comparison and findings");
    for external in ["<link", "src=", "@import", "url(", "https://", "@font-face"] {
        assert!(!html.contains(external), "self-contained: found {external}");
    }
    for label in [
        "fault window",
        "declared down",
        "promoted",
        "rerouted",
        "never replicated",
        "p99",
        "time since the workload started (s)",
        "replication lag (ms)",
        "operations not ok (%)",
    ] {
        assert!(html.contains(label), "chart text {label:?}");
    }
    assert!(html.contains("document.body.dataset.rendered"));
}

#[test]
fn rendering_is_deterministic() {
    let tmp = TempDir::new("report-determinism");
    let dir = tmp.0.join("run");
    write_run(&dir, &sample_experiment());
    let files = ["report.txt", "report.md", "report.html", "junit.xml"];
    report::render_run(&dir).unwrap();
    let first: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    report::render_run(&dir).unwrap();
    for (f, before) in files.iter().zip(first) {
        assert!(
            std::fs::read(dir.join(f)).unwrap() == before,
            "{f} differs between two renderings"
        );
    }
}

#[test]
fn timelines_are_left_out_without_a_history() {
    let tmp = TempDir::new("report-nohistory");
    let dir = tmp.0.join("run");
    write_run(&dir, &sample_experiment());
    std::fs::remove_file(dir.join("history.jsonl")).unwrap();
    std::fs::remove_file(dir.join("probes.json")).unwrap();
    let stored = report::load_run(&dir).unwrap();
    assert!(stored.history.is_none() && stored.probes.is_none());
    report::render_run(&dir).unwrap();
    let html = read(&dir.join("report.html"));
    // The lag series is in results.json; buckets and fault windows need the history.
    assert_eq!(html.matches("<svg").count(), 1, "only the lag timeline");
    assert!(html.contains("No history.jsonl in the run folder"));
}

/// With several replicas, each has its rows and its line in the lag chart, named; the chart
/// draws them from probes.json and, without it, from results.json.
#[test]
fn every_replica_has_its_lag_rows_and_its_line() {
    let tmp = TempDir::new("report-replicas");
    let dir = tmp.0.join("run");
    // ap sees every heartbeat 50 ms after eu does (eu: 40 ms after its commit).
    let r = write_run_probed(&dir, &sample_experiment(), |p| {
        p.lag_replica = Some("eu".into());
        let later = |h: &Heartbeat| Heartbeat {
            visible_ns: h.visible_ns.map(|v| v + 50 * MS),
            ..h.clone()
        };
        p.other_replicas.push(ReplicaProbes {
            replica: "ap".into(),
            heartbeats: p.heartbeats.iter().map(later).collect(),
            replication: p.replication.clone(),
        });
    });
    let lag = &r.findings.replication_lag;
    assert_eq!(
        (lag.replica.as_deref(), lag.p50_ms),
        (Some("eu"), Some(40.0))
    );
    assert_eq!(lag.others[0].replica.as_deref(), Some("ap"));
    assert_eq!(lag.others[0].p50_ms, Some(90.0));
    report::render_run(&dir).unwrap();
    let txt = read(&dir.join("report.txt"));
    for row in [
        "replication lag to eu p50 / p99 / max",
        "replication lag to ap p50 / p99 / max",
        "PostgreSQL replay_lag to eu p99, max behind",
        "PostgreSQL replay_lag to ap p99, max behind",
    ] {
        assert!(txt.contains(row), "no {row:?} in\n{txt}");
    }
    assert!(!txt.contains("replication lag p50"), "{txt}");
    for html in [true, false] {
        if !html {
            std::fs::remove_file(dir.join("probes.json")).unwrap();
            report::render_run(&dir).unwrap();
        }
        let page = read(&dir.join("report.html"));
        for line in ["heartbeat lag to eu", "heartbeat lag to ap"] {
            assert!(page.contains(line), "no {line:?} (probes.json: {html})");
        }
    }
}

#[test]
fn unreadable_files_are_named() {
    let tmp = TempDir::new("report-errors");
    let e = report::load_run(&tmp.0).unwrap_err().to_string();
    assert!(
        e.contains("results.json") && e.contains("not a run folder"),
        "{e}"
    );

    let dir = tmp.0.join("run");
    write_run(&dir, &sample_experiment());
    std::fs::write(dir.join("history.jsonl"), "{\"type\":\"invoke\"\n").unwrap();
    let e = report::render_run(&dir).unwrap_err().to_string();
    assert!(e.contains("history.jsonl") && e.contains("line 1"), "{e}");

    std::fs::write(
        dir.join("results.json"),
        "{\"schema\":\"regiondrill.results/v0\"}",
    )
    .unwrap();
    let e = report::load_run(&dir).unwrap_err().to_string();
    assert!(
        e.contains("results.json") && e.contains("regiondrill.results/v0"),
        "{e}"
    );

    let e = MatrixIndex::load(&tmp.0).unwrap_err().to_string();
    assert!(e.contains("matrix.json"), "{e}");
}

#[test]
fn an_experiment_without_slo_still_shows_in_junit() {
    let tmp = TempDir::new("report-noslo");
    let dir = tmp.0.join("run");
    write_run(
        &dir,
        &experiment("no-slo", "active-passive-sync", "# nothing stated"),
    );
    report::render_run(&dir).unwrap();
    let xml = read(&dir.join("junit.xml"));
    check_xml(&xml).unwrap();
    assert!(
        xml.contains(
            "<testcase name=\"ran\" classname=\"no-slo/active-passive-sync\" time=\"0\"/>"
        ),
        "{xml}"
    );
    assert!(
        xml.contains("tests=\"1\" failures=\"0\" errors=\"0\""),
        "{xml}"
    );
}

/// The longest experiment name shipped in `experiments/`.
fn longest_shipped_name() -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../experiments");
    std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension().is_some_and(|x| x == "toml")).then(|| {
                experiment::load(&p)
                    .map(|e| e.name)
                    .unwrap_or_else(|_| p.file_stem().unwrap().to_string_lossy().to_string())
            })
        })
        .max_by_key(|n| (n.len(), n.clone()))
        .expect("shipped experiments")
}

/// Visible width: characters, not counting ANSI colour codes.
fn visible_width(line: &str) -> usize {
    let mut n = 0;
    let mut in_escape = false;
    for c in line.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

#[test]
fn the_comparison_fits_in_100_columns() {
    let longest = longest_shipped_name();
    assert!(longest.len() >= 30, "{longest}");
    let (history, probes, final_state) = sample_history();
    let mut findings = checker::check(&history, &probes, Some(&final_state));
    // The widest figures a row can show.
    findings.failover.rto_ms = Some(12_345.0);
    findings.lost_writes.rpo_ms = Some(10_987.0);
    findings.lost_writes.count = 12_345;
    findings.split_brain.checked = true;
    findings.split_brain.count = 1234;
    for lat in findings.latency.values_mut() {
        lat.write.p99_ms = Some(12_345.0);
    }
    let scenarios = [
        longest.as_str(),
        "region-loss",
        "partition-then-region-loss",
    ];
    let mut all = Vec::new();
    for scenario in scenarios {
        for posture in Posture::ALL {
            let mut exp = experiment(
                "wide",
                "active-passive-async",
                "rto = \"10s\"\nrpo = \"1.5s\"\nmax_stale_read_rate = 0.05",
            );
            exp.name = format!("{}-{scenario}", posture.name());
            exp.posture = *posture;
            exp.scenario = Some(scenario.into());
            all.push(results(&exp, &findings, "20260115-093012-x-0000"));
        }
    }
    assert_eq!(all.len(), 3 * Posture::ALL.len());
    // A three-region experiments beside them: their write p99 cells list three regions.
    let mut three = all[all.len() - 2].clone();
    three.experiment.regions = ["us", "eu", "ap"].map(String::from).to_vec();
    let us = three.findings.latency["us"].clone();
    three.findings.latency.insert("ap".into(), us);
    three.experiment.scenario = Some(format!("three-region-{longest}"));
    all.insert(0, three);
    let error = "the stack could not be brought up: PostgreSQL did not accept connections \
                 within 30s on 127.0.0.1:54321 (see the log in /tmp/regiondrill-…/pg.log)";
    let mut entries: Vec<Entry> = all.iter().map(Entry::Ran).collect();
    let last = entries.len() - 1;
    entries[last] = Entry::CouldNotRun {
        experiment: "active-passive-quorum-partition-then-region-loss",
        posture: "active-passive-quorum",
        scenario: Some(&longest),
        error,
    };
    for color in [false, true] {
        let table = terminal::comparison(&entries, color);
        println!("{table}");
        for line in table.lines() {
            assert!(
                visible_width(line) <= 100,
                "{} columns: {line}",
                visible_width(line)
            );
        }
        for short in [
            "single",
            "ap-async",
            "ap-semi",
            "ap-sync",
            "aa-part",
            "aa-lww",
            "aa-crdt",
            "ap-quorum",
        ] {
            assert!(table.contains(short), "{short}");
        }
        // Missed: the precise figure, not a rounding that could equal the limit.
        assert!(table.contains("12.345s/10s"), "RTO obs/stated");
        // Regions differ between the rows: the header says so, the note says which.
        assert!(table.contains("per region"), "{table}");
        assert!(table.contains("/12.3s "), "three figures, wrapped: {table}");
        assert!(
            table.contains("write p99 per region: us/eu; us/eu/ap for three-region-"),
            "{table}"
        );
        assert!(table.contains("could not run"));
        assert!(table.contains("MISSED"));
        assert_eq!(table.contains("\x1b[31merror\x1b[0m"), color);
        assert_eq!(
            table.contains("\x1b[31mMISSED\x1b[0m"),
            color,
            "colour only when asked"
        );
    }
    // Plain `run` results (no scenario) work too, through the same function.
    let mut plain = all[1..3].to_vec();
    for r in &mut plain {
        r.experiment.scenario = None;
    }
    let table = terminal::comparison(&plain, false);
    assert!(table.contains("single-"), "{table}"); // wrapped to fit
    assert!(!table.contains("could not run"), "{table}");
    // One region list: the header names it, and there is no note.
    assert!(
        table.contains("us/eu ") && !table.contains("per region"),
        "{table}"
    );
    let three_only = terminal::comparison(&all[..1], false);
    assert!(three_only.contains("us/eu/ap"), "{three_only}");
    assert!(!three_only.contains("per region"), "{three_only}");
}

#[test]
fn a_matrix_folder_renders_every_experiment() {
    let tmp = TempDir::new("report-matrix");
    let matrix = tmp.0.join("20260115-093000-nightly-0a0b");
    let mut exp = sample_experiment();
    exp.name = "active-passive-async-region-loss".into();
    exp.scenario = Some("region-loss".into());
    write_run(
        &matrix.join("20260115-093012-active-passive-async-region-loss-1f2e"),
        &exp,
    );
    let index = MatrixIndex::new(
        "nightly".into(),
        vec!["experiments/matrix.toml".into()],
        Some(7),
        vec![
            MatrixRun {
                experiment: "active-passive-async-region-loss".into(),
                posture: "active-passive-async".into(),
                scenario: Some("region-loss".into()),
                dir: "20260115-093012-active-passive-async-region-loss-1f2e".into(),
                error: None,
            },
            MatrixRun {
                experiment: "active-active-lww-region-loss".into(),
                posture: "active-active-lww".into(),
                scenario: Some("region-loss".into()),
                dir: String::new(),
                error: Some("stack: docker engine went away <EOF> & \"quotes\"".into()),
            },
        ],
    );
    index.save(&matrix).unwrap();
    assert_eq!(MatrixIndex::load(&matrix).unwrap(), index);
    let json: serde_json::Value = serde_json::from_str(&read(&matrix.join("matrix.json"))).unwrap();
    assert_eq!(json["schema"], "regiondrill.matrix/v1");

    report::render_matrix(&matrix).unwrap();
    let run_dir = matrix.join("20260115-093012-active-passive-async-region-loss-1f2e");
    for f in ["report.txt", "report.md", "report.html", "junit.xml"] {
        assert!(run_dir.join(f).is_file(), "run's {f}");
    }
    for f in ["matrix.txt", "matrix.md", "matrix.html", "junit.xml"] {
        assert!(matrix.join(f).is_file(), "matrix's {f}");
    }

    let md = read(&matrix.join("matrix.md"));
    assert!(md.starts_with("## regiondrill: matrix nightly\n"), "{md}");
    assert!(
        md.contains("2 experiments: 0 met their SLOs, 1 missed, 1 could not run"),
        "{md}"
    );
    assert!(md.contains("| region-loss | ap-async |"), "{md}");
    assert!(
        md.contains("| region-loss | aa-lww | | | | | | | | ⚠️ could not run |"),
        "{md}"
    );
    assert!(md.contains("<b>active-active-lww-region-loss</b>"), "{md}");
    assert!(
        md.contains("docker engine went away <EOF>"),
        "error in a code block: {md}"
    );

    let xml = read(&matrix.join("junit.xml"));
    check_xml(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert!(
        xml.contains(
            "<testsuites name=\"regiondrill nightly\" tests=\"4\" failures=\"1\" errors=\"1\""
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<testsuite name=\"active-active-lww-region-loss\" tests=\"1\" failures=\"0\" errors=\"1\""),
        "{xml}"
    );
    assert!(
        xml.contains(
            "<error message=\"could not run: stack: docker engine went away &lt;EOF&gt; \
             &amp; &quot;quotes&quot;\" type=\"could-not-run\">"
        ),
        "{xml}"
    );

    let html = read(&matrix.join("matrix.html"));
    assert!(html.contains("active-passive-async-region-loss"));
    assert!(html.contains("active-active-lww-region-loss"));
    assert!(html.contains(
        "<td colspan=\"7\" class=\"error\">could not run: stack: docker engine went away \
         &lt;EOF&gt; &amp; &quot;quotes&quot;</td><td class=\"error\">error</td>"
    ));
    assert_eq!(html.matches("<svg").count(), 3);

    let txt = read(&matrix.join("matrix.txt"));
    assert!(
        txt.contains("could not run: stack: docker engine went away"),
        "{txt}"
    );
    let table = terminal::matrix_table(&matrix, false).unwrap();
    assert!(
        table.starts_with("matrix nightly: 2 experiments"),
        "{table}"
    );
    assert!(
        table.contains("ap-async") && table.contains("aa-lww"),
        "{table}"
    );

    // A run folder that went missing is reported, not fatal.
    std::fs::remove_dir_all(&run_dir).unwrap();
    report::render_matrix(&matrix).unwrap();
    let md = read(&matrix.join("matrix.md"));
    assert!(md.contains("2 could not run"), "{md}");
    assert!(md.contains("its run folder cannot be reported"), "{md}");
}

/// Finds a Chromium binary on PATH.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

#[test]
fn the_html_report_lays_out_in_chromium() {
    let Some(browser) = chromium() else {
        // CI sets this so a missing browser fails instead of passing unseen.
        if std::env::var_os("REGIONDRILL_REQUIRE_BROWSER").is_some() {
            panic!("chromium not installed and REGIONDRILL_REQUIRE_BROWSER is set");
        }
        println!(
            "SKIPPED the_html_report_lays_out_in_chromium: chromium not installed \
             (apt-get install chromium)"
        );
        return;
    };
    let tmp = TempDir::new("report-chromium");
    let dir = tmp.0.join("run");
    write_run(&dir, &sample_experiment());
    report::render_run(&dir).unwrap();
    let page = dir.join("report.html").canonicalize().unwrap();
    let profile = tmp.0.join("profile");
    let mut child = std::process::Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start chromium");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut { stdout }, &mut s).unwrap();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = reader.join().unwrap();
    assert!(status.success(), "chromium exited with {status}");
    let marker = "data-rendered=\"";
    let at = dom.find(marker).unwrap_or_else(|| {
        panic!(
            "no data-rendered on <body>: the script did not run\n{}",
            &dom[..dom.len().min(2000)]
        )
    });
    let value = &dom[at + marker.len()..];
    let value = &value[..value.find('"').unwrap()];
    let count = |what: &str| -> usize {
        value
            .split(';')
            .find_map(|kv| kv.strip_prefix(&format!("{what}=")))
            .unwrap_or_else(|| panic!("{what} in {value}"))
            .parse()
            .unwrap()
    };
    println!("chromium laid out: {value}");
    assert!(count("tables") >= 2, "{value}");
    assert!(count("charts") >= 3, "{value}");
}

/// The sample run, but what the controller reacted to at 5 s was a cut monitor link, not a
/// kill, and us answered every in-region health check (every 100 ms) throughout: its
/// declaration at 6.5 s is a false failover.
fn write_false_failover_run(dir: &Path, exp: &Experiment) -> Results {
    let (mut history, mut probes, final_state) = sample_history();
    for e in &mut history.events {
        if let EventKind::FaultStarted {
            index: 1, fault, ..
        } = &mut e.kind
        {
            *fault = "partition eu-monitor-to-us-db (black hole, both ways)".into();
        }
    }
    probes.health = (0..=100u64)
        .map(|n| HealthSample {
            at_ns: n * 100 * MS,
            region: "us".into(),
            ok: true,
        })
        .collect();
    let findings = checker::check(&history, &probes, Some(&final_state));
    let r = results(
        exp,
        &findings,
        &format!("20260115-093012-{}-1f2e", exp.name),
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_vec_pretty(&r).unwrap(),
    )
    .unwrap();
    r
}

/// The observed text of the terminal report's row `finding`, its wrapped lines joined.
fn observed_of(txt: &str, finding: &str) -> String {
    let cells = |l: &str| -> Vec<String> { l.split('│').map(|c| c.trim().to_string()).collect() };
    let mut lines = txt.lines().skip_while(|l| !l.contains(finding));
    let mut parts = vec![cells(lines.next().unwrap_or_else(|| panic!("{txt}")))[2].clone()];
    for l in lines {
        let c = cells(l);
        if c.len() < 3 || !c[1].is_empty() {
            break;
        }
        parts.push(c[2].clone());
    }
    parts.join(" ")
}

#[test]
fn false_failovers_are_shown_and_judged() {
    let tmp = TempDir::new("report-false-failover");
    // Not stated: the limit is 0, so the run misses it.
    let dir = tmp.0.join("run");
    let r = write_false_failover_run(&dir, &sample_experiment());
    assert_eq!(r.findings.false_failovers.count, 1);
    report::render_run(&dir).unwrap();
    let txt = read(&dir.join("report.txt"));
    let row = txt
        .lines()
        .find(|l| l.contains("failovers (false / failed)"))
        .unwrap_or_else(|| panic!("{txt}"));
    assert!(
        row.contains("1 (1 false / 0 failed)")
            && row.contains("0 (default)")
            && row.contains("MISSED"),
        "{row}"
    );
    // The episode in words, wrapped onto more lines of its row (at most 80 columns).
    assert_eq!(
        observed_of(&txt, "6.50 s: us declared down"),
        "fault in effect: partition eu-monitor-to-us-db (black hole, both ways); primary \
         healthy in us (false failover); promoted eu at 6.70 s; rerouted to eu at 7.00 s; \
         cost until 10.50 s: 42 operations failed or unknown, 0 split-brain writes"
    );
    assert!(
        txt.lines()
            .all(|l| l.split('│').nth(2).is_none_or(|c| c.chars().count() <= 82)),
        "{txt}"
    );
    // The rows sit right after the RTO's.
    let order: Vec<usize> = ["read RTO", "failovers (false / failed)", "RPO (acked"]
        .iter()
        .map(|f| txt.find(f).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{txt}");
    let md = read(&dir.join("report.md"));
    assert!(
        md.contains(
            "- **false failovers**: stated 0 (default), observed 1 false of 1 failover — ❌ MISSED"
        ),
        "{md}"
    );
    assert!(md.contains("| &emsp;6.50 s: us declared down |"), "{md}");
    let xml = read(&dir.join("junit.xml"));
    check_xml(&xml).unwrap();
    assert!(
        xml.contains("tests=\"4\" failures=\"2\"")
            && xml.contains(
                "<failure message=\"stated 0 (default), observed 1 false of 1 failover\""
            ),
        "{xml}"
    );
    let html = read(&dir.join("report.html"));
    assert!(
        html.contains("<tr class=\"detail\"><td>6.50 s: us declared down</td>"),
        "{html}"
    );

    // Stated: one is expected.
    let dir = tmp.0.join("expected");
    let exp = experiment(
        "expected",
        "active-passive-async",
        "rto = \"6s\"\nrpo = \"0s\"\nmax_false_failovers = 1",
    );
    assert_eq!(exp.slo.max_false_failovers, Some(1));
    let r = write_false_failover_run(&dir, &exp);
    let check = r
        .slo
        .checks
        .iter()
        .find(|c| c.name == "false_failovers")
        .unwrap();
    assert_eq!(
        (check.stated.as_str(), check.observed.as_str(), check.passed),
        ("1", "1 false of 1 failover", true)
    );
    report::render_run(&dir).unwrap();
    let xml = read(&dir.join("junit.xml"));
    assert!(
        xml.contains(
            "<testcase name=\"false_failovers\" classname=\"expected/active-passive-async\" \
             time=\"0\"/>"
        ),
        "{xml}"
    );

    // The sample run (a kill, health not measured): the rows say so, and nothing is judged.
    let (history, probes, final_state) = sample_history();
    let f = checker::check(&history, &probes, Some(&final_state));
    let r = results(&sample_experiment(), &f, "20260115-093012-x-0000");
    assert!(r.slo.checks.iter().all(|c| c.name != "false_failovers"));
    let txt = terminal::run_report(&r);
    assert!(
        txt.contains("1 (0 false / 0 failed), health not measured for 1"),
        "{txt}"
    );
    assert!(
        observed_of(&txt, "6.50 s: us declared down")
            .starts_with("fault in effect: kill region us; primary health in us not measured;"),
        "{txt}"
    );
}

#[test]
fn max_false_failovers_is_a_whole_number() {
    for (value, expected) in [
        (
            "-1",
            "slo.max_false_failovers: invalid value: integer `-1`, expected u32",
        ),
        (
            "1.5",
            "slo.max_false_failovers: invalid type: floating point `1.5`, expected u32",
        ),
    ] {
        let toml = format!(
            "posture = \"active-passive-async\"\nduration = \"5s\"\n[slo]\nmax_false_failovers = {value}\n"
        );
        let e = experiment::parse(&toml, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:4:") && e.ends_with(expected), "{e}");
    }
    let toml =
        "posture = \"active-passive-async\"\nduration = \"5s\"\n[slo]\nmax_false_failovers = 0\n";
    let e = experiment::parse(toml, Path::new("x.toml")).unwrap();
    assert_eq!(e.slo.max_false_failovers, Some(0));
    // Unstated: not written into the experiment as run, as before the key existed.
    let e = experiment::parse(
        "posture = \"single-region\"\nduration = \"5s\"\n",
        Path::new("x.toml"),
    )
    .unwrap();
    assert_eq!(e.slo.max_false_failovers, None);
    let json = serde_json::to_value(&e).unwrap();
    assert!(json["slo"].get("max_false_failovers").is_none(), "{json}");
}
