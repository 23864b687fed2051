//! How this instance writes and reads (`--posture`), how it keeps the other region's cache
//! coherent (`--cache-mode`), and the regions that have their own tables.
//!
//! In the active-active postures every database holds one set of tables per region
//! (`kv_us`, `kv_eu`, …). Each table has exactly one writer database, its region's primary;
//! the harness replicates it to the other region's database with PostgreSQL logical
//! replication. So there are no replication loops and no apply conflicts: the app resolves
//! conflicts itself, when it reads, by merging the tables (last write wins by
//! `(hlc, region)`, or a PN-counter sum).

use clap::ValueEnum;

/// The regions that have their own tables. Table names are built from these (never from
/// request data), so they are safe to splice into SQL.
pub const REGIONS: [&str; 2] = ["us", "eu"];

/// A region that has tables: one of [`REGIONS`].
pub type Region = &'static str;

/// `name` as one of [`REGIONS`], if it is one.
pub fn known_region(name: &str) -> Option<Region> {
    REGIONS.iter().copied().find(|r| *r == name)
}

/// The region of [`REGIONS`] that is not `region`.
pub fn other_region(region: Region) -> Region {
    if region == REGIONS[0] {
        REGIONS[1]
    } else {
        REGIONS[0]
    }
}

/// Whether `region` wins a last-write-wins tie (equal `hlc`) against `other`: the greater
/// region name wins, compared bytewise (as `COLLATE "C"` does in the merged reads).
pub fn wins_ties(region: Region, other: Region) -> bool {
    region.as_bytes() > other.as_bytes()
}

/// How writes and reads work (`--posture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Posture {
    /// One primary takes every write: tables `kv`, `writes`, `counters` on `--write-db`.
    SingleWriter,
    /// Active-active, partitioned by home region: a write for home `H` goes to `H`'s primary
    /// (`--home-db H=…`), into `kv_H`/`writes_H`; counters are PN-counters in `counter_H`.
    Partitioned,
    /// Active-active, last write wins: a write goes to this region's tables on `--write-db`;
    /// reads take the row with the greatest `(hlc, region)`; counters are LWW registers.
    Lww,
    /// Like `lww` for keys, but counters are PN-counters (one component per region, summed).
    Crdt,
}

impl Posture {
    /// Whether this posture uses the per-region tables.
    pub fn is_active_active(self) -> bool {
        self != Posture::SingleWriter
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Posture::SingleWriter => "single-writer",
            Posture::Partitioned => "partitioned",
            Posture::Lww => "lww",
            Posture::Crdt => "crdt",
        }
    }
}

/// How a write reaches the other region's cache (`--cache-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CacheMode {
    /// The writer deletes its own region's entry; the other region's expires with its TTL.
    Ttl,
    /// The writer also publishes the key on its own Redis; the other region's app, subscribed
    /// to it through the link, deletes its entry when the event arrives.
    Invalidate,
    /// The writer puts the new value into its own Redis and, in the background, into the
    /// other region's Redis.
    WriteThrough,
}

impl CacheMode {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            CacheMode::Ttl => "ttl",
            CacheMode::Invalidate => "invalidate",
            CacheMode::WriteThrough => "write-through",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_pair_up_and_ties_go_to_the_greater_name() {
        assert_eq!(known_region("us"), Some("us"));
        assert_eq!(known_region("US"), None);
        assert_eq!(other_region("us"), "eu");
        assert_eq!(other_region("eu"), "us");
        assert!(wins_ties("us", "eu"));
        assert!(!wins_ties("eu", "us"));
    }
}
