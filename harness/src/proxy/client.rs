//! An async client for Toxiproxy's HTTP API (v2): drives the built-in server and a real
//! `toxiproxy-server` alike.

use super::toxic::Toxic;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;

/// What can go wrong talking to a fault proxy.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error.
    #[error("fault proxy API {method} {path}: {status} {message}")]
    Api {
        /// Request method.
        method: &'static str,
        /// Request path.
        path: String,
        /// HTTP status.
        status: u16,
        /// Toxiproxy's error message.
        message: String,
    },
    /// The API could not be reached or its answer could not be read.
    #[error("fault proxy API {method} {path}: {source}")]
    Http {
        /// Request method.
        method: &'static str,
        /// Request path.
        path: String,
        /// Underlying error.
        #[source]
        source: reqwest::Error,
    },
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Http { .. } => None,
        }
    }
}

/// A proxy as the API reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyInfo {
    /// Unique name.
    pub name: String,
    /// Listen address (the real port once started).
    pub listen: String,
    /// Where connections go.
    pub upstream: String,
    /// Whether it accepts connections.
    pub enabled: bool,
    /// Its toxics.
    #[serde(default)]
    pub toxics: Vec<ToxicInfo>,
}

/// A toxic as the API reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToxicInfo {
    /// Name on its proxy.
    pub name: String,
    /// Type (`latency`, `timeout`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// `upstream` or `downstream`.
    pub stream: String,
    /// Probability per connection.
    pub toxicity: f64,
    /// Type-specific attributes.
    #[serde(default)]
    pub attributes: Value,
}

/// A proxy to create, for [`ToxiproxyClient::create_proxy`] and [`ToxiproxyClient::populate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxySpec {
    /// Unique name.
    pub name: String,
    /// `host:port`; port 0 picks a free port.
    pub listen: String,
    /// `host:port` connections go to.
    pub upstream: String,
    /// Start accepting at once (default true).
    pub enabled: bool,
}

/// Async client for one Toxiproxy API endpoint.
#[derive(Debug, Clone)]
pub struct ToxiproxyClient {
    base: String,
    http: reqwest::Client,
}

impl ToxiproxyClient {
    /// A client for the API at `base` (e.g. `http://127.0.0.1:8474`). No I/O happens here.
    pub fn new(base: impl Into<String>) -> Self {
        let base = base.into().trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .user_agent(concat!("regiondrill/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .timeout(std::time::Duration::from_secs(10))
            // Below the API's idle timeout (60 s, Toxiproxy's too), so a kept-alive connection
            // is not reused just as the server closes it.
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("reqwest client with static settings");
        ToxiproxyClient { base, http }
    }

    /// The API's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// `GET /version`: the version text (JSON `{"version": …}` since Toxiproxy 2.7, plain
    /// text before; both are accepted).
    pub async fn version(&self) -> Result<String, ClientError> {
        let text = self
            .send_text(reqwest::Method::GET, "/version", None)
            .await?;
        Ok(match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(o)) => o
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            _ => text.trim().to_string(),
        })
    }

    /// `GET /proxies`.
    pub async fn proxies(&self) -> Result<HashMap<String, ProxyInfo>, ClientError> {
        self.send(reqwest::Method::GET, "/proxies", None).await
    }

    /// `GET /proxies/{name}`.
    pub async fn proxy(&self, name: &str) -> Result<ProxyInfo, ClientError> {
        self.send(
            reqwest::Method::GET,
            &format!("/proxies/{}", segment(name)),
            None,
        )
        .await
    }

    /// `POST /proxies`.
    pub async fn create_proxy(&self, spec: &ProxySpec) -> Result<ProxyInfo, ClientError> {
        self.send(reqwest::Method::POST, "/proxies", Some(json!(spec)))
            .await
    }

    /// `POST /populate`: creates or replaces the proxies; unchanged ones are kept.
    pub async fn populate(&self, specs: &[ProxySpec]) -> Result<Vec<ProxyInfo>, ClientError> {
        #[derive(Deserialize)]
        struct Populated {
            proxies: Option<Vec<ProxyInfo>>,
        }
        let p: Populated = self
            .send(reqwest::Method::POST, "/populate", Some(json!(specs)))
            .await?;
        Ok(p.proxies.unwrap_or_default())
    }

    /// `POST /proxies/{name}` with `{"enabled": …}`: down closes its connections and listener.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<ProxyInfo, ClientError> {
        let path = format!("/proxies/{}", segment(name));
        self.send(
            reqwest::Method::POST,
            &path,
            Some(json!({ "enabled": enabled })),
        )
        .await
    }

    /// `DELETE /proxies/{name}`.
    pub async fn delete_proxy(&self, name: &str) -> Result<(), ClientError> {
        self.send_text(
            reqwest::Method::DELETE,
            &format!("/proxies/{}", segment(name)),
            None,
        )
        .await
        .map(drop)
    }

    /// `POST /reset`: every proxy enabled, every toxic removed.
    pub async fn reset(&self) -> Result<(), ClientError> {
        self.send_text(reqwest::Method::POST, "/reset", None)
            .await
            .map(drop)
    }

    /// `POST /regiondrill/tokens`: the built-in proxy counts personal-data tokens on every
    /// connection opened from now on. A real Toxiproxy has no such route: an error.
    pub async fn count_tokens(&self) -> Result<(), ClientError> {
        self.send_text(reqwest::Method::POST, "/regiondrill/tokens", None)
            .await
            .map(drop)
    }

    /// `GET /regiondrill/tokens`: what the built-in proxy counted; None when it was not
    /// counting.
    pub async fn token_counts(&self) -> Result<Option<super::meter::TokenCounts>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            enabled: bool,
            counts: Vec<super::meter::TokenRow>,
        }
        let a: Answer = self
            .send(reqwest::Method::GET, "/regiondrill/tokens", None)
            .await?;
        Ok(a.enabled.then(|| super::meter::from_rows(a.counts)))
    }

    /// `GET /proxies/{name}/toxics`.
    pub async fn toxics(&self, proxy: &str) -> Result<Vec<ToxicInfo>, ClientError> {
        self.send(
            reqwest::Method::GET,
            &format!("/proxies/{}/toxics", segment(proxy)),
            None,
        )
        .await
    }

    /// `POST /proxies/{name}/toxics`.
    pub async fn add_toxic(&self, proxy: &str, toxic: &Toxic) -> Result<ToxicInfo, ClientError> {
        let path = format!("/proxies/{}/toxics", segment(proxy));
        self.send(reqwest::Method::POST, &path, Some(toxic.to_json()))
            .await
    }

    /// `POST /proxies/{name}/toxics/{toxic}`: replaces the attributes given, keeps the rest.
    pub async fn update_toxic(
        &self,
        proxy: &str,
        toxic: &str,
        attributes: Value,
    ) -> Result<ToxicInfo, ClientError> {
        let path = format!("/proxies/{}/toxics/{}", segment(proxy), segment(toxic));
        self.send(
            reqwest::Method::POST,
            &path,
            Some(json!({ "attributes": attributes })),
        )
        .await
    }

    /// `DELETE /proxies/{name}/toxics/{toxic}`.
    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ClientError> {
        let path = format!("/proxies/{}/toxics/{}", segment(proxy), segment(toxic));
        self.send_text(reqwest::Method::DELETE, &path, None)
            .await
            .map(drop)
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, ClientError> {
        let m = method_name(&method);
        let text = self.send_text(method, path, body).await?;
        serde_json::from_str(&text).map_err(|e| ClientError::Api {
            method: m,
            path: path.to_string(),
            status: 200,
            message: format!("unexpected response ({e}): {text}"),
        })
    }

    async fn send_text(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<String, ClientError> {
        let m = method_name(&method);
        let http = |source| ClientError::Http {
            method: m,
            path: path.to_string(),
            source,
        };
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(http)?;
        let status = resp.status();
        let text = resp.text().await.map_err(http)?;
        if status.is_success() {
            return Ok(text);
        }
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or(text);
        Err(ClientError::Api {
            method: m,
            path: path.to_string(),
            status: status.as_u16(),
            message,
        })
    }
}

/// A name as one URL path segment: every byte but letters, digits and `-._~` percent-encoded,
/// so any name the API takes (`/`, `?`, `#`, spaces, non-ASCII) addresses that proxy or toxic.
fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn method_name(m: &reqwest::Method) -> &'static str {
    match *m {
        reqwest::Method::GET => "GET",
        reqwest::Method::POST => "POST",
        reqwest::Method::DELETE => "DELETE",
        _ => "PATCH",
    }
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn names_are_percent_encoded_as_one_path_segment() {
        assert_eq!(segment("eu-app-to-us-db"), "eu-app-to-us-db");
        assert_eq!(segment("a/b?c#d e%"), "a%2Fb%3Fc%23d%20e%25");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
