//! Channel webhooks end to end through real HTTP: deliveries built and signed the way each
//! platform builds them (stockflow-sim's notification builders, or signed here), recorded once,
//! processed into reservations; signature failures record nothing; bad bodies and unknown SKUs
//! become incidents; oversells are recorded with their shortfall; drift is handled per policy;
//! the inbox keeps unprocessed rows across a restart.

use crate::support::{App, received, spawn_with, temp_dir};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use stockflow_server::Config;
use stockflow_sim::notify::amazon::{AmazonNotifications, AmazonOrder, Change, Envelope};
use stockflow_sim::notify::shopify::{
    ORDERS_CANCELLED, ORDERS_CREATE, ORDERS_FULFILLED, ORDERS_PAID, OrderState, ShopifyOrder,
    ShopifyWebhooks,
};
use stockflow_sim::notify::tiktok::TikTokWebhooks;

const SHOP_SECRET: &str = "shpss_app_secret";
const FORWARDER_SECRET: &str = "forwarder-secret";
const TIKTOK_KEY: &str = "6abc";
const TIKTOK_SECRET: &str = "tts-secret";

fn hmac(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Shopify and Amazon channels without adapters (orders only), stock-less.
fn order_channels(config: &mut Config) {
    config.channels.insert(
        "shop".into(),
        json!({"kind": "shopify", "serves": ["east", "west"]}),
    );
    config
        .channels
        .insert("amzn".into(), json!({"kind": "amazon", "serves": ["east"]}));
    config
        .webhooks
        .channels
        .insert("shop".into(), json!({"secret": SHOP_SECRET}));
    config
        .webhooks
        .channels
        .insert("amzn".into(), json!({"secret": FORWARDER_SECRET}));
    config.webhooks.retry_base_ms = 20;
    config.webhooks.fulfilment_grace_seconds = 1;
}

async fn spawn(name: &str, adjust: impl FnOnce(&mut Config)) -> App {
    spawn_with(name, |config| {
        order_channels(config);
        adjust(config);
    })
    .await
}

/// Posts a body with headers as a platform does.
async fn deliver(app: &App, path: &str, headers: &[(String, String)], body: &[u8]) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!("{}{path}", app.url))
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn stock(app: &App, sku: &str, location: &str, quantity: i64, seq: u64) {
    let (status, _) = app
        .post(
            "/v1/events",
            received(&format!("wms-{seq}"), seq, sku, location, quantity),
        )
        .await;
    assert_eq!(status, 200);
}

/// Polls `probe` until it returns Some, for up to 10 s.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the reservation exists in `state`, and returns it.
async fn reservation_in(app: &App, id: &str, state: &str) -> Value {
    eventually(&format!("{id} to be {state}"), || async {
        let (status, body) = app.get(&format!("/v1/reservations/{id}")).await;
        (status == 200 && body["state"] == state).then_some(body)
    })
    .await
}

/// Waits until no inbox row is pending.
async fn processed(app: &App) {
    eventually("the inbox to be processed", || async {
        let (_, body) = app.get("/v1/webhooks/inbox?state=pending").await;
        (body["pending"] == 0).then_some(())
    })
    .await;
}

async fn incidents(app: &App, query: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/v1/webhooks/incidents?{query}")).await;
    assert_eq!(status, 200, "{body}");
    body["incidents"].as_array().unwrap().clone()
}

async fn available(app: &App, sku: &str, location: &str) -> Value {
    let (_, body) = app.get(&format!("/v1/skus/{sku}")).await;
    body["locations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["location"] == location)
        .cloned()
        .unwrap_or(Value::Null)
}

fn shopify_hooks() -> ShopifyWebhooks {
    ShopifyWebhooks {
        shop_domain: "demo.myshopify.com".into(),
        api_version: "2026-04".into(),
        secret: SHOP_SECRET.into(),
        seed: 7,
    }
}

fn shopify_order(id: u64, sku: &str, quantity: i64) -> ShopifyOrder {
    ShopifyOrder {
        id,
        number: id - 5_000_000 + 1000,
        line_item_id: id + 1_000_000,
        sku: sku.into(),
        variant_id: 44_000_001,
        product_id: 8_000_001,
        quantity,
        location_id: 70_001,
        created_at_ms: 1_800_000_000_000,
        unit_price_cents: 4_999,
    }
}

/// One Shopify delivery: `topic` for `order` in `state`, event number `event`.
async fn shopify(
    app: &App,
    topic: &str,
    order: &ShopifyOrder,
    state: &OrderState,
    event: u64,
) -> (u16, Value) {
    let n = shopify_hooks().notification(topic, order, state, event, 1_800_000_001_000);
    deliver(app, "/v1/webhooks/shopify/shop", &n.headers, &n.body).await
}

fn paid() -> OrderState {
    OrderState {
        paid: true,
        ..OrderState::default()
    }
}

fn cancelled() -> OrderState {
    OrderState {
        cancelled: Some((1_800_000_002_000, "customer".into())),
        ..OrderState::default()
    }
}

#[tokio::test]
async fn a_webhook_replayed_five_times_makes_one_reservation() {
    let app = spawn("webhook-replay", |_| {}).await;
    stock(&app, "SKU-1", "east", 10, 1).await;
    let order = shopify_order(5_000_001, "SKU-1", 2);
    let mut answers = Vec::new();
    for _ in 0..5 {
        let (status, body) = shopify(&app, ORDERS_CREATE, &order, &OrderState::default(), 1).await;
        assert_eq!(status, 200, "{body}");
        answers.push(body["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        answers,
        [
            "accepted",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate"
        ]
    );
    let reservation = reservation_in(&app, "shopify-shop-5000001", "provisional").await;
    assert_eq!(reservation["channel"], "shop");
    assert_eq!(reservation["lines"][0]["quantity"], 2);
    processed(&app).await;
    // One reservation of two units, however often the order was delivered.
    assert_eq!(available(&app, "SKU-1", "east").await["reserved"], 2);
    let (_, inbox) = app.get("/v1/webhooks/inbox?channel=shop").await;
    let rows = inbox["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["state"], "done");
    assert_eq!(rows[0]["event_id"], "9800000000001");
    app.shutdown().await;
}

#[tokio::test]
async fn shopify_orders_are_reserved_confirmed_and_released() {
    let app = spawn("webhook-shopify-steps", |_| {}).await;
    stock(&app, "SKU-1", "east", 10, 1).await;
    let order = shopify_order(5_000_002, "SKU-1", 3);
    let id = "shopify-shop-5000002";
    shopify(&app, ORDERS_CREATE, &order, &OrderState::default(), 1).await;
    reservation_in(&app, id, "provisional").await;
    assert_eq!(available(&app, "SKU-1", "east").await["reserved"], 3);
    shopify(&app, ORDERS_PAID, &order, &paid(), 2).await;
    reservation_in(&app, id, "confirmed").await;
    assert_eq!(available(&app, "SKU-1", "east").await["committed"], 3);
    shopify(&app, ORDERS_CANCELLED, &order, &cancelled(), 3).await;
    let released = reservation_in(&app, id, "released").await;
    assert_eq!(released["resolution_reason"], "cancelled on shop");
    assert_eq!(available(&app, "SKU-1", "east").await["available"], 10);
    // A payment webhook delivered after the cancellation changes nothing and is no incident.
    shopify(&app, ORDERS_PAID, &order, &paid(), 4).await;
    processed(&app).await;
    reservation_in(&app, id, "released").await;
    assert_eq!(incidents(&app, "").await, Vec::<Value>::new());
    assert_eq!(available(&app, "SKU-1", "east").await["available"], 10);
    app.shutdown().await;
}

#[tokio::test]
async fn a_cancellation_before_its_order_grants_nothing() {
    let app = spawn("webhook-early-cancel", |_| {}).await;
    stock(&app, "SKU-1", "east", 5, 1).await;
    let order = shopify_order(5_000_003, "SKU-1", 2);
    let id = "shopify-shop-5000003";
    // Delivered out of order: the cancellation first, then the order and its payment.
    shopify(&app, ORDERS_CANCELLED, &order, &cancelled(), 3).await;
    reservation_in(&app, id, "released").await;
    shopify(&app, ORDERS_CREATE, &order, &OrderState::default(), 1).await;
    shopify(&app, ORDERS_PAID, &order, &paid(), 2).await;
    processed(&app).await;
    let reservation = reservation_in(&app, id, "released").await;
    assert_eq!(reservation["lines"], json!([]));
    let east = available(&app, "SKU-1", "east").await;
    assert_eq!(
        (east["available"].clone(), east["reserved"].clone()),
        (json!(5), json!(0))
    );
    let (_, inbox) = app.get("/v1/webhooks/inbox?channel=shop").await;
    let outcomes: Vec<&str> = inbox["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes[0],
        "cancelled before the order arrived: kept as a tombstone"
    );
    assert!(outcomes[1].starts_with("nothing held"), "{outcomes:?}");
    app.shutdown().await;
}

fn amazon_order(id: &str, sku: &str, quantity: i64) -> AmazonOrder {
    AmazonOrder {
        amazon_order_id: id.into(),
        order_item_id: "OI0000001".into(),
        seller_sku: sku.into(),
        quantity,
        purchase_ms: 1_800_000_000_000,
    }
}

/// One Amazon notification as the forwarder posts it (signed by the sim's forwarder).
async fn amazon(
    app: &App,
    order: &AmazonOrder,
    status: &'static str,
    number: u64,
    envelope: Envelope,
) -> (u16, Value) {
    let mut notify =
        AmazonNotifications::new("A2SANDBOXSELLER", "ATVPDKIKX0DER", FORWARDER_SECRET, 3);
    notify.envelope = envelope;
    let n = notify.notification(order, &Change::status(status, 1_800_000_001_000), number);
    deliver(app, "/v1/webhooks/amazon/amzn", &n.headers, &n.body).await
}

#[tokio::test]
async fn amazon_order_changes_are_reserved_confirmed_and_released() {
    let app = spawn("webhook-amazon-steps", |_| {}).await;
    stock(&app, "SKU-1", "east", 10, 1).await;
    let order = amazon_order("113-0000001-5550001", "SKU-1", 2);
    let id = "amazon-amzn-113-0000001-5550001";
    let (status, body) = amazon(&app, &order, "Pending", 1, Envelope::Sqs).await;
    assert_eq!((status, body["status"].clone()), (200, json!("accepted")));
    reservation_in(&app, id, "provisional").await;
    amazon(&app, &order, "Unshipped", 2, Envelope::EventBridge).await;
    reservation_in(&app, id, "confirmed").await;
    // The same notification again, in the other envelope: the same NotificationId.
    let (_, body) = amazon(&app, &order, "Unshipped", 2, Envelope::Sqs).await;
    assert_eq!(body["status"], "duplicate");
    amazon(&app, &order, "Canceled", 3, Envelope::Sqs).await;
    reservation_in(&app, id, "released").await;
    assert_eq!(available(&app, "SKU-1", "east").await["available"], 10);
    app.shutdown().await;
}

#[tokio::test]
async fn tiktok_orders_read_their_lines_and_are_reserved_confirmed_and_released() {
    use stockflow_sim::tiktok::{self, TikTokConfig};
    use stockflow_sim::{Catalogue, CatalogueSpec};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let catalogue = Catalogue::generate(&CatalogueSpec::new(&["SKU-1"], &["east"], 10)).tiktok;
    let sandbox = tiktok::start(TikTokConfig::new(
        catalogue.clone(),
        TIKTOK_KEY,
        TIKTOK_SECRET,
        "ROW_token",
        "GCP_cipher",
    ))
    .await
    .unwrap();
    let warehouse = catalogue.warehouse_ids[0].clone();
    let sku_id = catalogue.products[0].skus[0].id.clone();
    let base_url = sandbox.base_url();
    let app = spawn("webhook-tiktok-steps", |config| {
        config.channels.insert(
            "tt".into(),
            json!({"kind": "tiktok", "base_url": base_url, "app_key": TIKTOK_KEY,
                   "app_secret": TIKTOK_SECRET, "access_token": "ROW_token",
                   "shop_cipher": "GCP_cipher", "locations": {"east": warehouse},
                   "items": {"SKU-1": {"product_id": catalogue.products[0].product_id,
                                       "sku_id": sku_id}}}),
        );
        config
            .webhooks
            .channels
            .insert("tt".into(), json!({"secret": TIKTOK_SECRET}));
    })
    .await;
    stock(&app, "SKU-1", "east", 10, 1).await;
    let order_id = sandbox.place_order(&sku_id, &warehouse, 2).unwrap();
    let hooks = TikTokWebhooks {
        app_key: TIKTOK_KEY.into(),
        app_secret: TIKTOK_SECRET.into(),
        shop_id: "7494049642642441621".into(),
    };
    let id = format!("tiktok-tt-{order_id}");
    for (number, status, state) in [
        (1, "UNPAID", "provisional"),
        (2, "AWAITING_SHIPMENT", "confirmed"),
        (3, "CANCEL", "released"),
    ] {
        let n = hooks.notification(&order_id, status, 1_800_000_000, number);
        let (code, body) = deliver(&app, "/v1/webhooks/tiktok/tt", &n.headers, &n.body).await;
        assert_eq!((code, body["status"].clone()), (200, json!("accepted")));
        let reservation = reservation_in(&app, &id, state).await;
        // Two line items of one unit each, read with Get Order Detail.
        assert_eq!(reservation["lines"][0]["quantity"], 2, "{reservation}");
    }
    assert_eq!(available(&app, "SKU-1", "east").await["available"], 10);
    app.shutdown().await;
    sandbox.shutdown().await;
}

fn shopify_headers(topic: &str, event: &str, signature: Option<String>) -> Vec<(String, String)> {
    let mut headers = vec![
        ("X-Shopify-Topic".to_owned(), topic.to_owned()),
        ("X-Shopify-Event-Id".to_owned(), event.to_owned()),
    ];
    if let Some(signature) = signature {
        headers.push(("X-Shopify-Hmac-Sha256".to_owned(), signature));
    }
    headers
}

fn shopify_signature(secret: &str, body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac(secret, &[body]))
}

#[tokio::test]
async fn signature_failures_are_refused_and_record_nothing() {
    let app = spawn("webhook-signatures", |config| {
        config.webhooks.channels.insert(
            "tt".into(),
            json!({"platform": "tiktok", "secret": TIKTOK_SECRET, "app_key": TIKTOK_KEY}),
        );
    })
    .await;
    stock(&app, "SKU-1", "east", 10, 1).await;
    let body =
        serde_json::to_vec(&json!({"id": 1, "line_items": [{"sku": "SKU-1", "quantity": 1}]}))
            .unwrap();
    let refused = [
        (
            "/v1/webhooks/shopify/shop",
            shopify_headers(
                "orders/create",
                "1",
                Some(shopify_signature("wrong", &body)),
            ),
            "invalid_signature",
        ),
        (
            "/v1/webhooks/shopify/shop",
            shopify_headers("orders/create", "1", None),
            "missing_signature",
        ),
        (
            "/v1/webhooks/amazon/amzn",
            vec![(
                "X-Stockflow-Signature".to_owned(),
                format!("sha256={}", hex::encode(hmac("wrong", &[&body]))),
            )],
            "invalid_signature",
        ),
        ("/v1/webhooks/amazon/amzn", vec![], "missing_signature"),
        (
            // TikTok signs app_key + body: the body alone, with the right secret, is not it.
            "/v1/webhooks/tiktok/tt",
            vec![(
                "Authorization".to_owned(),
                hex::encode(hmac(TIKTOK_SECRET, &[&body])),
            )],
            "invalid_signature",
        ),
        ("/v1/webhooks/tiktok/tt", vec![], "missing_signature"),
    ];
    for (path, headers, code) in refused {
        let (status, problem) = deliver(&app, path, &headers, &body).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (401, Some(code)),
            "{path}"
        );
    }
    // A channel that takes no webhooks of that platform is not found.
    let signed = shopify_headers(
        "orders/create",
        "1",
        Some(shopify_signature(SHOP_SECRET, &body)),
    );
    let (status, _) = deliver(&app, "/v1/webhooks/shopify/amzn", &signed, &body).await;
    assert_eq!(status, 404);
    let (_, inbox) = app.get("/v1/webhooks/inbox").await;
    assert_eq!(inbox["rows"], json!([]));
    assert_eq!(app.get("/v1/reservations/shopify-shop-1").await.0, 404);
    app.shutdown().await;
}

#[tokio::test]
async fn a_rotated_secret_is_accepted_within_its_window_and_refused_after() {
    let body =
        serde_json::to_vec(&json!({"id": 7, "line_items": [{"sku": "SKU-1", "quantity": 1}]}))
            .unwrap();
    let by_old = shopify_headers(
        "orders/create",
        "7",
        Some(shopify_signature("old-secret", &body)),
    );
    let by_new = shopify_headers(
        "orders/create",
        "8",
        Some(shopify_signature(SHOP_SECRET, &body)),
    );
    let rotated = |ago: time::Duration| {
        let at = time::OffsetDateTime::now_utc() - ago;
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    for (ago, old_status) in [
        (time::Duration::minutes(10), 200),
        (time::Duration::hours(2), 401),
    ] {
        let rotated_at = rotated(ago);
        let app = spawn("webhook-rotation", |config| {
            config.webhooks.rotation_grace_seconds = 3_600;
            config.webhooks.channels.insert(
                "shop".into(),
                json!({"secret": SHOP_SECRET, "previous_secret": "old-secret",
                       "rotated_at": rotated_at}),
            );
        })
        .await;
        let (status, _) = deliver(&app, "/v1/webhooks/shopify/shop", &by_old, &body).await;
        assert_eq!(status, old_status, "rotated {ago} ago");
        let (status, _) = deliver(&app, "/v1/webhooks/shopify/shop", &by_new, &body).await;
        assert_eq!(status, 200);
        let (_, inbox) = app.get("/v1/webhooks/inbox").await;
        let expected = if old_status == 200 { 2 } else { 1 };
        assert_eq!(inbox["rows"].as_array().unwrap().len(), expected);
        app.shutdown().await;
    }
}

#[tokio::test]
async fn a_malformed_body_is_refused_or_quarantined_as_the_platform_needs() {
    let app = spawn("webhook-malformed", |config| {
        config.webhooks.channels.insert(
            "tt".into(),
            json!({"platform": "tiktok", "secret": TIKTOK_SECRET, "app_key": TIKTOK_KEY}),
        );
    })
    .await;
    let garbage = b"<order>not json</order>".to_vec();
    // Shopify retries any refusal for hours: a signed body it sent is kept, quarantined.
    let headers = shopify_headers(
        "orders/create",
        "41",
        Some(shopify_signature(SHOP_SECRET, &garbage)),
    );
    let (status, body) = deliver(&app, "/v1/webhooks/shopify/shop", &headers, &garbage).await;
    assert_eq!(
        (status, body["status"].clone()),
        (200, json!("quarantined"))
    );
    let (_, body) = deliver(&app, "/v1/webhooks/shopify/shop", &headers, &garbage).await;
    assert_eq!(body["status"], "duplicate");
    // Without its topic it is not what Shopify sends: 400.
    let mut no_topic = headers.clone();
    no_topic.retain(|(name, _)| name != "X-Shopify-Topic");
    let (status, problem) = deliver(&app, "/v1/webhooks/shopify/shop", &no_topic, &garbage).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("missing_header"))
    );
    // TikTok too retries for days: kept, keyed by the body's hash.
    let authorization = hex::encode(hmac(TIKTOK_SECRET, &[TIKTOK_KEY.as_bytes(), &garbage]));
    let tiktok_headers = vec![("Authorization".to_owned(), authorization)];
    let (status, body) = deliver(&app, "/v1/webhooks/tiktok/tt", &tiktok_headers, &garbage).await;
    assert_eq!(
        (status, body["status"].clone()),
        (200, json!("quarantined"))
    );
    // The forwarder dead-letters a 4xx: Amazon's unreadable notification is refused.
    let signature = format!(
        "sha256={}",
        hex::encode(hmac(FORWARDER_SECRET, &[&garbage]))
    );
    let amazon_headers = vec![("X-Stockflow-Signature".to_owned(), signature)];
    let (status, problem) =
        deliver(&app, "/v1/webhooks/amazon/amzn", &amazon_headers, &garbage).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("malformed_notification"))
    );

    let (_, inbox) = app.get("/v1/webhooks/inbox?state=quarantined").await;
    let channels: Vec<&str> = inbox["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["shop", "tt"]);
    // Each quarantined webhook is work for a person: a KPI.
    let (_, kpis) = app.get("/v1/kpis").await;
    assert_eq!(
        kpis["windows"][0]["manual_interventions_by_reason"]["quarantined_webhook"],
        2
    );
    let malformed = incidents(&app, "kind=malformed").await;
    assert_eq!(malformed.len(), 2);
    assert!(
        malformed[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("not JSON")
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_order_for_an_unknown_sku_is_accepted_and_recorded() {
    let app = spawn("webhook-unknown-sku", |_| {}).await;
    stock(&app, "SKU-1", "east", 10, 1).await;
    let body = serde_json::to_vec(&json!({"id": 5000009, "financial_status": "pending",
        "line_items": [{"sku": "SKU-1", "quantity": 1}, {"sku": "NOPE", "quantity": 2},
                       {"sku": null, "quantity": 1}]}))
    .unwrap();
    let headers = shopify_headers(
        "orders/create",
        "51",
        Some(shopify_signature(SHOP_SECRET, &body)),
    );
    let (status, answer) = deliver(&app, "/v1/webhooks/shopify/shop", &headers, &body).await;
    assert_eq!((status, answer["status"].clone()), (200, json!("accepted")));
    let reservation = reservation_in(&app, "shopify-shop-5000009", "provisional").await;
    assert_eq!(reservation["lines"].as_array().unwrap().len(), 1);
    assert_eq!(reservation["lines"][0]["sku"], "SKU-1");
    processed(&app).await;
    let unknown = incidents(&app, "kind=unknown_sku&channel=shop").await;
    let found: Vec<(Value, Value)> = unknown
        .iter()
        .map(|i| (i["sku"].clone(), i["quantity"].clone()))
        .collect();
    assert_eq!(
        found,
        [(json!("NOPE"), json!(2)), (json!("(none)"), json!(1))]
    );
    assert_eq!(unknown[0]["order_id"], "5000009");
    app.shutdown().await;
}

#[tokio::test]
async fn an_order_beyond_stock_is_an_oversell_incident_with_its_shortfall() {
    let app = spawn("webhook-oversell", |_| {}).await;
    stock(&app, "SKU-1", "east", 1, 1).await;
    let order = shopify_order(5_000_010, "SKU-1", 3);
    shopify(&app, ORDERS_CREATE, &order, &OrderState::default(), 1).await;
    let reservation = reservation_in(&app, "shopify-shop-5000010", "released").await;
    assert!(
        reservation["resolution_reason"]
            .as_str()
            .unwrap()
            .starts_with("oversold")
    );
    let oversells = eventually("the oversell incident", || async {
        let (_, body) = app.get("/v1/incidents?kind=oversell").await;
        let incidents = body["incidents"].as_array().cloned().unwrap_or_default();
        (!incidents.is_empty()).then_some(incidents)
    })
    .await;
    assert_eq!(oversells.len(), 1);
    let incident = &oversells[0];
    assert_eq!(
        (
            &incident["channel"],
            &incident["sku"],
            &incident["shortfall"]
        ),
        (&json!("shop"), &json!("SKU-1"), &json!(2))
    );
    // Paid later, delivered again: still one incident, nothing held.
    shopify(&app, ORDERS_PAID, &order, &paid(), 2).await;
    shopify(&app, ORDERS_CREATE, &order, &OrderState::default(), 1).await;
    processed(&app).await;
    let (_, body) = app.get("/v1/incidents?kind=oversell").await;
    assert_eq!(body["incidents"].as_array().unwrap().len(), 1);
    assert_eq!(available(&app, "SKU-1", "east").await["available"], 1);
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("stockflow_oversell_incidents_total")
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_fulfilment_is_matched_against_the_warehouse_picks() {
    let app = spawn("webhook-fulfilment", |_| {}).await;
    stock(&app, "SKU-1", "east", 10, 1).await;
    let (whole, short) = (
        shopify_order(5_000_020, "SKU-1", 2),
        shopify_order(5_000_021, "SKU-1", 2),
    );
    for (event, order) in [(1, &whole), (2, &short)] {
        shopify(&app, ORDERS_PAID, order, &paid(), event).await;
    }
    reservation_in(&app, "shopify-shop-5000020", "confirmed").await;
    reservation_in(&app, "shopify-shop-5000021", "confirmed").await;
    let picked = |id: &str, seq: u64, quantity: i64, reservation: &str| {
        json!({"event_id": id, "source": "wms", "seq": seq, "type": "picked", "sku": "SKU-1",
               "location": "east", "quantity": quantity, "reservation_id": reservation})
    };
    app.post("/v1/events", picked("p1", 2, 2, "shopify-shop-5000020"))
        .await;
    app.post("/v1/events", picked("p2", 3, 1, "shopify-shop-5000021"))
        .await;
    let fulfilled = OrderState {
        paid: true,
        fulfilled: true,
        ..OrderState::default()
    };
    shopify(&app, ORDERS_FULFILLED, &whole, &fulfilled, 3).await;
    shopify(&app, ORDERS_FULFILLED, &short, &fulfilled, 4).await;
    // The short one waits for its missing pick for the grace (1 s), then records a mismatch.
    let mismatches = eventually("the fulfilment mismatch", || async {
        let found = incidents(&app, "kind=fulfilment_mismatch").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    processed(&app).await;
    assert_eq!(mismatches.len(), 1);
    assert_eq!(mismatches[0]["order_id"], "5000021");
    assert_eq!(mismatches[0]["quantity"], 1);
    assert_eq!(
        mismatches[0]["detail"],
        "SKU-1: 2 shipped on shop, 1 picked"
    );
    let (_, inbox) = app.get("/v1/webhooks/inbox?channel=shop").await;
    let whole_row = inbox["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["event_id"] == "9800000000003")
        .cloned()
        .unwrap();
    assert!(
        whole_row["outcome"]
            .as_str()
            .unwrap()
            .contains("fulfilment matches the picks"),
        "{whole_row}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_inbox_keeps_unprocessed_rows_across_a_restart() {
    let data_dir: PathBuf = temp_dir("webhook-restart");
    let app = spawn("webhook-restart", |config| {
        config.data_dir = data_dir.clone();
        config.webhooks.processor_paused = true;
    })
    .await;
    stock(&app, "SKU-1", "east", 10, 1).await;
    let order = shopify_order(5_000_030, "SKU-1", 4);
    let (status, body) = shopify(&app, ORDERS_CREATE, &order, &OrderState::default(), 1).await;
    assert_eq!((status, body["status"].clone()), (200, json!("accepted")));
    let (_, inbox) = app.get("/v1/webhooks/inbox").await;
    assert_eq!(inbox["pending"], 1);
    assert_eq!(
        app.get("/v1/reservations/shopify-shop-5000030").await.0,
        404
    );
    app.shutdown().await;

    let app = spawn("webhook-restart", |config| {
        config.data_dir = data_dir.clone();
    })
    .await;
    reservation_in(&app, "shopify-shop-5000030", "provisional").await;
    processed(&app).await;
    let (_, body) = shopify(&app, ORDERS_CREATE, &order, &OrderState::default(), 1).await;
    assert_eq!(body["status"], "duplicate");
    assert_eq!(available(&app, "SKU-1", "east").await["reserved"], 4);
    app.shutdown().await;
}

/// A Shopify shop served by the sandbox, synced by the server, for drift.
struct DriftRig {
    app: App,
    sandbox: stockflow_sim::shopify::ShopifyHandle,
    location_gid: String,
    item_gid: String,
}

impl DriftRig {
    async fn start(name: &str, policy: stockflow_core::reconcile::DriftPolicy) -> DriftRig {
        use stockflow_sim::shopify::{self, ShopifyConfig};
        use stockflow_sim::{Catalogue, CatalogueSpec};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let catalogue = Catalogue::generate(&CatalogueSpec::new(&["SKU-1"], &["east"], 0)).shopify;
        let location_gid = catalogue.locations[0].id.clone();
        let item_gid = catalogue.items[0].inventory_item_id.clone();
        let sandbox = shopify::start(ShopifyConfig::new(catalogue, "shpat_token"))
            .await
            .unwrap();
        let base_url = sandbox.base_url();
        let (location, item) = (location_gid.clone(), item_gid.clone());
        let app = spawn(name, move |config| {
            config.channels.insert(
                "shop".into(),
                json!({"kind": "shopify", "serves": ["east"], "base_url": base_url,
                       "access_token": "shpat_token", "locations": {"east": location},
                       "items": {"SKU-1": item}}),
            );
            config.webhooks.drift_delay_ms = 20;
            config
                .reconcile
                .channels
                .drift_policies
                .insert("shop".into(), policy);
        })
        .await;
        stock(&app, "SKU-1", "east", 10, 1).await;
        let rig = DriftRig {
            app,
            sandbox,
            location_gid,
            item_gid,
        };
        rig.shown_becomes(10).await;
        rig
    }

    fn shown(&self) -> Option<i64> {
        self.sandbox
            .quantity("SKU-1", &self.location_gid, "available")
    }

    async fn shown_becomes(&self, quantity: i64) {
        eventually(&format!("the shop to show {quantity}"), || async {
            (self.shown() == Some(quantity)).then_some(())
        })
        .await;
    }

    /// The merchant sets `available` in the shop's admin; Shopify announces it.
    async fn merchant_sets(&self, quantity: i64, event: &str) {
        self.sandbox
            .merchant_set("SKU-1", &self.location_gid, "available", quantity)
            .unwrap();
        let gid_number = |gid: &str| gid.rsplit('/').next().unwrap().parse::<u64>().unwrap();
        let body = serde_json::to_vec(&json!({
            "inventory_item_id": gid_number(&self.item_gid),
            "location_id": gid_number(&self.location_gid),
            "available": quantity,
            "updated_at": "2026-11-28T01:00:00-05:00",
            "admin_graphql_api_id": "gid://shopify/InventoryLevel/1?inventory_item_id=1"}))
        .unwrap();
        let headers = shopify_headers(
            "inventory_levels/update",
            event,
            Some(shopify_signature(SHOP_SECRET, &body)),
        );
        let (status, answer) =
            deliver(&self.app, "/v1/webhooks/shopify/shop", &headers, &body).await;
        assert_eq!((status, answer["status"].clone()), (200, json!("accepted")));
    }

    async fn drift_incidents(&self) -> Vec<Value> {
        eventually("the drift incident", || async {
            let found = incidents(&self.app, "kind=drift").await;
            (!found.is_empty()).then_some(found)
        })
        .await
    }

    async fn stop(self) {
        self.app.shutdown().await;
        self.sandbox.shutdown().await;
    }
}

#[tokio::test]
async fn drift_is_overwritten_under_the_overwrite_policy() {
    let rig = DriftRig::start(
        "webhook-drift-overwrite",
        stockflow_core::reconcile::DriftPolicy::Overwrite,
    )
    .await;
    rig.merchant_sets(14, "61").await;
    rig.shown_becomes(10).await;
    let drift = rig.drift_incidents().await;
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0]["quantity"], 4);
    assert!(
        drift[0]["detail"]
            .as_str()
            .unwrap()
            .contains("overwritten with 10"),
        "{}",
        drift[0]
    );
    assert_eq!(available(&rig.app, "SKU-1", "east").await["on_hand"], 10);
    let (_, metrics) = rig.app.get("/metrics").await;
    assert!(metrics.as_str().unwrap().contains("stockflow_drift_total"));
    rig.stop().await;
}

#[tokio::test]
async fn drift_is_booked_as_an_adjustment_under_the_accept_policy() {
    let rig = DriftRig::start(
        "webhook-drift-accept",
        stockflow_core::reconcile::DriftPolicy::Accept,
    )
    .await;
    rig.merchant_sets(14, "71").await;
    eventually("the ledger to accept the edit", || async {
        (available(&rig.app, "SKU-1", "east").await["on_hand"] == 14).then_some(())
    })
    .await;
    let drift = rig.drift_incidents().await;
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0]["quantity"], 4);
    let (_, audit) = rig
        .app
        .get("/v1/audit?sku=SKU-1&actor=webhook-drift-shop")
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(
        entries[0]["reason"],
        "channel drift accepted from shop (reference 71)"
    );
    // The shop keeps what the merchant set: the ledger now allows as much.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rig.shown(), Some(14));
    // The same announcement again changes nothing.
    rig.merchant_sets(14, "72").await;
    processed(&rig.app).await;
    assert_eq!(available(&rig.app, "SKU-1", "east").await["on_hand"], 14);
    assert_eq!(incidents(&rig.app, "kind=drift").await.len(), 1);
    rig.stop().await;
}
