//! The command line. [`ServeArgs`] is what the user typed (every flag also comes from a
//! `REGIONDRILL_APP_*` environment variable); [`ServeConfig`] is the validated, ready-to-run
//! form with durations resolved and DSNs parsed, so a typo fails at start-up naming the flag.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use clap::{Args, Parser, Subcommand};
use redis::IntoConnectionInfo as _;

use crate::db::Dsn;

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
}

impl ServeArgs {
    /// Checks every flag and resolves units; errors name the flag.
    pub fn validate(self) -> anyhow::Result<ServeConfig> {
        ensure!(!self.region.trim().is_empty(), "--region must not be empty");
        ensure!(self.cache_ttl_ms > 0, "--cache-ttl-ms must be at least 1");
        ensure!(
            self.request_timeout_ms > 0,
            "--request-timeout-ms must be at least 1"
        );
        ensure!(
            self.cache_timeout_ms > 0,
            "--cache-timeout-ms must be at least 1"
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
        })
    }
}

/// Flags of `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// PostgreSQL DSN of the database to create the schema in (the primary).
    #[arg(long, env = "REGIONDRILL_APP_DB")]
    pub db: String,
}

impl MigrateArgs {
    /// Parses the DSN; the error names the flag.
    pub fn validate(self) -> anyhow::Result<Dsn> {
        Dsn::parse(&self.db).context("--db")
    }
}
