//! Real experiments on the native backend whose answers are known from physics: sync
//! replication loses nothing; async with a black-holed replication link and a killed primary
//! loses exactly the writes acknowledged during the partition (checked against the databases
//! themselves); injected latency shows up at least as large as injected; detection bounds RTO.

use crate::support::{
    ASYNC_PARTITION_THEN_KILL, assert_loses_the_partition_window, region_loss, run_toml,
};
use regiondrill::history::{EventKind, OpKind, Outcome};
use regiondrill::postgres;
use regiondrill::stack::native::pg::{PgBinaries, PgSettings};
use regiondrill::stack::native::process::{self, NodeProcess, RunAs};
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_replication_loses_no_acknowledged_write_on_region_loss() {
    let (out, _dir) = run_toml(
        "ap-sync-loss",
        &region_loss("active-passive-sync", "6s", "3s"),
        false,
    )
    .await;
    let f = &out.findings;
    assert!(f.lost_writes.checked, "final state not read");
    assert_eq!(f.lost_writes.count, 0, "sync lost {:?}", f.lost_writes.ids);
    let acked_writes = out
        .history
        .ops
        .iter()
        .filter(|o| o.kind == OpKind::Write && o.outcome.is_ok())
        .count();
    assert!(
        acked_writes > 200,
        "only {acked_writes} acknowledged writes: the check proves little"
    );
    assert!(
        f.failover.recovered,
        "no write succeeded after the failover"
    );
    assert_eq!(out.final_state.primary_region.as_deref(), Some("eu"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_partition_then_kill_loses_exactly_the_partition_window() {
    let (out, _dir) = run_toml("ap-async-partition-kill", ASYNC_PARTITION_THEN_KILL, true).await;
    let kept = out.stack_files.clone().expect("stack files kept");
    let _cleanup = KeptFiles(kept.clone());
    let f = &out.findings;
    // Physics: the partition began at 2 s and us died at 5 s; async commits waited for no one.
    let (lost, _) = assert_loses_the_partition_window(&out);
    let rpo = f.lost_writes.rpo_ms.unwrap();
    assert!(
        (2_900.0..3_300.0).contains(&rpo),
        "RPO {rpo} ms for a 3 s partition"
    );

    // Independently, from the databases: what the old primary has and the new one lacks.
    let old = write_ids(&kept.join("us-db")).await;
    let new = write_ids(&kept.join("eu-db")).await;
    let diff: BTreeSet<u64> = old.difference(&new).copied().collect();
    let not_in_db: Vec<_> = lost.difference(&diff).collect();
    assert!(
        not_in_db.is_empty(),
        "reported lost but not missing between the databases: {not_in_db:?}"
    );
    for id in diff.difference(&lost) {
        let op = out.history.ops.iter().find(|o| o.id == *id).unwrap();
        assert!(
            !matches!(op.outcome, Outcome::Ok { .. }),
            "write {id} is missing from the new primary, was acknowledged, yet not reported lost"
        );
    }
}

/// Removes a kept stack directory.
struct KeptFiles(std::path::PathBuf);

impl Drop for KeptFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts PostgreSQL on a kept data directory and reads the `writes` table's ids.
async fn write_ids(data_dir: &std::path::Path) -> BTreeSet<u64> {
    let bins = PgBinaries::find().unwrap();
    let port = regiondrill::stack::ports::PortAllocator::new()
        .allocate()
        .unwrap();
    let settings = PgSettings {
        port,
        data_dir: data_dir.to_path_buf(),
        cluster_name: "audit".into(),
    };
    let log = data_dir.with_extension("audit.log");
    let mut cmd = process::command(&bins.tool("postgres"), &log, RunAs::for_postgres()).unwrap();
    cmd.args(settings.args());
    let mut pg = NodeProcess::spawn("audit", cmd, &log).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !postgres::answers(port, Duration::from_millis(500)).await {
        assert!(
            std::time::Instant::now() < deadline,
            "audit server did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = postgres::connect(port, Duration::from_secs(5))
        .await
        .unwrap();
    let rows = c.query("SELECT write_id FROM writes", &[]).await.unwrap();
    pg.kill().await;
    rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect()
}

/// A short active-passive run with `rtt` added on the replication link from the start.
fn replication_latency(posture: &str, rtt_ms: u64) -> String {
    let fault = if rtt_ms == 0 {
        String::new()
    } else {
        format!(
            "[[faults]]\nkind = \"latency\"\nlinks = [\"replication\"]\nrtt = \"{rtt_ms}ms\"\nat = \"0s\"\n"
        )
    };
    format!(
        "posture = \"{posture}\"\nduration = \"4s\"\nsettle = \"500ms\"\n[workload]\nrate_per_s = 100\n{fault}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_replication_latency_shows_up_in_sync_commits_and_async_lag() {
    // 40 ms each way on the replication link: a sync commit waits for the WAL to reach the
    // replica and the apply confirmation to come back (≥ 80 ms); async lag is ≥ 40 ms.
    let (sync, _d1) = run_toml(
        "sync-80",
        &replication_latency("active-passive-sync", 80),
        false,
    )
    .await;
    let (asy, _d2) = run_toml(
        "async-80",
        &replication_latency("active-passive-async", 80),
        false,
    )
    .await;
    let (sync0, _d3) = run_toml(
        "sync-0",
        &replication_latency("active-passive-sync", 0),
        false,
    )
    .await;
    let (asy0, _d4) = run_toml(
        "async-0",
        &replication_latency("active-passive-async", 0),
        false,
    )
    .await;
    let write_p50 = |o: &regiondrill::run::RunOutput, region: &str| {
        o.findings.latency[region].write.p50_ms.unwrap()
    };
    for region in ["us", "eu"] {
        let p50 = write_p50(&sync, region);
        assert!(
            p50 >= 80.0,
            "{region} sync write p50 {p50} ms with 80 ms RTT on the replication link"
        );
        assert!(
            p50 < 120.0,
            "{region} sync write p50 {p50} ms, far above 80 ms"
        );
        assert!(
            write_p50(&sync0, region) < 20.0,
            "{region} sync write p50 {} ms with no fault",
            write_p50(&sync0, region)
        );
        assert!(
            write_p50(&asy, region) < 20.0,
            "async writes must not pay the replication RTT"
        );
    }
    let lag = asy.findings.replication_lag.p50_ms.unwrap();
    assert!(
        lag >= 40.0,
        "async replication lag p50 {lag} ms with 40 ms one way"
    );
    assert!(
        lag < 60.0,
        "async replication lag p50 {lag} ms, far above 40 ms + poll"
    );
    let lag0 = asy0.findings.replication_lag.p50_ms.unwrap();
    assert!(
        lag0 < 10.0,
        "async replication lag p50 {lag0} ms with no fault"
    );
    let sync_lag = sync.findings.replication_lag.p50_ms.unwrap();
    assert!(
        sync_lag < 10.0,
        "sync: a commit returns once the replica applied it, lag {sync_lag} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observed_rto_is_bounded_by_detection_and_moves_with_the_settings() {
    let fast = region_loss("active-passive-async", "6s", "2s")
        .replace("interval = \"300ms\"", "interval = \"200ms\"");
    let slow = region_loss("active-passive-async", "7s", "2s")
        .replace("interval = \"300ms\"", "interval = \"500ms\"")
        .replace("threshold = 2", "threshold = 4");
    let (fast, _d1) = run_toml("rto-fast", &fast, false).await;
    let (slow, _d2) = run_toml("rto-slow", &slow, false).await;
    for (out, interval, threshold) in [(&fast, 200.0, 2.0), (&slow, 500.0, 4.0)] {
        let f = &out.findings.failover;
        let (rto, detect) = (f.rto_ms.unwrap(), f.detect_ms.unwrap());
        assert!(rto >= detect, "RTO {rto} ms below detection {detect} ms");
        // Threshold misses, one interval apart: the first may come right after the failure.
        assert!(
            detect >= (threshold - 1.0) * interval - 5.0,
            "detect {detect} ms < ({threshold} − 1) × {interval} ms"
        );
        assert!(
            detect <= threshold * interval + interval + 50.0,
            "detect {detect} ms > ({threshold} + 1) × {interval} ms"
        );
    }
    let (a, b) = (
        fast.findings.failover.rto_ms.unwrap(),
        slow.findings.failover.rto_ms.unwrap(),
    );
    assert!(
        b - a >= 1_000.0,
        "RTO {a} ms → {b} ms: detection grew by ≥ 1.3 s, RTO should follow"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_mode_waits_for_the_primary_to_come_back() {
    // No failover: the primary's database is killed at 1 s and restarted at 3 s. Writes fail
    // meanwhile and succeed again only once it is back; nothing acknowledged is lost (it
    // restarts from its own files).
    let toml = r#"
posture = "active-passive-async"
duration = "5s"
settle = "500ms"
[workload]
rate_per_s = 150
[failover]
mode = "manual"
[[faults]]
kind = "kill_node"
node = "us-db"
at = "1s"
heal_at = "3s"
"#;
    let (out, _dir) = run_toml("manual-kill-node", toml, false).await;
    let f = &out.findings;
    assert!(out.history.events.iter().all(|e| !matches!(
        e.kind,
        EventKind::PrimaryDeclaredDown { .. } | EventKind::Promoted { .. }
    )));
    let rto = f
        .failover
        .rto_ms
        .expect("writes came back after the restart");
    assert!(
        (2_000.0..3_500.0).contains(&rto),
        "RTO {rto} ms for a 2 s outage plus restart"
    );
    assert_eq!(f.lost_writes.count, 0);
    assert!(f.lost_writes.checked);
    assert_eq!(out.final_state.primary_region.as_deref(), Some("us"));
}

/// Entries of /dev/shm that a server or a libfaketime'd node leaves when it is SIGKILLed.
fn shm_leftovers() -> std::collections::BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with("PostgreSQL.") || n.contains("faketime"))
                .collect()
        })
        .unwrap_or_default()
}

/// Regression: every SIGKILLed PostgreSQL left its POSIX shared-memory segment in /dev/shm,
/// and every libfaketime'd app its segment and semaphore: 332 MB of the host's memory after
/// an afternoon of drills. Killed regions and skewed clocks must leave nothing there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_nodes_leave_no_shared_memory_behind() {
    let before = shm_leftovers();
    let toml = r#"
posture = "active-passive-async"
duration = "4s"
settle = "500ms"
[workload]
rate_per_s = 100
read_fraction = 0.2
[failover]
interval = "300ms"
threshold = 2
[[faults]]
kind = "clock_skew"
node = "eu-app"
offset = "+1s"
at = "500ms"
[[faults]]
kind = "kill_region"
region = "us"
at = "1s"
"#;
    let (out, _dir) = run_toml("shm", toml, false).await;
    assert!(out.findings.ops.total > 0);
    let leaked: Vec<String> = shm_leftovers().difference(&before).cloned().collect();
    assert!(leaked.is_empty(), "left in /dev/shm: {leaked:?}");
}
