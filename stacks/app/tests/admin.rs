use serde_json::json;

use crate::support::{Stack, migrate};

#[tokio::test]
async fn swapping_the_pools_moves_writes_and_reads_to_the_new_databases() {
    let stack = Stack::start(&[]);
    let first = stack.pg.dsn("postgres");
    stack
        .pg
        .client("postgres")
        .await
        .batch_execute("CREATE DATABASE other")
        .await
        .unwrap();
    let other = stack.pg.dsn("other");
    migrate(&other);

    assert_eq!(
        stack.get("/admin/db").await,
        (200, json!({"write_db": first, "read_db": first}))
    );
    assert_eq!(
        stack
            .put("/kv/before", json!({"value": "x", "write_id": 1}))
            .await
            .0,
        200
    );

    // Writes move; reads stay on the first database.
    let (status, answer) = stack.post("/admin/db", json!({"write_db": other})).await;
    assert_eq!(
        (status, answer),
        (200, json!({"write_db": other, "read_db": first}))
    );
    let (status, ack) = stack
        .put("/kv/after", json!({"value": "y", "write_id": 2}))
        .await;
    assert_eq!(status, 200, "{ack}");
    let (status, read) = stack.get("/kv/after").await;
    assert_eq!(status, 404, "reads still go to the first database: {read}");
    assert_eq!(stack.get("/kv/before").await.0, 200);

    // Reads move too.
    let (status, answer) = stack.post("/admin/db", json!({"read_db": other})).await;
    assert_eq!(
        (status, answer),
        (200, json!({"write_db": other, "read_db": other}))
    );
    assert_eq!(stack.get("/kv/after").await.1["value"], "y");
    // The cache is not flushed by a swap: what it holds is served until it expires.
    assert_eq!(stack.get("/kv/before").await.1["source"], "cache");
    stack.redis.command(&["DEL", "kv:before"]);
    assert_eq!(stack.get("/kv/before").await.0, 404);

    let log = |db: &'static str| {
        let pg = &stack.pg;
        async move {
            let rows = pg
                .client(db)
                .await
                .query("SELECT write_id FROM writes ORDER BY 1", &[])
                .await
                .unwrap();
            rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>()
        }
    };
    assert_eq!(log("postgres").await, vec![1]);
    assert_eq!(log("other").await, vec![2]);

    // Bad requests change nothing.
    let (status, answer) = stack
        .post("/admin/db", json!({"write_db": "port=notaport"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("write_db"),
        "{answer}"
    );
    assert_eq!(stack.post("/admin/db", json!({})).await.0, 400);
    assert_eq!(
        stack.get("/admin/db").await.1,
        json!({"write_db": other, "read_db": other})
    );
}
