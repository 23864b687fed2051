//! PostgreSQL's own view of replication: `replay_lag` and bytes behind, from the primary's
//! `pg_stat_replication` row for the replica, as sampled by the probe.
//!
//! # Definition
//! - Percentiles are over the samples whose `replay_lag` was not NULL. PostgreSQL reports
//!   NULL when the replica is idle and caught up, or when it does not know; such samples are
//!   not zeros and are left out.
//! - `max_bytes_behind` is the largest `pg_current_wal_lsn() − replay_lsn` seen (None: never
//!   reported).
//! - `disconnected_samples` counts samples taken while the replica had no walsender at all:
//!   during those, neither figure exists, which is itself the finding (a partitioned replica
//!   falls behind without PostgreSQL reporting any lag).
//!
//! With three regions and more, the fields are the first replica's and `others` each further
//! replica's, as for [`super::replication_lag`].
//!
//! `replay_lag` is PostgreSQL's estimate, reported at the resolution of the replica's
//! feedback messages; the heartbeat measurement ([`super::replication_lag`]) is the exact one.

use super::quantiles;
use super::rows::{FindingRow, RowContext, bytes, dur, to_replica};
use crate::history::{Probes, ReplicationStat};
use serde::{Deserialize, Serialize};

/// `pg_stat_replication` figures (`replay_lag.*` in results.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayLag {
    /// Samples with a non-NULL `replay_lag`.
    pub samples: usize,
    /// Median `replay_lag`, nearest rank (None: no sample).
    pub p50_ms: Option<f64>,
    /// 99th percentile `replay_lag`, nearest rank (None: no sample).
    pub p99_ms: Option<f64>,
    /// Largest `replay_lag` (None: no sample).
    pub max_ms: Option<f64>,
    /// Largest WAL distance between the primary and the replica's replay, in bytes.
    pub max_bytes_behind: Option<u64>,
    /// Samples taken while the replica was not connected to the primary.
    pub disconnected_samples: usize,
    /// The replica's region (absent in results written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Each further replica's figures, in the experiment's region order (three regions and
    /// more).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<ReplayLag>,
}

/// Summarises the `pg_stat_replication` samples of every replica.
pub fn check(probes: &Probes) -> ReplayLag {
    ReplayLag {
        others: probes
            .other_replicas
            .iter()
            .map(|r| of(&r.replication, Some(r.replica.clone())))
            .collect(),
        ..of(&probes.replication, probes.lag_replica.clone())
    }
}

/// One replica's figures, from its samples.
fn of(samples: &[ReplicationStat], replica: Option<String>) -> ReplayLag {
    let mut lags: Vec<f64> = samples.iter().filter_map(|s| s.replay_lag_ms).collect();
    let q = quantiles(&mut lags);
    ReplayLag {
        samples: lags.len(),
        p50_ms: q.p50,
        p99_ms: q.p99,
        max_ms: q.max,
        max_bytes_behind: samples.iter().filter_map(|s| s.bytes_behind).max(),
        disconnected_samples: samples.iter().filter(|s| !s.connected).count(),
        replica,
        others: Vec::new(),
    }
}

/// PostgreSQL's own figures, as a detail of the replication lag rows (postures with a
/// standby); one per replica, each naming it, when there are several.
pub fn rows(p: &ReplayLag, cx: &RowContext) -> Vec<FindingRow> {
    if !cx.posture.has_standby() {
        return Vec::new();
    }
    let several = !p.others.is_empty();
    std::iter::once(p)
        .chain(&p.others)
        .map(|p| {
            let to = to_replica(p.replica.as_deref(), several);
            FindingRow::sub(
                format!("PostgreSQL replay_lag{to} p99, max behind"),
                format!(
                    "{}, {}",
                    dur(p.p99_ms),
                    p.max_bytes_behind.map_or("—".into(), bytes)
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(connected: bool, lag: Option<f64>, bytes: Option<u64>) -> ReplicationStat {
        ReplicationStat {
            at_ns: 0,
            connected,
            replay_lag_ms: lag,
            bytes_behind: bytes,
        }
    }

    #[test]
    fn nulls_are_not_zeros() {
        // Non-null lags: 2.0, 8.0, 4.0 → sorted 2, 4, 8: p50 rank ceil(1.5) = 2 → 4;
        // p99 rank ceil(2.97) = 3 → 8. Two disconnected samples, bytes max 4096.
        let probes = Probes {
            heartbeat_poll_ms: 10.0,
            heartbeats: vec![],
            replication: vec![
                stat(true, Some(2.0), Some(0)),
                stat(true, None, Some(128)),
                stat(true, Some(8.0), Some(4096)),
                stat(false, None, None),
                stat(false, None, None),
                stat(true, Some(4.0), None),
            ],
            ..Probes::default()
        };
        assert_eq!(
            check(&probes),
            ReplayLag {
                samples: 3,
                p50_ms: Some(4.0),
                p99_ms: Some(8.0),
                max_ms: Some(8.0),
                max_bytes_behind: Some(4096),
                disconnected_samples: 2,
                replica: None,
                others: Vec::new(),
            }
        );
    }

    #[test]
    fn every_replica_has_its_figures_and_rows_name_them_when_there_are_several() {
        let probes = Probes {
            replication: vec![stat(true, Some(40.0), Some(100))],
            lag_replica: Some("eu".into()),
            other_replicas: vec![crate::history::ReplicaProbes {
                replica: "ap".into(),
                heartbeats: vec![],
                replication: vec![stat(true, Some(90.0), Some(2048)), stat(false, None, None)],
            }],
            ..Probes::default()
        };
        let p = check(&probes);
        assert_eq!((p.replica.as_deref(), p.max_ms), (Some("eu"), Some(40.0)));
        let [ap] = p.others.as_slice() else {
            panic!("{:?}", p.others)
        };
        assert_eq!(ap.replica.as_deref(), Some("ap"));
        assert_eq!(
            (ap.max_ms, ap.max_bytes_behind, ap.disconnected_samples),
            (Some(90.0), Some(2048), 1)
        );
        let cx = RowContext {
            posture: crate::posture::Posture::ActivePassiveQuorum,
            ..super::super::testkit::cx()
        };
        let names: Vec<String> = rows(&p, &cx).into_iter().map(|r| r.finding).collect();
        assert_eq!(
            names,
            [
                "PostgreSQL replay_lag to eu p99, max behind",
                "PostgreSQL replay_lag to ap p99, max behind"
            ]
        );
    }

    #[test]
    fn no_samples() {
        assert_eq!(
            check(&Probes::default()),
            ReplayLag {
                samples: 0,
                p50_ms: None,
                p99_ms: None,
                max_ms: None,
                max_bytes_behind: None,
                disconnected_samples: 0,
                replica: None,
                others: Vec::new(),
            }
        );
    }
}
