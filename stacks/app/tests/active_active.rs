use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::support::{APP_BIN, App, Postgres, Redis, migrate, replicate, serve_args};

/// The wall clock in ms, as the app's HLC reads it.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// An ack's or a read's `hlc`.
fn hlc(answer: &serde_json::Value) -> i64 {
    answer["hlc"]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer hlc in {answer}"))
}

/// Two apps, regions `us` and `eu`, on ONE database (so each sees the other's table at once,
/// as if replication were instantaneous), each with its own Redis.
struct TwoRegions {
    us: App,
    eu: App,
    redis_us: Redis,
    redis_eu: Redis,
    pg: Postgres,
}

impl TwoRegions {
    fn start(posture: &str) -> TwoRegions {
        let pg = Postgres::start();
        let dsn = pg.dsn("postgres");
        migrate(&dsn);
        let (redis_us, redis_eu) = (Redis::start(), Redis::start());
        let extra = ["--posture", posture, "--cache-ttl-ms", "60000"];
        let us = App::start(
            &serve_args("us", &dsn, &dsn, &redis_us.url(), &extra),
            pg.file("us.log"),
        );
        let eu = App::start(
            &serve_args("eu", &dsn, &dsn, &redis_eu.url(), &extra),
            pg.file("eu.log"),
        );
        TwoRegions {
            us,
            eu,
            redis_us,
            redis_eu,
            pg,
        }
    }

    /// Empties both caches.
    fn flush_caches(&self) {
        self.redis_us.command(&["FLUSHALL"]);
        self.redis_eu.command(&["FLUSHALL"]);
    }
}

#[tokio::test]
async fn lww_reads_take_the_greatest_hlc_then_region_and_the_clock_observes_what_it_reads() {
    let s = TwoRegions::start("lww");
    let db = s.pg.client("postgres").await;

    assert_eq!(s.us.get("/kv/k").await.0, 404);

    let before = now_ms();
    let (status, ack_us) =
        s.us.put("/kv/k", json!({"value": "u1", "write_id": 1, "user": 7}))
            .await;
    assert_eq!(status, 200, "{ack_us}");
    assert_eq!(ack_us["committed_by"], "test");
    assert_eq!(ack_us["home"], "us");
    assert_eq!(ack_us["region"], "us");
    assert_eq!(ack_us["version"], 1);
    let wall = (hlc(&ack_us) >> 8) as u64 / 1000; // µs → ms
    assert!(
        wall >= before && wall < before + 10_000,
        "hlc wall part {wall}"
    );

    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, ack_eu) =
        s.eu.put("/kv/k", json!({"value": "e1", "write_id": 2}))
            .await;
    assert_eq!(status, 200, "{ack_eu}");
    // kv_eu has its own versions.
    assert_eq!(
        (ack_eu["version"].clone(), ack_eu["home"].clone()),
        (json!(1), json!("eu"))
    );
    assert!(hlc(&ack_eu) > hlc(&ack_us));

    // Both regions read the later write, from the DB and then from their cache.
    for app in [&s.us, &s.eu] {
        let (status, read) = app.get("/kv/k").await;
        assert_eq!(status, 200, "{read}");
        assert_eq!(
            (
                read["value"].clone(),
                read["write_id"].clone(),
                read["source"].clone()
            ),
            (json!("e1"), json!(2), json!("db"))
        );
        assert_eq!(hlc(&read), hlc(&ack_eu));
        let (_, cached) = app.get("/kv/k").await;
        assert_eq!(cached["source"], "cache");
        assert_eq!(hlc(&cached), hlc(&ack_eu));
    }
    let entry: serde_json::Value = serde_json::from_str(&s.redis_us.get("kv:k").unwrap()).unwrap();
    assert_eq!(
        entry,
        json!({"value": "e1", "version": 1, "write_id": 2, "hlc": hlc(&ack_eu)})
    );

    // A second write in us: version 2 of kv_us; it wins, its own cache entry is deleted, and
    // eu's cache serves the old value until it expires (ttl mode).
    let (_, ack_u2) =
        s.us.put("/kv/k", json!({"value": "u2", "write_id": 3}))
            .await;
    assert_eq!(ack_u2["version"], 2);
    assert!(hlc(&ack_u2) > hlc(&ack_eu));
    assert_eq!(s.us.get("/kv/k").await.1["value"], "u2");
    let (_, stale) = s.eu.get("/kv/k").await;
    assert_eq!(
        (stale["value"].clone(), stale["source"].clone()),
        (json!("e1"), json!("cache"))
    );
    s.flush_caches();
    assert_eq!(s.eu.get("/kv/k").await.1["value"], "u2");

    // The merge rule, on rows with chosen hlc: equal hlc goes to the greater region name...
    db.execute(
        "UPDATE kv_eu SET hlc = $1 WHERE key = 'k'",
        &[&hlc(&ack_u2)],
    )
    .await
    .unwrap();
    s.flush_caches();
    assert_eq!(s.eu.get("/kv/k").await.1["value"], "u2");
    // ...and a greater hlc wins whatever the region.
    db.execute(
        "UPDATE kv_eu SET hlc = $1 WHERE key = 'k'",
        &[&(hlc(&ack_u2) + 1)],
    )
    .await
    .unwrap();
    s.flush_caches();
    let (_, read) = s.us.get("/kv/k").await;
    assert_eq!(
        (read["value"].clone(), hlc(&read)),
        (json!("e1"), hlc(&ack_u2) + 1)
    );

    // A region whose clock runs an hour ahead wrote `g`. eu has not read it: eu's later write
    // loses to it. This is last-write-wins losing a write under clock skew, which the harness
    // measures.
    let future = (((now_ms() + 3_600_000) * 1000) << 8) as i64;
    db.execute(
        "INSERT INTO kv_us (key, value, version, write_id, hlc, region) \
         VALUES ('g', 'ahead', 1, 98, $1, 'us')",
        &[&(future + 5)],
    )
    .await
    .unwrap();
    let (status, ack) =
        s.eu.put(
            "/kv/g",
            json!({"value": "later in real time", "write_id": 5}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    assert!(hlc(&ack) < future);
    assert_eq!(s.eu.get("/kv/g").await.1["value"], "ahead");

    // The same region wrote `f`. Once us has read that row, its next write orders after it
    // (the HLC receive rule), although its wall clock is behind.
    db.execute(
        "INSERT INTO kv_eu (key, value, version, write_id, hlc, region) \
         VALUES ('f', 'ahead', 1, 99, $1, 'eu')",
        &[&future],
    )
    .await
    .unwrap();
    assert_eq!(hlc(&s.us.get("/kv/f").await.1), future);
    let (_, ack) =
        s.us.put("/kv/f", json!({"value": "after", "write_id": 4}))
            .await;
    assert!(hlc(&ack) > future, "{ack}");
    s.flush_caches();
    assert_eq!(s.eu.get("/kv/f").await.1["value"], "after");
    // Each region logs its writes in its own table, with their hlc; kv/writes are untouched.
    let log = |table: &'static str| {
        let db = &db;
        async move {
            db.query(
                &format!("SELECT write_id, region, hlc FROM {table} ORDER BY write_id"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0),
                    r.get::<_, String>(1),
                    r.get::<_, i64>(2),
                )
            })
            .collect::<Vec<_>>()
        }
    };
    let us_log = log("writes_us").await;
    assert_eq!(
        us_log.iter().map(|w| w.0).collect::<Vec<_>>(),
        vec![1, 3, 4]
    );
    assert!(us_log.iter().all(|w| w.1 == "us"));
    assert_eq!(us_log[0].2, hlc(&ack_us));
    assert_eq!(
        log("writes_eu")
            .await
            .iter()
            .map(|w| w.0)
            .collect::<Vec<_>>(),
        vec![2, 5]
    );
    assert_eq!(count(&db, "SELECT count(*) FROM writes").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM kv").await, 0);

    // A replayed write_id is refused.
    let (status, answer) =
        s.us.put("/kv/k", json!({"value": "again", "write_id": 3}))
            .await;
    assert_eq!((status, answer["outcome"].clone()), (409, json!("fail")));

    // Erasure deletes from this region's tables only.
    for (app, write_id) in [(&s.us, 6), (&s.eu, 7)] {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let (status, _) = app
            .put(
                "/kv/h",
                json!({"value": format!("h{write_id}"), "write_id": write_id, "user": 8}),
            )
            .await;
        assert_eq!(status, 200);
    }
    assert_eq!(
        s.us.delete("/users/8").await,
        (
            200,
            json!({"user": 8, "deleted_writes": 1, "deleted_keys": 1, "deleted_profiles": 0})
        )
    );
    assert_eq!(s.eu.get("/kv/h").await.1["value"], "h7");
    assert_eq!(
        s.eu.delete("/users/8").await.1,
        json!({"user": 8, "deleted_writes": 1, "deleted_keys": 1, "deleted_profiles": 0})
    );
    assert_eq!(s.eu.get("/kv/h").await.0, 404);
    // User 7's write 1 is gone from writes_us; the row k it wrote was overwritten since.
    assert_eq!(
        s.us.delete("/users/7").await.1,
        json!({"user": 7, "deleted_writes": 1, "deleted_keys": 0, "deleted_profiles": 0})
    );
}

#[tokio::test]
async fn crdt_counters_keep_every_increment_and_lww_registers_lose_one_across_a_partition() {
    // One PostgreSQL, one database per region; rows cross between them only when the test
    // replicates them, so "not yet replicated" is a partition.
    let pg = Postgres::start();
    let admin = pg.client("postgres").await;
    admin.batch_execute("CREATE DATABASE us").await.unwrap();
    admin.batch_execute("CREATE DATABASE eu").await.unwrap();
    migrate(&pg.dsn("us"));
    migrate(&pg.dsn("eu"));
    let (db_us, db_eu) = (pg.client("us").await, pg.client("eu").await);
    let heal = || async {
        replicate(&db_us, &db_eu, "us").await;
        replicate(&db_eu, &db_us, "eu").await;
    };
    let redis = Redis::start();
    let app = |region: &str, posture: &str| {
        let dsn = pg.dsn(region);
        App::start(
            &serve_args(region, &dsn, &dsn, &redis.url(), &["--posture", posture]),
            pg.file(&format!("{posture}-{region}.log")),
        )
    };
    let (crdt_us, crdt_eu) = (app("us", "crdt"), app("eu", "crdt"));
    let (lww_us, lww_eu) = (app("us", "lww"), app("eu", "lww"));

    // PN-counter: each region adds to its own component; the answer sums what the committing
    // database has.
    assert_eq!(
        crdt_us.post("/counters/c/incr", json!({"by": 5})).await,
        (
            200,
            json!({"key": "c", "value": 5, "region": "us", "committed_by": "test"})
        )
    );
    assert_eq!(
        crdt_eu.post("/counters/c/incr", json!({"by": 3})).await.1["value"],
        3
    );
    assert_eq!(
        crdt_eu.post("/counters/c/incr", json!({"by": -1})).await.1["value"],
        2
    );
    heal().await;
    for (app, region) in [(&crdt_us, "us"), (&crdt_eu, "eu")] {
        assert_eq!(
            app.get("/counters/c").await,
            (200, json!({"key": "c", "value": 7, "region": region}))
        );
    }
    let (p, n): (i64, i64) = {
        let row = db_eu
            .query_one("SELECT p, n FROM counter_eu WHERE key = 'c'", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((p, n), (3, 1));
    // Concurrent increments in both regions, partitioned, all count once healed.
    let incrs = (0..20).flat_map(|_| {
        [
            crdt_us.post("/counters/c/incr", json!({"by": 1})),
            crdt_eu.post("/counters/c/incr", json!({"by": 1})),
        ]
    });
    for (status, answer) in futures::future::join_all(incrs).await {
        assert_eq!(status, 200, "{answer}");
    }
    heal().await;
    assert_eq!(crdt_us.get("/counters/c").await.1["value"], 47);
    assert_eq!(crdt_eu.get("/counters/c").await.1["value"], 47);

    // LWW register: one increment in each region during the partition; once healed the
    // register holds one of them: an increment was lost.
    assert_eq!(
        lww_us.post("/counters/r/incr", json!({})).await,
        (
            200,
            json!({"key": "r", "value": 1, "region": "us", "committed_by": "test"})
        )
    );
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(
        lww_eu.post("/counters/r/incr", json!({})).await.1["value"],
        1
    );
    heal().await;
    assert_eq!(lww_us.get("/counters/r").await.1["value"], 1);
    assert_eq!(lww_eu.get("/counters/r").await.1["value"], 1);
    // Connected (replicated between increments), nothing is lost.
    assert_eq!(
        lww_us.post("/counters/r/incr", json!({"by": 10})).await.1["value"],
        11
    );
    heal().await;
    assert_eq!(
        lww_eu.post("/counters/r/incr", json!({})).await.1["value"],
        12
    );
    heal().await;
    assert_eq!(lww_us.get("/counters/r").await.1["value"], 12);
    // Within one region concurrent increments are serialized: none is lost.
    let incrs = (0..20).map(|_| lww_us.post("/counters/r/incr", json!({"by": 1})));
    for (status, answer) in futures::future::join_all(incrs).await {
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(lww_us.get("/counters/r").await.1["value"], 32);

    // The register is the value of the row with the greatest (hlc, region).
    let eu_hlc: i64 = db_us
        .query_one("SELECT hlc FROM counter_eu WHERE key = 'r'", &[])
        .await
        .unwrap()
        .get(0);
    let set_us = |value: i64, hlc: i64| {
        let db = &db_us;
        async move {
            db.execute(
                "UPDATE counter_us SET value = $1, hlc = $2 WHERE key = 'r'",
                &[&value, &hlc],
            )
            .await
            .unwrap();
        }
    };
    set_us(100, eu_hlc - 1).await;
    assert_eq!(lww_us.get("/counters/r").await.1["value"], 12);
    set_us(100, eu_hlc).await;
    assert_eq!(
        lww_us.get("/counters/r").await.1["value"],
        100,
        "ties go to us"
    );
    set_us(100, eu_hlc + 1).await;
    assert_eq!(lww_us.get("/counters/r").await.1["value"], 100);
    // An increment starts from the register's value, and it orders after what it read.
    set_us(100, eu_hlc - 1).await;
    assert_eq!(
        lww_us.post("/counters/r/incr", json!({"by": 1})).await.1["value"],
        13
    );
}

/// `SELECT count(*) …` on `db`.
async fn count(db: &tokio_postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn partitioned_writes_go_to_the_home_primary_and_every_ack_names_its_committer() {
    let pg_us = Postgres::start_named("us");
    let pg_eu = Postgres::start_named("eu");
    let (dsn_us, dsn_eu) = (pg_us.dsn("postgres"), pg_eu.dsn("postgres"));
    migrate(&dsn_us);
    migrate(&dsn_eu);
    let (db_us, db_eu) = (
        pg_us.client("postgres").await,
        pg_eu.client("postgres").await,
    );
    let (redis_us, redis_eu) = (Redis::start(), Redis::start());
    let home_us = format!("us={dsn_us}");
    let home_eu = format!("eu={dsn_eu}");
    let app = App::start(
        &serve_args(
            "us",
            &dsn_us,
            &dsn_us,
            &redis_us.url(),
            &[
                "--posture",
                "partitioned",
                "--home-db",
                &home_us,
                "--home-db",
                &home_eu,
            ],
        ),
        pg_us.file("partitioned.log"),
    );

    // Home defaults to the app's region; a traveller's write goes to its home's primary.
    let (status, ack) = app
        .put("/kv/a", json!({"value": "x", "write_id": 1, "user": 7}))
        .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(
        (ack["committed_by"].clone(), ack["home"].clone()),
        (json!("us"), json!("us"))
    );
    let (status, ack) = app
        .put(
            "/kv/b",
            json!({"value": "y", "write_id": 2, "user": 7, "home": "eu"}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(
        (
            ack["committed_by"].clone(),
            ack["home"].clone(),
            ack["region"].clone()
        ),
        (json!("eu"), json!("eu"), json!("us"))
    );
    assert_eq!(count(&db_us, "SELECT count(*) FROM kv_us").await, 1);
    assert_eq!(count(&db_us, "SELECT count(*) FROM kv_eu").await, 0);
    assert_eq!(count(&db_eu, "SELECT count(*) FROM kv_eu").await, 1);
    assert_eq!(count(&db_eu, "SELECT count(*) FROM kv_us").await, 0);
    let region: String = db_eu
        .query_one("SELECT region FROM writes_eu WHERE write_id = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        region, "us",
        "writes_eu records the region that served the write"
    );

    // Reads merge the tables of the read DB: b shows up once replicated there.
    assert_eq!(app.get("/kv/b").await.0, 404);
    replicate(&db_eu, &db_us, "eu").await;
    let (status, read) = app.get("/kv/b").await;
    assert_eq!((status, read["value"].clone()), (200, json!("y")), "{read}");
    assert_eq!(read["hlc"], ack["hlc"]);

    // An unknown home, or one without a --home-db, is a 400 naming the field.
    let (status, answer) = app
        .put("/kv/c", json!({"value": "z", "write_id": 3, "home": "ap"}))
        .await;
    assert_eq!((status, answer["outcome"].clone()), (400, json!("fail")));
    assert!(
        answer["error"].as_str().unwrap().contains("`home`"),
        "{answer}"
    );
    let eu_only = App::start(
        &serve_args(
            "us",
            &dsn_us,
            &dsn_us,
            &redis_us.url(),
            &["--posture", "partitioned", "--home-db", &home_eu],
        ),
        pg_us.file("eu-only.log"),
    );
    let (status, answer) = eu_only
        .put("/kv/c", json!({"value": "z", "write_id": 3}))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("home"),
        "{answer}"
    );
    let (status, answer) = eu_only.post("/counters/c/incr", json!({})).await;
    assert_eq!(status, 400, "{answer}");

    // Counters: PN-counter component of the home region, on its primary.
    assert_eq!(
        app.post("/counters/c/incr", json!({"by": 2, "home": "eu"}))
            .await,
        (
            200,
            json!({"key": "c", "value": 2, "region": "us", "committed_by": "eu"})
        )
    );
    assert_eq!(
        app.post("/counters/c/incr", json!({"by": 1})).await.1,
        json!({"key": "c", "value": 1, "region": "us", "committed_by": "us"})
    );
    replicate(&db_eu, &db_us, "eu").await;
    assert_eq!(app.get("/counters/c").await.1["value"], 3);

    // Erasure covers every home the app has a pool for.
    assert_eq!(
        app.delete("/users/7").await,
        (
            200,
            json!({"user": 7, "deleted_writes": 2, "deleted_keys": 2, "deleted_profiles": 0})
        )
    );
    assert_eq!(count(&db_us, "SELECT count(*) FROM writes_us").await, 0);
    assert_eq!(count(&db_eu, "SELECT count(*) FROM writes_eu").await, 0);

    // single-writer acks name their committer too (and carry an hlc, but no home).
    let single = App::start(
        &serve_args("eu", &dsn_eu, &dsn_eu, &redis_eu.url(), &[]),
        pg_eu.file("single.log"),
    );
    let (status, ack) = single
        .put("/kv/a", json!({"value": "s", "write_id": 1}))
        .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["committed_by"], "eu");
    assert!(hlc(&ack) > 0);
    assert!(ack.get("home").is_none(), "{ack}");
    let (_, read) = single.get("/kv/a").await;
    assert!(read.get("hlc").is_none(), "{read}");
}

#[test]
fn bad_active_active_flags_fail_naming_the_flag() {
    let base = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--write-db",
        "host=127.0.0.1",
        "--read-db",
        "host=127.0.0.1",
        "--redis",
        "redis://127.0.0.1:1",
    ];
    let cases: [(&[&str], &str); 6] = [
        (&["--region", "ap", "--posture", "lww"], "--region"),
        (&["--region", "us", "--posture", "partitioned"], "--home-db"),
        (
            &[
                "--region",
                "us",
                "--posture",
                "partitioned",
                "--home-db",
                "us",
            ],
            "--home-db",
        ),
        (
            &["--region", "us", "--home-db", "xx=host=127.0.0.1"],
            "--home-db",
        ),
        (
            &["--region", "us", "--cache-mode", "invalidate"],
            "--remote-redis",
        ),
        (&["--region", "us", "--posture", "active"], "--posture"),
    ];
    for (args, flag) in cases {
        let out = Command::new(APP_BIN)
            .args(base)
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}
