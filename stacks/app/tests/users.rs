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
        json!({"user": 7, "deleted_writes": 4, "deleted_keys": 2})
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
            json!({"user": 7, "deleted_writes": 0, "deleted_keys": 0})
        )
    );
}
