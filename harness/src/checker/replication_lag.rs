//! Replication lag, measured with heartbeats.
//!
//! # Definition
//! A probe writes heartbeat rows on the primary and polls the replica for them. The lag of one
//! heartbeat is `visible_ns − committed_ns`: from the moment the primary's commit returned to
//! the probe to the first poll of the replica that saw the row. It is measured on the
//! harness's one clock, so it is exact up to the poll period ([`ReplicationLag::poll_ms`]):
//! the true lag lies in `(lag − poll_ms, lag]`. Because the commit's return and the replica's
//! apply race, a lag can be slightly negative (the replica applied the row before the
//! primary's reply reached the probe); it is kept as measured rather than clamped to zero.
//!
//! A heartbeat never seen on the replica within the run is counted as `unreplicated` and is
//! not a sample: its lag is unknown (at least the rest of the run), not infinite or zero.
//!
//! With three regions and more every replica is measured on the same heartbeats: the fields
//! are the first replica's (`replica`: the first other region with a database, the
//! synchronous standby of `semi-sync` and `sync`), `others` each further replica's.

use super::rows::{FindingRow, RowContext, dur, to_replica};
use super::{ms_between, quantiles};
use crate::history::{Heartbeat, Probes, ms};
use serde::{Deserialize, Serialize};

/// Heartbeat replication lag (`replication_lag.*` in results.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationLag {
    /// Heartbeats seen on the replica (the samples the percentiles are over).
    pub samples: usize,
    /// Heartbeats never seen on the replica within the run.
    pub unreplicated: usize,
    /// Median lag, nearest rank (None: no sample).
    pub p50_ms: Option<f64>,
    /// 99th percentile lag, nearest rank (None: no sample).
    pub p99_ms: Option<f64>,
    /// Largest lag seen (None: no sample).
    pub max_ms: Option<f64>,
    /// How often the replica was polled: the resolution of every figure above.
    pub poll_ms: f64,
    /// One point per heartbeat seen on the replica, in heartbeat order.
    pub series: Vec<LagPoint>,
    /// The replica's region (absent in results written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Each further replica's lag, in the experiment's region order (three regions and more).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<ReplicationLag>,
}

/// One heartbeat's lag, for the time series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LagPoint {
    /// When the heartbeat was committed on the primary, in ms since the start of the run.
    pub at_ms: f64,
    /// Its lag (visible on the replica − committed), in ms.
    pub lag_ms: f64,
}

/// Measures heartbeat lag from the probes' heartbeats, on every replica.
pub fn check(probes: &Probes) -> ReplicationLag {
    let poll_ms = probes.heartbeat_poll_ms;
    ReplicationLag {
        others: probes
            .other_replicas
            .iter()
            .map(|r| of(&r.heartbeats, poll_ms, Some(r.replica.clone())))
            .collect(),
        ..of(&probes.heartbeats, poll_ms, probes.lag_replica.clone())
    }
}

/// One replica's lag, from its heartbeats.
fn of(heartbeats: &[Heartbeat], poll_ms: f64, replica: Option<String>) -> ReplicationLag {
    let mut series = Vec::with_capacity(heartbeats.len());
    let mut unreplicated = 0;
    for hb in heartbeats {
        match hb.visible_ns {
            Some(visible) => series.push(LagPoint {
                at_ms: ms(hb.committed_ns),
                lag_ms: ms_between(visible, hb.committed_ns),
            }),
            None => unreplicated += 1,
        }
    }
    let mut lags: Vec<f64> = series.iter().map(|p| p.lag_ms).collect();
    let q = quantiles(&mut lags);
    ReplicationLag {
        samples: series.len(),
        unreplicated,
        p50_ms: q.p50,
        p99_ms: q.p99,
        max_ms: q.max,
        poll_ms,
        series,
        replica,
        others: Vec::new(),
    }
}

/// The heartbeat lag row, in postures with a standby; one per replica, each naming it, when
/// there are several.
pub fn rows(l: &ReplicationLag, cx: &RowContext) -> Vec<FindingRow> {
    if !cx.posture.has_standby() {
        return Vec::new();
    }
    let several = !l.others.is_empty();
    std::iter::once(l)
        .chain(&l.others)
        .map(|l| {
            let to = to_replica(l.replica.as_deref(), several);
            let unreplicated = if l.unreplicated > 0 {
                format!(" ({} never replicated)", l.unreplicated)
            } else {
                String::new()
            };
            FindingRow::info(
                format!("replication lag{to} p50 / p99 / max"),
                format!(
                    "{} / {} / {}{unreplicated}",
                    dur(l.p50_ms),
                    dur(l.p99_ms),
                    dur(l.max_ms)
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testkit::MS;
    use super::*;

    fn hb(seq: u64, committed_ms: u64, visible_ms: Option<u64>) -> Heartbeat {
        Heartbeat {
            seq,
            committed_ns: committed_ms * MS,
            visible_ns: visible_ms.map(|v| v * MS),
        }
    }

    #[test]
    fn lag_percentiles_and_series() {
        // Lags: 5, 15, 10, 40 ms; heartbeat 3 never seen.
        // Sorted 5, 10, 15, 40: p50 → rank ceil(2.0) = 2 → 10; p99 → rank ceil(3.96) = 4 → 40.
        let probes = Probes {
            heartbeat_poll_ms: 5.0,
            heartbeats: vec![
                hb(1, 100, Some(105)),
                hb(2, 200, Some(215)),
                hb(3, 300, None),
                hb(4, 400, Some(410)),
                hb(5, 500, Some(540)),
            ],
            replication: vec![],
            ..Probes::default()
        };
        let lag = check(&probes);
        assert_eq!(lag.samples, 4);
        assert_eq!(lag.unreplicated, 1);
        assert_eq!(lag.p50_ms, Some(10.0));
        assert_eq!(lag.p99_ms, Some(40.0));
        assert_eq!(lag.max_ms, Some(40.0));
        assert_eq!(lag.poll_ms, 5.0);
        assert_eq!(
            lag.series,
            vec![
                LagPoint {
                    at_ms: 100.0,
                    lag_ms: 5.0
                },
                LagPoint {
                    at_ms: 200.0,
                    lag_ms: 15.0
                },
                LagPoint {
                    at_ms: 400.0,
                    lag_ms: 10.0
                },
                LagPoint {
                    at_ms: 500.0,
                    lag_ms: 40.0
                },
            ]
        );
    }

    #[test]
    fn every_replica_is_measured_on_the_same_heartbeats_and_named_when_there_are_several() {
        // eu sees heartbeats 1 and 2 after 41 and 45 ms; ap after 92 and 96 ms and never
        // sees 3 (cut off).
        let probes = Probes {
            heartbeat_poll_ms: 5.0,
            heartbeats: vec![
                hb(1, 100, Some(141)),
                hb(2, 150, Some(195)),
                hb(3, 200, Some(240)),
            ],
            lag_replica: Some("eu".into()),
            other_replicas: vec![crate::history::ReplicaProbes {
                replica: "ap".into(),
                heartbeats: vec![
                    hb(1, 100, Some(192)),
                    hb(2, 150, Some(246)),
                    hb(3, 200, None),
                ],
                replication: vec![],
            }],
            ..Probes::default()
        };
        let lag = check(&probes);
        assert_eq!(lag.replica.as_deref(), Some("eu"));
        assert_eq!((lag.p50_ms, lag.max_ms), (Some(41.0), Some(45.0)));
        let [ap] = lag.others.as_slice() else {
            panic!("{:?}", lag.others)
        };
        assert_eq!(ap.replica.as_deref(), Some("ap"));
        assert_eq!((ap.samples, ap.unreplicated), (2, 1));
        assert_eq!((ap.p50_ms, ap.max_ms), (Some(92.0), Some(96.0)));
        assert_eq!(ap.poll_ms, 5.0);
        assert!(ap.others.is_empty());

        let cx = super::super::testkit::cx();
        let shown: Vec<(String, String)> = rows(&lag, &cx)
            .into_iter()
            .map(|r| (r.finding, r.observed))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "replication lag to eu p50 / p99 / max".to_string(),
                    "41 ms / 45 ms / 45 ms".to_string()
                ),
                (
                    "replication lag to ap p50 / p99 / max".to_string(),
                    "92 ms / 96 ms / 96 ms (1 never replicated)".to_string()
                ),
            ]
        );
        // One replica: the row as it always was, whichever region it is.
        let alone = check(&Probes {
            other_replicas: vec![],
            ..probes
        });
        assert_eq!(
            rows(&alone, &cx)[0].finding,
            "replication lag p50 / p99 / max"
        );
    }

    #[test]
    fn nanosecond_lags_are_not_rounded_to_ms() {
        let probes = Probes {
            heartbeat_poll_ms: 1.0,
            heartbeats: vec![Heartbeat {
                seq: 1,
                committed_ns: 1_000_000_000,
                visible_ns: Some(1_000_250_000),
            }],
            replication: vec![],
            ..Probes::default()
        };
        assert_eq!(check(&probes).p50_ms, Some(0.25));
    }

    #[test]
    fn replica_seeing_it_before_the_commit_returned_gives_a_negative_lag() {
        let probes = Probes {
            heartbeat_poll_ms: 1.0,
            heartbeats: vec![hb(1, 10, Some(9))],
            replication: vec![],
            ..Probes::default()
        };
        assert_eq!(check(&probes).max_ms, Some(-1.0));
    }

    #[test]
    fn nothing_replicated_has_no_percentiles() {
        let probes = Probes {
            heartbeat_poll_ms: 10.0,
            heartbeats: vec![hb(1, 10, None), hb(2, 20, None)],
            replication: vec![],
            ..Probes::default()
        };
        let lag = check(&probes);
        assert_eq!((lag.samples, lag.unreplicated), (0, 2));
        assert_eq!((lag.p50_ms, lag.p99_ms, lag.max_ms), (None, None, None));
        assert!(lag.series.is_empty());
    }
}
