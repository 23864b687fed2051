//! Loopback servers and timing helpers shared by the integration tests.

#![allow(dead_code)]

pub mod contract_app;
pub mod interrupt;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A server that echoes every byte back, on a free loopback port. Aborted on drop.
pub struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Echo server.
pub async fn echo_server() -> Server {
    serve(|mut s| async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await
}

/// A server that writes `bytes` bytes (0, 1, 2, … mod 251) to each client, then closes.
pub async fn source_server(bytes: usize) -> Server {
    serve(move |mut s| async move {
        let data = pattern(bytes);
        let _ = s.write_all(&data).await;
        let _ = s.shutdown().await;
    })
    .await
}

/// The byte pattern [`source_server`] sends.
pub fn pattern(bytes: usize) -> Vec<u8> {
    (0..bytes).map(|i| (i % 251) as u8).collect()
}

async fn serve<F, Fut>(handler: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = std::sync::Arc::new(handler);
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            conns.spawn((handler)(s));
        }
    });
    Server { addr, task }
}

/// Connects with TCP_NODELAY.
pub async fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_nodelay(true).unwrap();
    s
}

/// One request/response round trip of `n` bytes through an echo path.
pub async fn round_trip(s: &mut TcpStream, n: usize) -> Duration {
    let msg = vec![7u8; n];
    let mut back = vec![0u8; n];
    let t = Instant::now();
    s.write_all(&msg).await.unwrap();
    s.read_exact(&mut back).await.unwrap();
    t.elapsed()
}

/// Reads until EOF or error, at most `limit` time; returns bytes read and whether EOF was seen.
pub async fn read_all(
    s: &mut TcpStream,
    limit: Duration,
) -> (Vec<u8>, Option<std::io::Result<()>>) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (out, None),
            Ok(Ok(0)) => return (out, Some(Ok(()))),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => return (out, Some(Err(e))),
        }
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "regiondrill-test-{tag}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An active-passive experiment of `duration` with a region kill at `kill_at`.
pub fn region_loss(posture: &str, duration: &str, kill_at: &str) -> String {
    format!(
        r#"
posture = "{posture}"
duration = "{duration}"
settle = "1s"
[workload]
rate_per_s = 150
[failover]
interval = "300ms"
threshold = 2
dns_ttl = "500ms"
[[faults]]
kind = "kill_region"
region = "us"
at = "{kill_at}"
"#
    )
}

/// Async replication with the replication link black-holed at 2 s and `us` killed at 5 s:
/// the writes acknowledged in between are on no replica, so they are lost.
pub const ASYNC_PARTITION_THEN_KILL: &str = r#"
posture = "active-passive-async"
duration = "8s"
settle = "1s"
[workload]
rate_per_s = 150
[failover]
interval = "300ms"
threshold = 2
dns_ttl = "500ms"
[[faults]]
kind = "partition"
links = ["replication"]
at = "2s"
[[faults]]
kind = "kill_region"
region = "us"
at = "5s"
"#;

/// The physics of [`ASYNC_PARTITION_THEN_KILL`], from the history: every write acknowledged
/// from 20 ms after the partition until the kill is reported lost (and there are over 150),
/// and nothing acknowledged more than 50 ms before the partition is. Returns the lost ids
/// and the partition's start (ns).
pub fn assert_loses_the_partition_window(
    out: &regiondrill::run::RunOutput,
) -> (std::collections::BTreeSet<u64>, u64) {
    use regiondrill::history::{EventKind, OpKind};
    let f = &out.findings;
    assert!(f.lost_writes.checked);
    let started = |i: usize| {
        out.history.events.iter().find_map(|e| match e.kind {
            EventKind::FaultStarted { index, .. } if index == i => Some(e.at_ns),
            _ => None,
        })
    };
    let (partition_at, kill_at) = (started(0).unwrap(), started(1).unwrap());
    let lost: std::collections::BTreeSet<u64> = f.lost_writes.ids.iter().copied().collect();
    let window: std::collections::BTreeSet<u64> = out
        .history
        .ops
        .iter()
        .filter(|o| o.kind == OpKind::Write && o.outcome.is_ok())
        .filter(|o| o.invoke_ns >= partition_at + 20_000_000 && o.complete_ns <= kill_at)
        .map(|o| o.id)
        .collect();
    assert!(
        window.len() > 150,
        "only {} writes acknowledged in the partition window",
        window.len()
    );
    let missing: Vec<_> = window.difference(&lost).collect();
    assert!(
        missing.is_empty(),
        "acknowledged during the partition but not reported lost: {missing:?}"
    );
    for id in &lost {
        let op = out.history.ops.iter().find(|o| o.id == *id).unwrap();
        assert!(
            op.complete_ns + 50_000_000 >= partition_at,
            "write {id} acked {}ms before the partition reported lost",
            (partition_at - op.complete_ns) / 1_000_000
        );
    }
    (lost, partition_at)
}

/// Runs an experiment given as TOML text on the native backend; its run folder goes to a
/// temporary directory that is removed with the returned guard.
pub async fn run_toml(
    name: &str,
    toml: &str,
    keep_stack_files: bool,
) -> (regiondrill::run::RunOutput, TempDir) {
    run_toml_on(
        regiondrill::stack::BackendChoice::Native,
        name,
        toml,
        keep_stack_files,
    )
    .await
}

/// Whether a Docker engine answers; when none does, says so on stderr (the test then skips).
pub async fn docker_or_skip(test: &str) -> bool {
    if regiondrill::stack::docker::engine::Engine::available().await {
        return true;
    }
    eprintln!("SKIPPED {test}: no Docker engine answers");
    false
}

/// [`run_toml`] on a chosen backend.
pub async fn run_toml_on(
    backend: regiondrill::stack::BackendChoice,
    name: &str,
    toml: &str,
    keep_stack_files: bool,
) -> (regiondrill::run::RunOutput, TempDir) {
    let out = TempDir::new(name);
    let path = out.0.join(format!("{name}.toml"));
    std::fs::write(&path, toml).unwrap();
    let exp = regiondrill::experiment::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let opts = regiondrill::run::RunOptions {
        backend,
        out: out.0.clone(),
        keep_stack_files,
        images: regiondrill::stack::docker::images::ImageChoice::Auto,
        observer: None,
        target: None,
    };
    let output = regiondrill::run::run(&exp, &opts, &tokio_util::sync::CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("{name} could not run: {e}"));
    (output, out)
}

/// A shipped experiment's text with its schedule shortened (`(from, to)` replacements of whole
/// lines), so the test runs the shipped stack, posture and vantage points in less time.
pub fn shipped_shortened(file: &str, lines: &[(&str, &str)]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(file);
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in lines {
        let from = format!("\n{from}\n");
        assert!(text.contains(&from), "{file} has no line {from:?}");
        text = text.replace(&from, &format!("\n{to}\n"));
    }
    text
}

/// The shipped `three-region-region-loss.toml` shortened: us lost at 3 s of a 9 s run (2 s
/// settle) instead of at 5 s of 16 s, back at 7 s.
pub fn three_region_loss_shortened() -> String {
    shipped_shortened(
        "experiments/three-region-region-loss.toml",
        &[
            ("duration = \"16s\"", "duration = \"9s\""),
            ("settle = \"3s\"", "settle = \"2s\""),
            ("at = \"5s\"", "at = \"3s\""),
            ("heal_at = \"11s\"", "heal_at = \"7s\""),
        ],
    )
}

/// Runs a shipped experiment file (`experiments/…`, from the repository's root) as it is, on
/// `backend`, its run folder in a temporary directory.
pub async fn run_shipped_on(
    backend: regiondrill::stack::BackendChoice,
    file: &str,
) -> (regiondrill::run::RunOutput, TempDir) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(file);
    let exp = regiondrill::experiment::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let out = TempDir::new("shipped");
    let opts = regiondrill::run::RunOptions {
        backend,
        out: out.0.clone(),
        keep_stack_files: false,
        images: regiondrill::stack::docker::images::ImageChoice::Auto,
        observer: None,
        target: None,
    };
    let run = regiondrill::run::run(&exp, &opts, &tokio_util::sync::CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    (run, out)
}

/// Processes whose environment carries `REGIONDRILL_TMP=<tmp>/runs` (children inherit the
/// CLI's environment) or whose command line names `tmp` (PostgreSQL's workers rewrite their
/// titles over their environment; their postmaster's command line names its data directory).
pub fn leftovers(tmp: &std::path::Path) -> Vec<String> {
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
