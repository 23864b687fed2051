//! The failure of the primary and failover time (RTO observed), overall and per home region.
//!
//! # Why per region
//! Users of different regions get going again at different times. When the primary region
//! `us` is killed and the replica in `eu` is promoted, `eu` users recover as soon as their own
//! region's app is reconfigured (about the promotion), while `us` users keep calling the dead
//! region until their DNS answer expires (the TTL) and only then reach `eu`. The earliest
//! recovery of anyone would show the `eu` figure and hide what the `us` users lived through,
//! so the headline RTO is the time until *every* region's affected users could write again,
//! and the earliest recovery is kept beside it (`first_rto_ms`) to show the spread.
//!
//! # Definitions
//! - **The failure** (`failure_at`): the fault the controller reacted to — the time of the
//!   latest `FaultStarted` with `hits_primary` that started at or before the controller's
//!   first `PrimaryDeclaredDown`; if no such fault preceded it, the latest fault of any kind
//!   that did (a fault can make the primary unusable indirectly: with synchronous
//!   replication cut, stuck commits exhaust its connections and its health checks fail). If
//!   the controller never declared the primary down, or declared it before any fault (a
//!   false alarm), the first `FaultStarted` with `hits_primary`.
//! - **A failure nobody injected**: when none of these exists but the controller declared the
//!   primary down anyway (it failed over by itself: an overloaded host timing its checks out,
//!   a flapping link), the failure is that failover's **first affected operation** — the
//!   first operation invoked at or after the declaration that did not end `ok` — or the
//!   declaration itself when none failed; `failure_injected` is then false and the report
//!   says so. Otherwise (an injected fault, or nothing) `failure_injected` is true.
//! - None when there is no failure at all: nothing to recover from, the RTO fields are None,
//!   `by_region` is empty and `recovered` is true.
//! - **Controller steps**: `detected_at`, `promoted_at`, `rerouted_at` are the first
//!   `PrimaryDeclaredDown`, `Promoted` and `Rerouted` events at or after the failure.
//! - **Region**: an operation's region is its user's home region ([`Operation::region`]),
//!   not the region that served it. A user belongs to the region of its operations.
//! - **Affected users** of a region: its users with at least one operation invoked at or after
//!   the failure that did not end `ok` (`fail` or `unknown`). Users who never noticed the
//!   failure are not affected and do not count towards any RTO. `by_region` has one entry per
//!   region with at least one affected user; `affected_users` is the total over regions.
//! - **Per region** ([`RegionRecovery`]): the region's **write RTO** (`rto_ms`) is from the
//!   failure to the earliest acknowledgement of an `ok` write by an affected user of that
//!   region, among the writes that user invoked at or after its own first operation that did
//!   not end `ok` after the failure; its **read RTO** (`read_rto_ms`) is the same with reads.
//!   A user succeeds *again* only after it failed: a write that went through before the
//!   outage reached that user (say in the moments before a partition made the controller
//!   move the user's region) is not a recovery. Each is None when no such operation exists (the region's users
//!   never got going again within the run). The region has `recovered` when its write RTO
//!   exists.
//! - **Headline write RTO** (`rto_ms`): the longest per-region write RTO — the time until
//!   every region's affected users could write again. None when some region with affected
//!   users never recovered, and then `recovered` is false.
//! - **Headline read RTO** (`read_rto_ms`): the longest per-region read RTO among regions
//!   whose affected users issued at least one read invoked at or after the failure (whatever
//!   its outcome); a region whose affected users issued no reads then cannot block it. None
//!   when such a region never got an `ok` read, or when no such region exists (nothing was
//!   measured).
//! - **First recovery** (`first_rto_ms`): the earliest per-region write RTO, i.e. the
//!   earliest successful write of any affected user (the figure before regions were told
//!   apart). None when no region recovered.
//! - When no user was affected, `rto_ms`, `read_rto_ms` and `first_rto_ms` are 0, `by_region`
//!   is empty and `recovered` is true.
//! - `recovered` (every region recovered) follows the write RTO (what the RTO objective is
//!   about): a run whose affected users wrote successfully again has recovered, whatever the
//!   reads did — `read_rto_ms` says that separately.
//! - **Breakdown**: `detect_ms` = detected − failure, `promote_ms` = promoted − detected,
//!   `redirect_ms` = headline write recovery (failure + `rto_ms`, the last region's first
//!   successful write) − promoted. Each is None when either end is missing, so `redirect_ms`
//!   is None when some region never recovered. They are signed differences of the same
//!   instants, so `detect_ms + promote_ms + redirect_ms = rto_ms` (to `f64` rounding) when all
//!   exist; a negative `redirect_ms` means every region wrote successfully before the
//!   promotion (the old primary came back, or the fault never stopped writes).
//!
//! [`Operation::region`]: crate::history::Operation::region

use super::rows::{FindingRow, RowContext, dur};
use super::{FastMap, ms_between};
use crate::history::{EventKind, History, Nanos, OpKind, ms};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Failover findings (`failover.*` in results.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverFindings {
    /// When the fault that hit the primary started (None: no fault hit it).
    pub failure_at_ms: Option<f64>,
    /// When the controller declared the primary down.
    pub detected_at_ms: Option<f64>,
    /// When the replica finished promotion.
    pub promoted_at_ms: Option<f64>,
    /// When routing pointed at the new primary.
    pub rerouted_at_ms: Option<f64>,
    /// Detection: declared down − failure.
    pub detect_ms: Option<f64>,
    /// Promotion: promoted − declared down.
    pub promote_ms: Option<f64>,
    /// Redirection: headline write recovery (the last region's first successful write of an
    /// affected user) − promoted, so that detect + promote + redirect = `rto_ms`.
    pub redirect_ms: Option<f64>,
    /// Write RTO observed: failure → every region's affected users wrote successfully again
    /// (the longest per-region write RTO; None if some region never recovered).
    pub rto_ms: Option<f64>,
    /// Write RTO of the first region to recover: failure → first successful write of any
    /// affected user.
    pub first_rto_ms: Option<f64>,
    /// Read RTO observed: the longest per-region read RTO among regions whose affected users
    /// issued reads after the failure (None if one of them never read successfully).
    pub read_rto_ms: Option<f64>,
    /// Whether every region's affected users wrote successfully again (true when nothing
    /// failed).
    pub recovered: bool,
    /// Users that saw at least one operation fail or time out after the failure.
    pub affected_users: usize,
    /// Per home region with at least one affected user.
    #[serde(default)]
    pub by_region: BTreeMap<String, RegionRecovery>,
    /// Whether the failure was an injected fault (false: the system failed over by itself,
    /// and the RTO counts from that failover's first affected operation).
    #[serde(default = "injected")]
    pub failure_injected: bool,
    /// Why the failover manager did not fail over, in its own terms (a real HA manager's
    /// `failover_refused` at or after the failure: e.g. "DCS unreachable", "no candidate
    /// within maximum_lag_on_failover"); None when it did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

fn injected() -> bool {
    true
}

/// How one home region's users got going again (`failover.by_region.<region>.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionRecovery {
    /// The region's users that saw an operation fail or time out after the failure.
    pub affected_users: usize,
    /// Failure → first successful write of one of them (None: never, within the run).
    pub rto_ms: Option<f64>,
    /// Failure → first successful read of one of them (None: never, within the run).
    pub read_rto_ms: Option<f64>,
    /// Whether one of them wrote successfully again.
    pub recovered: bool,
}

/// The failure of the primary, as defined in this module's docs.
pub fn failure_at(history: &History) -> Option<Nanos> {
    failure(history).map(|(at, _)| at)
}

/// The failure and whether it was injected, as defined in this module's docs.
pub fn failure(history: &History) -> Option<(Nanos, bool)> {
    let declared = first_at(history, 0, |k| {
        matches!(k, EventKind::PrimaryDeclaredDown { .. })
    });
    let primary_faults = || {
        history.events.iter().filter_map(|e| match e.kind {
            EventKind::FaultStarted {
                hits_primary: true, ..
            } => Some(e.at_ns),
            _ => None,
        })
    };
    let any_fault_before = |d: Nanos| {
        history
            .events
            .iter()
            .filter(|e| e.at_ns <= d && matches!(e.kind, EventKind::FaultStarted { .. }))
            .map(|e| e.at_ns)
            .max()
    };
    let injected = match declared {
        Some(d) => primary_faults()
            .filter(|&t| t <= d)
            .max()
            .or_else(|| any_fault_before(d))
            .or_else(|| primary_faults().min()),
        None => primary_faults().min(),
    };
    if let Some(at) = injected {
        return Some((at, true));
    }
    let d = declared?;
    let first_affected = history
        .ops
        .iter()
        .filter(|o| o.invoke_ns >= d && !o.outcome.is_ok())
        .map(|o| o.invoke_ns)
        .min();
    Some((first_affected.unwrap_or(d), false))
}

/// The time of the first event matching `f` at or after `from`.
fn first_at(history: &History, from: Nanos, f: impl Fn(&EventKind) -> bool) -> Option<Nanos> {
    history
        .events
        .iter()
        .filter(|e| e.at_ns >= from && f(&e.kind))
        .map(|e| e.at_ns)
        .min()
}

/// One home region's affected users and when they got going again, while scanning.
struct Tally<'a> {
    region: &'a str,
    /// Affected users → invocation of their first operation after the failure that did not
    /// end `ok`: their recovery counts from there.
    affected: FastMap<u32, Nanos>,
    /// Whether an affected user issued a read invoked at or after the failure.
    issued_reads: bool,
    write_back: Option<Nanos>,
    read_back: Option<Nanos>,
}

/// The tally of `region` among a handful of regions (a linear scan beats hashing here).
fn tally_of<'t, 'a>(tallies: &'t mut [Tally<'a>], region: &str) -> Option<&'t mut Tally<'a>> {
    tallies.iter_mut().find(|t| t.region == region)
}

/// The latest of the regions' recoveries: None when some region never recovered (a `None`
/// among them) or when there are no regions.
fn last_of(backs: impl Iterator<Item = Option<Nanos>>) -> Option<Nanos> {
    let mut last = None;
    for back in backs {
        let b = back?;
        last = Some(last.map_or(b, |l: Nanos| l.max(b)));
    }
    last
}

/// Measures the failover.
pub fn check(history: &History) -> FailoverFindings {
    let Some((failure, injected)) = failure(history) else {
        return FailoverFindings {
            failure_at_ms: None,
            detected_at_ms: None,
            promoted_at_ms: None,
            rerouted_at_ms: None,
            detect_ms: None,
            promote_ms: None,
            redirect_ms: None,
            rto_ms: None,
            first_rto_ms: None,
            read_rto_ms: None,
            recovered: true,
            affected_users: 0,
            by_region: BTreeMap::new(),
            failure_injected: true,
            refused: None,
        };
    };
    // A failure nobody injected starts after its own declaration: its steps count from there.
    let declared = |k: &EventKind| matches!(k, EventKind::PrimaryDeclaredDown { .. });
    let steps_from = if injected {
        failure
    } else {
        first_at(history, 0, declared).unwrap_or(failure)
    };
    let detected = first_at(history, steps_from, declared);
    let promoted = first_at(history, steps_from, |k| {
        matches!(k, EventKind::Promoted { .. })
    });
    let rerouted = first_at(history, steps_from, |k| {
        matches!(k, EventKind::Rerouted { .. })
    });

    let after = || history.ops.iter().filter(|op| op.invoke_ns >= failure);
    let mut tallies: Vec<Tally> = Vec::new();
    for op in after().filter(|op| !op.outcome.is_ok()) {
        let tally = match tally_of(&mut tallies, &op.region) {
            Some(t) => t,
            None => {
                tallies.push(Tally {
                    region: &op.region,
                    affected: FastMap::default(),
                    issued_reads: false,
                    write_back: None,
                    read_back: None,
                });
                tallies.last_mut().expect("just pushed")
            }
        };
        let first = tally.affected.entry(op.user).or_insert(op.invoke_ns);
        *first = (*first).min(op.invoke_ns);
    }
    for op in after() {
        let Some(tally) = tally_of(&mut tallies, &op.region) else {
            continue;
        };
        match tally.affected.get(&op.user) {
            Some(&first_failure) if op.invoke_ns >= first_failure => {}
            _ => continue,
        }
        let slot = match op.kind {
            OpKind::Incr | OpKind::ProfileWrite | OpKind::ProfileRead | OpKind::Erase => continue,
            OpKind::Write => &mut tally.write_back,
            OpKind::Read => {
                tally.issued_reads = true;
                &mut tally.read_back
            }
        };
        if op.outcome.is_ok() {
            *slot = Some(slot.map_or(op.complete_ns, |t| t.min(op.complete_ns)));
        }
    }

    let since_failure = |t: Option<Nanos>| t.map(|t| ms_between(t, failure));
    let write_back = last_of(tallies.iter().map(|t| t.write_back));
    let read_back = last_of(
        tallies
            .iter()
            .filter(|t| t.issued_reads)
            .map(|t| t.read_back),
    );
    let first_back = tallies.iter().filter_map(|t| t.write_back).min();
    let (rto_ms, first_rto_ms, read_rto_ms, recovered) = if tallies.is_empty() {
        (Some(0.0), Some(0.0), Some(0.0), true)
    } else {
        (
            since_failure(write_back),
            since_failure(first_back),
            since_failure(read_back),
            write_back.is_some(),
        )
    };
    let between = |later: Option<Nanos>, earlier: Option<Nanos>| match (later, earlier) {
        (Some(l), Some(e)) => Some(ms_between(l, e)),
        _ => None,
    };
    let by_region: BTreeMap<String, RegionRecovery> = tallies
        .iter()
        .map(|t| {
            let recovery = RegionRecovery {
                affected_users: t.affected.len(),
                rto_ms: since_failure(t.write_back),
                read_rto_ms: since_failure(t.read_back),
                recovered: t.write_back.is_some(),
            };
            (t.region.to_owned(), recovery)
        })
        .collect();
    FailoverFindings {
        failure_at_ms: Some(ms(failure)),
        detected_at_ms: detected.map(ms),
        promoted_at_ms: promoted.map(ms),
        rerouted_at_ms: rerouted.map(ms),
        // Nothing injected: nothing was detected, the system acted first.
        detect_ms: if injected {
            between(detected, Some(failure))
        } else {
            None
        },
        promote_ms: between(promoted, detected),
        redirect_ms: between(write_back, promoted),
        rto_ms,
        first_rto_ms,
        read_rto_ms,
        recovered,
        affected_users: by_region.values().map(|r| r.affected_users).sum(),
        by_region,
        failure_injected: injected,
        refused: refusal(history, failure),
    }
}

/// The manager's first `failover_refused` reason at or after `failure`.
fn refusal(history: &History, failure: Nanos) -> Option<String> {
    history
        .events
        .iter()
        .filter(|e| e.at_ns >= failure)
        .find_map(|e| match &e.kind {
            EventKind::FailoverRefused { reason, .. } => Some(reason.clone()),
            _ => None,
        })
}

/// A failure nobody injected, said first: the RTO above counts from the system's own
/// failover, not from a fault of the experiment.
pub fn alerts(f: &FailoverFindings, _cx: &RowContext) -> Vec<String> {
    match (f.failure_injected, f.failure_at_ms, f.detected_at_ms) {
        (false, Some(at), Some(declared)) => vec![format!(
            "the failure was not injected: the system failed over by itself (primary declared \
             down at {}); RTO counts from that failover's first affected operation, at {}",
            dur(Some(declared)),
            dur(Some(at))
        )],
        _ => Vec::new(),
    }
}

/// The RTO row (judged by the `rto` check) and, when a fault hit the primary, its details:
/// each home region's RTO, the breakdown, the read RTO.
pub fn rows(f: &FailoverFindings, cx: &RowContext) -> Vec<FindingRow> {
    let rto = if f.failure_at_ms.is_none() {
        "no failure".to_string()
    } else if !f.recovered {
        "not recovered".to_string()
    } else {
        cx.shown("rto", dur(f.rto_ms))
    };
    let mut rows = vec![cx.judged("RTO (every region writing again)", rto, "rto")];
    if let (false, Some(at)) = (f.failure_injected, f.failure_at_ms) {
        rows.push(FindingRow::sub(
            "failure",
            format!(
                "not injected: the system failed over by itself; counted from its first \
                 affected operation at {}",
                dur(Some(at))
            ),
        ));
    }
    if f.failure_at_ms.is_some() {
        let per_region: Vec<String> = f
            .by_region
            .iter()
            .map(|(region, r)| {
                let t = if r.recovered {
                    dur(r.rto_ms)
                } else {
                    "never".into()
                };
                format!("{region} {t}")
            })
            .collect();
        if !per_region.is_empty() {
            rows.push(FindingRow::sub("by home region", per_region.join(", ")));
        }
        rows.push(FindingRow::sub(
            "detect / promote / redirect",
            format!(
                "{} / {} / {}",
                dur(f.detect_ms),
                dur(f.promote_ms),
                dur(f.redirect_ms)
            ),
        ));
        rows.push(FindingRow::sub("read RTO", dur(f.read_rto_ms)));
        if let Some(why) = &f.refused {
            rows.push(FindingRow::sub("no failover because", why.clone()));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    fn region(affected_users: usize, rto: Option<f64>, read: Option<f64>) -> RegionRecovery {
        RegionRecovery {
            affected_users,
            rto_ms: rto,
            read_rto_ms: read,
            recovered: rto.is_some(),
        }
    }

    fn regions(entries: &[(&str, RegionRecovery)]) -> BTreeMap<String, RegionRecovery> {
        entries
            .iter()
            .map(|(name, r)| (name.to_string(), r.clone()))
            .collect()
    }

    #[test]
    fn a_refused_failover_says_why_and_never_recovers() {
        // The primary's region is lost at 1 s; the manager never declares it down and says,
        // 24 s later, that its DCS went with it. An earlier refusal (before the failure)
        // belongs to something else and is not the reason.
        let reason = "DCS unreachable: etcd (in us) does not answer";
        let events = vec![
            ev(
                500,
                EventKind::FailoverRefused {
                    region: "us".into(),
                    reason: "earlier".into(),
                },
            ),
            fault(1000, 0, true),
            ev(
                25_000,
                EventKind::FailoverRefused {
                    region: "us".into(),
                    reason: reason.into(),
                },
            ),
        ];
        let h = history(
            vec![
                w(1, "a", 900, 950).user(1).region("eu"),
                w(2, "a", 1010, 3010).user(1).region("eu").unknown(),
                w(3, "a", 3100, 5100).user(1).region("eu").unknown(),
            ],
            events,
        );
        let f = check(&h);
        assert_eq!(f.refused.as_deref(), Some(reason));
        assert!(!f.recovered);
        assert_eq!(
            (f.rto_ms, f.detected_at_ms, f.promoted_at_ms),
            (None, None, None)
        );
        let shown = rows(&f, &cx());
        assert!(
            shown.iter().any(|r| r.observed == reason),
            "the reason is a row of the report: {shown:?}"
        );
        // A run that failed over has no refusal.
        assert_eq!(
            check(&history(vec![], vec![fault(1000, 0, true)])).refused,
            None
        );
    }

    #[test]
    fn region_kill_with_full_failover() {
        // Kill at 1000 ms; declared down 1300, promoted 1400, rerouted 1450.
        // User 1 (us): write ok before the kill (not counted), write fails at 1010,
        //   write ok at 1500 → acked 1620, read ok 1700 → 1705.
        // User 2 (eu): read unknown at 1100, read ok 1460 → 1480, write ok 1600 → 1650.
        // User 3 (eu): only ok operations after the kill (never noticed) → not affected:
        //   its write acked at 1200 must not count as eu's recovery.
        // us = {1}: write 1620 → 620, read 1705 → 705. eu = {2}: write 1650 → 650, read 1480 → 480.
        // Headline: rto = max(620, 650) = 650, first = min = 620, read = max(705, 480) = 705.
        // detect = 300, promote = 100, redirect = 1650 − 1400 = 250; 300 + 100 + 250 = 650.
        let mut events = vec![fault(1000, 0, true)];
        events.extend(failover_steps(1300, 1400, 1450));
        let h = history(
            vec![
                w(1, "a", 900, 950).user(1),
                w(2, "a", 1010, 1015).user(1).fail(),
                r(3, "a", 1100, 3100, None).user(2).region("eu").unknown(),
                w(4, "b", 1150, 1200).user(3).region("eu"),
                r(5, "b", 1460, 1480, Some(4)).user(2).region("eu"),
                w(6, "a", 1500, 1620).user(1),
                w(7, "c", 1600, 1650).user(2).region("eu"),
                r(8, "a", 1700, 1705, Some(6)).user(1),
            ],
            events,
        );
        assert_eq!(
            check(&h),
            FailoverFindings {
                failure_at_ms: Some(1000.0),
                detected_at_ms: Some(1300.0),
                promoted_at_ms: Some(1400.0),
                rerouted_at_ms: Some(1450.0),
                detect_ms: Some(300.0),
                promote_ms: Some(100.0),
                redirect_ms: Some(250.0),
                rto_ms: Some(650.0),
                first_rto_ms: Some(620.0),
                read_rto_ms: Some(705.0),
                recovered: true,
                affected_users: 2,
                by_region: regions(&[
                    ("eu", region(1, Some(650.0), Some(480.0))),
                    ("us", region(1, Some(620.0), Some(705.0))),
                ]),
                failure_injected: true,
                refused: None,
            }
        );
    }

    #[test]
    fn headline_rto_is_the_slowest_region() {
        // The DNS TTL case. Kill us at 1000; declared down 1300, promoted 1400, rerouted 1450.
        // eu users recover once their app is reconfigured; us users keep calling the dead
        // region until their DNS answer expires.
        // us: user 1 write fails 1010, write unknown 1500 → 2500 (timed out on the dead
        //   region), write ok 2900 → 3100, read ok 3200 → 3250; user 2 read fails 1100,
        //   read ok 3000 → 3050, write ok 3300 → 3400.
        //   → write 3100 → 2100, read min(3250, 3050) = 3050 → 2050.
        // eu: user 3 write fails 1200, write ok 2050 → 2100, read ok 2150 → 2160; user 5 read
        //   unknown 1020 → 2020, write ok 2200 → 2300; user 4 only ok (write 1500 → 1520,
        //   never noticed, not affected: would otherwise make eu's RTO 520).
        //   → write min(2100, 2300) = 2100 → 1100, read 2160 → 1160.
        // Headline: rto = max(2100, 1100) = 2100, first = 1100, read = max(2050, 1160) = 2050.
        // redirect = 3100 − 1400 = 1700; 300 + 100 + 1700 = 2100.
        let mut events = vec![fault(1000, 0, true)];
        events.extend(failover_steps(1300, 1400, 1450));
        let h = history(
            vec![
                w(1, "a", 1010, 1012).user(1).fail(),
                r(2, "a", 1020, 2020, None).user(5).region("eu").unknown(),
                r(3, "a", 1100, 1101, None).user(2).fail(),
                w(4, "b", 1200, 1210).user(3).region("eu").fail(),
                w(5, "a", 1500, 2500).user(1).unknown(),
                w(6, "c", 1500, 1520).user(4).region("eu"),
                w(7, "b", 2050, 2100).user(3).region("eu"),
                r(8, "b", 2150, 2160, Some(7)).user(3).region("eu"),
                w(9, "d", 2200, 2300).user(5).region("eu"),
                w(10, "a", 2900, 3100).user(1),
                r(11, "a", 3000, 3050, Some(10)).user(2),
                r(12, "a", 3200, 3250, Some(10)).user(1),
                w(13, "e", 3300, 3400).user(2),
            ],
            events,
        );
        assert_eq!(
            check(&h),
            FailoverFindings {
                failure_at_ms: Some(1000.0),
                detected_at_ms: Some(1300.0),
                promoted_at_ms: Some(1400.0),
                rerouted_at_ms: Some(1450.0),
                detect_ms: Some(300.0),
                promote_ms: Some(100.0),
                redirect_ms: Some(1700.0),
                rto_ms: Some(2100.0),
                first_rto_ms: Some(1100.0),
                read_rto_ms: Some(2050.0),
                recovered: true,
                affected_users: 4,
                by_region: regions(&[
                    ("eu", region(2, Some(1100.0), Some(1160.0))),
                    ("us", region(2, Some(2100.0), Some(2050.0))),
                ]),
                failure_injected: true,
                refused: None,
            }
        );
    }

    #[test]
    fn a_region_that_never_recovers_blocks_the_headline() {
        // Kill us at 1000; failover steps 1300 / 1400 / 1450.
        // us: user 1 write fails 1010, write unknown 1500 → 3500, read fails 1600 → never
        //   wrote or read successfully again.
        // eu: user 2 write fails 1100, write ok 1800 → 1850 (850), read ok 1900 → 1920 (920).
        // Headline: rto None (us), read None (us read and never succeeded), not recovered,
        // redirect None; first = 850 (eu).
        let mut events = vec![fault(1000, 0, true)];
        events.extend(failover_steps(1300, 1400, 1450));
        let h = history(
            vec![
                w(1, "a", 1010, 1011).user(1).fail(),
                w(2, "b", 1100, 1105).user(2).region("eu").fail(),
                w(3, "a", 1500, 3500).user(1).unknown(),
                r(4, "a", 1600, 1610, None).user(1).fail(),
                w(5, "b", 1800, 1850).user(2).region("eu"),
                r(6, "b", 1900, 1920, Some(5)).user(2).region("eu"),
            ],
            events,
        );
        let f = check(&h);
        assert_eq!(f.rto_ms, None);
        assert_eq!(f.read_rto_ms, None);
        assert!(!f.recovered);
        assert_eq!(f.first_rto_ms, Some(850.0));
        assert_eq!(
            (f.detect_ms, f.promote_ms, f.redirect_ms),
            (Some(300.0), Some(100.0), None)
        );
        assert_eq!(f.affected_users, 2);
        assert_eq!(
            f.by_region,
            regions(&[
                ("eu", region(1, Some(850.0), Some(920.0))),
                ("us", region(1, None, None)),
            ])
        );
    }

    #[test]
    fn read_rto_ignores_a_region_whose_affected_users_did_not_read() {
        // Kill at 1000. us: user 1 read ok before the kill (900, does not count), write fails
        //   1010, write ok 2000 → 2100 (1100); no read after the kill.
        // eu: user 2 read unknown 1050 → 2050, read ok 1500 → 1600 (600), write ok
        //   1700 → 1750 (750).
        // Headline: rto = 1100, first = 750, read = 600 (us issued no reads: does not block).
        let run = |us_read_after: bool| {
            let mut ops = vec![
                r(1, "a", 900, 905, None).user(1),
                w(2, "a", 1010, 1011).user(1).fail(),
                r(3, "b", 1050, 2050, None).user(2).region("eu").unknown(),
                r(4, "b", 1500, 1600, None).user(2).region("eu"),
                w(5, "b", 1700, 1750).user(2).region("eu"),
                w(6, "a", 2000, 2100).user(1),
            ];
            if us_read_after {
                ops.push(r(7, "a", 2200, 2210, None).user(1).fail());
            }
            check(&history(ops, vec![fault(1000, 0, true)]))
        };
        let f = run(false);
        assert_eq!(
            (f.rto_ms, f.first_rto_ms, f.read_rto_ms, f.recovered),
            (Some(1100.0), Some(750.0), Some(600.0), true)
        );
        assert_eq!(
            f.by_region,
            regions(&[
                ("eu", region(1, Some(750.0), Some(600.0))),
                ("us", region(1, Some(1100.0), None)),
            ])
        );
        // Had user 1 issued a read after the kill (here at 2200, failed) and never read
        // successfully, us would block the read RTO; the write figures do not change.
        let g = run(true);
        assert_eq!(g.read_rto_ms, None);
        assert_eq!(
            (g.rto_ms, g.first_rto_ms, g.recovered),
            (Some(1100.0), Some(750.0), true)
        );
        assert_eq!(g.by_region, f.by_region);
    }

    #[test]
    fn regions_without_affected_users_are_left_out() {
        // Kill at 1000. us user 1 fails at 1010 and writes ok 1200 → 1300; eu user 2 only
        // succeeds (never noticed): only us appears, and eu cannot shorten or block anything.
        let h = history(
            vec![
                w(1, "a", 1010, 1011).user(1).fail(),
                w(2, "b", 1050, 1060).user(2).region("eu"),
                r(3, "b", 1070, 1080, Some(2)).user(2).region("eu"),
                w(4, "a", 1200, 1300).user(1),
            ],
            vec![fault(1000, 0, true)],
        );
        let f = check(&h);
        assert_eq!(
            f.by_region,
            regions(&[("us", region(1, Some(300.0), None))])
        );
        assert_eq!((f.rto_ms, f.first_rto_ms), (Some(300.0), Some(300.0)));
        assert_eq!(f.read_rto_ms, None);
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["by_region"]["us"]["rto_ms"], 300.0);
        assert_eq!(json["by_region"]["us"]["affected_users"], 1);
        assert_eq!(json["first_rto_ms"], 300.0);
        let back: FailoverFindings = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, f);
        // A results.json written before regions were told apart still reads back.
        let mut old = json;
        let fields = old.as_object_mut().unwrap();
        fields.remove("by_region");
        fields.remove("first_rto_ms");
        let back: FailoverFindings = serde_json::from_value(old).unwrap();
        assert!(back.by_region.is_empty());
        assert_eq!((back.first_rto_ms, back.rto_ms), (None, Some(300.0)));
    }

    #[test]
    fn recovery_never_happens() {
        // Kill at 100; no failover events; user 1's writes keep failing; a read succeeds.
        let h = history(
            vec![
                w(1, "a", 150, 160).fail(),
                w(2, "a", 250, 2250).unknown(),
                r(3, "a", 300, 310, None),
            ],
            vec![fault(100, 0, true)],
        );
        let f = check(&h);
        assert_eq!(f.failure_at_ms, Some(100.0));
        assert_eq!(f.detected_at_ms, None);
        assert_eq!(f.detect_ms, None);
        assert_eq!(f.promote_ms, None);
        assert_eq!(f.redirect_ms, None);
        assert_eq!(f.rto_ms, None);
        assert_eq!(f.read_rto_ms, Some(210.0));
        assert_eq!(f.first_rto_ms, None);
        assert!(!f.recovered);
        assert_eq!(f.affected_users, 1);
        assert_eq!(
            f.by_region,
            regions(&[("us", region(1, None, Some(210.0)))])
        );
    }

    #[test]
    fn no_user_affected_means_zero_rto() {
        // A fault hits the primary at 100 but every later operation succeeds.
        let h = history(
            vec![
                w(1, "a", 50, 60),
                w(2, "a", 150, 160).user(2),
                r(3, "a", 170, 175, Some(2)),
            ],
            vec![fault(100, 0, true)],
        );
        let f = check(&h);
        assert_eq!(f.failure_at_ms, Some(100.0));
        assert_eq!(f.affected_users, 0);
        assert_eq!(
            (f.rto_ms, f.first_rto_ms, f.read_rto_ms),
            (Some(0.0), Some(0.0), Some(0.0))
        );
        assert_eq!(f.redirect_ms, None);
        assert!(f.recovered);
        assert!(f.by_region.is_empty());
    }

    #[test]
    fn no_fault_on_the_primary_means_nothing_to_recover() {
        // A latency fault (not hitting the primary) and failing operations: no failure.
        let h = history(vec![w(1, "a", 150, 160).fail()], vec![fault(100, 0, false)]);
        let f = check(&h);
        assert_eq!(f.failure_at_ms, None);
        assert_eq!(f.rto_ms, None);
        assert_eq!(f.first_rto_ms, None);
        assert_eq!(f.read_rto_ms, None);
        assert!(f.recovered);
        assert_eq!(f.affected_users, 0);
        assert!(f.by_region.is_empty());
        assert_eq!(failure_at(&History::default()), None);
    }

    #[test]
    fn failure_is_the_latest_primary_fault_before_detection() {
        // Primary faults at 100 and 400 (partition of the controller's path, then a kill),
        // a non-primary fault at 500, declared down at 600, another primary fault at 700.
        // → failure = 400.
        let h = history(
            vec![],
            vec![
                fault(100, 0, true),
                fault(400, 1, true),
                fault(500, 2, false),
                ev(
                    600,
                    EventKind::PrimaryDeclaredDown {
                        region: "us".into(),
                    },
                ),
                fault(700, 3, true),
            ],
        );
        assert_eq!(failure_at(&h), Some(400 * MS));
        // Never declared down: the first primary fault.
        let h = history(
            vec![],
            vec![
                fault(500, 2, false),
                fault(700, 3, true),
                fault(800, 4, true),
            ],
        );
        assert_eq!(failure_at(&h), Some(700 * MS));
        // Declared down before any primary fault (a false alarm): the first primary fault.
        let h = history(
            vec![],
            vec![
                ev(
                    50,
                    EventKind::PrimaryDeclaredDown {
                        region: "us".into(),
                    },
                ),
                fault(700, 3, true),
            ],
        );
        assert_eq!(failure_at(&h), Some(700 * MS));
        assert_eq!(check(&h).detected_at_ms, None);
        // Declared down after faults none of which hits the primary directly (a replication
        // partition with synchronous commits exhausting connections): the latest of them.
        let h = history(
            vec![],
            vec![
                fault(100, 0, false),
                fault(300, 1, false),
                ev(
                    900,
                    EventKind::PrimaryDeclaredDown {
                        region: "us".into(),
                    },
                ),
                fault(1000, 2, false),
            ],
        );
        assert_eq!(failure_at(&h), Some(300 * MS));
    }

    #[test]
    fn a_failover_nobody_injected_counts_from_its_first_affected_operation() {
        // No fault at all. Declared down at 3670 (an overloaded host timed its checks out),
        // promoted at 5830. The first operation failing at or after the declaration was
        // invoked at 3700; the user wrote again at 6000 → 6010. Nothing detected: no
        // injected failure to detect.
        let mut events = failover_steps(3670, 5830, 5840);
        events.push(ev(
            7850,
            EventKind::FailoverFailed {
                error: "reconfiguring".into(),
            },
        ));
        let h = history(
            vec![
                w(1, "a", 3000, 3010).fail(),
                w(2, "a", 3700, 3710).fail(),
                w(3, "a", 6000, 6010),
            ],
            events,
        );
        let f = check(&h);
        assert!(!f.failure_injected);
        assert_eq!(f.failure_at_ms, Some(3700.0));
        assert_eq!(f.detected_at_ms, Some(3670.0));
        assert_eq!(f.promoted_at_ms, Some(5830.0));
        assert_eq!(f.detect_ms, None);
        assert_eq!(f.rto_ms, Some(2310.0));
        let alerts = alerts(&f, &cx());
        assert_eq!(alerts.len(), 1);
        assert!(
            alerts[0].contains("not injected") && alerts[0].contains("3.67 s"),
            "{alerts:?}"
        );
        let rows = rows(&f, &cx());
        assert!(
            rows.iter()
                .any(|r| r.finding == "failure" && r.observed.contains("3.70 s"))
        );
        // An injected failure says nothing of the kind.
        let injected = check(&history(vec![], vec![fault(100, 0, true)]));
        assert!(injected.failure_injected && super::alerts(&injected, &cx()).is_empty());
    }

    #[test]
    fn success_before_a_users_own_failure_is_not_a_recovery() {
        // Partition at 1000. User 1 (us) writes ok at 1002 → 1004 (its path still works),
        // then fails from 1500 (its region was moved away), then writes ok at 4000 → 4010.
        // Its recovery is 4010 (RTO 3010), not 1004.
        let h = history(
            vec![
                w(1, "a", 1002, 1004).user(1),
                w(2, "a", 1500, 1600).user(1).fail(),
                r(3, "a", 1003, 1005, Some(1)).user(1),
                w(4, "a", 4000, 4010).user(1),
                r(5, "a", 4020, 4030, Some(4)).user(1),
            ],
            vec![fault(1000, 0, true)],
        );
        let f = check(&h);
        assert_eq!(f.affected_users, 1);
        assert_eq!(f.rto_ms, Some(3010.0));
        assert_eq!(f.first_rto_ms, Some(3010.0));
        assert_eq!(f.read_rto_ms, Some(3030.0));
    }

    #[test]
    fn operations_before_the_failure_do_not_affect_anyone() {
        // User 1 failed before the kill (at 50) and succeeded after; user 2 failed after.
        // Affected = {2}; user 1's write at 200 is not a recovery. User 2 writes ok at 300→320.
        let h = history(
            vec![
                w(1, "a", 50, 60).fail(),
                w(2, "a", 200, 210),
                w(3, "b", 150, 160).user(2).fail(),
                w(4, "b", 300, 320).user(2),
            ],
            vec![fault(100, 0, true)],
        );
        let f = check(&h);
        assert_eq!(f.affected_users, 1);
        assert_eq!(f.rto_ms, Some(220.0));
        assert_eq!(f.read_rto_ms, None);
        assert!(f.recovered);
        assert_eq!(
            f.by_region,
            regions(&[("us", region(1, Some(220.0), None))])
        );
    }
}
