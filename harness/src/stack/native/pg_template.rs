//! A cache of empty PostgreSQL clusters, so a run copies a data directory (about 50 ms)
//! instead of running `initdb` (about 0.7 s on two cores, most of a native bring-up).
//!
//! The template for one key — the `initdb` binary (path, size, modification time) and its
//! flags, the settings appended to `postgresql.conf`, and the user it runs as — lives in
//! `<cache>/pg-<hash of the key>/` with the key written beside it (`pg-<hash>.key`).
//! `<cache>` is `$REGIONDRILL_CACHE`, else `$XDG_CACHE_HOME/regiondrill`, else
//! `~/.cache/regiondrill`: a cache like cargo's, safe to delete at any time.
//!
//! Building one: `initdb` into the run's own directory (which an unprivileged PostgreSQL can
//! write), copied into `<cache>/pg-<hash>.tmp-<pid>`, then renamed into place: the rename is
//! atomic, so harnesses building the same template at once never see half of one (the loser
//! of the race removes its copy). A copy is `cp -a`, which keeps the owner and the 0700 mode
//! PostgreSQL insists on.

use super::pg::{self, PgBinaries};
use super::process::RunAs;
use crate::stack::StackError;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// Environment variable overriding where templates are kept.
pub const CACHE_ENV: &str = "REGIONDRILL_CACHE";

/// Where templates are kept.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(CACHE_ENV) {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p).join("regiondrill"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/regiondrill"))
}

/// What a template depends on, as text (written beside it, for whoever looks).
fn key(bins: &PgBinaries, run_as: Option<RunAs>, conf: &[(String, String)]) -> String {
    let initdb = bins.tool("initdb");
    let stamp = std::fs::metadata(&initdb)
        .map(|m| {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            format!("{} bytes, modified {mtime}", m.len())
        })
        .unwrap_or_default();
    let mut key = format!(
        "initdb {} ({stamp}) {}\n",
        initdb.display(),
        crate::postgres::INITDB_FLAGS.join(" ")
    );
    key.push_str(&format!(
        "user {}\n",
        run_as.map_or("self".into(), |u| format!("{}:{}", u.uid, u.gid))
    ));
    for (k, v) in conf {
        key.push_str(&format!("{k} = {v}\n"));
    }
    key
}

/// Fills `data_dir` (which must not exist) with an empty cluster: copied from the cached
/// template, built first when missing. Without a usable cache directory, runs `initdb`
/// into `data_dir` directly.
pub async fn initdb(
    bins: &PgBinaries,
    data_dir: &Path,
    scratch: &Path,
    log: &Path,
    run_as: Option<RunAs>,
    conf: &[(String, String)],
) -> Result<(), StackError> {
    initdb_cached(cache_dir(), bins, data_dir, scratch, log, run_as, conf).await
}

/// [`initdb`] with the cache directory given.
async fn initdb_cached(
    cache: Option<PathBuf>,
    bins: &PgBinaries,
    data_dir: &Path,
    scratch: &Path,
    log: &Path,
    run_as: Option<RunAs>,
    conf: &[(String, String)],
) -> Result<(), StackError> {
    let Some(cache) = cache.filter(|c| std::fs::create_dir_all(c).is_ok()) else {
        return pg::initdb(bins, data_dir, log, run_as, conf).await;
    };
    let key = key(bins, run_as, conf);
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    let template = cache.join(format!("pg-{:016x}", h.finish()));
    if !template.join("PG_VERSION").is_file() {
        build(bins, &template, &key, scratch, log, run_as, conf).await?;
    }
    copy_tree(&template, data_dir, log).await
}

/// Builds `template`: `initdb` in `scratch`, then copied next to `template` and renamed
/// into place.
async fn build(
    bins: &PgBinaries,
    template: &Path,
    key: &str,
    scratch: &Path,
    log: &Path,
    run_as: Option<RunAs>,
    conf: &[(String, String)],
) -> Result<(), StackError> {
    // Unique per build, so concurrent builds (threads or processes) never share a staging copy.
    static BUILDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let staging = template.with_extension(format!("tmp-{}-{n}", std::process::id()));
    let fresh = scratch.join(format!("pg-template-{n}"));
    // A build interrupted at any point (Ctrl-C drops this future) leaves no staging copy.
    let _staging_guard = RemoveOnDrop(staging.clone());
    // Dropped after the interrupted initdb's processes are dead (the awaited future drops
    // first): the shared memory its bootstrap backend left goes too.
    let mut segments_guard = SweepSegmentsOnDrop(Some(run_as.map_or_else(own_uid, |r| r.uid)));
    let initdb = pg::initdb(bins, &fresh, log, run_as, conf).await;
    segments_guard.0 = None;
    initdb?;
    let _ = std::fs::remove_dir_all(&staging);
    copy_tree(&fresh, &staging, log).await?;
    let _ = std::fs::remove_dir_all(&fresh);
    let key_file = template.with_extension("key");
    std::fs::write(&key_file, key).map_err(|e| StackError::io(&key_file, e))?;
    if std::fs::rename(&staging, template).is_err() {
        // Another harness put the same template in place first.
        let _ = std::fs::remove_dir_all(&staging);
        if !template.join("PG_VERSION").is_file() {
            return Err(StackError::io(
                template,
                "could not put the PostgreSQL template in place",
            ));
        }
    }
    Ok(())
}

/// Removes the orphaned PostgreSQL segments of this user when dropped armed.
struct SweepSegmentsOnDrop(Option<u32>);

impl Drop for SweepSegmentsOnDrop {
    fn drop(&mut self) {
        if let Some(uid) = self.0 {
            super::process::remove_orphaned_pg_segments(uid);
        }
    }
}

/// The harness's own user id (the owner of `/proc/self`).
fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}

/// Removes a directory when dropped (if it is still there).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `cp -a from to`: owner, modes and times kept. `cp` runs as a node process does (its own
/// process group, killed with the harness and when this future is dropped), so a Ctrl-C in
/// the middle of a copy leaves no writer behind in the run directory.
async fn copy_tree(from: &Path, to: &Path, log: &Path) -> Result<(), StackError> {
    let args = [std::ffi::OsStr::new("-a"), from.as_os_str(), to.as_os_str()];
    super::process::run_tool(
        "cp",
        Path::new("cp"),
        &args,
        log,
        None,
        std::time::Duration::from_secs(120),
    )
    .await
    .map_err(StackError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_runs_build_one_template_and_each_gets_a_cluster() {
        let Ok(bins) = PgBinaries::find() else {
            println!("SKIPPED: PostgreSQL not installed");
            return;
        };
        let run_as = RunAs::for_postgres();
        let root =
            std::env::temp_dir().join(format!("regiondrill-pgtemplate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // Traversable by an unprivileged PostgreSQL, as a run directory is.
        let traversable_dir = |dir: &Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir_all(dir).unwrap();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        traversable_dir(&root);
        let cache = root.join("cache");
        let conf = crate::postgres::cluster_conf();
        let go = |name: &'static str| {
            let (bins, root, cache, conf) =
                (bins.clone(), root.clone(), cache.clone(), conf.clone());
            async move {
                let scratch = root.join(format!("scratch-{name}"));
                traversable_dir(&scratch);
                let data = scratch.join("db");
                initdb_cached(
                    Some(cache),
                    &bins,
                    &data,
                    &scratch,
                    &scratch.join("log"),
                    run_as,
                    &conf,
                )
                .await
                .unwrap();
                data
            }
        };
        let (a, b) = tokio::join!(go("a"), go("b"));
        let c = go("c").await;
        for data in [&a, &b, &c] {
            assert!(data.join("PG_VERSION").is_file(), "{data:?}");
            let text = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
            assert!(text.contains("wal_level = logical"), "conf appended");
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let meta = std::fs::metadata(data).unwrap();
            assert_eq!(
                meta.permissions().mode() & 0o777,
                0o700,
                "PostgreSQL wants 0700"
            );
            if let Some(u) = run_as {
                assert_eq!(meta.uid(), u.uid);
            }
        }
        let mut entries: Vec<String> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        entries.sort();
        assert_eq!(
            entries.len(),
            2,
            "one template and its key, no staging left: {entries:?}"
        );
        assert!(entries[1].ends_with(".key"), "{entries:?}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_key_names_the_binary_the_user_and_every_setting() {
        let Ok(bins) = PgBinaries::find() else {
            return;
        };
        let conf = vec![("fsync".to_string(), "off".to_string())];
        let k = key(&bins, Some(RunAs { uid: 7, gid: 8 }), &conf);
        assert!(k.contains("initdb /"), "{k}");
        assert!(k.contains("user 7:8"), "{k}");
        assert!(k.contains("fsync = off"), "{k}");
        assert_ne!(k, key(&bins, None, &conf));
        assert_ne!(k, key(&bins, Some(RunAs { uid: 7, gid: 8 }), &[]));
    }
}
