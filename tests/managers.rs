//! Real HA managers drilled natively, each a shipped experiment whose answer is known from
//! the manager's own settings: Patroni's leader key lives `ttl` seconds after its last renewal
//! (renewed every `loop_wait`), so nothing fails over sooner than `ttl − loop_wait` after the
//! leader dies, and with its DCS gone nothing fails over at all. Each takes 35–45 s (Patroni
//! refuses a ttl under 20 s): the other Patroni experiments belong in the matrix.

use regiondrill::history::EventKind;
use std::path::Path;

/// Runs a shipped experiment file natively.
async fn run_shipped(file: &str) -> (regiondrill::run::RunOutput, crate::support::TempDir) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../experiments")
        .join(file);
    let toml = std::fs::read_to_string(&path).unwrap();
    crate::support::run_toml(file.trim_end_matches(".toml"), &toml, false).await
}

/// Processes still running whose command line names the run's native directory (Patroni's
/// configuration, PostgreSQL's data, etcd's data, HAProxy's configuration all live there).
fn left_running(run_id: &str) -> Vec<String> {
    let dir = regiondrill::stack::native::rundir::base_dir().join(run_id);
    let dir = dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&dir))
        .collect()
}

fn patroni(out: &regiondrill::run::RunOutput) -> regiondrill::ha::Patroni {
    match &out.experiment.failover.manager {
        regiondrill::ha::Manager::Patroni(p) => p.clone(),
        other => panic!("not a Patroni experiment: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_fails_over_when_the_leader_key_expires_and_timelines_agree() {
    let (out, _dir) = run_shipped("patroni-region-loss.toml").await;
    assert_patroni_region_loss_known_answer(&out);
    assert_eq!(left_running(&out.run_id), Vec::<String>::new());
}

/// The known answer of `patroni-region-loss.toml`, on any backend.
pub fn assert_patroni_region_loss_known_answer(out: &regiondrill::run::RunOutput) {
    let p = patroni(out);
    let (ttl, loop_wait) = (f64::from(p.ttl) * 1e3, f64::from(p.loop_wait) * 1e3);
    let f = &out.findings.failover;
    // Detection is the leader key's expiry: its last renewal was at most loop_wait before the
    // kill, and it lives ttl after it (+ the 50 ms poll and a loaded host's lateness).
    let detect = f.detect_ms.expect("Patroni's detection was read");
    assert!(
        (ttl - loop_wait - 100.0..=ttl + 1_000.0).contains(&detect),
        "detect {detect} ms with ttl {ttl} ms, loop_wait {loop_wait} ms"
    );
    // The shipped bound: RTO in [ttl − loop_wait, ttl + loop_wait + 4 s].
    let rto = f.rto_ms.expect("recovered");
    assert!(
        (ttl - loop_wait..=ttl + loop_wait + 4_000.0).contains(&rto),
        "RTO {rto} ms"
    );
    assert!(out.verdict.passed, "{:?}", out.verdict);
    let promoted = out
        .history
        .events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::Promoted { region } if region == "eu"))
        .count();
    assert_eq!(promoted, 1, "Patroni promoted eu once");
    assert_eq!(out.final_state.primary_region.as_deref(), Some("eu"));
    // The timelines bracket the same outage: the last write on timeline 1 came at most about
    // one interval between writes (plus the bracket's uncertainty) before the kill.
    let t = &out.findings.timelines;
    assert_eq!((t.old, t.new), (Some(1), Some(2)), "{t:?}");
    let gap = t.gap_ms.unwrap();
    let first = f.first_rto_ms.unwrap();
    let bound = 500.0 + t.uncertainty_ms.unwrap();
    assert!(
        gap >= first - t.uncertainty_ms.unwrap() && gap - first <= bound,
        "timeline gap {gap} ms vs first recovery {first} ms (bound {bound} ms)"
    );
    assert!(f.refused.is_none(), "{:?}", f.refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_with_its_dcs_in_the_lost_region_never_fails_over_and_says_why() {
    let (out, _dir) = run_shipped("patroni-dcs-in-lost-region.toml").await;
    let f = &out.findings.failover;
    assert!(!f.recovered, "nothing may fail over without the DCS: {f:?}");
    assert_eq!((f.detected_at_ms, f.promoted_at_ms), (None, None));
    let why = f.refused.as_deref().expect("the report says why");
    assert!(why.starts_with("DCS unreachable: etcd (in us)"), "{why}");
    assert!(
        !out.history
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Promoted { .. })),
        "promoted without a DCS"
    );
    assert!(!out.verdict.passed);
    assert_eq!(left_running(&out.run_id), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_refuses_a_replica_beyond_maximum_lag_and_loses_nothing() {
    let (out, _dir) = run_shipped("patroni-lag-refuses-failover.toml").await;
    let f = &out.findings.failover;
    assert!(!f.recovered, "eu was too far behind to be promoted: {f:?}");
    let why = f.refused.as_deref().expect("the report says why");
    assert!(
        why.starts_with("no candidate within maximum_lag_on_failover"),
        "{why}"
    );
    assert!(
        !out.history
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Promoted { .. })),
        "promoted a replica beyond maximum_lag_on_failover"
    );
    // Availability was given up to bound the loss: us comes back the leader, nothing lost.
    let lost = &out.findings.lost_writes;
    assert!(lost.checked);
    assert_eq!(lost.count, 0, "lost {:?}", lost.ids);
    let ff = &out.findings.false_failovers;
    assert_eq!((ff.refused, ff.count), (1, 0), "{ff:?}");
    assert_eq!(left_running(&out.run_id), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_sync_strict_blocks_writes_under_a_partition_and_loses_none() {
    let (out, _dir) = run_shipped("patroni-sync-strict-partition.toml").await;
    let (mut cut, mut heal) = (None, None);
    for e in &out.history.events {
        match e.kind {
            EventKind::FaultStarted { .. } => cut = cut.or(Some(e.at_ns)),
            EventKind::FaultHealed { .. } => heal = heal.or(Some(e.at_ns)),
            _ => {}
        }
    }
    let (cut, heal) = (cut.expect("cut"), heal.expect("healed"));
    // A commit waits for the synchronous standby, which is cut off: once what was in
    // flight at the cut (one round trip, 80 ms, and a margin) is done, no write is
    // acknowledged until the heal; they block and end unknown or failed instead.
    let settled = cut + 300_000_000;
    let writes_during_cut: Vec<_> = out
        .history
        .ops
        .iter()
        .filter(|o| o.kind == regiondrill::history::OpKind::Write)
        .filter(|o| o.complete_ns > settled && o.complete_ns < heal)
        .collect();
    assert!(
        !writes_during_cut.is_empty(),
        "no write ended during the cut"
    );
    let acknowledged = writes_during_cut
        .iter()
        .filter(|o| o.outcome.is_ok())
        .count();
    assert_eq!(
        acknowledged, 0,
        "strict mode acknowledged writes without a standby"
    );
    let lost = &out.findings.lost_writes;
    assert!(lost.checked);
    assert_eq!(lost.count, 0, "lost {:?}", lost.ids);
    assert!(
        !out.history
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Promoted { .. })),
        "us kept the leader key: nothing may be promoted"
    );
    assert_eq!(left_running(&out.run_id), Vec::<String>::new());
}
