//! The `regiondrill` binary as users run it: exit codes (0 met, 1 missed, 2 could not run),
//! errors that name file, line and field, results.json's stable names, and nothing left
//! running after Ctrl-C or even `kill -9` of the harness.

use crate::support::{TempDir, leftovers};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The CLI with its run directories under `tmp` (so leftovers can be found) and its run
/// folders under `tmp/reports`.
fn regiondrill(tmp: &Path) -> tokio::process::Command {
    subcommand(tmp, "run")
}

/// `regiondrill <name> --backend native --out tmp/reports`, set up as [`regiondrill`].
fn subcommand(tmp: &Path, name: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_regiondrill"));
    cmd.env("REGIONDRILL_TMP", tmp.join("runs"))
        .arg(name)
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

/// Two postures under one region loss; single-region states an RTO no region loss can meet.
const SMALL_MATRIX: &str = r#"
name = "small"
seed = 7
postures = ["single-region", "active-passive-sync"]
[base]
duration = "4s"
settle = "200ms"
[base.workload]
users = 8
rate_per_s = 60
[base.failover]
interval = "300ms"
threshold = 3
dns_ttl = "300ms"
fencing = true
[slo]
rpo = "0s"
rto = "2500ms"
[slo.single-region]
rto = "100ms"
[[scenarios]]
name = "region-loss"
[[scenarios.faults]]
kind = "kill_region"
region = "us"
at = "1s"
heal_at = "2500ms"
"#;

/// Every file of a folder tree that a report renders (not the stored `.json`), with its bytes.
fn rendered(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rendered(&path));
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let rendered =
            name.starts_with("report.") || name.starts_with("matrix.") || name == "junit.xml";
        if rendered && !name.ends_with(".json") {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_matrix_compares_postures_and_report_rerenders_the_same_bytes() {
    let tmp = TempDir::new("cli-matrix");
    let file = write(&tmp.0, "small.toml", SMALL_MATRIX);
    let out = subcommand(&tmp.0, "matrix")
        .arg("--quiet")
        .arg(&file)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    // single-region cannot be back within 100 ms of losing its only region: exit 1.
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.contains("2 experiments: 1 met its SLOs, 1 missed"),
        "{stdout}"
    );
    for row in ["region-loss  single", "region-loss  ap-sync"] {
        assert!(stdout.contains(row), "no row {row:?}: {stdout}");
    }
    // The table fits in 100 columns (the last line names the folder: a path of any length).
    assert!(
        stdout
            .lines()
            .filter(|l| !l.starts_with("matrix folder:"))
            .all(|l| l.chars().count() <= 100),
        "{stdout}"
    );
    // Quiet progress: a start and a verdict line per experiment, nothing about stages.
    assert!(stderr.contains("region-loss-ap-sync: starting"), "{stderr}");
    assert!(!stderr.contains("bringing up"), "{stderr}");

    let matrices: Vec<_> = std::fs::read_dir(tmp.0.join("reports"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(matrices.len(), 1);
    let dir = matrices[0].path();
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .contains("-small-"),
        "{dir:?}"
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("matrix.json")).unwrap()).unwrap();
    assert_eq!(index["schema"], "regiondrill.matrix/v1");
    assert_eq!(index["seed"], 7);
    let runs = index["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert!(run["error"].is_null(), "{run}");
        let results: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join(run["dir"].as_str().unwrap()).join("results.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(results["experiment"]["scenario"], "region-loss");
        assert_eq!(results["experiment"]["seed"], 7);
    }
    // One JUnit test case per experiment × stated SLO; only single-region's RTO fails.
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), 4, "{junit}");
    assert_eq!(junit.matches("<failure ").count(), 1, "{junit}");
    let before = rendered(&dir);
    let names: Vec<String> = before
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    for name in [
        "matrix.txt",
        "matrix.md",
        "matrix.html",
        "report.txt",
        "report.md",
        "report.html",
    ] {
        assert!(
            names.contains(&name.to_string()),
            "{name} missing: {names:?}"
        );
    }
    assert_eq!(
        names.iter().filter(|n| *n == "junit.xml").count(),
        3,
        "{names:?}"
    );

    // Re-rendering from the stored results gives the same bytes.
    for (path, _) in &before {
        std::fs::remove_file(path).unwrap();
    }
    let again = tokio::process::Command::new(env!("CARGO_BIN_EXE_regiondrill"))
        .arg("report")
        .arg(&dir)
        .output()
        .await
        .unwrap();
    // The exit code is the stored verdicts': single-region's missed RTO is still a miss.
    assert_eq!(
        again.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("region-loss  ap-sync"));
    assert!(
        rendered(&dir) == before,
        "re-rendered reports differ from the first rendering"
    );
    assert!(leftovers(&tmp.0).is_empty(), "{:?}", leftovers(&tmp.0));
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

/// Regression: Ctrl-C during bring-up left 16–22 MB in the run directory (the copy of the
/// cached cluster, `cp -a`, kept writing after bring-up was dropped), and Ctrl-C during
/// teardown exited 0 saying "SLOs met". At every stage, an interrupted run must exit 2, leave
/// no process and no file of the run, and leave a run folder marked incomplete that names
/// the stage.
#[tokio::test]
async fn ctrl_c_at_any_moment_leaves_nothing_exits_2_and_marks_the_run_incomplete() {
    use crate::support::interrupt::{SHORT, STAGES, incomplete_reason, interrupt, names_stage};
    let [bring_up, workload, heal, teardown] = STAGES;
    let ms = Duration::from_millis;
    // Bring-up is where the children are many and short-lived: try it densely.
    let bring_up_points = [0, 20, 50, 80, 120, 160, 200, 250, 300, 350].map(|d| (bring_up, ms(d)));
    let later_points = [
        (workload, ms(0)),
        (workload, ms(1000)),
        (heal, ms(0)),
        (heal, ms(300)),
        (teardown, ms(0)),
    ];
    for (stage, delay) in bring_up_points.into_iter().chain(later_points) {
        let tmp = TempDir::new("cli-ctrlc-any");
        let file = write(&tmp.0, "short.toml", SHORT);
        let mut cmd = regiondrill(&tmp.0);
        cmd.arg(&file);
        let run = interrupt(cmd, stage, delay).await;
        let at = format!("SIGINT {delay:?} after \"{stage}\"");
        assert_eq!(run.code, Some(2), "{at}: exit code\n{}", run.stderr);
        assert!(
            wait_until(Duration::from_secs(5), || leftovers(&tmp.0).is_empty()).await,
            "{at}: left running: {:?}",
            leftovers(&tmp.0)
        );
        assert!(
            run_dirs(&tmp.0).is_empty(),
            "{at}: run directory left behind: {:?}",
            run_dirs(&tmp.0)
        );
        let reason = incomplete_reason(&tmp.0.join("reports"));
        assert!(
            names_stage(&reason, run.stage_seen),
            "{at}: the run folder says \"{reason}\", last stage seen {:?}",
            run.stage_seen
        );
    }
}

/// Regression: the template cache is built in a staging copy beside it; Ctrl-C in the middle
/// of building it must not leave that copy (or a half template) behind.
#[tokio::test]
async fn ctrl_c_while_the_template_cache_is_built_leaves_no_staging_copy() {
    use crate::support::interrupt::{SHORT, STAGES, interrupt};
    let before = pg_segments();
    for delay in [150, 400, 700] {
        let tmp = TempDir::new("cli-ctrlc-cache");
        let file = write(&tmp.0, "short.toml", SHORT);
        let cache = tmp.0.join("cache");
        let mut cmd = regiondrill(&tmp.0);
        cmd.env("REGIONDRILL_CACHE", &cache).arg(&file);
        let run = interrupt(cmd, STAGES[0], Duration::from_millis(delay)).await;
        assert_eq!(run.code, Some(2), "{}", run.stderr);
        let entries: Vec<String> = std::fs::read_dir(&cache)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            entries.iter().all(|e| !e.contains(".tmp-")),
            "staging copy left in the cache after SIGINT at +{delay} ms: {entries:?}"
        );
        for template in entries.iter().filter(|e| !e.ends_with(".key")) {
            assert!(
                cache.join(template).join("PG_VERSION").is_file(),
                "a half-built template {template} was left in place"
            );
        }
        assert!(run_dirs(&tmp.0).is_empty(), "{:?}", run_dirs(&tmp.0));
        assert!(
            wait_until(Duration::from_secs(5), || leftovers(&tmp.0).is_empty()).await,
            "{:?}",
            leftovers(&tmp.0)
        );
        // initdb's bootstrap backend, killed mid-way, used to leak POSIX shared memory.
        let leaked: Vec<String> = pg_segments()
            .into_iter()
            .filter(|s| !before.contains(s))
            .collect();
        assert!(
            leaked.is_empty(),
            "SIGINT at +{delay} ms leaked {leaked:?} in /dev/shm"
        );
    }
}

/// PostgreSQL's POSIX shared-memory segments in /dev/shm.
fn pg_segments() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("PostgreSQL."))
        .collect()
}

/// Hostile files users reported: each is refused with exit 2 and `file:line:col: field:`,
/// before any stack is brought up (no run directory, no process, no run folder, quickly).
#[tokio::test]
async fn hostile_experiment_files_exit_2_with_file_line_col_field_before_bring_up() {
    let tmp = TempDir::new("cli-hostile");
    let head = "posture = \"active-passive-async\"\nduration = \"10s\"\n";
    let mut latin1 = format!("{head}name = \"caf").into_bytes();
    latin1.extend(b"\xe9\"\n");
    let cases: [(&str, &str, Vec<u8>, &str); 5] = [
        // Accepted, it brought a stack up, then aborted allocating its plan.
        (
            "run",
            "huge.toml",
            b"posture = \"active-passive-async\"\nduration = \"10000h\"\n".to_vec(),
            "2:12: duration: duration = \"10000h\" at 200/s",
        ),
        // Named `failover`, the table after the broken header.
        (
            "run",
            "header.toml",
            format!("{head}[workload\nusers = 3\n\n[failover]\nmode = \"auto\"\n").into_bytes(),
            "3:10: syntax: unclosed table, expected `]`",
        ),
        // No line, column or field.
        (
            "run",
            "latin1.toml",
            latin1.clone(),
            "3:12: (file): the file is not UTF-8 text: byte 0xE9",
        ),
        // The matrix command asks whether a file is a matrix first: the same refusal.
        (
            "matrix",
            "latin1-matrix-input.toml",
            latin1,
            "3:12: (file): the file is not UTF-8 text: byte 0xE9",
        ),
        // Accepted: 80 minutes between the regions.
        (
            "run",
            "rtt.toml",
            format!("{head}[network]\nrtt = \"80mins\"\n").into_bytes(),
            "4:7: network.rtt: \"80mins\" (1h 20m) is longer than workload.op_timeout (2s",
        ),
    ];
    for (command, name, bytes, expected) in cases {
        let file = tmp.0.join(name);
        std::fs::write(&file, &bytes).unwrap();
        let started = Instant::now();
        let out = subcommand(&tmp.0, command)
            .arg(&file)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        let line = format!("{}:{expected}", file.display());
        assert!(
            stderr.contains(&line),
            "{name}: expected {line:?} in {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: refused only after {:?}",
            started.elapsed()
        );
    }
    assert!(run_dirs(&tmp.0).is_empty(), "{:?}", run_dirs(&tmp.0));
    assert!(leftovers(&tmp.0).is_empty(), "{:?}", leftovers(&tmp.0));
    let reports = std::fs::read_dir(tmp.0.join("reports")).map_or(0, |d| d.count());
    assert_eq!(reports, 0, "a run folder was written");
}
