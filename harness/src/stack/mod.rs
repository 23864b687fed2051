//! Stacks: the system under test, as a backend brought it up.
//!
//! # Layout
//! - [`plan`]: the stack as data — nodes, what each runs, readiness, links — from the
//!   experiment, once.
//! - [`backend`]: the seam a place to run nodes implements (primitives only), with
//!   [`native`] (local processes) and [`docker`] (containers) behind it.
//! - [`recipe`]: the one bring-up recipe, any plan over any backend.
//! - [`wiring`]: where nodes and links are reached, by the harness and by each other.
//! - [`ha_config`]: what Patroni, etcd and HAProxy are told, on any backend.
//! - [`topology`]: regions, node ids and link names; [`routing`]: the stack's "DNS";
//!   [`clock`]: libfaketime for skewed clocks; [`ports`]: ports on 127.0.0.1.
//!
//! A [`Stack`] is what the rest of the harness sees: which nodes exist and where they are
//! reached, the links (proxies on the fault proxy), the routing table, and the node
//! operations faults and failover managers need. It never says which backend it runs on.

pub mod backend;
pub mod clock;
pub mod docker;
pub mod external;
pub mod ha_config;
pub mod native;
pub mod pg_auto_failover;
pub mod plan;
pub mod ports;
pub mod recipe;
pub mod routing;
pub mod topology;
pub mod wiring;

use crate::posture::Posture;
use crate::proxy::{ClientError, FaultProxy, Link, ToxiproxyClient};
use backend::Backend;
use plan::StackPlan;
use routing::Routing;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use topology::{LinkSpec, NodeId, Role};
use wiring::Wiring;

pub use wiring::Endpoint;

/// Why a stack could not be brought up or operated.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A program or image the backend needs is not installed.
    #[error("{what} not found (looked in {looked}); install with: {install}")]
    Missing {
        /// What is missing.
        what: String,
        /// Where it was looked for.
        looked: String,
        /// How to install it.
        install: String,
    },
    /// A node or tool process failed (native).
    #[error(transparent)]
    Process(#[from] native::process::ProcessError),
    /// A node did not become ready.
    #[error("{node} {why}{}", tail(log_tail))]
    NotReady {
        /// The node.
        node: String,
        /// What happened.
        why: String,
        /// The end of its log.
        log_tail: String,
    },
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
    /// The Docker engine refused an operation.
    #[error("{0}")]
    Engine(String),
    /// PostgreSQL refused a set-up step.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] crate::postgres::PgError),
    /// An app could not be repointed.
    #[error("app: {0}")]
    App(#[from] crate::app::AppError),
    /// A node or link the plan has was not placed by the backend (a backend bug).
    #[error("{0} was not placed by the backend")]
    NotPlaced(String),
    /// A background task (a fault's, e.g. a link flapping) failed or panicked.
    #[error("a background task failed: {0}")]
    Task(String),
    /// An operation named a node that is not running (or not in this stack).
    #[error("{0} is not running")]
    NotRunning(String),
}

fn tail(log_tail: &str) -> String {
    if log_tail.trim().is_empty() {
        String::new()
    } else {
        format!("; last log lines:\n{log_tail}")
    }
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

/// Which backend brings the stack up.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// Docker when an engine answers, else native.
    Auto,
    /// Local processes.
    Native,
    /// Containers (testcontainers).
    Docker,
}

impl BackendChoice {
    /// The backend for the run `run_id` (`images`: which images a Docker backend runs).
    pub async fn backend(
        self,
        run_id: &str,
        images: docker::images::ImageChoice,
    ) -> Result<Box<dyn Backend>, StackError> {
        let docker = match self {
            BackendChoice::Native => false,
            BackendChoice::Docker => true,
            BackendChoice::Auto => docker::engine::Engine::available().await,
        };
        if !docker {
            return Ok(Box::new(native::NativeBackend::new(run_id)));
        }
        let engine = docker::engine::Engine::connect().await?;
        let local = engine.has_image(&docker::images::Images::local().db).await;
        let images = docker::images::Images::resolve(images, local);
        Ok(Box::new(docker::DockerBackend::new(engine, run_id, images)))
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

/// A running stack.
pub struct Stack {
    /// How it is wired.
    pub posture: Posture,
    /// The shared routing table.
    pub routing: Arc<Routing>,
    plan: StackPlan,
    wiring: Wiring,
    proxy: FaultProxy,
    links: BTreeMap<String, StackLink>,
    backend: Arc<dyn Backend>,
    http: reqwest::Client,
}

impl Stack {
    /// Brings `plan` up on `backend` (see [`recipe`]).
    pub async fn up(plan: StackPlan, backend: Box<dyn Backend>) -> Result<Stack, StackError> {
        recipe::bring_up(plan, backend).await
    }

    pub(crate) fn assemble(
        plan: StackPlan,
        wiring: Wiring,
        routing: Arc<Routing>,
        proxy: FaultProxy,
        links: BTreeMap<String, StackLink>,
        backend: Arc<dyn Backend>,
    ) -> Stack {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("static client");
        Stack {
            posture: plan.posture,
            routing,
            plan,
            wiring,
            proxy,
            links,
            backend,
            http,
        }
    }

    /// The plan it was brought up from.
    pub fn plan(&self) -> &StackPlan {
        &self.plan
    }

    /// Which fault proxy carries the links (built-in, spawned or external Toxiproxy).
    pub fn fault_proxy(&self) -> String {
        self.proxy.describe()
    }

    /// The personal-data tokens every link carried, by direction (from the connecting
    /// side's region to the other: upstream; back: downstream), when the built-in fault proxy
    /// counted them (`StackPlan::count_tokens`); None otherwise (a real Toxiproxy cannot).
    pub async fn token_counts(&self) -> Option<Vec<crate::history::LinkTokens>> {
        let mut counts = match &self.proxy {
            FaultProxy::BuiltIn(server) => {
                let meter = server.token_meter();
                meter.enabled().then(|| meter.counts())?
            }
            other => other.client().token_counts().await.ok().flatten()?,
        };
        let mut out = Vec::new();
        for (name, link) in &self.links {
            for (stream, from, to) in [
                (
                    crate::proxy::Stream::Upstream,
                    &link.spec.from,
                    &link.spec.to,
                ),
                (
                    crate::proxy::Stream::Downstream,
                    &link.spec.to,
                    &link.spec.from,
                ),
            ] {
                out.push(crate::history::LinkTokens {
                    link: name.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    by_user: counts.remove(&(name.clone(), stream)).unwrap_or_default(),
                });
            }
        }
        Some(out)
    }

    /// A client for the fault proxy.
    pub fn proxy_client(&self) -> ToxiproxyClient {
        self.proxy.client()
    }

    /// The nodes this posture has.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeId> {
        self.plan.nodes.iter()
    }

    /// Whether the stack has `node`.
    pub fn has(&self, node: &NodeId) -> bool {
        self.plan.nodes.contains(node)
    }

    /// The harness-side port of a node (on 127.0.0.1).
    pub fn port(&self, node: &NodeId) -> Option<u16> {
        self.wiring.endpoint(node).map(|e| e.port)
    }

    /// A link by name.
    pub fn link(&self, name: &str) -> Option<&StackLink> {
        self.links.get(name)
    }

    /// Every link.
    pub fn links(&self) -> impl Iterator<Item = &StackLink> {
        self.links.values()
    }

    /// DSN for the harness to reach a region's database directly (from inside its region).
    pub fn db_dsn(&self, region: &str) -> Option<String> {
        self.wiring.harness_db_dsn(region)
    }

    /// The DSN `region`'s users write through in database-only mode, when the target names
    /// one.
    pub fn users_write_dsn(&self, region: &str) -> Option<String> {
        self.wiring.users_write_dsn(region)
    }

    /// URL for the harness to reach a region's cache directly.
    pub fn cache_url(&self, region: &str) -> Option<String> {
        self.wiring.harness_cache_url(region)
    }

    /// URL the harness uses to reach `serving`'s app on behalf of a user in `user_region`:
    /// directly within a region, through the users link across regions.
    pub fn app_url_for(&self, user_region: &str, serving: &str) -> Option<String> {
        self.wiring.app_url_for(user_region, serving)
    }

    /// The databases an app in `region` should use under the current routing.
    pub fn app_dsns(&self, region: &str) -> Option<(String, String)> {
        self.wiring.app_dsns(region, &self.routing.snapshot())
    }

    /// The app tuning.
    pub fn tuning(&self) -> &crate::app::AppTuning {
        &self.plan.tuning
    }

    /// SIGKILLs a node (no-op if it is already down).
    pub async fn kill(&self, node: &NodeId) -> Result<(), StackError> {
        self.backend.kill(std::slice::from_ref(node)).await
    }

    /// SIGKILLs several nodes at once (a region), as one event.
    pub async fn kill_all(&self, targets: &[NodeId]) -> Result<(), StackError> {
        self.backend.kill(targets).await
    }

    /// Freezes (`paused`) or resumes a node.
    pub async fn pause(&self, node: &NodeId, paused: bool) -> Result<(), StackError> {
        self.backend.pause(node, paused).await
    }

    /// Shifts a node's wall clock (it must have been started under libfaketime, which the
    /// plan does for every node an experiment's `clock_skew` faults name).
    pub async fn set_clock_offset(&self, node: &NodeId, offset_ms: i64) -> Result<(), StackError> {
        self.backend.set_clock(node, offset_ms).await
    }

    /// Whether a node's process or container is running.
    pub async fn is_running(&self, node: &NodeId) -> bool {
        self.backend.status(node).await == backend::NodeStatus::Running
    }

    /// Starts a node that is down again and waits until it is ready; an app is then pointed
    /// at the databases the current routing names. A deposed primary is not restarted (it
    /// would be a second primary; rejoining it is a manual operation): `Ok(false)` then.
    pub async fn restart(&self, node: &NodeId) -> Result<bool, StackError> {
        if node.role == Role::Db && self.routing.snapshot().deposed.contains(&node.region) {
            return Ok(false);
        }
        if self.is_running(node).await {
            return Ok(true);
        }
        self.start_again(node).await?;
        // A target's app (no placement here) is its own to configure.
        if node.role == Role::App && self.wiring.endpoint(node).is_some() {
            let url = self.wiring.app_url_for(&node.region, &node.region);
            if let Some(url) = url {
                self.reconfigure_app(&node.region, &url, Duration::from_secs(3))
                    .await?;
            }
        }
        Ok(true)
    }

    /// Starts a node that is down as it was started, whatever the routing says (a deposed
    /// primary too: the failback operations start it on purpose), and waits until it is
    /// ready.
    pub async fn start_again(&self, node: &NodeId) -> Result<(), StackError> {
        self.backend.restart(node).await?;
        if self.wiring.endpoint(node).is_none() {
            // A target's node: its restart command returns once it is back.
            return Ok(());
        }
        let spec = self
            .plan
            .specs(&self.wiring, &self.routing.snapshot())
            .into_iter()
            .find(|s| s.id == *node)
            .ok_or_else(|| StackError::NotRunning(node.to_string()))?;
        recipe::wait_ready(&*self.backend, &spec, &self.wiring).await
    }

    /// Runs a script on the data of a database node that is down (see
    /// [`Backend::run_on_data`]); what it printed.
    pub async fn run_on_data(&self, node: &NodeId, script: &str) -> Result<String, StackError> {
        self.backend.run_on_data(node, script).await
    }

    /// Points a running app at the databases [`Stack::app_dsns`] gives, through `url` (the
    /// caller decides whether that crosses a link).
    pub async fn reconfigure_app(
        &self,
        region: &str,
        url: &str,
        timeout: Duration,
    ) -> Result<(), crate::app::AppError> {
        let (write, read) =
            self.app_dsns(region)
                .ok_or_else(|| crate::app::AppError::Unreachable {
                    url: url.to_string(),
                    error: format!("no databases for the {region} app"),
                })?;
        crate::app::repoint(&self.http, url, &write, &read, timeout).await
    }

    /// Undoes every network fault on every link.
    pub async fn heal_links(&self) -> Result<(), StackError> {
        for l in self.links.values() {
            l.link.heal().await?;
        }
        Ok(())
    }

    /// Gives every link its round trip (see [`StackPlan::link_rtt`]): the pair of regions'
    /// it joins, a witness's own.
    pub async fn apply_rtts(&self) -> Result<(), StackError> {
        for l in self.links.values() {
            let (rtt, jitter) = self.plan.link_rtt(&l.spec);
            l.link.set_rtt(rtt, jitter).await?;
        }
        Ok(())
    }

    /// Which backend runs it.
    pub fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// Keeps the stack's files (data directories, logs) after teardown; returns where
    /// (native only: containers are always removed).
    pub fn keep_files(&self) -> Option<std::path::PathBuf> {
        self.backend.keep_files()
    }

    /// Stops every node and the fault proxy, and removes the run's files (unless kept).
    pub async fn teardown(self) {
        self.backend.remove().await;
        if let FaultProxy::BuiltIn(server) = self.proxy {
            server.shutdown().await;
        }
    }
}
