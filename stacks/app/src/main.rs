//! `regiondrill-app`: the sample app regiondrill drills. A small HTTP key-value and counter
//! service over PostgreSQL (a write DB and a read DB) and a Redis cache; one instance runs per
//! emulated region. It is part of the *system under test*: the harness only talks to it over
//! HTTP, so any app that honours the same contract (see `README.md`) can take its place.
//!
//! # Layout
//! - [`config`]: the command line (`serve`, `migrate`), parsed and then validated into a
//!   ready-to-run [`config::ServeConfig`].
//! - [`deadline`]: the per-request deadline every step runs under.
//! - [`db`]: schema and migration, the swappable write/read pools, the connection guard that
//!   discards suspect connections, and the transaction helper that classifies a failed write as
//!   `fail` (certainly not applied) or `unknown` (COMMIT sent, no answer).
//! - [`posture`]: the postures (`--posture`), cache modes (`--cache-mode`) and the regions
//!   that have their own tables in the active-active postures.
//! - [`hlc`]: the hybrid logical clock stamped on active-active writes.
//! - [`cache`]: the per-region Redis read-through cache and what a write does to the other
//!   region's cache; best effort, never fails a request.
//! - [`invalidation`]: the background subscription to the other region's invalidations
//!   (`--cache-mode invalidate`).
//! - [`singleflight`]: coalescing of concurrent cache misses (`--single-flight`).
//! - [`error`]: the API's errors, each with its status code and outcome, rendered in one place.
//! - [`routes`]: the route table and one module per endpoint family (`health`, `kv`, `counters`,
//!   `users`, `admin`).

mod cache;
mod config;
mod db;
mod deadline;
mod error;
mod hlc;
mod invalidation;
mod posture;
mod routes;
mod singleflight;

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;

use anyhow::Context as _;
use axum::serve::ListenerExt as _;
use clap::Parser as _;
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, Command, ServeConfig};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter =
        EnvFilter::try_from_env("REGIONDRILL_APP_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args.validate()?)),
        Command::Migrate(args) => runtime.block_on(db::migrate(&args.validate()?)),
    }
}

/// Binds, announces the address on stdout, and serves until SIGINT or SIGTERM.
async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let db = db::Db::new(&config.write_db, &config.read_db);
    let homes = db::Homes::new(&config.home_dbs);
    let cache = cache::Cache::new(cache::CacheConfig {
        local: config.redis,
        remote: config.remote_redis,
        mode: config.cache_mode,
        ttl: config.cache_ttl,
        ttl_jitter: config.cache_ttl_jitter,
        timeout: config.cache_timeout,
    })?;
    let app = Arc::new(routes::App {
        region: config.region,
        request_timeout: config.request_timeout,
        posture: config.posture,
        table_region: config.table_region,
        db,
        homes,
        cache,
        hlc: hlc::Hlc::new(),
        flights: config
            .single_flight
            .then(|| Arc::new(singleflight::SingleFlight::new())),
        stats: routes::Stats::default(),
    });

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    // Small JSON answers: send them now rather than waiting for Nagle.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {addr}")?;
        stdout.flush()?;
    }

    axum::serve(listener, routes::router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
