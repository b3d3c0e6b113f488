//! The Amazon sandbox: ACCEPTED only queues, some submissions never apply, the per-seller token
//! bucket, Amazon's own order decrements, and the feeds path for a first full sync.

use std::time::Duration;

use stockflow_sim::amazon::{self, AmazonConfig, AmazonHandle};
use stockflow_sim::{
    Catalogue, CatalogueSpec, Cause, FaultConfig, Outcome, RateLimit, ViolationKind,
};

use crate::support::{Json, client, json, read};

const TOKEN: &str = "Atza|sandbox";
const SELLER: &str = "A2SANDBOXSELLER";
const MARKETPLACE: &str = "ATVPDKIKX0DER";

fn config(skus: &[&str]) -> AmazonConfig {
    let catalogue = Catalogue::generate(&CatalogueSpec::new(skus, &["east"], 10)).amazon;
    let mut config = AmazonConfig::new(catalogue, TOKEN);
    config.common.manual_clock = true;
    config.never_applied_share = 0.0;
    config
}

fn availability(quantity: i64) -> Json {
    json!({"productType": "PRODUCT", "patches": [{"op": "replace", "path": "/attributes/fulfillment_availability",
        "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": quantity}]}]})
}

struct Seller {
    handle: AmazonHandle,
    client: reqwest::Client,
}

struct Answer {
    status: u16,
    body: Json,
    headers: reqwest::header::HeaderMap,
}

impl Seller {
    async fn start(config: AmazonConfig) -> Self {
        Self {
            handle: amazon::start(config).await.expect("sandbox starts"),
            client: client(),
        }
    }

    fn item_url(&self, sku: &str) -> String {
        format!(
            "{}/listings/2021-08-01/items/{SELLER}/{sku}?marketplaceIds={MARKETPLACE}",
            self.handle.base_url()
        )
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("sandbox answers");
        let headers = response.headers().clone();
        let (status, body) = read(response).await;
        Answer {
            status,
            body,
            headers,
        }
    }

    async fn patch(&self, sku: &str, body: Json) -> Answer {
        self.send(
            self.client
                .patch(self.item_url(sku))
                .header("x-amz-access-token", TOKEN)
                .json(&body),
        )
        .await
    }

    async fn shown(&self, sku: &str) -> i64 {
        let url = format!(
            "{}&includedData=fulfillmentAvailability",
            self.item_url(sku)
        );
        let answer = self
            .send(self.client.get(url).header("x-amz-access-token", TOKEN))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(
            answer.body["fulfillmentAvailability"][0]["fulfillmentChannelCode"],
            "DEFAULT"
        );
        answer.body["fulfillmentAvailability"][0]["quantity"]
            .as_i64()
            .unwrap()
    }

    fn advance(&self, by: Duration) {
        self.handle.clock().advance(by);
    }
}

#[tokio::test]
async fn accepted_only_queues_and_applies_after_the_delay() {
    let seller = Seller::start(config(&["SKU-1"])).await;
    let answer = seller.patch("SKU-1", availability(4)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status"], "ACCEPTED");
    assert_eq!(answer.body["sku"], "SKU-1");
    assert_eq!(answer.body["issues"], json!([]));
    assert_eq!(answer.body["submissionId"].as_str().unwrap().len(), 32);
    assert!(answer.headers.contains_key("x-amzn-requestid"));
    assert_eq!(answer.headers["x-amzn-ratelimit-limit"], "5.0");
    assert_eq!(seller.shown("SKU-1").await, 10, "not applied yet");
    seller.advance(Duration::from_secs(59));
    assert_eq!(seller.shown("SKU-1").await, 10);
    seller.advance(Duration::from_secs(1));
    assert_eq!(seller.shown("SKU-1").await, 4);
    let timeline = seller.handle.recorder().timeline("SKU-1", "DEFAULT");
    assert_eq!(timeline[1].at, Duration::from_secs(60));
    assert!(matches!(timeline[1].cause, Cause::QueuedApply { .. }));
}

#[tokio::test]
async fn a_later_submission_supersedes_pending_ones() {
    let seller = Seller::start(config(&["SKU-1"])).await;
    seller.patch("SKU-1", availability(4)).await;
    seller.advance(Duration::from_secs(30));
    seller.patch("SKU-1", availability(6)).await;
    seller.advance(Duration::from_secs(30));
    assert_eq!(
        seller.shown("SKU-1").await,
        10,
        "the first one was superseded"
    );
    seller.advance(Duration::from_secs(30));
    assert_eq!(seller.shown("SKU-1").await, 6);
    let counts = seller.handle.submission_counts();
    assert_eq!(
        (
            counts.accepted,
            counts.applied,
            counts.superseded,
            counts.pending
        ),
        (2, 1, 1, 0)
    );
}

#[tokio::test]
async fn a_share_of_accepted_submissions_never_applies() {
    let skus: Vec<String> = (0..20).map(|i| format!("SKU-{i}")).collect();
    let refs: Vec<&str> = skus.iter().map(String::as_str).collect();
    let mut config = config(&refs);
    config.never_applied_share = 0.5;
    config.common.seed = 7;
    let seller = Seller::start(config).await;
    for sku in &skus {
        let answer = seller.patch(sku, availability(3)).await;
        assert_eq!(
            answer.body["status"], "ACCEPTED",
            "no sign of what will be lost"
        );
        seller.advance(Duration::from_millis(200));
    }
    seller.advance(Duration::from_secs(60));
    let counts = seller.handle.submission_counts();
    assert_eq!(counts.applied + counts.lost, 20);
    assert!((4..=16).contains(&counts.lost), "{counts:?}");
    let mut unchanged = 0;
    for sku in &skus {
        if seller.handle.quantity(sku) == Some(10) {
            unchanged += 1;
        }
    }
    assert_eq!(unchanged, counts.lost);
}

#[tokio::test]
async fn invalid_quantities_are_refused_and_nothing_is_queued() {
    let seller = Seller::start(config(&["SKU-1"])).await;
    let answer = seller.patch("SKU-1", availability(-1)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status"], "INVALID");
    assert!(answer.body["submissionId"].is_string());
    assert_eq!(answer.body["issues"][0]["severity"], "ERROR");
    assert_eq!(
        answer.body["issues"][0]["attributeNames"],
        json!(["fulfillment_availability"])
    );
    let fba = json!({"productType": "PRODUCT", "patches": [{"op": "merge", "path": "/attributes/fulfillment_availability",
        "value": [{"fulfillment_channel_code": "AMAZON_NA", "quantity": 3}]}]});
    assert_eq!(seller.patch("SKU-1", fba).await.body["status"], "INVALID");
    assert_eq!(seller.handle.submission_counts().accepted, 0);
    assert_eq!(
        seller
            .handle
            .recorder()
            .call_count("patchListingsItem", Outcome::Refused),
        2
    );
}

#[tokio::test]
async fn malformed_requests_get_the_errors_format() {
    let mut config = config(&["SKU-1"]);
    config.common.body_bytes_max = 2_048;
    config.patch_rate = RateLimit::new(100.0, 100.0);
    let seller = Seller::start(config).await;
    let expect = |answer: Answer, status: u16, code: &str| {
        assert_eq!(answer.status, status, "{}", answer.body);
        assert_eq!(answer.body["errors"][0]["code"], code);
        assert!(answer.body["errors"][0]["details"].is_string());
        assert!(answer.headers.contains_key("x-amzn-requestid"));
    };
    expect(
        seller
            .patch("SKU-1", json!({"patches": availability(1)["patches"]}))
            .await,
        400,
        "InvalidInput",
    );
    expect(
        seller
            .patch("SKU-1", json!({"productType": "PRODUCT", "patches": []}))
            .await,
        400,
        "InvalidInput",
    );
    expect(seller.patch("NOPE", availability(1)).await, 404, "NotFound");
    let text = seller
        .client
        .patch(seller.item_url("SKU-1"))
        .header("x-amz-access-token", TOKEN)
        .body("quantity=1");
    expect(seller.send(text).await, 415, "UnsupportedMediaType");
    let no_token = seller
        .client
        .patch(seller.item_url("SKU-1"))
        .json(&availability(1));
    expect(seller.send(no_token).await, 403, "Unauthorized");
    let url = format!(
        "{}/listings/2021-08-01/items/{SELLER}/SKU-1",
        seller.handle.base_url()
    );
    let no_marketplace = seller
        .client
        .patch(url)
        .header("x-amz-access-token", TOKEN)
        .json(&availability(1));
    expect(seller.send(no_marketplace).await, 400, "InvalidInput");
    let huge = json!({"productType": "PRODUCT", "patches": availability(1)["patches"], "padding": "x".repeat(4_096)});
    expect(
        seller.patch("SKU-1", huge).await,
        413,
        "RequestEntityTooLarge",
    );
    assert_eq!(seller.handle.recorder().violation_count(), 1);
    assert_eq!(seller.handle.submission_counts().accepted, 0);
}

#[tokio::test]
async fn the_token_bucket_refuses_with_429() {
    let mut config = config(&["SKU-1"]);
    config.retry_after = true;
    let seller = Seller::start(config).await;
    for quantity in 0..5 {
        assert_eq!(
            seller.patch("SKU-1", availability(quantity)).await.status,
            200
        );
    }
    let refused = seller.patch("SKU-1", availability(9)).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["errors"][0]["code"], "QuotaExceeded");
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(refused.headers["x-amzn-ratelimit-limit"], "5.0");
    let recorder = seller.handle.recorder();
    assert_eq!(
        (recorder.rejection_count(), recorder.violation_count()),
        (1, 0)
    );
    assert_eq!(seller.patch("SKU-1", availability(9)).await.status, 429);
    assert_eq!(
        recorder.violations()[0].kind,
        ViolationKind::CalledWhileRejected
    );
    seller.advance(Duration::from_millis(200));
    assert_eq!(seller.patch("SKU-1", availability(9)).await.status, 200);
    assert_eq!(
        recorder.call_count("patchListingsItem", Outcome::Throttled),
        2
    );
}

#[tokio::test]
async fn the_older_burst_of_10_is_configurable() {
    let mut config = config(&["SKU-1"]);
    config.patch_rate = RateLimit::new(5.0, 10.0);
    let seller = Seller::start(config).await;
    for quantity in 0..10 {
        assert_eq!(
            seller.patch("SKU-1", availability(quantity)).await.status,
            200
        );
    }
    let refused = seller.patch("SKU-1", availability(1)).await;
    assert_eq!(refused.status, 429);
    assert!(
        !refused.headers.contains_key("retry-after"),
        "Retry-After is optional and off by default"
    );
}

#[tokio::test]
async fn amazon_moves_its_own_quantity_on_orders() {
    let seller = Seller::start(config(&["SKU-1"])).await;
    // An absolute quantity computed before an order Amazon already took re-lists a sold unit.
    seller.patch("SKU-1", availability(10)).await;
    let order = seller.handle.place_order("SKU-1", 2).unwrap();
    assert_eq!(seller.shown("SKU-1").await, 8);
    seller.advance(Duration::from_secs(60));
    assert_eq!(seller.shown("SKU-1").await, 10);
    seller.handle.cancel_order(&order).unwrap();
    assert_eq!(seller.shown("SKU-1").await, 12);
    assert!(seller.handle.place_order("SKU-1", 13).is_err());
}

fn listings_feed(messages: Json) -> Json {
    json!({"header": {"sellerId": SELLER, "version": "2.0"}, "messages": messages})
}

fn feed_message(id: u64, sku: &str, quantity: i64) -> Json {
    json!({"messageId": id, "sku": sku, "operationType": "PATCH", "productType": "PRODUCT",
        "patches": availability(quantity)["patches"]})
}

impl Seller {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Json>) -> Answer {
        let url = format!("{}{path}", self.handle.base_url());
        let mut request = self
            .client
            .request(method, url)
            .header("x-amz-access-token", TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    /// Creates a document, uploads the feed, creates the feed; returns the feed id.
    async fn submit_feed(&self, feed: &Json) -> Answer {
        let document = self
            .call(
                reqwest::Method::POST,
                "/feeds/2021-06-30/documents",
                Some(json!({"contentType": "application/json; charset=UTF-8"})),
            )
            .await;
        assert_eq!(document.status, 201, "{}", document.body);
        let url = document.body["url"].as_str().unwrap();
        let upload = self
            .client
            .put(url)
            .header("content-type", "application/json; charset=UTF-8")
            .body(feed.to_string());
        assert_eq!(upload.send().await.unwrap().status(), 200);
        let id = document.body["feedDocumentId"].clone();
        self.call(reqwest::Method::POST, "/feeds/2021-06-30/feeds",
            Some(json!({"feedType": "JSON_LISTINGS_FEED", "marketplaceIds": [MARKETPLACE], "inputFeedDocumentId": id}))).await
    }

    async fn feed_status(&self, feed_id: &str) -> Json {
        self.call(
            reqwest::Method::GET,
            &format!("/feeds/2021-06-30/feeds/{feed_id}"),
            None,
        )
        .await
        .body
    }
}

#[tokio::test]
async fn a_listings_feed_goes_through_queue_processing_and_a_report() {
    let seller = Seller::start(config(&["SKU-1", "SKU-2", "SKU-3"])).await;
    let feed = listings_feed(json!([
        feed_message(1, "SKU-1", 3),
        feed_message(2, "SKU-2", -4),
        feed_message(3, "SKU-3", 0)
    ]));
    let created = seller.submit_feed(&feed).await;
    assert_eq!(created.status, 202);
    let feed_id = created.body["feedId"].as_str().unwrap().to_owned();
    assert_eq!(
        seller.feed_status(&feed_id).await["processingStatus"],
        "IN_QUEUE"
    );
    seller.advance(Duration::from_secs(30));
    assert_eq!(
        seller.feed_status(&feed_id).await["processingStatus"],
        "IN_PROGRESS"
    );
    assert_eq!(seller.handle.quantity("SKU-1"), Some(10));
    seller.advance(Duration::from_secs(120));
    let done = seller.feed_status(&feed_id).await;
    assert_eq!(done["processingStatus"], "DONE");
    assert!(done["processingEndTime"].is_string());
    let report_id = done["resultFeedDocumentId"].as_str().unwrap();
    let document = seller
        .call(
            reqwest::Method::GET,
            &format!("/feeds/2021-06-30/documents/{report_id}"),
            None,
        )
        .await;
    let report = crate::support::read(
        seller
            .client
            .get(document.body["url"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await
    .1;
    assert_eq!(
        report["summary"],
        json!({"errors": 1, "warnings": 0, "messagesProcessed": 3, "messagesAccepted": 2, "messagesInvalid": 1})
    );
    assert_eq!(report["issues"][0]["messageId"], 2);
    assert_eq!(
        (
            seller.handle.quantity("SKU-1"),
            seller.handle.quantity("SKU-2"),
            seller.handle.quantity("SKU-3")
        ),
        (Some(3), Some(10), Some(0))
    );
    let timeline = seller.handle.recorder().timeline("SKU-3", "DEFAULT");
    assert!(matches!(&timeline[1].cause, Cause::Feed { feed_id: id } if *id == feed_id));
}

#[tokio::test]
async fn a_feed_above_the_message_maximum_is_fatal_and_a_violation() {
    let mut config = config(&["SKU-1"]);
    config.feeds.messages_max = 2;
    let seller = Seller::start(config).await;
    let feed = listings_feed(json!([
        feed_message(1, "SKU-1", 1),
        feed_message(2, "SKU-1", 2),
        feed_message(3, "SKU-1", 3)
    ]));
    let created = seller.submit_feed(&feed).await;
    assert_eq!(created.status, 202);
    assert_eq!(seller.handle.recorder().violation_count(), 1);
    seller.advance(Duration::from_secs(150));
    let feed_id = created.body["feedId"].as_str().unwrap();
    assert_eq!(
        seller.feed_status(feed_id).await["processingStatus"],
        "FATAL"
    );
    assert_eq!(seller.handle.quantity("SKU-1"), Some(10));
}

#[tokio::test]
async fn create_feed_is_limited_to_a_burst_of_15() {
    let mut config = config(&["SKU-1"]);
    config.feeds.create_document_rate = RateLimit::new(100.0, 100.0);
    let seller = Seller::start(config).await;
    let feed = listings_feed(json!([feed_message(1, "SKU-1", 1)]));
    for _ in 0..15 {
        assert_eq!(seller.submit_feed(&feed).await.status, 202);
    }
    let refused = seller.submit_feed(&feed).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.headers["x-amzn-ratelimit-limit"], "0.0083");
}

#[tokio::test]
async fn injected_faults_use_the_errors_format() {
    let seller = Seller::start(config(&["SKU-1"])).await;
    seller.handle.faults().set(FaultConfig {
        server_error_rate: 1.0,
        ..FaultConfig::default()
    });
    let answer = seller.patch("SKU-1", availability(1)).await;
    assert!(answer.status == 500 || answer.status == 503);
    assert!(matches!(
        answer.body["errors"][0]["code"].as_str(),
        Some("InternalFailure" | "ServiceUnavailable")
    ));
    seller.handle.faults().set(FaultConfig {
        throttle_all: true,
        ..FaultConfig::default()
    });
    assert_eq!(seller.patch("SKU-1", availability(1)).await.status, 429);
    seller.handle.faults().set(FaultConfig::default());
    assert_eq!(seller.handle.submission_counts().accepted, 0);
    assert_eq!(
        seller
            .handle
            .recorder()
            .call_count("patchListingsItem", Outcome::ServerError),
        1
    );
}
