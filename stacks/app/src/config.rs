//! The command line. [`ServeArgs`] is what the user typed (every flag also comes from a
//! `REGIONDRILL_APP_*` environment variable); [`ServeConfig`] is the validated, ready-to-run
//! form with durations resolved and DSNs parsed, so a typo fails at start-up naming the flag.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use clap::{Args, Parser, Subcommand};
use redis::IntoConnectionInfo as _;

use crate::db::Dsn;
use crate::posture::{CacheMode, Posture, Region, known_region};

/// `regiondrill-app`: the sample app regiondrill drills.
#[derive(Debug, Parser)]
#[command(name = "regiondrill-app", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The two things the binary does.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API for one region until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Create the schema on a database (idempotent) and exit.
    Migrate(MigrateArgs),
}

/// Flags of `serve`, as typed.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Name of the region this instance serves; echoed in every answer and recorded in the
    /// `writes` log.
    #[arg(long, env = "REGIONDRILL_APP_REGION")]
    pub region: String,
    /// Address to bind, e.g. 127.0.0.1:8080 (port 0 picks a free port; the bound address is
    /// printed as `listening on ADDR`).
    #[arg(long, env = "REGIONDRILL_APP_LISTEN")]
    pub listen: SocketAddr,
    /// PostgreSQL DSN that takes writes (the primary, possibly reached through a proxy).
    #[arg(long, env = "REGIONDRILL_APP_WRITE_DB")]
    pub write_db: String,
    /// PostgreSQL DSN that serves reads (usually this region's replica).
    #[arg(long, env = "REGIONDRILL_APP_READ_DB")]
    pub read_db: String,
    /// This region's Redis, e.g. redis://127.0.0.1:6379.
    #[arg(long, env = "REGIONDRILL_APP_REDIS")]
    pub redis: String,
    /// How long a value read from the DB stays in the cache, in milliseconds.
    #[arg(long, env = "REGIONDRILL_APP_CACHE_TTL_MS", default_value_t = 1000)]
    pub cache_ttl_ms: u64,
    /// Deadline of every request, in milliseconds: no request waits longer on the DB.
    #[arg(
        long,
        env = "REGIONDRILL_APP_REQUEST_TIMEOUT_MS",
        default_value_t = 1500
    )]
    pub request_timeout_ms: u64,
    /// Longest wait for one cache command, in milliseconds; past it the cache is skipped.
    #[arg(long, env = "REGIONDRILL_APP_CACHE_TIMEOUT_MS", default_value_t = 250)]
    pub cache_timeout_ms: u64,
    /// How writes and reads work: `single-writer` (tables kv/writes/counters on --write-db),
    /// or an active-active posture over the per-region tables: `partitioned`, `lww`, `crdt`.
    #[arg(
        long,
        env = "REGIONDRILL_APP_POSTURE",
        value_enum,
        default_value_t = Posture::SingleWriter
    )]
    pub posture: Posture,
    /// `REGION=DSN`, repeatable (in the environment, separate them with `;`): the primary of
    /// each home region, used by `--posture partitioned`.
    #[arg(
        long = "home-db",
        env = "REGIONDRILL_APP_HOME_DB",
        value_delimiter = ';'
    )]
    pub home_db: Vec<String>,
    /// How a write reaches the other region's cache: `ttl` (it does not; entries expire),
    /// `invalidate` (publish the key; the other region deletes it), `write-through` (put the
    /// new value into both caches).
    #[arg(
        long,
        env = "REGIONDRILL_APP_CACHE_MODE",
        value_enum,
        default_value_t = CacheMode::Ttl
    )]
    pub cache_mode: CacheMode,
    /// The regions that have tables (active-active), in order, comma-separated: 2 to 5
    /// names, each a lower-case letter then lower-case letters or digits. Default `us,eu`.
    #[arg(long, env = "REGIONDRILL_APP_REGIONS", value_delimiter = ',')]
    pub regions: Vec<String>,
    /// The other region's Redis (through a link), e.g. redis://127.0.0.1:6380; required by
    /// `--cache-mode invalidate` and `write-through`.
    #[arg(long, env = "REGIONDRILL_APP_REMOTE_REDIS")]
    pub remote_redis: Option<String>,
    /// Each cache SET lives `--cache-ttl-ms` plus or minus a uniform random amount up to this
    /// many milliseconds (never less than 1 ms).
    #[arg(long, env = "REGIONDRILL_APP_CACHE_TTL_JITTER_MS", default_value_t = 0)]
    pub cache_ttl_jitter_ms: u64,
    /// Concurrent cache misses for one key in this process share one DB read (in the
    /// environment: true/false, 1/0, yes/no, on/off).
    #[arg(
        long,
        env = "REGIONDRILL_APP_SINGLE_FLIGHT",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub single_flight: bool,
}

/// `serve`, validated.
#[derive(Debug)]
pub struct ServeConfig {
    /// Region name, non-empty.
    pub region: String,
    /// Address to bind.
    pub listen: SocketAddr,
    /// Where writes go.
    pub write_db: Dsn,
    /// Where reads go.
    pub read_db: Dsn,
    /// This region's Redis.
    pub redis: redis::ConnectionInfo,
    /// Cache entry lifetime.
    pub cache_ttl: Duration,
    /// Per-request deadline.
    pub request_timeout: Duration,
    /// Per-command cache timeout.
    pub cache_timeout: Duration,
    /// How writes and reads work.
    pub posture: Posture,
    /// In the active-active postures, this region's tables: `region` as one of the regions
    /// that have tables. `None` in `single-writer`.
    pub table_region: Option<Region>,
    /// The primary of each home region (`--home-db`), in the order given.
    pub home_dbs: Vec<(Region, Dsn)>,
    /// How a write reaches the other region's cache.
    pub cache_mode: CacheMode,
    /// The other region's Redis, when the cache mode needs it.
    pub remote_redis: Option<redis::ConnectionInfo>,
    /// Largest random change of a cache entry's lifetime, either way.
    pub cache_ttl_jitter: Duration,
    /// Whether concurrent misses for one key share one DB read.
    pub single_flight: bool,
}

impl ServeArgs {
    /// Checks every flag and resolves units; errors name the flag.
    pub fn validate(self) -> anyhow::Result<ServeConfig> {
        ensure!(!self.region.trim().is_empty(), "--region must not be empty");
        if !self.regions.is_empty() {
            crate::posture::set_regions(&self.regions)?;
        }
        ensure!(self.cache_ttl_ms > 0, "--cache-ttl-ms must be at least 1");
        ensure!(
            self.request_timeout_ms > 0,
            "--request-timeout-ms must be at least 1"
        );
        ensure!(
            self.cache_timeout_ms > 0,
            "--cache-timeout-ms must be at least 1"
        );
        let table_region = if self.posture.is_active_active() {
            Some(known_region(&self.region).with_context(|| {
                format!(
                    "--region {:?}: --posture {} needs a region that has tables: {}",
                    self.region,
                    self.posture.name(),
                    crate::posture::regions().join(", ")
                )
            })?)
        } else {
            None
        };
        let mut home_dbs: Vec<(Region, Dsn)> = Vec::new();
        for entry in &self.home_db {
            let (region, dsn) = entry
                .split_once('=')
                .with_context(|| format!("--home-db {entry:?}: expected REGION=DSN"))?;
            let region = known_region(region.trim()).with_context(|| {
                format!(
                    "--home-db {entry:?}: unknown region {region:?} (regions with tables: {})",
                    crate::posture::regions().join(", ")
                )
            })?;
            ensure!(
                home_dbs.iter().all(|(r, _)| *r != region),
                "--home-db: region {region} given twice"
            );
            let dsn = Dsn::parse(dsn).with_context(|| format!("--home-db {region}"))?;
            home_dbs.push((region, dsn));
        }
        if self.posture == Posture::Partitioned {
            ensure!(
                !home_dbs.is_empty(),
                "--home-db: --posture partitioned needs at least one REGION=DSN"
            );
        }
        let remote_redis = self
            .remote_redis
            .as_deref()
            .map(|url| url.into_connection_info().context("--remote-redis"))
            .transpose()?;
        ensure!(
            self.cache_mode == CacheMode::Ttl || remote_redis.is_some(),
            "--remote-redis is required by --cache-mode {}",
            self.cache_mode.name()
        );
        Ok(ServeConfig {
            region: self.region,
            listen: self.listen,
            write_db: Dsn::parse(&self.write_db).context("--write-db")?,
            read_db: Dsn::parse(&self.read_db).context("--read-db")?,
            redis: self
                .redis
                .as_str()
                .into_connection_info()
                .context("--redis")?,
            cache_ttl: Duration::from_millis(self.cache_ttl_ms),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            cache_timeout: Duration::from_millis(self.cache_timeout_ms),
            posture: self.posture,
            table_region,
            home_dbs,
            cache_mode: self.cache_mode,
            remote_redis,
            cache_ttl_jitter: Duration::from_millis(self.cache_ttl_jitter_ms),
            single_flight: self.single_flight,
        })
    }
}

/// Flags of `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// PostgreSQL DSN of the database to create the schema in (the primary).
    #[arg(long, env = "REGIONDRILL_APP_DB")]
    pub db: String,
    /// The regions whose tables it creates, as `serve --regions`. Default `us,eu`.
    #[arg(long, env = "REGIONDRILL_APP_REGIONS", value_delimiter = ',')]
    pub regions: Vec<String>,
}

impl MigrateArgs {
    /// Parses the DSN and sets the regions; the error names the flag.
    pub fn validate(self) -> anyhow::Result<Dsn> {
        if !self.regions.is_empty() {
            crate::posture::set_regions(&self.regions)?;
        }
        Dsn::parse(&self.db).context("--db")
    }
}
