//! Patroni as the failover manager: it runs inside the stack (one member per data region,
//! etcd where the experiment places it, HAProxy per region on Patroni's REST checks — see
//! `stack::plan`), and fails over by itself. This module only *reads* its timeline into the
//! history, so RTO splits into detect / promote / redirect as for the built-in controller:
//!
//! - `primary_declared_down`: the first poll (every [`POLL`]) at which Patroni's own view of
//!   the cluster (REST `/cluster` of any member, read from etcd) no longer names the old
//!   leader: its leader key expired (the TTL) or another member holds it. Patroni takes the
//!   key before it promotes, so this is its detection.
//! - `promoted`: the first poll at which the new leader's REST `/primary` answers 200
//!   (Patroni's own test: it holds the key and PostgreSQL is out of recovery).
//! - `rerouted`: the first poll at which the new leader's region's HAProxy hands a
//!   connection to a primary on a later timeline than the one the run started on.
//!
//! Each is observed up to one [`POLL`] late (plus the time to ask). The users' own DNS (the
//! routing table the workload honours) follows the promotion, as a global load balancer
//! would; the databases' addresses are HAProxy's business.
//!
//! **Why a failover did not happen.** When the leader has been gone (its REST API silent)
//! for `ttl + loop_wait` plus a margin and nobody leads, the manager records
//! `failover_refused` once with Patroni's reason, read from Patroni and etcd: the DCS does
//! not answer (Patroni cannot take the leader key: "DCS is not accessible"), or every
//! candidate is more than `maximum_lag_on_failover` behind the leader's last reported
//! position (Patroni's `/cluster` lag), or neither (then what the survivors report).

use super::FailoverManager;
use crate::ha::Patroni;
use crate::history::EventKind;
use crate::record::Recorder;
use crate::stack::Stack;
use crate::stack::backend::BoxFuture;
use crate::stack::topology::{NodeId, Role};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often Patroni's state is read: the resolution of each step's time.
pub const POLL: Duration = Duration::from_millis(50);

/// How long after `ttl + loop_wait` without a leader the failover counts as refused.
pub const REFUSAL_MARGIN: Duration = Duration::from_secs(3);

/// Reads Patroni's timeline with the experiment's Patroni settings.
pub struct PatroniWatch {
    settings: Patroni,
}

impl PatroniWatch {
    /// A reader for a Patroni deployed with `settings`.
    pub fn new(settings: Patroni) -> PatroniWatch {
        PatroniWatch { settings }
    }
}

impl FailoverManager for PatroniWatch {
    fn name(&self) -> &'static str {
        "patroni"
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

/// A member as Patroni's `/cluster` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    /// Member name (its region here).
    pub name: String,
    /// `leader`, `sync_standby`, `replica`, …
    pub role: String,
    /// Bytes behind the leader's last reported position, or `"unknown"` (absent for the
    /// leader).
    #[serde(default)]
    pub lag: Option<serde_json::Value>,
}

/// Patroni's `/cluster`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterView {
    /// Every member with a key in the DCS.
    pub members: Vec<Member>,
}

impl ClusterView {
    /// The member holding the leader key.
    pub fn leader(&self) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.role == "leader")
            .map(|m| m.name.as_str())
    }
}

/// Why nobody took over, from what Patroni and etcd say (`dcs_answers`: etcd's `/health`
/// answered the harness; `views`: the surviving members' `/cluster`, None where it failed).
pub fn refusal_reason(
    settings: &Patroni,
    old: &str,
    dcs_answers: bool,
    views: &[(String, Option<ClusterView>)],
) -> String {
    let survivors: Vec<&(String, Option<ClusterView>)> =
        views.iter().filter(|(name, _)| name != old).collect();
    if !dcs_answers || survivors.iter().all(|(_, v)| v.is_none()) {
        return format!(
            "DCS unreachable: etcd (in {}) does not answer, so no member can take the leader \
             key (Patroni: \"DCS is not accessible\")",
            settings.dcs.region
        );
    }
    let limit = settings.maximum_lag_on_failover;
    let lagging: Vec<String> = survivors
        .iter()
        .filter_map(|(_, v)| v.as_ref())
        .flat_map(|v| v.members.iter())
        .filter(|m| m.name != old && m.role != "leader")
        .filter_map(|m| {
            let lag = m.lag.as_ref()?.as_u64()?;
            (lag > limit).then(|| format!("{} is {lag} bytes behind", m.name))
        })
        .collect();
    if !lagging.is_empty() {
        return format!(
            "no candidate within maximum_lag_on_failover ({limit} bytes): {} the leader's \
             last reported position",
            lagging.join(", ")
        );
    }
    let roles: Vec<String> = survivors
        .iter()
        .filter_map(|(_, v)| v.as_ref())
        .flat_map(|v| v.members.iter())
        .map(|m| format!("{} {}", m.name, m.role))
        .collect();
    format!(
        "no member took the leader key; Patroni's view: {}",
        if roles.is_empty() {
            "no members".to_string()
        } else {
            roles.join(", ")
        }
    )
}

async fn watch(
    stack: Arc<Stack>,
    settings: Patroni,
    recorder: Recorder,
    cancel: CancellationToken,
) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(400))
        .build()
        .expect("static client");
    let regions = stack.plan().regions.clone();
    let old = stack.routing.snapshot().primary;
    let api = |r: &str| stack.port(&NodeId::new(r, Role::Api));
    let start_timeline = router_primary_timeline(&stack, &old).await.unwrap_or(1);
    let outage_limit =
        Duration::from_secs(u64::from(settings.ttl + settings.loop_wait)) + REFUSAL_MARGIN;
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
        let views = futures::future::join_all(regions.iter().map(|r| {
            let http = http.clone();
            let port = api(r);
            async move { (r.clone(), cluster(&http, port).await) }
        }))
        .await;
        let leaders: Vec<&str> = views
            .iter()
            .filter(|(r, _)| *r != old)
            .filter_map(|(_, v)| v.as_ref()?.leader())
            .collect();
        let survivor_sees_old = leaders.contains(&old.as_str());
        let answered = views.iter().any(|(r, v)| *r != old && v.is_some());
        if !declared && answered && !survivor_sees_old {
            declared = true;
            recorder.event(EventKind::PrimaryDeclaredDown {
                region: old.clone(),
            });
        }
        if declared && new.is_none() {
            new = leaders.iter().find(|l| **l != old).map(|l| l.to_string());
        }
        if let Some(n) = &new
            && !promoted
            && answers_primary(&http, api(n)).await
        {
            promoted = true;
            recorder.event(EventKind::Promoted {
                region: n.clone(),
                from: None,
            });
            stack.routing.follow(n);
        }
        if let Some(n) = &new
            && promoted
        {
            if router_primary_timeline(&stack, n)
                .await
                .is_some_and(|tl| tl > start_timeline)
            {
                recorder.event(EventKind::Rerouted { region: n.clone() });
                // One failover per run, as the built-in controller.
                return;
            }
            continue;
        }
        // Nobody new leads: is the old leader gone, and for how long?
        let old_alive = answers_primary(&http, api(&old)).await;
        if old_alive {
            silent_since = None;
            continue;
        }
        let since = *silent_since.get_or_insert_with(tokio::time::Instant::now);
        if !refused && since.elapsed() >= outage_limit {
            refused = true;
            let dcs = stack.port(&NodeId::new(&settings.dcs.region, Role::Dcs));
            let dcs_answers = etcd_healthy(&http, dcs).await;
            let reason = refusal_reason(&settings, &old, dcs_answers, &views_owned(&views));
            recorder.event(EventKind::FailoverRefused {
                region: old.clone(),
                reason,
            });
        }
    }
}

fn views_owned(v: &[(String, Option<ClusterView>)]) -> Vec<(String, Option<ClusterView>)> {
    v.to_vec()
}

/// Patroni's `/cluster` from the member whose REST API is on `port`.
async fn cluster(http: &reqwest::Client, port: Option<u16>) -> Option<ClusterView> {
    let url = format!("http://127.0.0.1:{}/cluster", port?);
    let r = http.get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// Whether the member whose REST API is on `port` answers `/primary` with 200.
async fn answers_primary(http: &reqwest::Client, port: Option<u16>) -> bool {
    let Some(port) = port else { return false };
    http.get(format!("http://127.0.0.1:{port}/primary"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Whether etcd on `port` says it is healthy.
async fn etcd_healthy(http: &reqwest::Client, port: Option<u16>) -> bool {
    let Some(port) = port else { return false };
    match http
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
    {
        Ok(r) => r.text().await.is_ok_and(|t| t.contains("true")),
        Err(_) => false,
    }
}

/// The timeline of the primary `region`'s HAProxy hands connections to (None: it hands out
/// none, or only to a server in recovery).
pub async fn router_primary_timeline(stack: &Stack, region: &str) -> Option<u32> {
    let port = stack.port(&NodeId::new(region, Role::Router))?;
    crate::postgres::primary_timeline_at(&crate::postgres::dsn(port), Duration::from_millis(400))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::{HaproxyChecks, Placement};

    fn settings(dcs: &str) -> Patroni {
        Patroni {
            ttl: 20,
            loop_wait: 2,
            retry_timeout: 3,
            maximum_lag_on_failover: 1024,
            synchronous_mode: false,
            synchronous_mode_strict: false,
            use_pg_rewind: false,
            failsafe_mode: false,
            dcs: Placement {
                region: dcs.into(),
                witness_rtt: Duration::ZERO,
            },
            haproxy: HaproxyChecks {
                inter: Duration::from_secs(1),
                fall: 2,
                rise: 1,
            },
        }
    }

    fn view(json: &str) -> Option<ClusterView> {
        Some(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn reads_patronis_cluster_view() {
        let v = view(
            r#"{"members":[{"name":"eu","role":"replica","state":"running","lag":0},
               {"name":"us","role":"leader","state":"running","timeline":1}]}"#,
        )
        .unwrap();
        assert_eq!(v.leader(), Some("us"));
    }

    #[test]
    fn says_the_dcs_was_unreachable() {
        let views = vec![("us".to_string(), None), ("eu".to_string(), None)];
        let r = refusal_reason(&settings("us"), "us", false, &views);
        assert!(r.starts_with("DCS unreachable: etcd (in us)"), "{r}");
    }

    #[test]
    fn says_the_candidate_lagged_beyond_the_limit() {
        let views = vec![
            ("us".to_string(), None),
            (
                "eu".to_string(),
                view(r#"{"members":[{"name":"eu","role":"replica","lag":5000}]}"#),
            ),
        ];
        let r = refusal_reason(&settings("witness"), "us", true, &views);
        assert_eq!(
            r,
            "no candidate within maximum_lag_on_failover (1024 bytes): eu is 5000 bytes \
             behind the leader's last reported position"
        );
        // Within the limit, lag is not the reason.
        let views = vec![(
            "eu".to_string(),
            view(r#"{"members":[{"name":"eu","role":"replica","lag":1024}]}"#),
        )];
        let r = refusal_reason(&settings("witness"), "us", true, &views);
        assert_eq!(
            r,
            "no member took the leader key; Patroni's view: eu replica"
        );
    }
}
