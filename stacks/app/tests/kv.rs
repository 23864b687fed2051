use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::support::{APP_BIN, Stack, migrate};

#[tokio::test]
async fn writes_bump_versions_log_every_write_and_reads_go_through_the_cache() {
    let stack = Stack::start(&["--cache-ttl-ms", "400"]);

    let (status, body) = stack.get("/kv/a").await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"key": "a", "found": false, "source": "db", "region": "us"})
    );

    let before_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (status, ack) = stack
        .put("/kv/a", json!({"value": "v1", "write_id": 1, "user": 7}))
        .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["key"], "a");
    assert_eq!(ack["value"], "v1");
    assert_eq!(ack["version"], 1);
    assert_eq!(ack["write_id"], 1);
    assert_eq!(ack["region"], "us");
    // A fresh cluster writes on timeline 1 (a promotion would start timeline 2).
    assert_eq!(ack["timeline"], 1, "{ack}");
    let ts_ms = ack["ts_ms"].as_u64().expect("ts_ms is an integer");
    assert!(
        ts_ms >= before_ms && ts_ms < before_ms + 10_000,
        "ts_ms {ts_ms}"
    );

    // A miss reads the DB and fills the cache; the next read is a hit.
    let (status, read) = stack.get("/kv/a").await;
    assert_eq!(status, 200);
    let expected = |source: &str, value: &str, version: i64, write_id: i64| {
        json!({"key": "a", "value": value, "version": version, "write_id": write_id,
               "source": source, "region": "us"})
    };
    assert_eq!(read, expected("db", "v1", 1, 1));
    assert_eq!(stack.get("/kv/a").await.1, expected("cache", "v1", 1, 1));
    let pttl: i64 = stack
        .redis
        .command(&["PTTL", "kv:a"])
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!(pttl > 0 && pttl <= 400, "PTTL {pttl}");
    assert_eq!(
        stack.redis.command(&["GET", "kv:a"]),
        format!(
            "${}\r\n{}\r\n",
            r#"{"value":"v1","version":1,"write_id":1}"#.len(),
            r#"{"value":"v1","version":1,"write_id":1}"#
        )
    );

    // A write deletes the cache entry: the next read is a miss that sees the new version.
    let (status, ack) = stack
        .put("/kv/a", json!({"value": "v2", "write_id": 2}))
        .await;
    assert_eq!((status, ack["version"].clone()), (200, json!(2)));
    assert_eq!(stack.get("/kv/a").await.1, expected("db", "v2", 2, 2));
    assert_eq!(stack.get("/kv/a").await.1, expected("cache", "v2", 2, 2));
    // The entry expires after the TTL.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(stack.get("/kv/a").await.1["source"], "db");

    // Keys are percent-decoded path segments.
    let (status, ack) = stack
        .put(
            "/kv/caf%C3%A9%2Fx%20y",
            json!({"value": "ü", "write_id": 3, "user": 8}),
        )
        .await;
    assert_eq!((status, ack["key"].clone()), (200, json!("café/x y")));
    assert_eq!(stack.get("/kv/caf%C3%A9%2Fx%20y").await.1["value"], "ü");

    // Every committed write is in the log, with its version and region.
    let client = stack.pg.client("postgres").await;
    let rows = client
        .query(
            "SELECT write_id, key, value, version, user_id, region FROM writes ORDER BY write_id",
            &[],
        )
        .await
        .unwrap();
    let log: Vec<(i64, String, String, i64, Option<i64>, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    assert_eq!(
        log,
        vec![
            (1, "a".into(), "v1".into(), 1, Some(7), "us".into()),
            (2, "a".into(), "v2".into(), 2, None, "us".into()),
            (3, "café/x y".into(), "ü".into(), 1, Some(8), "us".into()),
        ]
    );
    let row = client
        .query_one(
            "SELECT value, version, write_id, user_id FROM kv WHERE key = 'a'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2),
            row.get::<_, Option<i64>>(3)
        ),
        ("v2".to_owned(), 2, 2, None)
    );

    // Health: everything answers; the read DB is a primary.
    let (status, health) = stack.get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["region"], "us");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["role"], "primary");
    for check in ["write_db", "read_db", "cache"] {
        assert_eq!(health["checks"][check]["ok"], true, "{health}");
        assert!(health["checks"][check]["ms"].as_f64().unwrap() >= 0.0);
        assert_eq!(health["checks"][check]["error"], json!(null));
    }
}

#[tokio::test]
async fn bad_requests_are_400_naming_the_field_and_replayed_writes_409() {
    let stack = Stack::start(&[]);

    let cases = [
        (json!({"write_id": 1}), "value"),
        (json!({"value": "x"}), "write_id"),
        (json!({"value": "x", "write_id": "one"}), "write_id"),
        (json!({"value": 5, "write_id": 1}), "value"),
        (json!({"value": "x", "write_id": 1, "user": "me"}), "user"),
    ];
    for (body, field) in cases {
        let (status, answer) = stack.put("/kv/k", body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["outcome"], "fail");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains(field),
            "{body}: error {error:?} does not name {field}"
        );
    }
    let response = stack
        .http
        .put(format!("{}/kv/k", stack.app.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["outcome"], "fail");

    let (status, answer) = stack.post("/counters/c/incr", json!({"by": "two"})).await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().contains("by"), "{answer}");
    let (status, answer) = stack.delete("/users/someone").await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().contains("id"), "{answer}");
    let (status, answer) = stack.get("/nowhere").await;
    assert_eq!((status, answer["outcome"].clone()), (404, json!("fail")));
    let (status, _) = stack.delete("/kv/k").await;
    assert_eq!(status, 405);

    // Nothing above reached the DB.
    let (status, _) = stack.get("/kv/k").await;
    assert_eq!(status, 404);

    // A write_id already in the log is refused, and changes nothing.
    assert_eq!(
        stack
            .put("/kv/k", json!({"value": "first", "write_id": 9}))
            .await
            .0,
        200
    );
    let (status, answer) = stack
        .put("/kv/k", json!({"value": "second", "write_id": 9}))
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["outcome"], "fail");
    let (_, read) = stack.get("/kv/k").await;
    assert_eq!(
        (read["value"].clone(), read["version"].clone()),
        (json!("first"), json!(1))
    );
    // The connection that saw the error was discarded; the next write works.
    assert_eq!(
        stack
            .put("/kv/k", json!({"value": "third", "write_id": 10}))
            .await
            .1["version"],
        2
    );
}

#[tokio::test]
async fn migrate_is_idempotent_and_bad_flags_fail_naming_the_flag() {
    let stack = Stack::start(&[]);
    migrate(&stack.pg.dsn("postgres"));
    migrate(&stack.pg.dsn("postgres"));

    let out = Command::new(APP_BIN)
        .args([
            "serve",
            "--region",
            "us",
            "--listen",
            "127.0.0.1:0",
            "--write-db",
            "host=127.0.0.1 port=notaport",
        ])
        .args([
            "--read-db",
            "host=127.0.0.1",
            "--redis",
            "redis://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--write-db"), "{stderr}");

    // Every flag also comes from the environment.
    let out = Command::new(APP_BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("REGIONDRILL_APP_REGION", "eu")
        .env("REGIONDRILL_APP_WRITE_DB", "host=127.0.0.1")
        .env("REGIONDRILL_APP_READ_DB", "host=127.0.0.1")
        .env("REGIONDRILL_APP_REDIS", "not a url")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--redis"), "{stderr}");
}
