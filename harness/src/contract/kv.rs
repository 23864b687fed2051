//! `PUT /kv/{key}` and `GET /kv/{key}`: what the workload does and what lost-write, stale-read
//! and split-brain accounting read from the answers (`version`, `write_id`, `committed_by`,
//! `timeline`, `ts_ms`), and the 409 a replayed write must get (a retried write that is
//! applied twice would be counted as two).

use super::{Answer, App, Check, Ids, Options, Problems, secs};
use serde_json::Value;

/// Every key-value check, in order: `kv.put`, `kv.put-again`, `kv.replay`,
/// `kv.read-your-write`, `kv.missing`, `kv.percent-decoded`.
pub(super) async fn checks(app: &mut App, ids: &mut Ids, opts: &Options) -> Vec<Check> {
    let mut out = Vec::new();
    let key = app.key("kv");
    let (first, version) = put_first(app, ids, &key).await;
    out.push(first);
    let (again, second) = put_again(app, ids, &key, version).await;
    out.push(again);
    out.push(replay(app, &key, second, opts).await);
    out.push(read_your_write(app, ids, opts).await);
    out.push(missing(app).await);
    out.push(percent_decoded(app, ids, opts).await);
    out
}

/// A value the checks write: recognisable, and different every time.
fn value(app: &App, what: &str, write_id: i64) -> String {
    format!("{}-{what}-{write_id}", app.prefix)
}

/// What an acknowledged write must answer: 200 with `key`, `value`, `version`, `write_id`,
/// `region` (this app's), `ts_ms`, `committed_by`, and `timeline` in `single-writer`.
/// Returns the version.
fn ack(
    p: &mut Problems,
    app: &App,
    answer: &Answer,
    key: &str,
    value: &str,
    write_id: i64,
) -> Option<i64> {
    if !p.status(answer, &[200]) {
        return None;
    }
    let obj = p.object(answer)?;
    p.equal(obj, "key", key);
    p.equal(obj, "value", value);
    let version = p.int(obj, "version");
    p.equal(obj, "write_id", write_id);
    match &app.region {
        Some(region) => p.equal(obj, "region", region.as_str()),
        None => {
            p.string(obj, "region");
        }
    }
    if let Some(ts) = p.int(obj, "ts_ms")
        && ts <= 0
    {
        p.add(format!(
            "`ts_ms`: expected milliseconds since the epoch, got {ts}"
        ));
    }
    // `""` is allowed: a server without a cluster_name.
    p.string(obj, "committed_by");
    if app.posture.as_deref() == Some("single-writer") {
        p.int(obj, "timeline");
    }
    version
}

/// `kv.put`: a new key's first write is acknowledged in full, with version 1.
async fn put_first(app: &mut App, ids: &mut Ids, key: &str) -> (Check, Option<i64>) {
    let mut p = Problems::new();
    let write_id = ids.write();
    let v = value(app, "first", write_id);
    let mut version = None;
    if let Some(answer) = p.answered(app.put(key, key, &v, write_id).await) {
        version = ack(&mut p, app, &answer, key, &v, write_id);
        if let Some(n) = version
            && n != 1
        {
            p.add(format!("`version`: expected 1 for a new key, got {n}"));
        }
    }
    (Check::verdict(app.url(), "kv.put", p), version)
}

/// `kv.put-again`: a second write of the key, with a new write id, produces the next version.
/// Returns the second write's id and value when it was acknowledged.
async fn put_again(
    app: &mut App,
    ids: &mut Ids,
    key: &str,
    first: Option<i64>,
) -> (Check, Option<(i64, String)>) {
    let mut p = Problems::new();
    let write_id = ids.write();
    let v = value(app, "second", write_id);
    let mut acked = None;
    if let Some(answer) = p.answered(app.put(key, key, &v, write_id).await)
        && p.status(&answer, &[200])
        && let Some(obj) = p.object(&answer)
    {
        p.equal(obj, "write_id", write_id);
        match (first, p.int(obj, "version")) {
            (Some(first), Some(n)) if n != first + 1 => p.add(format!(
                "`version`: expected {} (the first write's {first} + 1), got {n}",
                first + 1
            )),
            (None, Some(_)) => p.add("the first write (kv.put) gave no version to compare with"),
            _ => {}
        }
        acked = Some((write_id, v));
    }
    (Check::verdict(app.url(), "kv.put-again", p), acked)
}

/// `kv.replay`: the second write sent again (same `write_id`, another value) is refused with
/// 409 `{"error", "outcome": "fail"}`, and the earlier write stands: a read still returns it.
async fn replay(app: &mut App, key: &str, second: Option<(i64, String)>, opts: &Options) -> Check {
    let mut p = Problems::new();
    let Some((write_id, earlier)) = second else {
        p.add("the second write (kv.put-again) was not acknowledged: nothing to replay");
        return Check::verdict(app.url(), "kv.replay", p);
    };
    let replayed = value(app, "replayed", write_id);
    if let Some(answer) = p.answered(app.put(key, key, &replayed, write_id).await) {
        p.error(&answer, 409);
    }
    let path = format!("/kv/{key}");
    let (read, _) = app
        .http
        .get_until(&path, opts.read_wait, |a| {
            a.status == 200 && a.json.get("value") == Some(&Value::from(earlier.as_str()))
        })
        .await;
    if let Some(answer) = p.answered(read)
        && p.status(&answer, &[200])
        && let Some(obj) = p.object(&answer)
    {
        let got = obj.get("value");
        if got == Some(&Value::from(replayed.as_str())) {
            p.add("the replay changed the value: a read returns the replayed write's value");
        } else if got != Some(&Value::from(earlier.as_str())) {
            p.add(format!(
                "after the replay, `value`: expected {earlier:?} (the earlier write), got {} \
                 (read retried for {})",
                got.map_or("nothing".into(), ToString::to_string),
                secs(opts.read_wait)
            ));
        }
    }
    Check::verdict(app.url(), "kv.replay", p)
}

/// `kv.read-your-write`: after a write, a read through the same app returns it — `value`,
/// `version`, `write_id`, `source` `cache` or `db` — within `read_wait` (reads go to a
/// replica, which may lag: the read is retried every 100 ms).
async fn read_your_write(app: &mut App, ids: &mut Ids, opts: &Options) -> Check {
    let mut p = Problems::new();
    let key = app.key("read");
    let write_id = ids.write();
    let v = value(app, "read", write_id);
    let mut note = String::new();
    if let Some(answer) = p.answered(app.put(&key, &key, &v, write_id).await)
        && p.status(&answer, &[200])
    {
        let version = answer.json.get("version").and_then(Value::as_i64);
        let (read, took) = app
            .http
            .get_until(&format!("/kv/{key}"), opts.read_wait, |a| {
                a.status == 200 && a.json.get("value") == Some(&Value::from(v.as_str()))
            })
            .await;
        if let Some(answer) = p.answered(read)
            && p.status(&answer, &[200])
            && let Some(obj) = p.object(&answer)
        {
            let before = p.0.len();
            p.equal(obj, "key", key.as_str());
            p.equal(obj, "value", v.as_str());
            match version {
                Some(n) => p.equal(obj, "version", n),
                None => {
                    p.int(obj, "version");
                }
            }
            p.equal(obj, "write_id", write_id);
            p.one_of(obj, "source", &["cache", "db"]);
            if p.0.len() > before && obj.get("value") != Some(&Value::from(v.as_str())) {
                p.add(format!("(read retried for {})", secs(opts.read_wait)));
            }
            note = format!("read back after {}", secs(took));
        }
    }
    Check::verdict_noted(app.url(), "kv.read-your-write", p, note)
}

/// `kv.missing`: a key never written is a 404 `{"found": false}` (not an error answer: the
/// workload counts it as a read of nothing).
async fn missing(app: &App) -> Check {
    let mut p = Problems::new();
    let key = app.key("never-written");
    if let Some(answer) = p.answered(app.http.get(&format!("/kv/{key}")).await)
        && p.status(&answer, &[404])
        && let Some(obj) = p.object(&answer)
    {
        p.equal(obj, "found", false);
    }
    Check::verdict(app.url(), "kv.missing", p)
}

/// `kv.percent-decoded`: path keys are percent-decoded: `PUT /kv/…a%2Fb` writes key `…a/b`
/// (the answer's `key`), and `GET` of the same path reads it.
async fn percent_decoded(app: &mut App, ids: &mut Ids, opts: &Options) -> Check {
    let mut p = Problems::new();
    let path_key = app.key("a%2Fb");
    let key = app.key("a/b");
    let write_id = ids.write();
    let v = value(app, "slash", write_id);
    if let Some(answer) = p.answered(app.put(&path_key, &key, &v, write_id).await)
        && p.status(&answer, &[200])
        && let Some(obj) = p.object(&answer)
    {
        p.equal(obj, "key", key.as_str());
        let (read, _) = app
            .http
            .get_until(&format!("/kv/{path_key}"), opts.read_wait, |a| {
                a.status == 200 && a.json.get("value") == Some(&Value::from(v.as_str()))
            })
            .await;
        if let Some(answer) = p.answered(read)
            && p.status(&answer, &[200])
            && let Some(obj) = p.object(&answer)
        {
            p.equal(obj, "key", key.as_str());
            p.equal(obj, "value", v.as_str());
        }
    }
    Check::verdict(app.url(), "kv.percent-decoded", p)
}
