//! Erasure: how long after an acknowledged `DELETE /users/{id}` the last copy of the user's
//! personal data was gone from every region.
//!
//! # Definitions
//! - **Requested**: an `erase` operation in the history (one per user). **Acknowledged**:
//!   its outcome is `ok`; the acknowledgement time is its completion.
//! - **Copies**: what the erasure probe (`probes.erasure`, see `crate::probe::erasure`) saw,
//!   poll after poll, in every region: rows of the profile tables (primary or replica) and
//!   the cache's `profile:{user}`; a store it could not read counts as "not ruled out".
//! - **Done**: the first poll that read every store and saw no copy, after the last poll that
//!   saw one (a copy can come back: a cache refilled from a lagging replica). A poll that
//!   could not read some store and saw no copy elsewhere proves nothing either way and is
//!   skipped. Not done when no such poll came after the last copy seen, or when the at-rest
//!   scan after the run (`final_state.residency`) still found the user's token anywhere (any
//!   table, any key).
//! - **Erasure time**: done − acknowledged, or 0 when the last copy was gone before the
//!   client heard the acknowledgement. Its resolution is the poll interval (plus one poll's
//!   duration): the time is an upper bound by at most that much. p50 / p99 / max over the
//!   acknowledged erasures that are done (nearest rank, [`super::percentile`]).
//! - **Pending**: acknowledged and not done; `remaining` says where the copies were at the end
//!   (the last poll's, then the scan's). Requested but not acknowledged erasures are counted
//!   apart (`not_acknowledged`).
//! - **During a fault**: an erasure acknowledged while a fault was in effect (started, not yet
//!   healed); its heal is the fault's `fault_healed`, else the final `healed`. Such an erasure
//!   is **done before heal** if it was done before that heal — under a partition between the
//!   regions, impossible for a copy in the other region.

use super::rows::{FindingRow, RowContext, dur};
use super::{ms_between, quantiles};
use crate::history::{EventKind, FinalState, History, Nanos, OpKind, Probes};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The verdict check's name.
pub const CHECK: &str = "erasure_within";

/// Erasure findings (`erasure.*` in results.json).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Erasure {
    /// Whether any erasure was requested.
    pub checked: bool,
    /// Erasures requested.
    pub requested: usize,
    /// Of them, acknowledged.
    pub acknowledged: usize,
    /// Requested and not acknowledged (failed or unknown).
    pub not_acknowledged: usize,
    /// Acknowledged and done.
    pub done: usize,
    /// Acknowledged and not done.
    pub pending: usize,
    /// Erasure time p50 (ms).
    pub p50_ms: Option<f64>,
    /// Erasure time p99 (ms).
    pub p99_ms: Option<f64>,
    /// Erasure time max (ms).
    pub max_ms: Option<f64>,
    /// Pending erasures' copies at the end, by place (`eu-db profiles`): how many users.
    pub remaining: BTreeMap<String, usize>,
    /// Acknowledged during a fault.
    pub during_fault: usize,
    /// Of those, done before the fault healed.
    pub done_before_heal: usize,
    /// Every erasure, by acknowledgement time.
    pub erasures: Vec<ErasureRecord>,
}

/// One user's erasure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErasureRecord {
    /// The user.
    pub user: u32,
    /// Its home region.
    pub home: String,
    /// When it was acknowledged (ms; None: not acknowledged).
    pub ack_ms: Option<f64>,
    /// When the last copy was gone (ms; None: not done).
    pub done_ms: Option<f64>,
    /// Erasure time (ms).
    pub erasure_ms: Option<f64>,
    /// Where copies were at the end, when not done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remaining: Vec<String>,
    /// The fault in effect at the acknowledgement (its index), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<usize>,
    /// When that fault healed (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heal_ms: Option<f64>,
}

/// Measures every requested erasure.
pub fn check(history: &History, probes: &Probes, final_state: Option<&FinalState>) -> Erasure {
    let erases: Vec<_> = history
        .ops
        .iter()
        .filter(|o| o.kind == OpKind::Erase)
        .collect();
    if erases.is_empty() {
        return Erasure::default();
    }
    // Fault windows: (index, start, heal).
    let healed_all = history
        .events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Healed))
        .map(|e| e.at_ns);
    let windows: Vec<(usize, Nanos, Option<Nanos>)> = history
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::FaultStarted { index, .. } => {
                let heal = history
                    .events
                    .iter()
                    .find(|h| {
                        h.at_ns >= e.at_ns
                            && matches!(h.kind, EventKind::FaultHealed { index: i, .. } if i == index)
                    })
                    .map(|h| h.at_ns)
                    .or(healed_all);
                Some((index, e.at_ns, heal))
            }
            _ => None,
        })
        .collect();
    let scan_left: BTreeMap<u32, Vec<String>> = final_state
        .and_then(|f| f.residency.as_ref())
        .map(|scan| {
            let mut m: BTreeMap<u32, Vec<String>> = BTreeMap::new();
            for c in &scan.found {
                m.entry(c.user)
                    .or_default()
                    .push(format!("{}-{} {} (final scan)", c.region, c.store, c.place));
            }
            m
        })
        .unwrap_or_default();

    let mut out = Erasure {
        checked: true,
        requested: erases.len(),
        ..Erasure::default()
    };
    let mut times = Vec::new();
    for op in erases {
        let mut rec = ErasureRecord {
            user: op.user,
            home: op.region.clone(),
            ..ErasureRecord::default()
        };
        if !op.outcome.is_ok() {
            out.not_acknowledged += 1;
            out.erasures.push(rec);
            continue;
        }
        out.acknowledged += 1;
        let ack = op.complete_ns;
        rec.ack_ms = Some(ms_between(ack, 0));
        if let Some(&(index, _, heal)) = windows
            .iter()
            .find(|(_, start, heal)| *start <= ack && heal.is_none_or(|h| ack < h))
        {
            rec.fault = Some(index);
            rec.heal_ms = heal.map(|h| ms_between(h, 0));
        }
        let changes = probes
            .erasure
            .iter()
            .find(|t| t.user == op.user)
            .map_or(&[][..], |t| &t.changes[..]);
        let mut remaining: Vec<String> = Vec::new();
        let after_last_copy = changes
            .iter()
            .rposition(|c| !c.copies.is_empty())
            .map_or(0, |i| i + 1);
        let mut done: Option<Nanos> = changes[after_last_copy..]
            .iter()
            .find(|c| c.clean())
            .map(|c| c.at_ns);
        if done.is_none() {
            match changes.last() {
                None => remaining.push("never polled".into()),
                Some(last) => {
                    let seen = changes
                        .iter()
                        .rev()
                        .find(|c| !c.copies.is_empty())
                        .map_or(&[][..], |c| &c.copies[..]);
                    remaining.extend(seen.iter().cloned());
                    remaining.extend(last.unreadable.iter().map(|s| format!("{s} (unreadable)")));
                }
            }
        }
        if let Some(left) = scan_left.get(&op.user) {
            remaining.extend(left.iter().cloned());
            done = None;
        }
        match done {
            Some(d) => {
                out.done += 1;
                let t = ms_between(d, ack).max(0.0);
                rec.done_ms = Some(ms_between(d, 0));
                rec.erasure_ms = Some(t);
                times.push(t);
                if rec.fault.is_some() {
                    out.during_fault += 1;
                    let heal = rec.heal_ms.map(|h| (h * 1e6) as Nanos);
                    if heal.is_some_and(|h| d < h) {
                        out.done_before_heal += 1;
                    }
                }
            }
            None => {
                out.pending += 1;
                if rec.fault.is_some() {
                    out.during_fault += 1;
                }
                for place in &remaining {
                    *out.remaining.entry(place.clone()).or_default() += 1;
                }
                rec.remaining = remaining;
            }
        }
        out.erasures.push(rec);
    }
    out.erasures.sort_by(|a, b| {
        a.ack_ms
            .unwrap_or(f64::MAX)
            .total_cmp(&b.ack_ms.unwrap_or(f64::MAX))
    });
    let q = quantiles(&mut times);
    (out.p50_ms, out.p99_ms, out.max_ms) = (q.p50, q.p99, q.max);
    out
}

/// The rows: erasure times (judged), what was left, erasures made during faults.
pub fn rows(e: &Erasure, cx: &RowContext) -> Vec<FindingRow> {
    if !e.checked {
        return Vec::new();
    }
    let mut rows = vec![cx.judged(
        "erasure time p50 / p99 / max",
        cx.shown(
            CHECK,
            format!(
                "{} / {} / {} ({} of {} acknowledged done{})",
                dur(e.p50_ms),
                dur(e.p99_ms),
                dur(e.max_ms),
                e.done,
                e.acknowledged,
                if e.not_acknowledged > 0 {
                    format!("; {} not acknowledged", e.not_acknowledged)
                } else {
                    String::new()
                }
            ),
        ),
        CHECK,
    )];
    if e.pending > 0 {
        let places: Vec<String> = e
            .remaining
            .iter()
            .map(|(p, n)| format!("{p}: {n}"))
            .collect();
        rows.push(FindingRow::sub(
            "copies left at the end",
            format!("{} users pending; {}", e.pending, places.join(", ")),
        ));
    }
    if e.during_fault > 0 {
        rows.push(FindingRow::sub(
            "acknowledged during a fault",
            format!(
                "{}: {} done before the heal, {} after, {} pending",
                e.during_fault,
                e.done_before_heal,
                e.erasures
                    .iter()
                    .filter(|r| r.fault.is_some() && r.done_ms.is_some())
                    .count()
                    - e.done_before_heal,
                e.erasures
                    .iter()
                    .filter(|r| r.fault.is_some() && r.ack_ms.is_some() && r.done_ms.is_none())
                    .count()
            ),
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::history::{AtRest, CopiesSeen, ErasureTrace, HeldCopy};

    fn erase(id: u64, user: u32, invoke_ms: u64, ack_ms: u64) -> B {
        let mut b = w(id, &format!("profile:{user}"), invoke_ms, ack_ms).user(user);
        b.0.kind = OpKind::Erase;
        b
    }

    fn seen(at_ms: u64, copies: &[&str]) -> CopiesSeen {
        CopiesSeen {
            at_ns: at_ms * MS,
            copies: copies.iter().map(|c| c.to_string()).collect(),
            unreadable: vec![],
        }
    }

    fn trace(user: u32, changes: Vec<CopiesSeen>) -> ErasureTrace {
        ErasureTrace {
            user,
            home: "us".into(),
            last_poll_ns: changes.last().map(|c| c.at_ns),
            changes,
            slowest_poll_ns: None,
        }
    }

    #[test]
    fn erasure_time_runs_from_the_ack_to_the_last_copy_gone() {
        // User 1: acked at 100; the eu replica's row went at 140, eu's cache entry at 600
        // (its TTL): 500 ms. User 2: acked at 200, gone everywhere by the poll at 150 (before
        // the client heard): 0. User 3: acked at 300, seen clean at 350, then a copy again at
        // 400 (a refill), gone for good at 450: 150 ms.
        let h = history(
            vec![
                erase(1, 1, 90, 100),
                erase(2, 2, 190, 200),
                erase(3, 3, 290, 300),
            ],
            vec![],
        );
        let probes = Probes {
            erasure: vec![
                trace(
                    1,
                    vec![
                        seen(
                            50,
                            &["eu-cache profile:1", "eu-db profiles", "us-db profiles"],
                        ),
                        seen(100, &["eu-cache profile:1", "eu-db profiles"]),
                        seen(140, &["eu-cache profile:1"]),
                        seen(600, &[]),
                    ],
                ),
                trace(2, vec![seen(150, &[])]),
                trace(
                    3,
                    vec![
                        seen(300, &["eu-db profiles"]),
                        seen(350, &[]),
                        seen(400, &["eu-cache profile:3"]),
                        seen(450, &[]),
                    ],
                ),
            ],
            ..Probes::default()
        };
        let e = check(&h, &probes, None);
        assert_eq!(
            (e.requested, e.acknowledged, e.done, e.pending),
            (3, 3, 3, 0)
        );
        let by_user: BTreeMap<u32, f64> = e
            .erasures
            .iter()
            .map(|r| (r.user, r.erasure_ms.unwrap()))
            .collect();
        assert_eq!(by_user, [(1, 500.0), (2, 0.0), (3, 150.0)].into());
        // Nearest rank over [0, 150, 500]: p50 rank 2 = 150; p99 rank 3 = 500.
        assert_eq!(
            (e.p50_ms, e.p99_ms, e.max_ms),
            (Some(150.0), Some(500.0), Some(500.0))
        );
        assert_eq!(e.during_fault, 0);
    }

    #[test]
    fn under_a_partition_erasure_waits_for_the_heal_and_a_copy_left_is_pending() {
        // Partition 0 from 1000 to 5000. User 1 acked at 2000, eu's replica row gone at 5080
        // (after the heal): 3080 ms. User 2 acked at 3000, still in eu's cache at the end.
        // User 3's erasure failed. User 4 acked at 6000 (after the heal), done at 6050, but the
        // final scan still found its token in eu's kv table: pending.
        let h = history(
            vec![
                erase(1, 1, 1990, 2000),
                erase(2, 2, 2990, 3000),
                erase(3, 3, 3000, 3100).fail(),
                erase(4, 4, 5990, 6000),
            ],
            vec![fault(1000, 0, false), heal(5000, 0)],
        );
        let probes = Probes {
            erasure: vec![
                trace(1, vec![seen(2000, &["eu-db profiles"]), seen(5080, &[])]),
                trace(
                    2,
                    vec![
                        seen(3000, &["eu-cache profile:2", "eu-db profiles"]),
                        seen(5100, &["eu-cache profile:2"]),
                    ],
                ),
                trace(4, vec![seen(6050, &[])]),
            ],
            ..Probes::default()
        };
        let fs = FinalState {
            residency: Some(AtRest {
                found: vec![HeldCopy {
                    region: "eu".into(),
                    store: "db".into(),
                    place: "kv_eu".into(),
                    user: 4,
                    tokens: 1,
                }],
                ..AtRest::default()
            }),
            ..FinalState::default()
        };
        let e = check(&h, &probes, Some(&fs));
        assert_eq!(
            (
                e.requested,
                e.acknowledged,
                e.not_acknowledged,
                e.done,
                e.pending
            ),
            (4, 3, 1, 1, 2)
        );
        assert_eq!((e.p50_ms, e.max_ms), (Some(3080.0), Some(3080.0)));
        assert_eq!((e.during_fault, e.done_before_heal), (2, 0));
        let r1 = e.erasures.iter().find(|r| r.user == 1).unwrap();
        assert_eq!((r1.fault, r1.heal_ms), (Some(0), Some(5000.0)));
        assert!(r1.done_ms.unwrap() > r1.heal_ms.unwrap());
        assert_eq!(
            e.remaining,
            [
                ("eu-cache profile:2".to_string(), 1),
                ("eu-db kv_eu (final scan)".to_string(), 1)
            ]
            .into()
        );
        let r4 = e.erasures.iter().find(|r| r.user == 4).unwrap();
        assert_eq!(r4.fault, None);
        assert_eq!(r4.erasure_ms, None);
    }

    #[test]
    fn an_unreadable_store_keeps_an_erasure_pending_and_no_poll_is_no_proof() {
        let h = history(vec![erase(1, 1, 0, 10), erase(2, 2, 0, 10)], vec![]);
        let probes = Probes {
            erasure: vec![trace(
                1,
                vec![CopiesSeen {
                    at_ns: 20 * MS,
                    copies: vec![],
                    unreadable: vec!["us-db".into()],
                }],
            )],
            ..Probes::default()
        };
        let e = check(&h, &probes, None);
        assert_eq!((e.done, e.pending), (0, 2));
        assert_eq!(
            e.remaining,
            [
                ("never polled".to_string(), 1),
                ("us-db (unreadable)".to_string(), 1)
            ]
            .into()
        );
        assert_eq!(e.max_ms, None);
    }

    #[test]
    fn a_store_unreadable_after_the_copies_are_gone_does_not_move_the_erasure() {
        // Acked at 100, gone everywhere at 300; a poll at 900 could not read eu's cache (a
        // busy host), the next one at 950 read everything: done at 300, 200 ms.
        let h = history(vec![erase(1, 1, 90, 100)], vec![]);
        let probes = Probes {
            erasure: vec![trace(
                1,
                vec![
                    seen(120, &["eu-cache profile:1"]),
                    seen(300, &[]),
                    CopiesSeen {
                        at_ns: 900 * MS,
                        copies: vec![],
                        unreadable: vec!["eu-cache".into()],
                    },
                    seen(950, &[]),
                ],
            )],
            ..Probes::default()
        };
        let e = check(&h, &probes, None);
        assert_eq!((e.done, e.max_ms), (1, Some(200.0)));
        // But an unreadable store before any clean poll keeps it pending, naming the last
        // copies seen and the store.
        let probes = Probes {
            erasure: vec![trace(
                1,
                vec![
                    seen(120, &["eu-cache profile:1"]),
                    CopiesSeen {
                        at_ns: 300 * MS,
                        copies: vec![],
                        unreadable: vec!["eu-cache".into()],
                    },
                ],
            )],
            ..Probes::default()
        };
        let e = check(&h, &probes, None);
        assert_eq!(e.pending, 1);
        assert_eq!(
            e.erasures[0].remaining,
            ["eu-cache profile:1", "eu-cache (unreadable)"]
        );
    }

    #[test]
    fn no_erasure_is_not_checked() {
        let e = check(
            &history(vec![w(1, "a", 0, 1)], vec![]),
            &Probes::default(),
            None,
        );
        assert_eq!(e, Erasure::default());
    }
}
