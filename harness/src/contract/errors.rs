//! The error answers: every error is `{"error": "message", "outcome": "fail" | "unknown"}`
//! with the status of the errors table. The harness classifies an operation by the outcome
//! (a `fail` certainly did not take effect; lost-write accounting rests on it), so an error
//! without one, or with another status, is misread.

use super::{App, Check, Problems};

/// `errors.malformed-body`, `errors.no-route`, `errors.wrong-method`.
pub(super) async fn checks(app: &App) -> Vec<Check> {
    vec![
        malformed_body(app).await,
        no_route(app).await,
        wrong_method(app).await,
    ]
}

/// `errors.malformed-body`: a `PUT /kv` whose `write_id` is a string is a 400 `fail` whose
/// message names the field.
async fn malformed_body(app: &App) -> Check {
    let mut p = Problems::new();
    let key = app.key("malformed");
    let body = serde_json::json!({"value": "x", "write_id": "x", "user": app.user});
    if let Some(answer) = p.answered(app.http.put(&format!("/kv/{key}"), &body).await) {
        p.error(&answer, 400);
        if answer.status == 400
            && let Some(message) = answer.json.get("error").and_then(|e| e.as_str())
            && !message.contains("write_id")
        {
            p.add(format!(
                "`error`: expected a message naming the field `write_id`, got {message:?}"
            ));
        }
    }
    Check::verdict(app.url(), "errors.malformed-body", p)
}

/// `errors.no-route`: a path the app does not have is a 404 `fail`.
async fn no_route(app: &App) -> Check {
    let mut p = Problems::new();
    if let Some(answer) = p.answered(app.http.get("/regiondrill-contract-no-such-route").await) {
        p.error(&answer, 404);
    }
    Check::verdict(app.url(), "errors.no-route", p)
}

/// `errors.wrong-method`: a route with a method it does not take (`POST /health`) is a 405
/// `fail`.
async fn wrong_method(app: &App) -> Check {
    let mut p = Problems::new();
    let body = serde_json::json!({});
    if let Some(answer) = p.answered(app.http.post("/health", &body).await) {
        p.error(&answer, 405);
    }
    Check::verdict(app.url(), "errors.wrong-method", p)
}
