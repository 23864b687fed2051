//! Latency of successful operations, per home region and kind.
//!
//! # Definition
//! Latency = `complete_ns − invoke_ns` as the client saw it (open-loop: queueing in the
//! client counts, as it does for a real user). Only `ok` operations count: a timeout's
//! "latency" is the client's timeout setting, not the system's. A region appears when any of
//! its users invoked an operation; a kind with no `ok` operation has count 0 and null figures.
//! Kinds: `write` (`PUT /kv`), `read` (`GET /kv`), `incr` (`POST /counters/{key}/incr`).

use super::rows::{FindingRow, RowContext, dur};
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

/// Summarises latency per home region.
pub fn check(history: &History) -> Latency {
    // (writes, reads, increments) latencies in ms, per region.
    let mut by_region: FastMap<&str, [Vec<f64>; 3]> = FastMap::default();
    for op in &history.ops {
        let [writes, reads, incrs] = by_region.entry(op.region.as_str()).or_default();
        if !op.outcome.is_ok() {
            continue;
        }
        match op.kind {
            OpKind::Write => writes.push(ms(op.latency_ns())),
            OpKind::Read => reads.push(ms(op.latency_ns())),
            OpKind::Incr => incrs.push(ms(op.latency_ns())),
            // Personal-data operations are measured by the residency and erasure checkers.
            OpKind::ProfileWrite | OpKind::ProfileRead | OpKind::Erase => {}
        }
    }
    by_region
        .into_iter()
        .map(|(region, [mut writes, mut reads, mut incrs])| {
            (
                region.to_owned(),
                RegionLatency {
                    write: LatencySummary::of(&mut writes),
                    read: LatencySummary::of(&mut reads),
                    incr: LatencySummary::of(&mut incrs),
                },
            )
        })
        .collect()
}

/// One row per home region: write and read p50, p99.
pub fn rows(latency: &Latency, _cx: &RowContext) -> Vec<FindingRow> {
    latency
        .iter()
        .map(|(region, lat)| {
            FindingRow::info(
                format!("{region} users: write / read p50, p99"),
                format!(
                    "{} / {}, {} / {}",
                    dur(lat.write.p50_ms),
                    dur(lat.read.p50_ms),
                    dur(lat.write.p99_ms),
                    dur(lat.read.p99_ms)
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

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
    }
}
