//! `regiondrill contract`: the sample app, on real native stacks (PostgreSQL, Redis, the app
//! in each region), passes every check; an app that breaks the contract in named ways is told
//! exactly those breaks, each under its own check; the CLI's exit codes and lines.

use crate::support::TempDir;
use crate::support::contract_app::{self, Breaks};
use regiondrill::contract::{self, Options, Report, Status};
use regiondrill::stack::Stack;
use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Patience for the fake app: it answers at once, so only a missing answer waits.
fn quick() -> Options {
    Options {
        timeout: Duration::from_secs(2),
        read_wait: Duration::from_millis(300),
        replication_wait: Duration::from_millis(300),
    }
}

/// Every check's line, for assertion messages.
fn lines(report: &Report) -> String {
    report.to_string()
}

/// The names of the checks with `status`.
fn named(report: &Report, status: Status) -> BTreeSet<&'static str> {
    report
        .checks
        .iter()
        .filter(|c| c.status == status)
        .map(|c| c.name)
        .collect()
}

/// The detail of the (one) check `name` of `report`.
fn detail<'a>(report: &'a Report, name: &str) -> &'a str {
    &report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}:\n{}", lines(report)))
        .detail
}

/// The checks every single app gets.
const SINGLE_APP_CHECKS: [&str; 17] = [
    "health",
    "health.ready",
    "kv.put",
    "kv.put-again",
    "kv.replay",
    "kv.read-your-write",
    "kv.missing",
    "kv.percent-decoded",
    "errors.malformed-body",
    "errors.no-route",
    "errors.wrong-method",
    "counters",
    "profile",
    "admin.db",
    "erasure",
    "erasure.profile-gone",
    "erasure.key-gone",
];

/// A native stack of `posture` (1 ms between the regions) whose apps' caches work in
/// `cache_mode`, and its two apps' URLs.
async fn sample_stack(posture: &str, cache_mode: &str) -> (Stack, Vec<String>) {
    let toml = format!(
        "posture = \"{posture}\"\nduration = \"1s\"\n[network]\nrtt = \"1ms\"\n[failover]\nmode = \"manual\"\n[cache]\nmode = \"{cache_mode}\"\n"
    );
    let path = std::path::Path::new("contract.toml");
    let exp = regiondrill::experiment::parse(&toml, path).unwrap_or_else(|e| panic!("{e}"));
    let run_id = regiondrill::run::run_id(&format!("contract-{posture}"));
    let backend = regiondrill::stack::BackendChoice::Native
        .backend(
            &run_id,
            regiondrill::stack::docker::images::ImageChoice::Auto,
        )
        .await
        .unwrap();
    let stack = Stack::up(exp.stack_plan(), backend)
        .await
        .unwrap_or_else(|e| panic!("{posture} stack: {e}"));
    let urls = ["us", "eu"]
        .iter()
        .map(|r| stack.app_url_for(r, r).expect("an app per region"))
        .collect();
    (stack, urls)
}

/// The sample app on a stack of `posture` passes every check (replication skipped only in
/// `partitioned`); the report lists both apps' checks and the cross-region ones. (Each
/// stack comes up natively in well under a second, so every active-active posture is
/// covered too.)
async fn sample_app_passes(posture: &str, cache_mode: &str) {
    let (stack, urls) = sample_stack(posture, cache_mode).await;
    let t = Instant::now();
    let report = contract::run(&urls, &Options::default()).await;
    let took = t.elapsed();
    stack.teardown().await;
    let report = report.unwrap_or_else(|e| panic!("{posture}, {cache_mode}: {e}"));
    eprintln!("{posture}, cache {cache_mode} ({took:?}):\n{report}");
    assert!(
        report.passed(),
        "the sample app fails its contract ({posture}, cache {cache_mode}):\n{}",
        lines(&report)
    );
    assert_eq!(report.exit_code(), 0);
    for url in &urls {
        let ran: BTreeSet<&str> = report
            .checks
            .iter()
            .filter(|c| &c.app == url)
            .map(|c| c.name)
            .collect();
        assert_eq!(ran, SINGLE_APP_CHECKS.into_iter().collect(), "{url}");
    }
    // Partitioned: a user's data stays in its home region, so replication is not checked.
    let partitioned = posture == "active-active-partitioned";
    let skipped: BTreeSet<&str> = if partitioned {
        ["replication"].into_iter().collect()
    } else {
        BTreeSet::new()
    };
    assert_eq!(named(&report, Status::Skip), skipped, "{}", lines(&report));
    let replication: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.name == "replication")
        .collect();
    assert_eq!(replication.len(), 2, "{}", lines(&report));
    if !partitioned {
        assert!(
            replication
                .iter()
                .all(|c| c.detail.starts_with("readable after")),
            "{}",
            lines(&report)
        );
    }
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.name == "regions.distinct" && c.detail == "us, eu"),
        "{}",
        lines(&report)
    );
    // The posture was read from /health (in single-writer the check then required a
    // `timeline` in every write's answer).
    assert!(
        detail(&report, "health").contains(&format!(
            "posture {}",
            if posture.starts_with("active-passive") {
                "single-writer"
            } else {
                posture.trim_start_matches("active-active-")
            }
        )),
        "{}",
        lines(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_app_honours_the_contract_active_passive() {
    sample_app_passes("active-passive-async", "ttl").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_app_honours_the_contract_active_active_lww() {
    sample_app_passes("active-active-lww", "ttl").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_app_honours_the_contract_active_active_crdt() {
    sample_app_passes("active-active-crdt", "ttl").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_app_honours_the_contract_active_active_partitioned() {
    sample_app_passes("active-active-partitioned", "ttl").await;
}

/// The other cache modes: a read may then come from the cache (`write-through` fills it on
/// the write), and `/health` has a fourth check (`invalidation`) besides the three required.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_app_honours_the_contract_in_the_other_cache_modes() {
    sample_app_passes("active-passive-sync", "invalidate").await;
    sample_app_passes("active-active-lww", "write-through").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_app_without_breaks_passes_every_check() {
    // What the broken-app tests rest on: their failures come from the breaks.
    let app = contract_app::start(
        "us",
        "single-writer",
        Breaks::default(),
        contract_app::store(),
    )
    .await;
    let report = contract::run(std::slice::from_ref(&app.url), &quick())
        .await
        .unwrap();
    assert!(report.passed(), "{}", lines(&report));
    assert_eq!(
        named(&report, Status::Pass),
        SINGLE_APP_CHECKS.into_iter().collect()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_break_of_the_contract_is_named_and_nothing_else() {
    let app =
        contract_app::start("us", "single-writer", Breaks::all(), contract_app::store()).await;
    let report = contract::run(std::slice::from_ref(&app.url), &quick())
        .await
        .unwrap();
    assert_eq!(report.exit_code(), 1);
    let expected: BTreeSet<&str> = [
        "kv.put",
        "kv.put-again",
        "kv.replay",
        "errors.malformed-body",
        "errors.no-route",
        "errors.wrong-method",
        "erasure.profile-gone",
    ]
    .into_iter()
    .collect();
    assert_eq!(named(&report, Status::Fail), expected, "{}", lines(&report));
    for (check, says) in [
        ("kv.put", "missing field `committed_by`"),
        (
            "kv.put-again",
            "`version`: expected 2 (the first write's 1 + 1), got 1",
        ),
        ("kv.replay", "expected status 409, got 200"),
        ("errors.malformed-body", "expected status 400, got 422"),
        ("errors.no-route", "missing field `outcome`"),
        ("errors.wrong-method", "expected status 405, got 200"),
        (
            "erasure.profile-gone",
            "the erased user's profile is still served",
        ),
    ] {
        assert!(
            detail(&report, check).contains(says),
            "{check} should say {says:?}:\n{}",
            lines(&report)
        );
    }
    // The lying erasure counted the profile: the counts themselves are right.
    assert_eq!(detail(&report, "erasure"), "");
    assert!(
        report
            .summary()
            .starts_with("contract: 10 passed, 7 failed, 0 skipped (1 app): "),
        "{}",
        report.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_apps_need_distinct_regions_and_replication() {
    let store = contract_app::store();
    let us = contract_app::start("us", "lww", Breaks::default(), store.clone()).await;
    let eu = contract_app::start("eu", "lww", Breaks::default(), store.clone()).await;
    let report = contract::run(&[us.url.clone(), eu.url.clone()], &quick())
        .await
        .unwrap();
    assert!(report.passed(), "{}", lines(&report));
    assert_eq!(
        report
            .checks
            .iter()
            .filter(|c| c.name == "replication" && c.status == Status::Pass)
            .count(),
        2,
        "{}",
        lines(&report)
    );

    // Two apps that claim one region, and that share nothing: not replicated.
    let twin = contract_app::start("us", "lww", Breaks::default(), contract_app::store()).await;
    let report = contract::run(&[us.url.clone(), twin.url.clone()], &quick())
        .await
        .unwrap();
    assert_eq!(
        named(&report, Status::Fail),
        ["regions.distinct", "replication"].into_iter().collect(),
        "{}",
        lines(&report)
    );
    assert!(
        detail(&report, "regions.distinct").contains(&format!(
            "{} and {} both report region \"us\"",
            us.url, twin.url
        )),
        "{}",
        lines(&report)
    );
    assert!(
        detail(&report, "replication").contains("was not readable through"),
        "{}",
        lines(&report)
    );

    // Partitioned: replication is not expected, so it is skipped, saying why.
    let store = contract_app::store();
    let us = contract_app::start("us", "partitioned", Breaks::default(), store.clone()).await;
    let eu = contract_app::start("eu", "partitioned", Breaks::default(), store).await;
    let report = contract::run(&[us.url.clone(), eu.url.clone()], &quick())
        .await
        .unwrap();
    assert!(report.passed(), "{}", lines(&report));
    assert_eq!(
        named(&report, Status::Skip),
        ["replication"].into_iter().collect()
    );
    assert!(detail(&report, "replication").contains("posture partitioned"));
}

/// `regiondrill contract ARGS…`: (exit code, stdout, stderr).
async fn cli(args: &[&str]) -> (i32, String, String) {
    let tmp = TempDir::new("contract-cli");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_regiondrill"))
        .env("REGIONDRILL_TMP", tmp.0.join("runs"))
        .arg("contract")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_exits_1_with_the_failures_and_2_when_an_app_cannot_be_reached() {
    let broken =
        contract_app::start("us", "single-writer", Breaks::all(), contract_app::store()).await;
    let (code, stdout, stderr) = cli(&["--read-wait", "300ms", &broken.url]).await;
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let url = &broken.url;
    for line in [
        format!("PASS  {url}  health: region us, posture single-writer"),
        format!("FAIL  {url}  kv.put: missing field `committed_by`"),
        format!("FAIL  {url}  kv.replay: expected status 409, got 200"),
        format!("FAIL  {url}  errors.wrong-method: expected status 405, got 200"),
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(&line)),
            "no line {line:?} in:\n{stdout}"
        );
    }
    assert_eq!(stdout.lines().filter(|l| l.starts_with("FAIL")).count(), 7);
    assert_eq!(
        stdout.lines().last(),
        Some(
            "contract: 10 passed, 7 failed, 0 skipped (1 app): erasure.profile-gone, \
             errors.malformed-body, errors.no-route, errors.wrong-method, kv.put, kv.put-again, \
             kv.replay"
        ),
        "{stdout}"
    );

    let good = contract_app::start(
        "us",
        "single-writer",
        Breaks::default(),
        contract_app::store(),
    )
    .await;
    let (code, stdout, _) = cli(&[&good.url]).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.ends_with("contract: 17 passed, 0 failed, 0 skipped (1 app)\n"));

    // A closed port: exit 2, naming the URL; nothing on stdout.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let closed = format!("http://127.0.0.1:{port}");
    let (code, stdout, stderr) = cli(&[&good.url, &closed]).await;
    assert_eq!(code, 2, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach {closed}: GET /health: no answer")),
        "{stderr}"
    );
    assert_eq!(stdout, "");

    // Every unreachable app is named.
    let (code, _, stderr) = cli(&[&closed, &good.url, &closed]).await;
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr.matches(&format!("cannot reach {closed}")).count(),
        2,
        "{stderr}"
    );

    // Not a URL at all: exit 2 too.
    let (code, _, stderr) = cli(&["ftp://127.0.0.1:1"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("only http is supported"), "{stderr}");
}
