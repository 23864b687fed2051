//! pg_auto_failover as the failover manager: it runs inside the stack (the monitor where the
//! experiment places it, one keeper per data region, apps writing through a libpq multi-host
//! DSN — see `stack::plan`), and fails over by itself. This module only *reads* its timeline,
//! the monitor's own view of the formation (`pgautofailover.node`, what `pg_autoctl show
//! state` prints), into the history, so RTO splits into detect / promote / redirect as for
//! the built-in controller:
//!
//! - `primary_declared_down`: the first poll (every [`POLL`]) at which the monitor has
//!   assigned another node a promotion state (`prepare_promotion` onwards). It does so once
//!   the primary is unhealthy: its health checks failed (`health_check_period`, then
//!   `health_check_max_retries` attempts `health_check_retry_delay` apart) *and* its keeper
//!   has not reported for `node_considered_unhealthy_timeout`. That is its detection.
//! - `promoted`: the first poll at which that node reports `wait_primary` (or `primary`):
//!   it takes writes. Before, in `stop_replication`, it waits `primary_demote_timeout` for an
//!   old primary it cannot reach to have demoted itself — where most of the time goes.
//! - `rerouted`: the first poll at which the multi-host DSN the new primary's region's app
//!   writes through (`target_session_attrs=read-write`) reaches a primary on a later
//!   timeline than the one the run started on.
//!
//! Each is observed up to one [`POLL`] late (plus the time to ask). The users' own DNS (the
//! routing table the workload honours) follows the promotion, as a global load balancer
//! would; the databases' addresses are libpq's business.
//!
//! **Why a failover did not happen.** When the old primary has been gone (not answering as
//! a primary) for longer than the monitor's worst case ([`outage_limit`]) and nobody was
//! promoted, the manager records `failover_refused` once with the reason read from the
//! monitor ([`refusal_reason`]): the monitor does not answer (nobody can assign a
//! promotion: keepers keep their last state), no node may be promoted (`candidate_priority`
//! 0), the candidate is more than `promote_wal_log_threshold` behind, or else the monitor's
//! own view and latest event.

use super::FailoverManager;
use crate::ha::PgAutoFailover;
use crate::history::EventKind;
use crate::record::Recorder;
use crate::stack::Stack;
use crate::stack::backend::BoxFuture;
use crate::stack::pg_auto_failover::{self as monitor, NodeState};
use crate::stack::topology::{NodeId, Role};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the monitor is read: the resolution of each step's time.
pub const POLL: Duration = Duration::from_millis(50);

/// How long after the monitor's worst case without a promotion the failover counts as
/// refused.
pub const REFUSAL_MARGIN: Duration = Duration::from_secs(3);

/// The goal states the monitor assigns a node it is promoting, in order.
const PROMOTING: [&str; 4] = [
    "prepare_promotion",
    "stop_replication",
    "wait_primary",
    "primary",
];

/// The states in which a node takes writes.
const WRITABLE: [&str; 3] = ["wait_primary", "primary", "single"];

/// Reads pg_auto_failover's timeline with the experiment's settings.
pub struct PgAutoFailoverWatch {
    settings: PgAutoFailover,
}

impl PgAutoFailoverWatch {
    /// A reader for a pg_auto_failover deployed with `settings`.
    pub fn new(settings: PgAutoFailover) -> PgAutoFailoverWatch {
        PgAutoFailoverWatch { settings }
    }
}

impl FailoverManager for PgAutoFailoverWatch {
    fn name(&self) -> &'static str {
        "pg_auto_failover"
    }

    fn run(
        &self,
        stack: Arc<Stack>,
        recorder: Recorder,
        stop: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        Box::pin(watch(stack, self.settings.clone(), recorder, stop))
    }
}

/// The longest the monitor can take from a primary's loss to a promoted node taking writes,
/// by its settings: the health checks' worst case (a period, then every attempt timing out
/// with the delay between them) or the keeper's silence, whichever is longer, then the wait
/// for the old primary's demotion.
pub fn outage_limit(s: &PgAutoFailover) -> Duration {
    let ms = |v: u32| Duration::from_millis(u64::from(v));
    let checks = ms(s.health_check_period)
        + (ms(s.health_check_timeout) + ms(s.health_check_retry_delay))
            * s.health_check_max_retries.max(1);
    checks.max(ms(s.node_considered_unhealthy_timeout)) + ms(s.primary_demote_timeout)
}

/// Why nobody was promoted, from what the monitor says (`view`: its nodes and latest
/// event; None: it did not answer).
pub fn refusal_reason(
    settings: &PgAutoFailover,
    old: &str,
    view: Option<&(Vec<NodeState>, Option<String>)>,
) -> String {
    let Some((nodes, last)) = view else {
        return format!(
            "monitor unreachable: pg_auto_failover's monitor (in {}) does not answer, so no \
             node can be assigned a promotion (keepers keep their last state: the standby \
             stays a read-only secondary)",
            settings.monitor.region
        );
    };
    let candidates: Vec<&NodeState> = nodes.iter().filter(|n| n.name != old).collect();
    if !candidates.is_empty() && candidates.iter().all(|n| n.candidate_priority == 0) {
        let names: Vec<&str> = candidates.iter().map(|n| n.name.as_str()).collect();
        return format!(
            "no candidate: candidate_priority is 0 on {} (never promoted)",
            names.join(", ")
        );
    }
    let limit = settings.promote_wal_log_threshold;
    if let Some(primary) = nodes.iter().find(|n| n.name == old) {
        let behind: Vec<String> = candidates
            .iter()
            .filter_map(|n| {
                let lag = primary.lsn.saturating_sub(n.lsn);
                (lag > 0 && lag as u64 > limit).then(|| format!("{} is {lag} bytes behind", n.name))
            })
            .collect();
        if !behind.is_empty() {
            return format!(
                "no candidate within promote_wal_log_threshold ({limit} bytes): {} {old}'s \
                 last reported position",
                behind.join(", ")
            );
        }
    }
    let states: Vec<String> = nodes
        .iter()
        .map(|n| format!("{} {} → {}", n.name, n.reported, n.goal))
        .collect();
    format!(
        "nobody promoted; the monitor's view: {}; its latest event: {}",
        if states.is_empty() {
            "no nodes".to_string()
        } else {
            states.join(", ")
        },
        last.as_deref().unwrap_or("none")
    )
}

/// The node (not `old`) the monitor is promoting, if any.
pub fn promoting<'a>(nodes: &'a [NodeState], old: &str) -> Option<&'a NodeState> {
    nodes
        .iter()
        .find(|n| n.name != old && PROMOTING.contains(&n.goal.as_str()))
}

/// Whether `node` reports a state in which it takes writes.
pub fn writable(node: &NodeState) -> bool {
    WRITABLE.contains(&node.reported.as_str())
}

async fn watch(
    stack: Arc<Stack>,
    settings: PgAutoFailover,
    recorder: Recorder,
    cancel: CancellationToken,
) {
    let old = stack.routing.snapshot().primary;
    let monitor_port = stack.port(&NodeId::new(&settings.monitor.region, Role::Dcs));
    let db = |r: &str| stack.port(&NodeId::new(r, Role::Db));
    let start_timeline = primary_timeline(&harness_dsn(&stack, &old))
        .await
        .unwrap_or(1);
    let limit = outage_limit(&settings) + REFUSAL_MARGIN;
    let mut client: Option<tokio_postgres::Client> = None;
    let mut declared = false;
    let mut new: Option<String> = None;
    let mut promoted = false;
    let mut refused = false;
    let mut silent_since: Option<tokio::time::Instant> = None;
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if client.as_ref().is_none_or(|c| c.is_closed())
            && let Some(port) = monitor_port
        {
            client = monitor::connect(port, Duration::from_millis(400))
                .await
                .ok();
        }
        let view = match &client {
            Some(c) => tokio::time::timeout(Duration::from_millis(400), monitor::view(c))
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        if view.is_none() {
            client = None;
        }
        if let Some((nodes, _)) = &view {
            if let Some(n) = promoting(nodes, &old) {
                if !declared {
                    declared = true;
                    recorder.event(EventKind::PrimaryDeclaredDown {
                        region: old.clone(),
                    });
                }
                new.get_or_insert_with(|| n.name.clone());
            }
            if let Some(n) = &new
                && !promoted
                && nodes.iter().any(|x| x.name == *n && writable(x))
            {
                promoted = true;
                recorder.event(EventKind::Promoted {
                    region: n.clone(),
                    from: None,
                });
                stack.routing.follow(n);
            }
        }
        if let Some(n) = &new
            && promoted
        {
            if primary_timeline(&harness_dsn(&stack, n))
                .await
                .is_some_and(|tl| tl > start_timeline)
            {
                recorder.event(EventKind::Rerouted { region: n.clone() });
                // One failover per run, as the built-in controller.
                return;
            }
            continue;
        }
        if new.is_some() {
            continue;
        }
        // Nobody is being promoted: is the old primary gone, and for how long?
        if answers_as_primary(db(&old)).await {
            silent_since = None;
            continue;
        }
        let since = *silent_since.get_or_insert_with(tokio::time::Instant::now);
        if !refused && since.elapsed() >= limit {
            refused = true;
            recorder.event(EventKind::FailoverRefused {
                region: old.clone(),
                reason: refusal_reason(&settings, &old, view.as_ref()),
            });
        }
    }
}

/// The multi-host DSN `region`'s app writes through, with the harness's ports (natively the
/// same addresses).
fn harness_dsn(stack: &Stack, region: &str) -> Option<String> {
    stack.app_dsns(region).map(|(write, _)| write)
}

/// Whether the database on `port` answers as a primary (not in recovery).
async fn answers_as_primary(port: Option<u16>) -> bool {
    let Some(port) = port else { return false };
    let Ok(c) = crate::postgres::connect(port, Duration::from_millis(400)).await else {
        return false;
    };
    let ask = crate::postgres::in_recovery(&c);
    matches!(
        tokio::time::timeout(Duration::from_millis(400), ask).await,
        Ok(Ok(false))
    )
}

/// The timeline of the primary `dsn` (a multi-host DSN, `target_session_attrs=read-write`)
/// connects to (None: it connects to none).
pub async fn primary_timeline(dsn: &Option<String>) -> Option<u32> {
    crate::postgres::primary_timeline_at(dsn.as_ref()?, Duration::from_millis(800)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::Placement;

    fn settings(monitor: &str) -> PgAutoFailover {
        PgAutoFailover {
            health_check_period: 1000,
            health_check_timeout: 1000,
            health_check_max_retries: 1,
            health_check_retry_delay: 500,
            node_considered_unhealthy_timeout: 5000,
            primary_demote_timeout: 5000,
            promote_wal_log_threshold: 1024,
            startup_grace_period: 10_000,
            number_sync_standbys: 0,
            replication_quorum: true,
            candidate_priority: 50,
            monitor: Placement {
                region: monitor.into(),
                witness_rtt: Duration::ZERO,
            },
        }
    }

    fn node(name: &str, reported: &str, goal: &str, lsn: i64, priority: i32) -> NodeState {
        NodeState {
            name: name.into(),
            reported: reported.into(),
            goal: goal.into(),
            health: 1,
            lsn,
            candidate_priority: priority,
        }
    }

    #[test]
    fn the_worst_case_is_the_longer_of_checks_and_silence_then_the_demote_wait() {
        // Silence (5 s) is longer than the checks (1 + 1 × (1 + 0.5) s).
        assert_eq!(outage_limit(&settings("witness")), Duration::from_secs(10));
        // pg_auto_failover's defaults: 20 s silence vs 5 + 2 × 7 s of checks, then 30 s.
        let mut d = settings("witness");
        (d.health_check_period, d.health_check_timeout) = (5000, 5000);
        (d.health_check_max_retries, d.health_check_retry_delay) = (2, 2000);
        (
            d.node_considered_unhealthy_timeout,
            d.primary_demote_timeout,
        ) = (20_000, 30_000);
        assert_eq!(outage_limit(&d), Duration::from_secs(50));
    }

    #[test]
    fn reads_the_promotion_from_the_goal_states() {
        let nodes = [
            node("us", "primary", "draining", 100, 50),
            node("eu", "secondary", "prepare_promotion", 100, 50),
        ];
        assert_eq!(promoting(&nodes, "us").map(|n| n.name.as_str()), Some("eu"));
        assert!(!writable(&nodes[1]));
        let steady = [
            node("us", "primary", "primary", 100, 50),
            node("eu", "secondary", "secondary", 100, 50),
        ];
        assert_eq!(promoting(&steady, "us"), None);
        assert!(writable(&node("eu", "wait_primary", "wait_primary", 0, 50)));
    }

    #[test]
    fn says_the_monitor_was_unreachable() {
        let r = refusal_reason(&settings("us"), "us", None);
        assert!(
            r.starts_with("monitor unreachable: pg_auto_failover's monitor (in us)"),
            "{r}"
        );
    }

    #[test]
    fn says_no_node_may_be_promoted() {
        let view = (
            vec![
                node("us", "primary", "primary", 100, 50),
                node("eu", "secondary", "secondary", 100, 0),
            ],
            None,
        );
        let r = refusal_reason(&settings("witness"), "us", Some(&view));
        assert_eq!(
            r,
            "no candidate: candidate_priority is 0 on eu (never promoted)"
        );
    }

    #[test]
    fn says_the_candidate_lagged_beyond_the_threshold() {
        let view = (
            vec![
                node("us", "primary", "primary", 10_000, 50),
                node("eu", "secondary", "secondary", 4_000, 50),
            ],
            Some("Node us is marked as unhealthy".to_string()),
        );
        let r = refusal_reason(&settings("witness"), "us", Some(&view));
        assert_eq!(
            r,
            "no candidate within promote_wal_log_threshold (1024 bytes): eu is 6000 bytes \
             behind us's last reported position"
        );
        // Within the threshold, lag is not the reason: the monitor's view is.
        let view = (
            vec![
                node("us", "primary", "primary", 1_000, 50),
                node("eu", "secondary", "secondary", 500, 50),
            ],
            Some("Node us is marked as unhealthy".to_string()),
        );
        let r = refusal_reason(&settings("witness"), "us", Some(&view));
        assert_eq!(
            r,
            "nobody promoted; the monitor's view: us primary → primary, eu secondary → \
             secondary; its latest event: Node us is marked as unhealthy"
        );
    }
}
