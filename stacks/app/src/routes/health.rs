//! `GET /health`: 200 when every dependency answers, else 503, with one check per dependency
//! and the role of the read DB. The checks run concurrently, each under its own short timeout.
//!
//! In `--cache-mode invalidate` a fourth check, `invalidation`, reports the subscription to
//! the other region's invalidations. It does not probe anything (the subscription checks
//! itself in the background) and it does not make `/health` 503: it depends on the *other*
//! region's Redis and the link to it, and a failover controller must not declare this region
//! down because the other one is. With only `invalidation` failing the answer is 200 with
//! `status: degraded`.

use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use deadpool_postgres::Pool;
use serde::Serialize;
use tokio_postgres::SimpleQueryMessage;

use super::AppState;
use crate::db::Conn;
use crate::deadline::Deadline;

/// Budget of each check, connection included.
const CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// The answer.
#[derive(Serialize)]
struct Health<'a> {
    /// This instance's region.
    region: &'a str,
    /// `ok` when every check passed, else `degraded`.
    status: &'static str,
    /// Of the read DB: `primary`, `replica` (in recovery), or `unknown` (it did not answer).
    role: &'static str,
    /// `--posture`.
    posture: &'static str,
    /// `--cache-mode`.
    cache_mode: &'static str,
    /// One entry per dependency.
    checks: Checks,
    /// Counts since start-up.
    stats: Stats,
}

/// Counts since start-up.
#[derive(Serialize)]
struct Stats {
    /// `GET /kv` reads sent to the read DB.
    kv_db_reads: u64,
    /// `GET /kv` misses that joined a read in flight (`--single-flight`).
    single_flight_joins: u64,
    /// Invalidation messages received from the other region (`invalidate` mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    invalidations_received: Option<u64>,
}

/// The dependencies checked.
#[derive(Serialize)]
struct Checks {
    /// `SELECT 1` on the write DB.
    write_db: Check,
    /// `SELECT pg_is_in_recovery()` on the read DB.
    read_db: Check,
    /// `PING` on this region's Redis.
    cache: Check,
    /// `invalidate` mode only: whether the subscription to the other region's invalidations
    /// is up (`ms`: how long it has been in that state; not part of the 200/503 decision).
    #[serde(skip_serializing_if = "Option::is_none")]
    invalidation: Option<Check>,
}

/// The result of one check.
#[derive(Serialize)]
struct Check {
    /// Whether it answered in time.
    ok: bool,
    /// How long it took, in milliseconds, connection included.
    ms: f64,
    /// Why it failed; null when it did not.
    error: Option<String>,
}

/// `GET /health`.
pub async fn health(State(app): State<AppState>) -> Response {
    let pools = app.db.current();
    let deadline = Deadline::after(CHECK_TIMEOUT);
    let ((write_db, _), (read_db, in_recovery), (cache, _)) = tokio::join!(
        timed(probe(&pools.write, deadline, "write db", "SELECT 1")),
        timed(probe(
            &pools.read,
            deadline,
            "read db",
            "SELECT pg_is_in_recovery()"
        )),
        timed(app.cache.ping(deadline)),
    );
    let role = match in_recovery.flatten().as_deref() {
        Some("f") => "primary",
        Some("t") => "replica",
        _ => "unknown",
    };
    let subscription = app.cache.subscription().map(|s| s.status());
    let invalidation = subscription.as_ref().map(|s| Check {
        ok: s.subscribed,
        ms: s.for_time.as_secs_f64() * 1000.0,
        error: s.error.clone(),
    });
    let healthy = write_db.ok && read_db.ok && cache.ok;
    let all_ok = healthy && invalidation.as_ref().is_none_or(|c| c.ok);
    let body = Health {
        region: &app.region,
        status: if all_ok { "ok" } else { "degraded" },
        role,
        posture: app.posture.name(),
        cache_mode: app.cache.mode().name(),
        checks: Checks {
            write_db,
            read_db,
            cache,
            invalidation,
        },
        stats: Stats {
            kv_db_reads: app.stats.kv_db_reads.load(Ordering::Relaxed),
            single_flight_joins: app.stats.single_flight_joins.load(Ordering::Relaxed),
            invalidations_received: subscription.map(|s| s.received),
        },
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Runs one check and times it.
async fn timed<T, E: Display>(check: impl Future<Output = Result<T, E>>) -> (Check, Option<T>) {
    let start = Instant::now();
    let result = check.await;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(value) => (
            Check {
                ok: true,
                ms,
                error: None,
            },
            Some(value),
        ),
        Err(e) => (
            Check {
                ok: false,
                ms,
                error: Some(e.to_string()),
            },
            None,
        ),
    }
}

/// Runs `sql` on a connection from `pool`; returns the first column of the first row as text.
async fn probe(
    pool: &Pool,
    deadline: Deadline,
    what: &'static str,
    sql: &str,
) -> Result<Option<String>, crate::error::ApiError> {
    let conn = Conn::get(pool, deadline, what).await?;
    let messages = conn.step(deadline, conn.simple_query(sql)).await?;
    conn.release();
    Ok(messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    }))
}
