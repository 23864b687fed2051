//! Ctrl-C at chosen moments of a real CLI run: the run's progress lines on stderr say which
//! stage it is in, and SIGINT goes out a set delay after a stage's line appears.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A short experiment with a fault healed during the workload, so every stage is reached:
/// bring-up, workload, heal and settle, teardown.
pub const SHORT: &str = r#"
posture = "active-passive-async"
duration = "2s"
settle = "600ms"
[workload]
rate_per_s = 100
[[faults]]
kind = "partition"
links = ["replication"]
at = "500ms"
heal_at = "1500ms"
"#;

/// The stages' progress lines (see `Stage::describe`), in order.
pub const STAGES: [&str; 4] = [
    "bringing up the stack",
    "workload and faults",
    "healing and settling",
    "tearing down",
];

/// What one interrupted run did.
pub struct Interrupted {
    /// Exit code.
    pub code: Option<i32>,
    /// The last stage line seen before SIGINT was sent.
    pub stage_seen: Option<&'static str>,
    /// Everything it wrote on stderr.
    pub stderr: String,
}

/// Runs `cmd` (which must pipe stderr and not use `--quiet`), sends SIGINT `delay` after the
/// line of `stage` appears, and waits (at most 60 s) for it to exit.
pub async fn interrupt(
    mut cmd: tokio::process::Command,
    stage: &'static str,
    delay: Duration,
) -> Interrupted {
    let mut child = cmd.spawn().expect("spawn regiondrill");
    let pid = child.id().expect("pid") as i32;
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let mut stderr = String::new();
    let mut seen = None;
    let mut sent = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("the run neither reached the stage nor exited within 90 s");
        let Ok(Some(line)) = line else { break };
        stderr.push_str(&line);
        stderr.push('\n');
        if sent {
            continue;
        }
        if let Some(s) = STAGES.iter().find(|s| line.contains(*s)) {
            seen = Some(*s);
        }
        if line.contains(stage) {
            tokio::time::sleep(delay).await;
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGINT) };
            sent = true;
        }
    }
    assert!(sent, "the run never reached \"{stage}\":\n{stderr}");
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("did not exit within 60 s of Ctrl-C")
        .expect("wait");
    Interrupted {
        code: status.code(),
        stage_seen: seen,
        stderr,
    }
}

/// The one run folder under `reports`, which must be marked incomplete (and have no
/// results.json); returns its `incomplete.json` reason.
pub fn incomplete_reason(reports: &Path) -> String {
    let folders: Vec<PathBuf> = std::fs::read_dir(reports)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert_eq!(folders.len(), 1, "one run folder expected: {folders:?}");
    let dir = &folders[0];
    assert!(
        !dir.join("results.json").exists(),
        "an interrupted run must not have a verdict: {}",
        dir.display()
    );
    let marker: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("incomplete.json"))
            .unwrap_or_else(|e| panic!("{}: no incomplete.json: {e}", dir.display())),
    )
    .expect("incomplete.json is JSON");
    assert_eq!(marker["interrupted"], true, "{marker}");
    marker["reason"].as_str().expect("reason").to_string()
}

/// Whether an interruption's reason names the stage seen when SIGINT was sent, or the next
/// one (the signal can land in the instant the run moves on).
pub fn names_stage(reason: &str, seen: Option<&str>) -> bool {
    let Some(seen) = seen else { return true };
    let i = STAGES.iter().position(|s| *s == seen).expect("a stage");
    let next = STAGES.get(i + 1).copied();
    // After teardown comes "checking": still the end of the run.
    reason.contains(seen) || next.is_some_and(|n| reason.contains(n)) || reason.contains("checking")
}
