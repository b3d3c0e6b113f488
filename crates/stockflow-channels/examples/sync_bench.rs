//! Propagation latency of the channel sync against the sandboxes, at the documented limits:
//!
//!     cargo run --release -p stockflow-channels --example sync_bench -- [events/s] [seconds]
//!
//! 1,000 SKUs at two locations; Shopify (Standard bucket, 100 points/s, 250 quantities a call),
//! TikTok Shop (10 calls/s, 100 SKUs of a product a call) and Amazon (5 PATCH/s, burst 5). The
//! channels are primed with the sandboxes' seeded quantities, as a restarted server would prime
//! them with what they last acknowledged. Prints one JSON report.

use std::collections::BTreeMap;
use std::time::Duration;

use stockflow_channels::bench::{BenchChannel, BenchSpec, drive};
use stockflow_channels::config::{
    AmazonConfig, CostSettings, FeedSettings, HttpSettings, RateSettings, RetrySettings, Secret,
    ShopifyConfig, SyncSettings, TiktokConfig, TiktokItem,
};
use stockflow_channels::setup::channel_spec;
use stockflow_channels::{ChannelConfig, SyncEngine, SyncKey};
use stockflow_core::ids::{ChannelId, LocationId, Sku, TenantId};
use stockflow_sim::{Catalogue, CatalogueSpec, amazon, shopify, tiktok};

fn id(name: &str) -> ChannelId {
    ChannelId::parse(name).unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args = std::env::args().skip(1);
    let rate: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let names: Vec<String> = (1..=1_000).map(|i| format!("SKU-{i:04}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut catalogue_spec = CatalogueSpec::new(&refs, &["east", "west"], 50);
    catalogue_spec.tiktok_skus_per_product = 100;
    let catalogue = Catalogue::generate(&catalogue_spec);

    let mut amazon_sandbox = amazon::AmazonConfig::new(catalogue.amazon.clone(), "atza");
    amazon_sandbox.never_applied_share = 0.0;
    let shop = shopify::start(shopify::ShopifyConfig::new(
        catalogue.shopify.clone(),
        "shpat",
    ))
    .await
    .unwrap();
    let amz = amazon::start(amazon_sandbox).await.unwrap();
    let tts = tiktok::start(tiktok::TikTokConfig::new(
        catalogue.tiktok.clone(),
        "key",
        "secret",
        "token",
        "cipher",
    ))
    .await
    .unwrap();

    let locations: Vec<LocationId> = ["east", "west"]
        .iter()
        .map(|l| LocationId::parse(*l).unwrap())
        .collect();
    let http = HttpSettings::default();
    let retry = RetrySettings::default();
    let shopify_config = ChannelConfig::Shopify(ShopifyConfig {
        tenant: TenantId::default_tenant(),
        base_url: shop.base_url(),
        api_version: "2026-04".into(),
        access_token: Secret::new("shpat"),
        locations: locations
            .iter()
            .cloned()
            .zip(catalogue.shopify.locations.iter().map(|l| l.id.clone()))
            .collect(),
        items: catalogue
            .shopify
            .items
            .iter()
            .map(|i| {
                (
                    Sku::parse(i.sku.clone()).unwrap(),
                    i.inventory_item_id.clone(),
                )
            })
            .collect(),
        cost: CostSettings::default(),
        reason: "correction".into(),
        sync: SyncSettings::default(),
        retry: retry.clone(),
        http: http.clone(),
    });
    let amazon_config = ChannelConfig::Amazon(AmazonConfig {
        tenant: TenantId::default_tenant(),
        base_url: amz.base_url(),
        seller_id: catalogue.amazon.seller_id.clone(),
        marketplace_ids: catalogue.amazon.marketplace_ids.clone(),
        product_type: "PRODUCT".into(),
        access_token: Secret::new("atza"),
        rate: RateSettings::new(5.0, 5),
        read_rate: RateSettings::new(5.0, 10),
        verify_delay_ms: 120_000,
        order_grace_ms: 600_000,
        feeds: FeedSettings::default(),
        sync: SyncSettings::default(),
        retry: retry.clone(),
        http: http.clone(),
    });
    let tiktok_items: BTreeMap<Sku, TiktokItem> = catalogue
        .tiktok
        .products
        .iter()
        .flat_map(|p| {
            p.skus.iter().map(|s| {
                (
                    Sku::parse(s.seller_sku.clone()).unwrap(),
                    TiktokItem {
                        product_id: p.product_id.clone(),
                        sku_id: s.id.clone(),
                    },
                )
            })
        })
        .collect();
    let tiktok_config = ChannelConfig::Tiktok(TiktokConfig {
        tenant: TenantId::default_tenant(),
        base_url: tts.base_url(),
        app_key: "key".into(),
        app_secret: Secret::new("secret"),
        access_token: Secret::new("token"),
        shop_cipher: "cipher".into(),
        locations: locations
            .iter()
            .cloned()
            .zip(catalogue.tiktok.warehouse_ids.iter().cloned())
            .collect(),
        items: tiktok_items,
        product_ids: Vec::new(),
        rate: RateSettings::new(10.0, 10),
        sync: SyncSettings::default(),
        retry,
        http,
    });
    let specs = vec![
        channel_spec(&id("shopify"), &shopify_config).unwrap(),
        channel_spec(&id("amazon"), &amazon_config).unwrap(),
        channel_spec(&id("tiktok"), &tiktok_config).unwrap(),
    ];
    let engine = SyncEngine::start(specs);
    let skus: Vec<Sku> = names
        .iter()
        .map(|n| Sku::parse(n.clone()).unwrap())
        .collect();
    let per_location: Vec<(SyncKey, i64)> = skus
        .iter()
        .flat_map(|sku| {
            locations
                .iter()
                .map(|l| (SyncKey::new(sku.clone(), Some(l.clone())), 50))
        })
        .collect();
    let per_sku: Vec<(SyncKey, i64)> = skus
        .iter()
        .map(|sku| (SyncKey::new(sku.clone(), None), 100))
        .collect();
    engine.prime(&id("shopify"), &per_location).unwrap();
    engine.prime(&id("tiktok"), &per_location).unwrap();
    engine.prime(&id("amazon"), &per_sku).unwrap();

    let report = drive(
        &engine,
        &[
            BenchChannel {
                channel: id("shopify"),
                per_location: true,
            },
            BenchChannel {
                channel: id("tiktok"),
                per_location: true,
            },
            BenchChannel {
                channel: id("amazon"),
                per_location: false,
            },
        ],
        &BenchSpec {
            events_per_second: rate,
            skus,
            locations,
            duration: Duration::from_secs(seconds),
            drain: Duration::from_secs(5),
            zero_share: 0.02,
            seed: 1,
        },
    )
    .await;
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    for (name, recorder) in [
        ("shopify", shop.recorder()),
        ("amazon", amz.recorder()),
        ("tiktok", tts.recorder()),
    ] {
        eprintln!(
            "{name}: sandbox rejections {} violations {}",
            recorder.rejection_count(),
            recorder.violation_count()
        );
    }
}
