use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{App, Postgres, Redis, Stack, migrate, serve_args, within};

/// Two apps, `us` and `eu`, on one database, each with its own Redis and the other's as
/// `--remote-redis`, in `mode`.
struct CrossCache {
    us: App,
    eu: App,
    redis_us: Redis,
    redis_eu: Redis,
    pg: Postgres,
}

impl CrossCache {
    fn start(mode: &str) -> CrossCache {
        let pg = Postgres::start();
        let dsn = pg.dsn("postgres");
        migrate(&dsn);
        let (redis_us, redis_eu) = (Redis::start(), Redis::start());
        let app = |region: &str, local: &Redis, remote: &Redis| {
            let remote = remote.url();
            let extra = [
                "--cache-mode",
                mode,
                "--remote-redis",
                &remote,
                "--cache-ttl-ms",
                "60000",
            ];
            App::start(
                &serve_args(region, &dsn, &dsn, &local.url(), &extra),
                pg.file(&format!("{region}.log")),
            )
        };
        let us = app("us", &redis_us, &redis_eu);
        let eu = app("eu", &redis_eu, &redis_us);
        CrossCache {
            us,
            eu,
            redis_us,
            redis_eu,
            pg,
        }
    }
}

/// `/health`'s `stats`: (`kv_db_reads`, `single_flight_joins`).
async fn reads(app: &App) -> (u64, u64) {
    let (_, health) = app.get("/health").await;
    (
        health["stats"]["kv_db_reads"].as_u64().unwrap(),
        health["stats"]["single_flight_joins"].as_u64().unwrap(),
    )
}

/// Whether `app`'s invalidation subscription is up, per `/health`.
async fn subscribed(app: &App) -> bool {
    app.get("/health").await.1["checks"]["invalidation"]["ok"] == true
}

#[tokio::test]
async fn invalidate_deletes_the_other_regions_entry_and_the_subscription_survives_redis_loss() {
    let mut s = CrossCache::start("invalidate");
    for app in [&s.us, &s.eu] {
        assert!(
            within(Duration::from_secs(5), || subscribed(app))
                .await
                .is_some(),
            "never subscribed: {}",
            app.get("/health").await.1
        );
    }

    assert_eq!(
        s.us.put("/kv/k", json!({"value": "v1", "write_id": 1}))
            .await
            .0,
        200
    );
    assert_eq!(s.eu.get("/kv/k").await.1["source"], "db");
    assert_eq!(s.eu.get("/kv/k").await.1["source"], "cache");

    // A write in us deletes eu's entry through the pub/sub channel, promptly.
    assert_eq!(
        s.us.put("/kv/k", json!({"value": "v2", "write_id": 2}))
            .await
            .0,
        200
    );
    let took = within(Duration::from_millis(250), || async {
        s.redis_eu.get("kv:k").is_none()
    })
    .await
    .expect("eu's entry was not invalidated within 250 ms");
    eprintln!("cross-region invalidation took {took:?}");
    assert!(took < Duration::from_millis(100), "took {took:?}");
    let (_, read) = s.eu.get("/kv/k").await;
    assert_eq!(
        (read["value"].clone(), read["source"].clone()),
        (json!("v2"), json!("db"))
    );
    let (status, health) = s.eu.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["cache_mode"], "invalidate");
    assert!(
        health["stats"]["invalidations_received"].as_u64().unwrap() >= 2,
        "{health}"
    );

    // us's remote Redis dies: us's writes still succeed at once, /health stays 200 but
    // degraded, and the subscription comes back by itself with the Redis.
    s.redis_eu.kill();
    let start = Instant::now();
    let (status, ack) =
        s.us.put("/kv/k", json!({"value": "v3", "write_id": 3}))
            .await;
    assert_eq!(status, 200, "{ack}");
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    assert!(
        within(Duration::from_secs(5), || async {
            !subscribed(&s.us).await
        })
        .await
        .is_some(),
        "us still claims to be subscribed"
    );
    let (status, health) = s.us.get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "degraded");
    assert!(
        health["checks"]["invalidation"]["error"].is_string(),
        "{health}"
    );

    s.redis_eu.restart();
    assert!(
        within(Duration::from_secs(5), || subscribed(&s.us))
            .await
            .is_some(),
        "us never resubscribed: {}",
        s.us.get("/health").await.1
    );
    assert_eq!(s.us.get("/health").await.1["status"], "ok");
    // And invalidations flow again, eu to us this time.
    assert_eq!(s.us.get("/kv/k").await.1["value"], "v3");
    assert_eq!(s.us.get("/kv/k").await.1["source"], "cache");
    // eu's own Redis is the one that came back: its connection is remade by the next
    // command (a health check here), as in `ttl` mode.
    assert!(
        within(Duration::from_secs(5), || async {
            s.eu.get("/health").await.1["status"] == "ok"
        })
        .await
        .is_some(),
        "{}",
        s.eu.get("/health").await.1
    );
    assert_eq!(
        s.eu.put("/kv/k", json!({"value": "v4", "write_id": 4}))
            .await
            .0,
        200
    );
    assert!(
        within(Duration::from_millis(250), || async {
            s.redis_us.get("kv:k").is_none()
        })
        .await
        .is_some(),
        "us's entry was not invalidated after the resubscription"
    );
    assert_eq!(s.us.get("/kv/k").await.1["value"], "v4");
    drop(s.pg);
}

#[tokio::test]
async fn write_through_puts_the_value_in_both_caches_and_ignores_a_dead_remote() {
    let mut s = CrossCache::start("write-through");

    let (status, ack) =
        s.us.put("/kv/k", json!({"value": "v1", "write_id": 1}))
            .await;
    assert_eq!(status, 200, "{ack}");
    let expected = r#"{"value":"v1","version":1,"write_id":1}"#;
    // Locally before the answer; remotely in the background, soon after.
    assert_eq!(s.redis_us.get("kv:k").as_deref(), Some(expected));
    let took = within(Duration::from_millis(500), || async {
        s.redis_eu.get("kv:k").as_deref() == Some(expected)
    })
    .await
    .expect("the remote cache never got the value");
    eprintln!("remote write-through took {took:?}");
    for redis in [&s.redis_us, &s.redis_eu] {
        let pttl = redis.pttl("kv:k");
        assert!(pttl > 50_000 && pttl <= 60_000, "PTTL {pttl}");
    }
    let (_, read) = s.eu.get("/kv/k").await;
    assert_eq!(
        (read["value"].clone(), read["source"].clone()),
        (json!("v1"), json!("cache"))
    );

    // The remote Redis is gone: the write still succeeds promptly, the local cache is fresh.
    s.redis_eu.kill();
    let start = Instant::now();
    let (status, ack) =
        s.us.put("/kv/k", json!({"value": "v2", "write_id": 2}))
            .await;
    assert_eq!(status, 200, "{ack}");
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(s.us.get("/kv/k").await.1["value"], "v2");
    assert_eq!(s.us.get("/kv/k").await.1["source"], "cache");
    // The remote Redis returns (empty). Its connection is remade by a later command: the
    // first remote SET after it returns may be lost, so write until one lands.
    s.redis_eu.restart();
    let mut write_id = 3;
    let landed = within(Duration::from_secs(3), || {
        write_id += 1;
        let put = s.us.put(
            "/kv/e",
            json!({"value": "x", "write_id": write_id, "user": 9}),
        );
        async {
            assert_eq!(put.await.0, 200);
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.redis_eu.get("kv:e").is_some()
        }
    })
    .await;
    assert!(
        landed.is_some(),
        "no remote SET landed after the Redis returned"
    );
    // Erasure deletes in both caches too.
    assert_eq!(s.us.delete("/users/9").await.1["deleted_keys"], 1);
    assert_eq!(s.redis_us.get("kv:e"), None);
    assert!(
        within(Duration::from_millis(500), || async {
            s.redis_eu.get("kv:e").is_none()
        })
        .await
        .is_some()
    );
}

#[tokio::test]
async fn ttl_jitter_spreads_lifetimes_within_bounds() {
    let stack = Stack::start(&["--cache-ttl-ms", "2000", "--cache-ttl-jitter-ms", "500"]);
    let mut pttls = Vec::new();
    for i in 0..25 {
        let key = format!("k{i}");
        let (status, _) = stack
            .put(&format!("/kv/{key}"), json!({"value": "v", "write_id": i}))
            .await;
        assert_eq!(status, 200);
        assert_eq!(stack.get(&format!("/kv/{key}")).await.1["source"], "db");
        let pttl = stack.redis.pttl(&format!("kv:{key}"));
        // Read right after the SET: at most a few ms have passed.
        assert!((1_400..=2_500).contains(&pttl), "PTTL {pttl}");
        pttls.push(pttl);
    }
    let spread = pttls.iter().max().unwrap() - pttls.iter().min().unwrap();
    assert!(spread > 200, "lifetimes barely vary: {pttls:?}");
}

#[tokio::test]
async fn single_flight_makes_concurrent_misses_share_one_db_read() {
    let stack = Stack::start(&["--single-flight"]);
    let dsn = stack.pg.dsn("postgres");
    let plain = App::start(
        &serve_args("us", &dsn, &dsn, &stack.redis.url(), &[]),
        stack.pg.file("plain.log"),
    );
    assert_eq!(
        stack
            .put("/kv/hot", json!({"value": "v", "write_id": 1}))
            .await
            .0,
        200
    );

    // Hold the table locked so that every miss is certainly concurrent with the others.
    for (app, coalesced) in [(&stack.app, true), (&plain, false)] {
        stack.redis.command(&["DEL", "kv:hot"]);
        let (reads_before, joins_before) = reads(app).await;
        let mut admin = stack.pg.client("postgres").await;
        let lock = admin.transaction().await.unwrap();
        lock.batch_execute("LOCK TABLE kv IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let gets = futures::future::join_all((0..8).map(|_| app.get("/kv/hot")));
        let release = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            lock.commit().await.unwrap();
        };
        let (answers, ()) = tokio::join!(gets, release);
        for (status, read) in answers {
            assert_eq!(status, 200, "{read}");
            assert_eq!(
                (read["value"].clone(), read["source"].clone()),
                (json!("v"), json!("db"))
            );
        }
        let (reads_after, joins_after) = reads(app).await;
        if coalesced {
            assert_eq!(reads_after - reads_before, 1);
            assert_eq!(joins_after - joins_before, 7);
        } else {
            assert_eq!(reads_after - reads_before, 8);
            assert_eq!(joins_after - joins_before, 0);
        }
    }
}

#[tokio::test]
async fn an_erasure_invalidates_the_other_regions_cached_profile_only_in_invalidate_mode() {
    for mode in ["invalidate", "ttl"] {
        let s = CrossCache::start(mode);
        if mode == "invalidate" {
            assert!(
                within(Duration::from_secs(3), || subscribed(&s.eu))
                    .await
                    .is_some()
            );
        }
        let body = json!({"email": "rdpii-0000003-00000001@example.org", "name": "three"});
        assert_eq!(s.us.put("/users/3/profile", body).await.0, 200);
        // eu reads it (a traveller): eu's cache holds a copy.
        assert_eq!(s.eu.get("/users/3/profile").await.1["source"], "db");
        assert!(s.redis_eu.get("profile:3").is_some());
        // Erased through us: us's copy goes at once; eu's goes with the invalidation, or
        // stays until its TTL (60 s here) without one.
        assert_eq!(s.us.delete("/users/3").await.1["deleted_profiles"], 1);
        assert_eq!(s.redis_us.get("profile:3"), None);
        let gone = within(Duration::from_secs(1), || async {
            s.redis_eu.get("profile:3").is_none()
        })
        .await;
        match mode {
            "invalidate" => assert!(gone.is_some(), "eu still caches the erased profile"),
            _ => {
                assert!(gone.is_none(), "ttl mode removed eu's copy");
                // And eu serves the erased profile from its cache.
                let (status, read) = s.eu.get("/users/3/profile").await;
                assert_eq!((status, read["source"].clone()), (200, json!("cache")));
            }
        }
    }
}
