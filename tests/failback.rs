//! The shipped failback experiments, natively and in containers: the deposed primary
//! rejoins (rewound, or re-cloned when the rewind is made to fail, and said so), the writes
//! only it held are exactly the lost ones, a planned switchover back loses nothing, and the
//! stack ends with one primary in `us` and a caught-up standby — then nothing is left behind.

use crate::support::{docker_or_skip, run_shipped_on};
use regiondrill::run::RunOutput;
use regiondrill::stack::BackendChoice;

/// How the shipped experiment should rejoin: by rewind, or by re-clone (rewind made to fail).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Method {
    Rewind,
    ReClone,
}

/// What every failback must show: both operations done, the switchover back to `us` with
/// writes stopped losing nothing, and one primary in `us` with `eu` streaming, caught up.
fn assert_failed_back(out: &RunOutput, method: Method) {
    let f = &out.findings.failback;
    assert!(f.checked);
    assert!(f.failed.is_empty(), "operations failed: {:?}", f.failed);
    assert_eq!(f.rejoins.len(), 2, "{:?}", f.rejoins);
    let (name, why) = match method {
        Method::Rewind => ("rewind", None),
        Method::ReClone => ("re-clone", Some("wal_log_hints")),
    };
    for r in &f.rejoins {
        assert_eq!(r.method.as_deref(), Some(name), "{r:?}");
        match why {
            None => assert_eq!(r.why, None),
            Some(w) => assert!(r.why.as_deref().is_some_and(|y| y.contains(w)), "{r:?}"),
        }
        let (rejoin, catch_up) = (r.rejoin_ms.unwrap(), r.catch_up_ms.unwrap());
        assert!(rejoin > 0.0 && rejoin < 30_000.0, "rejoin {rejoin} ms");
        assert!(
            (0.0..30_000.0).contains(&catch_up),
            "catch-up {catch_up} ms"
        );
        assert!(r.data_ms.unwrap() < rejoin);
    }
    assert_eq!(
        (f.rejoins[0].region.as_str(), f.rejoins[0].in_switchover),
        ("us", false)
    );
    assert_eq!(
        (f.rejoins[1].region.as_str(), f.rejoins[1].in_switchover),
        ("eu", true)
    );
    let s = &f.switchovers[..];
    assert_eq!(s.len(), 1);
    assert_eq!(
        (s[0].from.as_str(), s[0].to.as_str(), s[0].stop_writes),
        ("eu", "us", true)
    );
    assert_eq!(
        s[0].lost,
        Some(0),
        "lost in the switchover: {:?}",
        s[0].lost_ids
    );
    let switch = s[0].switch_ms.unwrap();
    assert!(switch > 0.0 && switch < 10_000.0, "switch {switch} ms");
    // Downtime needs every region to write on the new primary before the workload ends: on
    // a host saturated by other work the operations fall seconds behind and it may not.
    if let Some(downtime) = s[0].downtime_ms {
        assert!(
            (0.0..10_000.0).contains(&downtime),
            "downtime {downtime} ms"
        );
    }
    assert_eq!(f.restored, Some(true), "{:?} {:?}", f.primaries, f.standbys);
    assert_eq!(f.primaries, ["us"]);
    assert_eq!(out.final_state.primary_region.as_deref(), Some("us"));
    assert_eq!(out.final_state.standbys.len(), 1);
    assert_eq!(out.final_state.standbys[0].region, "eu");
    let check = out
        .verdict
        .checks
        .iter()
        .find(|c| c.name == "failback")
        .unwrap();
    assert!(check.passed, "{check:?}");
}

/// Async: the divergent writes read from the old primary are the lost writes, id for id —
/// writes `us` acknowledged from just before the replication link was cut (about 200 on a quiet host) —
/// and the run folder holds them, one replayable line each.
fn assert_async_divergent_are_lost(out: &RunOutput) {
    use regiondrill::history::{EventKind, Outcome};
    let lost: Vec<u64> = out.findings.lost_writes.ids.clone();
    assert!(lost.len() > 20, "only {} lost writes", lost.len());
    let cut = out
        .history
        .events
        .iter()
        .find_map(|e| match e.kind {
            EventKind::FaultStarted { index: 0, .. } => Some(e.at_ns),
            _ => None,
        })
        .unwrap();
    // Async physics: a write acknowledged before the cut but not yet on the standby (the
    // replication lag) is lost too. The margin is the lag measured before the cut (heartbeat
    // commit → visible on the standby), twice, plus one poll of the standby: a lag that
    // spiked between two heartbeats is not missed.
    let lag_before_cut_ms = out
        .findings
        .replication_lag
        .series
        .iter()
        .filter(|p| p.at_ms * 1e6 < cut as f64)
        .map(|p| p.lag_ms)
        .fold(0.0, f64::max);
    let margin_ns = ((2.0 * lag_before_cut_ms + out.findings.replication_lag.poll_ms) * 1e6) as u64;
    eprintln!(
        "lag before the cut {lag_before_cut_ms} ms, margin {} ms",
        margin_ns / 1_000_000
    );
    for id in &lost {
        let op = out.history.ops.iter().find(|o| o.id == *id).unwrap();
        assert!(
            op.complete_ns + margin_ns > cut,
            "write {id} acknowledged {} ms before the cut, lost (lag before it: {lag_before_cut_ms} ms)",
            (cut - op.complete_ns) / 1_000_000
        );
        assert!(
            matches!(&op.outcome, Outcome::Ok { committed_by: Some(c), .. } if c == "us"),
            "write {id}: {:?}",
            op.outcome
        );
    }
    let us = &out.findings.failback.rejoins[0];
    assert_eq!(
        us.matches_lost,
        Some(true),
        "differ: {:?}",
        us.mismatched_ids
    );
    assert_eq!(us.divergent_acked, lost.len());
    let divergent = us.divergent_ids.as_ref().unwrap();
    assert!(lost.iter().all(|id| divergent.contains(id)));
    let file = out.dir.join("divergent-writes-us.jsonl");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), divergent.len());
    for (line, id) in lines.iter().zip(divergent) {
        assert_eq!(line["write_id"], *id);
        assert_eq!(line["replay"]["method"], "PUT");
        assert_eq!(line["replay"]["body"]["write_id"], *id);
        assert_eq!(
            line["replay"]["path"],
            format!("/kv/{}", line["key"].as_str().unwrap())
        );
    }
    // The switched-away eu held nothing us lacked: writes were stopped first.
    let eu = &out.findings.failback.rejoins[1];
    assert_eq!(eu.divergent_ids.as_deref(), Some(&[][..]));
}

/// Sync: nothing acknowledged is lost or divergent (a commit cut off by the kill may sit in
/// the old primary's WAL alone: its outcome was never acknowledged).
fn assert_sync_nothing_acknowledged_diverges(out: &RunOutput) {
    assert!(out.findings.lost_writes.checked);
    assert_eq!(out.findings.lost_writes.count, 0);
    let us = &out.findings.failback.rejoins[0];
    assert_eq!(us.divergent_acked, 0, "{us:?}");
    assert_eq!(us.matches_lost, Some(true));
    assert_eq!(out.final_state.standbys[0].sync_state, "sync");
    // us, primary again after the switchover, commits writes: none is a split-brain write
    // (with synchronous commits the deposed us could acknowledge nothing eu lacked).
    assert_eq!(
        out.findings.split_brain.count, 0,
        "{:?}",
        out.findings.split_brain.ids
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_failback_divergent_writes_are_the_lost_writes() {
    let (out, _dir) =
        run_shipped_on(BackendChoice::Native, "experiments/ap-async-failback.toml").await;
    assert_failed_back(&out, Method::Rewind);
    assert_async_divergent_are_lost(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_failback_rewinds_and_loses_nothing() {
    let (out, _dir) =
        run_shipped_on(BackendChoice::Native, "experiments/ap-sync-failback.toml").await;
    assert_failed_back(&out, Method::Rewind);
    assert_sync_nothing_acknowledged_diverges(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rewind_falls_back_to_a_re_clone_and_says_why() {
    let (out, _dir) = run_shipped_on(
        BackendChoice::Native,
        "experiments/ap-async-failback-rewind-fails.toml",
    )
    .await;
    assert_failed_back(&out, Method::ReClone);
    assert_async_divergent_are_lost(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_failback_in_containers() {
    if !docker_or_skip("async_failback_in_containers").await {
        return;
    }
    let (out, _dir) =
        run_shipped_on(BackendChoice::Docker, "experiments/ap-async-failback.toml").await;
    assert_eq!(out.backend, "docker");
    assert_failed_back(&out, Method::Rewind);
    assert_async_divergent_are_lost(&out);
    assert_nothing_left_in_docker();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_failback_in_containers() {
    if !docker_or_skip("sync_failback_in_containers").await {
        return;
    }
    let (out, _dir) =
        run_shipped_on(BackendChoice::Docker, "experiments/ap-sync-failback.toml").await;
    assert_eq!(out.backend, "docker");
    assert_failed_back(&out, Method::Rewind);
    assert_sync_nothing_acknowledged_diverges(&out);
    assert_nothing_left_in_docker();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rewind_re_clones_in_containers() {
    if !docker_or_skip("a_failed_rewind_re_clones_in_containers").await {
        return;
    }
    let (out, _dir) = run_shipped_on(
        BackendChoice::Docker,
        "experiments/ap-async-failback-rewind-fails.toml",
    )
    .await;
    assert_failed_back(&out, Method::ReClone);
    assert_async_divergent_are_lost(&out);
    assert_nothing_left_in_docker();
}

/// No container of this run (the nodes and the helpers that rewound or re-cloned) is left.
fn assert_nothing_left_in_docker() {
    let o = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            "label=regiondrill.run",
            "--format",
            "{{.Names}} {{.Label \"regiondrill.run\"}}",
        ])
        .output()
        .expect("docker CLI");
    let left = String::from_utf8_lossy(&o.stdout);
    let ours: Vec<&str> = left.lines().filter(|l| l.contains("failback")).collect();
    assert!(ours.is_empty(), "left behind: {ours:?}");
}
