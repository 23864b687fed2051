//! The `link_flap` fault's task against the built-in fault proxy, on real bytes: each down
//! window stops them, each up window and the heal let them through, and a stopped (or
//! dropped) task flaps no more.

use crate::support::{self, connect};
use regiondrill::fault::link_flap;
use regiondrill::proxy::{
    Direction, FaultProxy, Link, Partition, ProxyServer, ProxySpec, ToxiproxyClient,
};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};

/// Down and up windows: long enough for a probe to fall well inside one on 2 busy cores.
const DOWN: Duration = Duration::from_millis(800);
const UP: Duration = Duration::from_millis(800);
/// How long a probe waits for its echo; it starts 150 ms into a window, so it is over 250 ms
/// before the window ends.
const PROBE: Duration = Duration::from_millis(400);

/// A built-in fault proxy with a proxy `link` to a loopback echo server: the server, the
/// echo server, the link and its listen address.
async fn echo_link() -> (ProxyServer, support::Server, Link, String) {
    let echo = support::echo_server().await;
    let server = FaultProxy::built_in().await.unwrap();
    let client = ToxiproxyClient::new(server.url());
    let info = client
        .create_proxy(&ProxySpec {
            name: "link".into(),
            listen: "127.0.0.1:0".into(),
            upstream: echo.addr.to_string(),
            enabled: true,
        })
        .await
        .unwrap();
    (server, echo, Link::new(client, "link"), info.listen)
}

/// Whether 5 bytes sent on a new connection through `listen` come back within [`PROBE`]
/// (false when the connection is refused, closed or stalls).
async fn echoes(listen: &str) -> bool {
    let probe = async {
        let mut s = TcpStream::connect(listen).await.ok()?;
        s.write_all(b"hello").await.ok()?;
        let mut back = [0u8; 5];
        s.read_exact(&mut back).await.ok()?;
        (&back == b"hello").then_some(())
    };
    matches!(timeout(PROBE, probe).await, Ok(Some(())))
}

/// Probes 150 ms into each of the first `windows` windows after `start` (down, up, down, …):
/// whether each echoed.
async fn probe_windows(start: Instant, windows: u32, listen: &str) -> Vec<bool> {
    let mut seen = Vec::new();
    for w in 0..windows {
        sleep_until(start + (DOWN + UP) * (w / 2) + DOWN * (w % 2) + Duration::from_millis(150))
            .await;
        seen.push(echoes(listen).await);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_flap_stops_bytes_while_down_and_passes_them_while_up_and_after_heal() {
    let (_server, _echo, link, listen) = echo_link().await;
    assert!(echoes(&listen).await, "the link works before the fault");
    let start = Instant::now();
    let running = link_flap::flap(
        vec![link.clone()],
        Partition::BlackHole(Direction::Both),
        DOWN,
        UP,
    )
    .await
    .unwrap();
    // Down, up, down, up: bytes vanish in the downs (the connection is accepted, nothing
    // comes back), and flow in the ups.
    assert_eq!(
        probe_windows(start, 4, &listen).await,
        [false, true, false, true]
    );

    // Heal, as the schedule does: stop the task, then bring the links up.
    running.stop().await.unwrap();
    link_flap::links_up(std::slice::from_ref(&link))
        .await
        .unwrap();
    let info = link.info().await.unwrap();
    assert!(info.enabled && info.toxics.is_empty(), "{info:?}");
    // For two more cycles, where the downs would have been too, every probe echoes, and a
    // connection held open keeps its round trips.
    let mut held = connect(&listen).await;
    let healed = Instant::now();
    for w in 0..4 {
        sleep_until(healed + (DOWN + UP) / 2 * w + Duration::from_millis(150)).await;
        assert!(echoes(&listen).await, "window {w} after heal");
        let rtt = timeout(PROBE, support::round_trip(&mut held, 10))
            .await
            .unwrap_or_else(|_| panic!("held connection stalled in window {w} after heal"));
        assert!(rtt < Duration::from_millis(100), "{rtt:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_flap_refuses_while_down_and_a_dropped_task_flaps_no_more() {
    let (_server, _echo, link, listen) = echo_link().await;
    let start = Instant::now();
    let running = link_flap::flap(vec![link.clone()], Partition::Refuse, DOWN, UP)
        .await
        .unwrap();
    // Down: refused at once (the proxy is disabled), not stalled.
    sleep_until(start + Duration::from_millis(150)).await;
    let refused = TcpStream::connect(&listen).await;
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    assert_eq!(probe_windows(start, 3, &listen).await, [false, true, false]);

    // Dropped (a run that ended without healing): the task ends with it. The link stays as
    // the last window left it until something heals it; after that it stays up.
    drop(running);
    link_flap::links_up(std::slice::from_ref(&link))
        .await
        .unwrap();
    let dropped = Instant::now();
    for w in 0..4 {
        sleep_until(dropped + (DOWN + UP) / 2 * w + Duration::from_millis(150)).await;
        assert!(
            echoes(&listen).await,
            "window {w} after the task was dropped"
        );
    }
    assert!(link.info().await.unwrap().enabled);
}
