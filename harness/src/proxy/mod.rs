//! The fault proxy: every cross-region byte goes through a TCP proxy, and every network fault
//! is a toxic on it, driven through Toxiproxy's HTTP API (v2).
//!
//! - [`ProxyServer`] is a built-in server that speaks that API, in-process or standalone
//!   (`regiondrill proxy`), for machines with no Toxiproxy binary.
//! - [`ToxiproxyClient`] drives it and a real `toxiproxy-server` alike; [`Link`] adds the
//!   faults the harness needs (symmetric RTT, partitions) with one `heal`.
//! - [`FaultProxy::start`] picks the real server when there is one, else the built-in one.
//!
//! Why not the `noxious` crate (a Rust port of Toxiproxy's core)? It has no HTTP API of its
//! own that matches Toxiproxy's (its populate and toxic shapes differ, see the README), its
//! remove-all clears only upstream toxics, and its pipeline, like Toxiproxy's, re-plumbs
//! channels on every toxic change. The engine here is small: per stream, a reader stamps
//! chunks and a writer applies the current toxics, so a change reaches open connections
//! without re-plumbing and a chunk held by a removed toxic is delivered, not lost.

mod api_conn;
mod client;
mod connection;
mod error;
mod limits;
mod link;
pub mod meter;
mod pipe;
mod precise_timer;
mod registry;
mod server;
mod tcp_proxy;
pub mod toxic;

pub use client::{ClientError, ProxyInfo, ProxySpec, ToxicInfo, ToxiproxyClient};
pub use error::ApiError;
pub use limits::{ApiLimits, MAX_NAME_BYTES};
pub use link::{Direction, Link, Partition};
pub use server::{API_VERSION, ProxyServer};
pub use toxic::{AttributeError, Stream, Toxic, ToxicKind};

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Environment variable naming a running Toxiproxy API to use instead of the built-in one.
pub const TOXIPROXY_URL_ENV: &str = "TOXIPROXY_URL";

/// The fault proxy a run uses: a real Toxiproxy when one is available, else the built-in one.
/// Dropping it stops what it started.
pub enum FaultProxy {
    /// The built-in server, in this process.
    BuiltIn(ProxyServer),
    /// A `toxiproxy-server` started for this run.
    Spawned {
        /// The server process (killed on drop).
        child: tokio::process::Child,
        /// Its API URL.
        url: String,
    },
    /// An API someone else runs (`TOXIPROXY_URL`).
    External(String),
    /// A proxy container of the Docker backend (its API URL and image).
    Container {
        /// Its API URL, on a published port.
        url: String,
        /// The image it runs.
        image: String,
    },
}

/// Why no fault proxy could be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The built-in server could not bind.
    #[error("could not start the built-in fault proxy: {0}")]
    Bind(#[from] std::io::Error),
    /// A Toxiproxy API did not answer.
    #[error("fault proxy at {url} did not answer: {source}")]
    NotAnswering {
        /// The API URL tried.
        url: String,
        /// Last error.
        #[source]
        source: ClientError,
    },
}

impl FaultProxy {
    /// `TOXIPROXY_URL` if set; else a `toxiproxy-server` on PATH, started on a free loopback
    /// port; else the built-in server on a free loopback port.
    pub async fn start() -> Result<FaultProxy, StartError> {
        if let Ok(url) = std::env::var(TOXIPROXY_URL_ENV) {
            let proxy = FaultProxy::External(url);
            proxy.wait_ready().await?;
            return Ok(proxy);
        }
        if let Some(bin) = find_on_path("toxiproxy-server") {
            let port = free_port()?;
            let child = tokio::process::Command::new(bin)
                .args(["-host", "127.0.0.1", "-port", &port.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()?;
            let proxy = FaultProxy::Spawned {
                child,
                url: format!("http://127.0.0.1:{port}"),
            };
            proxy.wait_ready().await?;
            return Ok(proxy);
        }
        Ok(FaultProxy::BuiltIn(Self::built_in().await?))
    }

    /// The built-in server on a free loopback port.
    pub async fn built_in() -> std::io::Result<ProxyServer> {
        ProxyServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// The API's base URL.
    pub fn url(&self) -> String {
        match self {
            FaultProxy::BuiltIn(s) => s.url(),
            FaultProxy::Spawned { url, .. }
            | FaultProxy::External(url)
            | FaultProxy::Container { url, .. } => url.clone(),
        }
    }

    /// A client for it.
    pub fn client(&self) -> ToxiproxyClient {
        ToxiproxyClient::new(self.url())
    }

    /// Which kind this is, for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            FaultProxy::BuiltIn(s) => format!("built-in fault proxy at {}", s.url()),
            FaultProxy::Spawned { url, .. } => format!("toxiproxy-server at {url}"),
            FaultProxy::External(url) => format!("Toxiproxy at {url} ({TOXIPROXY_URL_ENV})"),
            FaultProxy::Container { url, image } => {
                format!("fault proxy container ({image}) at {url}")
            }
        }
    }

    /// Polls `/version` for up to 5 s.
    async fn wait_ready(&self) -> Result<(), StartError> {
        let client = self.client();
        let mut last = None;
        for _ in 0..100 {
            match client.version().await {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(StartError::NotAnswering {
            url: self.url(),
            source: last.expect("at least one try"),
        })
    }
}

fn find_on_path(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(bin))
        .find(|p| p.is_file())
}

/// A currently free loopback port (for a program that needs one on its command line).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}
