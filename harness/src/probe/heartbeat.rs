//! Heartbeat lag: a row on the primary gets a new sequence number every `interval`; every
//! replica is polled every `poll`. The lag of heartbeat N on a replica is the time from its
//! commit returning on the primary to the first poll of that replica that sees N (or later:
//! WAL is applied in order). The measurement's resolution is the poll interval plus one
//! query; a heartbeat seen before its commit returned (synchronous replication) has lag 0.
//!
//! One writer serves every replica, so the replicas' lags are of the same commits: with three
//! regions, the lag to the far replica and to the near one differ by their links alone.
//!
//! Heartbeats are written only while the original primary is the primary: after a failover
//! the pairs being measured no longer exist.

use crate::history::{Heartbeat, Nanos};
use crate::postgres;
use crate::record::Clock;
use crate::stack::routing::Routing;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a heartbeat is written.
pub const WRITE_INTERVAL: Duration = Duration::from_millis(50);
/// How often the replica is polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Per replica: its heartbeats (the same sequence numbers and commit times for every
/// replica) and the highest sequence number it has shown.
#[derive(Default)]
struct State {
    beats: Vec<Vec<Heartbeat>>,
    seen: Vec<u64>,
}

/// The heartbeat probe of one primary and its replicas.
#[derive(Clone)]
pub struct HeartbeatProbe {
    state: Arc<Mutex<State>>,
    /// Connections made by [`HeartbeatProbe::setup`], so the first samples are not delayed
    /// by connecting: the primary's, then each replica's in the order given.
    primary: Arc<Mutex<Option<tokio_postgres::Client>>>,
    replicas: Arc<Vec<Mutex<Option<tokio_postgres::Client>>>>,
}

impl HeartbeatProbe {
    /// Creates the heartbeat table on the primary and connects to it and to every replica.
    pub async fn setup(
        primary_dsn: &str,
        replica_dsns: &[String],
    ) -> Result<HeartbeatProbe, postgres::PgError> {
        let c = postgres::connect_dsn(primary_dsn, Duration::from_secs(5)).await?;
        postgres::execute(&c, postgres::HARNESS_SCHEMA).await?;
        postgres::execute(
            &c,
            "INSERT INTO regiondrill_heartbeat VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET seq = 0",
        )
        .await?;
        let mut replicas = Vec::with_capacity(replica_dsns.len());
        for dsn in replica_dsns {
            let r = postgres::connect_dsn(dsn, Duration::from_secs(5)).await?;
            replicas.push(Mutex::new(Some(r)));
        }
        let state = State {
            beats: vec![Vec::new(); replica_dsns.len()],
            seen: vec![0; replica_dsns.len()],
        };
        Ok(HeartbeatProbe {
            state: Arc::new(Mutex::new(state)),
            primary: Arc::new(Mutex::new(Some(c))),
            replicas: Arc::new(replicas),
        })
    }

    /// Writes heartbeats on the primary until `cancel`, or until the routing table's primary
    /// is no longer `region`.
    pub async fn write(
        &self,
        primary_dsn: String,
        region: String,
        routing: Arc<Routing>,
        clock: Clock,
        cancel: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(WRITE_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut conn = self.primary.lock().expect("heartbeat lock").take();
        let mut seq = 0u64;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if routing.snapshot().primary != region {
                return;
            }
            if conn.as_ref().is_none_or(|c| c.is_closed()) {
                conn = postgres::connect_dsn(&primary_dsn, Duration::from_secs(1))
                    .await
                    .ok();
            }
            let Some(c) = conn.as_ref() else { continue };
            seq += 1;
            let value = seq as i64;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&value];
            let update = c.execute(
                "UPDATE regiondrill_heartbeat SET seq = $1 WHERE id = 1",
                &params,
            );
            match tokio::time::timeout(Duration::from_secs(1), update).await {
                Ok(Ok(_)) => {
                    let now = clock.now();
                    let s = &mut *self.state.lock().expect("heartbeat lock");
                    for (beats, &seen) in s.beats.iter_mut().zip(&s.seen) {
                        beats.push(Heartbeat {
                            seq,
                            committed_ns: now,
                            visible_ns: (seen >= seq).then_some(now),
                        });
                    }
                }
                // Not known to have committed: not recorded. A stuck commit (sync replication
                // with the standby cut off) holds this connection; start a new one.
                _ => conn = None,
            }
        }
    }

    /// Polls replica `index` (of those given to [`HeartbeatProbe::setup`]) until `cancel`.
    pub async fn poll(
        &self,
        index: usize,
        replica_dsn: String,
        clock: Clock,
        cancel: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut conn = self.replicas[index].lock().expect("heartbeat lock").take();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if conn.as_ref().is_none_or(|c| c.is_closed()) {
                conn = postgres::connect_dsn(&replica_dsn, Duration::from_secs(1))
                    .await
                    .ok();
            }
            let Some(c) = conn.as_ref() else { continue };
            let query = c.query_one("SELECT seq FROM regiondrill_heartbeat WHERE id = 1", &[]);
            let seen = match tokio::time::timeout(Duration::from_secs(1), query).await {
                Ok(Ok(row)) => row.get::<_, i64>(0) as u64,
                _ => {
                    conn = None;
                    continue;
                }
            };
            let now: Nanos = clock.now();
            let s = &mut *self.state.lock().expect("heartbeat lock");
            if seen > s.seen[index] {
                s.seen[index] = seen;
                for b in s.beats[index]
                    .iter_mut()
                    .rev()
                    .take_while(|b| b.visible_ns.is_none())
                {
                    if b.seq <= seen {
                        b.visible_ns = Some(now);
                    }
                }
            }
        }
    }

    /// Whether every replica has shown the last heartbeat written (true before the first).
    pub fn caught_up(&self) -> bool {
        let s = self.state.lock().expect("heartbeat lock");
        let last = s.beats.first().and_then(|b| b.last()).map_or(0, |b| b.seq);
        s.seen.iter().all(|&seen| seen >= last)
    }

    /// When the last heartbeat's commit returned (0 before the first).
    pub fn last_committed_ns(&self) -> Nanos {
        let s = self.state.lock().expect("heartbeat lock");
        s.beats
            .first()
            .and_then(|b| b.last())
            .map_or(0, |b| b.committed_ns)
    }

    /// The heartbeats so far, per replica in the order given to [`HeartbeatProbe::setup`].
    pub fn heartbeats(&self) -> Vec<Vec<Heartbeat>> {
        self.state.lock().expect("heartbeat lock").beats.clone()
    }
}
