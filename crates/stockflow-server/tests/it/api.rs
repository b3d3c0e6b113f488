//! The README's walk-through and the contract's error cases.

use crate::support::{received, spawn_app};
use serde_json::json;

#[tokio::test]
async fn receive_reserve_confirm_pick() {
    let app = spawn_app("walkthrough").await;
    let (status, body) = app
        .post("/v1/events", received("e1", 1, "SKU-1", "east", 10))
        .await;
    assert_eq!(
        (status, body["results"][0]["status"].as_str()),
        (200, Some("applied"))
    );

    let reserve = json!({"reservation_id": "o1", "lines": [{"sku": "SKU-1", "quantity": 2}]});
    let (status, body) = app.post("/v1/reservations", reserve.clone()).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (201, Some("provisional")),
        "{body}"
    );
    assert_eq!(body["lines"][0]["location"], "east");
    let (status, _) = app.post("/v1/reservations", reserve).await;
    assert_eq!(status, 200, "a repeat answers the same reservation");

    let (status, body) = app.post("/v1/reservations/o1/confirm", json!({})).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("confirmed")));

    let pick = json!({"event_id": "e2", "source": "wms", "seq": 2, "type": "picked", "sku": "SKU-1",
                      "location": "east", "quantity": 2, "reservation_id": "o1"});
    let (status, _) = app.post("/v1/events", pick).await;
    assert_eq!(status, 200);
    let (_, sku) = app.get("/v1/skus/SKU-1").await;
    assert_eq!(
        (
            sku["totals"]["on_hand"].as_i64(),
            sku["totals"]["available"].as_i64()
        ),
        (Some(8), Some(8))
    );
    let (_, reservation) = app.get("/v1/reservations/o1").await;
    assert_eq!(reservation["state"], "fulfilled");

    let (_, audit) = app.get("/v1/audit?sku=SKU-1").await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "receive, reserve, confirm, pick: {audit}");
    assert_eq!(entries[3]["change"]["after"]["on_hand"], 8);
    app.shutdown().await;
}

#[tokio::test]
async fn refusals_are_problem_documents_and_change_nothing() {
    let app = spawn_app("refusals").await;
    app.post("/v1/events", received("e1", 1, "SKU-1", "east", 3))
        .await;

    let (status, body) = app
        .post(
            "/v1/reservations",
            json!({"reservation_id": "o1", "lines": [{"sku": "SKU-1", "quantity": 5}]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("insufficient_stock"))
    );
    assert_eq!(body["context"]["shortfalls"][0]["available"], 3);

    let (status, body) = app
        .post(
            "/v1/events",
            json!({"event_id": "e2", "source": "wms", "seq": 2, "type": "teleported"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("unknown_event_type"))
    );

    let mut changed = received("e1", 1, "SKU-1", "east", 4);
    changed["reason"] = json!("other body");
    let (status, body) = app.post("/v1/events", changed).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("idempotency_conflict"))
    );

    let (status, body) = app.post("/v1/reservations/nope/confirm", json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("unknown_reservation"))
    );

    let (status, body) = app.get("/v1/skus/NOPE").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("unknown_sku")));

    let response = app
        .client
        .post(format!("{}/v1/events", app.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );

    let (_, sku) = app.get("/v1/skus/SKU-1").await;
    assert_eq!(
        sku["totals"]["on_hand"], 3,
        "nothing refused changed the stock"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let app =
        crate::support::spawn_with("limit", |config| config.http.body_limit_bytes = 2048).await;
    let events: Vec<_> = (1..=100)
        .map(|i| received(&format!("e{i}"), i, "SKU-1", "east", 1))
        .collect();
    let (status, body) = app.post("/v1/events", json!({"events": events})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("body_too_large"))
    );
    app.shutdown().await;
}
