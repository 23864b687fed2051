//! HTTP: the route table (every route in one place), the state handlers share, and the
//! extractors they use: the request [`Deadline`], a path parameter and a JSON body whose errors
//! name the parameter or field.
//!
//! One module per endpoint family: [`health`], [`kv`], [`counters`], [`profiles`], [`users`],
//! [`admin`].

mod admin;
mod counters;
mod health;
mod kv;
mod profiles;
mod users;

use std::convert::Infallible;
use std::fmt::Display;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{Method, Uri};
use axum::routing::{delete, get, post};
use serde::de::DeserializeOwned;

use crate::cache::Cache;
use crate::db::{Db, Homes};
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::hlc::Hlc;
use crate::posture::{Posture, Region};
use crate::singleflight::SingleFlight;

/// Everything a handler needs, shared by all requests.
pub struct App {
    /// This instance's region, echoed in answers and written to the `writes` log.
    pub region: String,
    /// Deadline of every request.
    pub request_timeout: Duration,
    /// How writes and reads work.
    pub posture: Posture,
    /// In the active-active postures, this region's tables (`region` as a known region);
    /// `None` in `single-writer`.
    pub table_region: Option<Region>,
    /// The write and read pools.
    pub db: Db,
    /// The primary of each home region (`--home-db`; used by `partitioned`).
    pub homes: Homes,
    /// This region's Redis (and how writes reach the other region's).
    pub cache: Cache,
    /// The hybrid logical clock stamped on writes.
    pub hlc: Hlc,
    /// Coalesces concurrent cache misses (`--single-flight`).
    pub flights: Option<Arc<SingleFlight>>,
    /// Counters shown in `/health`.
    pub stats: Stats,
}

/// What the app counts since start-up, shown in `/health` (`stats`): enough for a test or an
/// operator to see coalescing and invalidation at work, without database statistics.
#[derive(Default)]
pub struct Stats {
    /// `GET /kv` reads sent to the read DB (cache misses that were not coalesced).
    pub kv_db_reads: std::sync::atomic::AtomicU64,
    /// `GET /kv` misses that joined a read already in flight (`--single-flight`).
    pub single_flight_joins: std::sync::atomic::AtomicU64,
}

/// The state handlers receive.
pub type AppState = Arc<App>;

/// The API. See `README.md` for each route's contract.
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/kv/{key}", get(kv::get).put(kv::put))
        .route("/counters/{key}", get(counters::get))
        .route("/counters/{key}/incr", post(counters::incr))
        .route("/users/{id}", delete(users::erase))
        .route("/users/{id}/profile", get(profiles::get).put(profiles::put))
        .route("/admin/db", get(admin::show).post(admin::swap))
        .fallback(no_route)
        .method_not_allowed_fallback(bad_method)
        .with_state(app)
}

/// Any path not in the table.
async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute(format!("no route for {method} {}", uri.path()))
}

/// A path in the table with a method it does not take.
async fn bad_method(method: Method, uri: Uri) -> ApiError {
    ApiError::BadMethod(format!("{} does not take {method}", uri.path()))
}

/// Every request's deadline starts when its handler's arguments are extracted.
impl FromRequestParts<AppState> for Deadline {
    type Rejection = Infallible;

    async fn from_request_parts(_: &mut Parts, app: &AppState) -> Result<Self, Infallible> {
        Ok(Deadline::after(app.request_timeout))
    }
}

/// The route's single path parameter (percent-decoded), parsed; a bad one is a 400 naming it.
pub struct Param<T>(pub T);

impl<T, S> FromRequestParts<S> for Param<T>
where
    T: FromStr,
    T::Err: Display,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let (name, value) = params
            .iter()
            .next()
            .expect("Param is only used on routes with one path parameter");
        value
            .parse()
            .map(Param)
            .map_err(|e| ApiError::BadRequest(format!("path parameter `{name}`: {value:?}: {e}")))
    }
}

/// A JSON body, whatever the Content-Type. An empty body reads as `{}`, so optional fields
/// take their defaults. Errors are 400s naming the field.
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("reading the body: {}", e.body_text())))?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let mut de = serde_json::Deserializer::from_slice(text);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                ApiError::BadRequest(format!("invalid JSON body: {inner}"))
            } else {
                ApiError::BadRequest(format!("invalid JSON body: field `{path}`: {inner}"))
            }
        })?;
        de.end()
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
        Ok(JsonBody(value))
    }
}

impl App {
    /// This region's tables; only called in the active-active postures.
    pub fn tables(&self) -> Region {
        self.table_region
            .expect("the active-active postures have a table region (checked at start-up)")
    }
}

/// The app's wall clock, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
