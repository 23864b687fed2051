use serde_json::json;

use crate::support::Stack;

#[tokio::test]
async fn erasure_deletes_the_users_writes_rows_and_cache_entries_only() {
    let stack = Stack::start(&["--cache-ttl-ms", "60000"]);

    for (key, write_id, user) in [
        ("a", 1, 7),
        ("a", 2, 7),
        ("b", 3, 7),
        ("c", 4, 8),
        ("d", 5, 7),
        ("d", 6, 8),
    ] {
        let (status, ack) = stack
            .put(
                &format!("/kv/{key}"),
                json!({"value": format!("{key}{write_id}"), "write_id": write_id, "user": user}),
            )
            .await;
        assert_eq!(status, 200, "{ack}");
    }
    // Fill the cache for every key.
    for key in ["a", "b", "c", "d"] {
        assert_eq!(stack.get(&format!("/kv/{key}")).await.1["source"], "db");
        assert_eq!(stack.get(&format!("/kv/{key}")).await.1["source"], "cache");
    }

    // User 7 made four writes; the rows whose last write was theirs are a and b (d was last
    // written by user 8).
    let (status, answer) = stack.delete("/users/7").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"user": 7, "deleted_writes": 4, "deleted_keys": 2, "deleted_profiles": 0})
    );

    // Gone from the DB and from the cache, not served stale.
    assert_eq!(stack.get("/kv/a").await.0, 404);
    assert_eq!(stack.get("/kv/b").await.0, 404);
    assert_eq!(stack.get("/kv/c").await.1["value"], "c4");
    assert_eq!(stack.get("/kv/d").await.1["value"], "d6");

    let client = stack.pg.client("postgres").await;
    let left: Vec<i64> = client
        .query("SELECT write_id FROM writes ORDER BY write_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec![4, 6]);

    // Erasing again finds nothing.
    assert_eq!(
        stack.delete("/users/7").await,
        (
            200,
            json!({"user": 7, "deleted_writes": 0, "deleted_keys": 0, "deleted_profiles": 0})
        )
    );
}

#[tokio::test]
async fn profiles_are_written_read_through_the_cache_and_erased_everywhere() {
    let stack = Stack::start(&["--cache-ttl-ms", "60000"]);
    let body = json!({"email": "rdpii-0000007-00000001@example.org",
                      "name": "User rdpii-0000007-00000001", "home": "eu"});
    let (status, ack) = stack.put("/users/7/profile", body).await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["user"], 7);
    assert_eq!(ack["region"], "us");
    assert!(ack.get("table").is_none(), "{ack}");
    let other = json!({"email": "rdpii-0000008-00000001@example.org", "name": "eight"});
    assert_eq!(stack.put("/users/8/profile", other).await.0, 200);

    // Read through the cache: first from the DB (then cached under profile:7), then the cache.
    let (status, read) = stack.get("/users/7/profile").await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["source"], "db");
    assert_eq!(read["home"], "eu");
    assert_eq!(read["email"], "rdpii-0000007-00000001@example.org");
    let cached = stack.redis.get("profile:7").expect("profile cached");
    assert!(cached.contains("rdpii-0000007-00000001"), "{cached}");
    let (_, read) = stack.get("/users/7/profile").await;
    assert_eq!(read["source"], "cache");
    assert_eq!(read["name"], "User rdpii-0000007-00000001");
    // A user without a profile is a 404 (not cached).
    let (status, missing) = stack.get("/users/9/profile").await;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(missing["found"], false);

    // A profile write drops the cached copy: the next read sees the new one.
    let changed = json!({"email": "new-rdpii-0000007-00000001@example.org", "name": "n"});
    assert_eq!(stack.put("/users/7/profile", changed).await.0, 200);
    assert_eq!(stack.redis.get("profile:7"), None);
    let (_, read) = stack.get("/users/7/profile").await;
    assert_eq!(
        (read["source"].clone(), read["email"].clone()),
        (json!("db"), json!("new-rdpii-0000007-00000001@example.org"))
    );

    // Erasure removes the row and the cached copy; user 8 is untouched.
    let (status, erased) = stack.delete("/users/7").await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["deleted_profiles"], 1);
    assert_eq!(stack.redis.get("profile:7"), None);
    assert_eq!(stack.get("/users/7/profile").await.0, 404);
    let client = stack.pg.client("postgres").await;
    let left: Vec<i64> = client
        .query("SELECT user_id FROM profiles ORDER BY user_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec![8]);
    assert_eq!(stack.get("/users/8/profile").await.1["source"], "db");
}
