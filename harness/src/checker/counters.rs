//! Counters: whether every acknowledged increment survived (the CRDT convergence check).
//!
//! A PN-counter (`active-active-crdt`) keeps one component per region and sums them on read,
//! so no increment is ever lost, even across a partition. A counter stored as a
//! last-write-wins register (`active-active-lww`) keeps one region's total and drops the
//! other's concurrent increments. This check tells them apart from the final state alone.
//!
//! # Definitions
//! - **Keys**: counters with at least one increment ([`OpKind::Incr`]) in the history,
//!   whatever its outcome. Each increment adds 1.
//! - `acked`: `ok` increments; `unknown`: increments with an `unknown` outcome (they may or
//!   may not have been applied); `fail` increments certainly were not.
//! - **Checked**: when the final state was read and has at least one region's view
//!   (`FinalState::regions`). Otherwise `checked` is false, `final` is None, and `lost`,
//!   `phantom` and `diverged_keys` are 0 (`acked` and `unknown` are still counted).
//! - `final`: the counter's value in the first region (in name order) of the final state; a
//!   counter a region lacks reads as 0 there (as the app answers). **Diverged**: the
//!   regions' values for the counter differ.
//! - `lost` = max(0, acked − final): acknowledged increments the final value does not hold,
//!   at least. `phantom` = max(0, final − (acked + unknown)): more than could have been
//!   applied. Both are lower bounds per key: an unknown increment that was applied can hide
//!   a lost acknowledged one. Totals are sums over keys (`final_total` is Σ final).

use super::FastMap;
use super::rows::{FindingRow, RowContext};
use crate::history::{FinalState, History, OpKind, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counter findings (`counters.*` in results.json).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Whether the final state had region views; when false, only `keys`, `acked` and
    /// `unknown` were measured.
    pub checked: bool,
    /// Counters with at least one increment.
    pub keys: usize,
    /// `ok` increments.
    pub acked: u64,
    /// Increments with an `unknown` outcome.
    pub unknown: u64,
    /// Σ final value over the keys (None: not checked).
    pub final_total: Option<i64>,
    /// Σ max(0, acked − final): acknowledged increments lost.
    pub lost: u64,
    /// Σ max(0, final − (acked + unknown)): increments that never happened.
    pub phantom: u64,
    /// Counters whose value differs between regions.
    pub diverged_keys: usize,
    /// Per counter (`counters.by_key.<key>.*`).
    pub by_key: BTreeMap<String, CounterKey>,
}

/// One counter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterKey {
    /// `ok` increments.
    pub acked: u64,
    /// Increments with an `unknown` outcome.
    pub unknown: u64,
    /// Value in the final state (None: not checked).
    #[serde(rename = "final")]
    pub final_value: Option<i64>,
    /// max(0, acked − final).
    pub lost: u64,
    /// max(0, final − (acked + unknown)).
    pub phantom: u64,
}

/// Compares each counter's increments with its final value.
pub fn check(history: &History, final_state: Option<&FinalState>) -> Counters {
    let mut tally: FastMap<&str, (u64, u64)> = FastMap::default();
    for op in &history.ops {
        if op.kind != OpKind::Incr {
            continue;
        }
        let (acked, unknown) = tally.entry(op.key.as_str()).or_default();
        match op.outcome {
            Outcome::Ok { .. } => *acked += 1,
            Outcome::Unknown { .. } => *unknown += 1,
            Outcome::Fail { .. } => {}
        }
    }
    let regions = final_state
        .map(|f| &f.regions)
        .filter(|regions| !regions.is_empty());
    let mut out = Counters {
        checked: regions.is_some(),
        keys: tally.len(),
        final_total: regions.map(|_| 0),
        ..Counters::default()
    };
    for (key, (acked, unknown)) in tally {
        out.acked += acked;
        out.unknown += unknown;
        let mut c = CounterKey {
            acked,
            unknown,
            ..CounterKey::default()
        };
        if let Some(regions) = regions {
            let mut values = regions
                .values()
                .map(|r| r.counters.get(key).copied().unwrap_or(0));
            let value = values.next().unwrap_or(0);
            out.diverged_keys += values.any(|v| v != value) as usize;
            c.final_value = Some(value);
            c.lost = (acked as i64 - value).max(0) as u64;
            c.phantom = (value - (acked + unknown) as i64).max(0) as u64;
            out.lost += c.lost;
            out.phantom += c.phantom;
            out.final_total = out.final_total.map(|t| t + value);
        }
        out.by_key.insert(key.to_owned(), c);
    }
    out
}

/// The counters row, when some counter was incremented.
pub fn rows(c: &Counters, _cx: &RowContext) -> Vec<FindingRow> {
    if c.keys == 0 {
        return Vec::new();
    }
    let total = c
        .final_total
        .map_or("not checked".to_string(), |t| t.to_string());
    vec![FindingRow::info(
        "counters: acked / converged / lost",
        format!(
            "{} / {total} / {} lost ({} unknown)",
            c.acked, c.lost, c.unknown
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    /// Two regions increment counter `c` concurrently during a partition: us 3 times, eu
    /// 2 times, all acknowledged.
    fn partitioned_increments() -> History {
        history(
            vec![
                inc(1, "c", 0, 10),
                inc(2, "c", 20, 30),
                inc(3, "c", 40, 50),
                inc(4, "c", 5, 15).region("eu"),
                inc(5, "c", 25, 35).region("eu"),
            ],
            vec![fault(0, 0, false), heal(100, 0)],
        )
    }

    #[test]
    fn pn_counter_keeps_every_increment() {
        // Each region's component: us 3, eu 2; both regions read 5 after the heal.
        let fs = final_regions(&[("eu", &[], &[("c", 5)]), ("us", &[], &[("c", 5)])]);
        let c = check(&partitioned_increments(), Some(&fs));
        assert_eq!(
            c,
            Counters {
                checked: true,
                keys: 1,
                acked: 5,
                unknown: 0,
                final_total: Some(5),
                lost: 0,
                phantom: 0,
                diverged_keys: 0,
                by_key: BTreeMap::from([(
                    "c".into(),
                    CounterKey {
                        acked: 5,
                        unknown: 0,
                        final_value: Some(5),
                        lost: 0,
                        phantom: 0,
                    }
                )]),
            }
        );
    }

    #[test]
    fn lww_register_loses_the_other_regions_increments() {
        // The register holding us's 3 won; eu's 2 increments are lost.
        let fs = final_regions(&[("eu", &[], &[("c", 3)]), ("us", &[], &[("c", 3)])]);
        let c = check(&partitioned_increments(), Some(&fs));
        assert_eq!(
            (c.acked, c.final_total, c.lost, c.phantom),
            (5, Some(3), 2, 0)
        );
        assert_eq!(c.by_key["c"].lost, 2);
        assert_eq!(c.diverged_keys, 0);
    }

    #[test]
    fn unknown_and_failed_increments() {
        // c: 2 ok, 1 unknown, 1 failed. Final 3 → nothing lost, no phantom (the unknown one
        // applied). Final 4 → 1 phantom. Final 1 → 1 lost.
        let h = history(
            vec![
                inc(1, "c", 0, 10),
                inc(2, "c", 20, 30),
                inc(3, "c", 40, 2040).unknown(),
                inc(4, "c", 50, 51).fail(),
            ],
            vec![],
        );
        for (value, lost, phantom) in [(3, 0, 0), (2, 0, 0), (4, 0, 1), (1, 1, 0)] {
            let fs = final_regions(&[("us", &[], &[("c", value)])]);
            let c = check(&h, Some(&fs));
            assert_eq!((c.acked, c.unknown), (2, 1));
            assert_eq!((c.lost, c.phantom), (lost, phantom), "final {value}");
        }
    }

    #[test]
    fn diverged_regions_use_the_first_in_name_order() {
        // c: eu 5, us 3 → diverged, judged by eu: nothing lost. d: eu lacks it (0), us 2
        // → diverged, judged by eu: 2 lost. e: only failed increments, absent everywhere:
        // 0 = 0, not diverged.
        let h = history(
            vec![
                inc(1, "c", 0, 10),
                inc(2, "c", 0, 10),
                inc(3, "c", 0, 10),
                inc(4, "c", 0, 10).region("eu"),
                inc(5, "c", 0, 10).region("eu"),
                inc(6, "d", 0, 10),
                inc(7, "d", 0, 10),
                inc(8, "e", 0, 10).fail(),
            ],
            vec![],
        );
        let fs = final_regions(&[("us", &[], &[("c", 3), ("d", 2)]), ("eu", &[], &[("c", 5)])]);
        let c = check(&h, Some(&fs));
        assert_eq!((c.keys, c.diverged_keys), (3, 2));
        assert_eq!((c.acked, c.final_total, c.lost), (7, Some(5), 2));
        assert_eq!(c.by_key["d"].final_value, Some(0));
        assert_eq!(c.by_key["e"].final_value, Some(0));
    }

    #[test]
    fn no_final_state_is_not_checked() {
        let h = partitioned_increments();
        for fs in [
            None,
            Some(FinalState {
                residency: None,
                primaries: Vec::new(),
                standbys: Vec::new(),
                primary_region: Some("us".into()),
                write_ids: vec![],
                regions: Default::default(),
            }),
        ] {
            let c = check(&h, fs.as_ref());
            assert!(!c.checked);
            assert_eq!((c.keys, c.acked, c.final_total, c.lost), (1, 5, None, 0));
            assert_eq!(c.by_key["c"].final_value, None);
        }
    }

    #[test]
    fn no_increments() {
        let h = history(vec![w(1, "a", 0, 10)], vec![]);
        let fs = final_regions(&[("us", &[("a", 1)], &[])]);
        let c = check(&h, Some(&fs));
        assert!(c.checked);
        assert_eq!((c.keys, c.final_total, c.lost), (0, Some(0), 0));
        assert!(c.by_key.is_empty());
    }

    #[test]
    fn final_is_the_json_name() {
        let fs = final_regions(&[("us", &[], &[("c", 5)])]);
        let json = serde_json::to_value(check(&partitioned_increments(), Some(&fs))).unwrap();
        assert_eq!(json["by_key"]["c"]["final"], 5);
        assert_eq!(json["final_total"], 5);
    }
}
