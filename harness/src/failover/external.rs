//! The failover of a stack someone else runs (a target), observed from outside: regiondrill
//! does not fail a target over — its own HA manager (Patroni, pg_auto_failover, a managed
//! service, an operator) does — but it sees each promotion happen.
//!
//! Every region's database the target names is asked every [`POLL`] whether it is a primary
//! and on which timeline. A region other than the current primary answering as a primary on
//! a timeline above the one the run started on is a `Promoted` event (the routing table then
//! follows it, so the final state is read there). Detection and rerouting happen inside the
//! target and are not visible: the checkers' RTO comes from the users' operations, as for
//! every manager.

use super::FailoverManager;
use crate::history::EventKind;
use crate::record::Recorder;
use crate::stack::Stack;
use crate::stack::backend::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often every database is asked. A `Promoted` event is therefore recorded up to one
/// poll plus one answer (at most 400 ms) after the promotion really happened; nothing but
/// the event's time depends on it (RTO and RPO come from the users' operations).
pub const POLL: Duration = Duration::from_millis(100);
/// How long one answer may take (a black-holed link never answers).
const ANSWER_WITHIN: Duration = Duration::from_millis(400);

/// Watches a target's databases for promotions.
pub struct ExternalWatch;

impl FailoverManager for ExternalWatch {
    fn name(&self) -> &'static str {
        "the target's own"
    }

    fn run(
        &self,
        stack: Arc<Stack>,
        recorder: Recorder,
        stop: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        Box::pin(watch(stack, recorder, stop))
    }
}

async fn watch(stack: Arc<Stack>, recorder: Recorder, stop: CancellationToken) {
    let dsns: BTreeMap<String, String> = stack
        .plan()
        .regions
        .iter()
        .filter_map(|r| Some((r.clone(), stack.db_dsn(r)?)))
        .collect();
    let mut clients: BTreeMap<String, tokio_postgres::Client> = BTreeMap::new();
    let mut primary = stack.routing.snapshot().primary;
    let mut timeline: Option<u32> = None;
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let answers = futures::future::join_all(dsns.iter().map(|(region, dsn)| {
            let client = clients.remove(region);
            async move {
                let client = match client {
                    Some(c) if !c.is_closed() => Some(c),
                    _ => crate::postgres::connect_dsn(dsn, ANSWER_WITHIN).await.ok(),
                };
                let tl = match &client {
                    Some(c) => crate::postgres::primary_timeline(c, ANSWER_WITHIN).await,
                    None => None,
                };
                (region.clone(), client, tl)
            }
        }))
        .await;
        for (region, client, tl) in answers {
            if let Some(c) = client {
                clients.insert(region.clone(), c);
            }
            let Some(tl) = tl else { continue };
            if region == primary {
                timeline = Some(timeline.map_or(tl, |t| t.max(tl)));
            } else if timeline.is_none_or(|t| tl > t) {
                tracing::info!(%region, timeline = tl, "the target promoted a new primary");
                recorder.event(EventKind::Promoted {
                    region: region.clone(),
                    from: Some(primary.clone()),
                });
                stack.routing.follow(&region);
                primary = region;
                timeline = Some(tl);
            }
        }
    }
}
