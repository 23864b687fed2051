//! The failover seen from PostgreSQL's timelines: an RTO cross-check that needs no client's
//! view of the fault (the method CloudNativePG's end-to-end tests use).
//!
//! Every acknowledged write of an active-passive stack reports the timeline it committed on
//! (the app's `timeline`; a promotion starts a new one). The writes' outage is then bracketed
//! by the last write acknowledged on the first timeline and the first acknowledged on the
//! next one.
//!
//! # Definitions
//! - Only `ok` writes that report a timeline count. `old` is the timeline of the earliest
//!   acknowledged of them; `new` is the lowest timeline above `old` among them (None: no
//!   switch within the run, and every other figure is None).
//! - `last_old_ms`: the latest acknowledgement of a write on `old`; `first_new_ms`: the
//!   earliest acknowledgement of a write on `new`; `gap_ms = first_new_ms − last_old_ms`.
//!   Negative when the old primary still acknowledged writes after the new one did (both
//!   accepted writes at once: a split brain).
//! - A write commits between its invocation and its acknowledgement, so the true gap between
//!   the two commits differs from `gap_ms` by at most `uncertainty_ms`, the longer latency of
//!   the two writes.
//!
//! Against the client-observed RTO (`failover.first_rto_ms`: failure → the first successful
//! write of an affected user): that first write is normally the first on `new`, so
//! `gap_ms − first_rto_ms` is the time from the last write on `old` to the failure — about
//! one interval between writes — and the two agree within it plus `uncertainty_ms`.

use super::rows::{FindingRow, RowContext, dur};
use crate::history::{History, Nanos, OpKind, Outcome, ms};
use serde::{Deserialize, Serialize};

/// Timeline figures (`timelines.*` in results.json).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timelines {
    /// The timeline of the earliest acknowledged write (None: no write reported one).
    pub old: Option<u32>,
    /// The next timeline written on (None: no switch).
    pub new: Option<u32>,
    /// Last acknowledgement of a write on `old` (ms since the run's start).
    pub last_old_ms: Option<f64>,
    /// First acknowledgement of a write on `new`.
    pub first_new_ms: Option<f64>,
    /// `first_new_ms − last_old_ms`.
    pub gap_ms: Option<f64>,
    /// Bound on |true commit gap − `gap_ms`|: the longer latency of those two writes.
    pub uncertainty_ms: Option<f64>,
}

/// Brackets the timeline switch.
pub fn check(history: &History) -> Timelines {
    let writes: Vec<(u32, Nanos, Nanos)> = history
        .ops
        .iter()
        .filter(|o| o.kind == OpKind::Write)
        .filter_map(|o| match o.outcome {
            Outcome::Ok {
                timeline: Some(tl), ..
            } => Some((tl, o.invoke_ns, o.complete_ns)),
            _ => None,
        })
        .collect();
    let Some(old) = writes.iter().min_by_key(|w| w.2).map(|w| w.0) else {
        return Timelines::default();
    };
    let new = writes.iter().map(|w| w.0).filter(|&t| t > old).min();
    let Some(new) = new else {
        return Timelines {
            old: Some(old),
            ..Timelines::default()
        };
    };
    let last_old = writes.iter().filter(|w| w.0 == old).max_by_key(|w| w.2);
    let first_new = writes.iter().filter(|w| w.0 == new).min_by_key(|w| w.2);
    let (Some(lo), Some(fnw)) = (last_old, first_new) else {
        return Timelines::default();
    };
    let lat = |w: &(u32, Nanos, Nanos)| w.2.saturating_sub(w.1);
    Timelines {
        old: Some(old),
        new: Some(new),
        last_old_ms: Some(ms(lo.2)),
        first_new_ms: Some(ms(fnw.2)),
        gap_ms: Some(fnw.2 as f64 / 1e6 - lo.2 as f64 / 1e6),
        uncertainty_ms: Some(ms(lat(lo).max(lat(fnw)))),
    }
}

/// The timeline gap, when there was a switch, as a detail beside the RTO.
pub fn rows(t: &Timelines, _cx: &RowContext) -> Vec<FindingRow> {
    match (t.old, t.new, t.gap_ms) {
        (Some(old), Some(new), Some(gap)) => vec![FindingRow::sub(
            format!("timeline gap (last write on {old} → first on {new})"),
            format!("{} (± {})", dur(Some(gap)), dur(t.uncertainty_ms)),
        )],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    fn on(b: B, timeline: u32) -> B {
        b.timeline(timeline)
    }

    #[test]
    fn brackets_the_switch_with_the_last_old_and_first_new_writes() {
        let h = history(
            vec![
                on(w(1, "a", 900, 950), 1),
                // The last write acknowledged on timeline 1: 1000 → 1040.
                on(w(2, "a", 1000, 1040), 1),
                w(3, "a", 1100, 3100).unknown(),
                // Failed writes and writes without a timeline do not count.
                w(4, "b", 3000, 3010).fail(),
                w(5, "b", 3050, 3060),
                // First on timeline 2: 21000 → 21150 (the later one does not move it).
                on(w(6, "c", 21_000, 21_150), 2),
                on(w(7, "c", 21_100, 21_200), 2),
                // A later timeline is not the next one.
                on(w(8, "c", 30_000, 30_010), 3),
            ],
            vec![],
        );
        assert_eq!(
            check(&h),
            Timelines {
                old: Some(1),
                new: Some(2),
                last_old_ms: Some(1040.0),
                first_new_ms: Some(21_150.0),
                gap_ms: Some(20_110.0),
                uncertainty_ms: Some(150.0),
            }
        );
    }

    #[test]
    fn no_switch_no_gap_and_an_overlap_is_negative() {
        let one = history(
            vec![on(w(1, "a", 0, 10), 1), on(w(2, "a", 20, 30), 1)],
            vec![],
        );
        assert_eq!(
            check(&one),
            Timelines {
                old: Some(1),
                ..Timelines::default()
            }
        );
        assert_eq!(
            check(&history(vec![w(1, "a", 0, 10)], vec![])),
            Timelines::default()
        );
        // The old primary acknowledged a write after the new one did: a negative gap.
        let both = history(
            vec![
                on(w(1, "a", 0, 10), 1),
                on(w(2, "a", 100, 120), 2),
                on(w(3, "b", 150, 200), 1),
            ],
            vec![],
        );
        assert_eq!(check(&both).gap_ms, Some(-80.0));
    }
}
