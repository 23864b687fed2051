//! Real HA managers drilled natively, each a shipped experiment whose answer is known from
//! the manager's own settings: Patroni's leader key lives `ttl` seconds after its last renewal
//! (renewed every `loop_wait`), so nothing fails over sooner than `ttl − loop_wait` after the
//! leader dies, and with its DCS gone nothing fails over at all. Each takes 35–45 s (Patroni
//! refuses a ttl under 20 s): the other Patroni experiments belong in the matrix.
//!
//! pg_auto_failover's monitor fails a primary over once its keeper has been silent for
//! `node_considered_unhealthy_timeout` (and its health checks failed), then waits
//! `primary_demote_timeout` before the new primary takes writes; with its monitor gone,
//! nothing fails over. Each takes 35–40 s.

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
    assert_eu_took_over_once_and_timelines_agree(out);
}

/// No manager promoted anyone in the run.
fn promoted_nobody(out: &regiondrill::run::RunOutput) -> bool {
    !out.history
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Promoted { .. }))
}

/// The manager promoted eu once, eu is the primary at the end, nothing was refused, and the
/// timelines bracket the same outage as the clients saw: the last write on timeline 1 came
/// at most about one interval between writes (plus the bracket's uncertainty) before the
/// kill, and the first on timeline 2 when writes came back.
fn assert_eu_took_over_once_and_timelines_agree(out: &regiondrill::run::RunOutput) {
    let f = &out.findings.failover;
    let promoted = out
        .history
        .events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::Promoted { region, .. } if region == "eu"))
        .count();
    assert_eq!(promoted, 1, "the manager promoted eu once");
    assert_eq!(out.final_state.primary_region.as_deref(), Some("eu"));
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
    assert!(promoted_nobody(&out), "promoted without a DCS");
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
        promoted_nobody(&out),
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
        promoted_nobody(&out),
        "us kept the leader key: nothing may be promoted"
    );
    assert_eq!(left_running(&out.run_id), Vec::<String>::new());
}

/// Processes still running whose environment names the run's native directory: pg_autoctl's
/// services retitle themselves ("pg_autoctl: node active"), so [`left_running`] cannot see
/// them, but their `XDG_*` directories are the node's.
fn retitled_left_running(run_id: &str) -> Vec<String> {
    let dir = regiondrill::stack::native::rundir::base_dir().join(run_id);
    let dir = format!("{}/", dir.to_string_lossy());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .is_ok_and(|env| String::from_utf8_lossy(&env).contains(&dir))
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .collect()
}

/// Files pg_autoctl left outside the run's directory: where an `XDG_*` directory is missing
/// it keeps its pid files under `/tmp/pg_autoctl/<its data directory>`.
fn left_in_tmp(run_id: &str) -> bool {
    let dir = regiondrill::stack::native::rundir::base_dir().join(run_id);
    let rel = dir.strip_prefix("/").unwrap_or(&dir);
    Path::new("/tmp/pg_autoctl").join(rel).exists()
}

fn pg_auto_failover(out: &regiondrill::run::RunOutput) -> regiondrill::ha::PgAutoFailover {
    match &out.experiment.failover.manager {
        regiondrill::ha::Manager::PgAutoFailover(p) => p.clone(),
        other => panic!("not a pg_auto_failover experiment: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_auto_failover_fails_over_after_its_unhealthy_and_demote_timeouts() {
    let (out, _dir) = run_shipped("pg-auto-failover-region-loss.toml").await;
    assert_pg_auto_failover_region_loss_known_answer(&out);
    assert_eq!(left_running(&out.run_id), Vec::<String>::new());
    assert_eq!(retitled_left_running(&out.run_id), Vec::<String>::new());
    assert!(
        !left_in_tmp(&out.run_id),
        "pg_autoctl left files in /tmp/pg_autoctl"
    );
}

/// The known answer of `pg-auto-failover-region-loss.toml`, on any backend.
pub fn assert_pg_auto_failover_region_loss_known_answer(out: &regiondrill::run::RunOutput) {
    let p = pg_auto_failover(out);
    let unhealthy = f64::from(p.node_considered_unhealthy_timeout);
    let demote = f64::from(p.primary_demote_timeout);
    // The health checks fail well before the keeper's silence counts.
    let checks =
        f64::from(p.health_check_period + p.health_check_max_retries * p.health_check_retry_delay);
    assert!(checks < unhealthy, "{p:?}");
    let f = &out.findings.failover;
    // Detection: the old keeper last reported at most its 1 s loop before the kill; the
    // monitor assigns the promotion on eu's next report (1 s loop), seen within a 50 ms poll
    // (+ a loaded host's lateness).
    let detect = f.detect_ms.expect("pg_auto_failover's detection was read");
    assert!(
        (unhealthy - 1_000.0..=unhealthy + 2_500.0).contains(&detect),
        "detect {detect} ms with node_considered_unhealthy_timeout {unhealthy} ms"
    );
    // Promotion waits primary_demote_timeout for the unreachable old primary, after eu's two
    // transitions (prepare_promotion, stop_replication).
    let promote = f.promote_ms.expect("promoted");
    assert!(
        (demote..=demote + 3_000.0).contains(&promote),
        "promote {promote} ms with primary_demote_timeout {demote} ms"
    );
    // The shipped bound: RTO in [unhealthy + demote − 1 s, unhealthy + demote + 6 s].
    let rto = f.rto_ms.expect("recovered");
    assert!(
        (unhealthy + demote - 1_000.0..=unhealthy + demote + 6_000.0).contains(&rto),
        "RTO {rto} ms"
    );
    assert!(out.verdict.passed, "{:?}", out.verdict);
    // The stream crosses the replication link: PostgreSQL's own replay_lag is at least the
    // link's round trip (the WAL goes out, the standby's reply comes back), as it would not
    // be between two local processes or two containers on one network.
    let rtt = out.experiment.network.rtt.as_secs_f64() * 1e3;
    let replay = out
        .findings
        .replay_lag
        .p50_ms
        .expect("pg_stat_replication was sampled");
    assert!(
        replay >= 0.9 * rtt,
        "replay_lag p50 {replay} ms, link RTT {rtt} ms"
    );
    // replication_quorum: every acknowledged write was flushed on eu.
    let lost = &out.findings.lost_writes;
    assert!(lost.checked && lost.count == 0, "{lost:?}");
    assert_eu_took_over_once_and_timelines_agree(out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_auto_failover_with_its_monitor_in_the_lost_region_never_fails_over_and_says_why() {
    let (out, _dir) = run_shipped("pg-auto-failover-monitor-in-lost-region.toml").await;
    let f = &out.findings.failover;
    assert!(
        !f.recovered,
        "nothing may fail over without the monitor: {f:?}"
    );
    assert_eq!((f.detected_at_ms, f.promoted_at_ms), (None, None));
    let why = f.refused.as_deref().expect("the report says why");
    assert!(
        why.starts_with("monitor unreachable: pg_auto_failover's monitor (in us)"),
        "{why}"
    );
    assert!(promoted_nobody(&out), "promoted without a monitor");
    assert!(!out.verdict.passed);
    assert_eq!(left_running(&out.run_id), Vec::<String>::new());
    assert_eq!(retitled_left_running(&out.run_id), Vec::<String>::new());
    assert!(
        !left_in_tmp(&out.run_id),
        "pg_autoctl left files in /tmp/pg_autoctl"
    );
}

/// pg_auto_failover on Docker needs the offline database image (the official `postgres`
/// image holds no `pg_autoctl`): refused before anything starts, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_auto_failover_on_docker_with_the_official_images_is_refused_saying_why() {
    let test = "pg_auto_failover_on_docker_with_the_official_images_is_refused_saying_why";
    if !crate::support::docker_or_skip(test).await {
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../experiments/pg-auto-failover-region-loss.toml");
    let exp = regiondrill::experiment::load(&path).unwrap();
    let out = crate::support::TempDir::new("paf-docker");
    let opts = regiondrill::run::RunOptions {
        backend: regiondrill::stack::BackendChoice::Docker,
        out: out.0.clone(),
        keep_stack_files: false,
        images: regiondrill::stack::docker::images::ImageChoice::Official,
        observer: None,
        target: None,
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let e = regiondrill::run::run(&exp, &opts, &cancel)
        .await
        .expect_err("the official images hold no pg_auto_failover");
    let e = e.to_string();
    assert!(
        e.contains("manager = \"pg_auto_failover\" on Docker needs the offline database image")
            && e.contains("just images"),
        "{e}"
    );
}
