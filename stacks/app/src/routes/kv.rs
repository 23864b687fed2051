//! `PUT /kv/{key}` and `GET /kv/{key}`: versioned values, written to the write DB with an entry
//! in the `writes` log, read through this region's cache from the read DB.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{AppState, JsonBody, Param, now_ms};
use crate::cache::Entry;
use crate::db::Conn;
use crate::deadline::Deadline;
use crate::error::ApiError;

/// Upserts the row (version 1, or the previous version + 1) and appends the write to the
/// `writes` log with the version it produced, in one statement.
/// `$1` key, `$2` value, `$3` write_id, `$4` user_id, `$5` region.
const PUT_SQL: &str = "
WITH up AS (
    INSERT INTO kv (key, value, version, write_id, user_id, updated_at)
    VALUES ($1, $2, 1, $3, $4, now())
    ON CONFLICT (key) DO UPDATE SET
        value = EXCLUDED.value,
        version = kv.version + 1,
        write_id = EXCLUDED.write_id,
        user_id = EXCLUDED.user_id,
        updated_at = EXCLUDED.updated_at
    RETURNING version
)
INSERT INTO writes (write_id, key, value, version, user_id, region)
SELECT $3, $1, $2, up.version, $4, $5 FROM up
RETURNING version";

/// `$1` key.
const GET_SQL: &str = "SELECT value, version, write_id FROM kv WHERE key = $1";

/// Body of `PUT /kv/{key}`.
#[derive(Deserialize)]
pub struct PutBody {
    /// The new value.
    value: String,
    /// The client's unique id for this write, recorded in the `writes` log.
    write_id: i64,
    /// The user making the write (optional), for erasure.
    #[serde(default)]
    user: Option<i64>,
}

/// The acknowledgement of a committed write.
#[derive(Serialize)]
struct PutAck<'a> {
    /// The key written.
    key: &'a str,
    /// The value written.
    value: &'a str,
    /// The version this write produced.
    version: i64,
    /// The write's id, as sent.
    write_id: i64,
    /// The region that served the write.
    region: &'a str,
    /// The app's wall clock after the commit, in milliseconds since the Unix epoch.
    ts_ms: u64,
}

/// A value found, in the cache or the DB.
#[derive(Serialize)]
struct Found<'a> {
    /// The key read.
    key: &'a str,
    /// Its value.
    value: &'a str,
    /// The version read.
    version: i64,
    /// The write that produced that version.
    write_id: i64,
    /// `cache` or `db`.
    source: &'static str,
    /// The region that served the read.
    region: &'a str,
}

/// No such key in the read DB (absence is never cached).
#[derive(Serialize)]
struct Missing<'a> {
    /// The key read.
    key: &'a str,
    /// Always false.
    found: bool,
    /// Always `db`.
    source: &'static str,
    /// The region that served the read.
    region: &'a str,
}

/// `PUT /kv/{key}`.
pub async fn put(
    deadline: Deadline,
    State(app): State<AppState>,
    Param(key): Param<String>,
    JsonBody(body): JsonBody<PutBody>,
) -> Result<Response, ApiError> {
    let pools = app.db.current();
    let conn = Conn::get(&pools.write, deadline, "write db").await?;
    let statement = conn.prepare(deadline, PUT_SQL).await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [&key, &body.value, &body.write_id, &body.user, &app.region];
    let version: i64 = conn
        .transact(deadline, async {
            let row = conn.query_one(&statement, &params).await?;
            Ok(row.get(0))
        })
        .await?;
    conn.release();

    if let Err(e) = app.cache.invalidate([key.as_str()]).await {
        tracing::debug!(%key, error = %e, "cache invalidation skipped after a write");
    }
    let ack = PutAck {
        key: &key,
        value: &body.value,
        version,
        write_id: body.write_id,
        region: &app.region,
        ts_ms: now_ms(),
    };
    Ok(Json(ack).into_response())
}

/// `GET /kv/{key}`: the cache, else the read DB (then cached).
pub async fn get(
    deadline: Deadline,
    State(app): State<AppState>,
    Param(key): Param<String>,
) -> Result<Response, ApiError> {
    let cache_up = match app.cache.get(&key, deadline).await {
        Ok(Some(hit)) => return Ok(found(&key, &hit, "cache", &app.region)),
        Ok(None) => true,
        Err(e) => {
            tracing::debug!(%key, error = %e, "cache read failed, reading the DB");
            false
        }
    };

    let pools = app.db.current();
    let conn = Conn::get(&pools.read, deadline, "read db").await?;
    let statement = conn.prepare(deadline, GET_SQL).await?;
    let row = conn
        .step(deadline, conn.query_opt(&statement, &[&key]))
        .await?;
    conn.release();

    let Some(row) = row else {
        let missing = Missing {
            key: &key,
            found: false,
            source: "db",
            region: &app.region,
        };
        return Ok((StatusCode::NOT_FOUND, Json(missing)).into_response());
    };
    let entry = Entry {
        value: row.get(0),
        version: row.get(1),
        write_id: row.get(2),
    };
    // Skip the fill when the cache just failed: it would only add another timeout.
    if cache_up && let Err(e) = app.cache.set(&key, &entry, deadline).await {
        tracing::debug!(%key, error = %e, "cache fill skipped");
    }
    Ok(found(&key, &entry, "db", &app.region))
}

/// The 200 answer of a read.
fn found(key: &str, entry: &Entry, source: &'static str, region: &str) -> Response {
    Json(Found {
        key,
        value: &entry.value,
        version: entry.version,
        write_id: entry.write_id,
        source,
        region,
    })
    .into_response()
}
