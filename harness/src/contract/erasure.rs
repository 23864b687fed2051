//! Profiles and erasure (`PUT`/`GET /users/{id}/profile`, `DELETE /users/{id}`): what the
//! residency and right-to-erasure drills write, count and look for afterwards. The erasure
//! check runs last for each app and removes what the other checks wrote through it.

use super::{App, Check, Options, Problems, secs};

/// `profile`: `PUT /users/{id}/profile` answers 200 `{user, region, committed_by}`, and a read
/// returns the profile (`user`, `home`, `email`, `name`, `source`) within `read_wait`.
pub(super) async fn profile(app: &mut App, opts: &Options) -> Check {
    let mut p = Problems::new();
    let path = format!("/users/{}/profile", app.user);
    let email = format!("{}@example.invalid", app.prefix);
    let name = format!("{} user", app.prefix);
    let body = serde_json::json!({"email": email, "name": name});
    let mut note = String::new();
    if let Some(answer) = p.answered(app.http.put(&path, &body).await)
        && p.status(&answer, &[200])
    {
        app.profile = true;
        if let Some(obj) = p.object(&answer) {
            p.equal(obj, "user", app.user);
            if let Some(region) = &app.region {
                p.equal(obj, "region", region.as_str());
            }
            p.string(obj, "committed_by");
        }
        let (read, took) = app
            .http
            .get_until(&path, opts.read_wait, |a| a.status == 200)
            .await;
        if let Some(answer) = p.answered(read) {
            if p.status(&answer, &[200])
                && let Some(obj) = p.object(&answer)
            {
                p.equal(obj, "user", app.user);
                p.equal(obj, "email", email.as_str());
                p.equal(obj, "name", name.as_str());
                p.string(obj, "home");
                p.one_of(obj, "source", &["cache", "db"]);
                note = format!("read back after {}", secs(took));
            } else {
                p.add(format!("(read retried for {})", secs(opts.read_wait)));
            }
        }
    }
    Check::verdict_noted(app.url(), "profile", p, note)
}

/// `erasure`: `DELETE /users/{id}` answers 200 with counts equal to what the checks wrote as
/// that user through this app (`deleted_writes`: every acknowledged write id;
/// `deleted_keys`: every key, each last written by the user; `deleted_profiles`: 1);
/// `erasure.profile-gone`: the profile then reads as 404 `{"found": false}`;
/// `erasure.key-gone`: so does every key the user wrote. Both reads are retried for
/// `read_wait` (a replica applies the deletion late).
pub(super) async fn checks(app: &App, opts: &Options) -> Vec<Check> {
    let mut p = Problems::new();
    if let Some(answer) = p.answered(app.http.delete(&format!("/users/{}", app.user)).await)
        && p.status(&answer, &[200])
        && let Some(obj) = p.object(&answer)
    {
        p.equal(obj, "user", app.user);
        for (field, wrote, what) in [
            ("deleted_writes", app.writes.len(), "write ids acknowledged"),
            ("deleted_keys", app.keys.len(), "keys written"),
            (
                "deleted_profiles",
                usize::from(app.profile),
                "profiles written",
            ),
        ] {
            if let Some(n) = p.int(obj, field)
                && usize::try_from(n).ok() != Some(wrote)
            {
                p.add(format!(
                    "`{field}`: expected {wrote} (the {what} for this user), got {n}"
                ));
            }
        }
    }
    if !p.0.is_empty() {
        p.add(format!(
            "(what the checks wrote may remain: keys {}-*, user {})",
            app.prefix, app.user
        ));
    }
    let erasure = Check::verdict(app.url(), "erasure", p);
    vec![
        erasure,
        profile_gone(app, opts).await,
        keys_gone(app, opts).await,
    ]
}

/// `erasure.profile-gone`.
async fn profile_gone(app: &App, opts: &Options) -> Check {
    let mut p = Problems::new();
    let path = format!("/users/{}/profile", app.user);
    expect_gone(&mut p, app, opts, &path, "the erased user's profile").await;
    Check::verdict(app.url(), "erasure.profile-gone", p)
}

/// `erasure.key-gone`.
async fn keys_gone(app: &App, opts: &Options) -> Check {
    let mut p = Problems::new();
    for key in &app.keys {
        let path = format!("/kv/{}", key.replace('/', "%2F"));
        let what = format!("key {key:?}, last written by the erased user,");
        expect_gone(&mut p, app, opts, &path, &what).await;
    }
    if app.keys.is_empty() {
        p.add("no write was acknowledged: no key to look for");
    }
    Check::verdict(app.url(), "erasure.key-gone", p)
}

/// Reads `path` until it is a 404 (for up to the read wait): a 200 is `what` still served;
/// any other answer must be a 404 with `found: false`.
async fn expect_gone(p: &mut Problems, app: &App, opts: &Options, path: &str, what: &str) {
    let (read, _) = app
        .http
        .get_until(path, opts.read_wait, |a| a.status == 404)
        .await;
    let Some(answer) = p.answered(read) else {
        return;
    };
    if answer.status == 200 {
        p.add(format!(
            "{what} is still served (status 200, {}; read retried for {})",
            answer.shown(),
            secs(opts.read_wait)
        ));
    } else if p.status(&answer, &[404])
        && let Some(obj) = p.object(&answer)
    {
        p.equal(obj, "found", false);
    }
}
