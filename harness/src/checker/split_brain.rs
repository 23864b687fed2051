//! Split-brain writes: writes acknowledged by the old primary after a new one was promoted.
//!
//! The failover controller may promote the replica while the old primary is still alive
//! (cut off from the controller, not dead). Without fencing, clients that still reach the
//! old primary keep writing to it: two primaries accept writes at once.
//!
//! # Definitions
//! - **Old primary**: the region of the first `PrimaryDeclaredDown` event. **Promotion**
//!   (`promoted_at_ms`): the first `Promoted` event after it in the event log.
//! - **Split-brain write**: an `ok` write ([`OpKind::Write`]) whose `committed_by` is the old
//!   primary's region and that was invoked strictly after the promotion: it certainly
//!   reached the old primary while the new one was accepting writes. A write invoked before
//!   the promotion and committed by the old primary after it is not counted (its commit time
//!   is not known exactly). Counter increments that meet the same test change the database
//!   too; they are counted apart (`increments`), so that `ids` are write ids, comparable with
//!   `lost_writes.ids`.
//! - A failback ends the window: writes invoked at or after the old primary's
//!   `rejoin_started` (it is stopped, rewound and made a standby; after a switchover back it
//!   is the primary again) are not split-brain writes.
//! - **Checked**: a promotion happened and the app reports which database committed writes
//!   (at least one `ok` write or increment in the history carries `committed_by`); without
//!   either, nothing can be told and `checked` is false, `count` and `increments` 0, `ids`
//!   empty.
//! - `ids` ascending; `window_ms`: the last split-brain write's acknowledgement − the
//!   promotion: how long the old primary went on acknowledging writes (None: none did).
//!
//! [`OpKind::Write`]: crate::history::OpKind::Write

use super::ms_between;
use super::rows::{FindingRow, RowContext, dur};
use crate::history::{EventKind, History, Nanos, OpKind, Outcome, ms};
use serde::{Deserialize, Serialize};

/// Split-brain findings (`split_brain.*` in results.json).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitBrain {
    /// Whether a promotion happened and writes say who committed them.
    pub checked: bool,
    /// The region declared down (None: the controller never declared a primary down).
    pub old_primary: Option<String>,
    /// When the replica was promoted (None: never).
    pub promoted_at_ms: Option<f64>,
    /// Writes acknowledged by the old primary, invoked after the promotion.
    pub count: usize,
    /// Their ids, ascending.
    pub ids: Vec<u64>,
    /// Last such acknowledgement − promotion (None: no split-brain write).
    pub window_ms: Option<f64>,
    /// Counter increments acknowledged by the old primary, invoked after the promotion.
    #[serde(default)]
    pub increments: usize,
}

/// Finds writes the deposed primary acknowledged after the promotion.
pub fn check(history: &History) -> SplitBrain {
    let declared = history
        .events
        .iter()
        .enumerate()
        .find_map(|(i, e)| match &e.kind {
            EventKind::PrimaryDeclaredDown { region } => Some((i, region)),
            _ => None,
        });
    let Some((declared_index, old)) = declared else {
        return SplitBrain::default();
    };
    let promoted_at = history.events[declared_index + 1..]
        .iter()
        .find(|e| matches!(e.kind, EventKind::Promoted { .. }))
        .map(|e| e.at_ns);
    let mut out = SplitBrain {
        old_primary: Some(old.clone()),
        promoted_at_ms: promoted_at.map(ms),
        ..SplitBrain::default()
    };
    let Some(promoted_at) = promoted_at else {
        return out;
    };
    // Once the old primary is taken down to rejoin (a failback), what its region commits
    // later — after a switchover back — is no split brain.
    let rejoined = history.events.iter().find_map(|e| match &e.kind {
        EventKind::RejoinStarted { region, .. } if region == old && e.at_ns > promoted_at => {
            Some(e.at_ns)
        }
        _ => None,
    });
    let w = old_primary_writes(history, old, promoted_at, rejoined);
    out.checked = w.attributed;
    out.count = w.ids.len();
    out.ids = w.ids;
    out.increments = w.increments;
    out.window_ms = w.last_ack.map(|ack| ms_between(ack, promoted_at));
    out
}

/// What the old primary acknowledged after a promotion (see [`old_primary_writes`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct OldPrimaryWrites {
    /// Whether any `ok` write or increment in the history says which database committed it
    /// (without that, nothing can be attributed).
    pub attributed: bool,
    /// Split-brain writes' ids, ascending.
    pub ids: Vec<u64>,
    /// Split-brain increments.
    pub increments: usize,
    /// The last split-brain write's acknowledgement.
    pub last_ack: Option<Nanos>,
}

/// The split-brain writes and increments as defined in the module docs: `ok`, committed by
/// `old`, invoked strictly after `promoted_at` — and strictly before `until` when given (so a
/// caller can count them within an episode).
pub(crate) fn old_primary_writes(
    history: &History,
    old: &str,
    promoted_at: Nanos,
    until: Option<Nanos>,
) -> OldPrimaryWrites {
    let mut out = OldPrimaryWrites::default();
    for op in &history.ops {
        if op.kind == OpKind::Read {
            continue;
        }
        let Outcome::Ok {
            committed_by: Some(by),
            ..
        } = &op.outcome
        else {
            continue;
        };
        out.attributed = true;
        if by != old || op.invoke_ns <= promoted_at || until.is_some_and(|u| op.invoke_ns >= u) {
            continue;
        }
        if op.kind == OpKind::Incr {
            out.increments += 1;
        } else {
            out.ids.push(op.id);
            out.last_ack = out.last_ack.max(Some(op.complete_ns));
        }
    }
    out.ids.sort_unstable();
    out
}

/// The split-brain row, when it was checked.
pub fn rows(sb: &SplitBrain, _cx: &RowContext) -> Vec<FindingRow> {
    if !sb.checked {
        return Vec::new();
    }
    let window = sb
        .window_ms
        .map_or(String::new(), |w| format!(", over {}", dur(Some(w))));
    vec![FindingRow::info(
        "split-brain writes (old primary, after promotion)",
        format!("{}{window}", sb.count),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn a_failback_ends_the_split_brain_window() {
        // us deposed at 300; us acknowledges 4 at 310 (split brain); us rejoins at 1000 and
        // is the primary again after a switchover: 6 at 2000 is not split brain.
        let mut events = vec![fault(100, 0, true)];
        events.extend(failover_steps(200, 300, 400));
        events.push(crate::history::Event {
            at_ns: 1_000_000_000,
            kind: EventKind::RejoinStarted {
                region: "us".into(),
                primary: "eu".into(),
            },
        });
        let h = history(
            vec![
                w(4, "a", 310, 330).committed_by("us"),
                w(6, "a", 2000, 2010).committed_by("us"),
            ],
            events,
        );
        assert_eq!(check(&h).ids, vec![4]);
    }

    #[test]
    fn old_primary_keeps_acknowledging_after_the_promotion() {
        // us cut off from the controller at 100 (alive); declared down 200, eu promoted
        // 300, rerouted 400. Writes committed by us: 1 [50, 60] before; 2 [250, 320]
        // invoked before the promotion (not counted); 4 [310, 330] and 6 [500, 650] after →
        // split brain; the increment 7 [600, 700] too, counted apart (and not in the window).
        // 3 [350, 360] committed by eu: fine. A failed write 5 [700, 705] to us: not
        // acknowledged. An increment at exactly the promotion (300): not certainly after.
        // Window = 650 − 300 = 350.
        let mut events = vec![fault(100, 0, true)];
        events.extend(failover_steps(200, 300, 400));
        let h = history(
            vec![
                w(1, "a", 50, 60).committed_by("us"),
                w(2, "a", 250, 320).committed_by("us"),
                w(4, "a", 310, 330).committed_by("us"),
                w(3, "a", 350, 360).region("eu").committed_by("eu"),
                w(6, "b", 500, 650).committed_by("us"),
                inc(7, "c", 600, 700).committed_by("us"),
                inc(9, "c", 300, 310).committed_by("us"),
                w(5, "a", 700, 705).committed_by("us").fail(),
                r(8, "a", 700, 701, Some(6)),
            ],
            events,
        );
        assert_eq!(
            check(&h),
            SplitBrain {
                checked: true,
                old_primary: Some("us".into()),
                promoted_at_ms: Some(300.0),
                count: 2,
                ids: vec![4, 6],
                window_ms: Some(350.0),
                increments: 1,
            }
        );
    }

    #[test]
    fn fenced_old_primary_acknowledges_nothing() {
        // With fencing every write after the promotion is committed by eu.
        let mut events = vec![fault(100, 0, true)];
        events.extend(failover_steps(200, 300, 400));
        let h = history(
            vec![
                w(1, "a", 50, 60).committed_by("us"),
                w(2, "a", 310, 330).committed_by("eu"),
            ],
            events,
        );
        let s = check(&h);
        assert!(s.checked);
        assert_eq!((s.count, s.window_ms), (0, None));
        assert!(s.ids.is_empty());
    }

    #[test]
    fn no_promotion_is_not_checked() {
        // Declared down but never promoted (the promotion failed): not checked, although
        // us acknowledged writes afterwards.
        let h = history(
            vec![w(1, "a", 500, 510).committed_by("us")],
            vec![
                fault(100, 0, true),
                ev(
                    200,
                    EventKind::PrimaryDeclaredDown {
                        region: "us".into(),
                    },
                ),
                ev(
                    300,
                    EventKind::FailoverFailed {
                        error: "replica unreachable".into(),
                    },
                ),
            ],
        );
        let s = check(&h);
        assert_eq!(
            s,
            SplitBrain {
                old_primary: Some("us".into()),
                ..SplitBrain::default()
            }
        );
        // No failover at all.
        let h = history(vec![w(1, "a", 500, 510).committed_by("us")], vec![]);
        assert_eq!(check(&h), SplitBrain::default());
    }

    #[test]
    fn a_promotion_before_the_declaration_does_not_count() {
        // A stray Promoted before the first PrimaryDeclaredDown is ignored: the promotion is
        // the one at 300.
        let mut events = vec![ev(
            50,
            EventKind::Promoted {
                region: "eu".into(),
                from: None,
            },
        )];
        events.extend(failover_steps(200, 300, 400));
        let h = history(
            vec![
                w(1, "a", 100, 110).committed_by("us"),
                w(2, "a", 350, 360).committed_by("us"),
            ],
            events,
        );
        let s = check(&h);
        assert_eq!((s.promoted_at_ms, s.ids.clone()), (Some(300.0), vec![2]));
        assert_eq!(s.window_ms, Some(60.0));
    }

    #[test]
    fn writes_without_committed_by_cannot_be_attributed() {
        let h = history(vec![w(1, "a", 500, 510)], failover_steps(200, 300, 400));
        let s = check(&h);
        assert!(!s.checked);
        assert_eq!(s.count, 0);
        assert_eq!(s.promoted_at_ms, Some(300.0));
    }
}
