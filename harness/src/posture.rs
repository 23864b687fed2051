//! Postures: how the two regions are wired, and what each promises; and how a write reaches
//! the regions' caches ([`CacheMode`]), which is part of the wiring.
//!
//! - `single-region`: everything in `us`; `eu` users cross the link to reach it. A region
//!   loss is a total outage.
//! - `active-passive-*`: a primary in `us`, a streaming replica in `eu` (and in every other
//!   region an experiment names). Each region's app
//!   reads from its own Redis and its own database (so `eu` reads may be stale) and writes to
//!   the primary (so `eu` writes cross the link). The replication mode decides what a commit
//!   waits for: `async` nothing remote, `semi-sync` the replica having written the WAL
//!   (`synchronous_commit = remote_write`), `sync` the replica having applied it
//!   (`remote_apply`, so a read on the replica right after the commit sees it); `quorum` any
//!   one replica having flushed it (`ANY 1 (eu, ap)`: the nearest answers first, so a commit
//!   costs the nearest replica's round trip, not the farthest's).
//! - `active-active-*`: a primary in each region, each region's own tables replicated to the
//!   other by PostgreSQL logical replication (both ways, across the replication links), and
//!   reads merging both regions' tables:
//!   - `partitioned`: every user has a home region and only it writes the user's keys
//!     (travellers' writes are sent home across the link): no conflicts by construction;
//!   - `lww`: both regions write shared keys; a read returns the value with the highest
//!     hybrid-logical-clock timestamp (last write wins — and silently drops the other);
//!     counters are last-write-wins registers too (concurrent increments are lost);
//!   - `crdt`: like `lww` for keys, but counters are PN-counters (one component per region,
//!     summed on read), so no increment is ever lost.

use serde::{Deserialize, Serialize};

/// How the stack is wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Posture {
    /// One region serves everyone; no replica.
    SingleRegion,
    /// Primary + asynchronous streaming replica.
    ActivePassiveAsync,
    /// Primary + replica; commits wait for the replica to write the WAL (`remote_write`).
    ActivePassiveSemiSync,
    /// Primary + replica; commits wait for the replica to apply the WAL (`remote_apply`).
    ActivePassiveSync,
    /// Primary + a replica in every other region; commits wait for any one replica to have
    /// flushed the WAL (`ANY 1 (…)`): the nearest, while it answers.
    ActivePassiveQuorum,
    /// A primary per region; each user's data written only in its home region.
    ActiveActivePartitioned,
    /// A primary per region; shared keys, last write (by HLC) wins.
    ActiveActiveLww,
    /// A primary per region; shared keys by LWW, counters as PN-counters.
    ActiveActiveCrdt,
}

impl Posture {
    /// Every posture, in the order tables list them (quorum last: it matters with three
    /// regions, which the two-region comparison does not have).
    pub const ALL: &'static [Posture] = &[
        Posture::SingleRegion,
        Posture::ActivePassiveAsync,
        Posture::ActivePassiveSemiSync,
        Posture::ActivePassiveSync,
        Posture::ActiveActivePartitioned,
        Posture::ActiveActiveLww,
        Posture::ActiveActiveCrdt,
        Posture::ActivePassiveQuorum,
    ];

    /// The name used in experiment files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Posture::SingleRegion => "single-region",
            Posture::ActivePassiveAsync => "active-passive-async",
            Posture::ActivePassiveSemiSync => "active-passive-semi-sync",
            Posture::ActivePassiveSync => "active-passive-sync",
            Posture::ActivePassiveQuorum => "active-passive-quorum",
            Posture::ActiveActivePartitioned => "active-active-partitioned",
            Posture::ActiveActiveLww => "active-active-lww",
            Posture::ActiveActiveCrdt => "active-active-crdt",
        }
    }

    /// Parses [`Posture::name`].
    pub fn parse(s: &str) -> Option<Posture> {
        Posture::ALL.iter().copied().find(|p| p.name() == s)
    }

    /// Whether the second region runs nodes (a replica or a primary, an app, a cache).
    pub fn has_standby(self) -> bool {
        !matches!(self, Posture::SingleRegion)
    }

    /// Whether both regions run a primary.
    pub fn is_active_active(self) -> bool {
        matches!(
            self,
            Posture::ActiveActivePartitioned | Posture::ActiveActiveLww | Posture::ActiveActiveCrdt
        )
    }

    /// The app's `--posture`: how it writes and reads.
    pub fn app_mode(self) -> &'static str {
        match self {
            Posture::ActiveActivePartitioned => "partitioned",
            Posture::ActiveActiveLww => "lww",
            Posture::ActiveActiveCrdt => "crdt",
            _ => "single-writer",
        }
    }

    /// What the primary's commits wait for, given its standbys (each standby's
    /// `cluster_name` is its region), the synchronous one first.
    pub fn commit_settings(self, standbys: &[String]) -> CommitSettings {
        let first = standbys.first().cloned();
        let (synchronous_commit, waits_for) = match self {
            Posture::ActivePassiveSemiSync => ("remote_write", Vec::from_iter(first)),
            Posture::ActivePassiveSync => ("remote_apply", Vec::from_iter(first)),
            Posture::ActivePassiveQuorum => ("on", standbys.to_vec()),
            _ => ("on", Vec::new()),
        };
        let standby_names = if self == Posture::ActivePassiveQuorum && !waits_for.is_empty() {
            format!("ANY 1 ({})", waits_for.join(", "))
        } else {
            waits_for.join(", ")
        };
        CommitSettings {
            synchronous_commit,
            standby_names,
            waits_for,
        }
    }
}

/// A primary's commit mode: its settings, and the standbys its commits wait for (each must be
/// `sync` or `quorum` in its `pg_stat_replication` before the run starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSettings {
    /// `synchronous_commit`.
    pub synchronous_commit: &'static str,
    /// `synchronous_standby_names`: empty, one standby, or `ANY 1 (…)`.
    pub standby_names: String,
    /// The standbys named there.
    pub waits_for: Vec<String>,
}

/// How a write reaches the caches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheMode {
    /// The writing region drops its own cached copy; the other region's expires with its TTL.
    #[default]
    Ttl,
    /// The writing region also publishes an invalidation event; the other region's app,
    /// subscribed across the link, drops its copy when the event arrives (partitions and
    /// latency delay or lose it).
    Invalidate,
    /// The writing region puts the new value into both regions' caches (the remote one
    /// across the link).
    WriteThrough,
}

impl CacheMode {
    /// The name in experiment files and on the app's command line.
    pub fn name(self) -> &'static str {
        match self {
            CacheMode::Ttl => "ttl",
            CacheMode::Invalidate => "invalidate",
            CacheMode::WriteThrough => "write-through",
        }
    }
}

impl std::fmt::Display for Posture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Posture::ALL {
            assert_eq!(Posture::parse(p.name()), Some(*p));
        }
        assert_eq!(Posture::parse("active-active"), None);
    }

    #[test]
    fn sync_modes_wait_for_the_standby() {
        let two = ["eu".to_string(), "ap".to_string()];
        let settings = |p: Posture, standbys: &[String]| {
            let c = p.commit_settings(standbys);
            (c.synchronous_commit, c.standby_names, c.waits_for)
        };
        assert_eq!(settings(Posture::ActivePassiveAsync, &two).1, "");
        assert_eq!(
            settings(Posture::ActivePassiveSemiSync, &two[..1]),
            ("remote_write", "eu".into(), vec!["eu".to_string()])
        );
        assert_eq!(
            settings(Posture::ActivePassiveSync, &two),
            ("remote_apply", "eu".into(), vec!["eu".to_string()])
        );
        assert_eq!(
            settings(Posture::ActivePassiveQuorum, &two),
            ("on", "ANY 1 (eu, ap)".into(), two.to_vec())
        );
    }
}
