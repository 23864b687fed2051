//! The final state: what the system holds once every fault is healed and it has settled —
//! read straight from the databases, the way the app would read it
//! ([`crate::app::final_state_queries`]): in active-passive and single-region the current
//! primary, in active-active each reachable region's database.
//!
//! A database that cannot be read is left out; with none readable, lost writes are "not
//! checked" rather than zero.

use crate::history::{FinalState, RegionState};
use crate::postgres;
use crate::posture::Posture;
use crate::stack::Stack;
use crate::stack::topology::{NodeId, REGIONS, Role};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Reads the final state (each database within 10 s).
pub async fn read(stack: &Stack) -> FinalState {
    let regions: Vec<String> = if stack.posture.is_active_active() {
        REGIONS.iter().map(|r| r.to_string()).collect()
    } else {
        vec![stack.routing.snapshot().primary]
    };
    let mut state = FinalState::default();
    let mut ids = BTreeSet::new();
    for region in regions {
        let Some(port) = stack.port(&NodeId::new(&region, Role::Db)) else {
            continue;
        };
        match tokio::time::timeout(Duration::from_secs(10), read_region(port, stack.posture)).await
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
    state
}

async fn read_region(port: u16, posture: Posture) -> Result<(Vec<u64>, RegionState), String> {
    let c = postgres::connect(port, Duration::from_secs(3))
        .await
        .map_err(|e| e.to_string())?;
    let [writes, kv, counters] = crate::app::final_state_queries(posture);
    let q = |sql: &'static str| {
        let c = &c;
        async move { c.query(sql, &[]).await.map_err(|e| format!("{sql}: {e}")) }
    };
    let write_ids = q(writes)
        .await?
        .iter()
        .map(|r| r.get::<_, i64>(0) as u64)
        .collect();
    let kv: BTreeMap<String, u64> = q(kv)
        .await?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect();
    let counters: BTreeMap<String, i64> = q(counters)
        .await?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    Ok((write_ids, RegionState { kv, counters }))
}
