//! `POST /counters/{key}/incr` and `GET /counters/{key}`: counters incremented on the write DB
//! and read from the read DB (0 when absent). Not cached.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{AppState, JsonBody, Param};
use crate::db::Conn;
use crate::deadline::Deadline;
use crate::error::ApiError;

/// `$1` key, `$2` amount.
const INCR_SQL: &str = "
INSERT INTO counters (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = counters.value + EXCLUDED.value
RETURNING value";

/// `$1` key.
const GET_SQL: &str = "SELECT value FROM counters WHERE key = $1";

/// Body of `POST /counters/{key}/incr`; an empty body means `{"by": 1}`.
#[derive(Deserialize)]
pub struct IncrBody {
    /// Amount to add (may be negative).
    #[serde(default = "one")]
    by: i64,
}

/// The default increment.
fn one() -> i64 {
    1
}

/// A counter's value.
#[derive(Serialize)]
struct Counter<'a> {
    /// The counter.
    key: &'a str,
    /// Its value after the increment, or as read.
    value: i64,
    /// The region that served the request.
    region: &'a str,
}

/// `POST /counters/{key}/incr`.
pub async fn incr(
    deadline: Deadline,
    State(app): State<AppState>,
    Param(key): Param<String>,
    JsonBody(body): JsonBody<IncrBody>,
) -> Result<Response, ApiError> {
    let pools = app.db.current();
    let conn = Conn::get(&pools.write, deadline, "write db").await?;
    let statement = conn.prepare(deadline, INCR_SQL).await?;
    let value: i64 = conn
        .transact(deadline, async {
            let row = conn.query_one(&statement, &[&key, &body.by]).await?;
            Ok(row.get(0))
        })
        .await?;
    conn.release();
    Ok(counter(&key, value, &app.region))
}

/// `GET /counters/{key}`.
pub async fn get(
    deadline: Deadline,
    State(app): State<AppState>,
    Param(key): Param<String>,
) -> Result<Response, ApiError> {
    let pools = app.db.current();
    let conn = Conn::get(&pools.read, deadline, "read db").await?;
    let statement = conn.prepare(deadline, GET_SQL).await?;
    let row = conn
        .step(deadline, conn.query_opt(&statement, &[&key]))
        .await?;
    conn.release();
    Ok(counter(&key, row.map_or(0, |row| row.get(0)), &app.region))
}

/// The answer of both routes.
fn counter(key: &str, value: i64, region: &str) -> Response {
    Json(Counter { key, value, region }).into_response()
}
