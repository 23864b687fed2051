//! PostgreSQL's own view of replication, sampled from the primary's `pg_stat_replication`:
//! whether the replica is connected, its `replay_lag` and how many WAL bytes it is behind.

use crate::history::ReplicationStat;
use crate::postgres;
use crate::record::Clock;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often `pg_stat_replication` is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// Samples `pg_stat_replication` for the standby named `standby` until `cancel`; stops once
/// the primary is gone for good (samples that fail are skipped).
pub async fn sample(
    primary_dsn: String,
    standby: String,
    clock: Clock,
    out: Arc<Mutex<Vec<ReplicationStat>>>,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(SAMPLE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<tokio_postgres::Client> = None;
    let sql = "SELECT (EXTRACT(EPOCH FROM replay_lag) * 1000)::float8, \
               pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint \
               FROM pg_stat_replication WHERE application_name = $1";
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if conn.as_ref().is_none_or(|c| c.is_closed()) {
            conn = postgres::connect_dsn(&primary_dsn, Duration::from_millis(500))
                .await
                .ok();
        }
        let Some(c) = conn.as_ref() else { continue };
        let at_ns = clock.now();
        match tokio::time::timeout(Duration::from_millis(500), c.query(sql, &[&standby])).await {
            Ok(Ok(rows)) => {
                let stat = match rows.first() {
                    Some(r) => ReplicationStat {
                        at_ns,
                        connected: true,
                        replay_lag_ms: r.get::<_, Option<f64>>(0),
                        bytes_behind: r.get::<_, Option<i64>>(1).map(|b| b.max(0) as u64),
                    },
                    None => ReplicationStat {
                        at_ns,
                        connected: false,
                        replay_lag_ms: None,
                        bytes_behind: None,
                    },
                };
                out.lock().expect("stat lock").push(stat);
            }
            _ => conn = None,
        }
    }
}
