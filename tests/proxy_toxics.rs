//! Real bytes through real sockets, with toxics set by `toxiproxy_rust` (blocking; it runs on
//! a blocking thread) or `noxious-client`, against the built-in fault proxy.

use crate::support::{self, connect, read_all, round_trip};
use regiondrill::proxy::{
    Direction, FaultProxy, Link, Partition, ProxyServer, ProxySpec, Stream, ToxiproxyClient,
};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use toxiproxy_rust::proxy::Proxy;

/// Starts a built-in server and a proxy `name` → `upstream`; returns the server and the
/// proxy's listen address.
async fn proxy_to(upstream: std::net::SocketAddr) -> (ProxyServer, String) {
    let server = FaultProxy::built_in().await.unwrap();
    let client = ToxiproxyClient::new(server.url());
    let info = client
        .create_proxy(&ProxySpec {
            name: "link".into(),
            listen: "127.0.0.1:0".into(),
            upstream: upstream.to_string(),
            enabled: true,
        })
        .await
        .unwrap();
    (server, info.listen)
}

/// Runs `f` with `toxiproxy_rust`'s handle of proxy `link`, on a blocking thread.
async fn with_tp<T: Send + 'static>(
    server: &ProxyServer,
    f: impl FnOnce(Proxy) -> T + Send + 'static,
) -> T {
    let addr = server.addr();
    tokio::task::spawn_blocking(move || {
        let client = toxiproxy_rust::client::Client::new(addr);
        f(client.find_proxy("link").expect("find_proxy"))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_toxic_adds_almost_nothing() {
    let echo = support::echo_server().await;
    let (_server, listen) = proxy_to(echo.addr).await;
    let mut s = connect(&listen).await;
    round_trip(&mut s, 64).await;
    let mut rtts: Vec<_> = Vec::new();
    for _ in 0..50 {
        rtts.push(round_trip(&mut s, 64).await);
    }
    rtts.sort();
    assert!(
        rtts[25] < Duration::from_millis(5),
        "p50 round trip {:?}",
        rtts[25]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_40ms_each_way_adds_at_least_80ms_to_a_round_trip() {
    let echo = support::echo_server().await;
    let (server, listen) = proxy_to(echo.addr).await;
    with_tp(&server, |p| {
        p.with_latency("upstream".into(), 40, 0, 1.0)
            .with_latency("downstream".into(), 40, 0, 1.0);
    })
    .await;
    let mut s = connect(&listen).await;
    for _ in 0..5 {
        let rtt = round_trip(&mut s, 100).await;
        assert!(
            rtt >= Duration::from_millis(80),
            "round trip {rtt:?} < 80 ms"
        );
        assert!(
            rtt < Duration::from_millis(130),
            "round trip {rtt:?} far above 80 ms"
        );
    }
    // One way only: half of it.
    with_tp(&server, |p| p.delete_all_toxics().unwrap()).await;
    with_tp(&server, |p| {
        p.with_latency("downstream".into(), 40, 0, 1.0);
    })
    .await;
    let rtt = round_trip(&mut s, 100).await;
    assert!(
        rtt >= Duration::from_millis(40) && rtt < Duration::from_millis(80),
        "{rtt:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_rtt_is_the_round_trip_and_pipelined_chunks_do_not_queue() {
    let echo = support::echo_server().await;
    let (server, listen) = proxy_to(echo.addr).await;
    let link = Link::new(ToxiproxyClient::new(server.url()), "link");
    link.set_rtt(Duration::from_millis(60), Duration::ZERO)
        .await
        .unwrap();
    let mut s = connect(&listen).await;
    let rtt = round_trip(&mut s, 10).await;
    assert!(
        rtt >= Duration::from_millis(60) && rtt < Duration::from_millis(100),
        "{rtt:?}"
    );
    // Ten writes 5 ms apart: each arrives ~60 ms after it was sent, not 60 ms after the
    // previous one (the reader keeps reading while the writer holds chunks back).
    let (mut r, mut w) = s.into_split();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for _ in 0..10 {
            w.write_all(&[1u8; 10]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        w
    });
    let mut got = vec![0u8; 100];
    r.read_exact(&mut got).await.unwrap();
    let total = start.elapsed();
    let _w = writer.await.unwrap();
    assert!(
        total < Duration::from_millis(60 + 50 + 40),
        "ten pipelined chunks took {total:?}"
    );
    link.clear_rtt().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_stalls_and_heals() {
    let echo = support::echo_server().await;
    let (server, listen) = proxy_to(echo.addr).await;
    let mut s = connect(&listen).await;
    round_trip(&mut s, 10).await;
    with_tp(&server, |p| {
        p.with_timeout("downstream".into(), 0, 1.0)
            .with_timeout("upstream".into(), 0, 1.0);
    })
    .await;
    s.write_all(b"hello").await.unwrap();
    let (got, end) = read_all(&mut s, Duration::from_millis(300)).await;
    assert!(
        got.is_empty() && end.is_none(),
        "black hole let {got:?} / {end:?} through"
    );
    // A new connection is accepted but stalls too.
    let mut s2 = connect(&listen).await;
    s2.write_all(b"x").await.unwrap();
    let (got, end) = read_all(&mut s2, Duration::from_millis(200)).await;
    assert!(got.is_empty() && end.is_none());
    // Heal: the connections that carried the partition are closed (their streams have holes);
    // new ones work.
    with_tp(&server, |p| p.delete_all_toxics().unwrap()).await;
    let (_, end) = read_all(&mut s, Duration::from_secs(2)).await;
    assert!(
        end.is_some(),
        "healed black-holed connection should be closed"
    );
    let mut s3 = connect(&listen).await;
    let rtt = round_trip(&mut s3, 10).await;
    assert!(rtt < Duration::from_millis(50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_closes_a_silent_stream_after_its_timeout() {
    let echo = support::echo_server().await;
    let (server, listen) = proxy_to(echo.addr).await;
    with_tp(&server, |p| {
        p.with_timeout("downstream".into(), 200, 1.0);
    })
    .await;
    let mut s = connect(&listen).await;
    let t = Instant::now();
    s.write_all(b"ping").await.unwrap();
    let (got, end) = read_all(&mut s, Duration::from_secs(2)).await;
    let took = t.elapsed();
    assert!(got.is_empty());
    assert!(end.is_some(), "not closed");
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_millis(600),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_partition_drops_only_that_direction() {
    let echo = support::echo_server().await;
    let (server, listen) = proxy_to(echo.addr).await;
    let link = Link::new(ToxiproxyClient::new(server.url()), "link");
    link.partition(Partition::BlackHole(Direction::Only(Stream::Upstream)))
        .await
        .unwrap();
    let info = link.info().await.unwrap();
    assert_eq!(info.toxics.len(), 1);
    assert_eq!(info.toxics[0].stream, "upstream");
    let mut s = connect(&listen).await;
    s.write_all(b"lost").await.unwrap();
    let (got, _) = read_all(&mut s, Duration::from_millis(200)).await;
    assert!(got.is_empty(), "upstream cut, yet the echo came back");
    link.heal().await.unwrap();
    let mut s = connect(&listen).await;
    round_trip(&mut s, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_refuses_and_closes_then_comes_back_on_the_same_port() {
    let echo = support::echo_server().await;
    let (server, listen) = proxy_to(echo.addr).await;
    let mut open = connect(&listen).await;
    round_trip(&mut open, 10).await;
    with_tp(&server, |p| p.disable().unwrap()).await;
    let refused = tokio::net::TcpStream::connect(&listen).await;
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    let (_, end) = read_all(&mut open, Duration::from_secs(1)).await;
    assert!(
        end.is_some(),
        "open connection survived the proxy going down"
    );
    assert_eq!(server.open_connections().await, 0);
    with_tp(&server, |p| p.enable().unwrap()).await;
    let mut s = connect(&listen).await;
    round_trip(&mut s, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_peer_resets_the_connection() {
    let echo = support::echo_server().await;
    let (server, listen) = proxy_to(echo.addr).await;
    let mut s = connect(&listen).await;
    round_trip(&mut s, 10).await;
    // toxiproxy_rust has no reset_peer helper and noxious-client cannot parse it: raw HTTP.
    let resp = reqwest::Client::new()
        .post(format!("{}/proxies/link/toxics", server.url()))
        .body(r#"{"type":"reset_peer","attributes":{"timeout":100}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let t = Instant::now();
    s.write_all(b"trigger").await.unwrap();
    let (got, end) = read_all(&mut s, Duration::from_secs(2)).await;
    assert!(got.is_empty(), "data after the trigger should be swallowed");
    let err = end
        .expect("connection not ended")
        .expect_err("expected a reset, got a clean close");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert!(
        t.elapsed() >= Duration::from_millis(95),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_caps_the_rate() {
    let bytes = 400_000;
    let src = support::source_server(bytes).await;
    let (server, listen) = proxy_to(src.addr).await;
    with_tp(&server, |p| {
        p.with_bandwidth("downstream".into(), 1000, 1.0); // 1000 KB/s = 1 MB/s
    })
    .await;
    let mut s = connect(&listen).await;
    let t = Instant::now();
    let (got, end) = read_all(&mut s, Duration::from_secs(5)).await;
    let took = t.elapsed();
    assert!(matches!(end, Some(Ok(()))));
    assert_eq!(got, support::pattern(bytes));
    let rate = bytes as f64 / took.as_secs_f64();
    assert!(
        rate <= 1_050_000.0,
        "rate {rate:.0} B/s above the 1 MB/s cap"
    );
    assert!(rate >= 800_000.0, "rate {rate:.0} B/s far below the cap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_data_closes_after_n_bytes() {
    let src = support::source_server(50_000).await;
    let (server, listen) = proxy_to(src.addr).await;
    with_tp(&server, |p| {
        p.with_limit_data("downstream".into(), 1234, 1.0);
    })
    .await;
    let mut s = connect(&listen).await;
    let (got, end) = read_all(&mut s, Duration::from_secs(2)).await;
    assert!(end.is_some());
    assert_eq!(got, support::pattern(1234));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slicer_delivers_everything_in_small_pieces() {
    let src = support::source_server(20_000).await;
    let (server, listen) = proxy_to(src.addr).await;
    with_tp(&server, |p| {
        p.with_slicer("downstream".into(), 100, 20, 1000, 1.0);
    })
    .await;
    let mut s = connect(&listen).await;
    let t = Instant::now();
    let mut reads = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        assert!(n <= 20_000);
        reads += 1;
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, support::pattern(20_000));
    // ~200 slices 1 ms apart.
    assert!(reads > 50, "only {reads} reads");
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_close_delays_the_close() {
    let src = support::source_server(10).await;
    let (server, listen) = proxy_to(src.addr).await;
    with_tp(&server, |p| {
        p.with_slow_close("downstream".into(), 300, 1.0);
    })
    .await;
    let mut s = connect(&listen).await;
    let t = Instant::now();
    let (got, end) = read_all(&mut s, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 10);
    assert!(matches!(end, Some(Ok(()))));
    assert!(
        t.elapsed() >= Duration::from_millis(290),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_latency_mid_stream_loses_no_bytes() {
    let echo = support::echo_server().await;
    let (server, listen) = proxy_to(echo.addr).await;
    let client = ToxiproxyClient::new(server.url());
    let link = Link::new(client, "link");
    link.set_rtt(Duration::from_millis(400), Duration::ZERO)
        .await
        .unwrap();
    let s = connect(&listen).await;
    let (mut r, mut w) = s.into_split();
    let sent = support::pattern(300_000);
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        for piece in to_send.chunks(3000) {
            w.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        w
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    link.clear_rtt().await.unwrap();
    let mut got = vec![0u8; sent.len()];
    tokio::time::timeout(Duration::from_secs(5), r.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(
        got == sent,
        "bytes lost or reordered when the toxic was removed"
    );
    let _ = writer.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxicity_zero_never_applies() {
    let echo = support::echo_server().await;
    let (server, listen) = proxy_to(echo.addr).await;
    with_tp(&server, |p| {
        p.with_latency("downstream".into(), 500, 0, 0.0);
    })
    .await;
    let mut s = connect(&listen).await;
    assert!(round_trip(&mut s, 10).await < Duration::from_millis(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_are_held_and_closed_cleanly() {
    let echo = support::echo_server().await;
    let (server, listen) = proxy_to(echo.addr).await;
    let mut conns = Vec::new();
    for _ in 0..200 {
        conns.push(connect(&listen).await);
    }
    for s in conns.iter_mut() {
        round_trip(s, 8).await;
    }
    assert_eq!(server.open_connections().await, 200);
    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.open_connections().await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.open_connections().await, 0);
    server.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(&listen).await.is_err(),
        "proxy port still open after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noxious_client_drives_toxics_on_open_connections() {
    use noxious_client::{Client, StreamDirection, Toxic, ToxicKind};
    let echo = support::echo_server().await;
    let (server, listen) = proxy_to(echo.addr).await;
    let client = Client::new(&server.url());
    let proxy = client.proxy("link").await.unwrap();
    let mut s = connect(&listen).await;
    assert!(round_trip(&mut s, 10).await < Duration::from_millis(30));
    let toxic = Toxic {
        kind: ToxicKind::Latency {
            latency: 50,
            jitter: 0,
        },
        name: "slow_up".into(),
        toxicity: 1.0,
        direction: StreamDirection::Upstream,
    };
    let added = proxy.add_toxic(&toxic).await.unwrap();
    assert_eq!(
        added, toxic,
        "noxious sends `direction`; the toxic must land on upstream"
    );
    let rtt = round_trip(&mut s, 10).await;
    assert!(
        rtt >= Duration::from_millis(50) && rtt < Duration::from_millis(90),
        "{rtt:?}"
    );
    let updated = proxy
        .update_toxic(
            "slow_up",
            1.0,
            ToxicKind::Latency {
                latency: 100,
                jitter: 0,
            },
            StreamDirection::Upstream,
        )
        .await
        .unwrap();
    assert_eq!(
        updated.kind,
        ToxicKind::Latency {
            latency: 100,
            jitter: 0
        }
    );
    let rtt = round_trip(&mut s, 10).await;
    assert!(rtt >= Duration::from_millis(100), "{rtt:?}");
    assert_eq!(proxy.toxics().await.unwrap().len(), 1);
    proxy.remove_toxic("slow_up").await.unwrap();
    assert!(round_trip(&mut s, 10).await < Duration::from_millis(30));
    client.reset_state().await.unwrap();
}

/// Finding 5 on real bytes: toxics added with no attributes (as toxiproxy-python and
/// Toxiproxy's own tests add them) act with Toxiproxy's defaults: `latency` adds nothing,
/// `timeout` is a black hole, `reset_peer` resets at the first data, `limit_data` closes at it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxics_added_without_attributes_act_with_toxiproxy_defaults() {
    let echo = support::echo_server().await;
    let (server, listen) = proxy_to(echo.addr).await;
    let http = reqwest::Client::new();
    let toxics = format!("{}/proxies/link/toxics", server.url());
    let add = |body: &'static str| {
        let req = http.post(&toxics).body(body);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            assert_eq!(status, 200, "{body}: {}", resp.text().await.unwrap());
        }
    };
    let remove = |name: &'static str| {
        let req = http.delete(format!("{toxics}/{name}"));
        async move { assert_eq!(req.send().await.unwrap().status(), 204) }
    };

    add(r#"{"type":"latency","attributes":{}}"#).await;
    let mut s = connect(&listen).await;
    let rtt = round_trip(&mut s, 10).await;
    assert!(rtt < Duration::from_millis(50), "{rtt:?}");
    remove("latency_downstream").await;

    add(r#"{"type":"timeout"}"#).await;
    let mut s = connect(&listen).await;
    s.write_all(b"hello").await.unwrap();
    let (got, end) = read_all(&mut s, Duration::from_millis(300)).await;
    assert!(
        got.is_empty() && end.is_none(),
        "timeout 0 should black-hole: {got:?} / {end:?}"
    );
    remove("timeout_downstream").await;

    add(r#"{"type":"reset_peer"}"#).await;
    let mut s = connect(&listen).await;
    let t = Instant::now();
    s.write_all(b"trigger").await.unwrap();
    let (got, end) = read_all(&mut s, Duration::from_secs(2)).await;
    assert!(got.is_empty(), "{got:?}");
    let err = end
        .expect("connection not ended")
        .expect_err("expected a reset, got a clean close");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    remove("reset_peer_downstream").await;

    add(r#"{"type":"limit_data","attributes":null}"#).await;
    let mut s = connect(&listen).await;
    s.write_all(b"abc").await.unwrap();
    let (got, end) = read_all(&mut s, Duration::from_secs(2)).await;
    assert!(got.is_empty() && end.is_some(), "{got:?} / {end:?}");
}
