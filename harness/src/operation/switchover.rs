//! Switchover: a planned move of the primary to the standby, e.g. back to its original region
//! after a failover and a rejoin.
//!
//! 1. With `stop_writes` (the default) the primary is made read-only and the switch waits
//!    until no write transaction is left in progress: from then on it commits nothing, so a
//!    standby that has replayed its last position holds every acknowledged write. Without
//!    it, writes go on until the old primary is stopped, and what it acknowledged after the
//!    standby's last catch-up is lost (the report counts it).
//! 2. Wait until the standby has replayed the primary's current position.
//! 3. Stop the old primary, promote the standby, point the routing table and both apps at it
//!    (clients follow after the DNS TTL).
//! 4. The old primary rejoins as a standby of the new one ([`super::rejoin`]: a rewind that
//!    finds nothing to undo when writes were stopped).

use crate::history::EventKind;
use crate::postgres;
use crate::record::Recorder;
use crate::stack::Stack;
use crate::stack::topology::{NodeId, Role};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `kind = "switchover"`: the primary moves to the standby in region `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Switchover {
    /// `to` (default `us`): the region whose standby becomes the primary.
    pub to: String,
    /// `stop_writes` (default true): make the primary read-only before the switch, so no
    /// acknowledged write can be lost.
    pub stop_writes: bool,
}

/// How long the standby may take to replay the primary's last position.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(30);

impl Switchover {
    /// One line.
    pub fn describe(&self) -> String {
        let how = if self.stop_writes {
            "writes stopped"
        } else {
            "writes not stopped"
        };
        format!("switchover to {} ({how})", self.to)
    }

    /// Switches over (see the module docs).
    pub async fn run(&self, stack: &Stack, recorder: &Recorder) -> Result<(), String> {
        let routing = stack.routing.snapshot();
        let (from, to) = (routing.primary.clone(), self.to.clone());
        if from == to {
            return Err(format!("{to} is already the primary"));
        }
        if routing.deposed.contains(&to) {
            return Err(format!(
                "{to}-db is a deposed primary, not a standby: rejoin it first"
            ));
        }
        let port = |r: &str| {
            stack
                .port(&NodeId::new(r, Role::Db))
                .ok_or_else(|| format!("no {r}-db"))
        };
        let (from_port, to_port) = (port(&from)?, port(&to)?);
        recorder.event(EventKind::SwitchoverStarted {
            from: from.clone(),
            to: to.clone(),
            stop_writes: self.stop_writes,
        });
        let c = postgres::connect(from_port, Duration::from_secs(2))
            .await
            .map_err(|e| format!("{from}-db: {e}"))?;
        if self.stop_writes {
            postgres::set_read_only(&c, true)
                .await
                .map_err(|e| format!("making {from}-db read-only: {e}"))?;
            wait_no_writer(&c)
                .await
                .map_err(|e| format!("{from}-db: {e}"))?;
            recorder.event(EventKind::WritesStopped {
                region: from.clone(),
            });
        }
        let lsn = postgres::current_lsn(&c)
            .await
            .map_err(|e| format!("{from}-db: {e}"))?;
        postgres::wait_caught_up(from_port, &to, Some(lsn), CATCH_UP_WITHIN)
            .await
            .map_err(|e| format!("{to}-db catching up before the switch: {e}"))?;
        drop(c);
        let old = NodeId::new(&from, Role::Db);
        stack
            .kill(&old)
            .await
            .map_err(|e| format!("stopping {old}: {e}"))?;
        stack.routing.depose(&from);
        postgres::promote(to_port)
            .await
            .map_err(|e| format!("promoting {to}-db: {e}"))?;
        stack.routing.fail_over(&to);
        for region in [&to, &from] {
            if let Some(url) = stack.app_url_for(region, region) {
                stack
                    .reconfigure_app(region, &url, Duration::from_secs(2))
                    .await
                    .map_err(|e| format!("pointing the {region} app at {to}-db: {e}"))?;
            }
        }
        recorder.event(EventKind::SwitchedOver {
            from: from.clone(),
            to: to.clone(),
        });
        // The old primary's read-only setting goes with its rewind (pg_rewind and
        // pg_basebackup copy the new primary's configuration files).
        super::rejoin::rejoin(stack, recorder, &from).await
    }
}

/// Waits until no session of the server has a transaction id: no write transaction is in
/// progress (a read-only one never gets one).
async fn wait_no_writer(c: &tokio_postgres::Client) -> Result<(), postgres::PgError> {
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL \
               AND pid <> pg_backend_pid()";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = postgres::query(c, sql).await?[0].get(0);
        if n == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(postgres::PgError::Timeout(format!(
                "{n} write transaction(s) still in progress 10 s after writes were stopped"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
