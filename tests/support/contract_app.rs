//! A small in-memory app that imitates the sample app's HTTP contract (stacks/app/README.md)
//! and breaks it in chosen, named ways: what `regiondrill contract` must catch, each under
//! its own check. With no breaks it honours the contract (a test says so), so every failure
//! the contract reports against it comes from a break.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// Ways the app breaks the contract.
#[derive(Debug, Clone, Copy, Default)]
pub struct Breaks {
    /// A replayed `write_id` is acknowledged with 200 (and changes nothing) instead of 409.
    pub replay_accepted: bool,
    /// Every write answers (and stores) version 1.
    pub version_stuck: bool,
    /// Write acknowledgements have no `committed_by`.
    pub no_committed_by: bool,
    /// Erasure counts the profile as deleted but keeps it.
    pub erasure_keeps_profile: bool,
    /// `POST /health` answers 200 instead of 405.
    pub wrong_method_ok: bool,
    /// A malformed body is a 422 (axum's default) instead of a 400.
    pub malformed_422: bool,
    /// An unknown path is a 404 without `outcome` (`{"error": …}` only).
    pub no_route_without_outcome: bool,
}

impl Breaks {
    /// Every break.
    pub fn all() -> Breaks {
        Breaks {
            replay_accepted: true,
            version_stuck: true,
            no_committed_by: true,
            erasure_keeps_profile: true,
            wrong_method_ok: true,
            malformed_422: true,
            no_route_without_outcome: true,
        }
    }
}

/// One stored value.
#[derive(Clone)]
struct Row {
    value: String,
    version: i64,
    write_id: i64,
    user: Option<i64>,
}

/// What the apps hold: apps that share one store see each other's writes at once (perfect
/// replication).
#[derive(Default)]
pub struct Store {
    kv: HashMap<String, Row>,
    /// write id → user.
    writes: HashMap<i64, Option<i64>>,
    counters: HashMap<String, i64>,
    /// user → (email, name, home).
    profiles: HashMap<i64, (String, String, String)>,
}

/// A shared store.
pub fn store() -> Arc<Mutex<Store>> {
    Arc::new(Mutex::new(Store::default()))
}

struct Fake {
    region: String,
    posture: String,
    breaks: Breaks,
    store: Arc<Mutex<Store>>,
}

type S = State<Arc<Fake>>;

/// A running fake app; stops on drop.
pub struct ContractApp {
    /// Its base URL, `http://127.0.0.1:port`.
    pub url: String,
    task: JoinHandle<()>,
}

impl Drop for ContractApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a fake app for `region` reporting `posture`, on a free loopback port.
pub async fn start(
    region: &str,
    posture: &str,
    breaks: Breaks,
    store: Arc<Mutex<Store>>,
) -> ContractApp {
    let fake = Arc::new(Fake {
        region: region.into(),
        posture: posture.into(),
        breaks,
        store,
    });
    let health = if breaks.wrong_method_ok {
        get(health).post(|| async { Json(json!({"ok": true})) })
    } else {
        get(health)
    };
    let app = Router::new()
        .route("/health", health)
        .route("/kv/{key}", get(kv_get).put(kv_put))
        .route("/counters/{key}", get(counter_get))
        .route("/counters/{key}/incr", post(counter_incr))
        .route("/users/{id}", delete(erase))
        .route("/users/{id}/profile", get(profile_get).put(profile_put))
        .route(
            "/admin/db",
            get(|| async { Json(json!({"write_db": "memory", "read_db": "memory"})) }),
        )
        .fallback(move || async move {
            if breaks.no_route_without_outcome {
                (StatusCode::NOT_FOUND, Json(json!({"error": "no route"}))).into_response()
            } else {
                error(StatusCode::NOT_FOUND, "no route")
            }
        })
        .method_not_allowed_fallback(|| async { error(StatusCode::METHOD_NOT_ALLOWED, "method") })
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    ContractApp { url, task }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message, "outcome": "fail"}))).into_response()
}

/// The body as JSON (empty: `{}`), or why it is not.
fn body(bytes: &Bytes) -> Result<Value, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON body: {e}"))
}

/// A malformed request: 400 (or 422 when broken so).
fn bad(fake: &Fake, message: &str) -> Response {
    let status = if fake.breaks.malformed_422 {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::BAD_REQUEST
    };
    error(status, message)
}

async fn health(State(f): S) -> Response {
    let check = json!({"ok": true, "ms": 0.1, "error": null});
    Json(json!({
        "region": f.region, "status": "ok", "role": "primary", "posture": f.posture,
        "checks": {"write_db": check, "read_db": check, "cache": check},
    }))
    .into_response()
}

async fn kv_put(State(f): S, Path(key): Path<String>, bytes: Bytes) -> Response {
    let b = match body(&bytes) {
        Ok(b) => b,
        Err(e) => return bad(&f, &e),
    };
    let Some(value) = b.get("value").and_then(Value::as_str) else {
        return bad(
            &f,
            "invalid JSON body: field `value`: missing or not a string",
        );
    };
    let Some(write_id) = b.get("write_id").and_then(Value::as_i64) else {
        return bad(&f, "invalid JSON body: field `write_id`: expected i64");
    };
    let user = b.get("user").and_then(Value::as_i64);
    let mut s = f.store.lock().unwrap();
    let version = if s.writes.contains_key(&write_id) {
        if !f.breaks.replay_accepted {
            return error(StatusCode::CONFLICT, "write_id already in writes");
        }
        // Acknowledged, changes nothing.
        s.kv.get(&key).map_or(1, |r| r.version)
    } else {
        let version = if f.breaks.version_stuck {
            1
        } else {
            s.kv.get(&key).map_or(1, |r| r.version + 1)
        };
        s.writes.insert(write_id, user);
        s.kv.insert(
            key.clone(),
            Row {
                value: value.into(),
                version,
                write_id,
                user,
            },
        );
        version
    };
    let mut ack = json!({
        "key": key, "value": value, "version": version, "write_id": write_id,
        "region": f.region, "ts_ms": 1_767_225_600_000_i64, "committed_by": f.region,
        "hlc": 1, "timeline": 1,
    });
    if f.breaks.no_committed_by {
        ack.as_object_mut().unwrap().remove("committed_by");
    }
    Json(ack).into_response()
}

async fn kv_get(State(f): S, Path(key): Path<String>) -> Response {
    let s = f.store.lock().unwrap();
    match s.kv.get(&key) {
        Some(r) => Json(json!({
            "key": key, "value": r.value, "version": r.version, "write_id": r.write_id,
            "source": "db", "region": f.region,
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"key": key, "found": false, "source": "db", "region": f.region})),
        )
            .into_response(),
    }
}

async fn counter_incr(State(f): S, Path(key): Path<String>, bytes: Bytes) -> Response {
    let b = match body(&bytes) {
        Ok(b) => b,
        Err(e) => return bad(&f, &e),
    };
    let by = b.get("by").and_then(Value::as_i64).unwrap_or(1);
    let mut s = f.store.lock().unwrap();
    let value = s.counters.entry(key.clone()).or_default();
    *value += by;
    Json(json!({"key": key, "value": *value, "region": f.region})).into_response()
}

async fn counter_get(State(f): S, Path(key): Path<String>) -> Response {
    let value = f.store.lock().unwrap().counters.get(&key).copied();
    Json(json!({"key": key, "value": value.unwrap_or(0), "region": f.region})).into_response()
}

async fn profile_put(State(f): S, Path(user): Path<i64>, bytes: Bytes) -> Response {
    let b = match body(&bytes) {
        Ok(b) => b,
        Err(e) => return bad(&f, &e),
    };
    let field = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(email), Some(name)) = (field("email"), field("name")) else {
        return bad(&f, "invalid JSON body: field `email` or `name`");
    };
    let home = field("home").unwrap_or_else(|| f.region.clone());
    f.store
        .lock()
        .unwrap()
        .profiles
        .insert(user, (email, name, home));
    Json(json!({"user": user, "region": f.region, "committed_by": f.region})).into_response()
}

async fn profile_get(State(f): S, Path(user): Path<i64>) -> Response {
    let s = f.store.lock().unwrap();
    match s.profiles.get(&user) {
        Some((email, name, home)) => Json(json!({
            "user": user, "home": home, "email": email, "name": name, "source": "db",
            "region": f.region,
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"user": user, "found": false, "source": "db", "region": f.region})),
        )
            .into_response(),
    }
}

async fn erase(State(f): S, Path(user): Path<i64>) -> Response {
    let mut s = f.store.lock().unwrap();
    let before = s.writes.len();
    s.writes.retain(|_, u| *u != Some(user));
    let deleted_writes = before - s.writes.len();
    let before = s.kv.len();
    s.kv.retain(|_, r| r.user != Some(user));
    let deleted_keys = before - s.kv.len();
    let deleted_profiles = if f.breaks.erasure_keeps_profile {
        usize::from(s.profiles.contains_key(&user))
    } else {
        usize::from(s.profiles.remove(&user).is_some())
    };
    Json(json!({
        "user": user, "deleted_writes": deleted_writes, "deleted_keys": deleted_keys,
        "deleted_profiles": deleted_profiles,
    }))
    .into_response()
}
