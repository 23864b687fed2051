//! `GET /health`: 200 when every dependency answers, else 503, with one check per dependency
//! and the role of the read DB. The checks run concurrently, each under its own short timeout.

use std::fmt::Display;
use std::future::Future;
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
    /// One entry per dependency.
    checks: Checks,
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
    let healthy = write_db.ok && read_db.ok && cache.ok;
    let body = Health {
        region: &app.region,
        status: if healthy { "ok" } else { "degraded" },
        role,
        checks: Checks {
            write_db,
            read_db,
            cache,
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
