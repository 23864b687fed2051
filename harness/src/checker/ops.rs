//! Operation counts: how many operations the workload invoked, by outcome and by kind. The
//! denominators every other figure should be read against.

use super::rows::{FindingRow, RowContext};
use crate::history::{History, OpKind, Outcome};
use serde::{Deserialize, Serialize};

/// Operation counts (`ops.*` in results.json).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    /// Every operation invoked.
    pub total: usize,
    /// Operations that ended `ok`.
    pub ok: usize,
    /// Operations that ended `fail` (certainly not applied).
    pub fail: usize,
    /// Operations that ended `unknown` (may or may not have been applied).
    pub unknown: usize,
    /// Reads, whatever their outcome.
    pub reads: usize,
    /// Writes, whatever their outcome.
    pub writes: usize,
    /// Counter increments.
    #[serde(default)]
    pub increments: usize,
    /// Operations on personal data (profile writes and reads, erasures: `crate::residency`).
    #[serde(default)]
    pub personal: usize,
}

/// Counts the history's operations.
pub fn check(history: &History) -> OpCounts {
    let mut c = OpCounts {
        total: history.ops.len(),
        ..OpCounts::default()
    };
    for op in &history.ops {
        match op.outcome {
            Outcome::Ok { .. } => c.ok += 1,
            Outcome::Fail { .. } => c.fail += 1,
            Outcome::Unknown { .. } => c.unknown += 1,
        }
        match op.kind {
            OpKind::Read => c.reads += 1,
            OpKind::Write => c.writes += 1,
            OpKind::Incr => c.increments += 1,
            OpKind::ProfileWrite | OpKind::ProfileRead | OpKind::Erase => c.personal += 1,
        }
    }
    c
}

/// The operation counts row.
pub fn rows(o: &OpCounts, _cx: &RowContext) -> Vec<FindingRow> {
    vec![FindingRow::info(
        "operations ok / fail / unknown",
        format!("{} / {} / {} of {}", o.ok, o.fail, o.unknown, o.total),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn counts_by_outcome_and_kind() {
        let h = history(
            vec![
                w(1, "a", 0, 1),
                w(2, "a", 0, 1).fail(),
                w(3, "a", 0, 1).unknown(),
                r(4, "a", 0, 1, None),
                r(5, "a", 0, 1, None).unknown(),
            ],
            vec![],
        );
        assert_eq!(
            check(&h),
            OpCounts {
                personal: 0,
                total: 5,
                ok: 2,
                fail: 1,
                unknown: 2,
                reads: 2,
                writes: 3,
                increments: 0,
            }
        );
    }

    #[test]
    fn empty_history_counts_nothing() {
        assert_eq!(check(&History::default()), OpCounts::default());
    }
}
