//! Fault proxy benchmark: prints each figure next to its target.
//!
//! - added round trip with no toxic (p50 via proxy − p50 direct; target ≤ 100 µs)
//! - latency accuracy: 40 ms on one stream, |p50 added − 40 ms| (target ≤ 1 ms)
//! - throughput through one proxy relative to direct loopback (target ≥ 70 %)
//! - 1,000 concurrent connections held, used and closed cleanly
//! - the cost of counting personal-data tokens (`[residency]` runs): throughput of the copy
//!   path with the counter against the same path without it (target: at most 10 % less), on
//!   a payload carrying a token every 4 KiB, whose count is checked
//!
//! Run with `just bench` or `cargo bench --bench proxy`.

use hdrhistogram::Histogram;
use regiondrill::proxy::{FaultProxy, ProxySpec, Stream, Toxic, ToxicKind, ToxiproxyClient};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ROUND_TRIPS: usize = 5_000;
const LATENCY_ROUND_TRIPS: usize = 100;
const THROUGHPUT_BYTES: usize = 1 << 30;
const CONNECTIONS: usize = 1_000;
const COUNTING_BYTES: usize = 512 << 20;
const COUNTING_ROUNDS: usize = 5;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let echo = echo_server().await;
    let sink = sink_server().await;
    let server = FaultProxy::built_in().await.unwrap();
    let client = ToxiproxyClient::new(server.url());
    let echo_proxy = create(&client, "echo", echo).await;
    let sink_proxy = create(&client, "sink", sink).await;

    println!(
        "fault proxy benchmark (built-in server, loopback, {} cores)",
        cores()
    );

    // 1. Added round trip, no toxic.
    let direct = rtt_histogram(echo, ROUND_TRIPS).await;
    let proxied = rtt_histogram(echo_proxy, ROUND_TRIPS).await;
    let added_us = proxied.value_at_quantile(0.5) as f64 - direct.value_at_quantile(0.5) as f64;
    report(
        "added round trip, no toxic (p50)",
        format!(
            "{added_us:.0} µs (direct p50 {} µs, proxied p50 {} µs, p99 {} µs)",
            direct.value_at_quantile(0.5),
            proxied.value_at_quantile(0.5),
            proxied.value_at_quantile(0.99)
        ),
        "≤ 100 µs",
        added_us <= 100.0,
    );

    // 2. Latency accuracy at 40 ms.
    let toxic = Toxic::new(
        ToxicKind::Latency(regiondrill::proxy::toxic::Latency {
            latency: 40,
            jitter: 0,
        }),
        Stream::Downstream,
    );
    client.add_toxic("echo", &toxic).await.unwrap();
    let delayed = rtt_histogram(echo_proxy, LATENCY_ROUND_TRIPS).await;
    client.remove_toxic("echo", &toxic.name).await.unwrap();
    let added_ms =
        (delayed.value_at_quantile(0.5) as f64 - direct.value_at_quantile(0.5) as f64) / 1000.0;
    let error_ms = (added_ms - 40.0).abs();
    report(
        "latency 40 ms: p50 added",
        format!(
            "{added_ms:.2} ms (error {error_ms:.2} ms, max {:.2} ms)",
            delayed.max() as f64 / 1000.0
        ),
        "|p50 − 40 ms| ≤ 1 ms",
        error_ms <= 1.0,
    );

    // 3. Throughput.
    let direct_bps = throughput(sink, THROUGHPUT_BYTES).await;
    let proxied_bps = throughput(sink_proxy, THROUGHPUT_BYTES).await;
    let share = proxied_bps / direct_bps * 100.0;
    report(
        "throughput through one proxy",
        format!(
            "{:.0} MB/s vs {:.0} MB/s direct = {share:.0} %",
            proxied_bps / 1e6,
            direct_bps / 1e6
        ),
        "≥ 70 % of direct",
        share >= 70.0,
    );

    // 4. Many connections.
    let t = Instant::now();
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let s = TcpStream::connect(echo_proxy).await.unwrap();
        s.set_nodelay(true).unwrap();
        conns.push(s);
    }
    for s in conns.iter_mut() {
        s.write_all(b"ping").await.unwrap();
    }
    for s in conns.iter_mut() {
        let mut b = [0u8; 4];
        s.read_exact(&mut b).await.unwrap();
    }
    let opened = t.elapsed();
    let held = server.open_connections().await;
    let t = Instant::now();
    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.open_connections().await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let left = server.open_connections().await;
    report(
        "1,000 concurrent connections",
        format!(
            "{held} held, opened+echoed in {:.0} ms, all closed in {:.0} ms, {left} left",
            opened.as_secs_f64() * 1e3,
            t.elapsed().as_secs_f64() * 1e3
        ),
        "1,000 held, 0 left",
        held == CONNECTIONS && left == 0,
    );

    // 5. Token counting: the copy path (a 0 ms latency toxic keeps `splice` out) through two
    // fresh servers alike in everything but the meter (the first server carries the state of
    // the sections above), alternating, median of each.
    let uncounted = FaultProxy::built_in().await.unwrap();
    let counting = FaultProxy::built_in().await.unwrap();
    counting.token_meter().enable();
    let uncounted_client = ToxiproxyClient::new(uncounted.url());
    let counting_client = ToxiproxyClient::new(counting.url());
    let plain_copy = create(&uncounted_client, "sink-copy", sink).await;
    let counted_copy = create(&counting_client, "sink-counted", sink).await;
    let zero = Toxic::new(
        ToxicKind::Latency(regiondrill::proxy::toxic::Latency {
            latency: 0,
            jitter: 0,
        }),
        Stream::Upstream,
    );
    uncounted_client
        .add_toxic("sink-copy", &zero)
        .await
        .unwrap();
    counting_client
        .add_toxic("sink-counted", &zero)
        .await
        .unwrap();
    let payload = token_payload(256 * 1024);
    let (mut plain, mut counted) = (Vec::new(), Vec::new());
    for _ in 0..COUNTING_ROUNDS {
        plain.push(throughput_of(plain_copy, COUNTING_BYTES, &payload).await);
        counted.push(throughput_of(counted_copy, COUNTING_BYTES, &payload).await);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (plain, counted) = (median(&mut plain), median(&mut counted));
    let cost = (1.0 - counted / plain) * 100.0;
    let sent_tokens =
        (COUNTING_BYTES / payload.len() * (payload.len() / 4096) * COUNTING_ROUNDS) as u64;
    let counts = counting.token_meter().counts();
    let found: u64 = counts.values().flat_map(|m| m.values()).sum();
    report(
        "token counting: throughput cost",
        format!(
            "{cost:.1} % ({:.0} MB/s counted vs {:.0} MB/s copied without counting; {:.0} % of \
             the splice path's {:.0} MB/s; {found} of {sent_tokens} tokens counted)",
            counted / 1e6,
            plain / 1e6,
            counted / proxied_bps * 100.0,
            proxied_bps / 1e6
        ),
        "≤ 10 % of the same path's throughput, every token counted",
        cost <= 10.0 && found == sent_tokens,
    );
    // The scan alone, on one core, over the same payload: what counting costs per byte,
    // without the loaded host's noise between two runs of the whole path.
    let t = Instant::now();
    let mut scanned = 0usize;
    let mut meter = regiondrill::residency::TokenCounter::default();
    while scanned < COUNTING_BYTES {
        meter.feed(&payload);
        scanned += payload.len();
    }
    let scan_bps = scanned as f64 / t.elapsed().as_secs_f64();
    let implied = counted / scan_bps * 100.0;
    report(
        "token scan alone (one core)",
        format!(
            "{:.1} GB/s: at {:.0} MB/s through the proxy it takes {implied:.1} % of a core's time",
            scan_bps / 1e9,
            counted / 1e6
        ),
        "(explains the cost above)",
        meter.total() == (COUNTING_BYTES / payload.len() * (payload.len() / 4096)) as u64,
    );
    counting.shutdown().await;
    uncounted.shutdown().await;
    server.shutdown().await;
}

/// `len` bytes of text with a token (user 7) at every 4 KiB boundary's start, some of them
/// split across the 256 KiB writes' edges by the reads.
fn token_payload(len: usize) -> Vec<u8> {
    let token = regiondrill::residency::token(7, 1);
    let filler = b"lorem ipsum dolor sit amet, consectetur adipiscing elit; ";
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        if v.len() % 4096 == 0 {
            v.extend_from_slice(token.as_bytes());
        } else {
            let room = 4096 - v.len() % 4096;
            v.extend_from_slice(&filler[..filler.len().min(room)]);
        }
    }
    v.truncate(len);
    v
}

/// Bytes per second writing `bytes` of `payload`, repeated, to a counting sink.
async fn throughput_of(addr: SocketAddr, bytes: usize, payload: &[u8]) -> f64 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        s.write_all(payload).await.unwrap();
        sent += payload.len();
    }
    s.shutdown().await.unwrap();
    let mut done = [0u8; 1];
    s.read_exact(&mut done).await.unwrap();
    sent as f64 / t.elapsed().as_secs_f64()
}

fn report(what: &str, measured: String, target: &str, met: bool) {
    let verdict = if met { "met" } else { "MISSED" };
    println!(
        "  {what:<36} {measured}\n  {:<36} target {target}: {verdict}",
        ""
    );
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

async fn create(client: &ToxiproxyClient, name: &str, upstream: SocketAddr) -> SocketAddr {
    let spec = ProxySpec {
        name: name.into(),
        listen: "127.0.0.1:0".into(),
        upstream: upstream.to_string(),
        enabled: true,
    };
    client
        .create_proxy(&spec)
        .await
        .unwrap()
        .listen
        .parse()
        .unwrap()
}

/// Round trips of 64 bytes in µs.
async fn rtt_histogram(addr: SocketAddr, n: usize) -> Histogram<u64> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut h = Histogram::<u64>::new(3).unwrap();
    let msg = [1u8; 64];
    let mut back = [0u8; 64];
    for i in 0..n + 100 {
        let t = Instant::now();
        s.write_all(&msg).await.unwrap();
        s.read_exact(&mut back).await.unwrap();
        if i >= 100 {
            h.record(t.elapsed().as_micros() as u64).unwrap();
        }
    }
    h
}

/// Bytes per second writing `bytes` to a sink that counts them and answers with one byte.
async fn throughput(addr: SocketAddr, bytes: usize) -> f64 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let buf = vec![0u8; 256 * 1024];
    let t = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        s.write_all(&buf).await.unwrap();
        sent += buf.len();
    }
    s.shutdown().await.unwrap();
    let mut done = [0u8; 1];
    s.read_exact(&mut done).await.unwrap();
    sent as f64 / t.elapsed().as_secs_f64()
}

async fn echo_server() -> SocketAddr {
    serve(|mut s| async move {
        let _ = s.set_nodelay(true);
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    })
    .await
}

async fn sink_server() -> SocketAddr {
    serve(|mut s| async move {
        let mut buf = vec![0u8; 256 * 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                let _ = s.write_all(&[1]).await;
                return;
            }
        }
    })
    .await
}

async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(handler(s));
        }
    });
    addr
}
