use serde_json::json;

use crate::support::Stack;

#[tokio::test]
async fn counters_start_at_zero_add_by_default_one_and_survive_concurrent_increments() {
    let stack = Stack::start(&[]);

    assert_eq!(
        stack.get("/counters/c").await,
        (200, json!({"key": "c", "value": 0, "region": "us"}))
    );
    assert_eq!(
        stack.post("/counters/c/incr", json!({})).await,
        (200, json!({"key": "c", "value": 1, "region": "us"}))
    );
    // An empty body is `{"by": 1}` too.
    let response = stack
        .http
        .post(format!("{}/counters/c/incr", stack.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["value"],
        2
    );
    assert_eq!(
        stack.post("/counters/c/incr", json!({"by": 5})).await.1["value"],
        7
    );
    assert_eq!(
        stack.post("/counters/c/incr", json!({"by": -3})).await.1["value"],
        4
    );
    assert_eq!(stack.get("/counters/c").await.1["value"], 4);

    // 40 concurrent increments (more than the 16 connections of a pool) lose nothing.
    let increments = (0..40).map(|_| stack.post("/counters/d/incr", json!({"by": 2})));
    for (status, answer) in futures::future::join_all(increments).await {
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(stack.get("/counters/d").await.1["value"], 80);
    assert_eq!(stack.get("/counters/c").await.1["value"], 4);
}
