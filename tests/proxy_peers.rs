//! Peer clients of the fault proxy's API written in other languages, against the built-in
//! server in this process: toxiproxy-python (PyPI 0.1.1) runs `tests/peers/toxiproxy_python.py`,
//! which drives every endpoint it offers and checks each fault on real bytes through a
//! loopback echo server.
//!
//! Without python3 or the module the test says SKIPPED, unless `REGIONDRILL_REQUIRE_PEERS` is
//! set (CI), when it fails with the command that installs them.

use crate::support;
use regiondrill::proxy::FaultProxy;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Set (CI) to make a missing peer client fail instead of skip.
const REQUIRE_PEERS: &str = "REGIONDRILL_REQUIRE_PEERS";
/// What installs toxiproxy-python (`stacks/deps.sh` does it on fresh machines).
const INSTALL: &str = "pip install toxiproxy-python==0.1.1 (or stacks/deps.sh --for test)";

/// python3 on PATH with `toxiproxy` importable, or why not.
fn python_with_toxiproxy() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let python = std::env::split_paths(&path)
        .map(|d| d.join("python3"))
        .find(|p| p.is_file())
        .ok_or_else(|| "python3 not on PATH (apt-get install python3)".to_string())?;
    let import = std::process::Command::new(&python)
        .args(["-c", "import toxiproxy"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !import.status.success() {
        return Err(format!(
            "{} cannot import toxiproxy: {}",
            python.display(),
            String::from_utf8_lossy(&import.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
        ));
    }
    Ok(python)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxiproxy_python_drives_every_endpoint_with_real_bytes() {
    let python = match python_with_toxiproxy() {
        Ok(p) => p,
        Err(why) => {
            if std::env::var_os(REQUIRE_PEERS).is_some() {
                panic!("{why}; {REQUIRE_PEERS} is set, so install it: {INSTALL}");
            }
            println!(
                "SKIPPED toxiproxy_python_drives_every_endpoint_with_real_bytes: {why} \
                 ({INSTALL})"
            );
            return;
        }
    };
    let server = FaultProxy::built_in().await.unwrap();
    let echo = support::echo_server().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/toxiproxy_python.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--api", &server.addr().to_string()])
        .args(["--echo", &echo.addr.to_string()])
        // requests honours proxy variables; the API is on loopback.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the toxiproxy-python script ran for over 120 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "toxiproxy-python script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Every step ran (a script that stopped early must not pass).
    for step in [
        "version",
        "create",
        "list_get",
        "latency",
        "timeout",
        "reset_peer",
        "bandwidth",
        "slow_close",
        "slicer",
        "limit_data",
        "invalid_toxic",
        "enable_disable",
        "reset",
        "populate",
        "destroy",
    ] {
        assert!(
            stdout.lines().any(|l| l == format!("ok {step}")),
            "step {step} did not pass:\n{stdout}\n{stderr}"
        );
    }
    // What the script left: nothing, as it said.
    let client = regiondrill::proxy::ToxiproxyClient::new(server.url());
    assert!(client.proxies().await.unwrap().is_empty());
}
