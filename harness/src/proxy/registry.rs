//! The set of proxies a server manages, and the operations the API performs on it.

use super::error::ApiError;
use super::limits::{NameOf, check_name};
use super::tcp_proxy::TcpProxy;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// A proxy as the API creates or updates it. Unknown keys (e.g. `toxics`) are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ProxyInput {
    pub name: Option<String>,
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub enabled: Option<bool>,
}

/// Every proxy of one server, by name. One lock serialises API operations, as in Toxiproxy.
pub(crate) struct Registry {
    proxies: Mutex<BTreeMap<String, TcpProxy>>,
    shutdown: CancellationToken,
    /// Personal-data tokens counted on every proxy's connections, once enabled.
    pub meter: std::sync::Arc<super::meter::TokenMeter>,
}

impl Registry {
    pub fn new(shutdown: CancellationToken) -> Self {
        Registry {
            proxies: Mutex::new(BTreeMap::new()),
            shutdown,
            meter: Default::default(),
        }
    }

    /// `GET /proxies`: an object keyed by name.
    pub async fn list(&self) -> Value {
        let proxies = self.proxies.lock().await;
        Value::Object(
            proxies
                .iter()
                .map(|(n, p)| (n.clone(), p.to_json()))
                .collect(),
        )
    }

    /// `POST /proxies`.
    pub async fn create(&self, input: ProxyInput) -> Result<Value, ApiError> {
        let (name, upstream) = required(&input, None)?;
        let mut proxies = self.proxies.lock().await;
        if proxies.contains_key(&name) {
            return Err(ApiError::proxy_exists());
        }
        let mut proxy = self.new_proxy(name.clone(), input.listen.unwrap_or_default(), upstream);
        if input.enabled.unwrap_or(true) {
            proxy.start().await?;
        }
        let body = proxy.to_json();
        proxies.insert(name, proxy);
        Ok(body)
    }

    /// `POST /populate`: creates or replaces each proxy; one whose listen and upstream are
    /// unchanged is kept as it is, toxics and all. On error the body also lists what was done.
    pub async fn populate(&self, inputs: Vec<ProxyInput>) -> Result<Value, (ApiError, Value)> {
        let mut checked = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            checked.push(required(input, Some(i + 1)).map_err(|e| (e, Value::Null))?);
        }
        let mut proxies = self.proxies.lock().await;
        let mut done = Vec::new();
        for ((name, upstream), input) in checked.into_iter().zip(inputs) {
            let listen = input.listen.unwrap_or_default();
            if let Some(existing) = proxies.get(&name) {
                match existing.differs(&listen, &upstream).await {
                    Ok(false) => {
                        done.push(existing.to_json());
                        continue;
                    }
                    Ok(true) => {
                        if let Some(mut old) = proxies.remove(&name) {
                            old.stop().await;
                        }
                    }
                    Err(e) => return Err((e, Value::Array(done))),
                }
            }
            let mut proxy = self.new_proxy(name.clone(), listen, upstream);
            if input.enabled.unwrap_or(true) {
                if let Err(e) = proxy.start().await {
                    return Err((e, Value::Array(done)));
                }
            }
            done.push(proxy.to_json());
            proxies.insert(name, proxy);
        }
        Ok(json!({ "proxies": done }))
    }

    /// `GET /proxies/{name}`.
    pub async fn get(&self, name: &str) -> Result<Value, ApiError> {
        let proxies = self.proxies.lock().await;
        proxies
            .get(name)
            .map(TcpProxy::to_json)
            .ok_or_else(ApiError::proxy_not_found)
    }

    /// `POST /proxies/{name}`: a changed listen or upstream restarts the proxy (its toxics
    /// stay); then `enabled` starts or stops it. The name never changes.
    pub async fn update(&self, name: &str, input: ProxyInput) -> Result<Value, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let proxy = proxies
            .get_mut(name)
            .ok_or_else(ApiError::proxy_not_found)?;
        let listen = input.listen.unwrap_or_else(|| proxy.listen.clone());
        let upstream = input.upstream.unwrap_or_else(|| proxy.upstream.clone());
        let mut enabled = input.enabled.unwrap_or(proxy.enabled());
        if proxy.differs(&listen, &upstream).await? {
            let was_running = proxy.enabled();
            proxy.stop().await;
            proxy.listen = listen;
            proxy.upstream = upstream;
            enabled = input.enabled.unwrap_or(was_running);
        }
        if enabled {
            proxy.start().await?;
        } else {
            proxy.stop().await;
        }
        Ok(proxy.to_json())
    }

    /// `DELETE /proxies/{name}`.
    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        let mut proxy = proxies.remove(name).ok_or_else(ApiError::proxy_not_found)?;
        proxy.stop().await;
        Ok(())
    }

    /// `POST /reset`: every proxy enabled, every toxic removed.
    pub async fn reset(&self) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        for proxy in proxies.values_mut() {
            proxy.start().await?;
            proxy.remove_all_toxics();
        }
        Ok(())
    }

    /// Runs `f` on one proxy (for the toxic routes), or 404.
    pub async fn with_proxy<T>(
        &self,
        name: &str,
        f: impl FnOnce(&TcpProxy) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let proxies = self.proxies.lock().await;
        f(proxies.get(name).ok_or_else(ApiError::proxy_not_found)?)
    }

    /// Live connections across all proxies.
    pub async fn open_connections(&self) -> usize {
        self.proxies
            .lock()
            .await
            .values()
            .map(TcpProxy::open_connections)
            .sum()
    }

    /// Stops every proxy and waits until their ports are free.
    pub async fn stop_all(&self) {
        let mut proxies = self.proxies.lock().await;
        for proxy in proxies.values_mut() {
            proxy.stop().await;
        }
    }

    fn new_proxy(&self, name: String, listen: String, upstream: String) -> TcpProxy {
        TcpProxy::new(
            name,
            listen,
            upstream,
            self.shutdown.clone(),
            self.meter.clone(),
        )
    }
}

/// Name and upstream, which Toxiproxy requires (`at proxy N` for populate entries); the name
/// must also be one that can be addressed afterwards (see [`check_name`]).
fn required(input: &ProxyInput, index: Option<usize>) -> Result<(String, String), ApiError> {
    let field = |f: &str| match index {
        Some(i) => ApiError::missing_field(&format!("{f} at proxy {i}")),
        None => ApiError::missing_field(f),
    };
    let name = input
        .name
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| field("name"))?;
    check_name(NameOf::Proxy, &name).map_err(|e| match index {
        Some(i) => ApiError {
            message: format!("{} at proxy {i}", e.message),
            ..e
        },
        None => e,
    })?;
    let upstream = input
        .upstream
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| field("upstream"))?;
    Ok((name, upstream))
}
