//! The native backend: the whole stack as local processes on 127.0.0.1, in a temporary run
//! directory, for machines without Docker (and for fast tests).
//!
//! Bring-up: the `us` primary (initdb, start, the app's schema), the fault proxy's links, the
//! `eu` replica (`pg_basebackup` through the `replication` link, so its WAL stream crosses the
//! link), a Redis per region, then an app per region. PostgreSQL runs as an unprivileged user
//! when the harness is root.

pub mod app;
pub mod pg_template;
pub mod postgres;
pub mod redis;

use super::process::{NodeProcess, RunAs};
use super::routing::Routing;
use super::rundir::RunDir;
use super::topology::{self, NodeId, Role, STANDBY_REGION};
use super::{AppTuning, Nodes, Stack, StackError, StackLink};
use crate::experiment::Experiment;
use crate::proxy::{FaultProxy, Link, ProxySpec};
use postgres::{PgBinaries, PgSettings};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub use super::rundir::sweep;

/// The running processes and how to restart each.
pub(crate) struct NativeNodes {
    dir: RunDir,
    pg: PgBinaries,
    redis_bin: PathBuf,
    app_bin: PathBuf,
    run_as: Option<RunAs>,
    procs: BTreeMap<NodeId, NodeProcess>,
    pg_settings: BTreeMap<String, PgSettings>,
    ports: BTreeMap<NodeId, u16>,
    /// libfaketime, when some node must run under it.
    faketime: Option<PathBuf>,
}

/// Brings up the experiment's stack as local processes. Everything started is stopped again
/// if a later step fails.
pub async fn up(exp: &Experiment, run_id: &str) -> Result<Stack, StackError> {
    let t = Instant::now();
    sweep();
    let pg = PgBinaries::find()?;
    let redis_bin = redis::find()?;
    let app_bin = app::find()?;
    let dir = RunDir::create(run_id).map_err(|e| StackError::io(&super::rundir::base_dir(), e))?;
    std::fs::create_dir_all(dir.path().join("logs")).map_err(|e| StackError::io(dir.path(), e))?;
    let posture = exp.posture;
    let regions: Vec<&str> = if posture.has_standby() {
        topology::REGIONS.to_vec()
    } else {
        vec![topology::PRIMARY_REGION]
    };
    let mut ports = BTreeMap::new();
    let mut allocator = super::ports::PortAllocator::new();
    for region in &regions {
        for role in Role::ALL {
            let port = allocator
                .allocate()
                .map_err(|e| StackError::Other(e.to_string()))?;
            ports.insert(NodeId::new(region, role), port);
        }
    }
    let mut nodes = NativeNodes {
        dir,
        pg,
        redis_bin,
        app_bin,
        run_as: RunAs::for_postgres(),
        procs: BTreeMap::new(),
        pg_settings: BTreeMap::new(),
        ports: ports.clone(),
        faketime: None,
    };
    if exp
        .faults
        .iter()
        .any(|f| f.fault.skewed_node().is_some())
    {
        nodes.faketime = Some(app::libfaketime().ok_or_else(|| StackError::Missing {
            what: "libfaketime (for clock_skew faults)".into(),
            looked: "/usr/lib/*/faketime/libfaketime.so.1".into(),
            install: "apt-get install libfaketime".into(),
        })?);
    }
    let proxy = FaultProxy::start()
        .await
        .map_err(|e| StackError::Proxy(e.to_string()))?;

    // Primary, its schema, and the caches (independent of each other).
    let primary = NodeId::new(topology::PRIMARY_REGION, Role::Db);
    let (commit, standby_names) = posture.commit_settings(STANDBY_REGION);
    for region in &regions {
        let settings = PgSettings {
            port: ports[&NodeId::new(region, Role::Db)],
            data_dir: nodes.dir.path().join(format!("{region}-db")),
            cluster_name: region.to_string(),
        };
        nodes.pg_settings.insert(region.to_string(), settings);
    }
    let log = nodes.log(&primary);
    let conf = postgres::cluster_conf();
    pg_template::initdb(
        &nodes.pg,
        &nodes.pg_settings[topology::PRIMARY_REGION].data_dir,
        nodes.dir.path(),
        &log,
        nodes.run_as,
        &conf,
    )
    .await?;
    nodes.start_db(&primary).await?;
    app::migrate(
        &nodes.app_bin,
        &postgres::dsn(ports[&primary]),
        &nodes.dir.path().join("logs/migrate.log"),
    )
    .await?;
    for region in &regions {
        nodes.start_cache(&NodeId::new(region, Role::Cache)).await?;
    }

    // Links: one proxy for each link whose target exists.
    let client = proxy.client();
    let mut links = BTreeMap::new();
    for spec in topology::links().into_iter().filter(|l| {
        ports.contains_key(&l.target) && topology::used_by(l, posture.is_active_active())
    }) {
        let info = client
            .create_proxy(&ProxySpec {
                name: spec.name.clone(),
                listen: "127.0.0.1:0".into(),
                upstream: format!("127.0.0.1:{}", ports[&spec.target]),
                enabled: true,
            })
            .await?;
        let port = info
            .listen
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| StackError::Proxy(format!("bad listen address {}", info.listen)))?;
        links.insert(
            spec.name.clone(),
            StackLink {
                link: Link::new(client.clone(), &spec.name),
                spec,
                port,
                inside: ("127.0.0.1".into(), port),
            },
        );
    }

    if posture.is_active_active() {
        // A second primary, replicated both ways with the first.
        let other = NodeId::new(STANDBY_REGION, Role::Db);
        let conf = postgres::cluster_conf();
        pg_template::initdb(
            &nodes.pg,
            &nodes.pg_settings[STANDBY_REGION].data_dir,
            nodes.dir.path(),
            &nodes.log(&other),
            nodes.run_as,
            &conf,
        )
        .await?;
        nodes.start_db(&other).await?;
        app::migrate(
            &nodes.app_bin,
            &postgres::dsn(ports[&other]),
            &nodes.dir.path().join("logs/migrate-eu.log"),
        )
        .await?;
        super::replicate_both_ways(&harness_endpoints(&ports), &links).await?;
    } else if posture.has_standby() {
        // The replica, made and fed through the replication link.
        let replica = NodeId::new(STANDBY_REGION, Role::Db);
        let repl_port = links["replication"].port;
        postgres::basebackup(
            &nodes.pg,
            repl_port,
            &nodes.pg_settings[STANDBY_REGION].data_dir,
            &nodes.log(&replica),
            nodes.run_as,
        )
        .await?;
        nodes.start_db(&replica).await?;
        postgres::require_standby(ports[&primary], commit, &standby_names, STANDBY_REGION)
            .await
            .map_err(StackError::Other)?;
    }

    let routing = Arc::new(Routing::new(posture));
    let tuning = AppTuning::from_experiment(exp);
    let endpoints = harness_endpoints(&ports);
    let stack = Stack::assemble(
        posture,
        proxy,
        links,
        endpoints,
        tuning,
        routing,
        Nodes::Native(nodes),
    );
    for region in &regions {
        let node = NodeId::new(region, Role::App);
        stack.restart(&node).await?;
    }
    stack.set_rtt(exp.network.rtt, exp.network.jitter).await?;
    tracing::info!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "native stack up"
    );
    Ok(stack)
}

/// Natively the harness and the nodes reach a node at the same address.
fn harness_endpoints(ports: &BTreeMap<NodeId, u16>) -> BTreeMap<NodeId, super::Endpoint> {
    ports
        .iter()
        .map(|(n, p)| {
            (
                n.clone(),
                super::Endpoint {
                    port: *p,
                    inside: ("127.0.0.1".into(), *p),
                },
            )
        })
        .collect()
}

impl NativeNodes {
    fn log(&self, node: &NodeId) -> PathBuf {
        self.dir.path().join("logs").join(format!("{node}.log"))
    }

    fn track(&mut self, node: &NodeId, proc: NodeProcess) {
        self.dir.record_pid(proc.pid());
        self.procs.insert(node.clone(), proc);
    }

    async fn start_db(&mut self, node: &NodeId) -> Result<(), StackError> {
        let settings = self.pg_settings[&node.region].clone();
        let proc = postgres::start(
            &node.to_string(),
            &self.pg,
            &settings,
            &self.log(node),
            self.run_as,
        )
        .await?;
        self.track(node, proc);
        Ok(())
    }

    async fn start_cache(&mut self, node: &NodeId) -> Result<(), StackError> {
        let dir = self.dir.path().join(node.to_string());
        let proc = redis::start(
            &node.to_string(),
            &self.redis_bin,
            self.ports[node],
            &dir,
            &self.log(node),
        )
        .await?;
        self.track(node, proc);
        Ok(())
    }

    /// Kills a node (SIGKILL to its process group); no-op when it is not running.
    pub(crate) async fn kill(&mut self, node: &NodeId) {
        if let Some(mut p) = self.procs.remove(node) {
            p.kill().await;
        }
    }

    pub(crate) fn is_running(&mut self, node: &NodeId) -> bool {
        self.procs
            .get_mut(node)
            .is_some_and(|p| p.exited().is_none())
    }

    /// Starts a node that is down (an app with the given databases).
    pub(crate) async fn restart(
        &mut self,
        node: &NodeId,
        app_args: Option<Vec<String>>,
        skewed: bool,
    ) -> Result<(), StackError> {
        if self.is_running(node) {
            return Ok(());
        }
        self.procs.remove(node);
        match node.role {
            Role::Db => self.start_db(node).await,
            Role::Cache => self.start_cache(node).await,
            Role::App => {
                let args = app_args
                    .ok_or_else(|| StackError::Other(format!("no settings to give {node}")))?;
                let env = if skewed {
                    let lib = self
                        .faketime
                        .clone()
                        .ok_or_else(|| StackError::Other("libfaketime missing".into()))?;
                    let file = self.clock_file(node);
                    if !file.exists() {
                        std::fs::write(&file, crate::fault::faketime_offset(0))
                            .map_err(|e| StackError::io(&file, e))?;
                    }
                    app::faketime_env(&lib, &file)
                } else {
                    Vec::new()
                };
                let proc = app::start(
                    &node.to_string(),
                    &self.app_bin,
                    self.ports[node],
                    &args,
                    &env,
                    &self.log(node),
                )
                .await?;
                self.track(node, proc);
                Ok(())
            }
        }
    }

    /// The file holding a node's clock offset.
    fn clock_file(&self, node: &NodeId) -> PathBuf {
        self.dir.path().join(format!("{node}.faketime"))
    }

    /// Shifts a node's clock (it runs under libfaketime).
    pub(crate) fn set_clock_offset(
        &mut self,
        node: &NodeId,
        offset_ms: i64,
    ) -> Result<(), StackError> {
        let file = self.clock_file(node);
        if !file.exists() {
            return Err(StackError::Other(format!(
                "{node} does not run under libfaketime"
            )));
        }
        // Written beside and renamed, so the app never reads a half-written offset.
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, crate::fault::faketime_offset(offset_ms))
            .map_err(|e| StackError::io(&tmp, e))?;
        std::fs::rename(&tmp, &file).map_err(|e| StackError::io(&file, e))
    }

    /// Freezes or resumes a node's whole process tree.
    pub(crate) fn pause(&mut self, node: &NodeId, paused: bool) -> Result<(), StackError> {
        let pid = self
            .procs
            .get(node)
            .map(|p| p.pid())
            .ok_or_else(|| StackError::Other(format!("{node} is not running")))?;
        crate::stack::process::signal_tree(pid, if paused { libc::SIGSTOP } else { libc::SIGCONT });
        Ok(())
    }

    /// Keeps the run directory after teardown; returns it.
    pub(crate) fn keep_files(&mut self) -> PathBuf {
        self.dir.keep();
        self.dir.path().to_path_buf()
    }

    /// Kills everything; the run directory goes with `self` unless kept.
    pub(crate) async fn teardown(mut self) {
        let procs = std::mem::take(&mut self.procs);
        futures::future::join_all(
            procs
                .into_values()
                .map(|mut p| async move { p.kill().await }),
        )
        .await;
    }
}
