//! `POST /counters/{key}/incr` and `GET /counters/{key}`: counters incremented on a primary
//! and read from the read DB (0 when absent). Not cached.
//!
//! - `single-writer`: one row per key in `counters` on the write DB.
//! - `crdt`: a PN-counter. Each region increments only its own component, `counter_{R}`
//!   (`p += by` for `by >= 0`, else `n += -by`), on its own primary; the value is the sum of
//!   `p - n` over every region's table. Concurrent increments all count.
//! - `partitioned`: the same PN-counter, in the home region's table `counter_{H}` on that
//!   home's primary (`home` in the body, default this app's region).
//! - `lww`: a last-write-wins register. An increment reads the merged value (the row with the
//!   greatest `(hlc, region)` among the regions' tables, its `value`; 0 if none) and writes
//!   `counter_{R}.value = merged + by` with a new HLC timestamp. Increments made concurrently
//!   in two regions (or on both sides of a partition) overwrite each other: one is lost. That
//!   loss is what the harness must be able to show, so within one region increments are
//!   serialized (the read and the write are one statement under the row lock) and only
//!   cross-region races lose.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::kv::target;
use super::{AppState, JsonBody, Param};
use crate::db::Conn;
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::hlc;
use crate::posture::{Posture, Region, latest_of, others, regions};

/// `single-writer`, `$1` key, `$2` amount.
const INCR_SQL: &str = "
INSERT INTO counters (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = counters.value + EXCLUDED.value
RETURNING value";

/// `single-writer`, `$1` key.
const GET_SQL: &str = "SELECT value FROM counters WHERE key = $1";

/// PN-counter increment of `home`'s component; returns the sum over every region's table as
/// the committing database has it, and its `cluster_name`.
/// `$1` key, `$2` added to `p`, `$3` added to `n`, `$4` hlc.
fn pn_incr_sql(home: Region) -> String {
    let others: String = others(home)
        .map(|o| format!(" + COALESCE((SELECT p - n FROM counter_{o} WHERE key = $1), 0)"))
        .collect();
    format!(
        "
WITH up AS (
    INSERT INTO counter_{home} AS c (key, p, n, value, hlc) VALUES ($1, $2::bigint, $3::bigint, $2::bigint - $3::bigint, $4)
    ON CONFLICT (key) DO UPDATE SET
        p = c.p + EXCLUDED.p,
        n = c.n + EXCLUDED.n,
        value = c.value + EXCLUDED.value,
        hlc = EXCLUDED.hlc
    RETURNING p - n AS mine
)
SELECT up.mine{others},
    current_setting('cluster_name')
FROM up"
    )
}

/// LWW register increment in `home`'s table: `merged + by`, where merged is the value of the
/// row with the greatest `(hlc, region)`, read under the lock of `home`'s row (so increments
/// in one region never lose to each other). Returns the new value, the `cluster_name`, and
/// the latest other region's `hlc` (for the receive rule).
/// `$1` key, `$2` amount, `$3` hlc.
fn lww_incr_sql(home: Region) -> String {
    let other = latest_of("counter", "value", &others(home).collect::<Vec<_>>());
    // On equal hlc the greater region name wins (as in every merged read), bytewise.
    let home_wins_ties =
        format!("'{home}' COLLATE \"C\" > (SELECT region FROM other) COLLATE \"C\"");
    format!(
        "
WITH other AS ({other})
INSERT INTO counter_{home} AS c (key, value, hlc)
VALUES ($1, COALESCE((SELECT value FROM other), 0) + $2, $3)
ON CONFLICT (key) DO UPDATE SET
    value = CASE
        WHEN NOT EXISTS (SELECT 1 FROM other)
            OR c.hlc > (SELECT hlc FROM other)
            OR (c.hlc = (SELECT hlc FROM other) AND {home_wins_ties})
        THEN c.value
        ELSE (SELECT value FROM other)
    END + $2,
    hlc = EXCLUDED.hlc
RETURNING value, current_setting('cluster_name'), (SELECT hlc FROM other)"
    )
}

/// PN-counter value, `$1` key: the sum of `p - n` over every region's table.
fn pn_get_sql() -> String {
    let terms: Vec<String> = regions()
        .iter()
        .map(|r| format!("COALESCE((SELECT p - n FROM counter_{r} WHERE key = $1), 0)"))
        .collect();
    format!("SELECT {}", terms.join(" + "))
}

/// LWW register value, `$1` key: the row with the greatest `(hlc, region)`.
fn lww_get_sql() -> String {
    let branches: Vec<String> = regions()
        .iter()
        .map(|r| format!("SELECT value, hlc, '{r}' AS region FROM counter_{r} WHERE key = $1"))
        .collect();
    format!(
        "SELECT value, hlc FROM ({}) AS candidates
ORDER BY hlc DESC, region COLLATE \"C\" DESC LIMIT 1",
        branches.join(" UNION ALL ")
    )
}

/// Body of `POST /counters/{key}/incr`; an empty body means `{"by": 1}`.
#[derive(Deserialize)]
pub struct IncrBody {
    /// Amount to add (may be negative).
    #[serde(default = "one")]
    by: i64,
    /// The home region whose primary takes the increment (`partitioned` only; default: this
    /// app's region). Ignored by the other postures.
    #[serde(default)]
    home: Option<String>,
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
    /// After an increment in an active-active posture: `cluster_name` of the database that
    /// committed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    committed_by: Option<String>,
}

/// `POST /counters/{key}/incr`.
pub async fn incr(
    deadline: Deadline,
    State(app): State<AppState>,
    Param(key): Param<String>,
    JsonBody(body): JsonBody<IncrBody>,
) -> Result<Response, ApiError> {
    let target = target(&app, body.home.as_deref())?;
    let conn = Conn::get(&target.pool, deadline, target.what).await?;
    let (value, committed_by) = match (app.posture, target.home) {
        (Posture::SingleWriter, _) | (_, None) => {
            let statement = conn.prepare(deadline, INCR_SQL).await?;
            let value: i64 = conn
                .transact(deadline, async {
                    let row = conn.query_one(&statement, &[&key, &body.by]).await?;
                    Ok(row.get(0))
                })
                .await?;
            (value, None)
        }
        (Posture::Lww, Some(home)) => {
            let statement = conn.prepare(deadline, &lww_incr_sql(home)).await?;
            let hlc = hlc::to_i64(app.hlc.tick());
            let (value, committed_by, other_hlc): (i64, String, Option<i64>) = conn
                .transact(deadline, async {
                    let row = conn.query_one(&statement, &[&key, &body.by, &hlc]).await?;
                    Ok((row.get(0), row.get(1), row.get(2)))
                })
                .await?;
            if let Some(other_hlc) = other_hlc {
                app.hlc.observe_i64(other_hlc);
            }
            (value, Some(committed_by))
        }
        (Posture::Crdt | Posture::Partitioned, Some(home)) => {
            let statement = conn.prepare(deadline, &pn_incr_sql(home)).await?;
            let hlc = hlc::to_i64(app.hlc.tick());
            let (p, n) = if body.by >= 0 {
                (body.by, 0)
            } else {
                (0, body.by.saturating_neg())
            };
            let (value, committed_by): (i64, String) = conn
                .transact(deadline, async {
                    let row = conn.query_one(&statement, &[&key, &p, &n, &hlc]).await?;
                    Ok((row.get(0), row.get(1)))
                })
                .await?;
            (value, Some(committed_by))
        }
    };
    conn.release();
    Ok(counter(&key, value, &app.region, committed_by))
}

/// `GET /counters/{key}`.
pub async fn get(
    deadline: Deadline,
    State(app): State<AppState>,
    Param(key): Param<String>,
) -> Result<Response, ApiError> {
    let pools = app.db.current();
    let conn = Conn::get(&pools.read, deadline, "read db").await?;
    let value = match app.posture {
        Posture::SingleWriter => {
            let statement = conn.prepare(deadline, GET_SQL).await?;
            let row = conn
                .step(deadline, conn.query_opt(&statement, &[&key]))
                .await?;
            row.map_or(0, |row| row.get(0))
        }
        Posture::Crdt | Posture::Partitioned => {
            let statement = conn.prepare(deadline, &pn_get_sql()).await?;
            let row = conn
                .step(deadline, conn.query_one(&statement, &[&key]))
                .await?;
            row.get(0)
        }
        Posture::Lww => {
            let statement = conn.prepare(deadline, &lww_get_sql()).await?;
            let row = conn
                .step(deadline, conn.query_opt(&statement, &[&key]))
                .await?;
            row.map_or(0, |row| {
                app.hlc.observe_i64(row.get(1));
                row.get(0)
            })
        }
    };
    conn.release();
    Ok(counter(&key, value, &app.region, None))
}

/// The answer of both routes.
fn counter(key: &str, value: i64, region: &str, committed_by: Option<String>) -> Response {
    Json(Counter {
        key,
        value,
        region,
        committed_by,
    })
    .into_response()
}
