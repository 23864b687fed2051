//! With one app per region: every app says which region it is (the harness attributes
//! operations and findings by it), and a write through one app becomes readable through the
//! others (replication, which the stale-read and lost-write checkers measure).

use super::{App, Check, Ids, Options, Problems, secs};
use serde_json::Value;

/// `regions.distinct`, then `replication` once per app (its write read through the next
/// app), skipped in the `partitioned` posture.
pub(super) async fn checks(apps: &mut [App], ids: &mut Ids, opts: &Options) -> Vec<Check> {
    let mut out = vec![distinct(apps)];
    let partitioned = apps
        .iter()
        .find(|a| a.posture.as_deref() == Some("partitioned"))
        .map(|a| a.url().to_string());
    for i in 0..apps.len() {
        let j = (i + 1) % apps.len();
        let label = format!("{} -> {}", apps[i].url(), apps[j].url());
        if let Some(url) = &partitioned {
            out.push(Check::skip(
                &label,
                "replication",
                format!(
                    "{} reports posture partitioned: a user's data lives in its home region, \
                     so a write is not expected in another region's reads",
                    url
                ),
            ));
            continue;
        }
        out.push(replicated(apps, i, j, &label, ids, opts).await);
    }
    out
}

/// `regions.distinct`: each app reports a region in `/health`, and no two the same.
fn distinct(apps: &[App]) -> Check {
    let label = apps.iter().map(App::url).collect::<Vec<_>>().join(", ");
    let mut p = Problems::new();
    for (i, a) in apps.iter().enumerate() {
        match &a.region {
            None => p.add(format!("{} reports no region in /health", a.url())),
            Some(r) => {
                if let Some(b) = apps[..i].iter().find(|b| b.region.as_ref() == Some(r)) {
                    p.add(format!(
                        "{} and {} both report region {r:?}",
                        b.url(),
                        a.url()
                    ));
                }
            }
        }
    }
    let regions: Vec<&str> = apps.iter().filter_map(|a| a.region.as_deref()).collect();
    Check::verdict_noted(&label, "regions.distinct", p, regions.join(", "))
}

/// `replication`: a write through `apps[from]` is read through `apps[to]` within
/// `replication_wait`.
async fn replicated(
    apps: &mut [App],
    from: usize,
    to: usize,
    label: &str,
    ids: &mut Ids,
    opts: &Options,
) -> Check {
    let mut p = Problems::new();
    let key = apps[from].key("replicated");
    let write_id = ids.write();
    let value = format!("{key}-{write_id}");
    let mut note = String::new();
    if let Some(answer) = p.answered(apps[from].put(&key, &key, &value, write_id).await)
        && p.status(&answer, &[200])
    {
        let (read, took) = apps[to]
            .http
            .get_until(&format!("/kv/{key}"), opts.replication_wait, |a| {
                a.status == 200 && a.json.get("value") == Some(&Value::from(value.as_str()))
            })
            .await;
        if let Some(answer) = p.answered(read) {
            let got = answer.json.get("value");
            if answer.status == 200 && got == Some(&Value::from(value.as_str())) {
                note = format!("readable after {}", secs(took));
            } else {
                p.add(format!(
                    "the write was not readable through {} within {} (last answer: status {}, {})",
                    apps[to].url(),
                    secs(opts.replication_wait),
                    answer.status,
                    answer.shown()
                ));
            }
        }
    }
    Check::verdict_noted(label, "replication", p, note)
}
