//! Honest under overload: every failover the system made is reported, first, with its time
//! and cause — including one no fault of the experiment provoked and one whose step failed —
//! and a host too busy to keep time is marked saturated. Real native stacks; the known
//! answers come from what the test does to the stack behind the experiment's back.

use crate::support::{run_shipped_on, run_toml};
use regiondrill::proxy::{Direction, Link, Partition, ProxyServer, ToxiproxyClient};
use regiondrill::stack::BackendChoice;
use std::time::Duration;

/// An experiment with no fault: nothing in it should make anyone fail over.
const QUIET: &str = r#"
posture = "active-passive-async"
duration = "7s"
settle = "500ms"
[workload]
rate_per_s = 100
[failover]
interval = "300ms"
threshold = 2
dns_ttl = "500ms"
"#;

/// The controller is cut off from a healthy primary by the test, on a fault proxy the test
/// runs (`TOXIPROXY_URL`), not by the experiment: the run must report a false failover, with
/// its time and no fault behind it, say first that the failure was not injected, and fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_no_fault_provoked_is_reported_first_with_its_time_and_fails_the_run() {
    let proxy = ProxyServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // SAFETY: set before the run starts any thread that reads it; nextest runs each test in
    // its own process.
    unsafe { std::env::set_var("TOXIPROXY_URL", proxy.url()) };
    let client = ToxiproxyClient::new(proxy.url());
    let cut = tokio::spawn(async move {
        // Once the stack's monitor link exists and the workload has run a while.
        let monitor = "eu-monitor-to-us-db";
        for _ in 0..600 {
            if client
                .proxies()
                .await
                .is_ok_and(|p| p.contains_key(monitor))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(2500)).await;
        Link::new(client, monitor)
            .partition(Partition::BlackHole(Direction::Both))
            .await
            .unwrap();
        std::time::Instant::now()
    });
    let started = std::time::Instant::now();
    let (out, _dir) = run_toml("quiet-cut", QUIET, false).await;
    let cut_at = cut.await.unwrap().duration_since(started);
    let f = &out.findings.false_failovers;
    assert_eq!(f.failovers, 1, "{f:#?}");
    let e = &f.episodes[0];
    assert_eq!(e.region.as_deref(), Some("us"));
    assert_eq!(
        e.false_failover,
        Some(true),
        "the primary answered in us: {e:#?}"
    );
    assert!(
        e.unprovoked,
        "no fault of the experiment was in effect: {e:#?}"
    );
    // Declared within detection (2 checks 300 ms apart, each giving up after 300 ms) of the
    // cut, on the run's clock (which started after the stack came up, so before the cut).
    assert!(
        e.at_ms <= cut_at.as_secs_f64() * 1e3 + 1_500.0,
        "declared at {} ms, cut {cut_at:?} after start",
        e.at_ms
    );
    assert!(!out.findings.failover.failure_injected);
    assert!(!out.verdict.passed, "a false failover fails the run");
    let text = regiondrill::report::terminal::run_report(&out.results());
    assert!(
        before_the_table(&text).contains("false failover at"),
        "the report says it first:\n{text}"
    );
}

/// The eu app is frozen when the controller must repoint it after a region loss: the
/// reconfiguration fails, which the run reports as a failed failover step — with its error,
/// first — and the run fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_app_reconfiguration_is_a_failed_failover_step_and_fails_the_run() {
    let toml = r#"
posture = "active-passive-async"
duration = "7s"
settle = "500ms"
[workload]
rate_per_s = 100
[failover]
interval = "300ms"
threshold = 2
dns_ttl = "500ms"
[[faults]]
kind = "pause_node"
node = "eu-app"
at = "1s"
heal_at = "6s"
[[faults]]
kind = "kill_region"
region = "us"
at = "1500ms"
"#;
    let (out, _dir) = run_toml("reconfigure-fails", toml, false).await;
    let f = &out.findings.false_failovers;
    assert_eq!(f.failed, 1, "{f:#?}");
    let failed = f.episodes[0]
        .steps
        .iter()
        .find_map(|s| s.error.clone())
        .expect("a failed step");
    assert!(failed.contains("reconfiguring the eu app"), "{failed}");
    assert!(!out.verdict.passed);
    let check = out
        .verdict
        .checks
        .iter()
        .find(|c| c.name == "false_failovers")
        .expect("the failed step is judged");
    assert!(
        !check.passed && check.observed.contains("failover failed"),
        "{check:?}"
    );
    let text = regiondrill::report::terminal::run_report(&out.results());
    assert!(
        before_the_table(&text).contains("failover failed at"),
        "the report says it first:\n{text}"
    );
}

/// What a terminal report says between its header line and its findings table (its alerts),
/// as one line.
fn before_the_table(report: &str) -> String {
    report
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with('┌'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Planned far above what two cores drive, a run is marked saturated, first, in every
/// format; a shipped experiment at its shipped rate is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_host_is_marked_saturated_and_a_shipped_rate_is_not() {
    let overload = r#"
posture = "active-passive-async"
duration = "6s"
settle = "500ms"
[workload]
users = 400
rate_per_s = 4000
"#;
    let (out, dir) = run_toml("overload", overload, false).await;
    let h = &out.findings.host;
    assert!(h.saturated, "{h:#?}");
    regiondrill::report::render_run(&out.dir).unwrap();
    for (file, marker) in [
        ("report.txt", "WARNING: host saturated"),
        ("report.md", "> host saturated"),
        (
            "report.html",
            "host saturated: latency and failover timings are not trustworthy",
        ),
        ("results.json", "\"saturated\": true"),
    ] {
        let text = std::fs::read_to_string(out.dir.join(file)).unwrap();
        assert!(text.contains(marker), "{file} lacks {marker:?}");
    }
    drop(dir);
    let (shipped, _dir) = run_shipped_on(
        BackendChoice::Native,
        "experiments/ap-async-region-loss.toml",
    )
    .await;
    let h = &shipped.findings.host;
    assert!(h.checked && !h.saturated, "{h:#?}");
}

/// The shipped flapping experiment: monitor-link blips shorter than the controller's
/// detection (interval × threshold) cause no failover; the long outage from 10 s causes one,
/// reported as a false failover (us stayed healthy) caused by the flap, with its cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_monitor_flaps_fail_nothing_over_and_a_long_one_is_a_false_failover() {
    let (out, _dir) = run_shipped_on(
        BackendChoice::Native,
        "experiments/ap-async-flapping-link.toml",
    )
    .await;
    let f = &out.findings.false_failovers;
    assert_eq!(f.failovers, 1, "only the long flap fails over: {f:#?}");
    let e = &f.episodes[0];
    // The long flap starts at 10 s: declared after detection (2-3 checks 500 ms apart).
    assert!(
        (10_900.0..=12_500.0).contains(&e.at_ms),
        "declared at {} ms",
        e.at_ms
    );
    assert_eq!(e.false_failover, Some(true), "us was healthy: {e:#?}");
    assert!(
        !e.unprovoked
            && e.causes[0]
                .fault
                .starts_with("link flap eu-monitor-to-us-db")
    );
    assert!(
        e.split_brain_writes.is_some(),
        "its cost is counted: {e:#?}"
    );
    assert!(
        out.verdict.passed,
        "the experiment expects this one false failover"
    );
}
