//! How this instance writes and reads (`--posture`), how it keeps the other region's cache
//! coherent (`--cache-mode`), and the regions that have their own tables (`--regions`).
//!
//! In the active-active postures every database holds one set of tables per region
//! (`kv_us`, `kv_eu`, …). Each table has exactly one writer database, its region's primary;
//! the harness replicates it to every other region's database with PostgreSQL logical
//! replication. So there are no replication loops and no apply conflicts: the app resolves
//! conflicts itself, when it reads, by merging the tables (last write wins by
//! `(hlc, region)`, or a PN-counter sum).

use clap::ValueEnum;

/// The regions that have tables when `--regions` is not given.
pub const DEFAULT_REGIONS: [&str; 2] = ["us", "eu"];

/// `--regions`, set once at start (see [`set_regions`]).
static REGIONS: std::sync::OnceLock<Vec<Region>> = std::sync::OnceLock::new();

/// A region that has tables: one of [`regions`].
pub type Region = &'static str;

/// The regions that have their own tables, in the order given: `--regions`, else
/// [`DEFAULT_REGIONS`]. Table names are built from these (never from request data), and each
/// was checked to be a lower-case letter then lower-case letters or digits, so they are safe
/// to splice into SQL.
pub fn regions() -> &'static [Region] {
    REGIONS.get().map_or(&DEFAULT_REGIONS, Vec::as_slice)
}

/// Sets the regions that have tables, once per process (the schema, every merged read and
/// every table name follow them; a process serves one deployment). Setting the same list
/// again is accepted; the default needs no setting.
pub fn set_regions(list: &[String]) -> anyhow::Result<()> {
    for r in list {
        let mut chars = r.chars();
        anyhow::ensure!(
            chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "--regions: {r:?} is not a region name (a lower-case letter, then lower-case letters \
             or digits: it names tables)"
        );
    }
    anyhow::ensure!(
        (2..=5).contains(&list.len()),
        "--regions: {} regions; give 2 to 5",
        list.len()
    );
    anyhow::ensure!(
        list.iter().enumerate().all(|(i, r)| !list[..i].contains(r)),
        "--regions: a region is given twice"
    );
    if list
        .iter()
        .map(String::as_str)
        .eq(regions().iter().copied())
    {
        return Ok(());
    }
    let leaked: Vec<Region> = list
        .iter()
        .map(|r| &*Box::leak(r.clone().into_boxed_str()))
        .collect();
    REGIONS
        .set(leaked)
        .map_err(|_| anyhow::anyhow!("--regions: the regions were already set to others"))
}

/// `name` as one of [`regions`], if it is one.
pub fn known_region(name: &str) -> Option<Region> {
    regions().iter().copied().find(|r| *r == name)
}

/// Every region of [`regions`] but `region`, in order.
pub fn others(region: Region) -> impl Iterator<Item = Region> {
    regions().iter().copied().filter(move |r| *r != region)
}

/// The latest row of a key among `others`' tables `{table}_{region}` (columns `cols`, plus
/// `hlc` and `region`): the last-write-wins order of every merged read, `(hlc, region)` with
/// region names compared bytewise. `$1` is the key.
pub fn latest_of(table: &str, cols: &str, others: &[Region]) -> String {
    let branches: Vec<String> = others
        .iter()
        .map(|r| format!("SELECT {cols}, hlc, '{r}' AS region FROM {table}_{r} WHERE key = $1"))
        .collect();
    format!(
        "SELECT {cols}, hlc, region FROM ({}) AS candidates ORDER BY hlc DESC, region COLLATE \"C\" DESC LIMIT 1",
        branches.join(" UNION ALL ")
    )
}

/// Whether `region` wins a last-write-wins tie (equal `hlc`) against `other`: the greater
/// region name wins, compared bytewise (as `COLLATE "C"` does in the merged reads).
pub fn wins_ties(region: &str, other: &str) -> bool {
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
        assert_eq!(others("us").collect::<Vec<_>>(), ["eu"]);
        assert_eq!(others("eu").collect::<Vec<_>>(), ["us"]);
        assert!(wins_ties("us", "eu"));
        assert!(!wins_ties("eu", "us"));
    }

    #[test]
    fn region_lists_are_checked_before_anything_is_set() {
        let bad = |l: &[&str]| {
            let l: Vec<String> = l.iter().map(|r| r.to_string()).collect();
            set_regions(&l).unwrap_err().to_string()
        };
        assert!(bad(&["us", "EU"]).contains("\"EU\" is not a region name"));
        assert!(bad(&["us", "eu; DROP TABLE kv"]).contains("is not a region name"));
        assert!(bad(&["us"]).contains("1 regions; give 2 to 5"));
        assert!(bad(&["us", "eu", "us"]).contains("given twice"));
        // Nothing was set: the default pair still holds.
        assert_eq!(regions(), DEFAULT_REGIONS);
    }

    #[test]
    fn the_latest_other_row_is_ordered_as_every_merged_read() {
        assert_eq!(
            latest_of("kv", "key", &["eu", "ap"]),
            "SELECT key, hlc, region FROM (SELECT key, hlc, 'eu' AS region FROM kv_eu WHERE key = $1 \
             UNION ALL SELECT key, hlc, 'ap' AS region FROM kv_ap WHERE key = $1) AS candidates \
             ORDER BY hlc DESC, region COLLATE \"C\" DESC LIMIT 1"
        );
    }
}
