//! The final state: what the system holds once every fault is healed and it has settled —
//! read straight from the databases, the way the app would read it
//! ([`crate::app::final_state_queries`]): in active-passive and single-region the current
//! primary, in active-active each reachable region's database.
//!
//! A database that cannot be read is left out; with none readable, lost writes are "not
//! checked" rather than zero.

use crate::history::{FinalState, RegionState, StandbyState};
use crate::postgres;
use crate::posture::Posture;
use crate::stack::Stack;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Reads the final state (each database within 10 s).
pub async fn read(stack: &Stack) -> FinalState {
    let regions: Vec<String> = if stack.posture.is_active_active() {
        stack.plan().regions.clone()
    } else {
        vec![stack.routing.snapshot().primary]
    };
    let mut state = FinalState::default();
    let mut ids = BTreeSet::new();
    for region in regions {
        let Some(dsn) = stack.db_dsn(&region) else {
            continue;
        };
        match tokio::time::timeout(
            Duration::from_secs(10),
            read_region(&dsn, stack.posture, &stack.plan().regions),
        )
        .await
        {
            Ok(Ok((write_ids, region_state))) => {
                ids.extend(write_ids);
                state.primary_region.get_or_insert_with(|| region.clone());
                state.regions.insert(region, region_state);
            }
            Ok(Err(e)) => tracing::warn!(%region, error = %e, "cannot read the final state"),
            Err(_) => tracing::warn!(%region, "reading the final state timed out"),
        }
    }
    state.write_ids = ids.into_iter().collect();
    if stack.posture.has_standby() && !stack.posture.is_active_active() {
        let topology = tokio::time::timeout(Duration::from_secs(10), roles(stack)).await;
        if let Ok((primaries, standbys)) = topology {
            state.primaries = primaries;
            state.standbys = standbys;
        }
    }
    state
}

/// How far the standby at `dsn` is behind `target` (bytes of the primary's WAL, as the
/// standby itself has replayed it: `pg_stat_replication`'s replay position is only as fresh
/// as the standby's last report, up to 10 s old when idle), once it has replayed `target` or
/// after 5 s. None when it cannot be read.
async fn behind(dsn: &str, target: i64) -> Option<i64> {
    let c = postgres::connect_dsn(dsn, Duration::from_secs(2))
        .await
        .ok()?;
    let sql = "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let replayed: Option<i64> = postgres::query(&c, sql).await.ok()?.first()?.get(0);
        let behind = (target - replayed?).max(0);
        if behind == 0 || tokio::time::Instant::now() > deadline {
            return Some(behind);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Which regions' databases answer as primaries, and the routed primary's standbys, each
/// with how far it is behind the primary's position when the state was read.
async fn roles(stack: &Stack) -> (Vec<String>, Vec<StandbyState>) {
    let mut primaries = Vec::new();
    for region in &stack.plan().regions {
        let Some(dsn) = stack.db_dsn(region) else {
            continue;
        };
        let Ok(c) = postgres::connect_dsn(&dsn, Duration::from_secs(2)).await else {
            continue;
        };
        if matches!(postgres::in_recovery(&c).await, Ok(false)) {
            primaries.push(region.to_string());
        }
    }
    let primary = stack.routing.snapshot().primary;
    let mut standbys = Vec::new();
    let Some(dsn) = stack.db_dsn(&primary) else {
        return (primaries, standbys);
    };
    let Ok(c) = postgres::connect_dsn(&dsn, Duration::from_secs(2)).await else {
        return (primaries, standbys);
    };
    let Ok(target) = postgres::current_lsn(&c).await else {
        return (primaries, standbys);
    };
    let sql = "SELECT application_name, state, sync_state FROM pg_stat_replication \
               ORDER BY application_name";
    let Ok(rows) = postgres::query(&c, sql).await else {
        return (primaries, standbys);
    };
    for r in rows {
        let region = r.get::<_, Option<String>>(0).unwrap_or_default();
        let behind = match stack.db_dsn(&region) {
            Some(dsn) => behind(&dsn, target).await,
            None => None,
        };
        standbys.push(StandbyState {
            region,
            state: r.get::<_, Option<String>>(1).unwrap_or_default(),
            sync_state: r.get::<_, Option<String>>(2).unwrap_or_default(),
            bytes_behind: behind,
        });
    }
    (primaries, standbys)
}

async fn read_region(
    dsn: &str,
    posture: Posture,
    regions: &[String],
) -> Result<(Vec<u64>, RegionState), String> {
    let c = postgres::connect_dsn(dsn, Duration::from_secs(3))
        .await
        .map_err(|e| e.to_string())?;
    let [writes, kv, counters] = crate::app::final_state_queries(posture, regions);
    let q = |sql: &str| {
        let c = &c;
        let sql = sql.to_string();
        async move { c.query(&sql, &[]).await.map_err(|e| format!("{sql}: {e}")) }
    };
    let write_ids = q(&writes)
        .await?
        .iter()
        .map(|r| r.get::<_, i64>(0) as u64)
        .collect();
    let kv: BTreeMap<String, u64> = q(&kv)
        .await?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect();
    let counters: BTreeMap<String, i64> = q(&counters)
        .await?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    Ok((write_ids, RegionState { kv, counters }))
}
