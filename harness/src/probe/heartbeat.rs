//! Heartbeat lag: a row on the primary gets a new sequence number every `interval`; the
//! replica is polled every `poll`. The lag of heartbeat N is the time from its commit
//! returning on the primary to the first poll of the replica that sees N (or later: WAL is
//! applied in order). The measurement's resolution is the poll interval plus one query; a
//! heartbeat seen before its commit returned (synchronous replication) has lag 0.
//!
//! Heartbeats are written only while the original primary is the primary: after a failover
//! the pair being measured no longer exists.

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

#[derive(Default)]
struct State {
    beats: Vec<Heartbeat>,
    /// Highest sequence number the replica has shown.
    seen: u64,
}

/// The heartbeat probe of one primary/replica pair.
#[derive(Clone)]
pub struct HeartbeatProbe {
    state: Arc<Mutex<State>>,
    /// Connections made by [`HeartbeatProbe::setup`], so the first samples are not delayed
    /// by connecting.
    primary: Arc<Mutex<Option<tokio_postgres::Client>>>,
    replica: Arc<Mutex<Option<tokio_postgres::Client>>>,
}

impl HeartbeatProbe {
    /// Creates the heartbeat table on the primary and connects to both ends.
    pub async fn setup(
        primary_dsn: &str,
        replica_dsn: &str,
    ) -> Result<HeartbeatProbe, postgres::PgError> {
        let c = postgres::connect_dsn(primary_dsn, Duration::from_secs(5)).await?;
        postgres::execute(&c, postgres::HARNESS_SCHEMA).await?;
        postgres::execute(
            &c,
            "INSERT INTO regiondrill_heartbeat VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET seq = 0",
        )
        .await?;
        let replica = postgres::connect_dsn(replica_dsn, Duration::from_secs(5)).await?;
        Ok(HeartbeatProbe {
            state: Arc::default(),
            primary: Arc::new(Mutex::new(Some(c))),
            replica: Arc::new(Mutex::new(Some(replica))),
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
                    let mut s = self.state.lock().expect("heartbeat lock");
                    let visible_ns = (s.seen >= seq).then_some(now);
                    s.beats.push(Heartbeat {
                        seq,
                        committed_ns: now,
                        visible_ns,
                    });
                }
                // Not known to have committed: not recorded. A stuck commit (sync replication
                // with the standby cut off) holds this connection; start a new one.
                _ => conn = None,
            }
        }
    }

    /// Polls the replica until `cancel`.
    pub async fn poll(&self, replica_dsn: String, clock: Clock, cancel: CancellationToken) {
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut conn = self.replica.lock().expect("heartbeat lock").take();
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
            let mut s = self.state.lock().expect("heartbeat lock");
            if seen > s.seen {
                s.seen = seen;
                for b in s
                    .beats
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

    /// The heartbeats so far.
    pub fn heartbeats(&self) -> Vec<Heartbeat> {
        self.state.lock().expect("heartbeat lock").beats.clone()
    }
}
