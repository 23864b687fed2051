//! Rejoin: the deposed primary becomes a standby of the current primary.
//!
//! 1. It is started as it is (the routing sends no client to it) and the writes it holds
//!    that the current primary lacks are read — the **divergent writes**, committed on its
//!    timeline after the new primary's forked off (write ids are unique, so "present there,
//!    absent here" is exactly that) — then it is stopped.
//! 2. The current primary checkpoints (`pg_rewind` reads its timeline from the control file,
//!    which a just-promoted server updates only then). Its data is rewound with `pg_rewind`
//!    to the fork, from the current primary through the
//!    replication link the rejoined standby will stream on; when the rewind fails (no
//!    `wal_log_hints` nor data checksums, the WAL needed is gone, …) it is re-cloned with
//!    `pg_basebackup`, and `pg_rewind`'s error is the reason recorded.
//! 3. It starts as a standby; the primary gets the posture's commit mode back (a synchronous
//!    posture waits for this standby again), and once it streams and has replayed what the
//!    primary had written by then, it has caught up. Its region's app reads from it again.

use crate::history::{DivergentWrite, EventKind};
use crate::postgres::{self, RejoinOutput};
use crate::record::Recorder;
use crate::stack::Stack;
use crate::stack::topology::{
    NodeId, PRIMARY_REGION, REPLICATION, REPLICATION_TO_US, Role, other_region,
};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// `kind = "rejoin"`: the deposed primary rejoins as a standby of the current primary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejoin {}

/// How long a rejoined standby may take to stream and catch up.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(60);

impl Rejoin {
    /// One line.
    pub fn describe(&self) -> String {
        "rejoin the deposed primary".into()
    }

    /// Rejoins the region the routing says was deposed.
    pub async fn run(&self, stack: &Stack, recorder: &Recorder) -> Result<(), String> {
        let routing = stack.routing.snapshot();
        let old = other_region(&routing.primary);
        if !routing.deposed.contains(old) {
            return Err(format!(
                "no deposed primary to rejoin: {old} was never a primary deposed by a failover \
                 (the primary is {})",
                routing.primary
            ));
        }
        rejoin(stack, recorder, old).await
    }
}

/// Makes `region`'s database (down or running as a deposed primary) a standby of the current
/// primary, recording each step (see the module docs).
pub(crate) async fn rejoin(stack: &Stack, recorder: &Recorder, region: &str) -> Result<(), String> {
    let primary = stack.routing.snapshot().primary;
    recorder.event(EventKind::RejoinStarted {
        region: region.to_string(),
        primary: primary.clone(),
    });
    let node = NodeId::new(region, Role::Db);
    let primary_port = db_port(stack, &primary)?;
    let port = db_port(stack, region)?;
    if !stack.is_running(&node).await {
        stack
            .start_again(&node)
            .await
            .map_err(|e| format!("starting {node} to read its writes: {e}"))?;
    }
    let writes = divergent_writes(port, primary_port)
        .await
        .map_err(|e| format!("reading the divergent writes of {node}: {e}"))?;
    recorder.event(EventKind::DivergentWrites {
        region: region.to_string(),
        writes,
    });
    stack
        .kill(&node)
        .await
        .map_err(|e| format!("stopping {node}: {e}"))?;
    // The link the standby streams through: `us` reaches `eu` by `replication-to-us`, `eu`
    // reaches `us` by `replication`.
    let link = if region == PRIMARY_REGION {
        REPLICATION_TO_US
    } else {
        REPLICATION
    };
    let source = stack
        .link(link)
        .ok_or_else(|| format!("no {link} link"))?
        .inside
        .clone();
    // pg_rewind reads the source's timeline from its control file, which a just-promoted
    // server updates only at its first checkpoint (a switchover's new primary): force it.
    let source_db = postgres::connect(primary_port, Duration::from_secs(2))
        .await
        .map_err(|e| format!("{primary}-db: {e}"))?;
    postgres::execute(&source_db, "CHECKPOINT")
        .await
        .map_err(|e| format!("{primary}-db: {e}"))?;
    let t = Instant::now();
    let printed = stack
        .run_on_data(&node, &postgres::rejoin_script(&source))
        .await
        .map_err(|e| format!("rewinding or re-cloning {node}: {e}"))?;
    let data_ms = t.elapsed().as_secs_f64() * 1e3;
    let out = RejoinOutput::parse(&printed)
        .ok_or_else(|| format!("the rejoin of {node} did not say how it went: {printed}"))?;
    stack
        .start_again(&node)
        .await
        .map_err(|e| format!("starting {node} as a standby: {e}"))?;
    recorder.event(EventKind::Rejoined {
        region: region.to_string(),
        method: if out.rewound { "rewind" } else { "re-clone" }.into(),
        why: out.why,
        fork: out.fork,
        data_ms,
    });
    let rejoined = [region.to_string()];
    let commit = stack.posture.commit_settings(&rejoined);
    postgres::require_standbys(primary_port, &commit, &rejoined)
        .await
        .map_err(|e| format!("{node} as the primary's standby: {e}"))?;
    postgres::wait_caught_up(primary_port, region, None, CATCH_UP_WITHIN)
        .await
        .map_err(|e| format!("{node} catching up: {e}"))?;
    recorder.event(EventKind::CaughtUp {
        region: region.to_string(),
    });
    stack.routing.rejoin(region);
    if let Some(url) = stack.app_url_for(region, region)
        && let Err(e) = stack
            .reconfigure_app(region, &url, Duration::from_secs(2))
            .await
    {
        tracing::info!(error = %e, "could not point the {region} app at its rejoined database");
    }
    Ok(())
}

fn db_port(stack: &Stack, region: &str) -> Result<u16, String> {
    stack
        .port(&NodeId::new(region, Role::Db))
        .ok_or_else(|| format!("no {region}-db"))
}

/// The writes the database on `old_port` holds and the one on `new_port` lacks, by write id.
async fn divergent_writes(old_port: u16, new_port: u16) -> Result<Vec<DivergentWrite>, String> {
    let connect = |port| postgres::connect(port, Duration::from_secs(3));
    let (old, new) =
        tokio::try_join!(connect(old_port), connect(new_port)).map_err(|e| e.to_string())?;
    let present: std::collections::HashSet<i64> =
        postgres::query(&new, "SELECT write_id FROM writes")
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| r.get(0))
            .collect();
    let sql = "SELECT write_id, key, value, version, user_id, region, committed_at::text \
               FROM writes ORDER BY write_id";
    let rows = postgres::query(&old, sql)
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .filter(|r| !present.contains(&r.get::<_, i64>(0)))
        .map(|r| DivergentWrite {
            write_id: r.get::<_, i64>(0) as u64,
            key: r.get(1),
            value: r.get(2),
            version: r.get(3),
            user: r.get(4),
            region: r.get(5),
            committed_at: r.get(6),
        })
        .collect())
}
