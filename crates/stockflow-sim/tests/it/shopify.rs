//! The Shopify sandbox: inventory mutations with compare-and-set and idempotency keys, reads
//! with cursors, the query-cost bucket and its two throttled variants.

use std::time::Duration;

use stockflow_sim::catalogue::ShopifyLocation;
use stockflow_sim::shopify::{self, ShopifyConfig, ShopifyHandle, ThrottledStatus};
use stockflow_sim::{
    Catalogue, CatalogueSpec, Cause, FaultConfig, Outcome, RateLimit, ViolationKind,
};

use crate::support::{Json, client, client_with_timeout, json, read};

const TOKEN: &str = "shpat_sandbox";
const EAST: &str = "gid://shopify/Location/70001";
const WEST: &str = "gid://shopify/Location/70002";
/// A location of the shop where nothing is stocked.
const EMPTY: &str = "gid://shopify/Location/79999";
const ITEM_1: &str = "gid://shopify/InventoryItem/40000001";
const ITEM_2: &str = "gid://shopify/InventoryItem/40000002";

const SET: &str = "mutation Set($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id reason referenceDocumentUri
      changes { name delta quantityAfterChange item { id sku } location { id } } }
    userErrors { field message code }
  }
}";

fn config(skus: &[&str]) -> ShopifyConfig {
    let mut catalogue =
        Catalogue::generate(&CatalogueSpec::new(skus, &["east", "west"], 10)).shopify;
    catalogue.locations.push(ShopifyLocation {
        id: EMPTY.into(),
        name: "empty".into(),
    });
    let mut config = ShopifyConfig::new(catalogue, TOKEN);
    config.common.manual_clock = true;
    config
}

struct Shop {
    handle: ShopifyHandle,
    client: reqwest::Client,
}

impl Shop {
    async fn start(config: ShopifyConfig) -> Self {
        let handle = shopify::start(config).await.expect("sandbox starts");
        Self {
            handle,
            client: client(),
        }
    }

    async fn standard() -> Self {
        Self::start(config(&["SKU-1", "SKU-2", "SKU-3"])).await
    }

    async fn gql(&self, query: &str, variables: Json) -> (u16, Json) {
        let request = self
            .client
            .post(self.handle.graphql_url())
            .header("X-Shopify-Access-Token", TOKEN)
            .json(&json!({"query": query, "variables": variables}));
        read(request.send().await.expect("sandbox answers")).await
    }

    async fn set(&self, key: &str, quantities: Json) -> Json {
        let (status, body) = self
            .gql(SET, json!({"input": set_input(quantities), "key": key}))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    fn available(&self, sku: &str, location: &str) -> i64 {
        self.handle
            .quantity(sku, location, "available")
            .expect("level exists")
    }
}

fn set_input(quantities: Json) -> Json {
    json!({"name": "available", "reason": "correction", "referenceDocumentUri": "gid://stockflow/Sync/1", "quantities": quantities})
}

fn entry(item: &str, location: &str, quantity: i64, change_from: Json) -> Json {
    json!({"inventoryItemId": item, "locationId": location, "quantity": quantity, "changeFromQuantity": change_from})
}

fn user_error_codes(body: &Json, mutation: &str) -> Vec<String> {
    let errors = body["data"][mutation]["userErrors"]
        .as_array()
        .expect("userErrors is a list");
    errors
        .iter()
        .map(|e| e["code"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn set_quantities_applies_and_answers_like_shopify() {
    let shop = Shop::standard().await;
    let body = shop
        .set("key-1", json!([entry(ITEM_1, EAST, 7, json!(10))]))
        .await;
    let group = &body["data"]["inventorySetQuantities"]["inventoryAdjustmentGroup"];
    assert_eq!(group["reason"], "correction");
    assert_eq!(
        group["changes"][0],
        json!({"name": "available", "delta": -3, "quantityAfterChange": 7,
        "item": {"id": ITEM_1, "sku": "SKU-1"}, "location": {"id": EAST}})
    );
    assert_eq!(group["changes"][1]["name"], "on_hand");
    assert_eq!(
        body["data"]["inventorySetQuantities"]["userErrors"],
        json!([])
    );
    let cost = &body["extensions"]["cost"];
    assert_eq!(cost["requestedQueryCost"], 10);
    assert_eq!(cost["actualQueryCost"], 10);
    assert_eq!(
        cost["throttleStatus"],
        json!({"maximumAvailable": 2000.0, "currentlyAvailable": 1990, "restoreRate": 100.0})
    );
    assert_eq!(shop.available("SKU-1", EAST), 7);
    let timeline = shop.handle.recorder().timeline("SKU-1", EAST);
    assert_eq!(
        timeline.iter().map(|p| p.quantity).collect::<Vec<_>>(),
        vec![10, 7]
    );
    assert!(
        matches!(&timeline[1].cause, Cause::Api { operation, reference } if operation == "inventorySetQuantities" && reference == "key-1")
    );
    assert_eq!(
        shop.handle
            .recorder()
            .call_count("inventorySetQuantities", Outcome::Ok),
        1
    );
}

#[tokio::test]
async fn one_stale_entry_fails_the_whole_call() {
    let shop = Shop::standard().await;
    let quantities = json!([
        entry(ITEM_1, EAST, 4, json!(10)),
        entry(ITEM_2, EAST, 4, json!(9))
    ]);
    let body = shop.set("stale-1", quantities).await;
    let payload = &body["data"]["inventorySetQuantities"];
    assert_eq!(payload["inventoryAdjustmentGroup"], Json::Null);
    assert_eq!(
        payload["userErrors"][0]["code"],
        "CHANGE_FROM_QUANTITY_STALE"
    );
    assert_eq!(
        payload["userErrors"][0]["field"],
        json!(["input", "quantities", "1", "changeFromQuantity"])
    );
    assert_eq!(shop.available("SKU-1", EAST), 10, "nothing applied");
    assert_eq!(shop.available("SKU-2", EAST), 10);
    assert_eq!(
        shop.handle
            .recorder()
            .call_count("inventorySetQuantities", Outcome::Refused),
        1
    );
}

#[tokio::test]
async fn change_from_quantity_must_be_present_and_null_opts_out() {
    let shop = Shop::standard().await;
    let omitted = json!([{"inventoryItemId": ITEM_1, "locationId": EAST, "quantity": 3}]);
    let body = shop.set("omit-1", omitted).await;
    assert_eq!(
        user_error_codes(&body, "inventorySetQuantities"),
        vec!["COMPARE_QUANTITY_REQUIRED"]
    );
    assert_eq!(shop.available("SKU-1", EAST), 10);
    let body = shop
        .set("null-1", json!([entry(ITEM_1, EAST, 3, Json::Null)]))
        .await;
    assert_eq!(
        user_error_codes(&body, "inventorySetQuantities"),
        Vec::<String>::new()
    );
    assert_eq!(shop.available("SKU-1", EAST), 3);
}

#[tokio::test]
async fn a_repeated_key_replays_without_applying_again() {
    let shop = Shop::standard().await;
    let first = shop
        .set("replay-1", json!([entry(ITEM_1, EAST, 7, json!(10))]))
        .await;
    shop.handle
        .merchant_set("SKU-1", EAST, "available", 8)
        .unwrap();
    let again = shop
        .set("replay-1", json!([entry(ITEM_1, EAST, 7, json!(10))]))
        .await;
    assert_eq!(
        first["data"], again["data"],
        "the original result, not a stale error"
    );
    assert_eq!(
        shop.available("SKU-1", EAST),
        8,
        "the replay applied nothing"
    );
    // A blind retry under a new key fails: the stored value has moved.
    let blind = shop
        .set("replay-2", json!([entry(ITEM_1, EAST, 7, json!(10))]))
        .await;
    assert_eq!(
        user_error_codes(&blind, "inventorySetQuantities"),
        vec!["CHANGE_FROM_QUANTITY_STALE"]
    );
}

#[tokio::test]
async fn the_same_key_with_other_variables_is_a_mismatch() {
    let shop = Shop::standard().await;
    shop.set("mismatch-1", json!([entry(ITEM_1, EAST, 7, json!(10))]))
        .await;
    let body = shop
        .set("mismatch-1", json!([entry(ITEM_1, EAST, 6, json!(7))]))
        .await;
    assert_eq!(
        user_error_codes(&body, "inventorySetQuantities"),
        vec!["IDEMPOTENCY_KEY_PARAMETER_MISMATCH"]
    );
    assert_eq!(shop.available("SKU-1", EAST), 7);
}

#[tokio::test]
async fn a_key_in_flight_is_a_concurrent_request() {
    let mut config = config(&["SKU-1"]);
    // The key stays in flight for the latency; the second call arrives well within it.
    config.common.faults.latency = Duration::from_millis(1_000);
    let shop = std::sync::Arc::new(Shop::start(config).await);
    let call = |shop: std::sync::Arc<Shop>| {
        tokio::spawn(async move {
            shop.set("flight-1", json!([entry(ITEM_1, EAST, 7, json!(10))]))
                .await
        })
    };
    let first = call(shop.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = call(shop.clone());
    let mut codes = vec![
        user_error_codes(&first.await.unwrap(), "inventorySetQuantities"),
        user_error_codes(&second.await.unwrap(), "inventorySetQuantities"),
    ];
    // Whichever arrived first ran; the other was told the key is in flight.
    codes.sort();
    assert_eq!(
        codes,
        vec![vec![], vec!["IDEMPOTENCY_CONCURRENT_REQUEST".to_owned()]]
    );
    assert_eq!(shop.available("SKU-1", EAST), 7);
}

#[tokio::test]
async fn the_idempotency_key_is_required() {
    let shop = Shop::standard().await;
    let query = "mutation($input: InventorySetQuantitiesInput!) { inventorySetQuantities(input: $input) { userErrors { code } } }";
    let input = json!({"name": "available", "reason": "correction", "quantities": [entry(ITEM_1, EAST, 1, json!(10))]});
    let (status, body) = shop.gql(query, json!({"input": input})).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "IDEMPOTENCY_KEY_REQUIRED"
    );
    assert_eq!(shop.available("SKU-1", EAST), 10);
}

#[tokio::test]
async fn at_most_250_quantities_per_call() {
    let skus: Vec<String> = (0..125).map(|i| format!("BULK-{i}")).collect();
    let sku_refs: Vec<&str> = skus.iter().map(String::as_str).collect();
    let shop = Shop::start(config(&sku_refs)).await;
    let entries = |extra: bool| {
        let mut list: Vec<Json> = (0..125)
            .flat_map(|i| {
                let item = format!("gid://shopify/InventoryItem/{}", 40_000_001 + i);
                [
                    entry(&item, EAST, 5, json!(10)),
                    entry(&item, WEST, 5, json!(10)),
                ]
            })
            .collect();
        if extra {
            list.push(entry(ITEM_1, EMPTY, 1, Json::Null));
        }
        Json::Array(list)
    };
    let body = shop.set("bulk-251", entries(true)).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "MAX_INPUT_SIZE_EXCEEDED"
    );
    assert_eq!(shop.handle.recorder().violation_count(), 1);
    assert_eq!(
        shop.handle.recorder().violations()[0].kind,
        ViolationKind::LimitExceeded
    );
    assert_eq!(shop.available("BULK-0", EAST), 10);
    let body = shop.set("bulk-250", entries(false)).await;
    assert_eq!(
        user_error_codes(&body, "inventorySetQuantities"),
        Vec::<String>::new()
    );
    assert_eq!(shop.available("BULK-124", WEST), 5);
    assert_eq!(shop.handle.recorder().violation_count(), 1);
}

#[tokio::test]
async fn invalid_entries_are_refused_with_shopify_codes() {
    let shop = Shop::standard().await;
    let quantities = json!([
        entry("gid://shopify/InventoryItem/1", EAST, 1, Json::Null),
        entry(ITEM_1, "gid://shopify/Location/1", 1, Json::Null),
        entry(ITEM_1, EMPTY, 1, Json::Null),
        entry(ITEM_1, EAST, -1, Json::Null),
        entry(ITEM_2, EAST, 1_000_000_001, Json::Null),
        entry(ITEM_2, WEST, 1, Json::Null),
    ]);
    let body = shop.set("invalid-1", quantities).await;
    assert_eq!(
        user_error_codes(&body, "inventorySetQuantities"),
        vec![
            "INVALID_INVENTORY_ITEM",
            "INVALID_LOCATION",
            "ITEM_NOT_STOCKED_AT_LOCATION",
            "INVALID_QUANTITY_NEGATIVE",
            "INVALID_QUANTITY_TOO_HIGH"
        ]
    );
    assert_eq!(
        shop.available("SKU-2", WEST),
        10,
        "the valid entry was not applied either"
    );
}

#[tokio::test]
async fn adjust_quantities_takes_deltas() {
    let shop = Shop::standard().await;
    let query = "mutation($input: InventoryAdjustQuantitiesInput!) {
      inventoryAdjustQuantities(input: $input) @idempotent(key: \"adjust-1\") {
        inventoryAdjustmentGroup { changes { name delta quantityAfterChange } } userErrors { code } } }";
    let input = json!({"name": "damaged", "reason": "damaged", "changes": [
        {"inventoryItemId": ITEM_1, "locationId": EAST, "delta": 2, "changeFromQuantity": 0}]});
    let (_, body) = shop.gql(query, json!({"input": input})).await;
    let changes = &body["data"]["inventoryAdjustQuantities"]["inventoryAdjustmentGroup"]["changes"];
    assert_eq!(
        changes,
        &json!([{"name": "on_hand", "delta": 2, "quantityAfterChange": 12},
        {"name": "damaged", "delta": 2, "quantityAfterChange": 2}])
    );
    let zero = json!({"name": "available", "reason": "correction", "changes": [
        {"inventoryItemId": ITEM_1, "locationId": EAST, "delta": 0, "changeFromQuantity": null}]});
    let (_, body) = shop
        .gql(
            &query.replace("adjust-1", "adjust-2"),
            json!({"input": zero}),
        )
        .await;
    assert_eq!(
        body["data"]["inventoryAdjustQuantities"]["inventoryAdjustmentGroup"],
        Json::Null
    );
}

#[tokio::test]
async fn reads_page_with_cursors_and_charge_the_actual_cost() {
    let shop = Shop::standard().await;
    let query = "query($after: String) { inventoryItems(first: 2, after: $after) {
        edges { cursor node { id sku inventoryLevels(first: 5) { edges { node { id location { id }
          quantities(names: [\"available\", \"on_hand\"]) { name quantity } } } } } }
        pageInfo { hasNextPage endCursor } } }";
    let (_, first) = shop.gql(query, json!({})).await;
    let connection = &first["data"]["inventoryItems"];
    assert_eq!(connection["edges"].as_array().unwrap().len(), 2);
    assert_eq!(connection["pageInfo"]["hasNextPage"], true);
    let level = &connection["edges"][0]["node"]["inventoryLevels"]["edges"][0]["node"];
    assert_eq!(
        level["quantities"],
        json!([{"name": "available", "quantity": 10}, {"name": "on_hand", "quantity": 10}])
    );
    // A level costs 3 (itself, its location, its quantities). Requested: 2 + 2 * (1 + 2 + 5 * 3)
    // = 38; actual, with the 2 levels each item has: 2 + 2 * (1 + 2 + 2 * 3) = 20.
    let cost = &first["extensions"]["cost"];
    assert_eq!(
        (
            cost["requestedQueryCost"].as_u64(),
            cost["actualQueryCost"].as_u64()
        ),
        (Some(38), Some(20))
    );
    assert_eq!(
        cost["throttleStatus"]["currentlyAvailable"], 1980,
        "the unused part was refunded"
    );
    let after = connection["pageInfo"]["endCursor"].clone();
    let (_, second) = shop.gql(query, json!({"after": after})).await;
    let connection = &second["data"]["inventoryItems"];
    assert_eq!(connection["edges"][0]["node"]["sku"], "SKU-3");
    assert_eq!(connection["pageInfo"]["hasNextPage"], false);
}

#[tokio::test]
async fn reads_by_sku_by_id_and_by_node() {
    let shop = Shop::standard().await;
    let query = "{ bySku: inventoryItems(first: 5, query: \"sku:SKU-2\") { nodes { id } }
      item: inventoryItem(id: \"gid://shopify/InventoryItem/40000001\") { inventoryLevel(locationId: \"gid://shopify/Location/70002\") { id } }
      nodes(ids: [\"gid://shopify/Location/70001\", \"gid://shopify/InventoryItem/1\"]) { id ... on Location { name } } }";
    let (_, body) = shop.gql(query, json!({})).await;
    assert_eq!(body["data"]["bySku"]["nodes"], json!([{"id": ITEM_2}]));
    let level_id = body["data"]["item"]["inventoryLevel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        level_id,
        "gid://shopify/InventoryLevel/70002?inventory_item_id=40000001"
    );
    assert_eq!(
        body["data"]["nodes"],
        json!([{"id": EAST, "name": "east"}, null])
    );
    let by_level = format!("{{ inventoryLevel(id: \"{level_id}\") {{ item {{ sku }} }} }}");
    let (_, body) = shop.gql(&by_level, json!({})).await;
    assert_eq!(body["data"]["inventoryLevel"]["item"]["sku"], "SKU-1");
}

#[tokio::test]
async fn unknown_fields_and_bad_documents_are_errors() {
    let shop = Shop::standard().await;
    let (status, body) = shop
        .gql(
            "{ inventoryItems(first: 1) { nodes { colour } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"][0]["extensions"]["code"], "undefinedField");
    assert_eq!(body["extensions"]["cost"]["actualQueryCost"], 0);
    let (_, body) = shop
        .gql("{ inventoryItems(first: 1) { nodes { id }", json!({}))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "PARSE_ERROR");
}

#[tokio::test]
async fn a_query_above_1000_points_is_refused() {
    let shop = Shop::standard().await;
    let query =
        "{ inventoryItems(first: 250) { nodes { inventoryLevels(first: 250) { nodes { id } } } } }";
    let (_, body) = shop.gql(query, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "MAX_COST_EXCEEDED");
    assert_eq!(shop.handle.recorder().violation_count(), 1);
    assert_eq!(
        body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"],
        2000
    );
}

async fn exhaust_small_bucket(status: ThrottledStatus) -> (Shop, u16, Json, Option<String>) {
    let mut config = config(&["SKU-1"]);
    config.cost_limit = RateLimit::new(10.0, 25.0);
    config.throttled_status = status;
    let shop = Shop::start(config).await;
    for index in 0..2 {
        let body = shop
            .set(
                &format!("bucket-{index}"),
                json!([entry(ITEM_1, EAST, index, Json::Null)]),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    }
    let input = json!({"name": "available", "reason": "correction", "quantities": [entry(ITEM_1, EAST, 9, Json::Null)]});
    let response = shop
        .client
        .post(shop.handle.graphql_url())
        .header("X-Shopify-Access-Token", TOKEN)
        .json(&json!({"query": SET, "variables": {"input": input, "key": "bucket-2"}}))
        .send()
        .await
        .unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (code, body) = read(response).await;
    (shop, code, body, retry_after)
}

#[tokio::test]
async fn throttled_with_http_200_reports_the_bucket() {
    let (shop, status, body, retry_after) = exhaust_small_bucket(ThrottledStatus::Ok).await;
    assert_eq!(status, 200);
    assert_eq!(retry_after, None);
    assert_eq!(body["errors"][0]["extensions"]["code"], "THROTTLED");
    assert_eq!(
        body["extensions"]["cost"]["throttleStatus"],
        json!({"maximumAvailable": 25.0, "currentlyAvailable": 5, "restoreRate": 10.0})
    );
    assert_eq!(
        shop.available("SKU-1", EAST),
        1,
        "the throttled call applied nothing"
    );
    let recorder = shop.handle.recorder();
    assert_eq!(
        (recorder.rejection_count(), recorder.violation_count()),
        (1, 0)
    );
    // Calling again at once, before capacity is back, is a violation.
    let again = shop
        .set("bucket-3", json!([entry(ITEM_1, EAST, 9, Json::Null)]))
        .await;
    assert_eq!(again["errors"][0]["extensions"]["code"], "THROTTLED");
    assert_eq!(
        (recorder.rejection_count(), recorder.violation_count()),
        (2, 1)
    );
    assert_eq!(
        recorder.violations()[0].kind,
        ViolationKind::CalledWhileRejected
    );
    // After waiting as told, the call goes through.
    shop.handle.clock().advance(Duration::from_millis(500));
    let later = shop
        .set("bucket-4", json!([entry(ITEM_1, EAST, 9, Json::Null)]))
        .await;
    assert!(later["errors"].is_null(), "{later}");
    assert_eq!(
        recorder.call_count("inventorySetQuantities", Outcome::Throttled),
        2
    );
}

#[tokio::test]
async fn throttled_with_http_429_and_retry_after() {
    let (shop, status, body, retry_after) =
        exhaust_small_bucket(ThrottledStatus::TooManyRequests).await;
    assert_eq!(status, 429);
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body["errors"][0]["extensions"]["code"], "THROTTLED");
    assert_eq!(
        body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"],
        5
    );
    assert_eq!(shop.handle.recorder().rejection_count(), 1);
}

#[tokio::test]
async fn limits_can_be_lowered_for_a_while() {
    let shop = Shop::standard().await;
    shop.handle
        .lower_cost_limit_for(RateLimit::new(5.0, 50.0), Duration::from_secs(10));
    let (_, body) = shop
        .gql("{ inventoryItems(first: 1) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(
        body["extensions"]["cost"]["throttleStatus"]["maximumAvailable"],
        50.0
    );
    shop.handle.clock().advance(Duration::from_secs(11));
    let (_, body) = shop
        .gql("{ inventoryItems(first: 1) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(
        body["extensions"]["cost"]["throttleStatus"]["maximumAvailable"],
        2000.0
    );
}

#[tokio::test]
async fn a_wrong_token_or_version_is_refused() {
    let shop = Shop::standard().await;
    let url = shop.handle.graphql_url();
    let response = shop
        .client
        .post(&url)
        .header("X-Shopify-Access-Token", "nope")
        .json(&json!({"query": "{ inventoryItems(first: 1) { nodes { id } } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let old = url.replace("2026-04", "2024-01");
    let response = shop
        .client
        .post(&old)
        .header("X-Shopify-Access-Token", TOKEN)
        .json(&json!({"query": "{ inventoryItems(first: 1) { nodes { id } } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        shop.handle
            .recorder()
            .call_count("graphql", Outcome::Unauthorized),
        1
    );
}

#[tokio::test]
async fn buyers_commit_units_and_merchant_edits_drift() {
    let shop = Shop::standard().await;
    let order = shop.handle.buyer_order("SKU-1", EAST, 3).unwrap();
    assert_eq!(shop.available("SKU-1", EAST), 7);
    assert_eq!(shop.handle.quantity("SKU-1", EAST, "committed"), Some(3));
    assert_eq!(shop.handle.quantity("SKU-1", EAST, "on_hand"), Some(10));
    assert!(shop.handle.buyer_order("SKU-1", EAST, 8).is_err());
    shop.handle.cancel_order(&order).unwrap();
    assert_eq!(shop.available("SKU-1", EAST), 10);
    shop.handle
        .merchant_set("SKU-1", EAST, "available", 4)
        .unwrap();
    let body = shop
        .set("drift-1", json!([entry(ITEM_1, EAST, 9, json!(10))]))
        .await;
    assert_eq!(
        user_error_codes(&body, "inventorySetQuantities"),
        vec!["CHANGE_FROM_QUANTITY_STALE"]
    );
    let causes: Vec<Cause> = shop
        .handle
        .recorder()
        .timeline("SKU-1", EAST)
        .into_iter()
        .map(|p| p.cause)
        .collect();
    assert!(matches!(
        causes[..],
        [
            Cause::Seed,
            Cause::Order { .. },
            Cause::Cancellation { .. },
            Cause::MerchantEdit
        ]
    ));
}

#[tokio::test]
async fn server_errors_apply_nothing() {
    let shop = Shop::standard().await;
    shop.handle.faults().set(FaultConfig {
        server_error_rate: 1.0,
        ..FaultConfig::default()
    });
    let input = json!({"name": "available", "reason": "correction", "quantities": [entry(ITEM_1, EAST, 1, json!(10))]});
    let (status, _) = shop
        .gql(SET, json!({"input": input, "key": "error-1"}))
        .await;
    assert!(status == 500 || status == 503, "{status}");
    assert_eq!(shop.available("SKU-1", EAST), 10);
    shop.handle.faults().set(FaultConfig::default());
    let body = shop
        .set("error-1", json!([entry(ITEM_1, EAST, 1, json!(10))]))
        .await;
    assert!(
        body["errors"].is_null(),
        "the key was not used by the failed call: {body}"
    );
    assert_eq!(
        shop.handle
            .recorder()
            .call_count("inventorySetQuantities", Outcome::ServerError),
        1
    );
}

#[tokio::test]
async fn a_timed_out_call_may_have_applied_and_the_key_makes_the_retry_safe() {
    let shop = Shop::standard().await;
    shop.handle.faults().set(FaultConfig {
        timeout_rate: 1.0,
        timeout_hold: Duration::from_secs(2),
        timeout_processes: true,
        ..FaultConfig::default()
    });
    let impatient = client_with_timeout(Duration::from_millis(300));
    let input = set_input(json!([entry(ITEM_1, EAST, 6, json!(10))]));
    let attempt = impatient
        .post(shop.handle.graphql_url())
        .header("X-Shopify-Access-Token", TOKEN)
        .json(&json!({"query": SET, "variables": {"input": input, "key": "held-1"}}))
        .send()
        .await;
    assert!(attempt.is_err(), "the client gave up");
    assert_eq!(
        shop.available("SKU-1", EAST),
        6,
        "but the platform applied it"
    );
    shop.handle.faults().set(FaultConfig::default());
    let retry = shop
        .set("held-1", json!([entry(ITEM_1, EAST, 6, json!(10))]))
        .await;
    assert_eq!(
        user_error_codes(&retry, "inventorySetQuantities"),
        Vec::<String>::new()
    );
    assert_eq!(
        shop.handle.recorder().timeline("SKU-1", EAST).len(),
        2,
        "applied once"
    );
}
