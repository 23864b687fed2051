//! The API's errors: a small set of values with Toxiproxy's status codes and messages, turned
//! into responses in one place. Every error the API sends, down to a 404 for an unknown route
//! or a malformed request line, has Toxiproxy's JSON shape, so clients parse one kind of body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An API error: Toxiproxy's `{"error": "...", "status": N}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({status})")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, in Toxiproxy's words where it has them.
    pub message: String,
}

impl ApiError {
    /// An error with any status (for statuses the constructors below do not name).
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the body is not what the route takes.
    pub fn bad_body(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("bad request body: {detail}"),
        )
    }

    /// 400: a required field is absent.
    pub fn missing_field(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("missing required field: {field}"),
        )
    }

    /// 400: stream is neither upstream nor downstream.
    pub fn invalid_stream(got: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("stream was invalid, can be either upstream or downstream (got '{got}')"),
        )
    }

    /// 400: the toxic type is unknown or its attributes are invalid.
    pub fn invalid_toxic(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("invalid toxic type: {detail}"),
        )
    }

    /// 400: a proxy or toxic name that could be created but never addressed again.
    pub fn invalid_name(what: &str, detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("invalid {what} name: {detail}"),
        )
    }

    /// 404: no route has this path.
    pub fn route_not_found(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("page not found: {method} {path}"),
        )
    }

    /// 405: the route exists, not with this method.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method not allowed: {method} {path}"),
        )
    }

    /// 408: the request did not arrive in full within the read timeout.
    pub fn request_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("request timeout: the request did not arrive in full within {limit:?}"),
        )
    }

    /// 413: the body is larger than the server takes.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body too large: at most {limit} bytes"),
        )
    }

    /// 404.
    pub fn proxy_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "proxy not found")
    }

    /// 404.
    pub fn toxic_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "toxic not found")
    }

    /// 409.
    pub fn proxy_exists() -> Self {
        Self::new(StatusCode::CONFLICT, "proxy already exists")
    }

    /// 409.
    pub fn toxic_exists() -> Self {
        Self::new(StatusCode::CONFLICT, "toxic already exists")
    }

    /// 500: the listener could not be bound (port in use, bad address), as Toxiproxy reports it.
    pub fn listen(addr: &str, err: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("listen tcp {addr}: {err}"),
        )
    }

    /// The JSON body Toxiproxy sends.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": self.message, "status": self.status.as_u16()})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}
