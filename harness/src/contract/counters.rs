//! `POST /counters/{key}/incr` and `GET /counters/{key}`: what the counter checkers (lost
//! increments, PN-counters against LWW registers) read.

use super::{App, Check, Options, Problems, secs};
use serde_json::Value;

/// `counters`: a new counter incremented by 2 answers 200 `{key, value: 2, region}`; a read
/// returns 2 within `read_wait` (reads go to a replica); an increment by −2 (which also puts
/// the counter back: counters cannot be erased) answers 0.
pub(super) async fn check(app: &App, opts: &Options) -> Check {
    let mut p = Problems::new();
    let key = app.key("counter");
    let incr = format!("/counters/{key}/incr");
    let mut note = String::new();
    if let Some(answer) = p.answered(app.http.post(&incr, &serde_json::json!({"by": 2})).await)
        && p.status(&answer, &[200])
        && let Some(obj) = p.object(&answer)
    {
        p.equal(obj, "key", key.as_str());
        p.equal(obj, "value", 2);
        if let Some(region) = &app.region {
            p.equal(obj, "region", region.as_str());
        }
        let (read, took) = app
            .http
            .get_until(&format!("/counters/{key}"), opts.read_wait, |a| {
                a.status == 200 && a.json.get("value") == Some(&Value::from(2))
            })
            .await;
        if let Some(answer) = p.answered(read)
            && p.status(&answer, &[200])
            && let Some(obj) = p.object(&answer)
        {
            p.equal(obj, "key", key.as_str());
            let before = p.0.len();
            p.equal(obj, "value", 2);
            if p.0.len() > before {
                p.add(format!("(read retried for {})", secs(opts.read_wait)));
            }
            note = format!("read back after {}", secs(took));
        }
    }
    if let Some(answer) = p.answered(app.http.post(&incr, &serde_json::json!({"by": -2})).await)
        && p.status(&answer, &[200])
        && let Some(obj) = p.object(&answer)
    {
        let before = p.0.len();
        p.equal(obj, "value", 0);
        if p.0.len() > before {
            p.add("(after an increment by -2)");
        }
    }
    Check::verdict_noted(app.url(), "counters", p, note)
}
