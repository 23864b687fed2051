//! Conflicts and travellers: what partition-by-user promises and what it costs.
//!
//! `active-active-partitioned` writes each user's keys only in the user's home region, so no
//! key should ever be committed by two regions' databases (no conflict to resolve, by
//! construction). The price is paid by travelling users: their writes cross the link to
//! their home region.
//!
//! # Definitions
//! - **Keys written** (`keys_written`): keys with at least one `ok` write
//!   ([`OpKind::Write`]; counters are shared by design and left out).
//! - **Conflicting key**: a key whose `ok` writes were committed by at least two distinct
//!   regions' databases (`committed_by`; writes that do not say are ignored).
//!   `conflicting_keys` counts them, `keys` lists them in ascending order. Expected 0 for
//!   `partitioned`; under `lww` / `crdt` it shows how much the regions really shared. It is
//!   about active-active postures: the checker does not know the posture, and after an
//!   active-passive failover every key written on both sides of it counts too (the old and
//!   the new primary each committed it, one after the other), so read it with the posture.
//! - **Checked**: at least one `ok` write carries `committed_by`; otherwise conflicts cannot
//!   be told, `checked` is false and `conflicting_keys` is 0.
//! - **Travel vs home latency**: latency (as in [`super::latency`]) of `ok` writes by users
//!   travelling (`from` names a region other than their home) against `ok` writes by users
//!   at home (`from` absent, or their home region).
//!
//! [`OpKind::Write`]: crate::history::OpKind::Write

use super::rows::{FindingRow, RowContext, dur};
use super::{FastMap, LatencySummary};
use crate::history::{History, OpKind, Outcome, ms};
use crate::posture::Posture;
use serde::{Deserialize, Serialize};

/// Conflict and traveller findings (`conflicts.*` in results.json).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conflicts {
    /// Whether writes say which region's database committed them.
    pub checked: bool,
    /// Keys with at least one `ok` write.
    pub keys_written: usize,
    /// Keys written by two or more regions' databases.
    pub conflicting_keys: usize,
    /// Those keys, ascending.
    pub keys: Vec<String>,
    /// `ok` writes by travelling users.
    pub travel_writes: LatencySummary,
    /// `ok` writes by users at home.
    pub home_writes: LatencySummary,
}

/// Finds keys committed by more than one region and compares travellers' write latency.
pub fn check(history: &History) -> Conflicts {
    // Key → the first committing region seen, and whether another one committed it too.
    let mut keys: FastMap<&str, (Option<&str>, bool)> = FastMap::default();
    let (mut travel, mut home) = (Vec::new(), Vec::new());
    let mut checked = false;
    for op in &history.ops {
        if op.kind != OpKind::Write {
            continue;
        }
        let Outcome::Ok { committed_by, .. } = &op.outcome else {
            continue;
        };
        let (first, conflict) = keys.entry(op.key.as_str()).or_default();
        if let Some(by) = committed_by.as_deref() {
            checked = true;
            match first {
                None => *first = Some(by),
                Some(f) => *conflict |= *f != by,
            }
        }
        let travelling = op.from.as_deref().is_some_and(|f| f != op.region);
        if travelling { &mut travel } else { &mut home }.push(ms(op.latency_ns()));
    }
    let mut conflicting: Vec<String> = keys
        .iter()
        .filter(|(_, (_, conflict))| *conflict)
        .map(|(k, _)| (*k).to_owned())
        .collect();
    conflicting.sort_unstable();
    Conflicts {
        checked,
        keys_written: keys.len(),
        conflicting_keys: conflicting.len(),
        keys: conflicting,
        travel_writes: LatencySummary::of(&mut travel),
        home_writes: LatencySummary::of(&mut home),
    }
}

/// The conflicting-keys and travelling-users rows, in the partitioned posture, when checked.
pub fn rows(c: &Conflicts, cx: &RowContext) -> Vec<FindingRow> {
    if cx.posture != Posture::ActiveActivePartitioned || !c.checked {
        return Vec::new();
    }
    vec![
        FindingRow::info(
            "conflicting keys (written in both regions)",
            format!("{} of {}", c.conflicting_keys, c.keys_written),
        ),
        FindingRow::info(
            "travelling / home users: write p50",
            format!(
                "{} / {}",
                dur(c.travel_writes.p50_ms),
                dur(c.home_writes.p50_ms)
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn partitioned_by_user_has_no_conflicts_and_travellers_pay_the_link() {
        // us user 1 and eu user 2 each write their own keys at home (10, 20, 12 ms); user 1
        // travels to eu and writes u1 twice via eu's app, sent home to us (90, 110 ms).
        // Home: 5, 10, 12, 20 → p50 rank 2 = 10, p99 rank 4 = 20. Travel: 90, 110 → p50 90,
        // p99 110. A failed travelling write is not measured.
        let h = history(
            vec![
                w(1, "u1", 0, 10).committed_by("us"),
                w(2, "u2", 0, 20).user(2).region("eu").committed_by("eu"),
                w(3, "u2", 30, 42).user(2).region("eu").committed_by("eu"),
                w(4, "u1", 100, 190).travelling("eu").committed_by("us"),
                w(5, "u1", 200, 310).travelling("eu").committed_by("us"),
                w(6, "u1", 400, 402).travelling("eu").fail(),
                // `from` naming the home region: at home (5 ms).
                w(7, "u1", 500, 505).travelling("us").committed_by("us"),
            ],
            vec![],
        );
        assert_eq!(
            check(&h),
            Conflicts {
                checked: true,
                keys_written: 2,
                conflicting_keys: 0,
                keys: vec![],
                travel_writes: LatencySummary {
                    count: 2,
                    p50_ms: Some(90.0),
                    p99_ms: Some(110.0),
                    max_ms: Some(110.0),
                },
                home_writes: LatencySummary {
                    count: 4,
                    p50_ms: Some(10.0),
                    p99_ms: Some(20.0),
                    max_ms: Some(20.0),
                },
            }
        );
    }

    #[test]
    fn shared_keys_written_by_both_regions_conflict() {
        // a: committed by us and eu → conflict. b: us twice → none. c: eu, then a write that
        // does not say → none. d: us, then eu → conflict. A failed eu write to b and an
        // increment of e committed by both regions do not count.
        let h = history(
            vec![
                w(1, "a", 0, 10).committed_by("us"),
                w(2, "a", 0, 10).region("eu").committed_by("eu"),
                w(3, "b", 0, 10).committed_by("us"),
                w(4, "b", 20, 30).committed_by("us"),
                w(5, "b", 20, 30).region("eu").committed_by("eu").fail(),
                w(6, "c", 0, 10).region("eu").committed_by("eu"),
                w(7, "c", 0, 10),
                w(8, "d", 0, 10).committed_by("us"),
                w(9, "d", 20, 30).region("eu").committed_by("eu"),
                inc(10, "e", 0, 10).committed_by("us"),
                inc(11, "e", 0, 10).region("eu").committed_by("eu"),
            ],
            vec![],
        );
        let c = check(&h);
        assert!(c.checked);
        assert_eq!((c.keys_written, c.conflicting_keys), (4, 2));
        assert_eq!(c.keys, vec!["a".to_owned(), "d".to_owned()]);
        assert_eq!((c.travel_writes.count, c.home_writes.count), (0, 8));
        assert_eq!(c.travel_writes.p50_ms, None);
    }

    #[test]
    fn without_committed_by_conflicts_are_not_checked() {
        let h = history(
            vec![w(1, "a", 0, 10), w(2, "a", 0, 10).region("eu")],
            vec![],
        );
        let c = check(&h);
        assert!(!c.checked);
        assert_eq!((c.keys_written, c.conflicting_keys), (1, 0));
        assert_eq!(c.home_writes.count, 2);
    }
}
