//! In-region health: every 100 ms, `SELECT 1` against each region's database, sent from
//! inside that region (the harness reaches a node directly, never through a cross-region
//! link). A partition between regions cannot fail it; a database that is down, frozen or not
//! answering within 250 ms does. It is what "the primary was healthy and reachable from its
//! own region" means when a failover is judged false.

use crate::history::HealthSample;
use crate::record::Clock;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often each region's database is checked.
pub const INTERVAL: Duration = Duration::from_millis(100);
/// How long one check may take before it counts as failed.
pub const TIMEOUT: Duration = Duration::from_millis(250);

/// Checks `region`'s database at `dsn` until `cancel`, appending to `out`.
pub async fn watch(
    region: String,
    dsn: String,
    clock: Clock,
    out: Arc<Mutex<Vec<HealthSample>>>,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<tokio_postgres::Client> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let at_ns = clock.now();
        let check = async {
            if conn.as_ref().is_none_or(|c| c.is_closed()) {
                conn = crate::postgres::connect_dsn(&dsn, TIMEOUT).await.ok();
            }
            conn.as_ref()?.simple_query("SELECT 1").await.ok()
        };
        let ok = matches!(tokio::time::timeout(TIMEOUT, check).await, Ok(Some(_)));
        if !ok {
            // A frozen server keeps the connection open: start afresh next time.
            conn = None;
        }
        out.lock().expect("health lock").push(HealthSample {
            at_ns,
            region: region.clone(),
            ok,
        });
    }
}
