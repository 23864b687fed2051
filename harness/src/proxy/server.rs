//! The HTTP API (Toxiproxy v2) and the server handle that runs it in-process or standalone.
//!
//! Every route is in [`routes`]; handlers parse the body themselves so a malformed one gets
//! Toxiproxy's `400 bad request body: …` rather than a framework message.

use super::error::ApiError;
use super::registry::{ProxyInput, Registry};
use super::tcp_proxy::{toxic_from_json, toxicity_field};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The Toxiproxy API version this server speaks; build metadata says which server it is.
pub const API_VERSION: &str = concat!("2.12.0+regiondrill.", env!("CARGO_PKG_VERSION"));

type Shared = State<Arc<Registry>>;
type ApiResult = Result<Response, ApiError>;

/// The route table.
fn routes(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/proxies", get(list).post(create))
        .route("/populate", post(populate))
        .route("/reset", post(reset))
        .route(
            "/proxies/{proxy}",
            get(show).post(update).patch(update).delete(delete),
        )
        .route("/proxies/{proxy}/toxics", get(toxics).post(create_toxic))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(show_toxic)
                .post(update_toxic)
                .patch(update_toxic)
                .delete(delete_toxic),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found") })
        .layer(middleware::from_fn(refuse_browsers))
        .with_state(registry)
}

/// A running fault-proxy API server. Dropping it stops the API, every proxy and every
/// connection; [`ProxyServer::shutdown`] does the same and waits for it.
pub struct ProxyServer {
    addr: SocketAddr,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ProxyServer {
    /// Binds the API on `addr` (port 0 picks a free port) and serves it on the current runtime.
    pub async fn start(addr: SocketAddr) -> std::io::Result<ProxyServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let registry = Arc::new(Registry::new(shutdown.clone()));
        let app = routes(registry.clone());
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
            if let Err(e) = served.await {
                tracing::error!(error = %e, "fault proxy API stopped");
            }
        });
        tracing::debug!(%addr, "fault proxy API listening");
        Ok(ProxyServer {
            addr,
            registry,
            shutdown,
            task: Some(task),
        })
    }

    /// Where the API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL, e.g. `http://127.0.0.1:8474`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections currently open through any of its proxies.
    pub async fn open_connections(&self) -> usize {
        self.registry.open_connections().await
    }

    /// Stops everything and waits until the API and every proxy port are closed.
    pub async fn shutdown(mut self) {
        self.registry.stop_all().await;
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Toxiproxy refuses browsers, so a web page cannot drive the API (a CSRF guard).
async fn refuse_browsers(req: Request, next: Next) -> Response {
    let browser = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("Mozilla/"));
    if browser {
        return (StatusCode::FORBIDDEN, "User agent not allowed\n").into_response();
    }
    next.run(req).await
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_body("EOF"));
    }
    serde_json::from_slice(body).map_err(ApiError::bad_body)
}

fn json(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn version() -> Response {
    json(StatusCode::OK, json!({ "version": API_VERSION }))
}

async fn list(State(r): Shared) -> Response {
    json(StatusCode::OK, r.list().await)
}

async fn create(State(r): Shared, body: Bytes) -> ApiResult {
    let input: ProxyInput = parse(&body)?;
    Ok(json(StatusCode::CREATED, r.create(input).await?))
}

async fn populate(State(r): Shared, body: Bytes) -> ApiResult {
    let inputs: Vec<ProxyInput> = parse(&body)?;
    match r.populate(inputs).await {
        Ok(done) => Ok(json(StatusCode::CREATED, done)),
        Err((e, done)) => {
            let body = json!({"error": e.message, "status": e.status.as_u16(), "proxies": done});
            Ok(json(e.status, body))
        }
    }
}

async fn reset(State(r): Shared) -> ApiResult {
    r.reset().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn show(State(r): Shared, Path(proxy): Path<String>) -> ApiResult {
    Ok(json(StatusCode::OK, r.get(&proxy).await?))
}

async fn update(State(r): Shared, Path(proxy): Path<String>, body: Bytes) -> ApiResult {
    r.get(&proxy).await?;
    let input: ProxyInput = parse(&body)?;
    Ok(json(StatusCode::OK, r.update(&proxy, input).await?))
}

async fn delete(State(r): Shared, Path(proxy): Path<String>) -> ApiResult {
    r.delete(&proxy).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn toxics(State(r): Shared, Path(proxy): Path<String>) -> ApiResult {
    let list = r.with_proxy(&proxy, |p| Ok(p.toxics())).await?;
    let body = Value::Array(list.iter().map(|t| t.to_json()).collect());
    Ok(json(StatusCode::OK, body))
}

async fn create_toxic(State(r): Shared, Path(proxy): Path<String>, body: Bytes) -> ApiResult {
    r.get(&proxy).await?;
    let toxic = toxic_from_json(&parse(&body)?)?;
    let added = r.with_proxy(&proxy, |p| p.add_toxic(toxic)).await?;
    Ok(json(StatusCode::OK, added.to_json()))
}

async fn show_toxic(State(r): Shared, Path((proxy, toxic)): Path<(String, String)>) -> ApiResult {
    let t = r.with_proxy(&proxy, |p| p.toxic(&toxic)).await?;
    Ok(json(StatusCode::OK, t.to_json()))
}

async fn update_toxic(
    State(r): Shared,
    Path((proxy, toxic)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    r.with_proxy(&proxy, |p| p.toxic(&toxic)).await?;
    let body: Value = parse(&body)?;
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::bad_body("expected a JSON object"))?;
    let attributes = match obj.get("attributes") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(other) => {
            return Err(ApiError::bad_body(format!(
                "'attributes' must be an object (got {other})"
            )));
        }
    };
    let toxicity = toxicity_field(obj)?;
    let t = r
        .with_proxy(&proxy, |p| p.update_toxic(&toxic, attributes, toxicity))
        .await?;
    Ok(json(StatusCode::OK, t.to_json()))
}

async fn delete_toxic(State(r): Shared, Path((proxy, toxic)): Path<(String, String)>) -> ApiResult {
    r.with_proxy(&proxy, |p| p.remove_toxic(&toxic)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
