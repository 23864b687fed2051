//! Latency of successful operations, per home region and kind.
//!
//! # Definition
//! Latency = `complete_ns − invoke_ns` as the client saw it (open-loop: queueing in the
//! client counts, as it does for a real user). Only `ok` operations count: a timeout's
//! "latency" is the client's timeout setting, not the system's. A region appears when any of
//! its users invoked an operation; a kind with no `ok` operation has count 0 and null figures.
//! Kinds: `write` (`PUT /kv`), `read` (`GET /kv`), `incr` (`POST /counters/{key}/incr`).
//!
//! Write latency per phase (`write_phases`): the same `ok` writes, each in the phase its
//! invoke time falls in — exactly the unavailability checker's phases ([`Phase::of`] with
//! [`phase_bounds`]): `before` the first `FaultStarted`, `fault` from it until the end of the
//! faults (as defined there), `after` the rest. A write invoked just before a fault and
//! acknowledged during it counts as `before`. Phases with no `ok` write are left out (no
//! made-up figures); with no fault at all, every write is `before`, so `write_phases.before`
//! equals `write` (and is absent when no write succeeded).

use super::rows::{FindingRow, RowContext, dur};
use super::unavailability::{Phase, phase_bounds};
use super::{FastMap, quantiles};
use crate::history::{History, OpKind, ms};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Latency findings (`latency.<region>.*` in results.json): per home region.
pub type Latency = BTreeMap<String, RegionLatency>;

/// Latency of one region's successful operations (`latency.<region>.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionLatency {
    /// Successful writes.
    pub write: LatencySummary,
    /// Successful reads.
    pub read: LatencySummary,
    /// Successful counter increments (absent from results written before increments
    /// existed: read as count 0).
    #[serde(default)]
    pub incr: LatencySummary,
    /// Successful writes per phase (`latency.<region>.write_phases.<phase>.*`, phases as in
    /// `unavailability`, by invoke time): only the phases with an `ok` write (absent from
    /// results written before phases were measured, and when the region had no `ok` write).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub write_phases: BTreeMap<Phase, LatencySummary>,
}

/// Latency of one kind of operation (`latency.<region>.<kind>.*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Operations measured.
    pub count: usize,
    /// Median, nearest rank (None: no operation).
    pub p50_ms: Option<f64>,
    /// 99th percentile, nearest rank (None: no operation).
    pub p99_ms: Option<f64>,
    /// Slowest (None: no operation).
    pub max_ms: Option<f64>,
}

impl LatencySummary {
    /// The summary of these latencies in ms (reorders them).
    pub(crate) fn of(values: &mut [f64]) -> LatencySummary {
        let q = quantiles(values);
        LatencySummary {
            count: values.len(),
            p50_ms: q.p50,
            p99_ms: q.p99,
            max_ms: q.max,
        }
    }
}

/// One region's `ok` latencies in ms: ([writes, reads, increments], writes per phase in
/// [`Phase::ALL`] order).
type Measured = ([Vec<f64>; 3], [Vec<f64>; 3]);

/// Summarises latency per home region.
pub fn check(history: &History) -> Latency {
    let bounds = phase_bounds(history);
    let mut by_region: FastMap<&str, Measured> = FastMap::default();
    for op in &history.ops {
        let ([writes, reads, incrs], phases) = by_region.entry(op.region.as_str()).or_default();
        if !op.outcome.is_ok() {
            continue;
        }
        let latency = ms(op.latency_ns());
        match op.kind {
            OpKind::Write => {
                writes.push(latency);
                phases[Phase::of(op.invoke_ns, bounds) as usize].push(latency);
            }
            OpKind::Read => reads.push(latency),
            OpKind::Incr => incrs.push(latency),
            // Personal-data operations are measured by the residency and erasure checkers.
            OpKind::ProfileWrite | OpKind::ProfileRead | OpKind::Erase => {}
        }
    }
    by_region
        .into_iter()
        .map(|(region, ([mut writes, mut reads, mut incrs], phases))| {
            (
                region.to_owned(),
                RegionLatency {
                    write: LatencySummary::of(&mut writes),
                    read: LatencySummary::of(&mut reads),
                    incr: LatencySummary::of(&mut incrs),
                    write_phases: Phase::ALL
                        .into_iter()
                        .zip(phases)
                        .filter(|(_, values)| !values.is_empty())
                        .map(|(phase, mut values)| (phase, LatencySummary::of(&mut values)))
                        .collect(),
                },
            )
        })
        .collect()
}

/// One row per home region: write and read p50, p99. When some region had an `ok` write in
/// the `fault` or `after` phase (the run had a fault), each region's row is followed by its
/// write p50 in every phase any region measured ("—": none of its writes succeeded then).
pub fn rows(latency: &Latency, _cx: &RowContext) -> Vec<FindingRow> {
    let measured: Vec<Phase> = Phase::ALL
        .into_iter()
        .filter(|p| latency.values().any(|l| l.write_phases.contains_key(p)))
        .collect();
    let by_phase = measured.iter().any(|&p| p != Phase::Before);
    let mut rows = Vec::new();
    for (region, lat) in latency {
        rows.push(FindingRow::info(
            format!("{region} users: write / read p50, p99"),
            format!(
                "{} / {}, {} / {}",
                dur(lat.write.p50_ms),
                dur(lat.read.p50_ms),
                dur(lat.write.p99_ms),
                dur(lat.read.p99_ms)
            ),
        ));
        if by_phase {
            let cells: Vec<String> = measured
                .iter()
                .map(|p| {
                    let p50 = lat.write_phases.get(p).and_then(|s| s.p50_ms);
                    format!("{} {}", p.name(), dur(p50))
                })
                .collect();
            rows.push(FindingRow::sub("write p50 by phase", cells.join(" · ")));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::history::EventKind;

    #[test]
    fn ok_operations_only_per_region_and_kind() {
        // us writes ok: 10, 30, 20 ms; a failed write (5 ms) and an unknown one (2000 ms) are
        // left out. Sorted 10, 20, 30: p50 rank 2 → 20; p99 rank 3 → 30.
        // us reads ok: 4 ms. us increments ok: 7, 3 ms (an unknown one left out) → p50 rank 1
        // = 3, p99 rank 2 = 7. eu: one failed read only → region present, counts 0.
        let h = history(
            vec![
                w(1, "a", 0, 10),
                w(2, "a", 100, 130),
                w(3, "a", 200, 220),
                w(4, "a", 300, 305).fail(),
                w(5, "a", 400, 2400).unknown(),
                r(6, "a", 500, 504, Some(3)),
                r(7, "a", 500, 600, None).region("eu").fail(),
                inc(8, "c", 600, 607),
                inc(9, "c", 700, 703),
                inc(10, "c", 800, 900).unknown(),
            ],
            vec![],
        );
        let l = check(&h);
        assert_eq!(
            l["us"],
            RegionLatency {
                write: LatencySummary {
                    count: 3,
                    p50_ms: Some(20.0),
                    p99_ms: Some(30.0),
                    max_ms: Some(30.0),
                },
                read: LatencySummary {
                    count: 1,
                    p50_ms: Some(4.0),
                    p99_ms: Some(4.0),
                    max_ms: Some(4.0),
                },
                incr: LatencySummary {
                    count: 2,
                    p50_ms: Some(3.0),
                    p99_ms: Some(7.0),
                    max_ms: Some(7.0),
                },
                // No fault: every write is "before".
                write_phases: BTreeMap::from([(
                    Phase::Before,
                    LatencySummary {
                        count: 3,
                        p50_ms: Some(20.0),
                        p99_ms: Some(30.0),
                        max_ms: Some(30.0),
                    }
                )]),
            }
        );
        let none = LatencySummary {
            count: 0,
            p50_ms: None,
            p99_ms: None,
            max_ms: None,
        };
        assert_eq!(
            l["eu"],
            RegionLatency {
                write: none.clone(),
                read: none.clone(),
                incr: none,
                write_phases: BTreeMap::new(),
            }
        );
    }

    #[test]
    fn results_without_incr_still_read() {
        let json = serde_json::json!({
            "write": {"count": 1, "p50_ms": 2.0, "p99_ms": 2.0, "max_ms": 2.0},
            "read": {"count": 0, "p50_ms": null, "p99_ms": null, "max_ms": null},
        });
        let l: RegionLatency = serde_json::from_value(json).unwrap();
        assert_eq!(l.incr, LatencySummary::default());
        assert_eq!(l.write.count, 1);
        assert!(l.write_phases.is_empty());
    }

    fn summary(count: usize, p50: f64, p99: f64, max: f64) -> LatencySummary {
        LatencySummary {
            count,
            p50_ms: Some(p50),
            p99_ms: Some(p99),
            max_ms: Some(max),
        }
    }

    /// Fault 0 from 100 to 300 ms (its FaultHealed; Healed only at 900): a quorum-commit
    /// shape, ~80 ms writes before and after, ~180 ms during.
    fn faulted() -> History {
        history(
            vec![
                // us before: 80, 81, and 185 (invoked at 99, acknowledged in the fault: it
                // is "before", by invoke time). Sorted 80, 81, 185: p50 rank 2 = 81, p99
                // rank 3 = 185.
                w(1, "a", 10, 90),
                w(2, "a", 50, 131),
                w(3, "a", 99, 284),
                // us fault: 185 (invoked at 100 = the start), 182, 190, 178 (invoked at
                // 299); a failed write (5 ms), an ok read (500 ms) and an ok increment
                // (400 ms) are not writes. Sorted 178, 182, 185, 190: p50 rank 2 = 182,
                // p99 rank 4 = 190.
                w(4, "a", 100, 285),
                w(5, "a", 150, 332),
                w(6, "a", 200, 390),
                w(7, "a", 250, 255).fail(),
                w(8, "a", 299, 477),
                r(9, "a", 120, 620, Some(1)),
                inc(10, "c", 130, 530),
                // us after: 83 (invoked at 300 = the end), 84 → p50 rank 1 = 83, p99 = 84.
                w(11, "a", 300, 383),
                w(12, "a", 400, 484),
                // eu: one ok write before (90 ms); its writes in the fault failed or ended
                // unknown, and it wrote nothing after → "before" only.
                w(13, "b", 20, 110).region("eu"),
                w(14, "b", 150, 160).region("eu").fail(),
                w(15, "b", 160, 2160).region("eu").unknown(),
            ],
            vec![
                fault(100, 0, true),
                heal(300, 0),
                ev(900, EventKind::Healed),
            ],
        )
    }

    #[test]
    fn write_latency_per_phase_uses_the_unavailability_phases() {
        let h = faulted();
        assert_eq!(phase_bounds(&h), (Some(100 * MS), Some(300 * MS)));
        let l = check(&h);
        assert_eq!(
            l["us"].write_phases,
            BTreeMap::from([
                (Phase::Before, summary(3, 81.0, 185.0, 185.0)),
                (Phase::Fault, summary(4, 182.0, 190.0, 190.0)),
                (Phase::After, summary(2, 83.0, 84.0, 84.0)),
            ])
        );
        // The whole run is unchanged: 9 ok writes, sorted 80 81 83 84 178 182 185 185 190 →
        // p50 rank 5 = 178, p99 rank 9 = 190.
        assert_eq!(l["us"].write, summary(9, 178.0, 190.0, 190.0));
        assert_eq!(
            l["eu"].write_phases,
            BTreeMap::from([(Phase::Before, summary(1, 90.0, 90.0, 90.0))])
        );
        // results.json: `latency.<region>.write_phases.<phase>.*`, phase names as in
        // `unavailability`; written and read back.
        let json = serde_json::to_value(&l).unwrap();
        assert_eq!(json["us"]["write_phases"]["fault"]["p50_ms"], 182.0);
        assert_eq!(json["us"]["write_phases"]["after"]["p99_ms"], 84.0);
        assert_eq!(json["us"]["write_phases"]["before"]["max_ms"], 185.0);
        assert_eq!(json["eu"]["write_phases"].as_object().unwrap().len(), 1);
        let back: Latency = serde_json::from_value(json).unwrap();
        assert_eq!(back, l);
    }

    #[test]
    fn without_a_fault_every_write_is_before_and_no_phase_row() {
        let h = history(
            vec![
                w(1, "a", 0, 80),
                w(2, "a", 100, 182),
                w(3, "a", 200, 210).fail(),
            ],
            vec![],
        );
        let l = check(&h);
        assert_eq!(
            l["us"].write_phases,
            BTreeMap::from([(Phase::Before, summary(2, 80.0, 82.0, 82.0))])
        );
        assert_eq!(l["us"].write_phases[&Phase::Before], l["us"].write);
        let shown = rows(&l, &cx());
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].finding, "us users: write / read p50, p99");
        // A region with no ok write has no phases, and they are not written.
        let l = check(&history(vec![w(1, "a", 0, 80).fail()], vec![]));
        assert!(l["us"].write_phases.is_empty());
        let json = serde_json::to_value(&l).unwrap();
        assert!(json["us"].get("write_phases").is_none(), "{json}");
    }

    #[test]
    fn phase_rows_follow_each_region_when_the_run_had_a_fault() {
        let l = check(&faulted());
        let faulted_rows = rows(&l, &cx());
        let shown: Vec<(&str, bool, &str)> = faulted_rows
            .iter()
            .map(|r| (r.finding.as_str(), r.sub, r.observed.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "eu users: write / read p50, p99",
                    false,
                    "90 ms / —, 90 ms / —"
                ),
                (
                    "write p50 by phase",
                    true,
                    "before 90 ms · fault — · after —"
                ),
                (
                    "us users: write / read p50, p99",
                    false,
                    "178 ms / 500 ms, 190 ms / 500 ms"
                ),
                (
                    "write p50 by phase",
                    true,
                    "before 81 ms · fault 182 ms · after 83 ms"
                ),
            ]
        );
        // A fault never healed: no "after" phase, so none is shown.
        let h = history(
            vec![w(1, "a", 0, 80), w(2, "a", 150, 330)],
            vec![fault(100, 0, true)],
        );
        let unhealed = rows(&check(&h), &cx());
        assert_eq!(unhealed[1].observed, "before 80 ms · fault 180 ms");
    }
}
