//! Failback: what the planned operations after a failover did (`crate::operation`) — the
//! deposed primary's rejoin, the writes only it held, the switchover back — and the state
//! they left.
//!
//! # Definitions
//! - **Rejoin** (one per `rejoin_started` event, with the next `divergent_writes`, `rejoined`
//!   and `caught_up` events of its region): `method` is `rewind` or `re-clone` (with `why`:
//!   pg_rewind's error); **rejoin time** (`rejoin_ms`) from the start to the node running as a
//!   standby (reading its divergent writes, stopping it, rewinding or re-cloning, starting
//!   it), of which `data_ms` the rewind or re-clone itself; **catch-up time**
//!   (`catch_up_ms`) from running as a standby to streaming with everything the primary had
//!   written when it began streaming replayed. None when the step was never reached.
//! - **Divergent writes**: the writes the deposed primary held and the current primary
//!   lacked, read from it before the rewind (`ids`); `acked` those whose operation ended
//!   `ok`, `unknown` those whose outcome was unknown.
//! - **Cross-check** (`matches_lost`, for a rejoin after a failover, not a switchover's):
//!   the lost writes not attributed to a switchover (below) compared with the acknowledged
//!   divergent writes: two independent measures of the same loss — one from the clients'
//!   acknowledgements against the final primary, one from the old primary's own table.
//!   `Some(true)` when the sets are equal; None when the final state was not read.
//! - **Switchover**: from `switchover_started` to `switched_over` (`switch_ms`: the new
//!   primary accepts writes and apps point at it). **Downtime** (planned RTO,
//!   `downtime_ms`): from the start to the time every home region with writes after the
//!   start had a write acknowledged by the new primary (`committed_by`) — the latest of the
//!   regions' first such acknowledgements. **Writes lost** (`lost_ids`): `ok` writes
//!   committed by the old primary, invoked after it last became primary (its promotion, or
//!   the start of the run), absent from the final state. A switchover with `stop_writes`
//!   must lose none. None / empty when not measurable.
//! - **Final state** (`restored`): exactly one database answers as a primary, every standby
//!   the primary lists streams with 0 bytes to replay, there is at least one, and — after a
//!   completed switchover — the primary is in the region it switched to. None when the
//!   final state was not read.

use super::ms_between;
use super::rows::{FindingRow, RowContext, bytes, dur};
use crate::history::{EventKind, FinalState, History, Nanos, OpKind, Outcome, ms};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Failback findings (`failback.*` in results.json).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Failback {
    /// Whether the run had any operation.
    pub checked: bool,
    /// Every rejoin, in order.
    pub rejoins: Vec<RejoinFinding>,
    /// Every switchover, in order.
    pub switchovers: Vec<SwitchoverFinding>,
    /// Operations that could not complete: "index: error".
    pub failed: Vec<String>,
    /// The state after: see the module docs (None: not read, or no operation).
    pub restored: Option<bool>,
    /// The regions whose database answered as a primary at the end.
    pub primaries: Vec<String>,
    /// The primary's standbys at the end: "eu streaming (sync), 0 B behind".
    pub standbys: Vec<String>,
}

/// One rejoin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RejoinFinding {
    /// The deposed primary's region.
    pub region: String,
    /// When it began.
    pub started_ms: f64,
    /// Part of a switchover (the old primary rejoining the new one).
    pub in_switchover: bool,
    /// `rewind` or `re-clone` (None: never got that far).
    pub method: Option<String>,
    /// Why it was re-cloned.
    pub why: Option<String>,
    /// Where the timelines forked, as pg_rewind said.
    pub fork: Option<String>,
    /// Start → running as a standby.
    pub rejoin_ms: Option<f64>,
    /// The rewind or re-clone itself.
    pub data_ms: Option<f64>,
    /// Running as a standby → streaming and caught up.
    pub catch_up_ms: Option<f64>,
    /// Divergent write ids, ascending (None: never read).
    pub divergent_ids: Option<Vec<u64>>,
    /// Of them, acknowledged (`ok`).
    pub divergent_acked: usize,
    /// Of them, with an unknown outcome.
    pub divergent_unknown: usize,
    /// The cross-check with the lost writes (see the module docs).
    pub matches_lost: Option<bool>,
    /// Lost writes that are not divergent, and acknowledged divergent writes that are not
    /// lost (both empty when they match).
    pub mismatched_ids: Vec<u64>,
}

/// One switchover.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SwitchoverFinding {
    /// The old primary's region.
    pub from: String,
    /// The new primary's region.
    pub to: String,
    /// Whether writes were stopped first.
    pub stop_writes: bool,
    /// When it began.
    pub started_ms: f64,
    /// Start → the new primary takes writes and apps point at it (None: never).
    pub switch_ms: Option<f64>,
    /// Start → every region's users had a write acknowledged by the new primary.
    pub downtime_ms: Option<f64>,
    /// Acknowledged writes of the old primary lost (None: not measurable).
    pub lost: Option<usize>,
    /// Their ids.
    pub lost_ids: Vec<u64>,
}

/// Reads the operations' steps from the history and the state they left.
pub fn check(history: &History, final_state: Option<&FinalState>) -> Failback {
    let events = &history.events;
    let mut out = Failback {
        checked: events
            .iter()
            .any(|e| matches!(e.kind, EventKind::OperationStarted { .. })),
        ..Failback::default()
    };
    if !out.checked {
        return out;
    }
    let final_ids: Option<BTreeSet<u64>> = final_state
        .filter(|f| f.primary_region.is_some())
        .map(|f| f.write_ids.iter().copied().collect());
    for (i, e) in events.iter().enumerate() {
        match &e.kind {
            EventKind::OperationFailed { index, error } => {
                out.failed.push(format!("operation {index}: {error}"));
            }
            EventKind::SwitchoverStarted {
                from,
                to,
                stop_writes,
            } => out.switchovers.push(switchover(
                history,
                final_ids.as_ref(),
                i,
                e.at_ns,
                from,
                to,
                *stop_writes,
            )),
            _ => {}
        }
    }
    let switched_lost: BTreeSet<u64> = out
        .switchovers
        .iter()
        .flat_map(|s| s.lost_ids.iter().copied())
        .collect();
    for (i, e) in events.iter().enumerate() {
        if let EventKind::RejoinStarted { region, .. } = &e.kind {
            let in_switchover = events[..i].iter().rev().find_map(|p| match &p.kind {
                EventKind::SwitchedOver { from, .. } => Some(from == region),
                EventKind::OperationStarted { .. } => Some(false),
                _ => None,
            });
            let lost = final_ids.as_ref().map(|ids| {
                acked_writes(history)
                    .filter(|(id, _)| !ids.contains(id) && !switched_lost.contains(id))
                    .map(|(id, _)| id)
                    .collect::<BTreeSet<u64>>()
            });
            out.rejoins.push(rejoin(
                history,
                i,
                region,
                in_switchover == Some(true),
                lost.as_ref(),
            ));
        }
    }
    if let Some(f) = final_state.filter(|f| f.primary_region.is_some()) {
        out.primaries = f.primaries.clone();
        out.standbys = f
            .standbys
            .iter()
            .map(|s| {
                let behind = s
                    .bytes_behind
                    .map_or("unknown".into(), |b| bytes(b.max(0) as u64));
                format!(
                    "{} {} ({}), {behind} behind",
                    s.region, s.state, s.sync_state
                )
            })
            .collect();
        let switched_to = out
            .switchovers
            .iter()
            .rev()
            .find(|s| s.switch_ms.is_some())
            .map(|s| s.to.clone());
        let streaming = !f.standbys.is_empty()
            && f.standbys
                .iter()
                .all(|s| s.state == "streaming" && s.bytes_behind == Some(0));
        let home = switched_to.is_none_or(|to| f.primaries == [to]);
        out.restored = Some(f.primaries.len() == 1 && streaming && home);
    }
    out
}

/// `ok` writes with their committing region.
fn acked_writes(history: &History) -> impl Iterator<Item = (u64, Option<&str>)> {
    history.ops.iter().filter_map(|o| match &o.outcome {
        Outcome::Ok { committed_by, .. } if o.kind == OpKind::Write => {
            Some((o.id, committed_by.as_deref()))
        }
        _ => None,
    })
}

fn rejoin(
    history: &History,
    start: usize,
    region: &str,
    in_switchover: bool,
    lost: Option<&BTreeSet<u64>>,
) -> RejoinFinding {
    let started = history.events[start].at_ns;
    let mut r = RejoinFinding {
        region: region.to_string(),
        started_ms: ms(started),
        in_switchover,
        ..RejoinFinding::default()
    };
    let mut rejoined_at: Option<Nanos> = None;
    for e in &history.events[start + 1..] {
        match &e.kind {
            EventKind::RejoinStarted { .. } | EventKind::OperationStarted { .. } => break,
            EventKind::DivergentWrites { region: g, writes } if g == region => {
                let ids: Vec<u64> = {
                    let mut v: Vec<u64> = writes.iter().map(|w| w.write_id).collect();
                    v.sort_unstable();
                    v
                };
                r.divergent_ids = Some(ids);
            }
            EventKind::Rejoined {
                region: g,
                method,
                why,
                fork,
                data_ms,
            } if g == region => {
                r.method = Some(method.clone());
                r.why = why.clone();
                r.fork = fork.clone();
                r.data_ms = Some(*data_ms);
                r.rejoin_ms = Some(ms_between(e.at_ns, started));
                rejoined_at = Some(e.at_ns);
            }
            EventKind::CaughtUp { region: g } if g == region => {
                r.catch_up_ms = rejoined_at.map(|at| ms_between(e.at_ns, at));
            }
            _ => {}
        }
    }
    let Some(ids) = &r.divergent_ids else {
        return r;
    };
    let divergent: BTreeSet<u64> = ids.iter().copied().collect();
    let mut acked = BTreeSet::new();
    for o in history.ops.iter().filter(|o| divergent.contains(&o.id)) {
        match o.outcome {
            Outcome::Ok { .. } => {
                acked.insert(o.id);
            }
            Outcome::Unknown { .. } => r.divergent_unknown += 1,
            Outcome::Fail { .. } => {}
        }
    }
    r.divergent_acked = acked.len();
    if !in_switchover && let Some(lost) = lost {
        r.mismatched_ids = lost.symmetric_difference(&acked).copied().collect();
        r.matches_lost = Some(r.mismatched_ids.is_empty());
    }
    r
}

fn switchover(
    history: &History,
    final_ids: Option<&BTreeSet<u64>>,
    start: usize,
    started: Nanos,
    from: &str,
    to: &str,
    stop_writes: bool,
) -> SwitchoverFinding {
    let mut s = SwitchoverFinding {
        from: from.to_string(),
        to: to.to_string(),
        stop_writes,
        started_ms: ms(started),
        ..SwitchoverFinding::default()
    };
    let events = &history.events;
    s.switch_ms = events[start + 1..].iter().find_map(|e| match &e.kind {
        EventKind::SwitchedOver { to: t, .. } if t == to => Some(ms_between(e.at_ns, started)),
        _ => None,
    });
    // The old primary became primary at its last promotion before the switchover (or was
    // the primary from the start).
    let since = events[..start]
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::Promoted { region, .. } if region == from => Some(e.at_ns),
            EventKind::SwitchedOver { to: t, .. } if t == from => Some(e.at_ns),
            _ => None,
        })
        .unwrap_or(0);
    if let Some(ids) = final_ids {
        s.lost_ids = history
            .ops
            .iter()
            .filter(|o| o.kind == OpKind::Write && o.invoke_ns > since)
            .filter(
                |o| matches!(&o.outcome, Outcome::Ok { committed_by: Some(c), .. } if c == from),
            )
            .map(|o| o.id)
            .filter(|id| !ids.contains(id))
            .collect();
        s.lost_ids.sort_unstable();
        s.lost = Some(s.lost_ids.len());
    }
    if s.switch_ms.is_some() {
        let mut first: std::collections::BTreeMap<&str, Nanos> = Default::default();
        let mut regions: BTreeSet<&str> = BTreeSet::new();
        for o in history
            .ops
            .iter()
            .filter(|o| o.kind == OpKind::Write && o.invoke_ns >= started)
        {
            regions.insert(&o.region);
            if matches!(&o.outcome, Outcome::Ok { committed_by: Some(c), .. } if c == to) {
                let at = first.entry(&o.region).or_insert(o.complete_ns);
                *at = (*at).min(o.complete_ns);
            }
        }
        if !regions.is_empty() && regions.iter().all(|r| first.contains_key(r)) {
            s.downtime_ms = first.values().max().map(|&at| ms_between(at, started));
        }
    }
    s
}

/// The findings' rows.
pub fn rows(f: &Failback, _cx: &RowContext) -> Vec<FindingRow> {
    if !f.checked {
        return Vec::new();
    }
    let mut rows = Vec::new();
    for r in &f.rejoins {
        let what = if r.in_switchover {
            format!("rejoin of {} (after the switchover)", r.region)
        } else {
            format!("rejoin of {}", r.region)
        };
        let observed = match &r.method {
            None => "not rejoined".to_string(),
            Some(m) => {
                let mut s = format!(
                    "{m} in {} ({} on the data), caught up {} later",
                    dur(r.rejoin_ms),
                    dur(r.data_ms),
                    dur(r.catch_up_ms)
                );
                if let Some(why) = &r.why {
                    s.push_str(&format!("; re-cloned because {why}"));
                }
                s
            }
        };
        rows.push(FindingRow::info(what, observed));
        if let Some(ids) = &r.divergent_ids {
            let check = match r.matches_lost {
                Some(true) => ", the same as the lost writes".to_string(),
                Some(false) => format!(
                    ", NOT the lost writes ({} differ: {})",
                    r.mismatched_ids.len(),
                    short_ids(&r.mismatched_ids)
                ),
                None => String::new(),
            };
            rows.push(FindingRow::sub(
                format!("divergent writes (only on the old {})", r.region),
                format!(
                    "{} ({} acked, {} unknown){check}",
                    ids.len(),
                    r.divergent_acked,
                    r.divergent_unknown
                ),
            ));
        }
    }
    for s in &f.switchovers {
        let how = if s.stop_writes {
            "writes stopped"
        } else {
            "writes not stopped"
        };
        let lost = s.lost.map_or("lost writes not checked".into(), |n| {
            format!("{n} writes lost")
        });
        rows.push(FindingRow::info(
            format!("switchover {} → {} ({how})", s.from, s.to),
            format!(
                "switched in {}, downtime {}, {lost}",
                dur(s.switch_ms),
                dur(s.downtime_ms)
            ),
        ));
    }
    if let Some(restored) = f.restored {
        let primaries = if f.primaries.is_empty() {
            "no primary".to_string()
        } else {
            format!("primary {}", f.primaries.join(" and "))
        };
        let standbys = if f.standbys.is_empty() {
            "no standby".to_string()
        } else {
            f.standbys.join("; ")
        };
        rows.push(FindingRow {
            passed: Some(restored),
            ..FindingRow::info("after failback", format!("{primaries}; {standbys}"))
        });
    }
    for failed in &f.failed {
        rows.push(FindingRow::info("operation failed", failed.clone()));
    }
    rows
}

/// What a reader must know first: an operation that did not complete.
pub fn alerts(f: &Failback, _cx: &RowContext) -> Vec<String> {
    f.failed
        .iter()
        .map(|e| format!("a planned operation failed: {e}"))
        .collect()
}

fn short_ids(ids: &[u64]) -> String {
    let shown: Vec<String> = ids.iter().take(8).map(u64::to_string).collect();
    let more = if ids.len() > 8 { ", …" } else { "" };
    format!("{}{more}", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::history::{DivergentWrite, Event, StandbyState};

    fn ev(at_ms: u64, kind: EventKind) -> Event {
        Event {
            at_ns: at_ms * 1_000_000,
            kind,
        }
    }

    fn divergent(region: &str, ids: &[u64]) -> EventKind {
        EventKind::DivergentWrites {
            region: region.into(),
            writes: ids
                .iter()
                .map(|&id| DivergentWrite {
                    write_id: id,
                    key: "a".into(),
                    value: format!("v{id}"),
                    version: 1,
                    user: None,
                    region: region.into(),
                    committed_at: String::new(),
                })
                .collect(),
        }
    }

    fn rejoined(region: &str, method: &str) -> EventKind {
        EventKind::Rejoined {
            region: region.into(),
            method: method.into(),
            why: (method == "re-clone").then(|| "no wal_log_hints".into()),
            fork: None,
            data_ms: 0.5,
        }
    }

    /// us cut off and killed, eu promoted at 300; us rejoins at 1000 (divergent 2, 4, 5:
    /// 2 and 4 acknowledged and lost, 5 unknown), rewound at 1500, caught up 1700; switchover
    /// back at 2000 (writes stopped), switched at 2600; eu rejoins at 2600 → 3000.
    fn failback(final_ids: Vec<u64>, eu_write_after_switch: bool) -> (History, FinalState) {
        let mut events = vec![fault(100, 0, true)];
        events.extend(failover_steps(200, 300, 400));
        events.extend([
            ev(
                1000,
                EventKind::OperationStarted {
                    index: 0,
                    operation: "rejoin".into(),
                },
            ),
            ev(
                1000,
                EventKind::RejoinStarted {
                    region: "us".into(),
                    primary: "eu".into(),
                },
            ),
            ev(1200, divergent("us", &[4, 2, 5])),
            ev(1500, rejoined("us", "rewind")),
            ev(
                1700,
                EventKind::CaughtUp {
                    region: "us".into(),
                },
            ),
            ev(1700, EventKind::OperationDone { index: 0 }),
            ev(
                2000,
                EventKind::OperationStarted {
                    index: 1,
                    operation: "switchover".into(),
                },
            ),
            ev(
                2000,
                EventKind::SwitchoverStarted {
                    from: "eu".into(),
                    to: "us".into(),
                    stop_writes: true,
                },
            ),
            ev(
                2100,
                EventKind::WritesStopped {
                    region: "eu".into(),
                },
            ),
            ev(
                2600,
                EventKind::SwitchedOver {
                    from: "eu".into(),
                    to: "us".into(),
                },
            ),
            ev(
                2600,
                EventKind::RejoinStarted {
                    region: "eu".into(),
                    primary: "us".into(),
                },
            ),
            ev(2700, divergent("eu", &[])),
            ev(2900, rejoined("eu", "rewind")),
            ev(
                3000,
                EventKind::CaughtUp {
                    region: "eu".into(),
                },
            ),
            ev(3000, EventKind::OperationDone { index: 1 }),
        ]);
        let mut ops = vec![
            w(1, "a", 10, 20).committed_by("us"),
            w(2, "a", 50, 60).committed_by("us"),
            w(4, "a", 90, 95).committed_by("us"),
            w(5, "a", 95, 98).unknown(),
            w(6, "a", 500, 510).region("eu").committed_by("eu"),
            w(7, "a", 2050, 2060).region("eu").fail(),
            w(8, "a", 2700, 2800).committed_by("us"),
            w(9, "a", 2650, 2900).region("eu").committed_by("us"),
        ];
        if eu_write_after_switch {
            ops.push(w(10, "a", 1990, 2001).region("eu").committed_by("eu"));
        }
        let state = FinalState {
            primary_region: Some("us".into()),
            write_ids: final_ids,
            primaries: vec!["us".into()],
            standbys: vec![StandbyState {
                region: "eu".into(),
                state: "streaming".into(),
                sync_state: "async".into(),
                bytes_behind: Some(0),
            }],
            ..FinalState::default()
        };
        (history(ops, events), state)
    }

    #[test]
    fn divergent_writes_are_the_lost_writes_and_the_switchover_loses_none() {
        let (h, state) = failback(vec![1, 6, 8, 9], false);
        let f = check(&h, Some(&state));
        assert!(f.checked);
        assert_eq!(f.rejoins.len(), 2);
        let us = &f.rejoins[0];
        assert_eq!(us.method.as_deref(), Some("rewind"));
        assert_eq!(us.rejoin_ms, Some(500.0));
        assert_eq!(us.catch_up_ms, Some(200.0));
        assert_eq!(us.divergent_ids, Some(vec![2, 4, 5]));
        assert_eq!((us.divergent_acked, us.divergent_unknown), (2, 1));
        assert_eq!(us.matches_lost, Some(true), "{:?}", us.mismatched_ids);
        assert!(!us.in_switchover);
        assert!(f.rejoins[1].in_switchover);
        assert_eq!(f.rejoins[1].matches_lost, None);
        let s = &f.switchovers[0];
        assert_eq!(s.switch_ms, Some(600.0));
        // us users' first write on us acknowledged at 2800, eu users' at 2900.
        assert_eq!(s.downtime_ms, Some(900.0));
        assert_eq!(s.lost, Some(0));
        assert_eq!(f.restored, Some(true));
        assert!(f.failed.is_empty());
        let cx = RowContext {
            posture: crate::posture::Posture::ActivePassiveAsync,
            slo: &crate::checker::Verdict {
                passed: true,
                checks: vec![],
            },
        };
        let rows = rows(&f, &cx);
        assert_eq!(
            rows[0].observed,
            "rewind in 500 ms (0.5 ms on the data), caught up 200 ms later"
        );
        assert_eq!(
            rows[1].observed,
            "3 (2 acked, 1 unknown), the same as the lost writes"
        );
    }

    #[test]
    fn a_write_the_switched_away_primary_acked_and_the_final_one_lacks_is_lost_in_the_switchover() {
        // Write 10, acknowledged by eu (primary since 300) just before the switch, is not in
        // the final state: the switchover lost it; it does not spoil the failover's cross-check.
        let (h, state) = failback(vec![1, 6, 8, 9], true);
        let f = check(&h, Some(&state));
        assert_eq!(f.switchovers[0].lost_ids, vec![10]);
        assert_eq!(f.rejoins[0].matches_lost, Some(true));
        // A lost write of the failover missing from the divergent ones breaks the cross-check.
        let (h, state) = failback(vec![6, 8, 9], false);
        let f = check(&h, Some(&state));
        assert_eq!(f.rejoins[0].matches_lost, Some(false));
        assert_eq!(f.rejoins[0].mismatched_ids, vec![1]);
    }

    #[test]
    fn the_state_after_is_restored_only_with_one_primary_back_home_and_a_caught_up_standby() {
        let (h, mut state) = failback(vec![1, 6, 8, 9], false);
        state.standbys[0].bytes_behind = Some(8192);
        assert_eq!(check(&h, Some(&state)).restored, Some(false));
        let (h, mut state) = failback(vec![1, 6, 8, 9], false);
        state.primaries = vec!["eu".into()];
        assert_eq!(
            check(&h, Some(&state)).restored,
            Some(false),
            "not back in us"
        );
        let (h, mut state) = failback(vec![1, 6, 8, 9], false);
        state.primaries = vec!["eu".into(), "us".into()];
        assert_eq!(
            check(&h, Some(&state)).restored,
            Some(false),
            "two primaries"
        );
        let (h, _) = failback(vec![1, 6, 8, 9], false);
        assert_eq!(check(&h, None).restored, None);
        assert_eq!(check(&History::default(), None), Failback::default());
    }

    #[test]
    fn a_failed_operation_is_said_first() {
        let h = History {
            events: vec![
                ev(
                    10,
                    EventKind::OperationStarted {
                        index: 0,
                        operation: "rejoin".into(),
                    },
                ),
                ev(
                    20,
                    EventKind::OperationFailed {
                        index: 0,
                        error: "no deposed primary".into(),
                    },
                ),
            ],
            ..History::default()
        };
        let f = check(&h, None);
        let cx = RowContext {
            posture: crate::posture::Posture::ActivePassiveAsync,
            slo: &crate::checker::Verdict {
                passed: true,
                checks: vec![],
            },
        };
        assert_eq!(
            alerts(&f, &cx),
            ["a planned operation failed: operation 0: no deposed primary"]
        );
    }
}
