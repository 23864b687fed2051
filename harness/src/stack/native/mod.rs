//! The native backend: every node a local process on 127.0.0.1, in a temporary run
//! directory, for machines without Docker (and for fast tests). PostgreSQL runs as an
//! unprivileged user when the harness is root; its data directories are copies of a cached
//! empty cluster ([`pg_template`]), a standby's too (see `stack::plan`).
//!
//! Nothing outlives a run: every child dies with what started it ([`process`]), the run
//! directory is removed after its processes ([`rundir`]), and the next start sweeps what a
//! `kill -9`'d harness left.

pub mod ha;
pub mod pg;
pub mod pg_template;
pub mod process;
pub mod programs;
pub mod rundir;

use super::backend::{Backend, BoxFuture, NodeStatus};
use super::plan::{NodeSpec, Program, StackPlan};
use super::ports::PortAllocator;
use super::topology::NodeId;
use super::wiring::{Endpoint, LinkPlacement, Placement};
use super::{StackError, clock};
use crate::proxy::FaultProxy;
use process::NodeProcess;
use programs::Programs;
use rundir::RunDir;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

pub use rundir::sweep;

/// The loopback address the links a database registers as its own listen on
/// ([`StackPlan::registered_links`]); the database itself listens on 127.0.0.1, same port.
const REGISTERED_HOST: &str = "127.0.0.2";

/// Numbers the logs of scripts run on a node's data ([`Backend::run_on_data`]).
static DATA_RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Local processes. Field order matters: the processes (in `state`) die before their run
/// directory is removed (fields drop in declaration order; `Drop` below makes it explicit).
pub struct NativeBackend {
    run_id: String,
    state: Mutex<State>,
    programs: Option<Programs>,
    dir: Option<RunDir>,
}

#[derive(Default)]
struct State {
    procs: BTreeMap<NodeId, NodeProcess>,
    specs: BTreeMap<NodeId, NodeSpec>,
    ports: BTreeMap<NodeId, u16>,
    /// etcd's peer port, fixed for the run (a restarted member keeps its peer URL).
    peer_ports: BTreeMap<NodeId, u16>,
}

impl NativeBackend {
    /// A backend for the run `run_id` (nothing happens until [`Backend::prepare`]).
    pub fn new(run_id: &str) -> NativeBackend {
        NativeBackend {
            run_id: run_id.to_string(),
            state: Mutex::default(),
            programs: None,
            dir: None,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("native backend lock")
    }

    fn parts(&self) -> Result<(&Programs, &RunDir), StackError> {
        match (&self.programs, &self.dir) {
            (Some(p), Some(d)) => Ok((p, d)),
            _ => Err(StackError::NotPlaced("the native run directory".into())),
        }
    }

    fn path(&self, node: &NodeId, suffix: &str) -> Result<PathBuf, StackError> {
        Ok(self.parts()?.1.path().join(format!("{node}{suffix}")))
    }

    fn log(&self, node: &NodeId, what: &str) -> Result<PathBuf, StackError> {
        Ok(self
            .parts()?
            .1
            .path()
            .join("logs")
            .join(format!("{node}{what}.log")))
    }

    /// Makes a node's data (a database's cluster, a cache's directory, a skewed node's
    /// clock file) unless it exists from an earlier start.
    async fn make_data(&self, node: &NodeSpec) -> Result<PathBuf, StackError> {
        let (programs, dir) = self.parts()?;
        let data = self.path(&node.id, "")?;
        if let Program::Postgres {
            standby_of,
            wal_log_hints,
            ..
        } = &node.program
            && !data.exists()
        {
            let conf = crate::postgres::cluster_conf();
            let log = self.log(&node.id, "")?;
            pg_template::initdb(
                &programs.pg,
                &data,
                dir.path(),
                &log,
                programs.run_as,
                &conf,
            )
            .await?;
            pg::set_wal_log_hints(&data, *wal_log_hints, programs.run_as)?;
            if let Some((host, port)) = standby_of {
                pg::make_standby(&data, host, *port, programs.run_as)?;
            }
        }
        if node.program == Program::Redis {
            std::fs::create_dir_all(&data).map_err(|e| StackError::io(&data, e))?;
        }
        if matches!(
            node.program,
            Program::Patroni(_)
                | Program::Etcd
                | Program::Haproxy(_)
                | Program::PgAutoFailoverMonitor
                | Program::PgAutoFailoverKeeper(_)
        ) && !data.exists()
        {
            // Theirs to fill (Patroni makes its cluster, etcd its store), as their user.
            std::fs::create_dir_all(&data).map_err(|e| StackError::io(&data, e))?;
            if matches!(
                node.program,
                Program::PgAutoFailoverMonitor | Program::PgAutoFailoverKeeper(_)
            ) {
                for d in ha::pg_autoctl_dirs(&data) {
                    std::fs::create_dir_all(&d).map_err(|e| StackError::io(&d, e))?;
                }
            }
            if self.seeds_cluster(&node.program) {
                self.seed_cluster(node, &data).await?;
            }
            if let Some(u) = programs.run_as {
                u.chown_tree(&data).map_err(|e| StackError::io(&data, e))?;
            }
        }
        let clock = self.path(&node.id, ".faketime")?;
        if node.skewed && !clock.exists() {
            std::fs::write(&clock, clock::faketime_offset(0))
                .map_err(|e| StackError::io(&clock, e))?;
        }
        Ok(data)
    }

    async fn spawn(&self, node: &NodeSpec) -> Result<(), StackError> {
        let t = std::time::Instant::now();
        let data = self.make_data(node).await?;
        tracing::debug!(node = %node.id, elapsed_ms = t.elapsed().as_millis() as u64, "data ready");
        let (programs, dir) = self.parts()?;
        let port = self.state().ports.get(&node.id).copied();
        let port = port.ok_or_else(|| StackError::NotPlaced(node.id.to_string()))?;
        let log = self.log(&node.id, "")?;
        let clock = self.path(&node.id, ".faketime")?;
        let mut cmd = programs.command(node, port, &data, &clock, &log)?;
        self.ha_args(node, &mut cmd, port, &data)?;
        let proc = NodeProcess::spawn(&node.id.to_string(), cmd, &log)?;
        tracing::debug!(node = %node.id, elapsed_ms = t.elapsed().as_millis() as u64, "spawned");
        dir.record_pid(proc.pid());
        let mut state = self.state();
        state.specs.insert(node.id.clone(), node.clone());
        state.procs.insert(node.id.clone(), proc);
        Ok(())
    }
}

impl NativeBackend {
    /// Whether `pg_autoctl` gets a copy of the empty cluster rather than making its own: the
    /// monitor and the first keeper (the other keeper clones the first). So they start in
    /// half the time and with the drill's settings (`fsync` off, dynamic shared memory in
    /// files, …), which pg_auto_failover's own `postgresql-auto-failover.conf` then overrides
    /// where it has its own.
    fn seeds_cluster(&self, program: &Program) -> bool {
        match program {
            Program::PgAutoFailoverMonitor => true,
            Program::PgAutoFailoverKeeper(k) => k.first,
            _ => false,
        }
    }

    /// A copy of the empty cluster in the node directory `dir`, with pg_auto_failover's
    /// memory sizing undone (`postgresql.auto.conf` is read last): it sizes
    /// `shared_buffers` for the host alone (6 GB here), and three clusters share this host.
    async fn seed_cluster(&self, node: &NodeSpec, dir: &std::path::Path) -> Result<(), StackError> {
        let (programs, run) = self.parts()?;
        let pgdata = ha::pgdata(dir);
        let conf = crate::postgres::cluster_conf();
        let log = self.log(&node.id, "")?;
        pg_template::initdb(
            &programs.pg,
            &pgdata,
            run.path(),
            &log,
            programs.run_as,
            &conf,
        )
        .await?;
        let auto = pgdata.join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&auto).unwrap_or_default();
        text.push_str("shared_buffers = '64MB'\n");
        std::fs::write(&auto, text).map_err(|e| StackError::io(&auto, e))
    }

    /// The configuration files and extra ports of Patroni, etcd and HAProxy, and the
    /// arguments and environment of `pg_autoctl`.
    fn ha_args(
        &self,
        node: &NodeSpec,
        cmd: &mut tokio::process::Command,
        port: u16,
        data: &std::path::Path,
    ) -> Result<(), StackError> {
        let (programs, _) = self.parts()?;
        match &node.program {
            Program::Patroni(member) => {
                let api = NodeId::new(&node.id.region, super::topology::Role::Api);
                let api_port = self.state().ports.get(&api).copied();
                let api_port = api_port.ok_or_else(|| StackError::NotPlaced(api.to_string()))?;
                let file = ha::write_patroni_config(
                    member,
                    data,
                    &programs.pg,
                    port,
                    api_port,
                    programs.run_as,
                )?;
                cmd.arg(file).env("HOME", data);
                ha::subreaper(cmd);
            }
            Program::Etcd => {
                let peer = self.state().peer_ports.get(&node.id).copied();
                let peer =
                    peer.ok_or_else(|| StackError::NotPlaced(format!("{} peers", node.id)))?;
                cmd.args(ha::etcd_args(&node.id.to_string(), data, port, peer));
            }
            Program::Haproxy(router) => {
                let file = ha::write_haproxy_config(router, data, port, programs.run_as)?;
                cmd.arg("-f").arg(file).arg("-db");
            }
            Program::PgAutoFailoverMonitor => {
                ha::pg_autoctl_env(cmd, data, &programs.pg);
                cmd.args(ha::monitor_args(data, &programs.pg, port));
                ha::subreaper(cmd);
            }
            Program::PgAutoFailoverKeeper(keeper) => {
                ha::pg_autoctl_env(cmd, data, &programs.pg);
                cmd.args(ha::keeper_args(keeper, data, &programs.pg, port)?);
                ha::subreaper(cmd);
            }
            _ => {}
        }
        Ok(())
    }
}

impl Drop for NativeBackend {
    /// The processes die (and stop writing) before their run directory is removed.
    fn drop(&mut self) {
        self.state().procs.clear();
        self.dir.take();
    }
}

impl Backend for NativeBackend {
    fn name(&self) -> &'static str {
        "native"
    }

    fn prepare<'a>(
        &'a mut self,
        plan: &'a StackPlan,
    ) -> BoxFuture<'a, Result<Placement, StackError>> {
        Box::pin(async move {
            sweep();
            self.programs = Some(Programs::find(
                !plan.tuning.skewed.is_empty(),
                plan.patroni.is_some(),
                plan.pg_auto_failover.is_some(),
            )?);
            let dir =
                RunDir::create(&self.run_id).map_err(|e| StackError::io(&rundir::base_dir(), e))?;
            let logs = dir.path().join("logs");
            std::fs::create_dir_all(&logs).map_err(|e| StackError::io(&logs, e))?;
            self.dir = Some(dir);
            let mut ports = PortAllocator::new();
            let mut next = || {
                ports
                    .allocate()
                    .map_err(|e| StackError::io(std::path::Path::new("ports"), e))
            };
            let mut placement = Placement::default();
            for node in &plan.placed() {
                if node.role == super::topology::Role::Dcs {
                    let peer = next()?;
                    self.state().peer_ports.insert(node.clone(), peer);
                }
                let port = next()?;
                self.state().ports.insert(node.clone(), port);
                let inside = ("127.0.0.1".to_string(), port);
                placement
                    .nodes
                    .insert(node.clone(), Endpoint { port, inside });
            }
            let registered = plan.registered_links();
            for link in &plan.links {
                // A link a database registers as its own address listens on that
                // database's port, on another loopback address (the database listens on
                // 127.0.0.1 only). The harness never reaches these links by port.
                let (host, port) = match registered.iter().find(|(l, _)| *l == link.name) {
                    Some((_, db)) => {
                        let port = self.state().ports.get(db).copied();
                        let port = port.ok_or_else(|| StackError::NotPlaced(db.to_string()))?;
                        (REGISTERED_HOST, port)
                    }
                    None => ("127.0.0.1", next()?),
                };
                let endpoint = Endpoint {
                    port,
                    inside: (host.to_string(), port),
                };
                let listen = format!("{host}:{port}");
                placement
                    .links
                    .insert(link.name.clone(), LinkPlacement { endpoint, listen });
            }
            Ok(placement)
        })
    }

    fn start_proxy(&self) -> BoxFuture<'_, Result<FaultProxy, StackError>> {
        Box::pin(async {
            FaultProxy::start()
                .await
                .map_err(|e| StackError::Proxy(e.to_string()))
        })
    }

    fn start<'a>(&'a self, node: &'a NodeSpec) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(self.spawn(node))
    }

    fn run_tool<'a>(
        &'a self,
        node: &'a NodeId,
        argv: &'a [String],
    ) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(async move {
            let (programs, _) = self.parts()?;
            let Some((name, args)) = argv.split_first() else {
                return Ok(());
            };
            let (program, run_as) = programs.tool(name);
            let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
            let log = self.log(node, "-tools")?;
            let what = format!("{name} (beside {node})");
            process::run_tool(
                &what,
                &program,
                &args,
                &log,
                run_as,
                Duration::from_secs(60),
            )
            .await?;
            Ok(())
        })
    }

    fn kill<'a>(&'a self, nodes: &'a [NodeId]) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(async move {
            let taken: Vec<NodeProcess> = {
                let mut state = self.state();
                nodes.iter().filter_map(|n| state.procs.remove(n)).collect()
            };
            futures::future::join_all(taken.into_iter().map(|mut p| async move { p.kill().await }))
                .await;
            Ok(())
        })
    }

    fn pause<'a>(
        &'a self,
        node: &'a NodeId,
        paused: bool,
    ) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(async move {
            let pid = self.state().procs.get(node).map(|p| p.pid());
            let pid = pid.ok_or_else(|| StackError::NotRunning(node.to_string()))?;
            let signal = if paused { libc::SIGSTOP } else { libc::SIGCONT };
            // It scans /proc: off the runtime's threads.
            let _ = tokio::task::spawn_blocking(move || process::signal_tree(pid, signal)).await;
            Ok(())
        })
    }

    fn restart<'a>(&'a self, node: &'a NodeId) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(async move {
            let spec = {
                let mut state = self.state();
                state.procs.remove(node);
                state.specs.get(node).cloned()
            };
            let spec = spec.ok_or_else(|| StackError::NotRunning(node.to_string()))?;
            self.spawn(&spec).await
        })
    }

    fn run_on_data<'a>(
        &'a self,
        node: &'a NodeId,
        script: &'a str,
    ) -> BoxFuture<'a, Result<String, StackError>> {
        Box::pin(async move {
            if self.state().procs.contains_key(node) {
                return Err(StackError::Task(format!(
                    "{node} must be down to work on its data"
                )));
            }
            let (programs, _) = self.parts()?;
            let data = self.path(node, "")?;
            let bindir = programs.pg.tool("postgres");
            let bindir = bindir.parent().unwrap_or(std::path::Path::new("/"));
            let full = format!(
                "export PGDATA='{}' PATH='{}':\"$PATH\"\n{script}",
                data.display(),
                bindir.display()
            );
            // A fresh log each time: what it printed is the answer.
            let n = DATA_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let log = self.log(node, &format!("-data-{n}"))?;
            let args = [std::ffi::OsStr::new("-c"), std::ffi::OsStr::new(&full)];
            let sh = std::path::Path::new("/bin/sh");
            let what = format!("a script on {node}'s data");
            let ran = process::run_tool(
                &what,
                sh,
                &args,
                &log,
                programs.run_as,
                Duration::from_secs(120),
            )
            .await;
            let printed = std::fs::read_to_string(&log).unwrap_or_default();
            ran.map(|()| printed).map_err(StackError::from)
        })
    }

    fn set_clock<'a>(
        &'a self,
        node: &'a NodeId,
        offset_ms: i64,
    ) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(async move {
            let file = self.path(node, ".faketime")?;
            if !file.exists() {
                return Err(StackError::NotRunning(format!("{node} under libfaketime")));
            }
            // Written beside and renamed, so the node never reads a half-written offset.
            let tmp = file.with_extension("tmp");
            std::fs::write(&tmp, clock::faketime_offset(offset_ms))
                .map_err(|e| StackError::io(&tmp, e))?;
            std::fs::rename(&tmp, &file).map_err(|e| StackError::io(&file, e))
        })
    }

    fn status<'a>(&'a self, node: &'a NodeId) -> BoxFuture<'a, NodeStatus> {
        Box::pin(async move {
            let mut state = self.state();
            match state.procs.get_mut(node) {
                None => NodeStatus::Down,
                Some(p) => match p.exited() {
                    None => NodeStatus::Running,
                    Some(status) => NodeStatus::Exited {
                        status: status.to_string(),
                        log_tail: p.log_tail(15),
                    },
                },
            }
        })
    }

    fn keep_files(&self) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        dir.keep();
        Some(dir.path().to_path_buf())
    }

    fn remove(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let procs = std::mem::take(&mut self.state().procs);
            futures::future::join_all(
                procs
                    .into_values()
                    .map(|mut p| async move { p.kill().await }),
            )
            .await;
        })
    }
}
