//! The TikTok Shop sandbox: signed calls, the all-warehouses rule, the SKU maximum, stock count
//! bounds, the per-shop rate limit and the inventory search.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use stockflow_sim::catalogue::{TikTokCatalogue, TikTokProduct, TikTokSku, TikTokStock};
use stockflow_sim::tiktok::{self, TikTokConfig, TikTokHandle};
use stockflow_sim::{Catalogue, CatalogueSpec, Outcome, RateLimit, ViolationKind};

use crate::support::{Json, client, json, read};

const APP_KEY: &str = "6abc";
const SECRET: &str = "s3cret";
const TOKEN: &str = "TTP_token";
const CIPHER: &str = "ROW_cipher";
const PRODUCT: &str = "1729000000000000001";
const SKU_1: &str = "1730000000000000001";
const SKU_2: &str = "1730000000000000002";
const EAST: &str = "729400000000001";
const WEST: &str = "729400000000002";

fn catalogue() -> TikTokCatalogue {
    let mut catalogue = Catalogue::generate(&CatalogueSpec::new(
        &["SKU-1", "SKU-2"],
        &["east", "west"],
        10,
    ))
    .tiktok;
    // A second product whose only SKU is stocked in one warehouse.
    catalogue.products.push(TikTokProduct {
        product_id: "1729000000000000099".into(),
        skus: vec![TikTokSku {
            id: "1730000000000099000".into(),
            seller_sku: "SOLO".into(),
            inventory: vec![TikTokStock {
                warehouse_id: EAST.into(),
                quantity: 4,
            }],
        }],
    });
    catalogue
}

fn config() -> TikTokConfig {
    let mut config = TikTokConfig::new(catalogue(), APP_KEY, SECRET, TOKEN, CIPHER);
    config.common.manual_clock = true;
    config
}

/// The signature as CHANNELS.md states it, written out independently of the sandbox.
fn signature(secret: &str, path: &str, query: &[(String, String)], body: &str) -> String {
    let mut pairs: Vec<&(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "sign" && k != "access_token")
        .collect();
    pairs.sort();
    let joined: String = pairs.iter().map(|(k, v)| format!("{k}{v}")).collect();
    let text = format!("{secret}{path}{joined}{body}{secret}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

struct Shop {
    handle: TikTokHandle,
    client: reqwest::Client,
}

/// How a test spoils a request.
#[derive(Default)]
struct Spoil {
    secret: Option<&'static str>,
    timestamp: Option<i64>,
    app_key: Option<&'static str>,
    cipher: Option<&'static str>,
    token: Option<&'static str>,
    body_after_signing: Option<String>,
    no_sign: bool,
    extra: Vec<(String, String)>,
}

impl Shop {
    async fn start(config: TikTokConfig) -> Self {
        Self {
            handle: tiktok::start(config).await.expect("sandbox starts"),
            client: client(),
        }
    }

    async fn call(&self, path: &str, body: &Json, spoil: Spoil) -> (u16, Json) {
        let body = body.to_string();
        let mut query = vec![
            (
                "app_key".to_owned(),
                spoil.app_key.unwrap_or(APP_KEY).to_owned(),
            ),
            (
                "timestamp".to_owned(),
                spoil.timestamp.unwrap_or_else(now).to_string(),
            ),
            (
                "shop_cipher".to_owned(),
                spoil.cipher.unwrap_or(CIPHER).to_owned(),
            ),
        ];
        query.extend(spoil.extra);
        if !spoil.no_sign {
            let sign = signature(spoil.secret.unwrap_or(SECRET), path, &query, &body);
            query.push(("sign".to_owned(), sign));
        }
        // Every value here is URL-safe (letters, digits, underscores, hex), so no encoding is needed.
        let query_string: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let request = self
            .client
            .post(format!(
                "{}{path}?{}",
                self.handle.base_url(),
                query_string.join("&")
            ))
            .header("x-tts-access-token", spoil.token.unwrap_or(TOKEN))
            .header("content-type", "application/json")
            .body(spoil.body_after_signing.unwrap_or(body));
        read(request.send().await.expect("sandbox answers")).await
    }

    async fn update(&self, product: &str, skus: Json) -> (u16, Json) {
        let path = format!("/product/202309/products/{product}/inventory/update");
        self.call(&path, &json!({"skus": skus}), Spoil::default())
            .await
    }
}

fn both(sku: &str, east: i64, west: i64) -> Json {
    json!({"id": sku, "inventory": [{"warehouse_id": EAST, "quantity": east}, {"warehouse_id": WEST, "quantity": west}]})
}

#[tokio::test]
async fn a_well_signed_update_is_applied() {
    let shop = Shop::start(config()).await;
    let (status, body) = shop.update(PRODUCT, json!([both(SKU_1, 3, 4)])).await;
    assert_eq!(status, 200);
    assert_eq!(body["code"], 0);
    assert_eq!(body["message"], "Success");
    assert!(body["request_id"].is_string());
    assert!(body.get("data").is_some());
    assert_eq!(
        (
            shop.handle.quantity(SKU_1, EAST),
            shop.handle.quantity(SKU_1, WEST)
        ),
        (Some(3), Some(4))
    );
    let timeline = shop.handle.recorder().timeline("SKU-1", WEST);
    assert_eq!(
        timeline.iter().map(|p| p.quantity).collect::<Vec<_>>(),
        vec![10, 4]
    );
    assert_eq!(
        shop.handle
            .recorder()
            .call_count("updateInventory", Outcome::Ok),
        1
    );
}

#[tokio::test]
async fn the_sandbox_signer_matches_the_documented_algorithm() {
    let query = vec![
        ("timestamp".to_owned(), "1700000000".to_owned()),
        ("app_key".to_owned(), APP_KEY.to_owned()),
    ];
    let path = "/product/202309/inventory/search";
    assert_eq!(
        tiktok::sign::sign(SECRET, path, &query, b"{}"),
        signature(SECRET, path, &query, "{}")
    );
}

#[tokio::test]
async fn a_bad_signature_is_refused() {
    let shop = Shop::start(config()).await;
    let path = format!("/product/202309/products/{PRODUCT}/inventory/update");
    let body = json!({"skus": [both(SKU_1, 1, 1)]});
    let (status, answer) = shop
        .call(
            &path,
            &body,
            Spoil {
                secret: Some("wrong"),
                ..Spoil::default()
            },
        )
        .await;
    assert_eq!((status, answer["code"].as_u64()), (401, Some(106001)));
    let tampered = json!({"skus": [both(SKU_1, 99, 99)]}).to_string();
    let (status, answer) = shop
        .call(
            &path,
            &body,
            Spoil {
                body_after_signing: Some(tampered),
                ..Spoil::default()
            },
        )
        .await;
    assert_eq!((status, answer["code"].as_u64()), (401, Some(106001)));
    assert_eq!(shop.handle.quantity(SKU_1, EAST), Some(10));
    assert_eq!(
        shop.handle
            .recorder()
            .call_count("updateInventory", Outcome::Unauthorized),
        2
    );
    // access_token in the query is not signed; other parameters are.
    let extra = vec![("access_token".to_owned(), "ignored".to_owned())];
    let (_, answer) = shop
        .call(
            &path,
            &body,
            Spoil {
                extra,
                ..Spoil::default()
            },
        )
        .await;
    assert_eq!(answer["code"], 0);
}

#[tokio::test]
async fn credentials_timestamp_and_shop_are_checked() {
    let shop = Shop::start(config()).await;
    let path = format!("/product/202309/products/{PRODUCT}/inventory/update");
    let body = json!({"skus": [both(SKU_1, 1, 1)]});
    let cases = [
        (
            Spoil {
                no_sign: true,
                ..Spoil::default()
            },
            400,
            36009004,
        ),
        (
            Spoil {
                timestamp: Some(now() - 600),
                ..Spoil::default()
            },
            400,
            36009004,
        ),
        (
            Spoil {
                app_key: Some("other"),
                ..Spoil::default()
            },
            400,
            36009004,
        ),
        (
            Spoil {
                token: Some("stolen"),
                ..Spoil::default()
            },
            401,
            36009004,
        ),
        (
            Spoil {
                cipher: Some("other"),
                ..Spoil::default()
            },
            400,
            36009004,
        ),
    ];
    for (spoil, status, code) in cases {
        let (got_status, answer) = shop.call(&path, &body, spoil).await;
        assert_eq!(
            (got_status, answer["code"].as_u64()),
            (status, Some(code)),
            "{answer}"
        );
    }
    assert_eq!(shop.handle.quantity(SKU_1, EAST), Some(10));
}

#[tokio::test]
async fn a_sku_in_several_warehouses_must_list_them_all() {
    let shop = Shop::start(config()).await;
    let partial = json!([{"id": SKU_1, "inventory": [{"warehouse_id": EAST, "quantity": 0}]}]);
    let (status, body) = shop.update(PRODUCT, partial.clone()).await;
    assert_eq!((status, body["code"].as_u64()), (200, Some(12052037)));
    let no_warehouse = json!([{"id": SKU_1, "inventory": [{"quantity": 0}]}]);
    assert_eq!(shop.update(PRODUCT, no_warehouse).await.1["code"], 12052037);
    assert_eq!(
        shop.handle.quantity(SKU_1, EAST),
        Some(10),
        "nothing applied"
    );
    assert_eq!(
        shop.handle
            .recorder()
            .call_count("updateInventory", Outcome::Refused),
        2
    );
    // The other code some sources report can be produced too.
    let mut config = config();
    config.missing_warehouse_code = 12019028;
    let other = Shop::start(config).await;
    assert_eq!(other.update(PRODUCT, partial).await.1["code"], 12019028);
    // A SKU stocked in one warehouse may leave the warehouse out.
    let solo = json!([{"id": "1730000000000099000", "inventory": [{"quantity": 2}]}]);
    assert_eq!(shop.update("1729000000000000099", solo).await.1["code"], 0);
    assert_eq!(shop.handle.quantity("1730000000000099000", EAST), Some(2));
}

#[tokio::test]
async fn at_most_100_skus_per_product() {
    let shop = Shop::start(config()).await;
    let skus: Vec<Json> = (0..101)
        .map(|i| both(&format!("17300000000099{i:05}"), 1, 1))
        .collect();
    let (_, body) = shop.update(PRODUCT, Json::Array(skus)).await;
    assert_eq!(body["code"], 12052050);
    assert_eq!(shop.handle.recorder().violation_count(), 1);
    assert_eq!(
        shop.handle.recorder().violations()[0].kind,
        ViolationKind::LimitExceeded
    );
}

#[tokio::test]
async fn business_rules_refuse_the_whole_call() {
    let shop = Shop::start(config()).await;
    let cases = [
        (
            PRODUCT,
            json!([both(SKU_1, 1, 1), both(SKU_2, -1, 1)]),
            12019024,
        ),
        (PRODUCT, json!([both(SKU_1, 100_000, 1)]), 12019024),
        ("1729000000000000777", json!([both(SKU_1, 1, 1)]), 12052048),
        (
            PRODUCT,
            json!([both("1730000000000009999", 1, 1)]),
            12052556,
        ),
        (
            PRODUCT,
            json!([both(SKU_1, 1, 1), both(SKU_1, 2, 2)]),
            12052553,
        ),
        (PRODUCT, json!([{"id": SKU_1, "inventory": []}]), 12019022),
        (
            PRODUCT,
            json!([{"id": SKU_1, "inventory": [{"warehouse_id": "1", "quantity": 1}]}]),
            12052097,
        ),
    ];
    for (product, skus, code) in cases {
        let (status, body) = shop.update(product, skus).await;
        assert_eq!((status, body["code"].as_u64()), (200, Some(code)), "{body}");
    }
    assert_eq!(
        shop.handle.quantity(SKU_1, EAST),
        Some(10),
        "the valid SKU of a refused call was not applied"
    );
    assert_eq!(
        shop.update(PRODUCT, json!([both(SKU_1, 0, 99_999)]))
            .await
            .1["code"],
        0
    );
}

#[tokio::test]
async fn the_rate_limit_refuses_with_tiktoks_code() {
    let mut config = config();
    config.rate_limit = RateLimit::new(2.0, 2.0);
    let shop = Shop::start(config).await;
    for _ in 0..2 {
        assert_eq!(
            shop.update(PRODUCT, json!([both(SKU_1, 1, 1)])).await.0,
            200
        );
    }
    let (status, body) = shop.update(PRODUCT, json!([both(SKU_1, 2, 2)])).await;
    assert_eq!((status, body["code"].as_u64()), (429, Some(36009002)));
    let recorder = shop.handle.recorder();
    assert_eq!(
        (recorder.rejection_count(), recorder.violation_count()),
        (1, 0)
    );
    assert_eq!(
        shop.update(PRODUCT, json!([both(SKU_1, 2, 2)])).await.0,
        429
    );
    assert_eq!(recorder.violation_count(), 1);
    shop.handle.clock().advance(Duration::from_millis(500));
    assert_eq!(
        shop.update(PRODUCT, json!([both(SKU_1, 2, 2)])).await.0,
        200
    );
    assert_eq!(shop.handle.quantity(SKU_1, WEST), Some(2));
}

#[tokio::test]
async fn inventory_search_answers_per_sku_per_warehouse() {
    let shop = Shop::start(config()).await;
    shop.handle.place_order(SKU_2, WEST, 3).unwrap();
    let path = "/product/202309/inventory/search";
    let (status, body) = shop
        .call(path, &json!({"sku_ids": [SKU_2, "1"]}), Spoil::default())
        .await;
    assert_eq!((status, body["code"].as_u64()), (200, Some(0)));
    let product = &body["data"]["inventory"][0];
    assert_eq!(product["product_id"], PRODUCT);
    assert_eq!(
        product["skus"],
        json!([{
        "id": SKU_2, "seller_sku": "SKU-2", "total_available_quantity": 17, "total_committed_quantity": 3,
        "warehouse_inventory": [
            {"warehouse_id": EAST, "available_quantity": 10, "committed_quantity": 0},
            {"warehouse_id": WEST, "available_quantity": 7, "committed_quantity": 3}]}])
    );
    let (_, body) = shop
        .call(path, &json!({"product_ids": [PRODUCT]}), Spoil::default())
        .await;
    assert_eq!(
        body["data"]["inventory"][0]["skus"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (_, body) = shop.call(path, &json!({}), Spoil::default()).await;
    assert_eq!(body["code"], 12052910);
    let (status, _) = shop
        .call(
            path,
            &json!({"sku_ids": [SKU_1]}),
            Spoil {
                secret: Some("x"),
                ..Spoil::default()
            },
        )
        .await;
    assert_eq!(status, 401, "the search is signed the same way");
}
