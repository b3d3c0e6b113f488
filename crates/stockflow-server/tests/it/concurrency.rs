//! Invariant 1 over HTTP: many concurrent clients reserving one unit each of one hot SKU never
//! get more granted than the stock.

use crate::support::{received, spawn_app};
use serde_json::json;
use std::sync::Arc;

const STOCK: i64 = 500;
const CLIENTS: usize = 64;
const ATTEMPTS_PER_CLIENT: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_of_a_hot_sku_never_exceed_its_stock() {
    let app = spawn_app("hot-sku").await;
    let (status, body) = app
        .post("/v1/events", received("stock-1", 1, "HOT", "east", STOCK))
        .await;
    assert_eq!(status, 200, "{body}");

    let url = Arc::new(app.url.clone());
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let url = url.clone();
            tokio::spawn(async move {
                // One keep-alive connection per client.
                let http = reqwest::Client::new();
                let (mut granted, mut refused) = (0_i64, 0_i64);
                for attempt in 0..ATTEMPTS_PER_CLIENT {
                    let body = json!({"reservation_id": format!("c{client}-{attempt}"),
                        "lines": [{"sku": "HOT", "quantity": 1}]});
                    let response = http
                        .post(format!("{url}/v1/reservations"))
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let answer: serde_json::Value = response.json().await.unwrap();
                    match status {
                        201 => granted += 1,
                        409 => {
                            assert_eq!(answer["code"], "insufficient_stock", "{answer}");
                            refused += 1;
                        }
                        _ => panic!("unexpected answer {status}: {answer}"),
                    }
                }
                (granted, refused)
            })
        })
        .collect();
    let (mut granted, mut refused) = (0, 0);
    for task in tasks {
        let (g, r) = task.await.unwrap();
        granted += g;
        refused += r;
    }

    let attempts = (CLIENTS * ATTEMPTS_PER_CLIENT) as i64;
    assert!(granted <= STOCK, "oversold: {granted} granted of {STOCK}");
    assert_eq!(granted + refused, attempts);
    // Every refusal came when nothing was left (one unit each), so all the stock went.
    assert_eq!(granted, STOCK);
    let (_, sku) = app.get("/v1/skus/HOT").await;
    assert_eq!(sku["totals"]["reserved"], granted, "{sku}");
    assert_eq!(sku["totals"]["available"], 0, "{sku}");
    assert_eq!(sku["totals"]["on_hand"], STOCK, "{sku}");
    app.shutdown().await;
}
