//! The built-in failover controller: regiondrill's own, and the default manager.
//!
//! It watches the primary from its vantage points (`[failover] watch_from`: other regions,
//! or a witness location that holds no data; by default the second region alone), each
//! through its own monitor link. Every `interval` each vantage point connects and runs
//! `SELECT 1`, giving up after `interval`; a vantage point that has missed `threshold`
//! checks in a row sees the primary down, and the primary is declared down when a strict
//! majority of them do. With one vantage point a partition between it and the primary looks
//! exactly like a dead primary (which is why fencing matters); with three, a partition that
//! cuts one of them off changes nothing, while a lost region is seen from all. Detection takes
//! between `(threshold − 1) × interval` and `threshold × interval` after the failure (where
//! the failure falls in the check cycle decides), plus up to one `interval` when the check
//! hangs instead of being refused.
//!
//! Then, once per run: fence the old primary if asked (stop it out of band, as a cloud API
//! would, which works across a partition), promote the standby that has received the most
//! WAL (`pg_last_wal_receive_lsn`, read directly in each standby's region; ties go to the
//! earlier region: with quorum commit it holds every acknowledged write; a lone standby is
//! promoted without asking, as the only choice), point every other
//! standby at it (`primary_conninfo` through their replication link, reloaded; they follow
//! the new timeline), then the routing table and the apps. The promoted standby never had
//! the primary's synchronous-standby setting, so its commits do not wait for a standby.
//! Clients follow after the DNS TTL. Each step is an event in the history, so the checkers
//! can split the observed RTO into detect / promote / redirect.
//!
//! In active-active postures every region has a primary: the first region declared down has
//! its users moved to the next region (after the DNS TTL), and nothing is promoted.

use super::FailoverManager;
use crate::experiment::{Failover, FailoverMode};
use crate::history::EventKind;
use crate::postgres;
use crate::record::Recorder;
use crate::stack::Stack;
use crate::stack::backend::BoxFuture;
use crate::stack::topology::{LinkPurpose, NodeId, Role, link_name};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The built-in controller with the experiment's `[failover]` settings.
pub struct Builtin {
    settings: Failover,
}

impl Builtin {
    /// A controller with these settings.
    pub fn new(settings: Failover) -> Builtin {
        Builtin { settings }
    }
}

impl FailoverManager for Builtin {
    fn name(&self) -> &'static str {
        "builtin"
    }

    fn run(
        &self,
        stack: Arc<Stack>,
        recorder: Recorder,
        stop: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        Box::pin(run(stack, self.settings.clone(), recorder, stop))
    }
}

/// Runs the controller until it has failed over once or `cancel` fires. Does nothing in
/// manual mode or without a standby.
async fn run(stack: Arc<Stack>, settings: Failover, recorder: Recorder, cancel: CancellationToken) {
    if settings.mode == FailoverMode::Manual || !stack.posture.has_standby() {
        return;
    }
    let primary = stack.routing.snapshot().primary;
    let vantage = stack.plan().vantage_points();
    let monitors: Vec<u16> = vantage
        .iter()
        .filter_map(|v| stack.link(&link_name(v, LinkPurpose::MonitorToDb, &primary)))
        .map(|l| l.port)
        .collect();
    if monitors.len() != vantage.len() || monitors.is_empty() {
        tracing::warn!(
            ?vantage,
            "a vantage point has no monitor link: failover controller idle"
        );
        return;
    }
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Consecutive misses, per vantage point.
    let mut misses = vec![0u32; monitors.len()];
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let checks = monitors.iter().map(|&port| check(port, settings.interval));
        for (m, ok) in misses
            .iter_mut()
            .zip(futures::future::join_all(checks).await)
        {
            *m = if ok { 0 } else { *m + 1 };
        }
        let down = misses.iter().filter(|&&m| m >= settings.threshold).count();
        if down > 0 {
            tracing::debug!(
                ?misses,
                down,
                of = monitors.len(),
                "primary health checks missed"
            );
        }
        if majority(down, monitors.len()) {
            break;
        }
    }
    recorder.event(EventKind::PrimaryDeclaredDown {
        region: primary.clone(),
    });
    if stack.posture.is_active_active() {
        // Nothing to promote: the other region has its own primary; move the users.
        let Some(to) = other_regions(&stack, &primary).into_iter().next() else {
            return;
        };
        stack.routing.evacuate(&primary, &to);
        recorder.event(EventKind::Rerouted { region: to });
        return;
    }
    // From here the old primary must not come back as a primary, even if a heal restarts
    // its region while the failover is under way.
    stack.routing.depose(&primary);
    if let Err(error) = fail_over(&stack, &settings, &recorder, &primary).await {
        recorder.event(EventKind::FailoverFailed { error });
    }
}

/// Whether `down` of `of` vantage points is a strict majority.
fn majority(down: usize, of: usize) -> bool {
    of > 0 && 2 * down > of
}

/// One health check: connect through the monitor link and `SELECT 1`, within `timeout`.
async fn check(port: u16, timeout: Duration) -> bool {
    postgres::answers(port, timeout).await
}

/// The standby to promote: with one standby, it; with several, the one that has received
/// the most WAL of those that answer within `within` (ties: the earlier region), or the
/// first when none answers (its promotion then fails with the reason, as a lone standby's
/// would).
async fn standby_to_promote(stack: &Stack, old: &str, within: Duration) -> Option<String> {
    let standbys = other_regions(stack, old);
    if standbys.len() <= 1 {
        return standbys.into_iter().next();
    }
    let received = standbys.iter().map(|r| async move {
        let dsn = stack.db_dsn(r)?;
        let c = postgres::connect_dsn(&dsn, within).await.ok()?;
        let sql = "SELECT pg_wal_lsn_diff(coalesce(pg_last_wal_receive_lsn(), \
                   pg_last_wal_replay_lsn()), '0/0')::bigint";
        let rows = tokio::time::timeout(within, postgres::query(&c, sql))
            .await
            .ok()?
            .ok()?;
        rows.first()?.get::<_, Option<i64>>(0)
    });
    let received = futures::future::join_all(received).await;
    let mut best: Option<(i64, &String)> = None;
    for (region, lsn) in standbys.iter().zip(received) {
        if let Some(lsn) = lsn
            && best.is_none_or(|(b, _)| lsn > b)
        {
            best = Some((lsn, region));
        }
    }
    best.map(|(_, r)| r.clone())
        .or_else(|| standbys.first().cloned())
}

/// Points the standby in `region` at the primary in `new`, through its replication link.
async fn follow(stack: &Stack, region: &str, new: &str) -> Result<(), String> {
    let link = link_name(region, LinkPurpose::Replication, new);
    let (host, port) = stack
        .link(&link)
        .map(|l| l.inside.clone())
        .ok_or(format!("no link {link}"))?;
    let dsn = stack.db_dsn(region).ok_or(format!("no {region}-db"))?;
    postgres::stream_from(&dsn, &host, port)
        .await
        .map_err(|e| e.to_string())
}

/// Every data region but `primary`'s: the standbys once `primary` is deposed.
fn other_regions(stack: &Stack, primary: &str) -> Vec<String> {
    stack
        .plan()
        .regions
        .iter()
        .filter(|r| *r != primary)
        .cloned()
        .collect()
}

async fn fail_over(
    stack: &Stack,
    settings: &Failover,
    recorder: &Recorder,
    old: &str,
) -> Result<(), String> {
    if settings.fencing {
        stack
            .kill(&NodeId::new(old, Role::Db))
            .await
            .map_err(|e| format!("fencing {old}: {e}"))?;
        recorder.event(EventKind::Fenced {
            region: old.to_string(),
        });
    }
    // A loaded host may take a while to open a connection: a wrong choice loses writes.
    let asked = settings.interval.max(Duration::from_secs(1));
    let new = standby_to_promote(stack, old, asked)
        .await
        .ok_or("no standby to promote")?;
    let port = stack
        .port(&NodeId::new(&new, Role::Db))
        .ok_or("no replica to promote")?;
    postgres::promote(port)
        .await
        .map_err(|e| format!("promoting {new}: {e}"))?;
    recorder.event(EventKind::Promoted {
        region: new.clone(),
        from: None,
    });
    stack.routing.fail_over(&new);
    // The other standbys stream from the new primary; one that cannot be reached now keeps
    // its old source (it is the drill's to see).
    for r in other_regions(stack, old).iter().filter(|r| **r != new) {
        if let Err(e) = follow(stack, r, &new).await {
            tracing::info!(error = %e, "could not point the {r} standby at {new}");
        }
    }
    // The app in the new primary's region is local to the controller; the others are
    // reached across region links (and may be unreachable: that is a split brain).
    if let Some(url) = stack.app_url_for(&new, &new) {
        stack
            .reconfigure_app(&new, &url, Duration::from_secs(2))
            .await
            .map_err(|e| format!("reconfiguring the {new} app: {e}"))?;
    }
    let remote = other_regions(stack, &new)
        .into_iter()
        .filter_map(|r| Some((stack.app_url_for(&new, &r)?, r)))
        .map(|(url, r)| async move {
            // As long as a health check may take: across a cut, it is not answered.
            let within = settings.interval.max(Duration::from_millis(500));
            if let Err(e) = stack.reconfigure_app(&r, &url, within).await {
                tracing::info!(error = %e, "could not reach the {r} app to reconfigure it");
            }
        });
    futures::future::join_all(remote).await;
    recorder.event(EventKind::Rerouted { region: new });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::majority;

    #[test]
    fn a_strict_majority_of_vantage_points_declares_the_primary_down() {
        assert!(majority(1, 1));
        assert!(!majority(0, 1));
        assert!(!majority(1, 2), "one of two is a tie, not a majority");
        assert!(majority(2, 2));
        assert!(
            !majority(1, 3),
            "a partial partition cuts one vantage point off"
        );
        assert!(majority(2, 3));
        assert!(!majority(0, 0));
    }
}
