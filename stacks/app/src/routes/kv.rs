//! `PUT /kv/{key}` and `GET /kv/{key}`: versioned values, written with an entry in a `writes`
//! log, read through this region's cache.
//!
//! - `single-writer`: tables `kv`/`writes` on the write DB; reads from `kv` on the read DB.
//! - `lww`, `crdt`: this region's tables `kv_{R}`/`writes_{R}` on the write DB (this region's
//!   primary), stamped with the hybrid logical clock.
//! - `partitioned`: the home region's tables `kv_{H}`/`writes_{H}` on that home's primary
//!   (`--home-db H=…`).
//! - In the three active-active postures a read merges `kv_us` and `kv_eu` on the read DB
//!   (both are there: each region's tables are replicated to the other) and returns the row
//!   with the greatest `(hlc, region)`: last write wins, ties to the greater region name.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};

use super::{AppState, JsonBody, Param, now_ms};
use crate::cache::Entry;
use crate::db::Conn;
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::hlc;
use crate::posture::{Posture, Region, latest_of, others, regions, wins_ties};
use crate::singleflight::ReadResult;

/// `single-writer`: upserts the row (version 1, or the previous version + 1) and appends the
/// write to the `writes` log with the version it produced, in one statement; returns the
/// version, the name of the database that ran it (`regiondrill.node` where set — Patroni
/// forces `cluster_name` to its scope on every member — else its `cluster_name`), and the
/// timeline its WAL is being written on (the timeline the write commits on: a promotion
/// starts a new one).
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
RETURNING version,
    coalesce(current_setting('regiondrill.node', true), current_setting('cluster_name')),
    ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int";

/// `single-writer`, `$1` key.
const GET_SQL: &str = "SELECT value, version, write_id FROM kv WHERE key = $1";

/// Active-active: the write of `PUT_SQL` into `home`'s tables, stamped with an HLC. Also
/// returns the `cluster_name` of the database that ran it and the `hlc` and region of the
/// latest of the other regions' rows of the key as that database has them (so the app can
/// observe it, and knows whether this write is now the last-write-wins winner there).
/// `$1` key, `$2` value, `$3` write_id, `$4` user_id, `$5` serving region, `$6` hlc.
fn put_sql(home: Region) -> String {
    let other = latest_of("kv", "key", &others(home).collect::<Vec<_>>());
    format!(
        "
WITH up AS (
    INSERT INTO kv_{home} (key, value, version, write_id, user_id, hlc, region, updated_at)
    VALUES ($1, $2, 1, $3, $4, $6, '{home}', now())
    ON CONFLICT (key) DO UPDATE SET
        value = EXCLUDED.value,
        version = kv_{home}.version + 1,
        write_id = EXCLUDED.write_id,
        user_id = EXCLUDED.user_id,
        hlc = EXCLUDED.hlc,
        updated_at = EXCLUDED.updated_at
    RETURNING version
), logged AS (
    INSERT INTO writes_{home} (write_id, key, value, version, user_id, region, hlc)
    SELECT $3, $1, $2, up.version, $4, $5, $6 FROM up
    RETURNING version
), other AS ({other})
SELECT logged.version, current_setting('cluster_name'), other.hlc, other.region
FROM logged LEFT JOIN other ON true"
    )
}

/// Active-active, `$1` key: the last-write-wins winner among every region's row of the key,
/// by `(hlc, region)` (region names compared bytewise).
fn merged_get_sql() -> String {
    let branches: Vec<String> = regions()
        .iter()
        .map(|r| format!("SELECT value, version, write_id, hlc, region FROM kv_{r} WHERE key = $1"))
        .collect();
    format!(
        "SELECT value, version, write_id, hlc FROM ({}) AS candidates
ORDER BY hlc DESC, region COLLATE \"C\" DESC LIMIT 1",
        branches.join(" UNION ALL ")
    )
}

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
    /// The home region whose primary takes the write (`partitioned` only; default: this
    /// app's region). Ignored by the other postures.
    #[serde(default)]
    home: Option<String>,
}

/// The acknowledgement of a committed write.
#[derive(Serialize)]
struct PutAck<'a> {
    /// The key written.
    key: &'a str,
    /// The value written.
    value: &'a str,
    /// The version this write produced (in the active-active postures, of the home region's
    /// table).
    version: i64,
    /// The write's id, as sent.
    write_id: i64,
    /// The region that served the write.
    region: &'a str,
    /// The app's wall clock after the commit, in milliseconds since the Unix epoch.
    ts_ms: u64,
    /// `cluster_name` of the database that committed the write (read in the same statement),
    /// so a write acknowledged by a deposed primary can be told apart.
    committed_by: String,
    /// The write's hybrid logical clock timestamp (in `single-writer`, the clock's tick at the
    /// acknowledgement; it is stored nowhere).
    hlc: u64,
    /// The region whose tables took the write (active-active postures only).
    #[serde(skip_serializing_if = "Option::is_none")]
    home: Option<Region>,
    /// The PostgreSQL timeline the write committed on (`single-writer` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    timeline: Option<i32>,
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
    /// The row's hybrid logical clock timestamp (active-active postures only).
    #[serde(skip_serializing_if = "Option::is_none")]
    hlc: Option<i64>,
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

/// Where a write goes.
pub(super) struct Target {
    /// The pool of the database that takes it.
    pub(super) pool: Pool,
    /// The pool's name in messages.
    pub(super) what: &'static str,
    /// Whose tables (active-active postures); `None`: `kv`/`writes`.
    pub(super) home: Option<Region>,
}

/// Where `PUT` (and `POST /counters/…/incr`) with this body's `home` goes in `app`'s
/// posture. A `home` without a `--home-db` in `partitioned` is a 400 naming the field.
pub(super) fn target(app: &super::App, home: Option<&str>) -> Result<Target, ApiError> {
    let write = || app.db.current().write.clone();
    Ok(match app.posture {
        Posture::SingleWriter => Target {
            pool: write(),
            what: "write db",
            home: None,
        },
        Posture::Lww | Posture::Crdt => Target {
            pool: write(),
            what: "write db",
            home: Some(app.tables()),
        },
        Posture::Partitioned => {
            let home = home.unwrap_or(&app.region);
            let db = app.homes.get(home).ok_or_else(|| {
                let known: Vec<&str> = app.homes.all().iter().map(|h| h.region).collect();
                ApiError::BadRequest(format!(
                    "invalid JSON body: field `home`: no --home-db for region {home:?} \
                     (homes: {})",
                    known.join(", ")
                ))
            })?;
            Target {
                pool: db.pool.clone(),
                what: db.what,
                home: Some(db.region),
            }
        }
    })
}

/// `PUT /kv/{key}`.
pub async fn put(
    deadline: Deadline,
    State(app): State<AppState>,
    Param(key): Param<String>,
    JsonBody(body): JsonBody<PutBody>,
) -> Result<Response, ApiError> {
    let target = target(&app, body.home.as_deref())?;
    let conn = Conn::get(&target.pool, deadline, target.what).await?;

    let (version, committed_by, hlc, cached, timeline) = match target.home {
        None => {
            let statement = conn.prepare(deadline, PUT_SQL).await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                [&key, &body.value, &body.write_id, &body.user, &app.region];
            let (version, committed_by, timeline): (i64, String, i32) = conn
                .transact(deadline, async {
                    let row = conn.query_one(&statement, &params).await?;
                    Ok((row.get(0), row.get(1), row.get(2)))
                })
                .await?;
            conn.release();
            let cached = Entry {
                value: body.value.clone(),
                version,
                write_id: body.write_id,
                hlc: None,
            };
            (
                version,
                committed_by,
                app.hlc.tick(),
                Some(cached),
                Some(timeline),
            )
        }
        Some(home) => {
            let statement = conn.prepare(deadline, &put_sql(home)).await?;
            let hlc = app.hlc.tick();
            let hlc_i64 = hlc::to_i64(hlc);
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
                &key,
                &body.value,
                &body.write_id,
                &body.user,
                &app.region,
                &hlc_i64,
            ];
            type Answer = (i64, String, Option<i64>, Option<String>);
            let (version, committed_by, other_hlc, other_region): Answer = conn
                .transact(deadline, async {
                    let row = conn.query_one(&statement, &params).await?;
                    Ok((row.get(0), row.get(1), row.get(2), row.get(3)))
                })
                .await?;
            conn.release();
            if let Some(other_hlc) = other_hlc {
                app.hlc.observe_i64(other_hlc);
            }
            // What a read of the committing database now returns: this write, unless another
            // region's row there is newer (then the cache gets no value from us).
            let wins = match (other_hlc, other_region.as_deref()) {
                (Some(other), Some(region)) => {
                    hlc_i64 > other || (hlc_i64 == other && wins_ties(home, region))
                }
                _ => true,
            };
            let cached = wins.then(|| Entry {
                value: body.value.clone(),
                version,
                write_id: body.write_id,
                hlc: Some(hlc_i64),
            });
            (version, committed_by, hlc, cached, None)
        }
    };

    if let Err(e) = app.cache.after_write(&key, cached.as_ref()).await {
        tracing::debug!(%key, error = %e, "cache update skipped after a write");
    }
    let ack = PutAck {
        key: &key,
        value: &body.value,
        version,
        write_id: body.write_id,
        region: &app.region,
        ts_ms: now_ms(),
        committed_by,
        hlc,
        home: target.home,
        timeline,
    };
    Ok(Json(ack).into_response())
}

/// `GET /kv/{key}`: the cache, else the read DB (then cached). With `--single-flight`,
/// concurrent misses of one key share one DB read.
pub async fn get(
    deadline: Deadline,
    State(app): State<AppState>,
    Param(key): Param<String>,
) -> Result<Response, ApiError> {
    let cache_up = match app.cache.get(&key, deadline).await {
        Ok(Some(hit)) => {
            if let Some(hlc) = hit.hlc {
                app.hlc.observe_i64(hlc);
            }
            return Ok(found(&key, &hit, "cache", &app.region));
        }
        Ok(None) => true,
        Err(e) => {
            tracing::debug!(%key, error = %e, "cache read failed, reading the DB");
            false
        }
    };

    let read = read_and_fill(app.clone(), key.clone(), deadline, cache_up);
    let row = match &app.flights {
        None => read.await?,
        Some(flights) => {
            let (result, joined) = deadline.run(flights.run(&key, read)).await.map_err(|_| {
                ApiError::Unavailable("read db: no answer within the deadline".to_owned())
            })?;
            if joined {
                app.stats
                    .single_flight_joins
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            result?
        }
    };

    let Some(entry) = row else {
        let missing = Missing {
            key: &key,
            found: false,
            source: "db",
            region: &app.region,
        };
        return Ok((StatusCode::NOT_FOUND, Json(missing)).into_response());
    };
    Ok(found(&key, &entry, "db", &app.region))
}

/// Reads `key` from the read DB (merging the regions' tables in the active-active postures)
/// and, when found and the cache answered the lookup, caches it. Owns its arguments so that
/// `--single-flight` can run it in a task of its own.
async fn read_and_fill(
    app: AppState,
    key: String,
    deadline: Deadline,
    cache_up: bool,
) -> ReadResult {
    let pools = app.db.current();
    let conn = Conn::get(&pools.read, deadline, "read db").await?;
    let active_active = app.posture.is_active_active();
    let statement = if active_active {
        conn.prepare(deadline, &merged_get_sql()).await?
    } else {
        conn.prepare(deadline, GET_SQL).await?
    };
    app.stats
        .kv_db_reads
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let row = conn
        .step(deadline, conn.query_opt(&statement, &[&key]))
        .await?;
    conn.release();

    let Some(row) = row else {
        return Ok(None);
    };
    let entry = Entry {
        value: row.get(0),
        version: row.get(1),
        write_id: row.get(2),
        hlc: active_active.then(|| row.get(3)),
    };
    if let Some(hlc) = entry.hlc {
        app.hlc.observe_i64(hlc);
    }
    // Skip the fill when the cache just failed: it would only add another timeout.
    if cache_up && let Err(e) = app.cache.set(&key, &entry, deadline).await {
        tracing::debug!(%key, error = %e, "cache fill skipped");
    }
    Ok(Some(entry))
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
        hlc: entry.hlc,
    })
    .into_response()
}
