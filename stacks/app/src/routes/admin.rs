//! `POST /admin/db` and `GET /admin/db`: which databases the app uses. The failover controller
//! posts the new DSNs after promoting a replica; the pools are swapped atomically (requests
//! already holding a connection finish on the old one) and the old pools are closed.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::{AppState, JsonBody};
use crate::db::{Dsn, Pools};
use crate::error::ApiError;

/// Body of `POST /admin/db`: either DSN may be left out to keep the current one.
#[derive(Deserialize)]
pub struct SwapBody {
    /// New DSN for writes.
    #[serde(default)]
    write_db: Option<String>,
    /// New DSN for reads.
    #[serde(default)]
    read_db: Option<String>,
}

/// The DSNs in use.
#[derive(Serialize)]
pub struct Current {
    /// Where writes go.
    write_db: String,
    /// Where reads go.
    read_db: String,
}

impl From<&Pools> for Current {
    fn from(pools: &Pools) -> Self {
        Self {
            write_db: pools.write_dsn.as_str().to_owned(),
            read_db: pools.read_dsn.as_str().to_owned(),
        }
    }
}

/// `GET /admin/db`.
pub async fn show(State(app): State<AppState>) -> Json<Current> {
    Json(Current::from(&*app.db.current()))
}

/// `POST /admin/db`.
pub async fn swap(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<SwapBody>,
) -> Result<Json<Current>, ApiError> {
    if body.write_db.is_none() && body.read_db.is_none() {
        return Err(ApiError::BadRequest(
            "invalid JSON body: give `write_db`, `read_db` or both".to_owned(),
        ));
    }
    let write_db = parse(body.write_db.as_deref(), "write_db")?;
    let read_db = parse(body.read_db.as_deref(), "read_db")?;
    let pools = app.db.replace(write_db, read_db);
    tracing::info!(
        write_db = pools.write_dsn.as_str(),
        read_db = pools.read_dsn.as_str(),
        "database pools replaced"
    );
    Ok(Json(Current::from(&*pools)))
}

/// Parses an optional DSN; the error names the field.
fn parse(dsn: Option<&str>, field: &str) -> Result<Option<Dsn>, ApiError> {
    dsn.map(|text| {
        Dsn::parse(text).map_err(|e| {
            ApiError::BadRequest(format!(
                "invalid JSON body: field `{field}`: invalid DSN: {}",
                crate::error::chain(&e)
            ))
        })
    })
    .transpose()
}
