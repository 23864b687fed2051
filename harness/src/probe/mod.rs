//! Probes: what the harness samples during the run, beside the clients' operations.
//! - [`heartbeat`]: replication lag as the time from a write's commit on the primary to its
//!   visibility on the replica.
//! - [`replication_stat`]: PostgreSQL's own view (`pg_stat_replication`).
//! - [`health`]: each region's database checked from inside its region.
//! - [`host`]: the harness host's own health (timer lag, CPU).
//! - [`erasure`]: where copies of users asked to be erased still are, poll after poll.
//!
//! Probes connect to the databases directly (not through links): they measure, they are not
//! part of the system under test. [`ProbeSet`] starts them all for a stack and collects
//! their samples.

pub mod erasure;
pub mod health;
pub mod heartbeat;
pub mod host;
pub mod replication_stat;

use crate::history::{ErasureTrace, HealthSample, HostSample, Nanos, Probes, ReplicationStat};
use crate::postgres::PgError;
use crate::record::Clock;
use crate::stack::Stack;
use crate::stack::topology::{NodeId, Role};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The region whose database the replication-lag probes watch: the first other region with a
/// database (the synchronous standby of `semi-sync` and `sync`; in active-active, the other
/// primary).
fn lag_standby(stack: &Stack, primary: &str) -> Option<String> {
    stack
        .plan()
        .regions
        .iter()
        .find(|r| *r != primary && stack.db_dsn(r).is_some())
        .cloned()
}

/// Every probe of a run, sampling until [`ProbeSet::finish`].
pub struct ProbeSet {
    tasks: tokio::task::JoinSet<()>,
    stop: CancellationToken,
    heartbeat: Option<heartbeat::HeartbeatProbe>,
    replication: Arc<Mutex<Vec<ReplicationStat>>>,
    health: Arc<Mutex<Vec<HealthSample>>>,
    host: Arc<Mutex<Vec<HostSample>>>,
    erasure: Arc<Mutex<Vec<ErasureTrace>>>,
}

impl ProbeSet {
    /// Prepares the heartbeat probe (its table and connections) before the run's clock
    /// starts, so that the workload's first operations are not late by its set-up.
    pub async fn prepare(stack: &Stack) -> Result<Option<heartbeat::HeartbeatProbe>, PgError> {
        let primary = stack.routing.snapshot().primary;
        let standby = lag_standby(stack, &primary);
        match (
            stack.db_dsn(&primary),
            standby.and_then(|s| stack.db_dsn(&s)),
        ) {
            (Some(primary), Some(replica)) => heartbeat::HeartbeatProbe::setup(&primary, &replica)
                .await
                .map(Some),
            _ => Ok(None),
        }
    }

    /// Starts the probes of `stack` on `clock`: heartbeats (prepared by
    /// [`ProbeSet::prepare`]) and `pg_stat_replication` between the primary and the other
    /// region's database (when there is one), every region's in-region health, and the
    /// host's.
    pub fn start(
        stack: &Arc<Stack>,
        heartbeat: Option<heartbeat::HeartbeatProbe>,
        clock: Clock,
        stop: CancellationToken,
    ) -> ProbeSet {
        let mut set = ProbeSet {
            tasks: tokio::task::JoinSet::new(),
            stop,
            heartbeat: None,
            replication: Arc::default(),
            health: Arc::default(),
            host: Arc::default(),
            erasure: Arc::default(),
        };
        let (out, stop) = (set.host.clone(), set.stop.clone());
        set.tasks.spawn(host::watch(clock, out, stop));
        let primary = stack.routing.snapshot().primary;
        let standby = lag_standby(stack, &primary).unwrap_or_default();
        let (Some(primary_dsn), replica) = (stack.db_dsn(&primary), stack.db_dsn(&standby)) else {
            return set;
        };
        if let (Some(replica_dsn), Some(hb)) = (replica, heartbeat) {
            let (h, dsn, region, routing, stop) = (
                hb.clone(),
                primary_dsn.clone(),
                primary.clone(),
                stack.routing.clone(),
                set.stop.clone(),
            );
            set.tasks
                .spawn(async move { h.write(dsn, region, routing, clock, stop).await });
            let (h, stop) = (hb.clone(), set.stop.clone());
            set.tasks
                .spawn(async move { h.poll(replica_dsn, clock, stop).await });
            set.heartbeat = Some(hb);
            // pg_stat_replication names a physical standby by its cluster_name, a logical
            // subscriber by its subscription.
            let walsender = if stack.posture.is_active_active() {
                crate::postgres::subscription_name(&primary, &standby)
            } else if stack.plan().pg_auto_failover.is_some() {
                crate::stack::pg_auto_failover::SECOND_STANDBY.to_string()
            } else {
                standby.clone()
            };
            let (out, stop) = (set.replication.clone(), set.stop.clone());
            set.tasks.spawn(replication_stat::sample(
                primary_dsn,
                walsender,
                clock,
                out,
                stop,
            ));
        }
        for node in stack.nodes().filter(|n| n.role == Role::Db) {
            let NodeId { region, .. } = node.clone();
            let Some(dsn) = stack.db_dsn(&region) else {
                continue;
            };
            let (out, stop) = (set.health.clone(), set.stop.clone());
            set.tasks
                .spawn(health::watch(region, dsn, clock, out, stop));
        }
        set
    }

    /// Starts the erasure probe ([`erasure`]) for `targets` (planned time, user, home),
    /// polling every `poll`.
    pub fn watch_erasures(
        &mut self,
        stack: &Arc<Stack>,
        targets: Vec<(Nanos, u32, String)>,
        poll: std::time::Duration,
        clock: Clock,
    ) {
        if targets.is_empty() {
            return;
        }
        let (out, stop) = (self.erasure.clone(), self.stop.clone());
        self.tasks.spawn(erasure::watch(
            stack.clone(),
            targets,
            poll,
            clock,
            out,
            stop,
        ));
    }

    /// Stops every probe and returns what they sampled (health samples in time order).
    pub async fn finish(mut self) -> Probes {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        let mut health = std::mem::take(&mut *self.health.lock().expect("health lock"));
        health.sort_by_key(|s| s.at_ns);
        Probes {
            heartbeat_poll_ms: heartbeat::POLL_INTERVAL.as_secs_f64() * 1e3,
            heartbeats: self.heartbeat.map(|h| h.heartbeats()).unwrap_or_default(),
            replication: std::mem::take(&mut *self.replication.lock().expect("stat lock")),
            health,
            host: std::mem::take(&mut *self.host.lock().expect("host lock")),
            erasure: std::mem::take(&mut *self.erasure.lock().expect("erasure lock")),
            in_flight: None,
        }
    }
}
