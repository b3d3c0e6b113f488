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

#[tokio::test]
async fn a_new_channel_gets_the_catalogue_through_its_bulk_path() {
    use stockflow_sim::{Catalogue, CatalogueSpec, amazon};
    let data_dir: PathBuf = temp_dir("full-sync");
    let skus: Vec<String> = (1..=150).map(|i| format!("SKU-{i:03}")).collect();
    // The catalogue exists before the channel does.
    let app = spawn_with("full-sync", |c| c.data_dir = data_dir.clone()).await;
    let events: Vec<_> = skus
        .iter()
        .enumerate()
        .map(|(i, sku)| received(&format!("e{i}"), i as u64 + 1, sku, "east", 5))
        .collect();
    let (status, _) = app.post("/v1/events", json!({"events": events})).await;
    assert_eq!(status, 200);
    app.shutdown().await;

    let names: Vec<&str> = skus.iter().map(String::as_str).collect();
    let catalogue = Catalogue::generate(&CatalogueSpec::new(&names, &["east"], 0));
    let mut sandbox = amazon::AmazonConfig::new(catalogue.amazon, "token");
    sandbox.apply_delay = Duration::from_millis(100);
    sandbox.never_applied_share = 0.0;
    sandbox.feeds.queue_delay = Duration::from_millis(100);
    sandbox.feeds.processing_delay = Duration::from_millis(200);
    let sandbox = amazon::start(sandbox).await.unwrap();
    let base_url = sandbox.base_url();
    let app = spawn_with("full-sync", |c| {
        c.data_dir = data_dir.clone();
        c.channels.insert(
            "amazon".to_owned(),
            json!({"kind": "amazon", "serves": ["east"], "base_url": base_url,
                   "seller_id": "A2SANDBOXSELLER", "marketplace_ids": ["ATVPDKIKX0DER"],
                   "access_token": "token", "feeds": {"poll_interval_ms": 50}}),
        );
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, sync) = app.get("/v1/sync").await;
        let progress = &sync["full_syncs"]["amazon"];
        if progress["finished"] == true {
            assert_eq!(progress["total"], 150, "{progress}");
            assert_eq!(progress["done"], 150, "{progress}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the full sync did not finish: {sync}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recorder = sandbox.recorder();
    assert!(
        recorder.call_total("createFeed") >= 1,
        "the bulk path was used"
    );
    assert!(
        recorder.call_total("patchListingsItem") < 10,
        "the catalogue did not go one SKU at a time: {} patches",
        recorder.call_total("patchListingsItem")
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sandbox.quantity("SKU-150"), Some(5));
    app.shutdown().await;
}

#[tokio::test]
async fn a_completed_full_sync_is_primed_at_the_next_start_not_run_again() {
    use stockflow_sim::{Catalogue, CatalogueSpec, amazon};
    let data_dir: PathBuf = temp_dir("full-sync-restart");
    let skus: Vec<String> = (1..=120).map(|i| format!("SKU-{i:03}")).collect();
    let app = spawn_with("full-sync-restart", |c| c.data_dir = data_dir.clone()).await;
    let events: Vec<_> = skus
        .iter()
        .enumerate()
        .map(|(i, sku)| received(&format!("e{i}"), i as u64 + 1, sku, "east", 4))
        .collect();
    let (status, _) = app.post("/v1/events", json!({"events": events})).await;
    assert_eq!(status, 200);
    app.shutdown().await;

    let names: Vec<&str> = skus.iter().map(String::as_str).collect();
    let catalogue = Catalogue::generate(&CatalogueSpec::new(&names, &["east"], 0));
    let mut sandbox = amazon::AmazonConfig::new(catalogue.amazon, "token");
    sandbox.apply_delay = Duration::from_millis(50);
    sandbox.never_applied_share = 0.0;
    sandbox.feeds.queue_delay = Duration::from_millis(50);
    sandbox.feeds.processing_delay = Duration::from_millis(100);
    let sandbox = amazon::start(sandbox).await.unwrap();
    let base_url = sandbox.base_url();
    let with_amazon = |c: &mut Config| {
        c.data_dir = data_dir.clone();
        c.channels.insert(
            "amazon".to_owned(),
            json!({"kind": "amazon", "serves": ["east"], "base_url": base_url,
                   "seller_id": "A2SANDBOXSELLER", "marketplace_ids": ["ATVPDKIKX0DER"],
                   "access_token": "token", "feeds": {"poll_interval_ms": 50}}),
        );
    };

    // First start with the channel: its catalogue goes through the listings feed.
    let app = spawn_with("full-sync-restart", with_amazon).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, sync) = app.get("/v1/sync").await;
        let progress = &sync["full_syncs"]["amazon"];
        if progress["finished"] == true {
            assert_eq!(progress["done"], 120, "{progress}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the full sync did not finish: {sync}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.shutdown().await;
    let recorder = sandbox.recorder();
    let feeds = recorder.call_total("createFeed");
    let patches = recorder.call_total("patchListingsItem");
    assert!(feeds >= 1, "the first start used the bulk path");
    for sku in &skus {
        assert_eq!(sandbox.quantity(sku), Some(4), "{sku} after the full sync");
    }

    // Restart: what the feed set was recorded as acknowledged, so nothing is sent again.
    let app = spawn_with("full-sync-restart", with_amazon).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (_, sync) = app.get("/v1/sync").await;
    assert!(
        sync["full_syncs"].get("amazon").is_none(),
        "no full sync at the restart: {sync}"
    );
    assert_eq!(
        recorder.call_total("createFeed"),
        feeds,
        "no feed sent again"
    );
    assert_eq!(
        recorder.call_total("patchListingsItem"),
        patches,
        "no value sent again one by one"
    );
    // The channel is primed and in step: a new change reaches it as a single update.
    app.post("/v1/events", received("e-new", 121, "SKU-007", "east", 3))
        .await;
    until("the new value on Amazon", || {
        sandbox.quantity("SKU-007") == Some(7)
    })
    .await;
    for sku in skus.iter().filter(|s| s.as_str() != "SKU-007") {
        assert_eq!(sandbox.quantity(sku), Some(4), "{sku} after the restart");
    }
    app.shutdown().await;
}
