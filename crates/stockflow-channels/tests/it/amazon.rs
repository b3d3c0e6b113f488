//! The Amazon adapter through real HTTP against the SP-API sandbox: the token bucket never
//! exceeded, decreases first under backlog, ACCEPTED values that never land found by reading
//! back and sent again, Amazon's own order decrement explained, 429 without Retry-After, and
//! the first full sync through JSON_LISTINGS_FEED with progress and its values acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stockflow_channels::amazon::AmazonAdapter;
use stockflow_channels::config::{
    AmazonConfig, FeedSettings, HttpSettings, RateSettings, Secret, SyncSettings,
};
use stockflow_channels::{ChannelSpec, ChannelStats, SyncEngine, SyncEvent};
use stockflow_core::ids::TenantId;
use stockflow_sim::amazon::{self, AmazonConfig as SandboxConfig, AmazonHandle};
use stockflow_sim::{Catalogue, CatalogueSpec, Cause, RateLimit};

use crate::support::{change, channel_id, install_tls, key, retry, settings, wait_until};

const TOKEN: &str = "Atza|sandbox";
const CHANNEL: &str = "amazon";

fn sandbox_config(count: usize) -> SandboxConfig {
    let names: Vec<String> = (1..=count).map(|i| format!("SKU-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let catalogue = Catalogue::generate(&CatalogueSpec::new(&names, &["east"], 10));
    let mut config = SandboxConfig::new(catalogue.amazon, TOKEN);
    config.apply_delay = Duration::from_millis(200);
    config.never_applied_share = 0.0;
    config.feeds.queue_delay = Duration::from_millis(200);
    config.feeds.processing_delay = Duration::from_millis(300);
    config
}

fn adapter_config(base_url: String) -> AmazonConfig {
    AmazonConfig {
        tenant: TenantId::default_tenant(),
        base_url,
        seller_id: "A2SANDBOXSELLER".into(),
        marketplace_ids: vec!["ATVPDKIKX0DER".into()],
        product_type: "PRODUCT".into(),
        access_token: Secret::new(TOKEN),
        rate: RateSettings::new(5.0, 5),
        read_rate: RateSettings::new(5.0, 10),
        verify_delay_ms: 700,
        order_grace_ms: 3_000,
        feeds: FeedSettings {
            poll_interval_ms: 100,
            messages_max: 10,
            ..FeedSettings::default()
        },
        sync: SyncSettings::default(),
        retry: Default::default(),
        http: HttpSettings {
            request_timeout_ms: 2_000,
            ..HttpSettings::default()
        },
    }
}

struct Rig {
    sandbox: AmazonHandle,
    engine: SyncEngine,
    position: AtomicU64,
}

impl Rig {
    async fn start(sandbox: SandboxConfig) -> Self {
        install_tls();
        let sandbox = amazon::start(sandbox).await.expect("sandbox starts");
        let config = adapter_config(sandbox.base_url());
        let adapter = AmazonAdapter::new(&config).expect("adapter builds");
        let engine = SyncEngine::start(vec![ChannelSpec {
            id: channel_id(CHANNEL),
            tenant: TenantId::default_tenant(),
            kind: "amazon",
            adapter: Arc::new(adapter),
            settings: settings(1, 0),
            retry: retry(),
            order_grace: Duration::from_millis(config.order_grace_ms),
        }]);
        Self {
            sandbox,
            engine,
            position: AtomicU64::new(0),
        }
    }

    fn offer(&self, sku: &str, quantity: i64) {
        let position = self.position.fetch_add(1, Ordering::Relaxed) + 1;
        let key = key(sku, None);
        self.engine
            .offer(&[change(&self.engine, CHANNEL, &key, quantity, position)]);
    }

    fn stats(&self) -> ChannelStats {
        self.engine.stats().remove(0)
    }

    async fn settled(&self, limit: Duration) -> bool {
        wait_until(limit, || {
            let stats = self.stats();
            stats.queue_depth == 0 && stats.verifications_pending == 0
        })
        .await
    }

    fn shown(&self, sku: &str) -> i64 {
        self.sandbox.quantity(sku).expect("listing exists")
    }

    /// When the sandbox last changed a SKU's quantity through our calls.
    fn last_applied_at(&self, sku: &str) -> Duration {
        let timeline = self
            .sandbox
            .recorder()
            .timeline(sku, amazon::DEFAULT_CHANNEL);
        timeline
            .iter()
            .rev()
            .find(|p| matches!(p.cause, Cause::QueuedApply { .. }))
            .map(|p| p.at)
            .expect("applied")
    }
}

#[tokio::test]
async fn under_backlog_drops_to_zero_and_decreases_go_first_within_the_token_bucket() {
    let rig = Rig::start(sandbox_config(12)).await;
    for i in 1..=12 {
        rig.offer(&format!("SKU-{i}"), 10 + i);
    }
    assert!(
        rig.settled(Duration::from_secs(15)).await,
        "{:?}",
        rig.stats()
    );
    // Eight increases, then three decreases and a drop to zero, all at once: 12 calls at 5/s.
    for i in 1..=8 {
        rig.offer(&format!("SKU-{i}"), 40);
    }
    for i in 9..=11 {
        rig.offer(&format!("SKU-{i}"), 1);
    }
    rig.offer("SKU-12", 0);
    assert!(
        rig.settled(Duration::from_secs(15)).await,
        "{:?}",
        rig.stats()
    );
    let zero = rig.last_applied_at("SKU-12");
    let decreases: Vec<Duration> = (9..=11)
        .map(|i| rig.last_applied_at(&format!("SKU-{i}")))
        .collect();
    let increases: Vec<Duration> = (1..=8)
        .map(|i| rig.last_applied_at(&format!("SKU-{i}")))
        .collect();
    assert!(decreases.iter().all(|d| zero <= *d));
    let last_decrease = decreases.iter().max().unwrap();
    assert!(
        increases.iter().all(|i| last_decrease <= i),
        "{decreases:?} {increases:?}"
    );
    assert_eq!(rig.shown("SKU-12"), 0);
    assert_eq!(rig.shown("SKU-1"), 40);
    let recorder = rig.sandbox.recorder();
    assert_eq!(recorder.violation_count(), 0, "{:?}", recorder.violations());
    assert_eq!(rig.stats().verified, 24);
}

#[tokio::test]
async fn accepted_values_that_never_land_are_found_by_reading_back_and_sent_again() {
    let mut config = sandbox_config(6);
    config.never_applied_share = 0.5;
    config.common.seed = 7;
    let rig = Rig::start(config).await;
    for i in 1..=6 {
        rig.offer(&format!("SKU-{i}"), i);
    }
    assert!(
        rig.settled(Duration::from_secs(30)).await,
        "{:?}",
        rig.stats()
    );
    for i in 1..=6 {
        assert_eq!(rig.shown(&format!("SKU-{i}")), i as i64);
    }
    let lost = rig.sandbox.submission_counts().lost;
    assert!(lost > 0);
    assert_eq!(rig.stats().not_applied, lost);
    assert_eq!(rig.sandbox.recorder().violation_count(), 0);
}

#[tokio::test]
async fn amazons_own_order_decrement_is_not_overwritten_when_we_were_told_of_it() {
    let rig = Rig::start(sandbox_config(2)).await;
    rig.offer("SKU-1", 8);
    rig.offer("SKU-2", 8);
    assert!(
        wait_until(Duration::from_secs(3), || rig.shown("SKU-1") == 8
            && rig.shown("SKU-2") == 8)
        .await
    );
    // A buyer orders one of each on Amazon before our read-back; we hear only of SKU-1's.
    rig.sandbox.place_order("SKU-1", 1).unwrap();
    rig.sandbox.place_order("SKU-2", 1).unwrap();
    rig.engine
        .order_seen(&channel_id(CHANNEL), &key("SKU-1", None).sku, None, 1)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // SKU-1 verified; SKU-2 is not repaired upward within the grace period.
    assert_eq!(rig.shown("SKU-1"), 7);
    assert_eq!(rig.shown("SKU-2"), 7);
    let patches = rig.sandbox.recorder().call_total("patchListingsItem");
    assert_eq!(patches, 2);
    assert_eq!(rig.stats().verified, 1);
}

#[tokio::test]
async fn a_429_without_retry_after_holds_off_and_the_values_land() {
    let mut config = sandbox_config(8);
    config.patch_rate = RateLimit::new(2.0, 1.0);
    let rig = Rig::start(config).await;
    for i in 1..=8 {
        rig.offer(&format!("SKU-{i}"), 3);
    }
    assert!(
        rig.settled(Duration::from_secs(30)).await,
        "{:?}",
        rig.stats()
    );
    let recorder = rig.sandbox.recorder();
    assert!(recorder.rejection_count() > 0);
    assert_eq!(recorder.violation_count(), 0, "{:?}", recorder.violations());
    assert!(rig.stats().rate_limited > 0);
    assert!(rig.stats().errors.contains_key("QuotaExceeded"));
    assert_eq!(rig.shown("SKU-8"), 3);
}

#[tokio::test]
async fn a_first_full_sync_goes_through_feeds_with_progress() {
    let rig = Rig::start(sandbox_config(24)).await;
    let mut catalogue: Vec<_> = (1..=24u64)
        .map(|i| {
            change(
                &rig.engine,
                CHANNEL,
                &key(&format!("SKU-{i}"), None),
                30 + i as i64,
                i,
            )
        })
        .collect();
    catalogue.push(change(
        &rig.engine,
        CHANNEL,
        &key("NOT-LISTED", None),
        1,
        25,
    ));
    let mut events = rig.engine.subscribe();
    let mut progress = rig
        .engine
        .full_sync(&channel_id(CHANNEL), catalogue)
        .unwrap();
    let mut seen = Vec::new();
    let done = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let current = progress.borrow_and_update().clone();
            seen.push(current.done + current.failed);
            if current.finished || progress.changed().await.is_err() {
                return current;
            }
        }
    })
    .await
    .expect("the full sync ends");
    assert_eq!((done.total, done.done, done.failed), (25, 24, 1));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    assert!(
        seen.iter().any(|&n| n > 0 && n < 25),
        "progress in steps: {seen:?}"
    );
    assert_eq!(rig.shown("SKU-24"), 54);
    let recorder = rig.sandbox.recorder();
    assert_eq!(recorder.call_total("createFeed"), 3);
    assert_eq!(recorder.violation_count(), 0);
    // The refused SKU stays pending on the normal path with the platform's code.
    let stats = rig.stats();
    assert_eq!(stats.errors.get("SKU_NOT_FOUND"), Some(&1), "{stats:?}");
    assert_eq!(stats.queue_depth, 1);
    assert_eq!(stats.key_errors[0].1.failure.code, "SKU_NOT_FOUND");
    // What the feed's report says was applied is acknowledged, before the sync says it ended;
    // the refused SKU is not.
    let mut acknowledged = std::collections::BTreeMap::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await;
        match event
            .expect("the full sync's end")
            .expect("no event missed")
        {
            SyncEvent::FullSyncAcknowledged { channel, values } => {
                assert_eq!(channel.as_str(), CHANNEL);
                for value in values {
                    assert!(!value.queued);
                    acknowledged.insert(value.sku.as_str().to_owned(), value.quantity);
                }
            }
            SyncEvent::FullSync { .. } => break,
            _ => {}
        }
    }
    assert_eq!(acknowledged.len(), 24, "{acknowledged:?}");
    assert!(!acknowledged.contains_key("NOT-LISTED"));
    for i in 1..=24i64 {
        assert_eq!(acknowledged.get(&format!("SKU-{i}")), Some(&(30 + i)));
    }
}
