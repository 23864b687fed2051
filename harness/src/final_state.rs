//! The final state: what the system holds once every fault is healed and it has settled —
//! read straight from the databases, the way the app would read it (see
//! stacks/app/README.md for the tables).
//!
//! - Active-passive and single-region: the current primary's `writes` log, its `kv` values
//!   and `counters`.
//! - Active-active: each reachable region's database: the union of both regions' write logs
//!   (`writes_us`, `writes_eu`, replicated both ways), each key's merged value (the row with
//!   the greatest (hlc, region) among `kv_us` and `kv_eu`: last write wins, as the app reads
//!   it), and each counter's value (PN-counters: Σ(p − n) over both regions' components; LWW
//!   registers: the greatest-(hlc, region) row's value).
//!
//! A database that cannot be read is left out; with none readable, lost writes are "not
//! checked" rather than zero.

use crate::history::{FinalState, RegionState};
use crate::posture::Posture;
use crate::stack::Stack;
use crate::stack::native::postgres;
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
    let c = postgres::connect(port, Duration::from_secs(3)).await?;
    let (writes, kv, counters) = if posture.is_active_active() {
        let counters = if posture == Posture::ActiveActiveLww {
            "SELECT DISTINCT ON (key) key, value FROM (SELECT key, value, hlc, 'us' AS region FROM counter_us \
             UNION ALL SELECT key, value, hlc, 'eu' FROM counter_eu) t ORDER BY key, hlc DESC, region DESC"
        } else {
            "SELECT key, SUM(p - n)::bigint FROM (SELECT key, p, n FROM counter_us UNION ALL SELECT key, p, n FROM counter_eu) t GROUP BY key"
        };
        (
            "SELECT write_id FROM writes_us UNION SELECT write_id FROM writes_eu",
            "SELECT DISTINCT ON (key) key, write_id FROM (SELECT key, write_id, hlc, region FROM kv_us \
             UNION ALL SELECT key, write_id, hlc, region FROM kv_eu) t ORDER BY key, hlc DESC, region DESC",
            counters,
        )
    } else {
        (
            "SELECT write_id FROM writes",
            "SELECT key, write_id FROM kv",
            "SELECT key, value FROM counters",
        )
    };
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
