//! `DELETE /users/{id}`: erasure. Deletes the user's entries from a `writes` log, the `kv`
//! rows they last wrote and their profile, in one transaction per database, then their keys
//! and their profile from the caches (this region's; the other region's too in the
//! `invalidate` and `write-through` modes).
//!
//! - `single-writer`: `writes` and `kv` on the write DB.
//! - `lww`, `crdt`: this region's `writes_{R}` and `kv_{R}` on the write DB. The other
//!   region's tables are the other region's to erase (ask its app too).
//! - `partitioned`: `writes_{H}` and `kv_{H}` on every home database this app has a pool
//!   for, concurrently. If some committed and another failed, the answer is 504 `unknown`
//!   (the erasure is partly done; repeating it is safe).

use axum::Json;
use axum::extract::State;
use deadpool_postgres::Pool;
use serde::Serialize;

use super::{AppState, Param};
use crate::db::Conn;
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::posture::{Posture, Region};

/// `single-writer`, `$1` user id.
const DELETE_WRITES_SQL: &str = "DELETE FROM writes WHERE user_id = $1";
/// `single-writer`, `$1` user id.
const DELETE_KV_SQL: &str = "DELETE FROM kv WHERE user_id = $1 RETURNING key";
/// `single-writer`, `$1` user id.
const DELETE_PROFILE_SQL: &str = "DELETE FROM profiles WHERE user_id = $1";

/// What the erasure removed.
#[derive(Serialize)]
pub struct Erased {
    /// The user erased.
    user: i64,
    /// Rows removed from the `writes` log(s).
    deleted_writes: u64,
    /// Rows removed from `kv` table(s) (keys whose last write there was the user's).
    deleted_keys: u64,
    /// Rows removed from `profiles` table(s).
    deleted_profiles: u64,
}

/// `DELETE /users/{id}`.
pub async fn erase(
    deadline: Deadline,
    State(app): State<AppState>,
    Param(user): Param<i64>,
) -> Result<Json<Erased>, ApiError> {
    let write = || app.db.current().write.clone();
    let targets: Vec<(Pool, &'static str, Option<Region>)> = match app.posture {
        Posture::SingleWriter => vec![(write(), "write db", None)],
        Posture::Lww | Posture::Crdt => vec![(write(), "write db", Some(app.tables()))],
        Posture::Partitioned => app
            .homes
            .all()
            .iter()
            .map(|h| (h.pool.clone(), h.what, Some(h.region)))
            .collect(),
    };
    let results = futures::future::join_all(
        targets
            .iter()
            .map(|(pool, what, home)| erase_on(pool, what, *home, user, deadline)),
    )
    .await;

    let mut deleted_writes = 0;
    let mut deleted_profiles = 0;
    let mut keys: Vec<String> = Vec::new();
    let mut errors: Vec<ApiError> = Vec::new();
    for result in results {
        match result {
            Ok((writes, erased_keys, profiles)) => {
                deleted_writes += writes;
                deleted_profiles += profiles;
                keys.extend(erased_keys);
            }
            Err(e) => errors.push(e),
        }
    }
    // The keys of whatever did commit leave the caches, even when a part failed.
    let deleted_keys = keys.len() as u64;
    keys.sort_unstable();
    keys.dedup();
    if let Err(e) = app.cache.after_erase(keys.iter().map(String::as_str)).await {
        tracing::debug!(user, error = %e, "cache invalidation skipped after an erasure");
    }
    // The profile leaves the caches whether or not a row was deleted here: a cached copy
    // may outlive its row (read before another region's erasure, or refilled from a replica).
    if let Err(e) = app.cache.after_profile_change(user).await {
        tracing::debug!(user, error = %e, "profile invalidation skipped after an erasure");
    }
    if errors.is_empty() {
        return Ok(Json(Erased {
            user,
            deleted_writes,
            deleted_keys,
            deleted_profiles,
        }));
    }
    // Some part failed. If another part deleted rows, the erasure is partly done: neither
    // `fail` nor done. A part that is itself `unknown` wins over `fail` parts.
    let first_unknown = errors
        .iter()
        .position(|e| matches!(e, ApiError::Unknown(_)));
    let error = errors.swap_remove(first_unknown.unwrap_or(0));
    if deleted_writes + deleted_keys + deleted_profiles > 0 {
        return Err(ApiError::Unknown(format!(
            "erasure partly done ({deleted_writes} log entries, {deleted_keys} keys and \
             {deleted_profiles} profiles deleted elsewhere): {error}"
        )));
    }
    Err(error)
}

/// Erases `user` on one database: from `writes`/`kv`/`profiles` (`home` = `None`) or from
/// `writes_{home}`/`kv_{home}`/`profiles_{home}`. Returns the log entries removed, the keys
/// removed and the profile rows removed.
async fn erase_on(
    pool: &Pool,
    what: &'static str,
    home: Option<Region>,
    user: i64,
    deadline: Deadline,
) -> Result<(u64, Vec<String>, u64), ApiError> {
    let (delete_writes_sql, delete_kv_sql, delete_profile_sql) = match home {
        None => (
            DELETE_WRITES_SQL.to_owned(),
            DELETE_KV_SQL.to_owned(),
            DELETE_PROFILE_SQL.to_owned(),
        ),
        Some(h) => (
            format!("DELETE FROM writes_{h} WHERE user_id = $1"),
            format!("DELETE FROM kv_{h} WHERE user_id = $1 RETURNING key"),
            format!("DELETE FROM profiles_{h} WHERE user_id = $1"),
        ),
    };
    let conn = Conn::get(pool, deadline, what).await?;
    let delete_writes = conn.prepare(deadline, &delete_writes_sql).await?;
    let delete_kv = conn.prepare(deadline, &delete_kv_sql).await?;
    let delete_profile = conn.prepare(deadline, &delete_profile_sql).await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&user];
    let (deleted_writes, keys, deleted_profiles) = conn
        .transact(deadline, async {
            futures::try_join!(
                conn.execute(&delete_writes, &params),
                conn.query(&delete_kv, &params),
                conn.execute(&delete_profile, &params),
            )
        })
        .await?;
    conn.release();
    Ok((
        deleted_writes,
        keys.iter().map(|row| row.get(0)).collect(),
        deleted_profiles,
    ))
}
