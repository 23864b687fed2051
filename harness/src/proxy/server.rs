//! The HTTP API (Toxiproxy v2) and the server handle that runs it in-process or standalone.
//!
//! Every route is in [`routes`]; handlers read and parse the body themselves so a malformed
//! one gets Toxiproxy's `400 bad request body: …` rather than a framework message, and
//! [`json_errors`] turns whatever error is left (unknown route, wrong method) into Toxiproxy's
//! JSON shape. Limits on what a client may hold (timeouts, connections, body and name sizes)
//! are in [`ApiLimits`], enforced in `api_conn.rs` and by the body reader here.

use super::api_conn::ApiListener;
use super::error::ApiError;
use super::limits::ApiLimits;
use super::registry::{ProxyInput, Registry};
use super::tcp_proxy::{toxic_from_json, toxicity_field};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The Toxiproxy API version this server speaks; build metadata says which server it is.
pub const API_VERSION: &str = concat!("2.12.0+regiondrill.", env!("CARGO_PKG_VERSION"));

/// What every handler shares: the proxies and the limits.
struct Api {
    registry: Arc<Registry>,
    limits: ApiLimits,
}

type Shared = State<Arc<Api>>;
type ApiResult = Result<Response, ApiError>;

/// The route table.
fn routes(api: Arc<Api>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/proxies", get(list).post(create))
        .route("/populate", post(populate))
        .route("/reset", post(reset))
        .route("/regiondrill/tokens", get(tokens).post(count_tokens))
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
        .fallback(|req: Request| async move {
            ApiError::route_not_found(req.method().as_str(), req.uri().path())
        })
        .layer(middleware::from_fn(refuse_browsers))
        .layer(middleware::from_fn(json_errors))
        .with_state(api)
}

/// A running fault-proxy API server. Dropping it stops the API, every proxy and every
/// connection; [`ProxyServer::shutdown`] does the same and waits for it.
pub struct ProxyServer {
    addr: SocketAddr,
    registry: Arc<Registry>,
    limits: ApiLimits,
    api_open: Arc<AtomicUsize>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ProxyServer {
    /// Binds the API on `addr` (port 0 picks a free port) and serves it on the current
    /// runtime, with Toxiproxy's limits ([`ApiLimits::default`]).
    pub async fn start(addr: SocketAddr) -> std::io::Result<ProxyServer> {
        Self::start_with(addr, ApiLimits::default()).await
    }

    /// Like [`ProxyServer::start`], with other limits (tests use short timeouts).
    pub async fn start_with(addr: SocketAddr, limits: ApiLimits) -> std::io::Result<ProxyServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let registry = Arc::new(Registry::new(shutdown.clone()));
        let api_open = Arc::new(AtomicUsize::new(0));
        let app = routes(Arc::new(Api {
            registry: registry.clone(),
            limits,
        }));
        let listener = ApiListener::new(listener, limits, shutdown.clone(), api_open.clone());
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
            limits,
            api_open,
            shutdown,
            task: Some(task),
        })
    }

    /// The counter of personal-data tokens in the bytes every proxy carries (off until
    /// enabled; see [`super::meter`]).
    pub fn token_meter(&self) -> Arc<super::meter::TokenMeter> {
        self.registry.meter.clone()
    }

    /// Where the API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL, e.g. `http://127.0.0.1:8474`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The limits it runs with.
    pub fn limits(&self) -> ApiLimits {
        self.limits
    }

    /// API connections it holds open now: never more than the connection cap, however many
    /// clients connect (the others wait in the kernel's accept queue).
    pub fn api_connections(&self) -> usize {
        self.api_open.load(Ordering::Relaxed)
    }

    /// Connections currently open through any of its proxies.
    pub async fn open_connections(&self) -> usize {
        self.registry.open_connections().await
    }

    /// Stops everything and waits until the API and every proxy port are closed. Clients in
    /// the middle of a request are cut off rather than waited for.
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
        return ApiError::new(StatusCode::FORBIDDEN, "User agent not allowed").into_response();
    }
    next.run(req).await
}

/// Gives every error response Toxiproxy's JSON shape (`{"error": …, "status": N}`): the
/// handlers' errors already have it; this catches the router's own (405 for a known route
/// with another method, 400 for a path that does not decode) and anything else.
async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let allow = resp.headers().get(header::ALLOW).cloned();
    let err = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::method_not_allowed(method.as_str(), &path),
        StatusCode::NOT_FOUND => ApiError::route_not_found(method.as_str(), &path),
        _ => {
            let text = axum::body::to_bytes(resp.into_body(), 64 * 1024)
                .await
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                .unwrap_or_default();
            let text = if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_ascii_lowercase()
            } else {
                text
            };
            ApiError::new(status, text)
        }
    };
    let mut out = err.into_response();
    if let Some(allow) = allow {
        out.headers_mut().insert(header::ALLOW, allow);
    }
    out
}

/// A request body read in full: at most [`ApiLimits::max_body_bytes`] (else 413), arriving
/// within the read timeout (else 408; the connection enforces it).
struct Body(Bytes);

impl FromRequest<Arc<Api>> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, api: &Arc<Api>) -> Result<Self, ApiError> {
        let limit = api.limits.max_body_bytes;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ApiError::body_too_large(limit));
        }
        let mut stream = req.into_body().into_data_stream();
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| body_error(&e, &api.limits))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::body_too_large(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Body(Bytes::from(body)))
    }
}

/// A body that failed to arrive: 408 when the connection's read deadline passed, else 400.
fn body_error(e: &axum::Error, limits: &ApiLimits) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        let timed_out = s
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
        if timed_out {
            return ApiError::request_timeout(limits.read_timeout);
        }
        source = s.source();
    }
    ApiError::bad_body(e)
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

async fn list(State(api): Shared) -> Response {
    json(StatusCode::OK, api.registry.list().await)
}

async fn create(State(api): Shared, Body(body): Body) -> ApiResult {
    let input: ProxyInput = parse(&body)?;
    Ok(json(StatusCode::CREATED, api.registry.create(input).await?))
}

async fn populate(State(api): Shared, Body(body): Body) -> ApiResult {
    let inputs: Vec<ProxyInput> = parse(&body)?;
    match api.registry.populate(inputs).await {
        Ok(done) => Ok(json(StatusCode::CREATED, done)),
        Err((e, done)) => {
            let body = json!({"error": e.message, "status": e.status.as_u16(), "proxies": done});
            Ok(json(e.status, body))
        }
    }
}

/// `GET /regiondrill/tokens` (not Toxiproxy's): whether personal-data tokens are counted,
/// and what was counted, as [`super::meter::TokenRow`]s.
async fn tokens(State(api): Shared) -> Response {
    let meter = &api.registry.meter;
    let rows = super::meter::to_rows(&meter.counts());
    json(
        StatusCode::OK,
        json!({ "enabled": meter.enabled(), "counts": rows }),
    )
}

/// `POST /regiondrill/tokens` (not Toxiproxy's): count on every connection opened from now on.
async fn count_tokens(State(api): Shared) -> Response {
    api.registry.meter.enable();
    tokens(State(api)).await
}

async fn reset(State(api): Shared) -> ApiResult {
    api.registry.reset().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn show(State(api): Shared, Path(proxy): Path<String>) -> ApiResult {
    Ok(json(StatusCode::OK, api.registry.get(&proxy).await?))
}

async fn update(State(api): Shared, Path(proxy): Path<String>, Body(body): Body) -> ApiResult {
    api.registry.get(&proxy).await?;
    let input: ProxyInput = parse(&body)?;
    Ok(json(
        StatusCode::OK,
        api.registry.update(&proxy, input).await?,
    ))
}

async fn delete(State(api): Shared, Path(proxy): Path<String>) -> ApiResult {
    api.registry.delete(&proxy).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn toxics(State(api): Shared, Path(proxy): Path<String>) -> ApiResult {
    let list = api.registry.with_proxy(&proxy, |p| Ok(p.toxics())).await?;
    let body = Value::Array(list.iter().map(|t| t.to_json()).collect());
    Ok(json(StatusCode::OK, body))
}

async fn create_toxic(
    State(api): Shared,
    Path(proxy): Path<String>,
    Body(body): Body,
) -> ApiResult {
    api.registry.get(&proxy).await?;
    let toxic = toxic_from_json(&parse(&body)?)?;
    let added = api
        .registry
        .with_proxy(&proxy, |p| p.add_toxic(toxic))
        .await?;
    Ok(json(StatusCode::OK, added.to_json()))
}

async fn show_toxic(State(api): Shared, Path((proxy, toxic)): Path<(String, String)>) -> ApiResult {
    let t = api.registry.with_proxy(&proxy, |p| p.toxic(&toxic)).await?;
    Ok(json(StatusCode::OK, t.to_json()))
}

async fn update_toxic(
    State(api): Shared,
    Path((proxy, toxic)): Path<(String, String)>,
    Body(body): Body,
) -> ApiResult {
    api.registry.with_proxy(&proxy, |p| p.toxic(&toxic)).await?;
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
    let t = api
        .registry
        .with_proxy(&proxy, |p| p.update_toxic(&toxic, attributes, toxicity))
        .await?;
    Ok(json(StatusCode::OK, t.to_json()))
}

async fn delete_toxic(
    State(api): Shared,
    Path((proxy, toxic)): Path<(String, String)>,
) -> ApiResult {
    api.registry
        .with_proxy(&proxy, |p| p.remove_toxic(&toxic))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
