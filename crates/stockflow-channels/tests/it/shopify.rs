//! The Shopify adapter through real HTTP against the Shopify sandbox: coalescing, pacing by the
//! cost bucket, compare-and-set conflicts and drift repair, both THROTTLED variants, 5xx
//! retries, lost answers, and a first full sync 250 quantities a call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use stockflow_channels::config::{CostSettings, HttpSettings, Secret, ShopifyConfig, SyncSettings};
use stockflow_channels::engine::wait_full_sync;
use stockflow_channels::shopify::ShopifyAdapter;
use stockflow_channels::{ChannelStats, SyncEngine, SyncKey};
use stockflow_core::ids::{LocationId, TenantId};
use stockflow_sim::shopify::{
    self, ShopifyConfig as SandboxConfig, ShopifyHandle, ThrottledStatus,
};
use stockflow_sim::{Catalogue, CatalogueSpec, FaultConfig};

use crate::support::{change, channel_id, install_tls, key, retry, settings, spec, wait_until};

const TOKEN: &str = "shpat_sandbox";
const CHANNEL: &str = "shop";
const EAST: &str = "gid://shopify/Location/70001";
const WEST: &str = "gid://shopify/Location/70002";

struct Rig {
    sandbox: ShopifyHandle,
    engine: SyncEngine,
    position: std::sync::atomic::AtomicU64,
}

fn skus(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("SKU-{i}")).collect()
}

fn sandbox_config(count: usize, status: ThrottledStatus) -> SandboxConfig {
    let names = skus(count);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let catalogue = Catalogue::generate(&CatalogueSpec::new(&names, &["east", "west"], 10));
    let mut config = SandboxConfig::new(catalogue.shopify, TOKEN);
    config.throttled_status = status;
    config
}

fn adapter_config(base_url: String) -> ShopifyConfig {
    ShopifyConfig {
        tenant: TenantId::default_tenant(),
        base_url,
        api_version: "2026-04".into(),
        access_token: Secret::new(TOKEN),
        locations: BTreeMap::from([
            (LocationId::parse("east").unwrap(), EAST.to_owned()),
            (LocationId::parse("west").unwrap(), WEST.to_owned()),
        ]),
        items: BTreeMap::new(),
        cost: CostSettings::default(),
        reason: "correction".into(),
        sync: SyncSettings::default(),
        retry: retry(),
        http: HttpSettings {
            request_timeout_ms: 2_000,
            ..HttpSettings::default()
        },
    }
}

impl Rig {
    async fn start(sandbox: SandboxConfig) -> Self {
        Self::with(sandbox, |_| {}).await
    }

    async fn with(sandbox: SandboxConfig, tweak: impl FnOnce(&mut ShopifyConfig)) -> Self {
        install_tls();
        let sandbox = shopify::start(sandbox).await.expect("sandbox starts");
        let mut config = adapter_config(sandbox.base_url());
        tweak(&mut config);
        let adapter = ShopifyAdapter::new(&config).expect("adapter builds");
        let engine = SyncEngine::start(vec![spec(
            CHANNEL,
            Arc::new(adapter),
            settings(250, 100),
            config.retry.clone(),
        )]);
        Self {
            sandbox,
            engine,
            position: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn offer(&self, key: &SyncKey, quantity: i64) {
        let position = self
            .position
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        self.engine
            .offer(&[change(&self.engine, CHANNEL, key, quantity, position)]);
    }

    fn stats(&self) -> ChannelStats {
        self.engine.stats().remove(0)
    }

    fn shown(&self, sku: &str, location: &str) -> i64 {
        self.sandbox
            .quantity(sku, location, "available")
            .expect("level exists")
    }

    async fn settled(&self) -> bool {
        wait_until(Duration::from_secs(20), || self.stats().queue_depth == 0).await
    }
}

fn east(sku: &str) -> SyncKey {
    key(sku, Some("east"))
}

#[tokio::test]
async fn a_thousand_changes_of_one_sku_in_a_second_become_a_handful_of_calls() {
    let rig = Rig::start(sandbox_config(3, ThrottledStatus::Ok)).await;
    let sku = east("SKU-1");
    for i in 0..1_000 {
        rig.offer(&sku, 500 - i / 2);
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert!(rig.settled().await, "{:?}", rig.stats());
    let recorder = rig.sandbox.recorder();
    let calls = recorder.call_total("inventorySetQuantities");
    assert!((1..=20).contains(&calls), "{calls} calls");
    let timeline = recorder.timeline("SKU-1", EAST);
    assert_eq!(timeline.last().unwrap().quantity, 1);
    assert_eq!(rig.shown("SKU-1", EAST), 1);
    assert_eq!(recorder.violation_count(), 0, "{:?}", recorder.violations());
}

#[tokio::test]
async fn a_busy_catalogue_never_breaks_the_limits() {
    let rig = Rig::start(sandbox_config(300, ThrottledStatus::Ok)).await;
    for round in 0..8 {
        for i in 1..=300 {
            for location in ["east", "west"] {
                rig.offer(&key(&format!("SKU-{i}"), Some(location)), 20 + round);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rig.settled().await, "{:?}", rig.stats());
    let recorder = rig.sandbox.recorder();
    assert_eq!(recorder.violation_count(), 0, "{:?}", recorder.violations());
    assert_eq!(rig.shown("SKU-300", WEST), 27);
    assert_eq!(rig.shown("SKU-1", EAST), 27);
}

#[tokio::test]
async fn a_stale_compare_and_set_is_read_again_recorded_as_drift_and_repaired() {
    let rig = Rig::start(sandbox_config(2, ThrottledStatus::Ok)).await;
    let (one, two) = (east("SKU-1"), east("SKU-2"));
    rig.offer(&one, 8);
    rig.offer(&two, 8);
    assert!(rig.settled().await);
    // SKU-1: the merchant edits behind our back. SKU-2: a buyer orders and we are told.
    rig.sandbox
        .merchant_set("SKU-1", EAST, "available", 3)
        .unwrap();
    rig.sandbox.buyer_order("SKU-2", EAST, 2).unwrap();
    rig.engine
        .order_seen(&channel_id(CHANNEL), &two.sku, two.location.as_ref(), 2)
        .unwrap();
    rig.offer(&one, 6);
    rig.offer(&two, 6);
    assert!(rig.settled().await);
    assert_eq!(rig.shown("SKU-1", EAST), 6);
    assert_eq!(rig.shown("SKU-2", EAST), 6);
    let stats = rig.stats();
    assert_eq!(stats.drift, 1, "{stats:?}");
    let refused = rig
        .sandbox
        .recorder()
        .call_count("inventorySetQuantities", stockflow_sim::Outcome::Refused);
    assert_eq!(refused, 1, "one stale call for SKU-1");
}

async fn throttled_then_recovers(status: ThrottledStatus) {
    let rig = Rig::start(sandbox_config(20, status)).await;
    rig.sandbox.faults().set(FaultConfig {
        throttle_all: true,
        ..FaultConfig::default()
    });
    for i in 1..=20 {
        rig.offer(&east(&format!("SKU-{i}")), i);
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    rig.sandbox.faults().set(FaultConfig::default());
    assert!(rig.settled().await, "{:?}", rig.stats());
    let recorder = rig.sandbox.recorder();
    assert!(recorder.rejection_count() > 0);
    assert_eq!(recorder.violation_count(), 0, "{:?}", recorder.violations());
    assert!(rig.stats().rate_limited > 0);
    assert_eq!(rig.shown("SKU-20", EAST), 20);
}

#[tokio::test]
async fn throttled_with_http_200_waits_and_recovers() {
    throttled_then_recovers(ThrottledStatus::Ok).await;
}

#[tokio::test]
async fn throttled_with_http_429_honours_retry_after_and_recovers() {
    throttled_then_recovers(ThrottledStatus::TooManyRequests).await;
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_the_values_land() {
    let rig = Rig::with(sandbox_config(10, ThrottledStatus::Ok), |config| {
        config.retry.attempts_max = 30;
    })
    .await;
    rig.sandbox.faults().set(FaultConfig {
        server_error_rate: 0.4,
        ..FaultConfig::default()
    });
    for i in 1..=10 {
        rig.offer(&east(&format!("SKU-{i}")), 30 + i);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(rig.settled().await, "{:?}", rig.stats());
    for i in 1..=10 {
        assert_eq!(rig.shown(&format!("SKU-{i}"), EAST), 30 + i as i64);
    }
    let stats = rig.stats();
    assert!(stats.retries > 0, "{stats:?}");
    assert!(stats.calls.get("server_error").copied().unwrap_or(0) > 0);
}

#[tokio::test]
async fn a_lost_answer_is_retried_with_the_same_idempotency_key_and_no_drift() {
    let rig = Rig::with(sandbox_config(2, ThrottledStatus::Ok), |config| {
        config.http.request_timeout_ms = 300;
    })
    .await;
    let one = east("SKU-1");
    rig.offer(&one, 9);
    assert!(rig.settled().await);
    rig.sandbox.faults().set(FaultConfig {
        timeout_rate: 1.0,
        timeout_hold: Duration::from_millis(600),
        timeout_processes: true,
        ..FaultConfig::default()
    });
    rig.offer(&one, 4);
    assert!(
        wait_until(Duration::from_secs(5), || rig
            .stats()
            .errors
            .contains_key("timeout"))
        .await
    );
    rig.sandbox.faults().set(FaultConfig::default());
    assert!(rig.settled().await, "{:?}", rig.stats());
    assert_eq!(rig.shown("SKU-1", EAST), 4);
    assert_eq!(rig.stats().drift, 0);
}

#[tokio::test]
async fn unknown_items_stay_pending_with_the_code_recorded() {
    let rig = Rig::start(sandbox_config(1, ThrottledStatus::Ok)).await;
    rig.offer(&east("NOT-SOLD-HERE"), 3);
    rig.offer(&east("SKU-1"), 3);
    assert!(
        wait_until(Duration::from_secs(5), || rig.stats().queue_depth == 1).await,
        "{:?}",
        rig.stats()
    );
    let stats = rig.stats();
    assert_eq!(stats.key_errors[0].1.failure.code, "unknown_sku");
    assert_eq!(stats.errors["unknown_sku"], 1);
    assert_eq!(rig.shown("SKU-1", EAST), 3);
}

#[tokio::test]
async fn a_first_full_sync_sends_250_quantities_a_call_and_reports_progress() {
    let rig = Rig::start(sandbox_config(300, ThrottledStatus::Ok)).await;
    let mut catalogue = Vec::new();
    for i in 1..=300u64 {
        for (offset, location) in ["east", "west"].iter().enumerate() {
            let key = key(&format!("SKU-{i}"), Some(location));
            catalogue.push(change(&rig.engine, CHANNEL, &key, 5, i * 2 + offset as u64));
        }
    }
    let progress = rig
        .engine
        .full_sync(&channel_id(CHANNEL), catalogue)
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(30), wait_full_sync(progress))
        .await
        .expect("the full sync ends");
    assert_eq!((done.total, done.done, done.failed), (600, 600, 0));
    let recorder = rig.sandbox.recorder();
    assert_eq!(recorder.call_total("inventorySetQuantities"), 3);
    assert_eq!(recorder.violation_count(), 0);
    assert_eq!(rig.shown("SKU-300", WEST), 5);
}
