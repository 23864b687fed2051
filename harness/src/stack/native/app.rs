//! The sample app (`regiondrill-app`, from `stacks/app`) as a local process.

use crate::stack::StackError;
use crate::stack::process::{self, NodeProcess, ProcessError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable naming the app binary to run.
pub const APP_BIN_ENV: &str = "REGIONDRILL_APP_BIN";

/// Finds `regiondrill-app`: `REGIONDRILL_APP_BIN`, else beside the running binary (also one
/// level up, for test binaries in `target/*/deps`), else on `PATH`.
pub fn find() -> Result<PathBuf, StackError> {
    if let Some(p) = std::env::var_os(APP_BIN_ENV) {
        return Ok(PathBuf::from(p));
    }
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(d) = exe.parent() {
            dirs.push(d.to_path_buf());
            if let Some(up) = d.parent() {
                dirs.push(up.to_path_buf());
            }
        }
    }
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    dirs.into_iter()
        .map(|d| d.join("regiondrill-app"))
        .find(|p| p.is_file())
        .ok_or_else(|| StackError::Missing {
            what: "the sample app binary regiondrill-app".into(),
            looked: format!("${APP_BIN_ENV}, beside the regiondrill binary, and PATH"),
            install: "cargo build --release -p regiondrill-app (or set REGIONDRILL_APP_BIN)".into(),
        })
}

/// Runs `regiondrill-app migrate` against `dsn`.
pub async fn migrate(bin: &Path, dsn: &str, log: &Path) -> Result<(), StackError> {
    let args = [
        std::ffi::OsStr::new("migrate"),
        std::ffi::OsStr::new("--db"),
        std::ffi::OsStr::new(dsn),
    ];
    process::run_tool(
        "regiondrill-app migrate",
        bin,
        &args,
        log,
        None,
        Duration::from_secs(30),
    )
    .await?;
    Ok(())
}

/// Where libfaketime is, if installed (Debian's `libfaketime` package).
pub fn libfaketime() -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1");
    if debian.is_file() {
        return Some(debian);
    }
    std::fs::read_dir("/usr/lib")
        .ok()?
        .flatten()
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.is_file())
}

/// The environment that puts a program's wall clock under the offset in `file` (re-read on
/// every clock read), leaving its monotonic clock alone.
pub fn faketime_env(lib: &Path, file: &Path) -> Vec<(String, String)> {
    vec![
        ("LD_PRELOAD".into(), lib.display().to_string()),
        ("FAKETIME_TIMESTAMP_FILE".into(), file.display().to_string()),
        ("FAKETIME_NO_CACHE".into(), "1".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]
}

/// Starts an app on `127.0.0.1:port` with `args` (from [`crate::stack::Stack::app_args`])
/// and waits until `/health` answers (any status: a degraded dependency is the app's
/// business, not a start-up failure).
pub async fn start(
    name: &str,
    bin: &Path,
    port: u16,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
) -> Result<NodeProcess, StackError> {
    let mut cmd = process::command(bin, log, None).map_err(|e| StackError::io(log, e))?;
    cmd.arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut proc = NodeProcess::spawn(name, cmd, log)?;
    let url = format!("http://127.0.0.1:{port}/health");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("static client");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = proc.exited() {
            return Err(ProcessError::Failed {
                name: name.into(),
                status: format!("exited during start-up: {status}"),
                log_tail: proc.log_tail(15),
            }
            .into());
        }
        if http.get(&url).send().await.is_ok() {
            return Ok(proc);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ProcessError::Failed {
                name: name.into(),
                status: "no answer on /health after 15s".into(),
                log_tail: proc.log_tail(15),
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
