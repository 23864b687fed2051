use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::Stack;

#[tokio::test]
async fn redis_down_makes_health_503_but_reads_and_writes_still_succeed() {
    let mut stack = Stack::start(&["--cache-ttl-ms", "60000"]);
    assert_eq!(
        stack
            .put("/kv/a", json!({"value": "v1", "write_id": 1}))
            .await
            .0,
        200
    );
    assert_eq!(stack.get("/kv/a").await.1["source"], "db");
    assert_eq!(stack.get("/kv/a").await.1["source"], "cache");

    stack.redis.kill();

    let (status, health) = stack.get("/health").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["role"], "primary");
    assert_eq!(health["checks"]["cache"]["ok"], false);
    assert!(health["checks"]["cache"]["error"].is_string(), "{health}");
    assert_eq!(health["checks"]["write_db"]["ok"], true);
    assert_eq!(health["checks"]["read_db"]["ok"], true);

    // Reads fall back to the DB, promptly; writes skip the cache delete.
    let start = Instant::now();
    let (status, read) = stack.get("/kv/a").await;
    assert_eq!(
        (status, read["source"].clone(), read["value"].clone()),
        (200, json!("db"), json!("v1"))
    );
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "read took {:?}",
        start.elapsed()
    );
    let (status, ack) = stack
        .put("/kv/a", json!({"value": "v2", "write_id": 2}))
        .await;
    assert_eq!((status, ack["version"].clone()), (200, json!(2)), "{ack}");
    assert_eq!(stack.get("/kv/a").await.1["value"], "v2");
    assert_eq!(stack.get("/kv/nope").await.0, 404);

    // Redis comes back (empty): the app reconnects on its own.
    stack.redis.restart();
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, health) = stack.get("/health").await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < until,
            "health still 503 after Redis came back: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stack.get("/kv/a").await.1["source"], "db");
    assert_eq!(stack.get("/kv/a").await.1["source"], "cache");
}

#[tokio::test]
async fn db_down_fails_writes_with_503_fail_and_the_app_recovers_when_it_returns() {
    let mut stack = Stack::start(&[]);
    assert_eq!(
        stack
            .put("/kv/a", json!({"value": "v1", "write_id": 1}))
            .await
            .0,
        200
    );
    assert_eq!(stack.get("/kv/a").await.1["source"], "db");
    // Warm both pools with several connections, so dead ones must be discarded on recovery.
    let warm = (0..8).map(|i| stack.get(if i % 2 == 0 { "/counters/x" } else { "/kv/zz" }));
    futures::future::join_all(warm).await;

    stack.pg.stop();

    let start = Instant::now();
    let (status, answer) = stack
        .put("/kv/a", json!({"value": "v2", "write_id": 2}))
        .await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["outcome"], "fail");
    assert!(
        answer["error"].as_str().unwrap().contains("write db"),
        "{answer}"
    );
    assert!(
        start.elapsed() < Duration::from_millis(1700),
        "took {:?}",
        start.elapsed()
    );
    let (status, answer) = stack.post("/counters/c/incr", json!({})).await;
    assert_eq!(
        (status, answer["outcome"].clone()),
        (503, json!("fail")),
        "{answer}"
    );
    let (status, answer) = stack.delete("/users/1").await;
    assert_eq!(
        (status, answer["outcome"].clone()),
        (503, json!("fail")),
        "{answer}"
    );
    let (status, answer) = stack.get("/kv/uncached").await;
    assert_eq!(
        (status, answer["outcome"].clone()),
        (503, json!("fail")),
        "{answer}"
    );
    assert!(
        answer["error"].as_str().unwrap().contains("read db"),
        "{answer}"
    );
    // The cache still answers what it holds.
    assert_eq!(stack.get("/kv/a").await.1["source"], "cache");

    let (status, health) = stack.get("/health").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["role"], "unknown");
    assert_eq!(health["checks"]["write_db"]["ok"], false);
    assert_eq!(health["checks"]["read_db"]["ok"], false);
    assert_eq!(health["checks"]["cache"]["ok"], true);

    // The DB returns: the very next requests succeed, no broken connection is handed out.
    stack.pg.restart();
    for write_id in 3..13 {
        let (status, ack) = stack
            .put(
                "/kv/a",
                json!({"value": format!("v{write_id}"), "write_id": write_id}),
            )
            .await;
        assert_eq!(status, 200, "write {write_id} after the DB returned: {ack}");
    }
    assert_eq!(stack.get("/counters/x").await.0, 200);
    assert_eq!(stack.get("/health").await.0, 200);
    // Write 2 failed, so it is not in the log.
    let client = stack.pg.client("postgres").await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM writes WHERE write_id = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_commit_left_unanswered_is_504_unknown_and_may_have_committed() {
    // A deadline long enough that a loaded machine still gets BEGIN and the statements done
    // in time: only the COMMIT must be the step that runs out of it.
    let stack = Stack::start(&["--request-timeout-ms", "1000"]);
    assert_eq!(
        stack
            .put("/kv/a", json!({"value": "v1", "write_id": 1}))
            .await
            .0,
        200
    );
    assert_eq!(
        stack.post("/counters/c/incr", json!({})).await.1["value"],
        1
    );

    // Synchronous replication to a standby that does not exist: every COMMIT commits locally,
    // then waits forever for the standby's confirmation.
    let admin = stack.pg.client("postgres").await;
    admin
        .batch_execute("ALTER SYSTEM SET synchronous_standby_names = 'ghost'")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let start = Instant::now();
    let (status, answer) = stack
        .put("/kv/a", json!({"value": "v2", "write_id": 2}))
        .await;
    let took = start.elapsed();
    assert_eq!(status, 504, "{answer}");
    assert_eq!(answer["outcome"], "unknown");
    assert!(
        answer["error"].as_str().unwrap().contains("COMMIT"),
        "{answer}"
    );
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(3000),
        "took {took:?}"
    );
    let (status, answer) = stack.post("/counters/c/incr", json!({})).await;
    assert_eq!(
        (status, answer["outcome"].clone()),
        (504, json!("unknown")),
        "{answer}"
    );

    // Reads and health do not commit anything, so they still work.
    assert_eq!(stack.get("/kv/a").await.1["version"], 1);
    assert_eq!(stack.get("/health").await.0, 200);

    // The standby requirement goes: the waiting commits complete. The "unknown" write did take
    // effect, which is why the app could not call it failed.
    admin
        .batch_execute("ALTER SYSTEM RESET synchronous_standby_names")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    // Both stuck commits (the write and the increment, on separate connections) finish on
    // their own schedule once released: wait for each.
    let until = Instant::now() + Duration::from_secs(5);
    let mut counter: i64;
    loop {
        let n: i64 = admin
            .query_one("SELECT count(*) FROM writes WHERE write_id = 2", &[])
            .await
            .unwrap()
            .get(0);
        counter = admin
            .query_one("SELECT value FROM counters WHERE key = 'c'", &[])
            .await
            .unwrap()
            .get(0);
        if n == 1 && counter == 2 {
            break;
        }
        assert!(
            Instant::now() < until,
            "the unanswered commits never completed (write found {n} times, counter {counter})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counter, 2);

    // The app discarded the stuck connections and carries on.
    let (status, ack) = stack
        .put("/kv/a", json!({"value": "v3", "write_id": 3}))
        .await;
    assert_eq!((status, ack["version"].clone()), (200, json!(3)), "{ack}");
}
