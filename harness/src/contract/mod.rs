//! `regiondrill contract URL…`: does an app honour the HTTP contract the harness and its
//! checkers rely on (`stacks/app/README.md`: routes, answers, the errors table, the
//! `fail`/`unknown` split, erasure)?
//!
//! Users drill their own app in place of the sample app. A drill against an app that answers
//! a replayed write with 200, or forgets `committed_by`, or erases nothing, produces findings
//! about the app's HTTP layer rather than about the stack under faults, and those are hard to
//! tell apart afterwards. So the contract is checked first, against the live apps (one per
//! region), over real HTTP, and every gap is named: which check, what was expected, what came.
//!
//! # Layout
//! - this file: the runner ([`run`]), its [`Options`], the [`Check`] result and the
//!   [`Report`]; the HTTP client every check shares and the small vocabulary the checks use
//!   to say what was wrong.
//! - `health.rs`: `GET /health` (its shape, and whether the app is ready) and `GET /admin/db`.
//! - `kv.rs`: `PUT`/`GET /kv/{key}`: acknowledgements, versions, replays, read-your-write,
//!   absent keys, percent-decoded keys.
//! - `errors.rs`: the error answers: malformed body, no route, wrong method.
//! - `counters.rs`: `POST /counters/{key}/incr` and `GET /counters/{key}`.
//! - `erasure.rs`: profiles, then `DELETE /users/{id}` and what must be gone after it.
//! - `regions.rs`: with several apps, distinct regions and replication between them.
//!
//! Everything a check writes lives under keys prefixed `regiondrill-contract-<random>` and
//! users with random ids from 9·10^15 (far above any workload's, and below 2^53 so that an
//! app parsing JSON numbers as doubles still sees them exactly); the erasure check, which runs
//! last, removes it again. Counters cannot be erased through the contract: the counter check
//! brings its counter back to 0, and that one row remains.

mod counters;
mod erasure;
mod errors;
mod health;
mod kv;
mod regions;

use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

/// How patient the checks are.
#[derive(Debug, Clone)]
pub struct Options {
    /// Timeout of every request. A check whose request times out fails; an app whose first
    /// request (`GET /health`) gets no answer at all is unreachable.
    pub timeout: Duration,
    /// How long a read through the app that wrote may take to show the write (reads go to a
    /// replica, which lags the primary): reads are retried every 100 ms until then.
    pub read_wait: Duration,
    /// How long a write through one app may take to be readable through another.
    pub replication_wait: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(3),
            read_wait: Duration::from_secs(2),
            replication_wait: Duration::from_secs(5),
        }
    }
}

/// Why the contract could not be checked at all (as opposed to a check failing).
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// A URL is not an `http://host:port` base URL.
    #[error("{url}: not a base URL ({why}); expected e.g. http://127.0.0.1:8080")]
    BadUrl {
        /// As given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// Apps that did not answer `GET /health` at all (refused, timed out, not HTTP): nothing
    /// can be checked against them. Every such app is named, not only the first.
    #[error("{}", unreachable(.0))]
    Unreachable(
        /// Each app's base URL and what the client saw.
        Vec<(String, String)>,
    ),
    /// No URL was given.
    #[error("no app URL given")]
    NoUrl,
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}

/// `cannot reach URL: error`, one per app, `; `-separated.
fn unreachable(apps: &[(String, String)]) -> String {
    apps.iter()
        .map(|(url, error)| format!("cannot reach {url}: {error}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The app did what the contract says.
    Pass,
    /// It did not; [`Check::detail`] says how.
    Fail,
    /// Not applicable to this app (the detail says why).
    Skip,
}

impl Status {
    /// `PASS`, `FAIL` or `SKIP`.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// The result of one check against one app (or, for the cross-region checks, several).
#[derive(Debug, Clone)]
pub struct Check {
    /// Which app: its base URL, or `A -> B` / the URLs joined for the cross-region checks.
    pub app: String,
    /// The check's stable name (`kv.replay`, `erasure.profile-gone`, …): what tests and
    /// scripts match on.
    pub name: &'static str,
    /// Pass, fail or skip.
    pub status: Status,
    /// For a failure, everything that was wrong (expected vs got), `; `-separated; for a
    /// pass or a skip, an optional note.
    pub detail: String,
}

impl Check {
    /// A pass with a note (may be empty).
    fn pass(app: &str, name: &'static str, note: impl Into<String>) -> Check {
        Check {
            app: app.to_string(),
            name,
            status: Status::Pass,
            detail: note.into(),
        }
    }

    /// A skip, saying why.
    fn skip(app: &str, name: &'static str, why: impl Into<String>) -> Check {
        Check {
            app: app.to_string(),
            name,
            status: Status::Skip,
            detail: why.into(),
        }
    }

    /// A pass when `problems` is empty, else a failure listing them.
    fn verdict(app: &str, name: &'static str, problems: Problems) -> Check {
        Check::verdict_noted(app, name, problems, "")
    }

    /// [`Check::verdict`] with a note shown when it passes.
    fn verdict_noted(
        app: &str,
        name: &'static str,
        problems: Problems,
        note: impl Into<String>,
    ) -> Check {
        if problems.0.is_empty() {
            Check::pass(app, name, note)
        } else {
            Check {
                app: app.to_string(),
                name,
                status: Status::Fail,
                detail: problems.0.join("; "),
            }
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  {}  {}", self.status.label(), self.app, self.name)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// Every check's result, in the order run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The apps' base URLs, as checked.
    pub urls: Vec<String>,
    /// One entry per check.
    pub checks: Vec<Check>,
}

impl Report {
    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    /// Whether every check passed (or was skipped).
    pub fn passed(&self) -> bool {
        self.failures().next().is_none()
    }

    /// The process exit status: 0 every check passed, 1 one failed. (2, unreachable, is
    /// [`ContractError`].)
    pub fn exit_code(&self) -> u8 {
        if self.passed() { 0 } else { 1 }
    }

    /// The last line: how many passed, failed and were skipped, and which failed.
    pub fn summary(&self) -> String {
        let count = |s| self.checks.iter().filter(|c| c.status == s).count();
        let apps = match self.urls.len() {
            1 => "1 app".to_string(),
            n => format!("{n} apps"),
        };
        let mut line = format!(
            "contract: {} passed, {} failed, {} skipped ({apps})",
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip),
        );
        let failed: BTreeSet<&str> = self.failures().map(|c| c.name).collect();
        if !failed.is_empty() {
            line.push_str(": ");
            line.push_str(&failed.into_iter().collect::<Vec<_>>().join(", "));
        }
        line
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            writeln!(f, "{check}")?;
        }
        writeln!(f, "{}", self.summary())
    }
}

/// Checks the apps at `urls` (one per region): every single-app check against each app, then
/// (with several) the cross-region ones, then erasure, which also removes what the checks
/// wrote. Err only when the contract cannot be checked at all: a bad URL, or an app that
/// does not answer `GET /health`.
pub async fn run(urls: &[String], opts: &Options) -> Result<Report, ContractError> {
    if urls.is_empty() {
        return Err(ContractError::NoUrl);
    }
    let bases = urls
        .iter()
        .map(|u| base_url(u))
        .collect::<Result<Vec<_>, _>>()?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(opts.timeout)
        .build()
        .map_err(|e| ContractError::Client(e.to_string()))?;
    let run_tag = format!("{:08x}", rand::random::<u32>());
    let mut ids = Ids::new();
    let mut apps = Vec::new();
    let mut unreached = Vec::new();
    for (i, base) in bases.iter().enumerate() {
        let http = Http {
            client: client.clone(),
            base: base.clone(),
        };
        // Reachability first, for every app, before anything is written anywhere.
        let first = match http.get("/health").await {
            Ok(answer) => answer,
            Err(error) => {
                unreached.push((base.clone(), error));
                continue;
            }
        };
        apps.push(App {
            http,
            prefix: format!("regiondrill-contract-{run_tag}-{i}"),
            user: ids.user(),
            first_health: Some(first),
            region: None,
            posture: None,
            writes: BTreeSet::new(),
            keys: BTreeSet::new(),
            profile: false,
        });
    }

    if !unreached.is_empty() {
        return Err(ContractError::Unreachable(unreached));
    }
    let mut checks = Vec::new();
    for app in &mut apps {
        checks.extend(health::checks(app));
        checks.extend(kv::checks(app, &mut ids, opts).await);
        checks.extend(errors::checks(app).await);
        checks.push(counters::check(app, opts).await);
        checks.push(erasure::profile(app, opts).await);
        checks.push(health::admin_db(app).await);
    }
    if apps.len() > 1 {
        checks.extend(regions::checks(&mut apps, &mut ids, opts).await);
    }
    for app in &mut apps {
        checks.extend(erasure::checks(app, opts).await);
    }
    Ok(Report {
        urls: bases,
        checks,
    })
}

/// `http://host:port` from what the user typed: a missing scheme means `http://`; a trailing
/// `/` is dropped (paths are appended).
fn base_url(given: &str) -> Result<String, ContractError> {
    let with_scheme = if given.contains("://") {
        given.to_string()
    } else {
        format!("http://{given}")
    };
    let bad = |why: String| ContractError::BadUrl {
        url: given.to_string(),
        why,
    };
    let url = reqwest::Url::parse(&with_scheme).map_err(|e| bad(e.to_string()))?;
    if url.scheme() != "http" {
        return Err(bad(format!(
            "scheme {}: only http is supported",
            url.scheme()
        )));
    }
    if url.host_str().is_none() {
        return Err(bad("no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a query or fragment".into()));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// One app under check, and what the checks wrote through it (what its erasure must count).
struct App {
    /// Requests to it.
    http: Http,
    /// Prefix of every key the checks use through this app.
    prefix: String,
    /// The user every write through this app is made as.
    user: i64,
    /// The answer to the reachability probe, which the health check then judges.
    first_health: Option<Answer>,
    /// `region` from `/health`, once known.
    region: Option<String>,
    /// `posture` from `/health`, when it says (`single-writer` makes `timeline` required).
    posture: Option<String>,
    /// The write ids of this user's writes the app acknowledged (200).
    writes: BTreeSet<i64>,
    /// The keys those writes went to (every one last written by this user).
    keys: BTreeSet<String>,
    /// Whether this user's profile was acknowledged.
    profile: bool,
}

impl App {
    /// The app's base URL, as it names checks.
    fn url(&self) -> &str {
        &self.http.base
    }

    /// A key of this app's checks.
    fn key(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// `PUT /kv/{path_key}` as this app's user: `{"value", "write_id", "user"}`. A 200 is
    /// remembered (as `key`, the decoded key) for the erasure check's counts.
    async fn put(
        &mut self,
        path_key: &str,
        key: &str,
        value: &str,
        write_id: i64,
    ) -> Result<Answer, String> {
        let body = serde_json::json!({"value": value, "write_id": write_id, "user": self.user});
        let answer = self.http.put(&format!("/kv/{path_key}"), &body).await?;
        if answer.status == 200 {
            self.writes.insert(write_id);
            self.keys.insert(key.to_string());
        }
        Ok(answer)
    }
}

/// Fresh ids: users from 9·10^15, write ids above them, both below 2^53.
struct Ids {
    next_write: i64,
}

/// The lowest id used: far above what workloads use.
const ID_FLOOR: i64 = 9_000_000_000_000_000;
/// The first id a JSON reader using doubles would round.
const ID_CEILING: i64 = 1 << 53;

impl Ids {
    fn new() -> Ids {
        Ids {
            // Leave room above for the write ids of one run.
            next_write: rand::random_range(ID_FLOOR..ID_CEILING - 1_000_000),
        }
    }

    /// A random user id.
    fn user(&self) -> i64 {
        rand::random_range(ID_FLOOR..ID_CEILING)
    }

    /// A write id not used before in this run.
    fn write(&mut self) -> i64 {
        self.next_write += 1;
        self.next_write
    }
}

/// An HTTP answer: status and body (parsed as JSON when it is JSON).
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    /// The body as JSON; `Null` when it is not JSON (see `text`).
    json: Value,
    /// The body as text (shortened), for messages.
    text: String,
}

impl Answer {
    /// The body, shortened for a message.
    fn shown(&self) -> String {
        if self.text.is_empty() {
            "empty body".to_string()
        } else {
            format!("body {}", self.text)
        }
    }
}

/// The client of one app.
#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    async fn get(&self, path: &str) -> Result<Answer, String> {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn put(&self, path: &str, body: &Value) -> Result<Answer, String> {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Answer, String> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Result<Answer, String> {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// One request. Err: no answer (the message says why: refused, timed out, …).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let what = format!("{method} {path}");
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| no_answer(&what, &e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| no_answer(&what, &e))?;
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let mut text = String::from_utf8_lossy(&bytes).trim().to_string();
        if text.chars().count() > 200 {
            text = text.chars().take(200).collect::<String>() + "…";
        }
        Ok(Answer { status, json, text })
    }

    /// Repeats `GET path` every 100 ms until `done` accepts the answer or `wait` has passed;
    /// returns the last answer and how long it took. For reads that may lag a write (a
    /// replica, another region).
    async fn get_until(
        &self,
        path: &str,
        wait: Duration,
        done: impl Fn(&Answer) -> bool,
    ) -> (Result<Answer, String>, Duration) {
        let start = Instant::now();
        loop {
            let answer = self.get(path).await;
            let ok = answer.as_ref().is_ok_and(&done);
            if ok || start.elapsed() >= wait {
                return (answer, start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A request that got no answer, in one line with the error's causes.
fn no_answer(what: &str, e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let line = s.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = s.source();
    }
    if e.is_timeout() {
        text.push_str(" (timed out)");
    }
    format!("{what}: no answer: {text}")
}

/// What was wrong, as the check found it, in the words a failure line prints.
#[derive(Debug, Default)]
struct Problems(Vec<String>);

impl Problems {
    fn new() -> Problems {
        Problems::default()
    }

    /// Records `what` as wrong.
    fn add(&mut self, what: impl Into<String>) {
        self.0.push(what.into());
    }

    /// The request's answer, or (recorded) why there was none.
    fn answered(&mut self, answer: Result<Answer, String>) -> Option<Answer> {
        answer.map_err(|e| self.add(e)).ok()
    }

    /// Whether the status is one of `want` (recorded when not, with the body).
    fn status(&mut self, answer: &Answer, want: &[u16]) -> bool {
        if want.contains(&answer.status) {
            return true;
        }
        let want: Vec<String> = want.iter().map(u16::to_string).collect();
        self.add(format!(
            "expected status {}, got {} ({})",
            want.join(" or "),
            answer.status,
            answer.shown()
        ));
        false
    }

    /// The JSON object of the body (recorded when it is not one).
    fn object<'a>(&mut self, answer: &'a Answer) -> Option<&'a Value> {
        if answer.json.is_object() {
            Some(&answer.json)
        } else {
            self.add(format!("expected a JSON object, got {}", answer.shown()));
            None
        }
    }

    /// The field at `path` (dot-separated), recorded as missing when absent.
    fn field<'a>(&mut self, obj: &'a Value, path: &str) -> Option<&'a Value> {
        let mut at = obj;
        for part in path.split('.') {
            match at.get(part) {
                Some(v) => at = v,
                None => {
                    self.add(format!("missing field `{path}`"));
                    return None;
                }
            }
        }
        Some(at)
    }

    /// A string field.
    fn string<'a>(&mut self, obj: &'a Value, path: &str) -> Option<&'a str> {
        let v = self.field(obj, path)?;
        let s = v.as_str();
        if s.is_none() {
            self.add(format!("`{path}`: expected a string, got {v}"));
        }
        s
    }

    /// An integer field.
    fn int(&mut self, obj: &Value, path: &str) -> Option<i64> {
        let v = self.field(obj, path)?;
        let n = v.as_i64();
        if n.is_none() {
            self.add(format!("`{path}`: expected an integer, got {v}"));
        }
        n
    }

    /// A field that must equal `want`.
    fn equal(&mut self, obj: &Value, path: &str, want: impl Into<Value>) {
        let want = want.into();
        if let Some(v) = self.field(obj, path)
            && *v != want
        {
            self.add(format!("`{path}`: expected {want}, got {v}"));
        }
    }

    /// A string field that must be one of `allowed`.
    fn one_of(&mut self, obj: &Value, path: &str, allowed: &[&str]) -> Option<String> {
        let s = self.string(obj, path)?;
        if allowed.contains(&s) {
            Some(s.to_string())
        } else {
            let allowed: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
            self.add(format!(
                "`{path}`: expected {}, got {s:?}",
                allowed.join(" or ")
            ));
            None
        }
    }

    /// An error answer: `want` status and `{"error": string, "outcome": "fail"}`.
    fn error(&mut self, answer: &Answer, want: u16) {
        if !self.status(answer, &[want]) {
            return;
        }
        if let Some(obj) = self.object(answer) {
            self.string(obj, "error");
            self.equal(obj, "outcome", "fail");
        }
    }
}

/// A duration for notes: `0.12 s`.
fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_get_a_scheme_and_lose_the_trailing_slash() {
        assert_eq!(base_url("127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(
            base_url("http://localhost:8080/").unwrap(),
            "http://localhost:8080"
        );
        assert_eq!(
            base_url("http://h:1/app/").unwrap(),
            "http://h:1/app",
            "a path prefix is kept"
        );
        assert!(matches!(
            base_url("https://h:1"),
            Err(ContractError::BadUrl { .. })
        ));
        assert!(matches!(
            base_url("http://h:1/?x=1"),
            Err(ContractError::BadUrl { .. })
        ));
    }

    #[test]
    fn ids_are_from_9e15_and_exact_as_doubles() {
        let mut ids = Ids::new();
        for _ in 0..1000 {
            let (u, w) = (ids.user(), ids.write());
            for id in [u, w] {
                assert!((ID_FLOOR..ID_CEILING).contains(&id), "{id}");
                assert_eq!(id as f64 as i64, id);
            }
        }
    }

    #[test]
    fn problems_say_expected_and_got() {
        let answer = Answer {
            status: 200,
            json: serde_json::json!({"version": "2", "outcome": "unknown"}),
            text: String::new(),
        };
        let mut p = Problems::new();
        p.int(&answer.json, "version");
        p.string(&answer.json, "committed_by");
        p.equal(&answer.json, "outcome", "fail");
        p.status(&answer, &[409]);
        assert_eq!(
            p.0,
            [
                "`version`: expected an integer, got \"2\"",
                "missing field `committed_by`",
                "`outcome`: expected \"fail\", got \"unknown\"",
                "expected status 409, got 200 (empty body)",
            ]
        );
    }

    #[test]
    fn the_summary_names_the_failed_checks() {
        let report = Report {
            urls: vec!["http://a".into()],
            checks: vec![
                Check::pass("http://a", "health", ""),
                Check::verdict("http://a", "kv.replay", Problems(vec!["x".into()])),
                Check::skip("http://a", "replication", "one app"),
            ],
        };
        assert_eq!(report.exit_code(), 1);
        assert_eq!(
            report.summary(),
            "contract: 1 passed, 1 failed, 1 skipped (1 app): kv.replay"
        );
        assert_eq!(report.checks[1].to_string(), "FAIL  http://a  kv.replay: x");
    }
}
