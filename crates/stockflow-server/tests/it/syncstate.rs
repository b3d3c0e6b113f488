//! The channel sync across restarts: what was committed but never acknowledged by a channel is
//! offered again at the next start; what was acknowledged is not sent again.

use crate::support::{received, spawn_with, temp_dir};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use stockflow_server::Config;

fn webhook_channel(config: &mut Config, url: &str) {
    config.channels.insert(
        "hook".to_owned(),
        json!({"kind": "webhook", "serves": ["east"], "url": url, "secret": "s3cret",
               "retry": {"attempts_max": 2, "base_ms": 10, "cap_ms": 50, "slow_interval_ms": 200}}),
    );
}

async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_change_no_channel_acknowledged_is_sent_after_a_restart() {
    let data_dir: PathBuf = temp_dir("sync-restart");
    // First run: the channel is unreachable, so the change stays pending and dies with the process.
    let dead = "http://127.0.0.1:9/webhook".to_owned();
    let app = spawn_with("sync-restart", |c| {
        c.data_dir = data_dir.clone();
        webhook_channel(c, &dead);
    })
    .await;
    app.post("/v1/events", received("e1", 1, "SKU-1", "east", 7))
        .await;
    app.shutdown().await;

    let receiver =
        stockflow_sim::webhook::start(stockflow_sim::webhook::WebhookConfig::new("s3cret"))
            .await
            .unwrap();
    let url = receiver.url();
    let app = spawn_with("sync-restart", |c| {
        c.data_dir = data_dir.clone();
        webhook_channel(c, &url);
    })
    .await;
    until("the pending value to reach the channel", || {
        receiver.told("SKU-1", "") == Some(7)
    })
    .await;
    app.shutdown().await;

    // Third run: nothing changed since the acknowledgement, so nothing is sent again.
    let deliveries = receiver.deliveries().len();
    let app = spawn_with("sync-restart", |c| {
        c.data_dir = data_dir.clone();
        webhook_channel(c, &url);
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.deliveries().len(),
        deliveries,
        "an acknowledged value is not re-sent"
    );
    app.post("/v1/events", received("e2", 2, "SKU-1", "east", 1))
        .await;
    until("the new value", || receiver.told("SKU-1", "") == Some(8)).await;
    app.shutdown().await;
}
