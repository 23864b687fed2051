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
//! `replay_lag` is PostgreSQL's estimate, reported at the resolution of the replica's
//! feedback messages; the heartbeat measurement ([`super::replication_lag`]) is the exact one.

use super::quantiles;
use super::rows::{FindingRow, RowContext, bytes, dur};
use crate::history::Probes;
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
}

/// Summarises the `pg_stat_replication` samples.
pub fn check(probes: &Probes) -> ReplayLag {
    let mut lags: Vec<f64> = probes
        .replication
        .iter()
        .filter_map(|s| s.replay_lag_ms)
        .collect();
    let q = quantiles(&mut lags);
    ReplayLag {
        samples: lags.len(),
        p50_ms: q.p50,
        p99_ms: q.p99,
        max_ms: q.max,
        max_bytes_behind: probes
            .replication
            .iter()
            .filter_map(|s| s.bytes_behind)
            .max(),
        disconnected_samples: probes.replication.iter().filter(|s| !s.connected).count(),
    }
}

/// PostgreSQL's own figures, as a detail of the replication lag row (postures with a
/// standby).
pub fn rows(p: &ReplayLag, cx: &RowContext) -> Vec<FindingRow> {
    if !cx.posture.has_standby() {
        return Vec::new();
    }
    vec![FindingRow::sub(
        "PostgreSQL replay_lag p99, max behind",
        format!(
            "{}, {}",
            dur(p.p99_ms),
            p.max_bytes_behind.map_or("—".into(), bytes)
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::ReplicationStat;

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
            }
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
            }
        );
    }
}
