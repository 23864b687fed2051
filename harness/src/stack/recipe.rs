//! The one bring-up recipe: any [`StackPlan`] over any [`Backend`].
//!
//! 1. The backend places the plan (ports, networks).
//! 2. At once: the fault proxy and every node (see [`super::plan`] for why nothing waits
//!    for anything at start), then the links once the proxy answers.
//! 3. Every node's readiness, checked in parallel from the harness; a node that exits
//!    meanwhile fails the bring-up at once, with the end of its log.
//! 4. The posture's set-up, which needs ready nodes: the app's schema on each primary, then
//!    the commit mode once the standby streams (active-passive), or logical replication
//!    both ways (active-active).
//! 5. Each link's round trip: that of the pair of regions it joins.
//!
//! A failure at any step drops the backend, which removes what it started.

use super::backend::{Backend, NodeStatus};
use super::plan::{NodeSpec, Readiness, StackPlan};
use super::routing::Routing;
use super::topology::{NodeId, Role};
use super::wiring::Wiring;
use super::{Stack, StackError, StackLink};
use crate::proxy::{FaultProxy, Link, ProxySpec};
use futures::future::try_join_all;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a node may take to become ready (a container may have to start from cold).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// Brings `plan` up on `backend`.
pub async fn bring_up(plan: StackPlan, mut backend: Box<dyn Backend>) -> Result<Stack, StackError> {
    let t = std::time::Instant::now();
    let placement = backend.prepare(&plan).await?;
    tracing::debug!(elapsed_ms = t.elapsed().as_millis() as u64, "placed");
    let wiring =
        Wiring::new(plan.posture, placement).with_multi_host(plan.pg_auto_failover.is_some());
    let routing = Arc::new(Routing::for_plan(&plan));
    let specs = plan.specs(&wiring, &routing.snapshot());
    let backend: Arc<dyn Backend> = Arc::from(backend);
    let now = specs.iter().filter(|s| s.after.is_none());
    let starts = try_join_all(now.map(|s| backend.start(s)));
    let (proxy, started) = tokio::join!(backend.start_proxy(), starts);
    let proxy = proxy?;
    started?;
    if plan.count_tokens {
        // Before any link exists: every connection of the run is counted. The built-in proxy
        // in a container counts through its API; a real Toxiproxy cannot (not counted).
        match &proxy {
            crate::proxy::FaultProxy::BuiltIn(server) => server.token_meter().enable(),
            other => {
                if let Err(e) = other.client().count_tokens().await {
                    tracing::info!(error = %e, "this fault proxy does not count tokens");
                }
            }
        }
    }
    tracing::debug!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "nodes and proxy started"
    );
    let (links, ready) = tokio::join!(
        create_links(&proxy, &plan, &wiring),
        try_join_all(
            specs
                .iter()
                .map(|s| start_when_due(&*backend, s, &specs, &wiring))
        )
    );
    let links = links?;
    ready?;
    tracing::debug!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "links created, nodes ready"
    );
    set_up_posture(&plan, &wiring, &*backend, &links).await?;
    tracing::debug!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "posture set up"
    );
    let stack = Stack::assemble(plan, wiring, routing, proxy, links, backend);
    stack.apply_rtts().await?;
    tracing::info!(
        backend = stack.backend(),
        elapsed_ms = t.elapsed().as_millis() as u64,
        "stack up"
    );
    Ok(stack)
}

/// One proxy per link, listening where the placement says, forwarding to its target.
async fn create_links(
    proxy: &FaultProxy,
    plan: &StackPlan,
    wiring: &Wiring,
) -> Result<BTreeMap<String, StackLink>, StackError> {
    let client = proxy.client();
    let create = plan.links.iter().map(|spec| {
        let client = client.clone();
        async move {
            let placed = wiring
                .link(&spec.name)
                .ok_or_else(|| StackError::NotPlaced(spec.name.clone()))?;
            let target = wiring
                .endpoint(&spec.target)
                .ok_or_else(|| StackError::NotPlaced(spec.target.to_string()))?;
            client
                .create_proxy(&ProxySpec {
                    name: spec.name.clone(),
                    listen: placed.listen.clone(),
                    upstream: format!("{}:{}", target.inside.0, target.inside.1),
                    enabled: true,
                })
                .await?;
            Ok::<_, StackError>((
                spec.name.clone(),
                StackLink {
                    spec: spec.clone(),
                    port: placed.endpoint.port,
                    inside: placed.endpoint.inside.clone(),
                    link: Link::new(client, &spec.name),
                },
            ))
        }
    });
    Ok(try_join_all(create).await?.into_iter().collect())
}

/// Waits until `node` is ready; a node started after another (`after`) is started once that
/// one is ready, first.
async fn start_when_due(
    backend: &dyn Backend,
    node: &NodeSpec,
    all: &[NodeSpec],
    wiring: &Wiring,
) -> Result<(), StackError> {
    if let Some(first) = &node.after {
        let first = all
            .iter()
            .find(|s| s.id == *first)
            .ok_or_else(|| StackError::NotPlaced(first.to_string()))?;
        wait_ready(backend, first, wiring).await?;
        backend.start(node).await?;
    }
    wait_ready(backend, node, wiring).await
}

/// Waits until `node` is ready (checked on its harness port every 10 ms), or fails with the
/// backend's diagnosis when it exits or time runs out.
pub(super) async fn wait_ready(
    backend: &dyn Backend,
    node: &NodeSpec,
    wiring: &Wiring,
) -> Result<(), StackError> {
    let port = wiring
        .endpoint(&node.id)
        .ok_or_else(|| StackError::NotPlaced(node.id.to_string()))?
        .port;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("static client");
    let deadline = tokio::time::Instant::now() + READY_WITHIN;
    loop {
        let ready = match node.ready {
            Readiness::Sql => crate::postgres::answers(port, Duration::from_millis(500)).await,
            Readiness::Monitor => super::pg_auto_failover::monitor_ready(port).await,
            Readiness::RedisPing => redis_pings(port).await,
            Readiness::EtcdCluster => etcd_cluster_decided(&http, port).await,
            Readiness::Http(path) => http
                .get(format!("http://127.0.0.1:{port}{path}"))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok(),
        };
        if ready {
            tracing::debug!(node = %node.id, "ready");
            return Ok(());
        }
        let status = backend.status(&node.id).await;
        let late = tokio::time::Instant::now() > deadline;
        if let NodeStatus::Exited { status, log_tail } = status {
            return Err(StackError::NotReady {
                node: node.id.to_string(),
                why: format!("exited during start-up ({status})"),
                log_tail,
            });
        }
        if late {
            return Err(StackError::NotReady {
                node: node.id.to_string(),
                why: format!("not ready after {READY_WITHIN:?}"),
                log_tail: String::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether Redis on `127.0.0.1:port` answers PING within 500 ms.
pub(crate) async fn redis_pings(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await.ok()?;
        (&buf == b"+PONG\r\n").then_some(())
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Some(()))
    )
}

/// Whether etcd on `127.0.0.1:port` answers `/version` with its cluster's version decided.
async fn etcd_cluster_decided(http: &reqwest::Client, port: u16) -> bool {
    let answer = http
        .get(format!("http://127.0.0.1:{port}/version"))
        .timeout(Duration::from_secs(1))
        .send()
        .await;
    let Ok(answer) = answer else { return false };
    let version: serde_json::Value = answer.json().await.unwrap_or_default();
    version["etcdcluster"]
        .as_str()
        .is_some_and(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
}

/// What the posture needs once every node is ready.
async fn set_up_posture(
    plan: &StackPlan,
    wiring: &Wiring,
    backend: &dyn Backend,
    links: &BTreeMap<String, StackLink>,
) -> Result<(), StackError> {
    let primaries = plan.primary_regions();
    // The app's schema, by the app itself, beside each primary region's app.
    try_join_all(primaries.iter().map(|region| async move {
        let dsn = wiring
            .inside_db_dsn(region)
            .ok_or_else(|| StackError::NotPlaced(format!("{region}-db")))?;
        let argv = crate::app::migrate_command(&dsn, &plan.tuning);
        backend
            .run_tool(&NodeId::new(region, Role::App), &argv)
            .await
    }))
    .await?;
    tracing::debug!("migrated");
    if plan.posture.is_active_active() {
        replicate_every_way(&plan.regions, wiring, links, &plan.unpublished).await
    } else if let Some(paf) = &plan.pg_auto_failover {
        let monitor = NodeId::new(&paf.monitor.region, Role::Dcs);
        let monitor = wiring
            .endpoint(&monitor)
            .ok_or_else(|| StackError::NotPlaced(monitor.to_string()))?
            .port;
        let dbs = plan
            .regions
            .iter()
            .map(|r| Ok((r.clone(), db_port(wiring, r)?)))
            .collect::<Result<Vec<_>, StackError>>()?;
        super::pg_auto_failover::set_up(paf, monitor, &dbs)
            .await
            .map_err(StackError::from)
    } else if let Some(patroni) = &plan.patroni {
        // Patroni owns the commit mode (synchronous_mode): only wait for the standby.
        let port = db_port(wiring, &primaries[0])?;
        crate::postgres::await_standby(port, &plan.regions[1], patroni.synchronous_mode)
            .await
            .map_err(StackError::from)
    } else if plan.posture.has_standby() {
        let port = db_port(wiring, &primaries[0])?;
        let standbys = plan.standby_regions();
        let commit = plan.posture.commit_settings(&standbys);
        crate::postgres::require_standbys(port, &commit, &standbys)
            .await
            .map_err(StackError::from)
    } else {
        Ok(())
    }
}

fn db_port(wiring: &Wiring, region: &str) -> Result<u16, StackError> {
    wiring
        .endpoint(&NodeId::new(region, Role::Db))
        .map(|e| e.port)
        .ok_or_else(|| StackError::NotPlaced(format!("{region}-db")))
}

/// Active-active replication (every primary up and migrated): each region's tables flow to
/// every other region through that region's replication link to it (`eu` receives `us`'s
/// through `replication`, `us` receives `eu`'s through `replication-to-us`, `ap` receives
/// `us`'s through `ap-db-to-us-db`), except the tables named in `unpublished`, which stay in
/// their region. The first region creates its publication (and the harness's table is
/// replicated from it).
async fn replicate_every_way(
    regions: &[String],
    wiring: &Wiring,
    links: &BTreeMap<String, StackLink>,
    unpublished: &[String],
) -> Result<(), StackError> {
    use super::topology::{LinkPurpose, link_name};
    let via = |name: &str| {
        links
            .get(name)
            .map(|l| crate::postgres::dsn_at(&l.inside.0, l.inside.1))
            .ok_or_else(|| StackError::NotPlaced(name.to_string()))
    };
    for r in regions {
        let c = crate::postgres::connect(db_port(wiring, r)?, Duration::from_secs(3)).await?;
        crate::postgres::execute(&c, crate::postgres::HARNESS_SCHEMA).await?;
    }
    for (i, from) in regions.iter().enumerate() {
        let subscribers = regions
            .iter()
            .filter(|to| *to != from)
            .map(|to| {
                let link = via(&link_name(to, LinkPurpose::Replication, from))?;
                Ok((to.clone(), db_port(wiring, to)?, link))
            })
            .collect::<Result<Vec<_>, StackError>>()?;
        let from_port = db_port(wiring, from)?;
        crate::postgres::replicate(from, from_port, &subscribers, i == 0, unpublished).await?;
    }
    Ok(())
}
