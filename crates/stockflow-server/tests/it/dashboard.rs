//! The dashboard over HTTP: the page and its assets are served by stockflow itself, and the live
//! stream sends what changed on the visible page, a few times a second at most, past the request
//! timeout, to a limited number of browsers.

use crate::support::{received, spawn_with};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Reads server-sent events from a streaming response.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// The next `update` event's data, or `None` when `deadline` passes first or the stream
    /// ends.
    async fn next_update(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let data: String = block
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if block.lines().any(|line| line == "event: update") {
                    return Some(serde_json::from_str(&data).unwrap());
                }
                continue;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                // The deadline passed, or the stream (or the connection) ended.
                _ => return None,
            }
        }
    }
}

fn row<'a>(update: &'a Value, sku: &str) -> Option<&'a Value> {
    update["rows"].as_array()?.iter().find(|r| r["sku"] == sku)
}

#[tokio::test]
async fn the_stream_sends_changed_rows_at_a_bounded_rate_past_the_request_timeout() {
    let app = spawn_with("dashboard", |config| {
        config.http.request_timeout_ms = 300;
        config.dashboard.stream_interval_ms = 200;
        config.dashboard.stream_clients_max = 1;
    })
    .await;
    app.post("/v1/events", received("e1", 1, "SKU-A", "east", 10))
        .await;
    app.post("/v1/events", received("e2", 2, "SKU-B", "east", 4))
        .await;

    let page = app
        .client
        .get(format!("{}/", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/dashboard/app.js"));
    for asset in [
        "/dashboard/app.js",
        "/dashboard/app.css",
        "/dashboard/favicon.svg",
    ] {
        let response = app
            .client
            .get(format!("{}{asset}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
    }

    let url = format!("{}/v1/dashboard/stream?skus=SKU-A%20SKU-B", app.url);
    let response = app.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut events = Events {
        response,
        buffer: String::new(),
    };
    let started = Instant::now();
    let first = events
        .next_update(started + Duration::from_secs(5))
        .await
        .expect("a first update");
    assert_eq!(row(&first, "SKU-A").unwrap()["totals"]["on_hand"], 10);
    assert_eq!(row(&first, "SKU-B").unwrap()["totals"]["on_hand"], 4);
    assert!(first["summary"]["kpis"]["windows"].is_array(), "{first}");

    let (status, body) = app.get("/v1/dashboard/stream?skus=SKU-A").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("too_many_streams"))
    );

    app.post("/v1/events", received("e3", 3, "SKU-A", "east", 5))
        .await;
    let mut updates = 1;
    let mut seen = None;
    let until = Instant::now() + Duration::from_millis(1500);
    while let Some(update) = events.next_update(until).await {
        updates += 1;
        assert!(
            row(&update, "SKU-B").is_none(),
            "SKU-B did not change: {update}"
        );
        if let Some(row) = row(&update, "SKU-A") {
            seen = Some(row["totals"]["on_hand"].clone());
        }
    }
    assert_eq!(seen, Some(Value::from(15)), "the change reached the stream");
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        elapsed > 1.5,
        "the stream outlived the 300 ms request timeout"
    );
    assert!(
        f64::from(updates) <= elapsed / 0.2 + 2.0,
        "{updates} updates in {elapsed:.1} s: more than one per interval"
    );
    // A browser still open does not hold up the shutdown: its stream ends.
    let stopped = tokio::time::timeout(Duration::from_secs(10), app.shutdown()).await;
    assert!(stopped.is_ok(), "the shutdown waited for the open stream");
    let ended = events
        .next_update(Instant::now() + Duration::from_secs(5))
        .await;
    assert!(ended.is_none());
}

#[tokio::test]
async fn a_stream_of_too_many_skus_is_refused() {
    let app = spawn_with("dashboard-limit", |_| {}).await;
    let skus: Vec<String> = (0..=stockflow_server::dashboard::STREAM_SKUS_MAX)
        .map(|i| format!("S{i}"))
        .collect();
    let (status, body) = app
        .get(&format!("/v1/dashboard/stream?skus={}", skus.join("%20")))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("too_many_skus"))
    );
    app.shutdown().await;
}
