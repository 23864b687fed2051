//! The fault proxy's API: Toxiproxy's shapes, status codes and error bodies.

use regiondrill::proxy::{FaultProxy, ProxyServer};
use serde_json::{Value, json};
use std::time::Duration;

struct Api {
    server: ProxyServer,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Api {
        Api {
            server: FaultProxy::built_in().await.unwrap(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let url = format!("{}{}", self.server.url(), path);
        let mut req = self.http.request(method.parse().unwrap(), url);
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn create(&self, name: &str, upstream: &str) -> Value {
        let body = json!({"name": name, "listen": "127.0.0.1:0", "upstream": upstream}).to_string();
        let (status, v) = self.call("POST", "/proxies", Some(&body)).await;
        assert_eq!(status, 201, "{v}");
        v
    }
}

fn assert_error(got: (u16, Value), status: u16, contains: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["status"], status, "{}", got.1);
    let msg = got.1["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains(contains),
        "error {msg:?} does not say {contains:?}"
    );
}

#[tokio::test]
async fn version_and_empty_listing() {
    let api = Api::start().await;
    let (status, v) = api.call("GET", "/version", None).await;
    assert_eq!(status, 200);
    assert!(v["version"].as_str().unwrap().starts_with("2."), "{v}");
    assert_eq!(api.call("GET", "/proxies", None).await, (200, json!({})));
}

#[tokio::test]
async fn create_reports_the_real_port_and_lists_by_name() {
    let api = Api::start().await;
    let v = api.create("db", "127.0.0.1:5432").await;
    let listen = v["listen"].as_str().unwrap();
    assert!(
        listen.starts_with("127.0.0.1:") && !listen.ends_with(":0"),
        "{listen}"
    );
    assert_eq!(v["enabled"], true);
    assert_eq!(v["toxics"], json!([]));
    let (status, all) = api.call("GET", "/proxies", None).await;
    assert_eq!(status, 200);
    assert_eq!(all["db"], v);
    assert_eq!(api.call("GET", "/proxies/db", None).await, (200, v));
}

#[tokio::test]
async fn bad_input_gets_toxiproxy_status_codes_and_clear_messages() {
    let api = Api::start().await;
    api.create("db", "127.0.0.1:5432").await;
    assert_error(
        api.call("POST", "/proxies", Some("{not json")).await,
        400,
        "bad request body",
    );
    assert_error(
        api.call("POST", "/proxies", Some("")).await,
        400,
        "bad request body: EOF",
    );
    assert_error(
        api.call("POST", "/proxies", Some(r#"{"upstream":"x:1"}"#))
            .await,
        400,
        "missing required field: name",
    );
    assert_error(
        api.call("POST", "/proxies", Some(r#"{"name":"x"}"#)).await,
        400,
        "missing required field: upstream",
    );
    let dup = json!({"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}).to_string();
    assert_error(
        api.call("POST", "/proxies", Some(&dup)).await,
        409,
        "proxy already exists",
    );
    assert_error(
        api.call("GET", "/proxies/nope", None).await,
        404,
        "proxy not found",
    );
    assert_error(
        api.call("DELETE", "/proxies/nope", None).await,
        404,
        "proxy not found",
    );
    assert_error(
        api.call("GET", "/proxies/nope/toxics", None).await,
        404,
        "proxy not found",
    );
    assert_error(
        api.call("GET", "/proxies/db/toxics/nope", None).await,
        404,
        "toxic not found",
    );

    let toxic = |b: &'static str| api.call("POST", "/proxies/db/toxics", Some(b));
    assert_error(
        toxic(r#"{"type":"lag","attributes":{}}"#).await,
        400,
        "invalid toxic type",
    );
    assert_error(
        toxic(r#"{"attributes":{"latency":1}}"#).await,
        400,
        "invalid toxic type",
    );
    assert_error(
        toxic(r#"{"type":"latency","attributes":{"latency":-5}}"#).await,
        400,
        "'latency' must not be negative",
    );
    // Absent attributes take Toxiproxy's defaults (see
    // `toxics_without_attributes_take_toxiproxy_defaults`); explicit bad ones stay refused.
    assert_error(
        toxic(r#"{"type":"latency","attributes":{"jitter":-1}}"#).await,
        400,
        "'jitter' must not be negative",
    );
    assert_error(
        toxic(r#"{"type":"latency","attributes":{"latency":"fast"}}"#).await,
        400,
        "'latency'",
    );
    assert_error(
        toxic(r#"{"type":"latency","stream":"sideways","attributes":{"latency":1}}"#).await,
        400,
        "stream was invalid",
    );
    assert_error(
        toxic(r#"{"type":"latency","toxicity":1.5,"attributes":{"latency":1}}"#).await,
        400,
        "toxicity",
    );
    assert_error(toxic(r#"[1,2"#).await, 400, "bad request body");
    let (status, v) = toxic(r#"{"type":"latency","attributes":{"latency":1}}"#).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["name"], "latency_downstream");
    assert_error(
        toxic(r#"{"type":"latency","attributes":{"latency":2}}"#).await,
        409,
        "toxic already exists",
    );
}

#[tokio::test]
async fn port_in_use_is_a_500_that_says_so() {
    let api = Api::start().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let body =
        json!({"name": "clash", "listen": addr.to_string(), "upstream": "127.0.0.1:1"}).to_string();
    assert_error(
        api.call("POST", "/proxies", Some(&body)).await,
        500,
        "in use",
    );
    // Nothing half-created.
    assert_error(
        api.call("GET", "/proxies/clash", None).await,
        404,
        "proxy not found",
    );
}

#[tokio::test]
async fn toxic_update_merges_attributes_and_delete_removes() {
    let api = Api::start().await;
    api.create("db", "127.0.0.1:5432").await;
    let body = r#"{"name":"lag","type":"latency","stream":"UpStream","toxicity":0.5,"attributes":{"latency":40,"jitter":5}}"#;
    let (status, v) = api.call("POST", "/proxies/db/toxics", Some(body)).await;
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({"name":"lag","type":"latency","stream":"upstream","toxicity":0.5,"attributes":{"latency":40,"jitter":5}})
    );
    let (status, v) = api
        .call(
            "POST",
            "/proxies/db/toxics/lag",
            Some(r#"{"attributes":{"latency":80}}"#),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["attributes"], json!({"latency": 80, "jitter": 5}));
    assert_eq!(v["toxicity"], 0.5);
    let (status, v) = api
        .call("PATCH", "/proxies/db/toxics/lag", Some(r#"{"toxicity":1}"#))
        .await;
    assert_eq!((status, v["toxicity"].as_f64()), (200, Some(1.0)));
    assert_eq!(
        api.call("DELETE", "/proxies/db/toxics/lag", None).await.0,
        204
    );
    assert_eq!(
        api.call("GET", "/proxies/db/toxics", None).await,
        (200, json!([]))
    );
}

#[tokio::test]
async fn populate_is_idempotent_and_replaces_changed_proxies() {
    let api = Api::start().await;
    let specs = json!([
        {"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"},
        {"name": "b", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:2", "enabled": false},
    ]);
    let (status, v) = api
        .call("POST", "/populate", Some(&specs.to_string()))
        .await;
    assert_eq!(status, 201, "{v}");
    let first = v["proxies"].as_array().unwrap().clone();
    assert_eq!(first.len(), 2);
    assert_eq!(first[1]["enabled"], false);
    let a_listen = first[0]["listen"].as_str().unwrap().to_string();
    api.call(
        "POST",
        "/proxies/a/toxics",
        Some(r#"{"type":"timeout","attributes":{"timeout":0}}"#),
    )
    .await;
    // Same again, naming the bound address: kept as is, toxics and all.
    let again = json!([{"name": "a", "listen": a_listen, "upstream": "127.0.0.1:1"}]);
    let (status, v) = api
        .call("POST", "/populate", Some(&again.to_string()))
        .await;
    assert_eq!(status, 201);
    assert_eq!(v["proxies"][0]["listen"], a_listen);
    assert_eq!(v["proxies"][0]["toxics"].as_array().unwrap().len(), 1);
    // Changed upstream: replaced, toxics gone.
    let changed = json!([{"name": "a", "listen": a_listen, "upstream": "127.0.0.1:3"}]);
    let (_, v) = api
        .call("POST", "/populate", Some(&changed.to_string()))
        .await;
    assert_eq!(v["proxies"][0]["upstream"], "127.0.0.1:3");
    assert_eq!(v["proxies"][0]["toxics"], json!([]));
    assert_error(
        api.call("POST", "/populate", Some(r#"[{"name":"c"}]"#))
            .await,
        400,
        "missing required field: upstream at proxy 1",
    );
    assert_eq!(
        api.call("POST", "/populate", Some("[]")).await,
        (201, json!({"proxies": []}))
    );
}

#[tokio::test]
async fn reset_enables_everything_and_removes_all_toxics() {
    let api = Api::start().await;
    api.create("a", "127.0.0.1:1").await;
    api.call("POST", "/proxies/a", Some(r#"{"enabled":false}"#))
        .await;
    api.call(
        "POST",
        "/proxies/a/toxics",
        Some(r#"{"type":"latency","stream":"upstream","attributes":{"latency":5}}"#),
    )
    .await;
    api.call(
        "POST",
        "/proxies/a/toxics",
        Some(r#"{"type":"latency","attributes":{"latency":5}}"#),
    )
    .await;
    let (_, v) = api.call("GET", "/proxies/a", None).await;
    assert_eq!(
        (v["enabled"].clone(), v["toxics"].as_array().unwrap().len()),
        (json!(false), 2)
    );
    assert_eq!(api.call("POST", "/reset", None).await.0, 204);
    let (_, v) = api.call("GET", "/proxies/a", None).await;
    assert_eq!(
        (v["enabled"].clone(), v["toxics"].clone()),
        (json!(true), json!([]))
    );
}

#[tokio::test]
async fn browsers_are_refused_and_unknown_routes_are_404() {
    let api = Api::start().await;
    let resp = api
        .http
        .get(format!("{}/proxies", api.server.url()))
        .header("User-Agent", "Mozilla/5.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(api.call("GET", "/nowhere", None).await.0, 404);
}

/// The blocking `toxiproxy_rust` client (crates.io), end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxiproxy_rust_client_round_trips() {
    use toxiproxy_rust::{client::Client, proxy::ProxyPack};
    let api = Api::start().await;
    let addr = api.server.addr();
    tokio::task::spawn_blocking(move || {
        let c = Client::new(addr);
        assert!(c.is_running());
        assert!(c.version().unwrap().contains("2."));
        let made = c
            .populate(vec![ProxyPack::new(
                "pg".into(),
                "127.0.0.1:0".into(),
                "127.0.0.1:5432".into(),
            )])
            .unwrap();
        assert_eq!(made.len(), 1);
        let p = c.find_proxy("pg").unwrap();
        p.with_latency("downstream".into(), 10, 2, 1.0)
            .with_bandwidth("upstream".into(), 100, 0.5);
        let toxics = p.toxics().unwrap();
        assert_eq!(toxics.len(), 2);
        assert_eq!(
            toxics[0].stream, "upstream",
            "upstream toxics list first, as in Toxiproxy"
        );
        p.disable().unwrap();
        assert!(!c.find_proxy("pg").unwrap().proxy_pack.enabled);
        let p = c.find_and_reset_proxy("pg").unwrap();
        let again = c.find_proxy("pg").unwrap();
        assert!(again.proxy_pack.enabled && again.proxy_pack.toxics.is_empty());
        assert_eq!(c.all().unwrap().len(), 1);
        p.delete().unwrap();
        assert!(c.find_proxy("pg").is_err());
        c.reset().unwrap();
    })
    .await
    .unwrap();
}

/// The async `noxious-client` (crates.io): proxies, listing, enable/disable.
#[tokio::test]
async fn noxious_client_manages_proxies() {
    let api = Api::start().await;
    let c = noxious_client::Client::new(&api.server.url());
    let free = regiondrill::proxy::free_port().unwrap();
    let listen = format!("127.0.0.1:{free}");
    let mut p = c
        .create_proxy("cache", &listen, "127.0.0.1:6379")
        .await
        .unwrap();
    assert!(c.proxies().await.unwrap().contains_key("cache"));
    p.disable().await.unwrap();
    assert!(!c.proxy("cache").await.unwrap().is_enabled());
    assert!(tokio::net::TcpStream::connect(&listen).await.is_err());
    p.enable().await.unwrap();
    assert!(c.proxy("cache").await.unwrap().is_enabled());
    tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect(&listen),
    )
    .await
    .unwrap()
    .unwrap();
    p.delete().await.unwrap();
    assert!(c.proxy("cache").await.is_err());
}

/// `regiondrill proxy` serves the same API standalone and stops cleanly on Ctrl-C.
#[tokio::test]
async fn standalone_server_serves_and_stops_on_sigint() {
    let port = regiondrill::proxy::free_port().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_regiondrill"))
        .args(["proxy", "--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = regiondrill::proxy::ToxiproxyClient::new(format!("http://127.0.0.1:{port}"));
    let mut up = false;
    for _ in 0..100 {
        if client.version().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "standalone proxy did not answer");
    let pid = child.id().unwrap() as i32;
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

// ---- Hardening against hostile clients: one test per finding, named after the bug. ----

use crate::support;
use regiondrill::proxy::{ApiLimits, MAX_NAME_BYTES, ProxySpec, ToxiproxyClient};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The user's repro: the head of `POST /proxies` with `Content-Length: 100` and a body of `{`.
const HALF_SENT: &[u8] = b"POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{";

/// Short limits so the timeouts show within a test's time.
fn short_limits(max_connections: usize) -> ApiLimits {
    ApiLimits {
        read_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(500),
        max_connections,
        ..ApiLimits::default()
    }
}

/// Sends `request` on a new connection and reads until the server closes (at most `limit`):
/// the status code, the content type, the body, and how long the close took.
async fn raw(
    addr: std::net::SocketAddr,
    request: &[u8],
    limit: Duration,
) -> (u16, String, String, Duration) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before taking all of a request it refuses.
    let _ = s.write_all(request).await;
    let t = Instant::now();
    let (got, end) = support::read_all(&mut s, limit).await;
    assert!(
        end.is_some(),
        "the server neither answered nor closed within {limit:?}"
    );
    let (status, content_type, body) = parse_response(&got);
    (status, content_type, body, t.elapsed())
}

/// Status, content type and body of one raw HTTP/1.1 response (status 0 when there is none).
fn parse_response(bytes: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(bytes).to_string();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return (0, String::new(), text);
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

/// Asserts a raw response is Toxiproxy's JSON error with `status`.
fn assert_json_error(status: u16, content_type: &str, body: &str, want: u16, contains: &str) {
    assert_eq!(status, want, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{want}: content type {content_type:?}, body {body:?}"
    );
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert_eq!(v["status"], want, "{v}");
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains(contains),
        "error {msg:?} does not say {contains:?}"
    );
}

/// Percent-encodes a name as one URL path segment.
fn enc(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Finding 1: half-sent requests were never answered or closed, and enough of them took every
/// file descriptor. Now the API holds at most its cap, times each request out, and proxy
/// links carry bytes throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_api_requests_are_timed_out_capped_and_do_not_stop_proxy_links() {
    let limits = short_limits(4);
    let server = ProxyServer::start_with("127.0.0.1:0".parse().unwrap(), limits)
        .await
        .unwrap();
    let echo = support::echo_server().await;
    let client = ToxiproxyClient::new(server.url());
    let link = client
        .create_proxy(&ProxySpec {
            name: "link".into(),
            listen: "127.0.0.1:0".into(),
            upstream: echo.addr.to_string(),
            enabled: true,
        })
        .await
        .unwrap();
    // Let the client's kept-alive connection time out, so only the stalled ones count.
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.api_connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.api_connections(), 0, "idle connection not closed");

    let t0 = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(server.addr()).await.unwrap();
        s.write_all(HALF_SENT).await.unwrap();
        stalled.push(s);
    }
    // The API holds its cap and no more; the others wait in the kernel's queue.
    let deadline = Instant::now() + Duration::from_millis(200);
    while server.api_connections() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(server.api_connections(), 4, "the cap of 4 does not hold");
    // A proxy link carries bytes while the API is saturated.
    let mut s = support::connect(&link.listen).await;
    let rtt = tokio::time::timeout(Duration::from_secs(2), support::round_trip(&mut s, 64))
        .await
        .expect("the proxy link stalled while the API was saturated");
    assert!(rtt < Duration::from_millis(200), "{rtt:?}");
    assert!(server.api_connections() <= 4);

    // The first ones get a JSON 408 once the read timeout passes, not before.
    let (got, end) = support::read_all(&mut stalled[0], Duration::from_secs(3)).await;
    let took = t0.elapsed();
    assert!(
        end.is_some(),
        "a half-sent request was neither answered nor closed"
    );
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1500),
        "answered after {took:?} (read timeout 300 ms)"
    );
    let (status, content_type, body) = parse_response(&got);
    assert_json_error(status, &content_type, &body, 408, "request timeout");
    // Every stalled client is answered or closed, in rounds of the cap (20 / 4 × 300 ms).
    for s in stalled.iter_mut().skip(1) {
        let (_, end) = support::read_all(s, Duration::from_secs(5)).await;
        assert!(end.is_some(), "a queued half-sent request was never closed");
    }
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    // And the API answers again.
    let v = tokio::time::timeout(Duration::from_secs(2), client.version())
        .await
        .expect("the API did not answer after the timeouts")
        .unwrap();
    assert!(v.starts_with("2."), "{v}");

    // A half-sent head (no blank line yet) is closed, unanswered, after the read timeout.
    let (status, _, body, took) = raw(
        server.addr(),
        b"POST /proxies HTTP/1.1\r\nContent-Le",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!((status, body.as_str()), (0, ""));
    assert!(took >= Duration::from_millis(290), "{took:?}");

    // A kept-alive connection with no next request is closed after the idle timeout.
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.ends_with(b"}") {
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    let t = Instant::now();
    let (_, end) = support::read_all(&mut s, Duration::from_secs(3)).await;
    assert!(end.is_some(), "idle connection not closed");
    assert!(
        t.elapsed() >= Duration::from_millis(480) && t.elapsed() < Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
    server.shutdown().await;
}

/// Finding 1, as the user met it: with few file descriptors, half-sent API requests took all
/// of them and the proxies stopped accepting. A standalone server limited to 128 descriptors
/// gives the API a quarter of them, so a link still carries bytes under 150 stalled clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_api_requests_cannot_take_the_file_descriptors_proxy_links_need() {
    let port = regiondrill::proxy::free_port().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_regiondrill"));
    cmd.args(["proxy", "--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    // SAFETY: setrlimit is async-signal-safe; it only lowers the child's own limit.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 128,
                rlim_max: 128,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let _child = cmd.spawn().unwrap();
    let api: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = ToxiproxyClient::new(format!("http://{api}"));
    let mut up = false;
    for _ in 0..100 {
        if client.version().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "standalone proxy did not answer");
    let echo = support::echo_server().await;
    let link = client
        .create_proxy(&ProxySpec {
            name: "link".into(),
            listen: "127.0.0.1:0".into(),
            upstream: echo.addr.to_string(),
            enabled: true,
        })
        .await
        .unwrap();

    // 150 is more than 128 descriptors can hold, and fewer than the kernel queues (128)
    // beyond the 32 connections the API accepts.
    let mut stalled = Vec::new();
    for _ in 0..150 {
        let mut s = TcpStream::connect(api).await.unwrap();
        s.write_all(HALF_SENT).await.unwrap();
        stalled.push(s);
    }
    // Give the server time to accept all it would.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&link.listen))
        .await
        .expect("connect through the proxy hung")
        .unwrap();
    let rtt = tokio::time::timeout(Duration::from_secs(3), support::round_trip(&mut s, 64))
        .await
        .expect("the proxy link carried no bytes while the API was flooded");
    assert!(rtt < Duration::from_millis(500), "{rtt:?}");

    // Once those clients go, the API answers again.
    drop(stalled);
    let t = Instant::now();
    let mut answered = false;
    while t.elapsed() < Duration::from_secs(5) {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), client.version()).await
        {
            answered = true;
            break;
        }
    }
    assert!(
        answered,
        "the API did not answer once the stalled clients left"
    );
}

/// Finding 2: `"listen": ":16379"` gave a 500; Toxiproxy binds every interface for it and
/// reports the address it bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostless_listen_address_binds_all_interfaces_instead_of_a_500() {
    let api = Api::start().await;
    let echo = support::echo_server().await;
    let port = regiondrill::proxy::free_port().unwrap();
    let body =
        json!({"name": "any", "listen": format!(":{port}"), "upstream": echo.addr.to_string()})
            .to_string();
    let (status, v) = api.call("POST", "/proxies", Some(&body)).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["listen"], format!("0.0.0.0:{port}"));
    let mut s = support::connect(&format!("127.0.0.1:{port}")).await;
    support::round_trip(&mut s, 32).await;
    // Populating the same host-less address keeps the proxy as it is.
    let again =
        json!([{"name": "any", "listen": format!(":{port}"), "upstream": echo.addr.to_string()}]);
    let (status, v) = api
        .call("POST", "/populate", Some(&again.to_string()))
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["proxies"][0]["listen"], format!("0.0.0.0:{port}"));
    support::round_trip(&mut s, 32).await;
    // Port 0 without a host: a free port on every interface.
    let body =
        json!({"name": "any0", "listen": ":0", "upstream": echo.addr.to_string()}).to_string();
    let (status, v) = api.call("POST", "/proxies", Some(&body)).await;
    assert_eq!(status, 201, "{v}");
    let listen = v["listen"].as_str().unwrap();
    assert!(
        listen.starts_with("0.0.0.0:") && !listen.ends_with(":0"),
        "{listen}"
    );
}

/// Finding 3: a 100 kB name was created (201) and could never be addressed (414). Names are
/// now at most 255 bytes, and every name that can be created works on every route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_over_255_bytes_are_refused_and_every_creatable_name_is_addressable() {
    let api = Api::start().await;
    let create = |name: &str| {
        json!({"name": name, "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}).to_string()
    };
    let huge = "n".repeat(100_000);
    assert_error(
        api.call("POST", "/proxies", Some(&create(&huge))).await,
        400,
        "at most 255 bytes",
    );
    assert_error(
        api.call(
            "POST",
            "/proxies",
            Some(&create(&"n".repeat(MAX_NAME_BYTES + 1))),
        )
        .await,
        400,
        "invalid proxy name",
    );
    let populate = json!([{"name": "é".repeat(128), "upstream": "127.0.0.1:1"}]).to_string();
    assert_error(
        api.call("POST", "/populate", Some(&populate)).await,
        400,
        "at proxy 1",
    );
    assert_error(
        api.call("POST", "/proxies", Some(&create(".."))).await,
        400,
        "cannot be addressed",
    );
    assert_eq!(api.call("GET", "/proxies", None).await, (200, json!({})));

    let names = [
        "n".repeat(MAX_NAME_BYTES),
        "€".repeat(85),
        "a/b".to_string(),
        "sp ace".to_string(),
        "q?x=1#frag".to_string(),
        "100%".to_string(),
        "...".to_string(),
        "+plus&amp".to_string(),
        "tab\tnew\nline".to_string(),
    ];
    for name in &names {
        let (status, v) = api.call("POST", "/proxies", Some(&create(name))).await;
        assert_eq!(status, 201, "{name:?}: {v}");
        let p = format!("/proxies/{}", enc(name));
        let (status, v) = api.call("GET", &p, None).await;
        assert_eq!(
            (status, v["name"].as_str()),
            (200, Some(name.as_str())),
            "{v}"
        );
        assert_error(
            api.call(
                "POST",
                &format!("{p}/toxics"),
                Some(&json!({"name": "t".repeat(MAX_NAME_BYTES + 1), "type": "noop"}).to_string()),
            )
            .await,
            400,
            "invalid toxic name",
        );
        let toxic = json!({"name": name, "type": "latency", "attributes": {"latency": 5}});
        let (status, v) = api
            .call("POST", &format!("{p}/toxics"), Some(&toxic.to_string()))
            .await;
        assert_eq!(status, 200, "{v}");
        let t = format!("{p}/toxics/{}", enc(name));
        let (status, v) = api
            .call("POST", &t, Some(r#"{"attributes":{"latency":7}}"#))
            .await;
        assert_eq!(
            (status, v["attributes"]["latency"].as_u64()),
            (200, Some(7)),
            "{v}"
        );
        assert_eq!(api.call("GET", &t, None).await.1["name"], json!(name));
        let (status, v) = api.call("POST", &p, Some(r#"{"enabled":false}"#)).await;
        assert_eq!((status, v["enabled"].as_bool()), (200, Some(false)), "{v}");
        // The harness's own client encodes names too.
        let c = ToxiproxyClient::new(api.server.url());
        assert_eq!(c.proxy(name).await.unwrap().name, *name);
        assert_eq!(c.toxics(name).await.unwrap().len(), 1);
    }
    assert_eq!(api.call("POST", "/reset", None).await.0, 204);
    for name in &names {
        let p = format!("/proxies/{}", enc(name));
        let (_, v) = api.call("GET", &p, None).await;
        assert_eq!(
            (v["enabled"].clone(), v["toxics"].clone()),
            (json!(true), json!([]))
        );
        let toxic = json!({"name": name, "type": "noop"}).to_string();
        assert_eq!(
            api.call("POST", &format!("{p}/toxics"), Some(&toxic))
                .await
                .0,
            200
        );
        let t = format!("{p}/toxics/{}", enc(name));
        assert_eq!(api.call("DELETE", &t, None).await.0, 204);
        assert_eq!(api.call("DELETE", &p, None).await.0, 204);
        assert_eq!(api.call("GET", &p, None).await.0, 404);
    }
    assert_eq!(api.call("GET", "/proxies", None).await, (200, json!({})));
}

/// Finding 4: numbers above 2^63 − 1 (and any out-of-range attribute) were accepted and
/// saturated; a latency of 2^64 ms was a silent black hole. Now a 400 names the attribute.
#[tokio::test]
async fn attributes_above_i64_max_or_their_range_are_refused_not_saturated() {
    let api = Api::start().await;
    api.create("db", "127.0.0.1:5432").await;
    let toxic = |b: &'static str| api.call("POST", "/proxies/db/toxics", Some(b));
    for (body, attribute) in [
        (
            r#"{"type":"latency","attributes":{"latency":18446744073709551616}}"#,
            "'latency'",
        ),
        (
            r#"{"type":"latency","attributes":{"latency":9223372036854775808}}"#,
            "'latency'",
        ),
        (
            r#"{"type":"latency","attributes":{"latency":1e30}}"#,
            "'latency'",
        ),
        (
            r#"{"type":"latency","attributes":{"latency":1,"jitter":9223372036855}}"#,
            "'jitter'",
        ),
        (
            r#"{"type":"timeout","attributes":{"timeout":9223372036854775807}}"#,
            "'timeout'",
        ),
        (
            r#"{"type":"bandwidth","attributes":{"rate":9223372036854775807}}"#,
            "'rate'",
        ),
        (
            r#"{"type":"limit_data","attributes":{"bytes":18446744073709551615}}"#,
            "'bytes'",
        ),
        (
            r#"{"type":"slicer","attributes":{"average_size":9223372036854775808}}"#,
            "'average_size'",
        ),
    ] {
        let (status, v) = toxic(body).await;
        assert_error((status, v.clone()), 400, attribute);
        assert_error((status, v), 400, "out of range");
    }
    assert_eq!(
        api.call("GET", "/proxies/db/toxics", None).await,
        (200, json!([]))
    );
    // The largest meaningful values are taken as given.
    let (status, v) =
        toxic(r#"{"type":"limit_data","attributes":{"bytes":9223372036854775807}}"#).await;
    assert_eq!(
        (status, v["attributes"]["bytes"].as_u64()),
        (200, Some(i64::MAX as u64))
    );
    // An update out of range is refused and leaves the toxic as it was.
    let (status, _) = toxic(r#"{"name":"lag","type":"latency","attributes":{"latency":40}}"#).await;
    assert_eq!(status, 200);
    assert_error(
        api.call(
            "POST",
            "/proxies/db/toxics/lag",
            Some(r#"{"attributes":{"latency":18446744073709551616}}"#),
        )
        .await,
        400,
        "'latency'",
    );
    let (_, v) = api.call("GET", "/proxies/db/toxics/lag", None).await;
    assert_eq!(v["attributes"], json!({"latency": 40, "jitter": 0}));
}

/// Finding 5: a toxic with no attributes was refused, though toxiproxy-python sends
/// `"attributes": {}` by default and Toxiproxy's tests add toxics with none. Absent
/// attributes take Toxiproxy's defaults; explicit bad values stay refused.
#[tokio::test]
async fn toxics_without_attributes_take_toxiproxy_defaults() {
    let api = Api::start().await;
    api.create("db", "127.0.0.1:5432").await;
    for (body, attributes) in [
        (r#"{"type":"timeout"}"#, json!({"timeout": 0})),
        (
            r#"{"type":"latency","stream":"upstream","attributes":{}}"#,
            json!({"latency": 0, "jitter": 0}),
        ),
        (
            r#"{"type":"bandwidth","attributes":null}"#,
            json!({"rate": 0}),
        ),
        (r#"{"type":"slow_close"}"#, json!({"delay": 0})),
        (
            r#"{"type":"reset_peer","stream":"upstream"}"#,
            json!({"timeout": 0}),
        ),
        (
            r#"{"type":"limit_data","attributes":{"jitter":3}}"#,
            json!({"bytes": 0}),
        ),
        (r#"{"type":"noop"}"#, json!({})),
    ] {
        let (status, v) = api.call("POST", "/proxies/db/toxics", Some(body)).await;
        assert_eq!(status, 200, "{body}: {v}");
        assert_eq!(v["attributes"], attributes, "{body}");
        assert_eq!(v["toxicity"], 1.0);
    }
    // Slicer's zero average never finishes slicing in Toxiproxy: it must be given.
    assert_error(
        api.call("POST", "/proxies/db/toxics", Some(r#"{"type":"slicer"}"#))
            .await,
        400,
        "missing attribute 'average_size'",
    );
    for (body, attribute) in [
        (
            r#"{"type":"slicer","attributes":{"average_size":0}}"#,
            "'average_size'",
        ),
        (
            r#"{"type":"timeout","name":"t2","attributes":{"timeout":-1}}"#,
            "'timeout'",
        ),
        (
            r#"{"type":"latency","name":"l2","attributes":{"latency":"slow"}}"#,
            "'latency'",
        ),
        (
            r#"{"type":"bandwidth","name":"b2","attributes":{"rate":1.5}}"#,
            "'rate'",
        ),
    ] {
        assert_error(
            api.call("POST", "/proxies/db/toxics", Some(body)).await,
            400,
            attribute,
        );
    }
}

/// Finding 6: the 413 for a large body was text/plain. Every error the API sends — unknown
/// route, wrong method, large body, long URI, malformed JSON or HTTP — is Toxiproxy's JSON.
#[tokio::test]
async fn every_error_body_is_toxiproxy_json_including_404_405_413_414() {
    let api = Api::start().await;
    let addr = api.server.addr();
    let limit = Duration::from_secs(3);
    let close = "Host: x\r\nConnection: close\r\n";
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            format!("GET /nowhere HTTP/1.1\r\n{close}\r\n").into_bytes(),
            404,
            "page not found",
        ),
        (
            format!("GET /proxies/nope HTTP/1.1\r\n{close}\r\n").into_bytes(),
            404,
            "proxy not found",
        ),
        (
            format!("DELETE /version HTTP/1.1\r\n{close}\r\n").into_bytes(),
            405,
            "method not allowed",
        ),
        (
            format!("PUT /proxies HTTP/1.1\r\n{close}\r\n").into_bytes(),
            405,
            "PUT /proxies",
        ),
        (
            format!("POST /proxies HTTP/1.1\r\n{close}Content-Length: 3000000\r\n\r\n{{")
                .into_bytes(),
            413,
            "too large",
        ),
        (
            [
                b"GET /proxies/".as_slice(),
                "n".repeat(100_000).as_bytes(),
                format!(" HTTP/1.1\r\n{close}\r\n").as_bytes(),
            ]
            .concat(),
            414,
            "URI too long",
        ),
        (
            format!("POST /proxies HTTP/1.1\r\n{close}Content-Length: 9\r\n\r\n{{not json")
                .into_bytes(),
            400,
            "bad request body",
        ),
        (b"HELLO\r\n\r\n".to_vec(), 400, "malformed HTTP request"),
        (
            format!(
                "GET /version HTTP/1.1\r\n{close}X-Big: {}\r\n\r\n",
                "b".repeat(500_000)
            )
            .into_bytes(),
            431,
            "header",
        ),
        (
            format!("GET /proxies/%FF HTTP/1.1\r\n{close}\r\n").into_bytes(),
            400,
            "Invalid URL",
        ),
        (
            format!("GET /version HTTP/1.1\r\n{close}User-Agent: Mozilla/5.0\r\n\r\n").into_bytes(),
            403,
            "User agent not allowed",
        ),
    ];
    for (request, status, says) in cases {
        let (got, content_type, body, _) = raw(addr, &request, limit).await;
        assert_json_error(got, &content_type, &body, status, says);
    }
    // A body over the limit without a Content-Length (chunked) is a JSON 413 too.
    let small = ProxyServer::start_with(
        "127.0.0.1:0".parse().unwrap(),
        ApiLimits {
            max_body_bytes: 1000,
            ..ApiLimits::default()
        },
    )
    .await
    .unwrap();
    let chunk = "x".repeat(1500);
    let request = format!(
        "POST /populate HTTP/1.1\r\n{close}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let (got, content_type, body, _) = raw(small.addr(), request.as_bytes(), limit).await;
    assert_json_error(got, &content_type, &body, 413, "at most 1000 bytes");
}

/// regiondrill's one extension of the API, so that a proxy in a container counts
/// personal-data tokens too: off until `POST /regiondrill/tokens`, then every connection
/// opened afterwards is counted, by proxy, direction and user; never the payload.
#[tokio::test]
async fn tokens_are_counted_through_the_api_once_enabled() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = Api::start().await;
    let (status, v) = api.call("GET", "/regiondrill/tokens", None).await;
    assert_eq!((status, v), (200, json!({"enabled": false, "counts": []})));
    let echo = crate::support::echo_server().await;
    let listen = api.create("eu-to-us", &echo.addr.to_string()).await["listen"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, v) = api.call("POST", "/regiondrill/tokens", None).await;
    assert_eq!((status, &v["enabled"]), (200, &json!(true)), "{v}");
    let token = regiondrill::residency::token(17, 1);
    let mut c = tokio::net::TcpStream::connect(&listen).await.unwrap();
    let sent = format!("name={token}; email={token}@example.org");
    c.write_all(sent.as_bytes()).await.unwrap();
    let mut back = vec![0; sent.len()];
    c.read_exact(&mut back).await.unwrap();
    drop(c);
    let client = regiondrill::proxy::ToxiproxyClient::new(api.server.url());
    let mut counts = None;
    for _ in 0..100 {
        counts = client.token_counts().await.unwrap();
        if counts.as_ref().is_some_and(|c| c.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counts = counts.expect("counting");
    for stream in [
        regiondrill::proxy::Stream::Upstream,
        regiondrill::proxy::Stream::Downstream,
    ] {
        let by_user = &counts[&("eu-to-us".to_string(), stream)];
        assert_eq!(by_user.get(&17), Some(&2), "{stream:?}: {counts:?}");
    }
    let (_, v) = api.call("GET", "/regiondrill/tokens", None).await;
    assert!(!v.to_string().contains("example.org"), "payload kept: {v}");
}
