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

/// How one app instance is wired.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// Its region.
    pub region: String,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Where writes go (the primary, maybe through a link).
    pub write_db: String,
    /// Where reads go (the region's own database when it has one).
    pub read_db: String,
    /// The region's Redis.
    pub redis: String,
    /// Cache TTL in ms.
    pub cache_ttl_ms: u64,
    /// Per-request deadline in ms.
    pub request_timeout_ms: u64,
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

/// Starts an app and waits until `/health` answers (any status: a degraded dependency is the
/// app's business, not a start-up failure).
pub async fn start(
    name: &str,
    bin: &Path,
    s: &AppSettings,
    log: &Path,
) -> Result<NodeProcess, StackError> {
    let mut cmd = process::command(bin, log, None).map_err(|e| StackError::io(log, e))?;
    cmd.arg("serve")
        .args(["--region", &s.region])
        .args(["--listen", &format!("127.0.0.1:{}", s.port)])
        .args(["--write-db", &s.write_db])
        .args(["--read-db", &s.read_db])
        .args(["--redis", &s.redis])
        .args(["--cache-ttl-ms", &s.cache_ttl_ms.to_string()])
        .args(["--request-timeout-ms", &s.request_timeout_ms.to_string()]);
    let mut proc = NodeProcess::spawn(name, cmd, log)?;
    let url = format!("http://127.0.0.1:{}/health", s.port);
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
