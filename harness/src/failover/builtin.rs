//! The built-in failover controller: regiondrill's own, and the default manager.
//!
//! It lives in the standby region and watches the primary through the monitor link (so a
//! partition between the regions looks to it exactly like a dead primary — which is why
//! fencing matters). Every `interval` it connects and runs `SELECT 1`, giving up after
//! `interval`; `threshold` consecutive misses declare the primary down. Detection therefore
//! takes between `(threshold − 1) × interval` and `threshold × interval` after the failure
//! (where the failure falls in the check cycle decides), plus up to one `interval` when the
//! check hangs instead of being refused.
//!
//! Then, once per run: fence the old primary if asked (stop it out of band, as a cloud API
//! would, which works across a partition), promote the replica (`pg_promote`; it never had
//! the primary's synchronous-standby setting, so its commits do not wait for a standby that
//! is gone), point the routing table and the apps at it. Clients follow after the
//! DNS TTL. Each step is an event in the history, so the checkers can split the observed
//! RTO into detect / promote / redirect.
//!
//! In active-active postures both regions have a primary: a region declared down has its
//! users moved to the other region (after the DNS TTL), and nothing is promoted.

use super::FailoverManager;
use crate::experiment::{Failover, FailoverMode};
use crate::history::EventKind;
use crate::postgres;
use crate::record::Recorder;
use crate::stack::Stack;
use crate::stack::backend::BoxFuture;
use crate::stack::topology::{LinkPurpose, NodeId, Role, link_name, other_region};
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
    let standby = other_region(&primary).to_string();
    let Some(monitor) = stack.link(&link_name(&standby, LinkPurpose::MonitorToDb, &primary)) else {
        tracing::warn!("no monitor link: failover controller idle");
        return;
    };
    let monitor_port = monitor.port;
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut misses = 0u32;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if check(monitor_port, settings.interval).await {
            misses = 0;
            continue;
        }
        misses += 1;
        tracing::debug!(misses, "primary health check missed");
        if misses >= settings.threshold {
            break;
        }
    }
    recorder.event(EventKind::PrimaryDeclaredDown {
        region: primary.clone(),
    });
    if stack.posture.is_active_active() {
        // Nothing to promote: the other region has its own primary; move the users.
        stack.routing.evacuate(&primary, &standby);
        recorder.event(EventKind::Rerouted { region: standby });
        return;
    }
    // From here the old primary must not come back as a primary, even if a heal restarts
    // its region while the failover is under way.
    stack.routing.depose(&primary);
    if let Err(error) = fail_over(&stack, &settings, &recorder, &primary, &standby).await {
        recorder.event(EventKind::FailoverFailed { error });
    }
}

/// One health check: connect through the monitor link and `SELECT 1`, within `timeout`.
async fn check(port: u16, timeout: Duration) -> bool {
    postgres::answers(port, timeout).await
}

async fn fail_over(
    stack: &Stack,
    settings: &Failover,
    recorder: &Recorder,
    old: &str,
    new: &str,
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
    let port = stack
        .port(&NodeId::new(new, Role::Db))
        .ok_or("no replica to promote")?;
    postgres::promote(port)
        .await
        .map_err(|e| format!("promoting {new}: {e}"))?;
    recorder.event(EventKind::Promoted {
        region: new.to_string(),
        from: None,
    });
    stack.routing.fail_over(new);
    // The app in the new primary's region is local to the controller; the other one is
    // reached across the region link (and may be unreachable: that is a split brain).
    let local = stack.app_url_for(new, new);
    let remote = stack.app_url_for(new, old);
    if let Some(url) = local {
        stack
            .reconfigure_app(new, &url, Duration::from_secs(2))
            .await
            .map_err(|e| format!("reconfiguring the {new} app: {e}"))?;
    }
    if let Some(url) = remote {
        if let Err(e) = stack
            .reconfigure_app(old, &url, settings.interval.max(Duration::from_millis(500)))
            .await
        {
            tracing::info!(error = %e, "could not reach the {old} app to reconfigure it");
        }
    }
    recorder.event(EventKind::Rerouted {
        region: new.to_string(),
    });
    Ok(())
}
