//! The API's errors: a small set of values, each with a status code and an outcome, turned into
//! `{"error": "...", "outcome": "fail" | "unknown"}` in one place.
//!
//! The outcome is what the harness's lost-write accounting rests on:
//! - `fail`: the operation certainly did not take effect, so the client may treat it as never
//!   having happened.
//! - `unknown`: a write's COMMIT was sent and no answer came (or the connection broke while
//!   waiting for it); the write may or may not be durable. Such writes are neither
//!   acknowledged nor failed.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API error. The message says which step failed and why.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// 400, `fail`: a malformed body or path; the message names the field.
    BadRequest(String),
    /// 404, `fail`: no such route.
    NoRoute(String),
    /// 405, `fail`: the route exists, not with this method.
    BadMethod(String),
    /// 409, `fail`: a `write_id` that is already in the `writes` log (a replayed write). This
    /// attempt did not take effect; the earlier one did.
    DuplicateWrite(String),
    /// 503, `fail`: the operation certainly did not take effect (no connection within the
    /// deadline, a statement before COMMIT failed, the read DB refused, ...).
    Unavailable(String),
    /// 504, `unknown`: a write's COMMIT was sent but not answered within the deadline, or the
    /// connection broke during COMMIT. It may have committed.
    Unknown(String),
}

/// Whether the failed operation may have taken effect.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    /// Certainly did not take effect.
    Fail,
    /// May have taken effect.
    Unknown,
}

/// The JSON body of every error.
#[derive(Serialize)]
struct ErrorBody<'a> {
    /// What went wrong, naming the step or field.
    error: &'a str,
    /// `fail` or `unknown`.
    outcome: Outcome,
}

impl ApiError {
    /// Status code and outcome of this error.
    fn status(&self) -> (StatusCode, Outcome) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, Outcome::Fail),
            ApiError::NoRoute(_) => (StatusCode::NOT_FOUND, Outcome::Fail),
            ApiError::BadMethod(_) => (StatusCode::METHOD_NOT_ALLOWED, Outcome::Fail),
            ApiError::DuplicateWrite(_) => (StatusCode::CONFLICT, Outcome::Fail),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, Outcome::Fail),
            ApiError::Unknown(_) => (StatusCode::GATEWAY_TIMEOUT, Outcome::Unknown),
        }
    }

    /// The message.
    fn message(&self) -> &str {
        match self {
            ApiError::BadRequest(m)
            | ApiError::NoRoute(m)
            | ApiError::BadMethod(m)
            | ApiError::DuplicateWrite(m)
            | ApiError::Unavailable(m)
            | ApiError::Unknown(m) => m,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, outcome) = self.status();
        // Under a fault every request fails the same way: debug, not warn, or the log drowns.
        tracing::debug!(
            status = status.as_u16(),
            error = self.message(),
            "request failed"
        );
        let body = ErrorBody {
            error: self.message(),
            outcome,
        };
        (status, Json(body)).into_response()
    }
}

/// An error and its sources as one line, `outer: inner: innermost`, skipping a source whose text
/// its parent already shows.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let line = e.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = e.source();
    }
    text
}
