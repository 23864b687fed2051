//! Failover episodes, and false failovers: the system failed over while its primary was in
//! fact healthy and reachable from its own region.
//!
//! The failover controller watches the primary from the other region, so a cut monitor link,
//! added latency or a slow check looks to it exactly like a dead primary, and it fails over
//! (promotes the replica, or in active-active moves the region's users away) from a primary
//! that was serving its own region all along: flapping. This checker lists every failover
//! the system made, says what provoked it, and flags the false ones with what they cost.
//!
//! # Definitions
//! - **Events** are taken in time order (stably sorted by `at_ns`, so ties keep the
//!   history's order).
//! - **Episode**: each `PrimaryDeclaredDown` starts one, at its time `t`, for its region `R`.
//!   The `Fenced`, `Promoted`, `Rerouted`, `FailoverFailed` and `FailoverRefused` events
//!   after it, up to the next `PrimaryDeclaredDown`, are its **steps**, in order. (Steps before any declaration
//!   open an episode of their own at the first one's time, with no region: there is no
//!   declaration to judge, so its health is not measured — except a refusal, which names
//!   the lost primary's region: its episode has that region.) A promotion observed from
//!   outside (a target's own manager, `Promoted` with `from`) opens an episode of its own at
//!   its time, for the region it replaced: there is never a declaration to open it. An episode is **failed** when
//!   one of its steps is `FailoverFailed` (its error is kept); **refused** when a real HA
//!   manager declined to fail over (`FailoverRefused`, its reason kept) and nothing was
//!   promoted or moved: it is listed, with its reason, but no failover happened, so it is
//!   never a false one.
//! - **Window**: `[t − 1 s, t]`, both ends included ([`WINDOW`]).
//! - **Health** (`false_failover`), from the in-region health probe
//!   ([`HealthSample`](crate::history::HealthSample): `SELECT 1` against `R`'s database from
//!   inside `R`, every 100 ms, giving up after 250 ms; `at_ns` is when a check was sent):
//!   among `R`'s samples sent in the window, `Some(false)` (not false) when any is not ok;
//!   otherwise `Some(true)` — a **false failover** — when there are at least
//!   [`MIN_SAMPLES`] (3), all ok; otherwise `None`, not measured (fewer than 3 samples: old
//!   runs, a stack without the probe, an episode without a region). Never a made-up verdict.
//! - **Fault in effect**: a `FaultStarted` whose time span — from its start to its own
//!   `FaultHealed` (same index) or the `Healed` event, whichever comes first after it, or
//!   to the end of the run — overlaps the window (starts at or before `t` and is not healed
//!   at or before `t − 1 s`). The window, not the instant `t`, so a fault healed while the
//!   controller's last checks were still timing out still counts.
//! - **Touches the primary or the path to it**: the fault has `hits_primary` (the harness
//!   knew it took the primary down or cut the controller off), or its description names
//!   `R`'s database or region or a link to them: the node `R-db` (kill or pause), `kill
//!   region R`, a link ending in `-to-R-db` (the other region's monitor or app path), a
//!   `replication…` link (the primary's own WAL stream: with synchronous commits, cutting it
//!   stalls the primary), or every link between `R` and another region (`R↔X`, `X↔R`, also
//!   written `<->`). For an episode without a region only `hits_primary` counts.
//! - **Causes**: the faults in effect that touch, in start order. None: the episode is
//!   **unprovoked** (reported as cause "none"), whatever its health verdict. Both flags are
//!   reported; only the health verdict decides "false".
//! - **End of the episode** (`end_ms`): the first `FaultHealed` (any fault) or `Healed`
//!   event strictly after `t`, or the next episode's start if that comes first; `None` when
//!   neither exists: the episode lasts to the end of the run.
//! - **Cost** (computed for every episode; shown for false ones): `failed_ops` /
//!   `unknown_ops`, the operations (any region, any kind) invoked at or after `t` and before
//!   the end (every one invoked from `t` on when the end is the run's) that ended `fail` /
//!   `unknown`; `split_brain_writes`, the split-brain writes of [`super::split_brain`]
//!   within the episode: `ok` writes committed by `R` invoked strictly after the episode's
//!   first `Promoted` and before its end — `None` when nothing was promoted (evacuations in
//!   active-active promote nothing) or writes do not say which database committed them.
//! - **Counts**: `failovers` episodes, `count` false ones (`false_failover` = true and not
//!   refused), `failed`, `refused`, `unprovoked`, `not_measured` (`false_failover` = None). Episodes in time
//!   order; times in ms.
//!
//! # Why one second
//! The built-in controller declares a primary down after `threshold` consecutive misses
//! `interval` apart, so its first miss is at least `interval × (threshold − 1)` before the
//! declaration, and the primary has been unreachable from the controller since then. A
//! primary really down (killed, paused) fails the in-region probe from then on too: as long
//! as that span is at least one probe period (100 ms) — any sane setting — the window holds
//! failed in-region checks, and the failover is not called false. One second holds about
//! ten samples, so a missing sample or two does not make the verdict unknown.
//!
//! Limitations: with `interval` above 1 s the controller's last miss can start before the
//! window, so a primary that was down only then and answering again throughout the window
//! is called false. The probe's `SELECT 1` commits nothing: a primary that answers but
//! cannot commit (synchronous replication cut, disk full) is "healthy" here — the cause
//! column then shows the replication fault. A declaration that a 250 ms in-region timeout
//! does not see (the primary answers in 300 ms) is called false, which it is for users of
//! that region.

use super::rows::{FindingRow, RowContext, dur};
use super::split_brain::old_primary_writes;
use crate::history::{Event, EventKind, History, Nanos, Outcome, Probes, ms};
use serde::{Deserialize, Serialize};

/// How far back from a declaration health samples and faults count: 1 s.
pub const WINDOW: Nanos = 1_000_000_000;

/// The fewest in-region health samples in the window for a verdict on health.
pub const MIN_SAMPLES: usize = 3;

/// The SLO check that judges these findings (`slo.checks[].name`).
pub const CHECK: &str = "false_failovers";

/// Failover findings of the flapping kind (`false_failovers.*` in results.json).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FalseFailovers {
    /// Failover episodes (declarations, and steps recorded without one).
    pub failovers: usize,
    /// Of which false failovers: the primary was healthy in its own region.
    pub count: usize,
    /// Of which had a failed step (`failover_failed`).
    pub failed: usize,
    /// Of which the manager refused: declared down, nothing promoted or moved.
    #[serde(default)]
    pub refused: usize,
    /// Of which had no fault in effect touching the primary or the path to it.
    pub unprovoked: usize,
    /// Of which the primary's health was not measured (fewer than 3 samples in the window).
    pub not_measured: usize,
    /// Every episode, in time order.
    pub episodes: Vec<Episode>,
}

/// One failover episode (`false_failovers.episodes[].*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// When it started: the declaration (or the first step, without one).
    pub at_ms: f64,
    /// The region declared down (None: steps recorded without a declaration).
    pub region: Option<String>,
    /// What the controller did after declaring, in order.
    pub steps: Vec<Step>,
    /// The faults in effect in the window that touched the primary or the path to it, in
    /// start order (empty: unprovoked).
    pub causes: Vec<Cause>,
    /// No fault in effect touched the primary or the path to it.
    pub unprovoked: bool,
    /// In-region health samples of the region in the window.
    pub health_samples: usize,
    /// Of which not ok.
    pub health_failures: usize,
    /// True: a false failover (the primary answered every in-region check in the window);
    /// false: some check failed; None: not measured.
    pub false_failover: Option<bool>,
    /// Whether a step failed.
    pub failed: bool,
    /// Whether the manager refused to fail over (and nothing was promoted or moved).
    #[serde(default)]
    pub refused: bool,
    /// The end of the episode (None: the end of the run).
    pub end_ms: Option<f64>,
    /// Operations invoked in the episode that ended `fail`.
    pub failed_ops: usize,
    /// Operations invoked in the episode that ended `unknown`.
    pub unknown_ops: usize,
    /// Split-brain writes in the episode (None: nothing was promoted, or writes do not say
    /// which database committed them).
    pub split_brain_writes: Option<usize>,
}

/// One step of an episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// When.
    pub at_ms: f64,
    /// What.
    pub step: StepKind,
    /// Fenced: the old primary's region; promoted and rerouted: the new primary's (or where
    /// the users were moved); failed: None.
    pub region: Option<String>,
    /// Failed: what went wrong; refused: the manager's reason.
    pub error: Option<String>,
}

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// The old primary was fenced.
    Fenced,
    /// The replica was promoted.
    Promoted,
    /// Routing was moved (active-active: the region's users were evacuated).
    Rerouted,
    /// A step could not be completed (`failover_failed`).
    Failed,
    /// A real HA manager declined to fail over (`failover_refused`).
    Refused,
}

/// A fault in effect that touched the primary or the path to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cause {
    /// The fault's index in the experiment's schedule.
    pub index: usize,
    /// Its description, e.g. "partition eu-monitor-to-us-db (black hole, both ways)".
    pub fault: String,
    /// When it started.
    pub started_at_ms: f64,
    /// When it was healed (None: not within the run).
    pub healed_at_ms: Option<f64>,
}

/// A fault's span, from the history.
struct Fault<'a> {
    index: usize,
    description: &'a str,
    hits_primary: bool,
    start: Nanos,
    heal: Option<Nanos>,
}

/// An episode while its events are collected.
struct Raw<'a> {
    at: Nanos,
    region: Option<&'a str>,
    steps: Vec<(Nanos, StepKind, Option<&'a str>, Option<&'a str>)>,
}

/// Lists the failover episodes and judges each, as defined in the module docs.
pub fn check(history: &History, probes: &Probes) -> FalseFailovers {
    let mut events: Vec<&Event> = history.events.iter().collect();
    events.sort_by_key(|e| e.at_ns);
    let faults = faults(&events);
    let heals: Vec<Nanos> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::FaultHealed { .. } | EventKind::Healed))
        .map(|e| e.at_ns)
        .collect();

    let mut raws: Vec<Raw> = Vec::new();
    for e in &events {
        let (kind, region, error) = match &e.kind {
            EventKind::PrimaryDeclaredDown { region } => {
                raws.push(Raw {
                    at: e.at_ns,
                    region: Some(region),
                    steps: Vec::new(),
                });
                continue;
            }
            EventKind::Fenced { region } => (StepKind::Fenced, Some(region.as_str()), None),
            EventKind::Promoted { region, from } => {
                if let Some(old) = from {
                    // Observed from outside (a target): no declaration, but each promotion
                    // names the primary it replaced, whose health can be judged.
                    raws.push(Raw {
                        at: e.at_ns,
                        region: Some(old),
                        steps: Vec::new(),
                    });
                }
                (StepKind::Promoted, Some(region.as_str()), None)
            }
            EventKind::Rerouted { region } => (StepKind::Rerouted, Some(region.as_str()), None),
            EventKind::FailoverFailed { error } => (StepKind::Failed, None, Some(error.as_str())),
            EventKind::FailoverRefused { region, reason } => (
                StepKind::Refused,
                Some(region.as_str()),
                Some(reason.as_str()),
            ),
            _ => continue,
        };
        if raws.is_empty() {
            // A refusal names the lost primary's region; other steps do not say whose.
            let lost = (kind == StepKind::Refused).then_some(region).flatten();
            raws.push(Raw {
                at: e.at_ns,
                region: lost,
                steps: Vec::new(),
            });
        }
        let raw = raws.last_mut().expect("an episode");
        raw.steps.push((e.at_ns, kind, region, error));
    }

    let mut out = FalseFailovers::default();
    for (i, raw) in raws.iter().enumerate() {
        let t = raw.at;
        let next = raws.get(i + 1).map(|r| r.at);
        let heal = heals.iter().copied().find(|&h| h > t);
        let end = match (heal, next) {
            (Some(h), Some(n)) => Some(h.min(n)),
            (h, n) => h.or(n),
        };
        let from = t.saturating_sub(WINDOW);
        let causes: Vec<Cause> = faults
            .iter()
            .filter(|f| f.start <= t && f.heal.is_none_or(|h| h > from))
            .filter(|f| f.hits_primary || raw.region.is_some_and(|r| touches(f.description, r)))
            .map(|f| Cause {
                index: f.index,
                fault: f.description.to_owned(),
                started_at_ms: ms(f.start),
                healed_at_ms: f.heal.map(ms),
            })
            .collect();
        let (samples, failures) = match raw.region {
            Some(r) => probes
                .health
                .iter()
                .filter(|s| s.region == r && s.at_ns >= from && s.at_ns <= t)
                .fold((0, 0), |(n, bad), s| (n + 1, bad + usize::from(!s.ok))),
            None => (0, 0),
        };
        let false_failover = if failures > 0 {
            Some(false)
        } else if samples >= MIN_SAMPLES {
            Some(true)
        } else {
            None
        };
        let in_episode = |at: Nanos| at >= t && end.is_none_or(|e| at < e);
        let (mut failed_ops, mut unknown_ops) = (0, 0);
        for op in history.ops.iter().filter(|op| in_episode(op.invoke_ns)) {
            match op.outcome {
                Outcome::Fail { .. } => failed_ops += 1,
                Outcome::Unknown { .. } => unknown_ops += 1,
                Outcome::Ok { .. } => {}
            }
        }
        let promoted_at = raw
            .steps
            .iter()
            .find(|s| s.1 == StepKind::Promoted)
            .map(|s| s.0);
        let split_brain_writes = match (raw.region, promoted_at) {
            (Some(old), Some(p)) => {
                let w = old_primary_writes(history, old, p, end);
                w.attributed.then_some(w.ids.len())
            }
            _ => None,
        };
        let failed = raw.steps.iter().any(|s| s.1 == StepKind::Failed);
        let acted = raw
            .steps
            .iter()
            .any(|s| matches!(s.1, StepKind::Promoted | StepKind::Rerouted));
        let refused = !acted && raw.steps.iter().any(|s| s.1 == StepKind::Refused);
        out.episodes.push(Episode {
            at_ms: ms(t),
            region: raw.region.map(str::to_owned),
            steps: raw
                .steps
                .iter()
                .map(|&(at, step, region, error)| Step {
                    at_ms: ms(at),
                    step,
                    region: region.map(str::to_owned),
                    error: error.map(str::to_owned),
                })
                .collect(),
            unprovoked: causes.is_empty(),
            causes,
            health_samples: samples,
            health_failures: failures,
            false_failover,
            failed,
            refused,
            end_ms: end.map(ms),
            failed_ops,
            unknown_ops,
            split_brain_writes,
        });
    }
    let episodes = &out.episodes;
    out.failovers = episodes.len();
    out.count = episodes
        .iter()
        .filter(|e| e.false_failover == Some(true) && !e.refused)
        .count();
    out.failed = episodes.iter().filter(|e| e.failed).count();
    out.refused = episodes.iter().filter(|e| e.refused).count();
    out.unprovoked = episodes.iter().filter(|e| e.unprovoked).count();
    out.not_measured = episodes
        .iter()
        .filter(|e| e.false_failover.is_none())
        .count();
    out
}

/// Every fault's span: from its `FaultStarted` to its own `FaultHealed` or the `Healed`
/// event, whichever comes first after it (None: neither), in start order.
fn faults<'a>(events: &[&'a Event]) -> Vec<Fault<'a>> {
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let EventKind::FaultStarted {
            index,
            fault,
            hits_primary,
        } = &e.kind
        else {
            continue;
        };
        let heal = events[i + 1..]
            .iter()
            .find(|h| match &h.kind {
                EventKind::FaultHealed { index: healed, .. } => healed == index,
                EventKind::Healed => true,
                _ => false,
            })
            .map(|h| h.at_ns);
        out.push(Fault {
            index: *index,
            description: fault,
            hits_primary: *hits_primary,
            start: e.at_ns,
            heal,
        });
    }
    out
}

/// Whether a fault's description names `region`'s database or region, or a link to them
/// (see the module docs).
fn touches(description: &str, region: &str) -> bool {
    if description.trim().strip_prefix("kill region ") == Some(region) {
        return true;
    }
    let db = format!("{region}-db");
    let to_db = format!("-to-{region}-db");
    description
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '(' | ')'))
        .any(|word| {
            word == db
                || word.ends_with(&to_db)
                || word.starts_with("replication")
                || word
                    .split_once('↔')
                    .or_else(|| word.split_once("<->"))
                    .is_some_and(|(a, b)| a == region || b == region)
        })
}

/// The headline row "failovers (false / failed)", judged by the `false_failovers` check,
/// and one row per episode in plain words; nothing when there was no failover.
pub fn rows(f: &FalseFailovers, cx: &RowContext) -> Vec<FindingRow> {
    if f.failovers == 0 {
        return Vec::new();
    }
    let mut observed = format!("{} ({} false / {} failed)", f.failovers, f.count, f.failed);
    if f.refused > 0 {
        observed.push_str(&format!(", {} refused by the manager", f.refused));
    }
    if f.not_measured > 0 {
        observed.push_str(&format!(", health not measured for {}", f.not_measured));
    }
    let mut rows = vec![cx.judged("failovers (false / failed)", observed, CHECK)];
    for e in &f.episodes {
        let at = dur(Some(e.at_ms));
        let finding = match &e.region {
            Some(r) => format!("{at}: {r} declared down"),
            None => format!("{at}: failover without a declaration"),
        };
        rows.push(FindingRow::sub(finding, episode_text(e, cx)));
    }
    rows
}

/// What a reader must know first: each false failover, each failover nobody injected a fault
/// for, and each failed failover step, with its time, in plain words.
pub fn alerts(f: &FalseFailovers, cx: &RowContext) -> Vec<String> {
    f.episodes
        .iter()
        .filter(|e| e.false_failover == Some(true) || e.unprovoked || e.failed)
        .map(|e| {
            let what = match (e.false_failover, e.unprovoked) {
                _ if e.refused => "failover refused",
                (Some(true), _) => "false failover",
                (_, true) => "failover with no fault injected",
                _ => "failover",
            };
            let region = e
                .region
                .as_deref()
                .map_or(String::new(), |r| format!(" ({r})"));
            format!(
                "{what} at {}{region}: {}",
                dur(Some(e.at_ms)),
                episode_text(e, cx)
            )
        })
        .collect()
}

/// An episode in plain words: cause; health; steps; cost (false failovers).
fn episode_text(e: &Episode, cx: &RowContext) -> String {
    let mut parts = Vec::new();
    parts.push(match e.causes.as_slice() {
        [] => "no fault in effect (unprovoked)".to_owned(),
        [one] => format!("fault in effect: {}", one.fault),
        many => format!(
            "faults in effect: {}",
            many.iter()
                .map(|c| c.fault.as_str())
                .collect::<Vec<_>>()
                .join(" + ")
        ),
    });
    if let Some(r) = &e.region {
        parts.push(match e.false_failover {
            Some(true) if e.refused => format!("primary healthy in {r}"),
            Some(true) => format!("primary healthy in {r} (false failover)"),
            Some(false) => format!(
                "primary failing in {r} ({} of {} checks failed)",
                e.health_failures, e.health_samples
            ),
            None => format!("primary health in {r} not measured"),
        });
    }
    let promoted = e.steps.iter().any(|s| s.step == StepKind::Promoted);
    for s in &e.steps {
        let at = dur(Some(s.at_ms));
        let region = s.region.as_deref().unwrap_or("?");
        parts.push(match s.step {
            StepKind::Fenced => format!("fenced {region} at {at}"),
            StepKind::Promoted => format!("promoted {region} at {at}"),
            StepKind::Rerouted if cx.posture.is_active_active() && !promoted => {
                format!("users moved to {region} at {at}")
            }
            StepKind::Rerouted => format!("rerouted to {region} at {at}"),
            StepKind::Failed => format!(
                "failover failed at {at}: {}",
                s.error.as_deref().unwrap_or("")
            ),
            StepKind::Refused => format!(
                "failover refused at {at}: {}",
                s.error.as_deref().unwrap_or("")
            ),
        });
    }
    if e.false_failover == Some(true) {
        let until = e
            .end_ms
            .map_or("the end of the run".to_owned(), |end| dur(Some(end)));
        let mut cost = format!(
            "cost until {until}: {} operations failed or unknown",
            e.failed_ops + e.unknown_ops
        );
        if let Some(n) = e.split_brain_writes {
            cost.push_str(&format!(", {n} split-brain writes"));
        }
        parts.push(cost);
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::checker::verdict::{SloCheck, Verdict};
    use crate::history::HealthSample;
    use crate::posture::Posture;

    /// In-region health samples of `region` every 100 ms from `from_ms` to `to_ms`
    /// (inclusive), ok before `fails_from_ms` and failing from it on.
    fn health(region: &str, from_ms: u64, to_ms: u64, fails_from_ms: u64) -> Vec<HealthSample> {
        (from_ms..=to_ms)
            .step_by(100)
            .map(|t| HealthSample {
                at_ns: t * MS,
                region: region.into(),
                ok: t < fails_from_ms,
            })
            .collect()
    }

    fn probes(health: Vec<HealthSample>) -> Probes {
        Probes {
            health,
            ..Probes::default()
        }
    }

    fn declared(at_ms: u64, region: &str) -> Event {
        ev(
            at_ms,
            EventKind::PrimaryDeclaredDown {
                region: region.into(),
            },
        )
    }

    fn promoted(at_ms: u64, region: &str) -> Event {
        ev(
            at_ms,
            EventKind::Promoted {
                region: region.into(),
                from: None,
            },
        )
    }

    fn rerouted(at_ms: u64, region: &str) -> Event {
        ev(
            at_ms,
            EventKind::Rerouted {
                region: region.into(),
            },
        )
    }

    fn failed(at_ms: u64, error: &str) -> Event {
        ev(
            at_ms,
            EventKind::FailoverFailed {
                error: error.into(),
            },
        )
    }

    fn rows_of(f: &FalseFailovers, posture: Posture, checks: Vec<SloCheck>) -> Vec<FindingRow> {
        let slo = Verdict {
            passed: checks.iter().all(|c| c.passed),
            checks,
        };
        rows(f, &RowContext { posture, slo: &slo })
    }

    /// The monitor link cut at 1000 (hits the primary: the controller's path), healed at
    /// 5000; us declared down at 2500, eu promoted 2600, rerouted 2700. us answers every
    /// in-region check (0..6000). Operations: 1 fails at 2000 (before: not a cost); 2 fails
    /// at 2500 (at the declaration: counts), 3 unknown at 3000, 4 ok at 3100, 5 fails at
    /// 5000 (at the heal: after the episode). Writes committed by us: 6 invoked 2600 (at the
    /// promotion: not after it), 7 at 2650 and 8 at 4900 (split brain), 9 at 5100 (after the
    /// episode).
    fn monitor_cut() -> (History, Probes) {
        let h = history(
            vec![
                w(1, "a", 2000, 2001).fail(),
                w(2, "a", 2500, 2501).fail(),
                w(3, "a", 3000, 5000).unknown(),
                w(4, "a", 3100, 3110).committed_by("eu"),
                w(5, "a", 5000, 5001).fail(),
                w(6, "b", 2600, 2610).committed_by("us"),
                w(7, "b", 2650, 2660).committed_by("us"),
                w(8, "b", 4900, 4910).committed_by("us"),
                w(9, "b", 5100, 5110).committed_by("us"),
            ],
            vec![
                fault_described(
                    1000,
                    0,
                    "partition eu-monitor-to-us-db (black hole, both ways)",
                    true,
                ),
                declared(2500, "us"),
                promoted(2600, "eu"),
                rerouted(2700, "eu"),
                heal(5000, 0),
            ],
        );
        (h, probes(health("us", 0, 6000, u64::MAX)))
    }

    /// A target's promotions, observed from outside (no declaration): each opens an episode
    /// for the region it replaced, judged by that region's health before it — a healthy `us`
    /// replaced under a partition is a false failover, a dead one is not.
    #[test]
    fn promotions_observed_from_outside_are_judged_by_the_replaced_primarys_health() {
        let observed = |at_ms: u64, region: &str, from: &str| {
            ev(
                at_ms,
                EventKind::Promoted {
                    region: region.into(),
                    from: Some(from.into()),
                },
            )
        };
        let partition =
            fault_described(1000, 0, "partition us<->eu (black hole, both ways)", false);
        let h = history(vec![], vec![partition.clone(), observed(2500, "eu", "us")]);
        let f = check(&h, &probes(health("us", 0, 6000, u64::MAX)));
        assert_eq!((f.failovers, f.count, f.not_measured), (1, 1, 0));
        assert_eq!(f.episodes[0].region.as_deref(), Some("us"));
        assert_eq!(f.episodes[0].causes.len(), 1);
        let h = history(vec![], vec![partition, observed(2500, "eu", "us")]);
        let f = check(&h, &probes(health("us", 0, 6000, 1800)));
        assert_eq!((f.failovers, f.count, f.not_measured), (1, 0, 0));
        // A failback later is an episode of its own, for the region it replaced.
        let h = history(
            vec![],
            vec![observed(2500, "eu", "us"), observed(9000, "us", "eu")],
        );
        let regions: Vec<_> = check(&h, &Probes::default())
            .episodes
            .iter()
            .map(|e| e.region.clone())
            .collect();
        assert_eq!(regions, [Some("us".to_string()), Some("eu".to_string())]);
    }

    #[test]
    fn a_cut_monitor_link_with_a_healthy_primary_is_a_false_failover() {
        let (h, p) = monitor_cut();
        let f = check(&h, &p);
        // Window [1500, 2500]: samples at 1500, 1600, …, 2500 = 11, all ok.
        assert_eq!(
            f,
            FalseFailovers {
                failovers: 1,
                count: 1,
                failed: 0,
                refused: 0,
                unprovoked: 0,
                not_measured: 0,
                episodes: vec![Episode {
                    at_ms: 2500.0,
                    region: Some("us".into()),
                    steps: vec![
                        Step {
                            at_ms: 2600.0,
                            step: StepKind::Promoted,
                            region: Some("eu".into()),
                            error: None,
                        },
                        Step {
                            at_ms: 2700.0,
                            step: StepKind::Rerouted,
                            region: Some("eu".into()),
                            error: None,
                        },
                    ],
                    causes: vec![Cause {
                        index: 0,
                        fault: "partition eu-monitor-to-us-db (black hole, both ways)".into(),
                        started_at_ms: 1000.0,
                        healed_at_ms: Some(5000.0),
                    }],
                    unprovoked: false,
                    health_samples: 11,
                    health_failures: 0,
                    false_failover: Some(true),
                    failed: false,
                    refused: false,
                    end_ms: Some(5000.0),
                    failed_ops: 1,
                    unknown_ops: 1,
                    split_brain_writes: Some(2),
                }],
            }
        );
        let rows = rows_of(&f, Posture::ActivePassiveAsync, vec![]);
        assert_eq!(
            rows,
            vec![
                FindingRow::info(
                    "failovers (false / failed)",
                    "1 (1 false / 0 failed)".into()
                ),
                FindingRow::sub(
                    "2.50 s: us declared down",
                    "fault in effect: partition eu-monitor-to-us-db (black hole, both ways); \
                     primary healthy in us (false failover); promoted eu at 2.60 s; rerouted \
                     to eu at 2.70 s; cost until 5.00 s: 2 operations failed or unknown, 2 \
                     split-brain writes"
                        .into()
                ),
            ]
        );
    }

    /// Patroni's view lost us at 2500 while us still answered its own checks (its etcd link
    /// was cut at 1000, not us itself), and Patroni refused at 3000: listed with its reason,
    /// counted as refused, never as a false failover (nothing failed over).
    #[test]
    fn a_refused_failover_is_listed_with_its_reason_and_is_never_false() {
        let reason = "DCS unreachable: etcd (in witness) does not answer";
        let h = history(
            vec![],
            vec![
                fault_described(1000, 0, "partition us<->witness (black hole)", false),
                declared(2500, "us"),
                ev(
                    3000,
                    EventKind::FailoverRefused {
                        region: "us".into(),
                        reason: reason.into(),
                    },
                ),
            ],
        );
        let f = check(&h, &probes(health("us", 0, 6000, u64::MAX)));
        assert_eq!((f.failovers, f.count, f.refused), (1, 0, 1));
        let e = &f.episodes[0];
        assert!(e.refused);
        assert_eq!(
            e.false_failover,
            Some(true),
            "the health verdict is still shown"
        );
        assert_eq!(e.steps[0].step, StepKind::Refused);
        assert_eq!(e.steps[0].error.as_deref(), Some(reason));
        let rows = rows_of(&f, Posture::ActivePassiveAsync, vec![]);
        assert_eq!(
            rows[0].observed,
            "1 (0 false / 0 failed), 1 refused by the manager"
        );
        assert!(
            rows[1]
                .observed
                .contains(&format!("failover refused at 3.00 s: {reason}"))
        );
        assert!(
            !rows[1].observed.contains("false failover"),
            "{:?}",
            rows[1]
        );
        let alerts = alerts(
            &f,
            &RowContext {
                posture: Posture::ActivePassiveAsync,
                slo: &Verdict {
                    passed: true,
                    checks: vec![],
                },
            },
        );
        assert!(
            alerts[0].starts_with("failover refused at 2.50 s (us)"),
            "{alerts:?}"
        );
        // Without a declaration (the DCS died with the primary: nobody saw it go), the
        // refusal opens its own episode, in the region it names.
        let h = history(
            vec![],
            vec![ev(
                3000,
                EventKind::FailoverRefused {
                    region: "us".into(),
                    reason: reason.into(),
                },
            )],
        );
        let f = check(&h, &probes(health("us", 0, 6000, 2000)));
        assert_eq!(f.episodes[0].region.as_deref(), Some("us"));
        assert_eq!(f.episodes[0].false_failover, Some(false));
        assert_eq!((f.failovers, f.count, f.refused), (1, 0, 1));
    }

    #[test]
    fn a_killed_region_failing_its_own_checks_is_not_false() {
        // us killed at 1000: in-region checks fail from 1000. Declared at 2500: the window
        // [1500, 2500] has 11 samples, all failing. Fenced us, promoted eu.
        let h = history(
            vec![w(1, "a", 2600, 2601).fail()],
            vec![
                fault_described(1000, 0, "kill region us", true),
                declared(2500, "us"),
                ev(
                    2550,
                    EventKind::Fenced {
                        region: "us".into(),
                    },
                ),
                promoted(2600, "eu"),
                rerouted(2700, "eu"),
            ],
        );
        let f = check(&h, &probes(health("us", 0, 6000, 1000)));
        assert_eq!((f.failovers, f.count, f.not_measured), (1, 0, 0));
        let e = &f.episodes[0];
        assert_eq!(e.false_failover, Some(false));
        assert_eq!((e.health_samples, e.health_failures), (11, 11));
        assert_eq!(e.causes[0].fault, "kill region us");
        assert_eq!(e.causes[0].healed_at_ms, None);
        // Never healed: the episode lasts to the end of the run.
        assert_eq!(e.end_ms, None);
        assert_eq!((e.failed_ops, e.unknown_ops), (1, 0));
        // Writes do not say who committed them: split brain cannot be told.
        assert_eq!(e.split_brain_writes, None);
        assert_eq!(
            rows_of(&f, Posture::ActivePassiveSync, vec![])[1].observed,
            "fault in effect: kill region us; primary failing in us (11 of 11 checks \
             failed); fenced us at 2.55 s; promoted eu at 2.60 s; rerouted to eu at 2.70 s"
        );
        // One failed check is enough, even among healthy ones.
        let mut samples = health("us", 0, 6000, u64::MAX);
        samples[20].ok = false; // at 2000
        let f = check(&h, &probes(samples));
        assert_eq!(f.episodes[0].false_failover, Some(false));
        assert_eq!(f.episodes[0].health_failures, 1);
    }

    #[test]
    fn without_samples_health_is_not_measured() {
        let (h, _) = monitor_cut();
        let f = check(&h, &Probes::default());
        assert_eq!((f.failovers, f.count, f.not_measured), (1, 0, 1));
        assert_eq!(f.episodes[0].false_failover, None);
        assert_eq!(f.episodes[0].health_samples, 0);
        // Two ok samples in the window (2000, 2500) are not enough; samples of eu and
        // outside the window do not count.
        let mut samples = vec![
            HealthSample {
                at_ns: 2000 * MS,
                region: "us".into(),
                ok: true,
            },
            HealthSample {
                at_ns: 2500 * MS,
                region: "us".into(),
                ok: true,
            },
            HealthSample {
                at_ns: 1499 * MS,
                region: "us".into(),
                ok: true,
            },
            HealthSample {
                at_ns: 2501 * MS,
                region: "us".into(),
                ok: true,
            },
        ];
        samples.extend(health("eu", 1500, 2500, u64::MAX));
        let f = check(&h, &probes(samples.clone()));
        assert_eq!(f.episodes[0].false_failover, None);
        assert_eq!(f.episodes[0].health_samples, 2);
        // A third at the window's start (1500) makes it measured: false.
        samples.push(HealthSample {
            at_ns: 1500 * MS,
            region: "us".into(),
            ok: true,
        });
        let f = check(&h, &probes(samples));
        assert_eq!(f.episodes[0].false_failover, Some(true));
        assert_eq!(
            rows_of(
                &check(&h, &Probes::default()),
                Posture::ActivePassiveAsync,
                vec![]
            )[0]
            .observed,
            "1 (0 false / 0 failed), health not measured for 1"
        );
    }

    #[test]
    fn a_failed_step_is_kept_with_its_error() {
        // No fault at all: us declared down at 3670 with a healthy primary; eu promoted at
        // 5830; reconfiguring the eu app failed at 7850. Unprovoked and false and failed.
        let h = history(
            vec![],
            vec![
                declared(3670, "us"),
                promoted(5830, "eu"),
                failed(7850, "reconfiguring the eu app: timed out"),
            ],
        );
        let f = check(&h, &probes(health("us", 0, 9000, u64::MAX)));
        assert_eq!((f.failovers, f.count, f.failed, f.unprovoked), (1, 1, 1, 1));
        let e = &f.episodes[0];
        assert!(e.failed && e.unprovoked && e.causes.is_empty());
        assert_eq!(
            e.steps[1],
            Step {
                at_ms: 7850.0,
                step: StepKind::Failed,
                region: None,
                error: Some("reconfiguring the eu app: timed out".into()),
            }
        );
        let missed = SloCheck {
            name: CHECK.into(),
            stated: "0 (default)".into(),
            observed: "x".into(),
            passed: false,
        };
        let rows = rows_of(&f, Posture::ActivePassiveAsync, vec![missed]);
        assert_eq!(
            (rows[0].stated.as_str(), rows[0].passed),
            ("0 (default)", Some(false))
        );
        assert_eq!(
            rows[1],
            FindingRow::sub(
                "3.67 s: us declared down",
                "no fault in effect (unprovoked); primary healthy in us (false failover); \
                 promoted eu at 5.83 s; failover failed at 7.85 s: reconfiguring the eu app: \
                 timed out; cost until the end of the run: 0 operations failed or unknown"
                    .into()
            )
        );
        // Writes without `committed_by` after the promotion: split brain cannot be told.
        assert_eq!(e.split_brain_writes, None);
    }

    #[test]
    fn an_evacuation_in_active_active_promotes_nothing() {
        // aa-lww: a 3 s latency on every us↔eu link from 1000 (not hitting the primary by
        // the harness's reckoning, but on the controller's path), us declared down at 2500,
        // its users moved to eu at 2510. us healthy in its own region.
        let h = history(
            vec![w(1, "a", 2600, 2700).committed_by("us")],
            vec![
                fault_described(1000, 0, "latency +3s RTT on us↔eu", false),
                declared(2500, "us"),
                rerouted(2510, "eu"),
            ],
        );
        let f = check(&h, &probes(health("us", 0, 6000, u64::MAX)));
        let e = &f.episodes[0];
        assert_eq!((f.count, f.unprovoked), (1, 0));
        assert_eq!(e.causes.len(), 1);
        assert_eq!(e.split_brain_writes, None, "nothing promoted");
        assert_eq!(
            rows_of(&f, Posture::ActiveActiveLww, vec![])[1].observed,
            "fault in effect: latency +3s RTT on us↔eu; primary healthy in us (false \
             failover); users moved to eu at 2.51 s; cost until the end of the run: 0 \
             operations failed or unknown"
        );
    }

    #[test]
    fn causes_are_faults_overlapping_the_window_that_touch_the_primary() {
        // Declared at 5000 (window [4000, 5000]).
        // 0: kill node us-app from 4500 (in effect, does not touch us-db): not a cause.
        // 1: partition eu-app-to-us-db 1000–3900 (healed before the window): not a cause.
        // 2: pause node us-db 3000–4200 (healed inside the window): a cause.
        // 3: latency on us-app-to-eu-db from 4600 (a path to eu's db): not a cause.
        // 4: kill region us from 5001 (after the declaration): not a cause.
        // 5: "fault 5", hits_primary, from 4900: a cause by the flag alone.
        let events = vec![
            fault_described(
                1000,
                1,
                "partition eu-app-to-us-db (refuse, both ways)",
                false,
            ),
            fault_described(3000, 2, "pause node us-db", false),
            heal(3900, 1),
            heal(4200, 2),
            fault_described(4500, 0, "kill node us-app", false),
            fault_described(4600, 3, "latency +1s RTT on us-app-to-eu-db", false),
            fault(4900, 5, true),
            declared(5000, "us"),
            fault_described(5001, 4, "kill region us", true),
        ];
        let f = check(&history(vec![], events), &Probes::default());
        let causes: Vec<usize> = f.episodes[0].causes.iter().map(|c| c.index).collect();
        assert_eq!(causes, vec![2, 5]);
        assert!(!f.episodes[0].unprovoked);
        // Only the faults that touch nothing: unprovoked.
        let events = vec![
            fault_described(4500, 0, "kill node us-app", false),
            fault_described(4600, 3, "clock skew +1s on eu-app", false),
            declared(5000, "us"),
        ];
        let f = check(&history(vec![], events), &Probes::default());
        assert!(f.episodes[0].unprovoked && f.episodes[0].causes.is_empty());
        assert_eq!(f.unprovoked, 1);
    }

    #[test]
    fn descriptions_that_touch_a_region() {
        for (d, touches_us) in [
            ("kill region us", true),
            ("kill region eu", false),
            ("kill node us-db", true),
            ("pause node us-db", true),
            ("kill node eu-db", false),
            ("kill node us-cache", false),
            (
                "partition eu-monitor-to-us-db (black hole, both ways)",
                true,
            ),
            (
                "partition eu-app-to-us-db, eu-users-to-us-app (refuse, one way)",
                true,
            ),
            (
                "partition us-monitor-to-eu-db (black hole, both ways)",
                false,
            ),
            ("partition replication (black hole, both ways)", true),
            ("latency +200ms RTT on replication-to-us", true),
            ("latency +200ms RTT on us↔eu", true),
            ("latency +200ms us<->eu", true),
            ("latency +200ms RTT on eu-users-to-us-app", false),
            ("clock skew +1s on us-app", false),
        ] {
            assert_eq!(touches(d, "us"), touches_us, "{d}");
        }
    }

    #[test]
    fn episodes_end_at_the_next_heal_or_declaration() {
        // Declared at 1000 and 3000 (no heal in between): the first ends at 3000; the second
        // at the Healed event (4000). A step before any declaration opens its own episode.
        // A heal at exactly a declaration does not end it.
        let h = history(
            vec![
                w(1, "a", 2999, 3000).fail(),
                w(2, "a", 3000, 3001).unknown(),
                w(3, "a", 4000, 4001).fail(),
            ],
            vec![
                rerouted(500, "eu"),
                declared(1000, "us"),
                fault_described(1000, 0, "kill node eu-app", false),
                heal(3000, 0),
                declared(3000, "eu"),
                ev(4000, EventKind::Healed),
            ],
        );
        let f = check(&h, &Probes::default());
        let ends: Vec<(f64, Option<String>, Option<f64>)> = f
            .episodes
            .iter()
            .map(|e| (e.at_ms, e.region.clone(), e.end_ms))
            .collect();
        assert_eq!(
            ends,
            vec![
                (500.0, None, Some(1000.0)),
                (1000.0, Some("us".into()), Some(3000.0)),
                (3000.0, Some("eu".into()), Some(4000.0)),
            ]
        );
        let costs: Vec<(usize, usize)> = f
            .episodes
            .iter()
            .map(|e| (e.failed_ops, e.unknown_ops))
            .collect();
        assert_eq!(costs, vec![(0, 0), (1, 0), (0, 1)]);
        assert_eq!(f.failovers, 3);
        assert_eq!(
            rows_of(&f, Posture::ActivePassiveAsync, vec![])[1].finding,
            "500 ms: failover without a declaration"
        );
    }

    #[test]
    fn no_failover_no_rows_and_old_results_still_read() {
        let f = check(
            &history(vec![], vec![fault(100, 0, true)]),
            &Probes::default(),
        );
        assert_eq!(f, FalseFailovers::default());
        assert!(rows_of(&f, Posture::ActivePassiveAsync, vec![]).is_empty());
        let (h, p) = monitor_cut();
        let json = serde_json::to_value(check(&h, &p)).unwrap();
        assert_eq!(json["count"], 1);
        assert_eq!(json["episodes"][0]["steps"][0]["step"], "promoted");
        assert_eq!(json["episodes"][0]["false_failover"], true);
        assert_eq!(json["episodes"][0]["causes"][0]["started_at_ms"], 1000.0);
        let back: FalseFailovers = serde_json::from_value(json).unwrap();
        assert_eq!(back, check(&h, &p));
    }
}
