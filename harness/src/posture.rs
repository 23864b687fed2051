//! Postures: how the two regions are wired, and what each promises.
//!
//! - `single-region`: everything in `us`; `eu` users cross the link to reach it. A region
//!   loss is a total outage.
//! - `active-passive-*`: a primary in `us`, a streaming replica in `eu`. Each region's app
//!   reads from its own Redis and its own database (so `eu` reads may be stale) and writes to
//!   the primary (so `eu` writes cross the link). The replication mode decides what a commit
//!   waits for: `async` nothing remote, `semi-sync` the replica having written the WAL
//!   (`synchronous_commit = remote_write`), `sync` the replica having applied it
//!   (`remote_apply`, so a read on the replica right after the commit sees it).

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
}

impl Posture {
    /// Every posture, in the order tables list them.
    pub const ALL: &'static [Posture] = &[
        Posture::SingleRegion,
        Posture::ActivePassiveAsync,
        Posture::ActivePassiveSemiSync,
        Posture::ActivePassiveSync,
    ];

    /// The name used in experiment files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Posture::SingleRegion => "single-region",
            Posture::ActivePassiveAsync => "active-passive-async",
            Posture::ActivePassiveSemiSync => "active-passive-semi-sync",
            Posture::ActivePassiveSync => "active-passive-sync",
        }
    }

    /// Parses [`Posture::name`].
    pub fn parse(s: &str) -> Option<Posture> {
        Posture::ALL.iter().copied().find(|p| p.name() == s)
    }

    /// Whether the standby region runs a replica (and an app and a cache).
    pub fn has_standby(self) -> bool {
        !matches!(self, Posture::SingleRegion)
    }

    /// The primary's `synchronous_commit` and `synchronous_standby_names` (the replica's
    /// `cluster_name` is `standby_name`).
    pub fn commit_settings(self, standby_name: &str) -> (&'static str, String) {
        match self {
            Posture::SingleRegion | Posture::ActivePassiveAsync => ("on", String::new()),
            Posture::ActivePassiveSemiSync => ("remote_write", standby_name.to_string()),
            Posture::ActivePassiveSync => ("remote_apply", standby_name.to_string()),
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
        assert_eq!(Posture::ActivePassiveAsync.commit_settings("eu").1, "");
        assert_eq!(
            Posture::ActivePassiveSemiSync.commit_settings("eu"),
            ("remote_write", "eu".into())
        );
        assert_eq!(
            Posture::ActivePassiveSync.commit_settings("eu"),
            ("remote_apply", "eu".into())
        );
    }
}
