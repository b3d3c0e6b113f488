//! Everything the demo (and the end-to-end test) runs in one process: the three platform
//! sandboxes seeded with the story's catalogue, stockflow on a free port with its channels
//! pointing at them (and their order webhooks pointing back at stockflow), the physical world,
//! the platforms' storefronts and webhook queues, and the warehouse.

use anyhow::Context;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use stockflow_server::{Config, Server, ServerHandle};
use stockflow_sim::catalogue::Catalogue;
use stockflow_sim::delivery::DeliveryConfig;
use stockflow_sim::market::{AmazonOutlet, Market, MarketConfig, ShopifyOutlet, TikTokOutlet};
use stockflow_sim::notify::amazon::AmazonNotifications;
use stockflow_sim::notify::shopify::ShopifyWebhooks;
use stockflow_sim::notify::tiktok::TikTokWebhooks;
use stockflow_sim::scenario::Story;
use stockflow_sim::wms::{ReservationIds, Wms, WmsConfig};
use stockflow_sim::{Platform, World, amazon, shopify, tiktok};

/// Channel ids in stockflow, one per platform.
pub const SHOPIFY: &str = "shopify";
pub const AMAZON: &str = "amazon";
pub const TIKTOK: &str = "tiktok";

/// The channel id of a platform.
pub fn channel_of(platform: Platform) -> &'static str {
    match platform {
        Platform::Shopify => SHOPIFY,
        Platform::Amazon => AMAZON,
        Platform::TikTok => TIKTOK,
    }
}

/// Credentials of the sandboxes, as a merchant would paste them into stockflow's configuration.
pub mod secrets {
    pub const SHOPIFY_TOKEN: &str = "shpat_demo";
    pub const SHOPIFY_APP_SECRET: &str = "shpss_demo_app_secret";
    pub const AMAZON_TOKEN: &str = "Atza|demo";
    pub const AMAZON_FORWARDER_SECRET: &str = "amazon-forwarder-demo-secret";
    pub const TIKTOK_APP_KEY: &str = "6demoappkey";
    pub const TIKTOK_APP_SECRET: &str = "tiktok-demo-app-secret";
    pub const TIKTOK_TOKEN: &str = "TTP_demo";
    pub const TIKTOK_SHOP_CIPHER: &str = "ROW_demo_cipher";
    pub const TIKTOK_SHOP_ID: &str = "7494049642642441621";
    pub const SHOP_DOMAIN: &str = "stockflow-demo.myshopify.com";
}

/// How the stage is set up.
#[derive(Clone, Debug)]
pub struct StageConfig {
    pub story: Story,
    pub data_dir: PathBuf,
    /// The buffer policies on the volatile SKU (dynamic and channel-aware); off for a baseline.
    pub buffers: bool,
    /// Seeds the platforms' webhook delays and duplicates.
    pub seed: u64,
    /// How often a dynamic buffer above what demand calls for steps down.
    pub decay_step: Duration,
    /// How long Amazon takes to apply an accepted quantity.
    pub amazon_apply_delay: Duration,
    /// Per platform, what each channel is allowed to show (stockflow's allocation rules).
    pub allocation: BTreeMap<Platform, Value>,
}

impl StageConfig {
    pub fn new(story: Story, data_dir: PathBuf, seed: u64) -> Self {
        let decay_step = Duration::from_secs_f64((story.duration.as_secs_f64() / 60.0).max(1.0));
        Self {
            story,
            data_dir,
            buffers: true,
            seed,
            decay_step,
            amazon_apply_delay: Duration::from_millis(300),
            allocation: BTreeMap::new(),
        }
    }
}

pub struct Stage {
    pub server: ServerHandle,
    pub url: String,
    pub client: reqwest::Client,
    pub story: Story,
    pub catalogue: Catalogue,
    pub shopify: Arc<shopify::ShopifyHandle>,
    pub amazon: Arc<amazon::AmazonHandle>,
    pub tiktok: Arc<tiktok::TikTokHandle>,
    pub world: World,
    pub market: Arc<Market>,
    pub wms: Arc<Wms>,
    /// The TikTok SKU id of each seller SKU.
    pub tiktok_sku_ids: BTreeMap<String, String>,
}

impl Stage {
    /// Starts the sandboxes, then stockflow configured for them, then the platforms' webhook
    /// queues and the warehouse. Nothing is on the shelves yet: see [`Stage::open_stock`].
    pub async fn start(config: StageConfig) -> anyhow::Result<Stage> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let story = config.story.clone();
        let catalogue = story.catalogue();
        let shopify = Arc::new(
            shopify::start(shopify::ShopifyConfig::new(
                catalogue.shopify.clone(),
                secrets::SHOPIFY_TOKEN,
            ))
            .await
            .context("starting the Shopify sandbox")?,
        );
        let mut amazon_config =
            amazon::AmazonConfig::new(catalogue.amazon.clone(), secrets::AMAZON_TOKEN);
        amazon_config.apply_delay = config.amazon_apply_delay;
        amazon_config.common.seed = config.seed;
        let amazon = Arc::new(
            amazon::start(amazon_config)
                .await
                .context("starting the Amazon sandbox")?,
        );
        let mut tiktok_config = tiktok::TikTokConfig::new(
            catalogue.tiktok.clone(),
            secrets::TIKTOK_APP_KEY,
            secrets::TIKTOK_APP_SECRET,
            secrets::TIKTOK_TOKEN,
            secrets::TIKTOK_SHOP_CIPHER,
        );
        tiktok_config.common.seed = config.seed;
        // TikTok does not publish its limits; 50 calls/s per shop leaves room for both the
        // inventory updates and the order reads stockflow makes (20/s each, below).
        tiktok_config.rate_limit = stockflow_sim::RateLimit::new(50.0, 50.0);
        let tiktok = Arc::new(
            tiktok::start(tiktok_config)
                .await
                .context("starting the TikTok Shop sandbox")?,
        );
        let server_config = server_config(&config, &catalogue, &shopify, &amazon, &tiktok)?;
        let server = Server::start(server_config)
            .await
            .context("starting stockflow")?;
        let url = server.url();
        let world = World::new();
        let tiktok_sku_ids: BTreeMap<String, String> = catalogue
            .tiktok
            .products
            .iter()
            .flat_map(|p| p.skus.iter().map(|s| (s.seller_sku.clone(), s.id.clone())))
            .collect();
        let market = start_market(
            &config,
            &url,
            &catalogue,
            &world,
            &shopify,
            &amazon,
            &tiktok,
            &tiktok_sku_ids,
        );
        let mut wms_config =
            WmsConfig::new(format!("{url}/v1/events"), "wms-east", &story.location);
        wms_config.reservation_ids = reservation_ids();
        let wms = Wms::start(wms_config, world.clone());
        Ok(Stage {
            server,
            url,
            client: stockflow_sim::delivery::http_client(Duration::from_secs(10)),
            story,
            catalogue,
            shopify,
            amazon,
            tiktok,
            world,
            market,
            wms,
            tiktok_sku_ids,
        })
    }

    /// The opening balance: every SKU's units are received (on the shelf, and told to
    /// stockflow), and the call returns once stockflow applied them.
    pub async fn open_stock(&self) -> anyhow::Result<()> {
        for stocked in &self.story.stock {
            self.wms
                .received(&stocked.sku, stocked.units, "OPENING-BALANCE")
                .await;
        }
        anyhow::ensure!(
            self.wms.flush(Duration::from_secs(30)).await,
            "stockflow did not take the opening stock within 30 s"
        );
        Ok(())
    }

    /// `GET /v1/skus/{sku}`.
    pub async fn sku(&self, sku: &str) -> anyhow::Result<Value> {
        self.get(&format!("/v1/skus/{sku}")).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "GET {path} answered {status}: {body}");
        Ok(body)
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(
            status.is_success(),
            "POST {path} answered {status}: {answer}"
        );
        Ok(answer)
    }

    /// Waits until stockflow processed every webhook it accepted (none pending in its inbox),
    /// at most `timeout`; true when none is pending.
    pub async fn inbox_processed(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let pending = self
                .get("/v1/webhooks/inbox?state=pending&limit=1")
                .await
                .map(|page| page["rows"].as_array().is_some_and(|rows| !rows.is_empty()));
            match pending {
                Ok(false) => return true,
                Err(_) => return false,
                Ok(true) if tokio::time::Instant::now() >= deadline => return false,
                Ok(true) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// What a platform's storefront shows for a SKU.
    pub fn shown(&self, platform: Platform, sku: &str) -> Option<i64> {
        self.market.shown(platform, sku)
    }

    /// Stops the webhooks, then stockflow (which finishes its queue), then the sandboxes.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.market.close();
        self.server.shutdown().await?;
        Ok(())
    }
}

/// Reservation ids as stockflow derives them from a platform's order id.
pub fn reservation_ids() -> ReservationIds {
    ReservationIds::per_channel(&[
        (Platform::Shopify, SHOPIFY),
        (Platform::Amazon, AMAZON),
        (Platform::TikTok, TIKTOK),
    ])
}

/// The webhook endpoint of a channel on stockflow.
pub fn webhook_url(url: &str, platform: Platform) -> String {
    format!(
        "{url}/v1/webhooks/{}/{}",
        platform.name(),
        channel_of(platform)
    )
}

/// The `items` of a Shopify channel's settings for the sandbox's catalogue: SKU to inventory
/// item id.
pub fn shopify_items(catalogue: &Catalogue) -> BTreeMap<&str, &str> {
    catalogue
        .shopify
        .items
        .iter()
        .map(|i| (i.sku.as_str(), i.inventory_item_id.as_str()))
        .collect()
}

/// The `items` of a TikTok Shop channel's settings for the sandbox's catalogue: seller SKU to
/// its product and SKU ids.
pub fn tiktok_items(catalogue: &Catalogue) -> BTreeMap<&str, Value> {
    catalogue
        .tiktok
        .products
        .iter()
        .flat_map(|p| {
            p.skus.iter().map(move |s| {
                (
                    s.seller_sku.as_str(),
                    json!({"product_id": p.product_id, "sku_id": s.id}),
                )
            })
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn start_market(
    config: &StageConfig,
    url: &str,
    catalogue: &Catalogue,
    world: &World,
    shopify: &Arc<shopify::ShopifyHandle>,
    amazon: &Arc<amazon::AmazonHandle>,
    tiktok: &Arc<tiktok::TikTokHandle>,
    tiktok_sku_ids: &BTreeMap<String, String>,
) -> Arc<Market> {
    let scale = config.story.time_scale();
    let delivery = |platform: Platform, base: fn(String) -> DeliveryConfig| DeliveryConfig {
        seed: config.seed ^ platform as u64,
        ..base(webhook_url(url, platform)).scaled(scale)
    };
    let amazon_catalogue = &catalogue.amazon;
    Market::start(MarketConfig {
        world: world.clone(),
        locations: vec![config.story.location.clone()],
        shopify: Some(ShopifyOutlet {
            handle: shopify.clone(),
            location_id: catalogue.shopify.locations[0].id.clone(),
            webhooks: ShopifyWebhooks {
                shop_domain: secrets::SHOP_DOMAIN.into(),
                api_version: "2026-04".into(),
                secret: secrets::SHOPIFY_APP_SECRET.into(),
                seed: config.seed,
            },
            delivery: delivery(Platform::Shopify, DeliveryConfig::shopify),
        }),
        amazon: Some(AmazonOutlet {
            handle: amazon.clone(),
            notifications: AmazonNotifications::new(
                &amazon_catalogue.seller_id,
                &amazon_catalogue.marketplace_ids[0],
                secrets::AMAZON_FORWARDER_SECRET,
                config.seed,
            ),
            delivery: delivery(Platform::Amazon, DeliveryConfig::amazon),
        }),
        tiktok: Some(TikTokOutlet {
            handle: tiktok.clone(),
            warehouse_id: catalogue.tiktok.warehouse_ids[0].clone(),
            sku_ids: tiktok_sku_ids.clone(),
            webhooks: TikTokWebhooks {
                app_key: secrets::TIKTOK_APP_KEY.into(),
                app_secret: secrets::TIKTOK_APP_SECRET.into(),
                shop_id: secrets::TIKTOK_SHOP_ID.into(),
            },
            delivery: delivery(Platform::TikTok, DeliveryConfig::tiktok),
        }),
        unit_price_cents: 4_999,
    })
}

/// stockflow's configuration: the three channels at the sandboxes, and the buffer policies.
fn server_config(
    config: &StageConfig,
    catalogue: &Catalogue,
    shop: &shopify::ShopifyHandle,
    amz: &amazon::AmazonHandle,
    tts: &tiktok::TikTokHandle,
) -> anyhow::Result<Config> {
    let location = &config.story.location;
    let policies: Vec<&str> = if config.buffers {
        vec!["viral-guard", "marketplace-caution"]
    } else {
        Vec::new()
    };
    let allocation = |platform: Platform| {
        config
            .allocation
            .get(&platform)
            .cloned()
            .unwrap_or_else(|| json!({}))
    };
    let fast = json!({"batch_linger_ms": 20, "latency_budget_ms": 1000});
    let shopify_items = shopify_items(catalogue);
    let tiktok_items = tiktok_items(catalogue);
    let mut channels = BTreeMap::new();
    channels.insert(
        SHOPIFY.to_owned(),
        json!({
            "kind": "shopify", "serves": [location], "policies": policies,
            "allocation": allocation(Platform::Shopify),
            "base_url": shop.base_url(), "access_token": secrets::SHOPIFY_TOKEN,
            "locations": {location: catalogue.shopify.locations[0].id},
            "items": shopify_items, "sync": fast,
        }),
    );
    channels.insert(
        AMAZON.to_owned(),
        json!({
            "kind": "amazon", "serves": [location], "policies": policies,
            "allocation": allocation(Platform::Amazon),
            "base_url": amz.base_url(), "access_token": secrets::AMAZON_TOKEN,
            "seller_id": catalogue.amazon.seller_id,
            "marketplace_ids": catalogue.amazon.marketplace_ids,
            "verify_delay_ms": 2_000, "order_grace_ms": 5_000,
        }),
    );
    channels.insert(
        TIKTOK.to_owned(),
        json!({
            "kind": "tiktok", "serves": [location], "policies": policies,
            "allocation": allocation(Platform::TikTok),
            "base_url": tts.base_url(), "app_key": secrets::TIKTOK_APP_KEY,
            "app_secret": secrets::TIKTOK_APP_SECRET, "access_token": secrets::TIKTOK_TOKEN,
            "shop_cipher": secrets::TIKTOK_SHOP_CIPHER,
            "rate": {"per_second": 20.0, "burst": 20},
            "locations": {location: catalogue.tiktok.warehouse_ids[0]},
            "items": tiktok_items, "sync": fast,
        }),
    );
    let hot = &config.story.hot_sku;
    let decay_step_seconds = config.decay_step.as_secs().max(1);
    let policies = vec![
        json!({
            "id": "viral-guard",
            "selector": {"skus": [hot]},
            "strategy": {"kind": "dynamic", "decay_step_seconds": decay_step_seconds,
                         "decay_per_step": 2},
        }),
        json!({
            "id": "marketplace-caution",
            "selector": {"skus": [hot]},
            "strategy": {"kind": "channel_aware", "base": 2,
                         "factors": {SHOPIFY: 0, AMAZON: 1.5, TIKTOK: 1}},
        }),
    ];
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        data_dir: config.data_dir.clone(),
        channels,
        policies: if config.buffers { policies } else { Vec::new() },
        ..Config::default()
    };
    with_webhook_secrets(config)
}

/// Adds `[webhooks.channels.<id>]`: the secrets the platforms sign their order webhooks with.
fn with_webhook_secrets(config: Config) -> anyhow::Result<Config> {
    let mut value = serde_json::to_value(&config).context("the configuration serialises")?;
    value["webhooks"]["channels"] = json!({
        SHOPIFY: {"secret": secrets::SHOPIFY_APP_SECRET},
        AMAZON: {"secret": secrets::AMAZON_FORWARDER_SECRET,
                 "signature_header": "X-Stockflow-Signature"},
        TIKTOK: {"secret": secrets::TIKTOK_APP_SECRET},
    });
    serde_json::from_value(value).context("the webhook secrets in the configuration")
}
