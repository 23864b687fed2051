//! Unavailability: the share of operations that did not succeed, per home region and phase.
//!
//! # Definitions
//! - An operation belongs to its user's home region and to the phase its invoke time falls
//!   in (an operation invoked just before a fault that then times out counts as "before": the
//!   phase says what the user attempted, not when the answer came).
//! - **Phases** ([`phase_bounds`]): `before` = invoked before the first `FaultStarted`;
//!   `fault` = from the first `FaultStarted` up to the end of the faults; `after` = the rest.
//!   The end of the faults is the earliest of: the `Healed` event (every fault undone), and
//!   the time by which every started fault had its own `FaultHealed` (the last of those). If
//!   neither exists, the fault phase lasts until the end of the run. With no fault at all,
//!   every operation is `before`.
//! - `rate` = (failed + unknown) / ops. `unknown` counts as unavailable: the user did not get
//!   an answer. Phases with no operations are left out (no made-up 0 %).

use super::FastMap;
use super::rows::{FindingRow, RowContext, pct};
use crate::history::{EventKind, History, Nanos, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A phase of the run relative to the fault schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before the first fault started.
    Before,
    /// From the first fault's start until every fault was healed.
    Fault,
    /// After every fault was healed.
    After,
}

impl Phase {
    /// Every phase, in time order: `Phase as usize` indexes arrays in this order.
    pub const ALL: [Phase; 3] = [Phase::Before, Phase::Fault, Phase::After];

    /// The phase of an operation invoked at `t`, given [`phase_bounds`].
    pub fn of(t: Nanos, bounds: (Option<Nanos>, Option<Nanos>)) -> Phase {
        match bounds {
            (Some(start), _) if t < start => Phase::Before,
            (None, _) => Phase::Before,
            (Some(_), Some(end)) if t >= end => Phase::After,
            (Some(_), _) => Phase::Fault,
        }
    }

    /// "before", "fault", "after" (as in results.json).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::Fault => "fault",
            Phase::After => "after",
        }
    }
}

/// Unavailability findings (`unavailability.<region>.<phase>.*` in results.json): per home
/// region, per phase; phases without operations are left out.
pub type Unavailability = BTreeMap<String, BTreeMap<Phase, PhaseCounts>>;

/// Operations of one region in one phase (`unavailability.<region>.<phase>.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseCounts {
    /// Operations invoked.
    pub ops: usize,
    /// Of which ended `fail`.
    pub failed: usize,
    /// Of which ended `unknown`.
    pub unknown: usize,
    /// (failed + unknown) / ops.
    pub rate: f64,
}

/// Start and end of the fault phase: (first `FaultStarted`, end of the faults as defined in
/// the module docs). `(None, None)` when no fault started; `(Some, None)` when the faults were
/// never all healed within the history.
pub fn phase_bounds(history: &History) -> (Option<Nanos>, Option<Nanos>) {
    let starts: Vec<(usize, Nanos)> = history
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::FaultStarted { index, .. } => Some((index, e.at_ns)),
            _ => None,
        })
        .collect();
    let Some(start) = starts.iter().map(|&(_, t)| t).min() else {
        return (None, None);
    };
    let healed = history
        .events
        .iter()
        .filter(|e| e.at_ns >= start && matches!(e.kind, EventKind::Healed))
        .map(|e| e.at_ns)
        .min();
    // Each start needs its own FaultHealed (same index) at or after it.
    let all_healed = starts
        .iter()
        .map(|&(index, at)| {
            history
                .events
                .iter()
                .filter(|e| {
                    e.at_ns >= at
                        && matches!(e.kind, EventKind::FaultHealed { index: i, .. } if i == index)
                })
                .map(|e| e.at_ns)
                .min()
        })
        .try_fold(0, |last: Nanos, healed_at| healed_at.map(|h| last.max(h)));
    let end = match (healed, all_healed) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    (Some(start), end)
}

/// Counts unavailability per home region and phase.
pub fn check(history: &History) -> Unavailability {
    let bounds = phase_bounds(history);
    // [ops, failed, unknown] per phase, per region; regions borrowed until the end.
    let mut counts: FastMap<&str, [[usize; 3]; 3]> = FastMap::default();
    for op in &history.ops {
        let c = &mut counts.entry(op.region.as_str()).or_default()
            [Phase::of(op.invoke_ns, bounds) as usize];
        c[0] += 1;
        match op.outcome {
            Outcome::Ok { .. } => {}
            Outcome::Fail { .. } => c[1] += 1,
            Outcome::Unknown { .. } => c[2] += 1,
        }
    }
    counts
        .into_iter()
        .map(|(region, phases)| {
            let phases = Phase::ALL
                .into_iter()
                .zip(phases)
                .filter(|(_, [ops, ..])| *ops > 0)
                .map(|(phase, [ops, failed, unknown])| {
                    let rate = (failed + unknown) as f64 / ops as f64;
                    (
                        phase,
                        PhaseCounts {
                            ops,
                            failed,
                            unknown,
                            rate,
                        },
                    )
                })
                .collect();
            (region.to_owned(), phases)
        })
        .collect()
}

/// One row per home region: the failed share in each phase that had operations.
pub fn rows(u: &Unavailability, _cx: &RowContext) -> Vec<FindingRow> {
    u.iter()
        .map(|(region, phases)| {
            let cells: Vec<String> = Phase::ALL
                .iter()
                .filter_map(|p| {
                    phases
                        .get(p)
                        .map(|c| format!("{} {}", p.name(), pct(Some(c.rate))))
                })
                .collect();
            FindingRow::info(format!("{region} users: failed ops"), cells.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    fn counts(ops: usize, failed: usize, unknown: usize, rate: f64) -> PhaseCounts {
        PhaseCounts {
            ops,
            failed,
            unknown,
            rate,
        }
    }

    #[test]
    fn per_region_and_phase() {
        // Fault 0 from 100 to 300, fault 1 from 150 to 250; Healed at 900.
        // → fault phase [100, 300) (the last FaultHealed comes before Healed).
        // Op 3 was invoked at 99 (< 100), so it is "before" though it timed out in the fault.
        // us before = ops 1, 2, 3 → 3 ops, 1 failed, 1 unknown → 2/3.
        // us fault = ops 4, 5, 6, 7 → 4 ops, 1 failed, 2 unknown → 0.75.
        // us after = op 8 (invoked at 300 = the end) → 1 op → 0.
        // eu: fault only: 1 unknown → 1.0 (no before/after entries).
        let h = history(
            vec![
                w(1, "a", 10, 20),
                w(2, "a", 50, 60).fail(),
                w(3, "a", 99, 400).unknown(),
                r(4, "a", 100, 110, Some(1)),
                w(5, "a", 150, 160).fail(),
                r(6, "a", 200, 210, None).unknown(),
                w(7, "a", 299, 310).unknown(),
                w(8, "a", 300, 310),
                r(9, "a", 120, 130, None).region("eu").unknown(),
            ],
            vec![
                fault(100, 0, true),
                fault(150, 1, false),
                heal(250, 1),
                heal(300, 0),
                ev(900, EventKind::Healed),
            ],
        );
        assert_eq!(phase_bounds(&h), (Some(100 * MS), Some(300 * MS)));
        let u = check(&h);
        assert_eq!(u.len(), 2);
        assert_eq!(
            u["us"],
            BTreeMap::from([
                (Phase::Before, counts(3, 1, 1, 2.0 / 3.0)),
                (Phase::Fault, counts(4, 1, 2, 0.75)),
                (Phase::After, counts(1, 0, 0, 0.0)),
            ])
        );
        assert_eq!(
            u["eu"],
            BTreeMap::from([(Phase::Fault, counts(1, 0, 1, 1.0))])
        );
        let json = serde_json::to_value(&u).unwrap();
        assert_eq!(json["us"]["fault"]["rate"], 0.75);
        assert_eq!(json["eu"]["fault"]["ops"], 1);
        assert_eq!(json["us"].as_object().unwrap().len(), 3);
        let back: BTreeMap<String, BTreeMap<Phase, PhaseCounts>> =
            serde_json::from_value(json).unwrap();
        assert_eq!(back, u);
    }

    #[test]
    fn no_faults_means_everything_is_before() {
        let h = history(vec![w(1, "a", 10, 20), w(2, "a", 50, 60).fail()], vec![]);
        assert_eq!(phase_bounds(&h), (None, None));
        assert_eq!(
            check(&h)["us"],
            BTreeMap::from([(Phase::Before, counts(2, 1, 0, 0.5))])
        );
    }

    #[test]
    fn phases_without_heal_last_until_the_end() {
        // Fault 0 healed at 200 but fault 1 never healed, no Healed event: fault until the end.
        let h = history(
            vec![w(1, "a", 10, 20), w(2, "a", 500, 510).fail()],
            vec![fault(100, 0, true), fault(150, 1, false), heal(200, 0)],
        );
        assert_eq!(phase_bounds(&h), (Some(100 * MS), None));
        assert_eq!(
            check(&h)["us"],
            BTreeMap::from([
                (Phase::Before, counts(1, 0, 0, 0.0)),
                (Phase::Fault, counts(1, 1, 0, 1.0)),
            ])
        );
    }

    #[test]
    fn healed_event_ends_the_faults_when_not_every_fault_healed_itself() {
        // Fault 1 has no FaultHealed; Healed at 700 ends the fault phase.
        let h = history(
            vec![],
            vec![
                fault(100, 0, true),
                fault(150, 1, false),
                heal(200, 0),
                ev(700, EventKind::Healed),
            ],
        );
        assert_eq!(phase_bounds(&h), (Some(100 * MS), Some(700 * MS)));
        // Healed before the last FaultHealed: the earlier one wins.
        let h = history(
            vec![],
            vec![
                fault(100, 0, true),
                ev(400, EventKind::Healed),
                heal(500, 0),
            ],
        );
        assert_eq!(phase_bounds(&h), (Some(100 * MS), Some(400 * MS)));
    }

    #[test]
    fn a_restarted_fault_needs_a_heal_after_each_start() {
        // Fault 0 starts at 100, heals at 200, starts again at 300 and never heals again.
        let h = history(
            vec![],
            vec![fault(100, 0, true), heal(200, 0), fault(300, 0, true)],
        );
        assert_eq!(phase_bounds(&h), (Some(100 * MS), None));
        let h = history(
            vec![],
            vec![
                fault(100, 0, true),
                heal(200, 0),
                fault(300, 0, true),
                heal(450, 0),
            ],
        );
        assert_eq!(phase_bounds(&h), (Some(100 * MS), Some(450 * MS)));
    }
}
