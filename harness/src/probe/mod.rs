//! Probes: what the harness samples during the run, beside the clients' operations.
//! - [`heartbeat`]: replication lag as the time from a write's commit on the primary to its
//!   visibility on each replica.
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

use crate::history::{
    ErasureTrace, HealthSample, HostSample, Nanos, Probes, ReplicaProbes, ReplicationStat,
};
use crate::postgres::PgError;
use crate::record::Clock;
use crate::stack::Stack;
use crate::stack::topology::{NodeId, Role};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The replicas the replication-lag probes watch, (region, DSN) in the experiment's order:
/// every other region with a database (the first is the synchronous standby of `semi-sync`
/// and `sync`; in active-active, the other primaries).
fn lag_replicas(stack: &Stack, primary: &str) -> Vec<(String, String)> {
    stack
        .plan()
        .regions
        .iter()
        .filter(|r| *r != primary)
        .filter_map(|r| stack.db_dsn(r).map(|dsn| (r.clone(), dsn)))
        .collect()
}

/// How long after the last heartbeat's commit [`ProbeSet::finish`] waits for the replicas to
/// show it: the one-way delay of round trips up to 1.2 s (beyond that, the last heartbeats
/// may count as never replicated).
const CATCH_UP: std::time::Duration = std::time::Duration::from_millis(600);

/// The heartbeat probe, ready before the run's clock starts: the primary its table is on and
/// the replicas it watches, each (region, DSN), the replicas in its order.
pub struct PreparedHeartbeat {
    probe: heartbeat::HeartbeatProbe,
    primary: (String, String),
    replicas: Vec<(String, String)>,
}

/// What was sampled of one replica: its region and its `pg_stat_replication` samples.
type ReplicaStats = (String, Arc<Mutex<Vec<ReplicationStat>>>);

/// Every probe of a run, sampling until [`ProbeSet::finish`].
pub struct ProbeSet {
    tasks: tokio::task::JoinSet<()>,
    stop: CancellationToken,
    /// Stops the heartbeat writer alone (a child of `stop`): see [`ProbeSet::finish`].
    stop_writing: CancellationToken,
    clock: Clock,
    heartbeat: Option<heartbeat::HeartbeatProbe>,
    /// Per replica watched, in [`lag_replicas`]' order.
    replication: Vec<ReplicaStats>,
    health: Arc<Mutex<Vec<HealthSample>>>,
    host: Arc<Mutex<Vec<HostSample>>>,
    erasure: Arc<Mutex<Vec<ErasureTrace>>>,
}

impl ProbeSet {
    /// Prepares the heartbeat probe (its table and connections) before the run's clock
    /// starts, so that the workload's first operations are not late by its set-up.
    pub async fn prepare(stack: &Stack) -> Result<Option<PreparedHeartbeat>, PgError> {
        let primary = stack.routing.snapshot().primary;
        let replicas = lag_replicas(stack, &primary);
        let (Some(primary_dsn), false) = (stack.db_dsn(&primary), replicas.is_empty()) else {
            return Ok(None);
        };
        let dsns: Vec<String> = replicas.iter().map(|(_, dsn)| dsn.clone()).collect();
        let probe = heartbeat::HeartbeatProbe::setup(&primary_dsn, &dsns).await?;
        Ok(Some(PreparedHeartbeat {
            probe,
            primary: (primary, primary_dsn),
            replicas,
        }))
    }

    /// Starts the probes of `stack` on `clock`: heartbeats (prepared by
    /// [`ProbeSet::prepare`]) and `pg_stat_replication` between the primary and every other
    /// region's database (when there is one), every region's in-region health, and the
    /// host's.
    pub fn start(
        stack: &Arc<Stack>,
        heartbeat: Option<PreparedHeartbeat>,
        clock: Clock,
        stop: CancellationToken,
    ) -> ProbeSet {
        let mut set = ProbeSet {
            tasks: tokio::task::JoinSet::new(),
            stop_writing: stop.child_token(),
            stop,
            clock,
            heartbeat: None,
            replication: Vec::new(),
            health: Arc::default(),
            host: Arc::default(),
            erasure: Arc::default(),
        };
        let (out, stop) = (set.host.clone(), set.stop.clone());
        set.tasks.spawn(host::watch(clock, out, stop));
        if let Some(prepared) = heartbeat {
            let (hb, (primary, primary_dsn)) = (prepared.probe, prepared.primary);
            let (h, dsn, region, routing, stop) = (
                hb.clone(),
                primary_dsn.clone(),
                primary.clone(),
                stack.routing.clone(),
                set.stop_writing.clone(),
            );
            set.tasks
                .spawn(async move { h.write(dsn, region, routing, clock, stop).await });
            for (index, (replica, replica_dsn)) in prepared.replicas.into_iter().enumerate() {
                let (h, stop) = (hb.clone(), set.stop.clone());
                set.tasks
                    .spawn(async move { h.poll(index, replica_dsn, clock, stop).await });
                // pg_stat_replication names a physical standby by its cluster_name, a
                // logical subscriber by its subscription.
                let walsender = if stack.posture.is_active_active() {
                    crate::postgres::subscription_name(&primary, &replica)
                } else if stack.plan().pg_auto_failover.is_some() {
                    crate::stack::pg_auto_failover::SECOND_STANDBY.to_string()
                } else {
                    replica.clone()
                };
                let out: Arc<Mutex<Vec<ReplicationStat>>> = Arc::default();
                set.tasks.spawn(replication_stat::sample(
                    primary_dsn.clone(),
                    walsender,
                    clock,
                    out.clone(),
                    set.stop.clone(),
                ));
                set.replication.push((replica, out));
            }
            set.heartbeat = Some(hb);
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
    ///
    /// Heartbeats stop first, and the replicas are polled until they have shown the last one
    /// (for at most [`CATCH_UP`]): a heartbeat committed within a link's one-way delay of the
    /// end is on its way, not unreplicated.
    pub async fn finish(mut self) -> Probes {
        self.stop_writing.cancel();
        if let Some(h) = &self.heartbeat {
            // From the last heartbeat's commit: after a failover stopped them long ago, or
            // with every replica caught up, there is nothing to wait for.
            let until = h.last_committed_ns() + CATCH_UP.as_nanos() as Nanos;
            while !self.stop.is_cancelled() && !h.caught_up() && self.clock.now() < until {
                tokio::time::sleep(heartbeat::POLL_INTERVAL).await;
            }
        }
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        let mut health = std::mem::take(&mut *self.health.lock().expect("health lock"));
        health.sort_by_key(|s| s.at_ns);
        // One list of heartbeats per replica watched, in the same order as their samples.
        let beats = self.heartbeat.map(|h| h.heartbeats()).unwrap_or_default();
        let mut replicas: Vec<ReplicaProbes> = self
            .replication
            .into_iter()
            .zip(beats)
            .map(|((replica, stats), heartbeats)| ReplicaProbes {
                replica,
                heartbeats,
                replication: std::mem::take(&mut *stats.lock().expect("stat lock")),
            })
            .collect();
        let first = (!replicas.is_empty()).then(|| replicas.remove(0));
        let (lag_replica, heartbeats, replication) = match first {
            Some(r) => (Some(r.replica), r.heartbeats, r.replication),
            None => (None, Vec::new(), Vec::new()),
        };
        Probes {
            heartbeat_poll_ms: heartbeat::POLL_INTERVAL.as_secs_f64() * 1e3,
            heartbeats,
            replication,
            lag_replica,
            other_replicas: replicas,
            health,
            host: std::mem::take(&mut *self.host.lock().expect("host lock")),
            erasure: std::mem::take(&mut *self.erasure.lock().expect("erasure lock")),
            in_flight: None,
        }
    }
}
