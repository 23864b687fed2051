//! Stacks: the system under test, as a backend brought it up.
//!
//! A [`Stack`] is what the rest of the harness sees: which nodes exist and where the harness
//! reaches them, the cross-region links (proxies on the fault proxy), the routing table, and
//! the node operations faults and the failover controller need (kill, restart, reconfigure an
//! app). It never says which backend it runs on.

pub mod docker;
pub mod native;
pub mod ports;
pub mod process;
pub mod routing;
pub mod rundir;
pub mod topology;

use crate::experiment::{CacheMode, Experiment};
use crate::posture::Posture;
use crate::proxy::{ClientError, FaultProxy, Link, ToxiproxyClient};
use routing::Routing;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use topology::{LinkPurpose, LinkSpec, NodeId, Role, link_name};

/// Why a stack could not be brought up or operated.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A program the backend needs is not installed.
    #[error("{what} not found (looked in {looked}); install with: {install}")]
    Missing {
        /// What is missing.
        what: String,
        /// Where it was looked for.
        looked: String,
        /// How to install it.
        install: String,
    },
    /// A node or tool failed.
    #[error(transparent)]
    Process(#[from] process::ProcessError),
    /// A file operation failed.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        error: String,
    },
    /// The fault proxy failed.
    #[error("fault proxy: {0}")]
    Proxy(String),
    /// Something else about the stack.
    #[error("{0}")]
    Other(String),
}

impl StackError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, e: impl std::fmt::Display) -> Self {
        StackError::Io {
            path: path.display().to_string(),
            error: e.to_string(),
        }
    }
}

impl From<ClientError> for StackError {
    fn from(e: ClientError) -> Self {
        StackError::Proxy(e.to_string())
    }
}

/// A cross-region link of a running stack.
#[derive(Debug, Clone)]
pub struct StackLink {
    /// What it connects.
    pub spec: LinkSpec,
    /// Where the harness connects to use it: `127.0.0.1:port`.
    pub port: u16,
    /// Where the stack's own nodes connect to use it (host, port): the same address natively,
    /// the proxy container's name and listen port on Docker.
    pub inside: (String, u16),
    /// Fault handle.
    pub link: Link,
}

/// Where a node is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Port on 127.0.0.1 where the harness reaches it.
    pub port: u16,
    /// (host, port) where the stack's other nodes reach it: `127.0.0.1` natively, the
    /// container's name on its region's network on Docker.
    pub inside: (String, u16),
}

/// Knobs the apps get from the experiment.
#[derive(Debug, Clone)]
pub struct AppTuning {
    /// Cache TTL.
    pub cache_ttl: Duration,
    /// Cache TTL jitter.
    pub cache_ttl_jitter: Duration,
    /// How writes reach the other region's cache.
    pub cache_mode: CacheMode,
    /// Concurrent misses of one key share one database read.
    pub single_flight: bool,
    /// Per-request deadline inside the app (kept below the clients' timeout).
    pub request_timeout: Duration,
    /// Nodes started under libfaketime (those the experiment's `clock_skew` faults name).
    pub skewed: BTreeSet<NodeId>,
}

impl AppTuning {
    /// From an experiment: the app gives up slightly before the client does, so the client
    /// hears the app's own verdict (fail or unknown) rather than a bare timeout.
    pub fn from_experiment(exp: &Experiment) -> AppTuning {
        let client = exp.workload.op_timeout;
        let skewed = exp
            .faults
            .iter()
            .filter_map(|f| f.fault.skewed_node().cloned())
            .collect();
        AppTuning {
            cache_ttl: exp.cache.ttl,
            cache_ttl_jitter: exp.cache.ttl_jitter,
            cache_mode: exp.cache.mode,
            single_flight: exp.cache.single_flight,
            request_timeout: client.mul_f64(0.8).max(Duration::from_millis(50)),
            skewed,
        }
    }
}

/// Active-active replication (both primaries up and migrated): each region's tables flow to
/// the other through the replication links — `us`'s through `replication` (the `eu`
/// database connects to `us`), `eu`'s through `replication-to-us`.
pub(crate) async fn replicate_both_ways(
    endpoints: &BTreeMap<NodeId, Endpoint>,
    links: &BTreeMap<String, StackLink>,
) -> Result<(), StackError> {
    use topology::{PRIMARY_REGION as US, STANDBY_REGION as EU};
    let port = |r: &str| {
        endpoints
            .get(&NodeId::new(r, Role::Db))
            .map(|e| e.port)
            .ok_or_else(|| StackError::Other(format!("no {r} database")))
    };
    let via = |name: &str| {
        links
            .get(name)
            .map(|l| native::postgres::dsn_at(&l.inside.0, l.inside.1))
            .ok_or_else(|| StackError::Other(format!("no {name} link")))
    };
    for r in [US, EU] {
        let c = native::postgres::connect(port(r)?, Duration::from_secs(3))
            .await
            .map_err(StackError::Other)?;
        c.simple_query(native::postgres::HARNESS_SCHEMA)
            .await
            .map_err(|e| StackError::Other(format!("harness schema on {r}: {e}")))?;
    }
    native::postgres::replicate(US, port(US)?, port(EU)?, &via("replication")?, true)
        .await
        .map_err(StackError::Other)?;
    native::postgres::replicate(EU, port(EU)?, port(US)?, &via("replication-to-us")?, false)
        .await
        .map_err(StackError::Other)?;
    Ok(())
}

/// The nodes as a backend runs them (one per run, so the variants' sizes do not matter).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Nodes {
    Native(native::NativeNodes),
    Docker(docker::DockerNodes),
}

/// A running two-region stack.
pub struct Stack {
    /// How it is wired.
    pub posture: Posture,
    /// The shared routing table.
    pub routing: Arc<Routing>,
    proxy: FaultProxy,
    links: BTreeMap<String, StackLink>,
    endpoints: BTreeMap<NodeId, Endpoint>,
    tuning: AppTuning,
    nodes: tokio::sync::Mutex<Nodes>,
    http: reqwest::Client,
}

impl Stack {
    pub(crate) fn assemble(
        posture: Posture,
        proxy: FaultProxy,
        links: BTreeMap<String, StackLink>,
        endpoints: BTreeMap<NodeId, Endpoint>,
        tuning: AppTuning,
        routing: Arc<Routing>,
        nodes: Nodes,
    ) -> Stack {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("static client");
        Stack {
            posture,
            routing,
            proxy,
            links,
            endpoints,
            tuning,
            nodes: tokio::sync::Mutex::new(nodes),
            http,
        }
    }

    /// Which fault proxy carries the links (built-in, spawned or external Toxiproxy).
    pub fn fault_proxy(&self) -> String {
        self.proxy.describe()
    }

    /// A client for the fault proxy.
    pub fn proxy_client(&self) -> ToxiproxyClient {
        self.proxy.client()
    }

    /// The nodes this posture has.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeId> {
        self.endpoints.keys()
    }

    /// Whether the stack has `node`.
    pub fn has(&self, node: &NodeId) -> bool {
        self.endpoints.contains_key(node)
    }

    /// The harness-side port of a node (on 127.0.0.1).
    pub fn port(&self, node: &NodeId) -> Option<u16> {
        self.endpoints.get(node).map(|e| e.port)
    }

    /// A link by name.
    pub fn link(&self, name: &str) -> Option<&StackLink> {
        self.links.get(name)
    }

    /// Every link.
    pub fn links(&self) -> impl Iterator<Item = &StackLink> {
        self.links.values()
    }

    /// DSN for the harness to reach a region's database directly.
    pub fn db_dsn(&self, region: &str) -> Option<String> {
        self.port(&NodeId::new(region, Role::Db))
            .map(native::postgres::dsn)
    }

    /// URL the harness uses to reach `serving`'s app on behalf of a user in `user_region`:
    /// directly within a region, through the users link across regions.
    pub fn app_url_for(&self, user_region: &str, serving: &str) -> Option<String> {
        if user_region == serving {
            return self
                .port(&NodeId::new(serving, Role::App))
                .map(|p| format!("http://127.0.0.1:{p}"));
        }
        self.link(&link_name(user_region, LinkPurpose::UsersToApp, serving))
            .map(|l| format!("http://127.0.0.1:{}", l.port))
    }

    /// The database `from`'s app uses to reach `to`'s: its own directly, the other through
    /// the app-to-db link.
    fn app_db_dsn(&self, from: &str, to: &str) -> Option<String> {
        let (host, port) = if from == to {
            &self.endpoints.get(&NodeId::new(to, Role::Db))?.inside
        } else {
            &self
                .link(&link_name(from, LinkPurpose::AppToDb, to))?
                .inside
        };
        Some(native::postgres::dsn_at(host, *port))
    }

    /// The databases an app in `region` should use under the current routing: writes to the
    /// primary (through the app-to-db link when remote; in active-active its own region's);
    /// reads from its own region's database unless that one was deposed or does not exist
    /// (then from the primary too).
    pub fn app_dsns(&self, region: &str) -> Option<(String, String)> {
        let state = self.routing.snapshot();
        let inside_db = |r: &str| self.app_db_dsn(r, r);
        let write = if self.posture.is_active_active() {
            inside_db(region)?
        } else {
            self.app_db_dsn(region, &state.primary)?
        };
        let local_ok = self.has(&NodeId::new(region, Role::Db)) && !state.deposed.contains(region);
        let read = if local_ok {
            inside_db(region)?
        } else {
            write.clone()
        };
        Some((write, read))
    }

    /// The app tuning.
    pub fn tuning(&self) -> &AppTuning {
        &self.tuning
    }

    /// The arguments of `regiondrill-app serve` for `region`'s app, all but `--listen`
    /// (addresses as the stack's nodes see them, so every backend uses the same list).
    pub fn app_args(&self, region: &str) -> Option<Vec<String>> {
        let (write, read) = self.app_dsns(region)?;
        let t = &self.tuning;
        let redis = |node: &NodeId, via: Option<&StackLink>| {
            let (host, port) = match via {
                Some(l) => l.inside.clone(),
                None => self.endpoints.get(node)?.inside.clone(),
            };
            Some(format!("redis://{host}:{port}"))
        };
        let mut args: Vec<String> = vec![
            "--region".into(),
            region.into(),
            "--posture".into(),
            self.posture.app_mode().into(),
            "--write-db".into(),
            write,
            "--read-db".into(),
            read,
            "--redis".into(),
            redis(&NodeId::new(region, Role::Cache), None)?,
            "--cache-ttl-ms".into(),
            t.cache_ttl.as_millis().to_string(),
            "--request-timeout-ms".into(),
            t.request_timeout.as_millis().to_string(),
            "--cache-mode".into(),
            t.cache_mode.name().into(),
        ];
        if !t.cache_ttl_jitter.is_zero() {
            args.extend([
                "--cache-ttl-jitter-ms".into(),
                t.cache_ttl_jitter.as_millis().to_string(),
            ]);
        }
        if t.single_flight {
            args.push("--single-flight".into());
        }
        let other = topology::other_region(region);
        if t.cache_mode != CacheMode::Ttl && self.posture.has_standby() {
            let link = self.link(&link_name(region, LinkPurpose::AppToCache, other));
            args.extend([
                "--remote-redis".into(),
                redis(&NodeId::new(other, Role::Cache), link)?,
            ]);
        }
        if self.posture == Posture::ActiveActivePartitioned {
            for r in topology::REGIONS {
                args.extend([
                    "--home-db".into(),
                    format!("{r}={}", self.app_db_dsn(region, r)?),
                ]);
            }
        }
        Some(args)
    }

    /// SIGKILLs a node (no-op if it is already down).
    pub async fn kill(&self, node: &NodeId) -> Result<(), StackError> {
        let mut nodes = self.nodes.lock().await;
        match &mut *nodes {
            Nodes::Native(n) => n.kill(node).await,
            Nodes::Docker(d) => d.kill(node).await?,
        }
        Ok(())
    }

    /// SIGKILLs several nodes at once (a region), as one event: on Docker the kills are
    /// issued together rather than one after another.
    pub async fn kill_all(&self, targets: &[NodeId]) -> Result<(), StackError> {
        let mut nodes = self.nodes.lock().await;
        match &mut *nodes {
            Nodes::Native(n) => {
                for node in targets {
                    n.kill(node).await;
                }
                Ok(())
            }
            Nodes::Docker(d) => d.kill_all(targets).await,
        }
    }

    /// Freezes (`paused`) or resumes a node.
    pub async fn pause(&self, node: &NodeId, paused: bool) -> Result<(), StackError> {
        let mut nodes = self.nodes.lock().await;
        match &mut *nodes {
            Nodes::Native(n) => n.pause(node, paused),
            Nodes::Docker(d) => d.pause(node, paused).await,
        }
    }

    /// Shifts a node's wall clock (it must have been started under libfaketime, which the
    /// backends do for every node an experiment's `clock_skew` faults name).
    pub async fn set_clock_offset(&self, node: &NodeId, offset_ms: i64) -> Result<(), StackError> {
        let mut nodes = self.nodes.lock().await;
        match &mut *nodes {
            Nodes::Native(n) => n.set_clock_offset(node, offset_ms),
            Nodes::Docker(d) => d.set_clock_offset(node, offset_ms).await,
        }
    }

    /// Whether a node's process is running.
    pub async fn is_running(&self, node: &NodeId) -> bool {
        let mut nodes = self.nodes.lock().await;
        match &mut *nodes {
            Nodes::Native(n) => n.is_running(node),
            Nodes::Docker(d) => d.is_running(node).await,
        }
    }

    /// Starts a node that is down again. A deposed primary is not restarted (it would be a
    /// second primary; rejoining it is a manual operation): returns `Ok(false)` then.
    pub async fn restart(&self, node: &NodeId) -> Result<bool, StackError> {
        if node.role == Role::Db && self.routing.snapshot().deposed.contains(&node.region) {
            return Ok(false);
        }
        let dsns = if node.role == Role::App {
            self.app_dsns(&node.region)
        } else {
            None
        };
        let args = if node.role == Role::App {
            self.app_args(&node.region)
        } else {
            None
        };
        let skewed = self.tuning.skewed.contains(node);
        let mut nodes = self.nodes.lock().await;
        match &mut *nodes {
            Nodes::Native(n) => n.restart(node, args, skewed).await?,
            Nodes::Docker(d) => d.restart(node, dsns).await?,
        }
        Ok(true)
    }

    /// Points a running app at the databases [`Stack::app_dsns`] gives, through `url` (the
    /// caller decides whether that crosses a link).
    pub async fn reconfigure_app(
        &self,
        region: &str,
        url: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let (write, read) = self
            .app_dsns(region)
            .ok_or_else(|| format!("no databases for the {region} app"))?;
        let body = serde_json::json!({ "write_db": write, "read_db": read });
        let resp = self
            .http
            .post(format!("{url}/admin/db"))
            .json(&body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("{} from {url}/admin/db", resp.status()))
        }
    }

    /// Undoes every network fault on every link.
    pub async fn heal_links(&self) -> Result<(), StackError> {
        for l in self.links.values() {
            l.link.heal().await?;
        }
        Ok(())
    }

    /// Sets the baseline round trip on every link.
    pub async fn set_rtt(&self, rtt: Duration, jitter: Duration) -> Result<(), StackError> {
        for l in self.links.values() {
            l.link.set_rtt(rtt, jitter).await?;
        }
        Ok(())
    }

    /// Takes over a container started after the stack was assembled (the apps, which need
    /// the stack's routing to know their databases).
    pub(crate) async fn adopt_container(
        &self,
        node: &NodeId,
        handle: testcontainers::ContainerAsync<testcontainers::GenericImage>,
    ) {
        if let Nodes::Docker(d) = &mut *self.nodes.lock().await {
            d.adopt(node, handle);
        }
    }

    /// Which backend runs it.
    pub async fn backend(&self) -> &'static str {
        match &*self.nodes.lock().await {
            Nodes::Native(_) => "native",
            Nodes::Docker(_) => "docker",
        }
    }

    /// Keeps the stack's files (data directories, logs) after teardown; returns where
    /// (native only: containers are always removed).
    pub async fn keep_files(&self) -> Option<std::path::PathBuf> {
        let mut nodes = self.nodes.lock().await;
        match &mut *nodes {
            Nodes::Native(n) => Some(n.keep_files()),
            Nodes::Docker(_) => None,
        }
    }

    /// Stops every node and the fault proxy, and removes the run's files (unless kept).
    pub async fn teardown(self) {
        let nodes = self.nodes.into_inner();
        match nodes {
            Nodes::Native(n) => n.teardown().await,
            Nodes::Docker(d) => d.teardown().await,
        }
        if let FaultProxy::BuiltIn(server) = self.proxy {
            server.shutdown().await;
        }
    }
}
