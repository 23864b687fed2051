//! Redis as a local process: one cache per region, no persistence.

use crate::stack::StackError;
use crate::stack::process::{self, NodeProcess, ProcessError};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Finds `redis-server` on `PATH`.
pub fn find() -> Result<PathBuf, StackError> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("redis-server"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| StackError::Missing {
            what: "redis-server".into(),
            looked: "PATH".into(),
            install: "apt-get install redis-server".into(),
        })
}

/// Starts `redis-server` on `127.0.0.1:port` (no persistence: a killed cache comes back
/// empty, as a real one would) and waits for PING.
pub async fn start(
    name: &str,
    bin: &Path,
    port: u16,
    dir: &Path,
    log: &Path,
) -> Result<NodeProcess, StackError> {
    std::fs::create_dir_all(dir).map_err(|e| StackError::io(dir, e))?;
    let mut cmd = process::command(bin, log, None).map_err(|e| StackError::io(log, e))?;
    cmd.arg("--port").arg(port.to_string());
    // Keep the command line as given (Redis rewrites its title by default), so operators and
    // tests can see which run a server belongs to.
    cmd.args([
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--set-proc-title",
        "no",
    ]);
    cmd.arg("--dir").arg(dir);
    let mut proc = NodeProcess::spawn(name, cmd, log)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = proc.exited() {
            return Err(ProcessError::Failed {
                name: name.into(),
                status: format!("exited during start-up: {status}"),
                log_tail: proc.log_tail(15),
            }
            .into());
        }
        if ping(port).await {
            return Ok(proc);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ProcessError::Failed {
                name: name.into(),
                status: "no PONG after 10s".into(),
                log_tail: proc.log_tail(15),
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether Redis on `127.0.0.1:port` answers PING within 500 ms.
pub async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await.ok()?;
        (&buf == b"+PONG\r\n").then_some(())
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Some(()))
    )
}

/// The URL apps use.
pub fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}
