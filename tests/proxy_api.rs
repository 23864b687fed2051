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
    assert_error(
        toxic(r#"{"type":"latency","attributes":{}}"#).await,
        400,
        "missing attribute 'latency'",
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
