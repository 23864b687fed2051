//! `DELETE /users/{id}`: erasure. Deletes the user's entries from the `writes` log and the
//! `kv` rows they last wrote, in one transaction on the write DB, then their keys from this
//! region's cache (other regions' caches expire on their own).

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::{AppState, Param};
use crate::db::Conn;
use crate::deadline::Deadline;
use crate::error::ApiError;

/// `$1` user id.
const DELETE_WRITES_SQL: &str = "DELETE FROM writes WHERE user_id = $1";
/// `$1` user id.
const DELETE_KV_SQL: &str = "DELETE FROM kv WHERE user_id = $1 RETURNING key";

/// What the erasure removed.
#[derive(Serialize)]
pub struct Erased {
    /// The user erased.
    user: i64,
    /// Rows removed from the `writes` log.
    deleted_writes: u64,
    /// Rows removed from `kv` (keys whose last write was the user's).
    deleted_keys: u64,
}

/// `DELETE /users/{id}`.
pub async fn erase(
    deadline: Deadline,
    State(app): State<AppState>,
    Param(user): Param<i64>,
) -> Result<Json<Erased>, ApiError> {
    let pools = app.db.current();
    let conn = Conn::get(&pools.write, deadline, "write db").await?;
    let delete_writes = conn.prepare(deadline, DELETE_WRITES_SQL).await?;
    let delete_kv = conn.prepare(deadline, DELETE_KV_SQL).await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&user];
    let (deleted_writes, keys) = conn
        .transact(deadline, async {
            futures::try_join!(
                conn.execute(&delete_writes, &params),
                conn.query(&delete_kv, &params),
            )
        })
        .await?;
    conn.release();

    let keys: Vec<String> = keys.iter().map(|row| row.get(0)).collect();
    if let Err(e) = app.cache.invalidate(keys.iter().map(String::as_str)).await {
        tracing::debug!(user, error = %e, "cache invalidation skipped after an erasure");
    }
    Ok(Json(Erased {
        user,
        deleted_writes,
        deleted_keys: keys.len() as u64,
    }))
}
