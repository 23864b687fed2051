//! `PUT /users/{id}/profile` and `GET /users/{id}/profile`: a user's personal data (an email
//! and a name), written to the user's home tables and read through this region's cache like
//! any other data. It is what residency drills look for: wherever a copy of a profile lands
//! (a database, a replica, a cache, a link), the harness finds its fields there.
//!
//! - `single-writer`: table `profiles` on the write DB; reads from the read DB.
//! - `lww`, `crdt`: this region's `profiles_{R}` on the write DB; reads take the most recently
//!   updated row among every region's table on the read DB.
//! - `partitioned`: `profiles_{H}` on the home region `H`'s primary (`--home-db`), for writes
//!   *and* reads (`?home=H`, default this app's region): a profile is read where it lives, so
//!   it needs no copy in another region's database. Which tables the harness replicates is its
//!   choice: a residency-compliant stack does not publish `profiles_{r}` at all.
//!
//! A read that misses the cache fills `profile:{id}` in this region's Redis for the cache TTL.
//! A write (and an erasure) deletes that entry here and, by `--cache-mode`, in the other
//! region (`invalidate`: published on its own channel; `write-through`: deleted remotely; a
//! profile is never pushed to the other region's cache).

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::kv::target;
use super::{AppState, JsonBody, Param};
use crate::db::Conn;
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::posture::{Posture, Region, regions};

/// Body of `PUT /users/{id}/profile`.
#[derive(Deserialize)]
pub struct ProfileBody {
    /// The user's email address.
    email: String,
    /// The user's name.
    name: String,
    /// The user's home region (`partitioned`: whose primary takes it; default this app's
    /// region). Stored with the profile in every posture.
    #[serde(default)]
    home: Option<String>,
}

/// A profile as answered (and as cached, without `source` and `region`).
#[derive(Serialize, Deserialize)]
struct Profile {
    /// The user.
    user: i64,
    /// The user's home region, as written.
    home: String,
    /// The email.
    email: String,
    /// The name.
    name: String,
}

/// The acknowledgement of a profile write.
#[derive(Serialize)]
struct ProfileAck<'a> {
    /// The user.
    user: i64,
    /// The region that served the write.
    region: &'a str,
    /// The database that committed it (as in `PUT /kv`).
    committed_by: String,
    /// The region whose tables took it (active-active postures only).
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<Region>,
}

/// The upsert of a profile into `table`; returns the committing database's name.
/// `$1` user, `$2` home, `$3` email, `$4` name.
fn put_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} (user_id, home, email, name, updated_at) VALUES ($1, $2, $3, $4, now())
ON CONFLICT (user_id) DO UPDATE SET home = EXCLUDED.home, email = EXCLUDED.email,
    name = EXCLUDED.name, updated_at = EXCLUDED.updated_at
RETURNING coalesce(current_setting('regiondrill.node', true), current_setting('cluster_name'))"
    )
}

/// `PUT /users/{id}/profile`.
pub async fn put(
    deadline: Deadline,
    State(app): State<AppState>,
    Param(user): Param<i64>,
    JsonBody(body): JsonBody<ProfileBody>,
) -> Result<Response, ApiError> {
    let target = target(&app, body.home.as_deref())?;
    let home = body.home.clone().unwrap_or_else(|| app.region.clone());
    let table = match target.home {
        None => "profiles".to_owned(),
        Some(h) => format!("profiles_{h}"),
    };
    let conn = Conn::get(&target.pool, deadline, target.what).await?;
    let statement = conn.prepare(deadline, &put_sql(&table)).await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&user, &home, &body.email, &body.name];
    let committed_by: String = conn
        .transact(deadline, async {
            let row = conn.query_one(&statement, &params).await?;
            Ok(row.get(0))
        })
        .await?;
    conn.release();
    if let Err(e) = app.cache.after_profile_change(user).await {
        tracing::debug!(user, error = %e, "cache update skipped after a profile write");
    }
    Ok(Json(ProfileAck {
        user,
        region: &app.region,
        committed_by,
        table: target.home,
    })
    .into_response())
}

/// `GET /users/{id}/profile[?home=H]`: the cache, else the database (then cached).
pub async fn get(
    deadline: Deadline,
    State(app): State<AppState>,
    Param(user): Param<i64>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let home = query.as_deref().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("home="))
            .map(str::to_owned)
    });
    let cache_up = match app.cache.get_profile(user, deadline).await {
        Ok(Some(raw)) => match serde_json::from_slice::<Profile>(&raw) {
            Ok(profile) => return Ok(found(profile, "cache", &app.region)),
            Err(e) => {
                tracing::debug!(user, error = %e, "unreadable cached profile, treated as a miss");
                true
            }
        },
        Ok(None) => true,
        Err(e) => {
            tracing::debug!(user, error = %e, "cache read failed, reading the DB");
            false
        }
    };

    let (pool, what, sql) = match app.posture {
        Posture::SingleWriter => (
            app.db.current().read.clone(),
            "read db",
            "SELECT home, email, name FROM profiles WHERE user_id = $1".to_owned(),
        ),
        Posture::Lww | Posture::Crdt => {
            let branches: Vec<String> = regions()
                .iter()
                .map(|r| {
                    format!(
                        "SELECT home, email, name, updated_at FROM profiles_{r} WHERE user_id = $1"
                    )
                })
                .collect();
            (
                app.db.current().read.clone(),
                "read db",
                format!(
                    "SELECT home, email, name FROM ({}) AS p ORDER BY updated_at DESC LIMIT 1",
                    branches.join(" UNION ALL ")
                ),
            )
        }
        Posture::Partitioned => {
            let t = target(&app, home.as_deref())?;
            let h = t.home.expect("partitioned targets have a home");
            (
                t.pool,
                t.what,
                format!("SELECT home, email, name FROM profiles_{h} WHERE user_id = $1"),
            )
        }
    };
    let conn = Conn::get(&pool, deadline, what).await?;
    let statement = conn.prepare(deadline, &sql).await?;
    let row = conn
        .step(deadline, conn.query_opt(&statement, &[&user]))
        .await?;
    conn.release();
    let Some(row) = row else {
        let missing = serde_json::json!({
            "user": user, "found": false, "source": "db", "region": app.region,
        });
        return Ok((StatusCode::NOT_FOUND, Json(missing)).into_response());
    };
    let profile = Profile {
        user,
        home: row.get(0),
        email: row.get(1),
        name: row.get(2),
    };
    if cache_up {
        let json = serde_json::to_vec(&profile).expect("a profile always serializes");
        if let Err(e) = app.cache.set_profile(user, &json, deadline).await {
            tracing::debug!(user, error = %e, "profile cache fill skipped");
        }
    }
    Ok(found(profile, "db", &app.region))
}

/// The 200 answer of a profile read.
fn found(profile: Profile, source: &'static str, region: &str) -> Response {
    Json(serde_json::json!({
        "user": profile.user,
        "home": profile.home,
        "email": profile.email,
        "name": profile.name,
        "source": source,
        "region": region,
    }))
    .into_response()
}
