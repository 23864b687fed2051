//! The simulated users' HTTP client for the app contract, and how each answer becomes an
//! outcome: `ok`, `fail` (certainly not done) or `unknown` (maybe done).

use crate::history::{OpKind, Outcome, Source};
use serde::Deserialize;
use std::time::Duration;

/// One client shared by every simulated user (keep-alive connections per app address).
#[derive(Debug, Clone)]
pub struct AppClient {
    http: reqwest::Client,
    timeout: Duration,
}

#[derive(Deserialize)]
struct Answer {
    region: Option<String>,
    version: Option<i64>,
    write_id: Option<u64>,
    source: Option<String>,
    outcome: Option<String>,
    error: Option<String>,
    committed_by: Option<String>,
    /// The timeline a write committed on.
    timeline: Option<u32>,
    /// A counter's value (a number); a key's value is a string and is not needed here.
    value: Option<serde_json::Value>,
}

impl AppClient {
    /// A client giving up on each operation after `timeout`.
    pub fn new(timeout: Duration) -> AppClient {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .expect("reqwest client with static settings");
        AppClient { http, timeout }
    }

    /// How long each operation may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `PUT /kv/{key}` with value `w{write_id}` for a user living in `home`, `GET /kv/{key}`,
    /// or `POST /counters/{key}/incr` by 1.
    pub async fn call(
        &self,
        base: &str,
        kind: OpKind,
        key: &str,
        write_id: u64,
        user: u32,
        home: &str,
    ) -> Outcome {
        let url = format!("{base}/kv/{key}");
        let req = match kind {
            OpKind::Write => self.http.put(&url).json(&serde_json::json!({ "value": format!("w{write_id}"), "write_id": write_id, "user": user, "home": home })),
            OpKind::Read => self.http.get(&url),
            OpKind::Incr => self.http.post(format!("{base}/counters/{key}/incr")).json(&serde_json::json!({ "by": 1 })),
            OpKind::ProfileWrite | OpKind::ProfileRead | OpKind::Erase => {
                return Outcome::Fail {
                    error: "personal-data operations go through AppClient::personal".into(),
                };
            }
        };
        self.send(kind, req).await
    }

    /// A personal-data operation of `user` (home `home`): `PUT /users/{user}/profile` with an
    /// email and a name that carry `token`, `GET /users/{user}/profile?home=…`, or
    /// `DELETE /users/{user}` (erasure). Other kinds go through [`AppClient::call`].
    pub async fn personal(
        &self,
        base: &str,
        kind: OpKind,
        user: u32,
        home: &str,
        token: &str,
    ) -> Outcome {
        let req = match kind {
            OpKind::ProfileWrite => {
                self.http
                    .put(format!("{base}/users/{user}/profile"))
                    .json(&serde_json::json!({
                        "email": format!("{token}@example.org"),
                        "name": format!("User {token}"),
                        "home": home,
                    }))
            }
            OpKind::ProfileRead => self
                .http
                .get(format!("{base}/users/{user}/profile?home={home}")),
            OpKind::Erase => self.http.delete(format!("{base}/users/{user}")),
            OpKind::Read | OpKind::Write | OpKind::Incr => {
                return Outcome::Fail {
                    error: "key-value operations go through AppClient::call".into(),
                };
            }
        };
        self.send(kind, req).await
    }

    /// Sends `req` and turns its answer into an outcome.
    async fn send(&self, kind: OpKind, req: reqwest::RequestBuilder) -> Outcome {
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return transport_outcome(kind, &e, self.timeout),
        };
        let status = resp.status();
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return transport_outcome(kind, &e, self.timeout),
        };
        let answer: Option<Answer> = serde_json::from_slice(&body).ok();
        classify(kind, status.as_u16(), answer, &body)
    }
}

fn classify(kind: OpKind, status: u16, answer: Option<Answer>, body: &[u8]) -> Outcome {
    let error = |a: &Option<Answer>| {
        a.as_ref().and_then(|a| a.error.clone()).unwrap_or_else(|| {
            format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )
        })
    };
    match (status, kind) {
        (200, _) | (404, OpKind::Read | OpKind::ProfileRead) => match answer {
            Some(a) => Outcome::Ok {
                served_by: a.region.unwrap_or_default(),
                version: a.version,
                write_id: a.write_id,
                source: match a.source.as_deref() {
                    Some("cache") => Some(Source::Cache),
                    Some("db") => Some(Source::Db),
                    _ => None,
                },
                committed_by: a.committed_by.filter(|c| !c.is_empty()),
                value: a.value.and_then(|v| v.as_i64()),
                timeline: a.timeline,
            },
            // A success we cannot read: for a write, it may have happened.
            None if matches!(kind, OpKind::Write | OpKind::ProfileWrite | OpKind::Erase) => {
                Outcome::Unknown {
                    error: format!("unreadable answer (HTTP {status})"),
                }
            }
            None => Outcome::Fail {
                error: format!("unreadable answer (HTTP {status})"),
            },
        },
        _ => {
            let said_fail = answer.as_ref().and_then(|a| a.outcome.as_deref()) == Some("fail");
            // Reads have no effect: any failure is a fail. Writes are `fail` only when the app
            // says so (4xx are rejected before anything is done).
            if is_read(kind) || said_fail || (400..500).contains(&status) {
                Outcome::Fail {
                    error: error(&answer),
                }
            } else {
                Outcome::Unknown {
                    error: error(&answer),
                }
            }
        }
    }
}

/// Whether `kind` only reads (any failure of it is a `fail`).
fn is_read(kind: OpKind) -> bool {
    matches!(kind, OpKind::Read | OpKind::ProfileRead)
}

/// A transport error: a write is `fail` only when the request certainly never reached the
/// app (the connection could not be made).
fn transport_outcome(kind: OpKind, e: &reqwest::Error, timeout: Duration) -> Outcome {
    let error = if e.is_timeout() {
        format!("no answer within {timeout:?}")
    } else {
        format!("{e}")
    };
    if is_read(kind) || e.is_connect() {
        Outcome::Fail { error }
    } else {
        Outcome::Unknown { error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Option<Answer> {
        serde_json::from_str(json).ok()
    }

    #[test]
    fn classifies_the_app_contract() {
        let ok = classify(
            OpKind::Write,
            200,
            answer(r#"{"region":"us","version":3,"write_id":9}"#),
            b"",
        );
        assert_eq!(
            ok,
            Outcome::Ok {
                timeline: None,
                served_by: "us".into(),
                version: Some(3),
                write_id: Some(9),
                source: None,
                committed_by: None,
                value: None
            }
        );
        let absent = classify(
            OpKind::Read,
            404,
            answer(r#"{"found":false,"source":"db","region":"eu"}"#),
            b"",
        );
        assert_eq!(
            absent,
            Outcome::Ok {
                timeline: None,
                served_by: "eu".into(),
                version: None,
                write_id: None,
                source: Some(Source::Db),
                committed_by: None,
                value: None
            }
        );
        assert!(matches!(
            classify(
                OpKind::Write,
                503,
                answer(r#"{"error":"no db","outcome":"fail"}"#),
                b""
            ),
            Outcome::Fail { .. }
        ));
        assert!(matches!(
            classify(
                OpKind::Write,
                504,
                answer(r#"{"error":"commit timed out","outcome":"unknown"}"#),
                b""
            ),
            Outcome::Unknown { .. }
        ));
        assert!(matches!(
            classify(OpKind::Write, 502, None, b"bad gateway"),
            Outcome::Unknown { .. }
        ));
        assert!(matches!(
            classify(OpKind::Read, 504, None, b""),
            Outcome::Fail { .. }
        ));
        assert!(matches!(
            classify(OpKind::Write, 400, answer(r#"{"error":"bad value"}"#), b""),
            Outcome::Fail { .. }
        ));
    }
}
