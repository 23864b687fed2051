//! The workload: simulated users with home regions issuing reads and writes to their
//! region's app over HTTP, open-loop, on the seeded plan. Every operation is recorded.
//!
//! Users find their app through the routing table like clients through DNS: an answer is
//! kept for the TTL, so after a failover a user keeps calling the old region until its
//! answer expires. A user in one region calling an app in the other goes through the
//! `<region>-users-to-<region>-app` link and pays the round trip. A travelling user is in
//! the other region and calls that region's app, which (in partition-by-user) sends its
//! writes home. A stack without apps (a database-only target) is driven over SQL instead
//! ([`sql`]), its users' answers coming from the same routing table.

pub mod client;
pub mod plan;
pub mod sql;

use crate::history::Operation;
use crate::record::Recorder;
use crate::stack::Stack;
use client::AppClient;
use plan::Plan;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A user's cached routing answer.
#[derive(Debug, Clone)]
struct Route {
    to: Option<Destination>,
    fetched: Instant,
}

/// Where a user's operations go.
#[derive(Debug, Clone)]
enum Destination {
    /// An app's base URL.
    App(String),
    /// Databases, directly (database-only mode).
    Db(sql::SqlRoute),
}

/// Runs the plan against the stack; returns when every issued operation has completed (each
/// is bounded by the client timeout) or `cancel` fires.
pub async fn run(
    plan: Arc<Plan>,
    stack: Arc<Stack>,
    client: AppClient,
    dns_ttl: Duration,
    recorder: Recorder,
    cancel: CancellationToken,
) {
    let clock = recorder.clock();
    let db_only = !stack
        .nodes()
        .any(|n| n.role == crate::stack::topology::Role::App);
    let sql = sql::SqlClient::new(client.timeout());
    let routes: Arc<Vec<Mutex<Option<Route>>>> =
        Arc::new((0..plan.users).map(|_| Mutex::new(None)).collect());
    let mut inflight = tokio::task::JoinSet::new();
    // Drawn one at a time as each falls due: the plan is never held in memory.
    for op in plan.ops() {
        let due = tokio::time::Instant::from_std(clock.instant(op.at_ns));
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(due) => {}
        }
        // Reap finished tasks so the set stays small.
        while inflight.try_join_next().is_some() {}
        if plan.departed(op.user, op.at_ns) {
            continue;
        }
        let (plan, stack, client, sql, recorder, routes) = (
            plan.clone(),
            stack.clone(),
            client.clone(),
            sql.clone(),
            recorder.clone(),
            routes.clone(),
        );
        inflight.spawn(async move {
            let region = plan.home(op.user);
            let location = plan.location(op.user);
            let to = resolve(
                &routes[op.user as usize],
                &stack,
                location,
                dns_ttl,
                db_only,
            );
            let per_user = stack.posture == crate::posture::Posture::ActiveActivePartitioned;
            let key = plan.key(&op, per_user);
            let invoke_ns = recorder.clock().now();
            let outcome = match to {
                Some(Destination::App(base)) => {
                    client
                        .call(&base, op.kind, &key, op.id, op.user, region)
                        .await
                }
                Some(Destination::Db(route)) => {
                    sql.call(&route, op.kind, &key, op.id, op.user, location)
                        .await
                }
                None => crate::history::Outcome::Fail {
                    error: format!("no route for users in {location}"),
                },
            };
            let complete_ns = recorder.clock().now();
            recorder.op(Operation {
                from: (location != region).then(|| location.to_string()),
                id: op.id,
                user: op.user,
                region: region.to_string(),
                kind: op.kind,
                key,
                invoke_ns,
                planned_ns: Some(op.at_ns),
                complete_ns,
                outcome,
            });
        });
    }
    tokio::select! {
        _ = cancel.cancelled() => inflight.abort_all(),
        _ = async { while inflight.join_next().await.is_some() {} } => {}
    }
    // Aborted tasks finish at once; wait for them so none still holds the stack.
    while inflight.join_next().await.is_some() {}
}

/// Where the user's operations go: the cached answer while it is younger than the TTL, else
/// a fresh one from the routing table.
fn resolve(
    cache: &Mutex<Option<Route>>,
    stack: &Stack,
    region: &str,
    ttl: Duration,
    db_only: bool,
) -> Option<Destination> {
    let mut cached = cache.lock().expect("route lock");
    if let Some(r) = cached.as_ref() {
        if r.fetched.elapsed() < ttl {
            return r.to.clone();
        }
    }
    let to = if db_only {
        db_route(stack, region).map(Destination::Db)
    } else {
        let serving = stack.routing.serving(region);
        stack.app_url_for(region, &serving).map(Destination::App)
    };
    *cached = Some(Route {
        to: to.clone(),
        fetched: Instant::now(),
    });
    to
}

/// Database-only mode: writes through the region's write endpoint when the target names one,
/// else to the routed primary; reads from the database of the region serving the user (its
/// own, until a failover moves its region's users) unless that one has none or was deposed
/// (then the primary's).
fn db_route(stack: &Stack, region: &str) -> Option<sql::SqlRoute> {
    let serving = stack.routing.serving(region);
    let routing = stack.routing.snapshot();
    let (write_region, write) = match stack.users_write_dsn(region) {
        Some(dsn) => (region.to_string(), dsn),
        None => (routing.primary.clone(), stack.db_dsn(&routing.primary)?),
    };
    let (read_region, read) = match stack.db_dsn(&serving) {
        Some(dsn) if !routing.deposed.contains(&serving) => (serving, dsn),
        _ => (routing.primary.clone(), write.clone()),
    };
    Some(sql::SqlRoute {
        write_region,
        write,
        read_region,
        read,
    })
}
