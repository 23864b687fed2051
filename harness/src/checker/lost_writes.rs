//! Lost writes and the RPO they show.
//!
//! # Definitions
//! - **Lost write**: a write whose outcome was `ok` (acknowledged to its client) and whose id
//!   is absent from the final primary's `writes` table, read after every fault was healed
//!   and the system settled.
//! - Writes with an `unknown` outcome may or may not have committed, so they are never
//!   counted as lost: `unknown_absent` counts those missing from the final state (possibly
//!   never committed), `unknown_present` those found there (they did commit). `fail` writes
//!   are not counted anywhere.
//! - **Checked**: only when the final state was read from a primary
//!   (`FinalState::primary_region` is set). Otherwise `checked` is false, every count is 0,
//!   `ids` is empty and `rpo_ms` is None: the report must say "not checked", never "0 lost".
//! - **The failure** (`failure_at_ms`): the failure of the primary as defined in
//!   [`super::failover`]; when no fault hit the primary but writes were lost, the first
//!   `FaultStarted` of any kind.
//! - **RPO observed** (`rpo_ms`): the span of acknowledged writes lost before the failure =
//!   failure − the earliest invoke time among lost writes. 0 when checked and nothing was
//!   lost. Two cases the formula alone would get wrong, resolved so that a loss never reads
//!   as an RPO of 0 or less:
//!   - when every lost write was invoked at or after the failure (acknowledged by a primary
//!     that should have been down: split-brain), or there was no fault at all, the RPO is the
//!     span those writes cover: latest acknowledgement − earliest invoke among them;
//!   - it is None only when not checked.
//! - **Erased**: an acknowledged write absent from the final state whose user's erasure
//!   (`DELETE /users/{id}`, see [`super::erasure`]) was acknowledged, and which was invoked
//!   before that acknowledgement: the erasure may have removed it on purpose, so it is not
//!   counted as lost (`erased` counts them). A write lost for another reason by a user later
//!   erased is counted there too: with erasures, the lost-write count is a lower bound.

use super::failover;
use super::rows::{FindingRow, RowContext, dur};
use super::{FastMap, FastSet, ms_between};
use crate::history::{EventKind, FinalState, History, Nanos, OpKind, Outcome, ms};
use serde::{Deserialize, Serialize};

/// Lost-write findings (`lost_writes.*` in results.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LostWrites {
    /// Acknowledged writes absent from the final state (0 when not checked).
    pub count: usize,
    /// Their ids, ascending.
    pub ids: Vec<u64>,
    /// Writes with an unknown outcome absent from the final state (not counted as lost).
    pub unknown_absent: usize,
    /// Writes with an unknown outcome present in the final state (they did commit).
    pub unknown_present: usize,
    /// Whether the final state was read at all; when false, nothing here was measured.
    pub checked: bool,
    /// The failure the RPO is measured back from (None: no fault).
    pub failure_at_ms: Option<f64>,
    /// RPO observed: span of acknowledged writes lost, in ms (None: not checked).
    pub rpo_ms: Option<f64>,
    /// Acknowledged writes absent because their user's erasure removed them (not lost).
    #[serde(default)]
    pub erased: usize,
}

/// Compares acknowledged writes with the final state.
pub fn check(history: &History, final_state: Option<&FinalState>) -> LostWrites {
    let failure = failover::failure_at(history);
    let Some(final_state) = final_state.filter(|f| f.primary_region.is_some()) else {
        return LostWrites {
            count: 0,
            ids: Vec::new(),
            unknown_absent: 0,
            unknown_present: 0,
            checked: false,
            failure_at_ms: failure.map(ms),
            rpo_ms: None,
            erased: 0,
        };
    };
    let erasures: FastMap<u32, Nanos> = history
        .ops
        .iter()
        .filter(|o| o.kind == OpKind::Erase && o.outcome.is_ok())
        .map(|o| (o.user, o.complete_ns))
        .collect();
    let mut erased = 0;
    let present: FastSet<u64> = final_state.write_ids.iter().copied().collect();
    let mut ids = Vec::new();
    let (mut unknown_absent, mut unknown_present) = (0, 0);
    let mut earliest_invoke = Nanos::MAX;
    let mut latest_ack = 0;
    for op in history.ops.iter().filter(|op| op.kind == OpKind::Write) {
        match op.outcome {
            Outcome::Ok { .. }
                if !present.contains(&op.id)
                    && erasures.get(&op.user).is_some_and(|&at| op.invoke_ns < at) =>
            {
                erased += 1;
            }
            Outcome::Ok { .. } if !present.contains(&op.id) => {
                ids.push(op.id);
                earliest_invoke = earliest_invoke.min(op.invoke_ns);
                latest_ack = latest_ack.max(op.complete_ns);
            }
            Outcome::Unknown { .. } if present.contains(&op.id) => unknown_present += 1,
            Outcome::Unknown { .. } => unknown_absent += 1,
            _ => {}
        }
    }
    ids.sort_unstable();
    let (failure, rpo_ms) = if ids.is_empty() {
        (failure, Some(0.0))
    } else {
        let failure = failure.or_else(|| {
            history
                .events
                .iter()
                .filter(|e| matches!(e.kind, EventKind::FaultStarted { .. }))
                .map(|e| e.at_ns)
                .min()
        });
        let rpo = match failure {
            Some(f) if earliest_invoke < f => ms_between(f, earliest_invoke),
            _ => ms_between(latest_ack, earliest_invoke),
        };
        (failure, Some(rpo))
    };
    LostWrites {
        count: ids.len(),
        ids,
        unknown_absent,
        unknown_present,
        checked: true,
        failure_at_ms: failure.map(ms),
        rpo_ms,
        erased,
    }
}

/// The RPO row (judged by the `rpo` check) and the unknown-outcome writes when there are any.
pub fn rows(l: &LostWrites, cx: &RowContext) -> Vec<FindingRow> {
    let lost = if l.checked {
        format!("{} ({} lost)", cx.shown("rpo", dur(l.rpo_ms)), l.count)
    } else {
        "not checked".into()
    };
    let mut rows = vec![cx.judged("RPO (acked writes lost)", lost, "rpo")];
    if l.erased > 0 {
        rows.push(FindingRow::sub(
            "acked writes erased on request (not lost)",
            l.erased.to_string(),
        ));
    }
    if l.unknown_absent + l.unknown_present > 0 {
        rows.push(FindingRow::sub(
            "unknown-outcome writes absent/present",
            format!("{} / {}", l.unknown_absent, l.unknown_present),
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    fn final_state(ids: &[u64]) -> FinalState {
        FinalState {
            residency: None,
            primaries: Vec::new(),
            standbys: Vec::new(),
            primary_region: Some("eu".into()),
            write_ids: ids.to_vec(),
            regions: Default::default(),
        }
    }

    #[test]
    fn acked_writes_missing_after_a_kill() {
        // Kill at 1000. Acked writes 1..=5 (invoked at 100, 300, 500, 700, 900).
        // Final state has 1, 2, 3 → lost 4 (invoked 700) and 5 (invoked 900).
        // RPO = 1000 − 700 = 300 ms.
        // Unknown writes: 6 present (committed), 7 absent. Failed write 8 absent: ignored.
        let h = history(
            vec![
                w(1, "a", 100, 110),
                w(2, "b", 300, 310),
                w(3, "a", 500, 510),
                w(5, "a", 900, 910),
                w(4, "b", 700, 710),
                w(6, "c", 950, 2950).unknown(),
                w(7, "c", 960, 2960).unknown(),
                w(8, "c", 970, 980).fail(),
                r(9, "a", 990, 995, Some(5)),
            ],
            vec![fault(1000, 0, true)],
        );
        let lost = check(&h, Some(&final_state(&[1, 2, 3, 6])));
        assert_eq!(
            lost,
            LostWrites {
                count: 2,
                ids: vec![4, 5],
                unknown_absent: 1,
                unknown_present: 1,
                checked: true,
                failure_at_ms: Some(1000.0),
                rpo_ms: Some(300.0),
                erased: 0,
            }
        );
    }

    #[test]
    fn writes_removed_by_an_acknowledged_erasure_are_not_lost() {
        // User 2's writes 1 and 3 are gone: 1 was invoked before user 2's erasure was
        // acknowledged (at 50), so it was erased; 3 was invoked after it, so it is lost.
        let mut erase = w(9, "profile:2", 40, 50).user(2);
        erase.0.kind = OpKind::Erase;
        let h = history(
            vec![
                w(1, "a", 0, 10).user(2),
                erase,
                w(3, "a", 60, 70).user(2),
                w(4, "b", 0, 5),
            ],
            vec![],
        );
        let lost = check(&h, Some(&final_state(&[4])));
        assert_eq!((lost.count, lost.ids.clone(), lost.erased), (1, vec![3], 1));
    }

    #[test]
    fn nothing_lost_is_an_rpo_of_zero() {
        let h = history(vec![w(1, "a", 100, 110)], vec![fault(1000, 0, true)]);
        let lost = check(&h, Some(&final_state(&[1])));
        assert_eq!((lost.count, lost.checked), (0, true));
        assert_eq!(lost.rpo_ms, Some(0.0));
        assert_eq!(lost.failure_at_ms, Some(1000.0));
    }

    #[test]
    fn no_faults_and_nothing_lost() {
        let h = history(vec![w(1, "a", 100, 110), w(2, "a", 200, 210)], vec![]);
        let lost = check(&h, Some(&final_state(&[2, 1])));
        assert_eq!(lost.count, 0);
        assert_eq!(lost.failure_at_ms, None);
        assert_eq!(lost.rpo_ms, Some(0.0));
    }

    #[test]
    fn active_active_union_of_both_regions_write_logs() {
        // Active-active: us committed 1 and 3, eu committed 2 and 4; the final state's
        // write_ids is the union of both logs (here without 3: lost), and region views are
        // present but do not matter to this checker.
        let h = history(
            vec![
                w(1, "a", 0, 10).committed_by("us"),
                w(2, "a", 5, 15).region("eu").committed_by("eu"),
                w(3, "b", 20, 30).committed_by("us"),
                w(4, "b", 25, 35).region("eu").committed_by("eu"),
            ],
            vec![],
        );
        let fs = FinalState {
            write_ids: vec![4, 2, 1],
            ..final_regions(&[("eu", &[("a", 2), ("b", 4)], &[]), ("us", &[("a", 2)], &[])])
        };
        let lost = check(&h, Some(&fs));
        assert!(lost.checked);
        assert_eq!(lost.ids, vec![3]);
        assert_eq!(lost.rpo_ms, Some(10.0));
    }

    #[test]
    fn no_final_state_is_not_checked() {
        let h = history(vec![w(1, "a", 100, 110)], vec![fault(1000, 0, true)]);
        for fs in [
            None,
            Some(FinalState {
                residency: None,
                primaries: Vec::new(),
                standbys: Vec::new(),
                primary_region: None,
                write_ids: vec![],
                regions: Default::default(),
            }),
        ] {
            let lost = check(&h, fs.as_ref());
            assert!(!lost.checked);
            assert_eq!(lost.count, 0);
            assert!(lost.ids.is_empty());
            assert_eq!(lost.rpo_ms, None);
            assert_eq!(lost.failure_at_ms, Some(1000.0));
        }
    }

    #[test]
    fn loss_without_a_primary_fault_measures_from_the_first_fault() {
        // Only a non-primary fault at 400 (say, a partition of the replication link); write 2
        // (invoked 250) lost → failure 400, RPO = 150.
        let h = history(
            vec![w(1, "a", 100, 110), w(2, "a", 250, 260)],
            vec![fault(400, 0, false), fault(600, 1, false)],
        );
        let lost = check(&h, Some(&final_state(&[1])));
        assert_eq!(lost.ids, vec![2]);
        assert_eq!(lost.failure_at_ms, Some(400.0));
        assert_eq!(lost.rpo_ms, Some(150.0));
    }

    #[test]
    fn loss_after_the_failure_is_the_span_of_the_lost_writes() {
        // Failure at 100; writes acked by a primary that should have been down, invoked at
        // 200 (acked 230) and 500 (acked 540), are lost → RPO = 540 − 200 = 340, not −100.
        let h = history(
            vec![w(1, "a", 200, 230), w(2, "a", 500, 540)],
            vec![fault(100, 0, true)],
        );
        let lost = check(&h, Some(&final_state(&[])));
        assert_eq!(lost.ids, vec![1, 2]);
        assert_eq!(lost.rpo_ms, Some(340.0));
        // And with no fault at all: the same span.
        let h = history(vec![w(1, "a", 200, 230), w(2, "a", 500, 540)], vec![]);
        let lost = check(&h, Some(&final_state(&[])));
        assert_eq!((lost.failure_at_ms, lost.rpo_ms), (None, Some(340.0)));
    }

    /// The physics case: async replication, the replication link partitioned at `P`, the
    /// primary's region killed at `K`, failover to the replica. Every write acknowledged by the
    /// primary after the partition never reached the replica, so exactly those are lost.
    /// The history and the final state are built from a simulation; the expected ids are
    /// computed independently from the construction (acked in `[P, K)`).
    #[test]
    fn async_partition_then_region_kill() {
        const P: u64 = 2_000; // partition of the replication link (ms)
        const K: u64 = 5_000; // region kill (ms)
        const DECLARED: u64 = 5_900;
        const PROMOTED: u64 = 6_000;
        const REROUTED: u64 = 6_100;
        // Replication lag before the partition is 30 ms: writes acked in [P − 30, P) were
        // still in flight when the partition began and are lost too.
        const LAG: u64 = 30;
        let mut ops = Vec::new();
        let mut replica_has = Vec::new();
        let mut id = 0;
        // 4 users, one write every 50 ms each (user u offset by 7u ms), over 0..8000 ms;
        // every write takes 40 ms.
        for t in (0..8_000).step_by(50) {
            for user in 0..4u32 {
                id += 1;
                let invoke = t + user as u64 * 7;
                let complete = invoke + 40;
                let key = format!("k{}", id % 10);
                let op = if complete < K {
                    // Primary up: acknowledged. Replicated if it reached the replica before
                    // the partition.
                    if complete + LAG < P {
                        replica_has.push(id);
                    }
                    w(id, &key, invoke, complete)
                } else if invoke < K {
                    // In flight at the kill: unknown, never committed anywhere.
                    w(id, &key, invoke, K + 2_000).unknown()
                } else if invoke < REROUTED {
                    // Primary dead, not rerouted yet: refused.
                    w(id, &key, invoke, invoke + 1).fail()
                } else {
                    // Written to the promoted replica: acknowledged and kept.
                    replica_has.push(id);
                    w(id, &key, invoke, complete)
                };
                ops.push(op.user(user));
            }
        }
        let mut events = vec![fault(P, 0, false), fault(K, 1, true)];
        events.extend(failover_steps(DECLARED, PROMOTED, REROUTED));
        events.push(ev(9_000, EventKind::Healed));
        let h = history(ops, events);

        // Expected, from the construction alone: acknowledged before the kill and not on the
        // replica when the partition began.
        let expected: Vec<u64> = h
            .ops
            .iter()
            .filter(|o| o.outcome.is_ok() && o.complete_ns < K * MS)
            .filter(|o| o.complete_ns + LAG * MS >= P * MS)
            .map(|o| o.id)
            .collect();
        // By hand: lost iff acked in [P − LAG, K) = [1970, 5000), i.e. t + 7u + 40 in that
        // range. t = 1900 gives at most 1961: none; t = 1950 gives 1990..2011: all four.
        // t = 4950 gives 4990, 4997 (users 0, 1 acked) and 5004, 5011 (users 2, 3 in flight
        // at the kill → unknown). So 61 slots (t = 1950..=4950) × 4 − 2 = 242 lost, the
        // earliest invoked at 1950, and 2 unknown writes absent.
        assert_eq!(expected.len(), 242);

        let lost = check(
            &h,
            Some(&FinalState {
                residency: None,
                primaries: Vec::new(),
                standbys: Vec::new(),
                primary_region: Some("eu".into()),
                write_ids: replica_has.clone(),
                regions: Default::default(),
            }),
        );
        assert!(lost.checked);
        assert_eq!(lost.ids, expected);
        assert_eq!(lost.count, 242);
        assert_eq!(lost.unknown_absent, 2);
        assert_eq!(lost.unknown_present, 0);
        assert_eq!(lost.failure_at_ms, Some(K as f64));
        // RPO = K − 1950 = 3050 ms: the 3 s partition plus what was in flight before it.
        assert_eq!(lost.rpo_ms, Some(3_050.0));
    }
}
