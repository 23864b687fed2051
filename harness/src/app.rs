//! The app's contract as the harness relies on it (the whole HTTP contract is in
//! `stacks/app/README.md`): its command line (`serve`, `migrate`), `/health` for readiness,
//! `/admin/db` to repoint it after a failover, and the tables the final state is read from.
//! A user's own app that honours these can take the sample app's place.

use crate::posture::Posture;
use std::time::Duration;

/// The app's program name (natively found beside the harness or on `PATH`; on `PATH` in
/// its image).
pub const PROGRAM: &str = "regiondrill-app";

/// The path readiness checks `GET`: any answer will do.
pub const HEALTH_PATH: &str = "/health";

/// Knobs the apps get from the experiment.
#[derive(Debug, Clone)]
pub struct AppTuning {
    /// Cache TTL.
    pub cache_ttl: Duration,
    /// Cache TTL jitter.
    pub cache_ttl_jitter: Duration,
    /// How writes reach the other region's cache.
    pub cache_mode: crate::posture::CacheMode,
    /// Concurrent misses of one key share one database read.
    pub single_flight: bool,
    /// Per-request deadline inside the app (kept below the clients' timeout).
    pub request_timeout: Duration,
    /// Nodes started under libfaketime (those the experiment's `clock_skew` faults name).
    pub skewed: std::collections::BTreeSet<crate::stack::topology::NodeId>,
    /// The experiment's regions (`--regions`: the active-active tables, one set per region);
    /// left off the command line when they are the default pair.
    pub regions: Vec<String>,
}

impl AppTuning {
    /// `--regions a,b,c` when the regions are not the app's default pair.
    fn regions_args(&self) -> Vec<String> {
        if self.regions.is_empty() || self.regions == crate::stack::topology::REGIONS {
            return Vec::new();
        }
        vec!["--regions".into(), self.regions.join(",")]
    }
}

/// `regiondrill-app serve`'s settings, all but `--listen` (each backend decides where an
/// app listens).
#[derive(Debug, Clone, PartialEq)]
pub struct ServeArgs {
    /// `--region`: the region it serves.
    pub region: String,
    /// `--posture`: how it writes and reads ([`Posture::app_mode`]).
    pub posture: String,
    /// `--write-db`: where writes go.
    pub write_db: String,
    /// `--read-db`: where reads go.
    pub read_db: String,
    /// `--redis`: its region's cache.
    pub redis: String,
    /// `--remote-redis`: the other region's cache (invalidation, write-through).
    pub remote_redis: Option<String>,
    /// `--home-db region=dsn` (partition by user): each home region's database.
    pub home_dbs: Vec<(String, String)>,
}

impl ServeArgs {
    /// The command-line arguments, with the experiment's tuning.
    pub fn to_args(&self, t: &AppTuning) -> Vec<String> {
        let mut args: Vec<String> = [
            ("--region", self.region.clone()),
            ("--posture", self.posture.clone()),
            ("--write-db", self.write_db.clone()),
            ("--read-db", self.read_db.clone()),
            ("--redis", self.redis.clone()),
            ("--cache-ttl-ms", t.cache_ttl.as_millis().to_string()),
            (
                "--request-timeout-ms",
                t.request_timeout.as_millis().to_string(),
            ),
            ("--cache-mode", t.cache_mode.name().to_string()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v])
        .collect();
        if !t.cache_ttl_jitter.is_zero() {
            args.extend([
                "--cache-ttl-jitter-ms".into(),
                t.cache_ttl_jitter.as_millis().to_string(),
            ]);
        }
        if t.single_flight {
            args.push("--single-flight".into());
        }
        if let Some(remote) = &self.remote_redis {
            args.extend(["--remote-redis".into(), remote.clone()]);
        }
        for (region, dsn) in &self.home_dbs {
            args.extend(["--home-db".into(), format!("{region}={dsn}")]);
        }
        args.extend(t.regions_args());
        args
    }
}

/// `regiondrill-app migrate`: creates the app's tables on the database at `dsn` (those of
/// `t`'s regions).
pub fn migrate_command(dsn: &str, t: &AppTuning) -> Vec<String> {
    let mut argv = vec![
        PROGRAM.into(),
        "migrate".into(),
        "--db".into(),
        dsn.to_string(),
    ];
    argv.extend(t.regions_args());
    argv
}

/// Why repointing an app failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    /// No answer (refused, timed out, cut off).
    #[error("{url}/admin/db: {error}")]
    Unreachable {
        /// The app's base URL.
        url: String,
        /// What the client saw.
        error: String,
    },
    /// It answered with an error status.
    #[error("{status} from {url}/admin/db")]
    Refused {
        /// The app's base URL.
        url: String,
        /// The status.
        status: u16,
    },
}

/// `POST /admin/db`: the app at `url` writes to `write_db` and reads from `read_db` from now
/// on (its connection pools are replaced).
pub async fn repoint(
    http: &reqwest::Client,
    url: &str,
    write_db: &str,
    read_db: &str,
    timeout: Duration,
) -> Result<(), AppError> {
    let body = serde_json::json!({ "write_db": write_db, "read_db": read_db });
    let resp = http
        .post(format!("{url}/admin/db"))
        .json(&body)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| AppError::Unreachable {
            url: url.to_string(),
            error: e.to_string(),
        })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(AppError::Refused {
            url: url.to_string(),
            status: resp.status().as_u16(),
        })
    }
}

/// Whether the app at `127.0.0.1:port` answers `GET /health` (any status) within 1 s.
pub async fn answers(http: &reqwest::Client, port: u16) -> bool {
    http.get(format!("http://127.0.0.1:{port}{HEALTH_PATH}"))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .is_ok()
}

/// The queries that read what the app holds once the run has settled: every write id, each
/// key's winning write id, each counter's value. Active-active: the union of every region's
/// write log (`writes_us`, `writes_eu`, … for `regions`), each key's merged value (the row
/// with the greatest (hlc, region) among every `kv_<region>`: last write wins, as the app
/// reads it, region names compared bytewise), and each counter (PN-counters: Σ(p − n) over
/// every region's component; LWW registers: the greatest-(hlc, region) row).
pub fn final_state_queries(posture: Posture, regions: &[String]) -> [String; 3] {
    if !posture.is_active_active() {
        return [
            "SELECT write_id FROM writes".into(),
            "SELECT key, write_id FROM kv".into(),
            "SELECT key, value FROM counters".into(),
        ];
    }
    let union = |each: &dyn Fn(&str) -> String, op: &str| {
        regions.iter().map(|r| each(r)).collect::<Vec<_>>().join(op)
    };
    let counters = if posture == Posture::ActiveActiveLww {
        format!(
            "SELECT DISTINCT ON (key) key, value FROM ({}) t ORDER BY key, hlc DESC, region COLLATE \"C\" DESC",
            union(
                &|r| format!("SELECT key, value, hlc, '{r}' AS region FROM counter_{r}"),
                " UNION ALL "
            )
        )
    } else {
        format!(
            "SELECT key, SUM(p - n)::bigint FROM ({}) t GROUP BY key",
            union(
                &|r| format!("SELECT key, p, n FROM counter_{r}"),
                " UNION ALL "
            )
        )
    };
    [
        union(&|r| format!("SELECT write_id FROM writes_{r}"), " UNION "),
        format!(
            "SELECT DISTINCT ON (key) key, write_id FROM ({}) t ORDER BY key, hlc DESC, region COLLATE \"C\" DESC",
            union(
                &|r| format!("SELECT key, write_id, hlc, region FROM kv_{r}"),
                " UNION ALL "
            )
        ),
        counters,
    ]
}
