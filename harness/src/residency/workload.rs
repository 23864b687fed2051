//! Drives the personal-data plan ([`super::PersonalPlan`]) against the stack, open loop,
//! beside the key-value workload, recording every operation in the same history (kinds
//! `profile_write`, `profile_read`, `erase`; key `profile:{user}`).
//!
//! Users reach apps as in the key-value workload, except that the routing table is read
//! afresh for every operation (no DNS TTL): personal-data operations are few, and the
//! residency and erasure checkers do not measure failover.

use super::PersonalPlan;
use crate::history::{OpKind, Operation, Outcome};
use crate::record::Recorder;
use crate::stack::Stack;
use crate::workload::client::AppClient;
use crate::workload::plan::Plan;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Runs `personal` (users and homes from `kv`) until its end or `cancel`.
pub async fn run(
    personal: Arc<PersonalPlan>,
    kv: Arc<Plan>,
    seed: u64,
    stack: Arc<Stack>,
    client: AppClient,
    recorder: Recorder,
    cancel: CancellationToken,
) {
    let clock = recorder.clock();
    let mut inflight = tokio::task::JoinSet::new();
    for op in personal.ops.iter().cloned() {
        let due = tokio::time::Instant::from_std(clock.instant(op.at_ns));
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(due) => {}
        }
        while inflight.try_join_next().is_some() {}
        let (kv, stack, client, recorder) =
            (kv.clone(), stack.clone(), client.clone(), recorder.clone());
        inflight.spawn(async move {
            let home = kv.home(op.user);
            // Erasure goes to the home region's app; profiles to the app where the user is.
            let location = if op.kind == OpKind::Erase {
                home
            } else {
                kv.location(op.user)
            };
            let serving = stack.routing.serving(location);
            let url = stack.app_url_for(location, &serving);
            let token = super::token(op.user, seed);
            let invoke_ns = recorder.clock().now();
            let outcome = match url {
                Some(base) => client.personal(&base, op.kind, op.user, home, &token).await,
                None => Outcome::Fail {
                    error: format!("no route for users in {location}"),
                },
            };
            let complete_ns = recorder.clock().now();
            recorder.op(Operation {
                from: (location != home).then(|| location.to_string()),
                id: op.id,
                user: op.user,
                region: home.to_string(),
                kind: op.kind,
                key: format!("profile:{}", op.user),
                invoke_ns,
                planned_ns: Some(op.at_ns),
                complete_ns,
                outcome,
            });
        });
    }
    tokio::select! {
        _ = cancel.cancelled() => inflight.abort_all(),
        _ = async { while inflight.join_next().await.is_some() {} } => {}
    }
    while inflight.join_next().await.is_some() {}
}
