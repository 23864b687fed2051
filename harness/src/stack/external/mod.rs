//! The external backend: a stack someone else runs, described by a target file
//! ([`crate::target`]). regiondrill starts nothing here: nodes are operated through the
//! target's commands, links through the target's Toxiproxy, and everything is reached at the
//! addresses the file gives.
//!
//! Removing it starts nothing and stops nothing either: it only undoes what the drill did —
//! paused nodes resumed, killed nodes restarted, every regiondrill toxic removed — so an
//! interrupted drill leaves the target as it found it.

pub mod command;

use super::backend::{Backend, BoxFuture, NodeStatus};
use super::plan::{NodeSpec, StackPlan};
use super::routing::Routing;
use super::topology::{NodeId, Role};
use super::wiring::{ExternalAddresses, Placement, Wiring};
use super::{Stack, StackError, StackLink};
use crate::proxy::{FaultProxy, Link, ToxiproxyClient};
use crate::target::Target;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The plan of `plan`'s posture restricted to the nodes and links `target` has.
pub fn plan_for(mut plan: StackPlan, target: &Target) -> StackPlan {
    let addresses = addresses(target);
    plan.nodes
        .retain(|n| addresses.nodes.contains_key(n) || target.nodes.contains_key(n));
    plan.links.retain(|l| target.links.contains_key(&l.name));
    plan
}

/// Attaches to the stack `target` describes (built for `plan`, see [`plan_for`]): checks
/// that its Toxiproxy has every proxy the file names, and finds the current primary.
pub async fn attach(plan: StackPlan, target: &Target) -> Result<Stack, StackError> {
    let api = target.toxiproxy.clone().unwrap_or_default();
    let client = ToxiproxyClient::new(api.clone());
    let mut links = BTreeMap::new();
    if !target.links.is_empty() {
        let proxies = client.proxies().await.map_err(|e| {
            StackError::Proxy(format!(
                "the target's Toxiproxy at {api} did not answer: {e}"
            ))
        })?;
        for spec in &plan.links {
            let named = &target.links[&spec.name];
            if !proxies.contains_key(&named.proxy) {
                return Err(StackError::Proxy(format!(
                    "the target's Toxiproxy at {api} has no proxy `{}` (link `{}` in {})",
                    named.proxy,
                    spec.name,
                    target.source.display()
                )));
            }
            let (host, port) = named.address.clone().unwrap_or_default();
            links.insert(
                spec.name.clone(),
                StackLink {
                    spec: spec.clone(),
                    port,
                    inside: (host, port),
                    link: Link::new(client.clone(), &named.proxy),
                },
            );
        }
    }
    let wiring = Wiring::external(plan.posture, addresses(target));
    let routing = Arc::new(Routing::for_plan(&plan));
    if plan.posture.has_standby() && !plan.posture.is_active_active() {
        if let Some(primary) = current_primary(&wiring, target).await {
            routing.follow(&primary);
        }
    }
    let db_only = !plan.nodes.iter().any(|n| n.role == Role::App);
    if db_only {
        // Database-only mode writes the app's tables itself.
        let primary = routing.snapshot().primary;
        let dsn = wiring
            .harness_db_dsn(&primary)
            .ok_or_else(|| StackError::NotRunning(format!("{primary}-db")))?;
        crate::workload::sql::ensure_schema(&dsn).await?;
    }
    let backend = ExternalBackend {
        target: target.clone(),
        links: links.values().map(|l| l.link.clone()).collect(),
        killed: Mutex::default(),
        paused: Mutex::default(),
    };
    let proxy = FaultProxy::External(if api.is_empty() {
        "none (the target has no Toxiproxy)".into()
    } else {
        api
    });
    Ok(Stack::assemble(
        plan,
        wiring,
        routing,
        proxy,
        links,
        Arc::new(backend),
    ))
}

/// The addresses a target gives, by node and link.
fn addresses(target: &Target) -> ExternalAddresses {
    let mut out = ExternalAddresses::default();
    for (region, r) in &target.regions {
        if let Some(w) = &r.write_db {
            out.write_dbs.insert(region.clone(), w.clone());
        }
        for (role, addr) in [
            (Role::Db, &r.db),
            (Role::Cache, &r.cache),
            (Role::App, &r.app),
        ] {
            if let Some(a) = addr {
                out.nodes.insert(NodeId::new(region, role), a.clone());
            }
        }
    }
    for (name, link) in &target.links {
        if let Some(a) = &link.address {
            out.links.insert(name.clone(), a.clone());
        }
    }
    out
}

/// The region whose database answers as a primary (the first in region order), if any.
async fn current_primary(wiring: &Wiring, target: &Target) -> Option<String> {
    for region in target.db_regions() {
        let dsn = wiring.harness_db_dsn(&region)?;
        let Ok(c) = crate::postgres::connect_dsn(&dsn, Duration::from_secs(3)).await else {
            continue;
        };
        if matches!(crate::postgres::in_recovery(&c).await, Ok(false)) {
            return Some(region);
        }
    }
    None
}

/// Operates a target's nodes through its commands.
struct ExternalBackend {
    target: Target,
    links: Vec<Link>,
    /// Nodes this drill killed and has not restarted.
    killed: Mutex<BTreeSet<NodeId>>,
    /// Nodes this drill paused and has not resumed.
    paused: Mutex<BTreeSet<NodeId>>,
}

impl ExternalBackend {
    async fn operate(&self, node: &NodeId, op: &str) -> Result<(), StackError> {
        let ops = self.target.nodes.get(node);
        let Some(cmd) = ops.and_then(|o| o.command(op)) else {
            return Err(StackError::Engine(format!(
                "{} has no `{op}` command for {node}",
                self.target.source.display()
            )));
        };
        let timeout = ops.map_or(crate::target::DEFAULT_COMMAND_TIMEOUT, |o| o.timeout);
        tracing::info!(%node, op, command = cmd, "target command");
        command::run(cmd, timeout)
            .await
            .map(drop)
            .map_err(|e| StackError::Engine(format!("{op} {node}: {e}")))
    }
}

impl Backend for ExternalBackend {
    fn name(&self) -> &'static str {
        "external"
    }

    fn prepare<'a>(
        &'a mut self,
        _plan: &'a StackPlan,
    ) -> BoxFuture<'a, Result<Placement, StackError>> {
        Box::pin(async { Err(not_ours("placed")) })
    }

    fn start_proxy(&self) -> BoxFuture<'_, Result<FaultProxy, StackError>> {
        Box::pin(async { Err(not_ours("given a fault proxy")) })
    }

    fn start<'a>(&'a self, _node: &'a NodeSpec) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(async { Err(not_ours("started")) })
    }

    fn run_tool<'a>(
        &'a self,
        _node: &'a NodeId,
        _argv: &'a [String],
    ) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(async { Err(not_ours("given tools to run")) })
    }

    fn kill<'a>(&'a self, nodes: &'a [NodeId]) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(async move {
            let kills = nodes.iter().map(|n| self.operate(n, "kill"));
            let results = futures::future::join_all(kills).await;
            let mut killed = self.killed.lock().expect("killed lock");
            for (n, r) in nodes.iter().zip(&results) {
                if r.is_ok() {
                    killed.insert(n.clone());
                }
            }
            drop(killed);
            results.into_iter().collect()
        })
    }

    fn pause<'a>(
        &'a self,
        node: &'a NodeId,
        paused: bool,
    ) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(async move {
            self.operate(node, if paused { "pause" } else { "resume" })
                .await?;
            let mut set = self.paused.lock().expect("paused lock");
            if paused {
                set.insert(node.clone());
            } else {
                set.remove(node);
            }
            Ok(())
        })
    }

    fn restart<'a>(&'a self, node: &'a NodeId) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(async move {
            // The command returns once the node is back (`docker start`, `kubectl scale …
            // && kubectl rollout status …`): what "back" means is the target's to say.
            self.operate(node, "restart").await?;
            self.killed.lock().expect("killed lock").remove(node);
            Ok(())
        })
    }

    fn run_on_data<'a>(
        &'a self,
        _node: &'a NodeId,
        _script: &'a str,
    ) -> BoxFuture<'a, Result<String, StackError>> {
        Box::pin(async { Err(not_ours("given scripts to run on its data")) })
    }

    fn set_clock<'a>(
        &'a self,
        _node: &'a NodeId,
        _offset_ms: i64,
    ) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(async { Err(not_ours("given a clock offset")) })
    }

    fn status<'a>(&'a self, node: &'a NodeId) -> BoxFuture<'a, NodeStatus> {
        Box::pin(async move {
            if self.killed.lock().expect("killed lock").contains(node) {
                NodeStatus::Down
            } else {
                NodeStatus::Running
            }
        })
    }

    fn keep_files(&self) -> Option<PathBuf> {
        None
    }

    fn remove(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for link in &self.links {
                if let Err(e) = link.heal().await {
                    tracing::warn!(link = link.name(), error = %e, "could not heal a target's link");
                }
            }
            let paused: Vec<NodeId> =
                std::mem::take(&mut *self.paused.lock().expect("paused lock"))
                    .into_iter()
                    .collect();
            for node in paused {
                if let Err(e) = self.operate(&node, "resume").await {
                    tracing::warn!(%node, error = %e, "could not resume a target's node");
                }
            }
            let killed: Vec<NodeId> = self
                .killed
                .lock()
                .expect("killed lock")
                .iter()
                .cloned()
                .collect();
            for node in killed {
                if let Err(e) = self.operate(&node, "restart").await {
                    tracing::warn!(%node, error = %e, "could not restart a target's node");
                }
            }
        })
    }
}

fn not_ours(what: &str) -> StackError {
    StackError::Engine(format!(
        "a target's nodes are not {what} by regiondrill: whoever runs the stack does that"
    ))
}
