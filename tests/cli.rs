//! The `regiondrill` binary as users run it: exit codes (0 met, 1 missed, 2 could not run),
//! errors that name file, line and field, results.json's stable names, and nothing left
//! running after Ctrl-C or even `kill -9` of the harness.

use crate::support::TempDir;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The CLI with its run directories under `tmp` (so leftovers can be found) and its run
/// folders under `tmp/reports`.
fn regiondrill(tmp: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_regiondrill"));
    cmd.env("REGIONDRILL_TMP", tmp.join("runs"))
        .arg("run")
        .args(["--backend", "native", "--out"])
        .arg(tmp.join("reports"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Processes whose environment carries `REGIONDRILL_TMP=<tmp>/runs` (children inherit the
/// CLI's environment) or whose command line names `tmp` (PostgreSQL's workers rewrite their
/// titles over their environment; their postmaster's command line names its data directory).
fn leftovers(tmp: &Path) -> Vec<String> {
    let marker = format!("REGIONDRILL_TMP={}", tmp.join("runs").display());
    let path = tmp.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(
            &std::fs::read(entry.path().join("cmdline")).unwrap_or_default(),
        )
        .replace('\0', " ");
        if environ.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) || cmdline.contains(&path) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

/// The run directories present under `tmp`.
fn run_dirs(tmp: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(tmp.join("runs"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_bad_experiment_file_exits_2_naming_file_line_and_field() {
    let tmp = TempDir::new("cli-bad");
    let file = write(
        &tmp.0,
        "bad.toml",
        "posture = \"active-passive-async\"\nduration = \"10s\"\n\n[[faults]]\nkind = \"kill_region\"\nregion = \"us\"\nat = \"soon\"\n",
    );
    let out = regiondrill(&tmp.0).arg(&file).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:7:", file.display());
    assert!(
        stderr.contains(&expected) && stderr.contains("faults[0].at"),
        "stderr: {stderr}"
    );
    let missing = regiondrill(&tmp.0)
        .arg(tmp.0.join("nope.toml"))
        .output()
        .await
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[tokio::test]
async fn a_missed_slo_exits_1_and_results_json_has_stable_names() {
    let tmp = TempDir::new("cli-missed");
    // A single region that dies and stays dead for the rest of the workload: nothing can
    // recover, so the stated RTO is missed.
    let file = write(
        &tmp.0,
        "down.toml",
        "posture = \"single-region\"\nduration = \"3s\"\nsettle = \"200ms\"\n[[faults]]\nkind = \"kill_region\"\nregion = \"us\"\nat = \"1s\"\n[slo]\nrto = \"1s\"\nrpo = \"0s\"\n",
    );
    let out = regiondrill(&tmp.0).arg(&file).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("MISSED"), "{stdout}");
    let run = std::fs::read_dir(tmp.0.join("reports"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    for file in [
        "experiment.toml",
        "experiment.json",
        "history.jsonl",
        "probes.json",
        "results.json",
    ] {
        assert!(
            run.join(file).is_file(),
            "{file} missing from the run folder"
        );
    }
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["schema"], "regiondrill.results/v1");
    assert_eq!(results["slo"]["passed"], false);
    assert!(results["findings"]["lost_writes"]["count"].is_u64());
    assert!(results["findings"]["failover"].get("rto_ms").is_some());
    assert!(
        results["findings"]["replication_lag"]
            .get("p99_ms")
            .is_some()
    );
    assert!(leftovers(&tmp.0).is_empty());
    assert!(run_dirs(&tmp.0).is_empty(), "run directory left behind");
}

#[tokio::test]
async fn met_slos_exit_0() {
    let tmp = TempDir::new("cli-met");
    let file = write(
        &tmp.0,
        "calm.toml",
        "posture = \"single-region\"\nduration = \"1s\"\nsettle = \"100ms\"\n[slo]\nrpo = \"0s\"\n",
    );
    let out = regiondrill(&tmp.0).arg(&file).output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 30-second experiment, so there is time to interrupt it.
const LONG: &str = "posture = \"active-passive-async\"\nduration = \"30s\"\n";

/// Spawns a long run and waits until its stack is up (the apps have written their logs).
async fn start_long_run(tmp: &Path) -> tokio::process::Child {
    let file = write(tmp, "long.toml", LONG);
    let child = regiondrill(tmp).arg(&file).spawn().unwrap();
    let up = wait_until(Duration::from_secs(30), || {
        // The CLI, two PostgreSQL, two Redis and two apps.
        let procs = leftovers(tmp);
        procs
            .iter()
            .filter(|p| p.contains("regiondrill-app serve"))
            .count()
            == 2
            && procs.iter().filter(|p| p.contains("redis-server")).count() == 2
    })
    .await;
    assert!(up, "stack did not come up: {:?}", leftovers(tmp));
    tokio::time::sleep(Duration::from_millis(500)).await;
    child
}

#[tokio::test]
async fn ctrl_c_mid_run_stops_everything_and_exits_2() {
    let tmp = TempDir::new("cli-ctrlc");
    let mut child = start_long_run(&tmp.0).await;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGINT) };
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("did not stop after Ctrl-C")
        .unwrap();
    assert_eq!(status.code(), Some(2));
    assert!(
        wait_until(Duration::from_secs(5), || leftovers(&tmp.0).is_empty()).await,
        "left running: {:?}",
        leftovers(&tmp.0)
    );
    assert!(
        run_dirs(&tmp.0).is_empty(),
        "run directory left behind: {:?}",
        run_dirs(&tmp.0)
    );
}

#[tokio::test]
async fn kill_9_of_the_harness_takes_its_children_and_the_next_run_sweeps_the_rest() {
    let tmp = TempDir::new("cli-kill9");
    let mut child = start_long_run(&tmp.0).await;
    child.start_kill().unwrap();
    let _ = child.wait().await;
    assert!(
        wait_until(Duration::from_secs(5), || leftovers(&tmp.0).is_empty()).await,
        "children outlived the harness: {:?}",
        leftovers(&tmp.0)
    );
    assert_eq!(
        run_dirs(&tmp.0).len(),
        1,
        "the killed run's directory should still be there"
    );
    let file = write(
        &tmp.0,
        "calm.toml",
        "posture = \"single-region\"\nduration = \"500ms\"\nsettle = \"100ms\"\n",
    );
    let out = regiondrill(&tmp.0).arg(&file).output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        run_dirs(&tmp.0).is_empty(),
        "the next run did not sweep: {:?}",
        run_dirs(&tmp.0)
    );
}
