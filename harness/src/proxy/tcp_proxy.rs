//! One named proxy: a listener on `listen` that forwards each accepted connection to
//! `upstream` through the proxy's toxics.

use super::connection::{self, ToxicSet};
use super::error::ApiError;
use super::limits::{NameOf, check_name};
use super::toxic::{AttributeError, Stream, Toxic, ToxicKind};
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long the proxy tries to reach the upstream for a new client before closing it.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A proxy and its toxics.
pub(crate) struct TcpProxy {
    /// Unique name.
    pub name: String,
    /// Listen address; once started, the bound address (so port 0 reads back as the real port).
    pub listen: String,
    /// Where connections go, as `host:port`.
    pub upstream: String,
    /// Toxics in the order they were added, shared with open connections.
    toxics: watch::Sender<ToxicSet>,
    /// Some while enabled.
    running: Option<Running>,
    /// Live connections.
    open: Arc<AtomicUsize>,
    /// The server's token: its shutdown stops this proxy too.
    server: CancellationToken,
    /// The server's token meter.
    meter: Arc<super::meter::TokenMeter>,
}

struct Running {
    cancel: CancellationToken,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// A stopped proxy.
    pub fn new(
        name: String,
        listen: String,
        upstream: String,
        server: CancellationToken,
        meter: Arc<super::meter::TokenMeter>,
    ) -> Self {
        TcpProxy {
            name,
            listen,
            upstream,
            toxics: watch::channel(Arc::new(Vec::new())).0,
            running: None,
            open: Arc::new(AtomicUsize::new(0)),
            server,
            meter,
        }
    }

    /// Whether the listener is up.
    pub fn enabled(&self) -> bool {
        self.running.is_some()
    }

    /// Live connections through this proxy.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Binds the listener and starts accepting. A no-op when already running.
    pub async fn start(&mut self) -> Result<(), ApiError> {
        if self.running.is_some() {
            return Ok(());
        }
        let addr = resolve(&self.listen).await?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| ApiError::listen(&self.listen, e))?;
        let bound = listener
            .local_addr()
            .map_err(|e| ApiError::listen(&self.listen, e))?;
        self.listen = bound.to_string();
        let cancel = self.server.child_token();
        let accept = tokio::spawn(accept_loop(
            listener,
            self.upstream.clone(),
            self.toxics.subscribe(),
            cancel.clone(),
            self.open.clone(),
            (self.meter.clone(), Arc::from(self.name.as_str())),
        ));
        self.running = Some(Running { cancel, accept });
        tracing::debug!(proxy = %self.name, listen = %self.listen, upstream = %self.upstream, "proxy started");
        Ok(())
    }

    /// Closes the listener and every open connection; returns once the port is free.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.cancel.cancel();
            let _ = r.accept.await;
            tracing::debug!(proxy = %self.name, "proxy stopped");
        }
    }

    /// Whether `listen` (resolved) or `upstream` differ from this proxy's.
    pub async fn differs(&self, listen: &str, upstream: &str) -> Result<bool, ApiError> {
        let wanted = resolve(listen).await?;
        let current = self.listen.parse::<SocketAddr>().ok();
        Ok(current != Some(wanted) || upstream != self.upstream)
    }

    /// The toxics, upstream ones first, each stream in insertion order (Toxiproxy's order).
    pub fn toxics(&self) -> Vec<Toxic> {
        let set = self.toxics.borrow().clone();
        let mut v: Vec<Toxic> = set
            .iter()
            .filter(|t| t.stream == Stream::Upstream)
            .cloned()
            .collect();
        v.extend(
            set.iter()
                .filter(|t| t.stream == Stream::Downstream)
                .cloned(),
        );
        v
    }

    /// A toxic by name.
    pub fn toxic(&self, name: &str) -> Result<Toxic, ApiError> {
        self.toxics
            .borrow()
            .iter()
            .find(|t| t.name == name)
            .cloned()
            .ok_or_else(ApiError::toxic_not_found)
    }

    /// Adds a toxic; its name must be new on this proxy (either stream).
    pub fn add_toxic(&self, toxic: Toxic) -> Result<Toxic, ApiError> {
        let mut result = Ok(toxic.clone());
        self.toxics.send_if_modified(|set| {
            if set.iter().any(|t| t.name == toxic.name) {
                result = Err(ApiError::toxic_exists());
                return false;
            }
            Arc::make_mut(set).push(toxic.clone());
            true
        });
        result
    }

    /// Updates a toxic's attributes (merged) and toxicity; type and stream never change.
    pub fn update_toxic(
        &self,
        name: &str,
        attributes: Option<&Map<String, Value>>,
        toxicity: Option<f64>,
    ) -> Result<Toxic, ApiError> {
        let mut result = Err(ApiError::toxic_not_found());
        self.toxics.send_if_modified(|set| {
            let Some(i) = set.iter().position(|t| t.name == name) else {
                return false;
            };
            let mut t = set[i].clone();
            if let Some(a) = attributes {
                match t.kind.updated(a) {
                    Ok(k) => t.kind = k,
                    Err(e) => {
                        result = Err(ApiError::bad_body(e));
                        return false;
                    }
                }
            }
            if let Some(x) = toxicity {
                t.toxicity = x;
            }
            Arc::make_mut(set)[i] = t.clone();
            result = Ok(t);
            true
        });
        result
    }

    /// Removes a toxic by name.
    pub fn remove_toxic(&self, name: &str) -> Result<(), ApiError> {
        let mut found = false;
        self.toxics.send_if_modified(|set| {
            let before = set.len();
            Arc::make_mut(set).retain(|t| t.name != name);
            found = set.len() != before;
            found
        });
        if found {
            Ok(())
        } else {
            Err(ApiError::toxic_not_found())
        }
    }

    /// Removes every toxic.
    pub fn remove_all_toxics(&self) {
        self.toxics.send_if_modified(|set| {
            let had = !set.is_empty();
            *set = Arc::new(Vec::new());
            had
        });
    }

    /// Toxiproxy's JSON form of the proxy.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled(),
            "toxics": self.toxics().iter().map(Toxic::to_json).collect::<Vec<_>>(),
        })
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.cancel.cancel();
        }
    }
}

/// Resolves a `host:port` listen address (`localhost:0` → `127.0.0.1:0`).
///
/// - No host (`:16379`, as in Toxiproxy's docs and Go's `net.Listen`): every interface,
///   `0.0.0.0:16379`. The proxy then reports the address it bound, as Toxiproxy does (Go
///   reports `[::]:16379` where it binds IPv6 dual-stack; this server binds IPv4).
/// - Empty: `127.0.0.1:0`. Unlike Toxiproxy (all interfaces), proxies bind to loopback unless
///   told otherwise.
async fn resolve(listen: &str) -> Result<SocketAddr, ApiError> {
    let all_interfaces;
    let target = if listen.is_empty() {
        "127.0.0.1:0"
    } else if let Some(port) = listen.strip_prefix(':') {
        all_interfaces = format!("0.0.0.0:{port}");
        &all_interfaces
    } else {
        listen
    };
    let mut addrs = tokio::net::lookup_host(target)
        .await
        .map_err(|e| ApiError::listen(listen, e))?;
    let all: Vec<SocketAddr> = addrs.by_ref().collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| ApiError::listen(listen, "no address"))
}

async fn accept_loop(
    listener: TcpListener,
    upstream: String,
    toxics: watch::Receiver<ToxicSet>,
    cancel: CancellationToken,
    open: Arc<AtomicUsize>,
    meter: (Arc<super::meter::TokenMeter>, Arc<str>),
) {
    loop {
        let client = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let (upstream, toxics, cancel, open, meter) = (
            upstream.clone(),
            toxics.clone(),
            cancel.clone(),
            open.clone(),
            meter.clone(),
        );
        tokio::spawn(async move {
            let dial =
                tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(&upstream));
            let server = tokio::select! {
                _ = cancel.cancelled() => return,
                dialed = dial => match dialed {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%upstream, error = %e, "upstream refused; closing client");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%upstream, "upstream connect timed out; closing client");
                        return;
                    }
                },
            };
            connection::run(client, server, toxics, cancel, open, meter).await;
        });
    }
}

/// Parses a toxic request body as Toxiproxy does (`stream` defaults to downstream; `direction`
/// is accepted as an alias, as noxious clients send it; toxicity defaults to 1).
pub(crate) fn toxic_from_json(body: &Value) -> Result<Toxic, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::bad_body("expected a JSON object"))?;
    let str_field = |k: &str| -> Result<Option<&str>, ApiError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ApiError::bad_body(format!(
                "field '{k}' must be a string (got {other})"
            ))),
        }
    };
    let stream_name = str_field("stream")?
        .or(str_field("direction")?)
        .unwrap_or("downstream");
    let stream = Stream::parse(stream_name).ok_or_else(|| ApiError::invalid_stream(stream_name))?;
    let type_name =
        str_field("type")?.ok_or_else(|| ApiError::invalid_toxic("missing field 'type'"))?;
    let empty = Map::new();
    let attributes = match obj.get("attributes") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(ApiError::bad_body(format!(
                "'attributes' must be an object (got {other})"
            )));
        }
    };
    let kind = ToxicKind::from_attributes(type_name, attributes).map_err(|e| match e {
        AttributeError::UnknownType { .. } => ApiError::invalid_toxic(e),
        _ => ApiError::bad_body(e),
    })?;
    let toxicity = toxicity_field(obj)?.unwrap_or(1.0);
    let mut toxic = Toxic::new(kind, stream);
    toxic.toxicity = toxicity;
    if let Some(name) = str_field("name")?.filter(|n| !n.is_empty()) {
        check_name(NameOf::Toxic, name)?;
        toxic.name = name.to_string();
    }
    Ok(toxic)
}

/// `toxicity`, if present: a number in [0, 1]. (Toxiproxy accepts anything; a value outside
/// the range is always a mistake, so it is refused here.)
pub(crate) fn toxicity_field(obj: &Map<String, Value>) -> Result<Option<f64>, ApiError> {
    match obj.get("toxicity") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if (0.0..=1.0).contains(&x) => Ok(Some(x)),
            _ => Err(ApiError::bad_body(format!(
                "toxicity must be between 0 and 1 (got {n})"
            ))),
        },
        Some(other) => Err(ApiError::bad_body(format!(
            "toxicity must be a number (got {other})"
        ))),
    }
}
