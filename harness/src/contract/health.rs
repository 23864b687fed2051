//! `GET /health` and `GET /admin/db`: what the harness's readiness checks, probes and
//! failover controller read, and what it repoints after a failover.

use super::{App, Check, Problems};

/// `health`: the answer's shape (200 or 503; `region`, `status`, `role`, `checks` with
/// `write_db`/`read_db`/`cache` each `{ok, ms, error}`, and a status consistent with them);
/// `health.ready`: whether it is 200 (every other check needs a healthy app, so a 503 is said
/// first, with the failing dependencies). Records the app's region and posture.
pub(super) fn checks(app: &mut App) -> Vec<Check> {
    let url = app.url().to_string();
    let Some(answer) = app.first_health.take() else {
        return vec![];
    };
    let mut p = Problems::new();
    let mut down = Vec::new();
    let mut cache_mode = None;
    if p.status(&answer, &[200, 503])
        && let Some(obj) = p.object(&answer)
    {
        app.region = p.string(obj, "region").map(str::to_string);
        if app.region.as_deref() == Some("") {
            p.add("`region`: empty");
        }
        let status = p.one_of(obj, "status", &["ok", "degraded"]);
        p.one_of(obj, "role", &["primary", "replica", "unknown"]);
        // Optional in the contract's list of required fields, but when present it decides
        // what a write answers (`timeline` in single-writer).
        app.posture = obj
            .get("posture")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        cache_mode = obj.get("cache_mode").and_then(|v| v.as_str());
        let mut all_ok = true;
        for dep in ["write_db", "read_db", "cache"] {
            let Some(check) = p.field(obj, &format!("checks.{dep}")) else {
                all_ok = false;
                continue;
            };
            if !check.is_object() {
                p.add(format!("`checks.{dep}`: expected an object, got {check}"));
                all_ok = false;
                continue;
            }
            let ok = check.get("ok").and_then(|v| v.as_bool());
            match ok {
                Some(ok) => all_ok &= ok,
                None => p.add(format!(
                    "`checks.{dep}.ok`: expected a boolean, got {}",
                    shown(check.get("ok"))
                )),
            }
            if !check.get("ms").is_some_and(|v| v.is_number()) {
                p.add(format!(
                    "`checks.{dep}.ms`: expected a number, got {}",
                    shown(check.get("ms"))
                ));
            }
            match check.get("error") {
                Some(e) if e.is_null() || e.is_string() => {
                    if ok == Some(false) {
                        down.push(format!("{dep}: {}", e.as_str().unwrap_or("no message")));
                    }
                }
                other => p.add(format!(
                    "`checks.{dep}.error`: expected a string or null, got {}",
                    shown(other)
                )),
            }
        }
        // 200 exactly when the three dependencies answer; `ok` only then (`degraded` may
        // still be a 200: a failing invalidation subscription does not make it 503).
        if answer.status == 200 && !all_ok {
            p.add("status 200 although a dependency check is not ok (expected 503)");
        }
        if answer.status == 503 && all_ok {
            p.add("status 503 although every dependency check is ok (expected 200)");
        }
        if status.as_deref() == Some("ok") && !all_ok {
            p.add("`status`: \"ok\" although a dependency check is not ok");
        }
    }
    let mut note = match (&app.region, &app.posture) {
        (Some(r), Some(posture)) => format!("region {r}, posture {posture}"),
        (Some(r), None) => format!("region {r}, no posture given"),
        _ => String::new(),
    };
    if let Some(mode) = cache_mode
        && !note.is_empty()
    {
        note.push_str(&format!(", cache mode {mode}"));
    }
    let shape = Check::verdict_noted(&url, "health", p, note);
    let mut ready = Problems::new();
    if answer.status != 200 {
        ready.add(format!(
            "the app answers {} ({}); the other checks need every dependency up",
            answer.status,
            if down.is_empty() {
                answer.shown()
            } else {
                down.join(", ")
            }
        ));
    }
    vec![shape, Check::verdict(&url, "health.ready", ready)]
}

/// `admin.db`: `GET /admin/db` answers 200 with the DSNs in use, `write_db` and `read_db`
/// (the harness repoints apps with `POST /admin/db`, which answers the same; it is not
/// called here: repointing a live app is not a check's business).
pub(super) async fn admin_db(app: &App) -> Check {
    let mut p = Problems::new();
    if let Some(answer) = p.answered(app.http.get("/admin/db").await)
        && p.status(&answer, &[200])
        && let Some(obj) = p.object(&answer)
    {
        p.string(obj, "write_db");
        p.string(obj, "read_db");
    }
    Check::verdict(app.url(), "admin.db", p)
}

/// A JSON value or "nothing", for messages.
fn shown(v: Option<&serde_json::Value>) -> String {
    v.map_or("nothing".to_string(), ToString::to_string)
}
