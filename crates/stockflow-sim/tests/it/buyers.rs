//! Simulated buyers on the three sandboxes, with nobody updating what the platforms show: each
//! platform sells what it shows, the shared world counts the sales that had no unit behind
//! them, per platform; the orders come back as signed webhooks; the same seed gives the same
//! buyers and the same outcome. Also TikTok's Get Order Detail, which a receiver of TikTok's
//! order webhooks reads the line items from.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stockflow_sim::buyers::{self, BuyersConfig, BuyersStats};
use stockflow_sim::delivery::DeliveryConfig;
use stockflow_sim::demand::{Arrivals, DemandCurve, DemandStream};
use stockflow_sim::market::{AmazonOutlet, Market, MarketConfig, ShopifyOutlet, TikTokOutlet};
use stockflow_sim::notify::amazon::AmazonNotifications;
use stockflow_sim::notify::shopify::{self as shopify_notify, ShopifyWebhooks};
use stockflow_sim::notify::tiktok::{self as tiktok_notify, TikTokWebhooks};
use stockflow_sim::tiktok::orders::OrderStatus;
use stockflow_sim::world::OversellCount;
use stockflow_sim::{Catalogue, CatalogueSpec, Platform, World, amazon, shopify, tiktok};

use crate::support::receiver::Receiver;
use crate::support::{client, read};

const SHOPIFY_SECRET: &str = "shpss_test";
const TIKTOK_KEY: &str = "6abc";
const TIKTOK_SECRET: &str = "s3cret";

struct Stage {
    market: Arc<Market>,
    world: World,
    tiktok: Arc<tiktok::TikTokHandle>,
    receivers: BTreeMap<Platform, Receiver>,
    sku_ids: BTreeMap<String, String>,
}

fn delivery(url: String) -> DeliveryConfig {
    DeliveryConfig {
        delay_max: Duration::from_millis(20),
        late_share: 0.0,
        retry_schedule: vec![Duration::from_millis(50); 3],
        ..DeliveryConfig::shopify(url)
    }
}

/// `HOT` with `units` on every platform and on the shelf at `east`.
async fn stage(units: i64) -> Stage {
    let catalogue = Catalogue::generate(&CatalogueSpec::new(&["HOT", "COLD"], &["east"], units));
    let world = World::new();
    world.receive("HOT", "east", units);
    world.receive("COLD", "east", units);
    let shop = Arc::new(
        shopify::start(shopify::ShopifyConfig::new(
            catalogue.shopify.clone(),
            "shpat",
        ))
        .await
        .unwrap(),
    );
    let amz = Arc::new(
        amazon::start(amazon::AmazonConfig::new(catalogue.amazon.clone(), "atza"))
            .await
            .unwrap(),
    );
    let tts = Arc::new(
        tiktok::start(tiktok::TikTokConfig::new(
            catalogue.tiktok.clone(),
            TIKTOK_KEY,
            TIKTOK_SECRET,
            "token",
            "cipher",
        ))
        .await
        .unwrap(),
    );
    let mut receivers = BTreeMap::new();
    for platform in Platform::ALL {
        receivers.insert(platform, Receiver::start(0, Duration::ZERO).await);
    }
    let url = |platform: Platform| receivers[&platform].url();
    let sku_ids: BTreeMap<String, String> = catalogue.tiktok.products[0]
        .skus
        .iter()
        .map(|s| (s.seller_sku.clone(), s.id.clone()))
        .collect();
    let market = Market::start(MarketConfig {
        world: world.clone(),
        locations: vec!["east".into()],
        shopify: Some(ShopifyOutlet {
            handle: shop,
            location_id: catalogue.shopify.locations[0].id.clone(),
            webhooks: ShopifyWebhooks {
                shop_domain: "stockflow-test.myshopify.com".into(),
                api_version: "2026-04".into(),
                secret: SHOPIFY_SECRET.into(),
                seed: 1,
            },
            delivery: delivery(url(Platform::Shopify)),
        }),
        amazon: Some(AmazonOutlet {
            handle: amz,
            notifications: AmazonNotifications::new("A2SANDBOXSELLER", "ATVPDKIKX0DER", "fwd", 1),
            delivery: delivery(url(Platform::Amazon)),
        }),
        tiktok: Some(TikTokOutlet {
            handle: tts.clone(),
            warehouse_id: catalogue.tiktok.warehouse_ids[0].clone(),
            sku_ids: sku_ids.clone(),
            webhooks: TikTokWebhooks {
                app_key: TIKTOK_KEY.into(),
                app_secret: TIKTOK_SECRET.into(),
                shop_id: "7494049642642441621".into(),
            },
            delivery: delivery(url(Platform::TikTok)),
        }),
        unit_price_cents: 4_999,
    });
    Stage {
        market,
        world,
        tiktok: tts,
        receivers,
        sku_ids,
    }
}

fn rush(rate: f64) -> Vec<DemandStream> {
    Platform::ALL
        .into_iter()
        .map(|platform| DemandStream {
            platform,
            sku: "HOT".into(),
            rate_per_second: rate,
            curve: DemandCurve::flat(1.0),
            two_unit_share: 0.2,
        })
        .collect()
}

/// Buyers rush `HOT` on every platform for `seconds`; nobody cancels within the test.
async fn run_rush(stage: &Stage, seed: u64) -> BuyersStats {
    let arrivals = Arrivals::draw(&rush(40.0), Duration::from_millis(500), seed);
    let config = BuyersConfig {
        pay_delay: Duration::from_millis(10),
        cancel_share: 0.0,
        cancel_within: Duration::ZERO,
        oversell_cancel_after: Duration::from_secs(3_600),
    };
    let handle = buyers::start(stage.market.clone(), arrivals, config);
    assert!(
        handle.all_arrived(Duration::from_secs(5)).await,
        "the rush ends"
    );
    // The payments scheduled last.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(stage.market.drain(Duration::from_secs(5)).await);
    handle.stats()
}

#[tokio::test]
async fn each_platform_sells_what_it_shows_and_the_world_counts_oversells() {
    let stage = stage(6).await;
    let stats = run_rush(&stage, 7).await;
    assert!(stats.turned_away > 0, "{stats:?}");
    let mut sold = 0;
    let mut short = OversellCount::default();
    for platform in Platform::ALL {
        assert_eq!(
            stage.market.shown(platform, "HOT"),
            Some(0),
            "{platform} sold out"
        );
        assert_eq!(
            stage.market.shown(platform, "COLD"),
            Some(6),
            "nobody bought COLD"
        );
        let storefront = stage.market.stats(platform);
        assert_eq!(
            storefront.units_ordered, 6,
            "{platform} sold what it showed"
        );
        sold += storefront.units_ordered;
        let oversold = stage.world.oversells(platform);
        short.orders += oversold.orders;
        short.units += oversold.units;
    }
    // Three platforms each sold the same six units: twelve of them did not exist.
    assert_eq!(sold, 18);
    assert_eq!(short.units, 12);
    assert_eq!(stage.world.oversells_total(), short);
    assert!(short.orders >= 6, "{short:?}");
    assert_eq!(stage.world.free_total("HOT"), 0);
}

#[tokio::test]
async fn the_same_seed_buys_the_same_way() {
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let stage = stage(6).await;
        let stats = run_rush(&stage, 11).await;
        let oversells: Vec<OversellCount> = Platform::ALL
            .iter()
            .map(|p| stage.world.oversells(*p))
            .collect();
        outcomes.push((stats, oversells));
    }
    assert_eq!(outcomes[0], outcomes[1]);
}

#[tokio::test]
async fn orders_come_back_as_signed_platform_webhooks() {
    let stage = stage(3).await;
    run_rush(&stage, 3).await;
    let shopify = stage.receivers[&Platform::Shopify].received();
    let created: Vec<_> = shopify
        .iter()
        .filter(|r| r.headers["x-shopify-topic"] == "orders/create")
        .collect();
    assert!(!created.is_empty());
    for delivery in &shopify {
        let signature = delivery.headers["x-shopify-hmac-sha256"].to_str().unwrap();
        assert!(shopify_notify::verify(
            SHOPIFY_SECRET,
            &delivery.body,
            signature
        ));
        assert!(delivery.headers.contains_key("x-shopify-event-id"));
        assert_eq!(
            delivery.headers["x-shopify-shop-domain"],
            "stockflow-test.myshopify.com"
        );
    }
    let order: serde_json::Value = serde_json::from_slice(&created[0].body).unwrap();
    assert_eq!(order["line_items"][0]["sku"], "HOT");
    assert!(
        shopify
            .iter()
            .any(|r| r.headers["x-shopify-topic"] == "orders/paid")
    );

    let amazon = stage.receivers[&Platform::Amazon].received();
    let statuses: Vec<String> = amazon
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            let change = &body["Payload"]["OrderChangeNotification"];
            assert_eq!(change["Summary"]["OrderItems"][0]["SellerSKU"], "HOT");
            change["Summary"]["OrderStatus"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(statuses.iter().any(|s| s == "Pending"));
    assert!(statuses.iter().any(|s| s == "Unshipped"));

    let tiktok = stage.receivers[&Platform::TikTok].received();
    for delivery in &tiktok {
        let authorization = delivery.headers["authorization"].to_str().unwrap();
        assert_eq!(
            authorization,
            tiktok_notify::signature(TIKTOK_KEY, TIKTOK_SECRET, &delivery.body)
        );
    }
    let first: serde_json::Value = serde_json::from_slice(&tiktok[0].body).unwrap();
    assert_eq!(first["type"], 1);
    assert!(first["tts_notification_id"].is_string());
}

#[tokio::test]
async fn cancelling_gives_units_back_and_tells_the_platform_receiver() {
    let stage = stage(5).await;
    let placed = stage.market.place(Platform::TikTok, "HOT", 2);
    let stockflow_sim::market::Placed::Ordered { order, claim } = placed else {
        panic!("{placed:?}")
    };
    assert!(!claim.is_oversell());
    assert_eq!(stage.market.shown(Platform::TikTok, "HOT"), Some(3));
    stage.market.pay(&order);
    assert!(
        stage
            .market
            .cancel(&order, stockflow_sim::market::Canceller::Buyer)
    );
    assert!(
        !stage
            .market
            .cancel(&order, stockflow_sim::market::Canceller::Buyer)
    );
    assert_eq!(stage.market.shown(Platform::TikTok, "HOT"), Some(5));
    assert_eq!(stage.world.free("HOT", "east"), 5);
    assert_eq!(
        stage.tiktok.order_status(&order.order_id),
        Some(OrderStatus::Cancelled)
    );
    assert!(stage.market.drain(Duration::from_secs(5)).await);
    let statuses: Vec<String> = stage.receivers[&Platform::TikTok]
        .received()
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            body["data"]["order_status"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, ["AWAITING_SHIPMENT", "CANCEL", "UNPAID"]);
}

fn signed_detail_url(base: &str, ids: &str, secret: &str) -> String {
    let path = "/order/202309/orders";
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let query: Vec<(String, String)> = vec![
        ("app_key".into(), TIKTOK_KEY.into()),
        ("ids".into(), ids.into()),
        ("shop_cipher".into(), "cipher".into()),
        ("timestamp".into(), timestamp.to_string()),
    ];
    let sign = tiktok::sign::sign(secret, path, &query, b"");
    let joined: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{base}{path}?{}&sign={sign}", joined.join("&"))
}

#[tokio::test]
async fn tiktok_serves_order_details_with_one_line_item_per_unit() {
    let stage = stage(5).await;
    let sku_id = &stage.sku_ids["HOT"];
    let warehouse = "729400000000001";
    let order = stage.tiktok.place_order(sku_id, warehouse, 2).unwrap();
    stage.tiktok.pay_order(&order).unwrap();
    let client = client();
    let base = stage.tiktok.base_url();
    let ids = format!("{order},5770999999999999");
    let response = client
        .get(signed_detail_url(&base, &ids, TIKTOK_SECRET))
        .header("x-tts-access-token", "token")
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], 0, "{body}");
    let orders = body["data"]["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "unknown ids are left out");
    assert_eq!(orders[0]["id"], order.as_str());
    assert_eq!(orders[0]["status"], "AWAITING_SHIPMENT");
    let lines = orders[0]["line_items"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["seller_sku"], "HOT");
    assert_eq!(lines[0]["sku_id"], sku_id.as_str());
    assert_ne!(lines[0]["id"], lines[1]["id"]);

    let forged = client
        .get(signed_detail_url(&base, &order, "not-the-secret"))
        .header("x-tts-access-token", "token")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    let too_many: Vec<String> = (0..51).map(|n| format!("5770{n:014}")).collect();
    let response = client
        .get(signed_detail_url(&base, &too_many.join(","), TIKTOK_SECRET))
        .header("x-tts-access-token", "token")
        .send()
        .await
        .unwrap();
    let (_, body) = read(response).await;
    assert_ne!(body["code"], 0, "more than 50 ids are refused: {body}");
    stage.tiktok.ship_order(&order).unwrap();
    assert_eq!(
        stage.tiktok.order_status(&order),
        Some(OrderStatus::InTransit)
    );
}
