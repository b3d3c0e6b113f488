//! The TikTok Shop adapter through real HTTP against the TikTok sandbox: every warehouse of a
//! SKU in one call, one product per call, items looked up by product, and a wrong signature
//! refused with the change kept pending and TikTok's code recorded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stockflow_channels::config::{
    HttpSettings, RateSettings, Secret, SyncSettings, TiktokConfig, TiktokItem,
};
use stockflow_channels::tiktok::TiktokAdapter;
use stockflow_channels::{ChannelStats, SyncEngine};
use stockflow_core::ids::{LocationId, Sku, TenantId};
use stockflow_sim::catalogue::TikTokCatalogue;
use stockflow_sim::tiktok::{self, TikTokConfig as SandboxConfig, TikTokHandle};
use stockflow_sim::{Catalogue, CatalogueSpec, Outcome};

use crate::support::{change, install_tls, key, retry, settings, spec, wait_until};

const CHANNEL: &str = "tiktok";
const APP_KEY: &str = "6abc";
const SECRET: &str = "tts-secret";
const TOKEN: &str = "ROW_token";
const CIPHER: &str = "GCP_cipher";
const EAST: &str = "729400000000001";
const WEST: &str = "729400000000002";

fn catalogue(count: usize) -> TikTokCatalogue {
    let names: Vec<String> = (1..=count).map(|i| format!("SKU-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Catalogue::generate(&CatalogueSpec::new(&names, &["east", "west"], 10)).tiktok
}

fn items(catalogue: &TikTokCatalogue) -> BTreeMap<Sku, TiktokItem> {
    catalogue
        .products
        .iter()
        .flat_map(|product| {
            product.skus.iter().map(|sku| {
                (
                    Sku::parse(sku.seller_sku.clone()).unwrap(),
                    TiktokItem {
                        product_id: product.product_id.clone(),
                        sku_id: sku.id.clone(),
                    },
                )
            })
        })
        .collect()
}

struct Rig {
    sandbox: TikTokHandle,
    engine: SyncEngine,
    catalogue: TikTokCatalogue,
    position: AtomicU64,
}

impl Rig {
    async fn start(count: usize, tweak: impl FnOnce(&mut TiktokConfig)) -> Self {
        install_tls();
        let catalogue = catalogue(count);
        let sandbox = tiktok::start(SandboxConfig::new(
            catalogue.clone(),
            APP_KEY,
            SECRET,
            TOKEN,
            CIPHER,
        ))
        .await
        .expect("sandbox starts");
        let mut config = TiktokConfig {
            tenant: TenantId::default_tenant(),
            base_url: sandbox.base_url(),
            app_key: APP_KEY.into(),
            app_secret: Secret::new(SECRET),
            access_token: Secret::new(TOKEN),
            shop_cipher: CIPHER.into(),
            locations: BTreeMap::from([
                (LocationId::parse("east").unwrap(), EAST.to_owned()),
                (LocationId::parse("west").unwrap(), WEST.to_owned()),
            ]),
            items: items(&catalogue),
            product_ids: Vec::new(),
            rate: RateSettings::new(10.0, 10),
            sync: SyncSettings::default(),
            retry: retry(),
            http: HttpSettings {
                request_timeout_ms: 2_000,
                ..HttpSettings::default()
            },
        };
        tweak(&mut config);
        let adapter = TiktokAdapter::new(&config).expect("adapter builds");
        let engine = SyncEngine::start(vec![spec(
            CHANNEL,
            Arc::new(adapter),
            settings(100, 100),
            config.retry.clone(),
        )]);
        Self {
            sandbox,
            engine,
            catalogue,
            position: AtomicU64::new(0),
        }
    }

    fn offer(&self, sku: &str, location: &str, quantity: i64) {
        let position = self.position.fetch_add(1, Ordering::Relaxed) + 1;
        let key = key(sku, Some(location));
        self.engine
            .offer(&[change(&self.engine, CHANNEL, &key, quantity, position)]);
    }

    fn stats(&self) -> ChannelStats {
        self.engine.stats().remove(0)
    }

    fn shown(&self, sku: &str, warehouse: &str) -> i64 {
        self.sandbox
            .recorder()
            .shown(sku, warehouse)
            .expect("seeded")
    }
}

#[tokio::test]
async fn every_warehouse_of_a_sku_goes_in_one_call_one_product_per_call() {
    let rig = Rig::start(25, |_| {}).await;
    // One warehouse of each SKU changes; the other is read once and sent back unchanged.
    for i in 1..=25 {
        rig.offer(&format!("SKU-{i}"), "east", i);
    }
    assert!(
        wait_until(Duration::from_secs(10), || rig.stats().queue_depth == 0).await,
        "{:?}",
        rig.stats()
    );
    let recorder = rig.sandbox.recorder();
    assert_eq!(recorder.call_count("updateInventory", Outcome::Refused), 0);
    assert_eq!(
        recorder.call_count("updateInventory", Outcome::Ok),
        3,
        "three products"
    );
    assert_eq!(recorder.violation_count(), 0);
    assert_eq!(rig.shown("SKU-25", EAST), 25);
    assert_eq!(rig.shown("SKU-25", WEST), 10);
    // The west warehouse is known now: a change there needs no read.
    let searches = recorder.call_total("searchInventory");
    rig.offer("SKU-3", "west", 0);
    assert!(wait_until(Duration::from_secs(5), || rig.shown("SKU-3", WEST) == 0).await);
    assert_eq!(rig.shown("SKU-3", EAST), 3);
    assert_eq!(recorder.call_total("searchInventory"), searches);
}

#[tokio::test]
async fn items_are_looked_up_by_product_when_not_configured() {
    let rig = Rig::start(5, |config| {
        config.product_ids = catalogue(5)
            .products
            .iter()
            .map(|p| p.product_id.clone())
            .collect();
        config.items.clear();
    })
    .await;
    rig.offer("SKU-2", "east", 4);
    rig.offer("SKU-2", "west", 6);
    assert!(wait_until(Duration::from_secs(5), || rig.stats().queue_depth == 0).await);
    assert_eq!(rig.shown("SKU-2", EAST), 4);
    assert_eq!(rig.shown("SKU-2", WEST), 6);
    let _ = &rig.catalogue;
}

#[tokio::test]
async fn a_wrong_signature_is_refused_and_the_change_stays_pending_with_the_code() {
    let rig = Rig::start(2, |config| {
        config.app_secret = Secret::new("not-the-secret")
    })
    .await;
    let mut events = rig.engine.subscribe();
    rig.offer("SKU-1", "east", 1);
    assert!(
        wait_until(Duration::from_secs(5), || rig
            .stats()
            .errors
            .contains_key("106001"))
        .await
    );
    let stats = rig.stats();
    assert_eq!(stats.queue_depth, 1);
    assert_eq!(stats.key_errors[0].1.failure.code, "106001");
    assert_eq!(stats.last_error.as_ref().unwrap().code, "106001");
    assert!(
        rig.sandbox
            .recorder()
            .call_count("searchInventory", Outcome::Unauthorized)
            > 0
    );
    assert_eq!(rig.shown("SKU-1", EAST), 10);
    let error = std::iter::from_fn(|| events.try_recv().ok())
        .find(|e| matches!(e, stockflow_channels::SyncEvent::Error { .. }));
    assert!(error.is_some());
}
