//! Amazon Selling Partner API: Listings Items `PATCH` with a `merge` of
//! `/attributes/fulfillment_availability` (one SKU per call), read back with
//! `includedData=fulfillmentAvailability`, and the Feeds API (`JSON_LISTINGS_FEED`, at most
//! 10,000 messages a feed) for a first full sync.
//!
//! ACCEPTED only means queued: the outcome is [`EntryOutcome::Accepted`], and the engine reads
//! the value back after `verify_delay_ms` (the rule, which never repairs upward before an
//! order grace period, is on the engine's verification). Every request is paced by a token
//! bucket per operation (patch 5/s burst 5, get 5/s burst 10, the feed operations theirs); a
//! 429 holds the operation off for Retry-After, or one token's interval when none is given.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value as Json, json};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::adapter::{
    AdapterError, Batch, BulkItem, BulkOutcome, CallReport, ChannelAdapter, EntryOutcome, Failure,
    FailureKind, FullSyncProgress, Placement, ReadValue, SyncKey,
};
use crate::config::{AmazonConfig, FeedSettings, RateSettings, Secret};
use crate::http::{self, Answer};
use crate::pacing::Gcra;

const FULFILLMENT_AVAILABILITY: &str = "/attributes/fulfillment_availability";
const FEED_CONTENT_TYPE: &str = "application/json; charset=UTF-8";
/// Attempts of one feed operation on transient failures.
const FEED_ATTEMPTS_MAX: u32 = 5;

fn gcra(rate: &RateSettings) -> Gcra {
    Gcra::new(
        rate.per_second,
        rate.burst,
        Duration::from_millis(rate.margin_ms),
    )
}

/// Adapter for one seller account.
pub struct AmazonAdapter {
    client: reqwest::Client,
    base_url: reqwest::Url,
    seller_id: String,
    marketplace_ids: Vec<String>,
    product_type: String,
    token: Secret,
    body_max: usize,
    verify_delay: Duration,
    patch_rate: Gcra,
    read_rate: Gcra,
    feeds: FeedSettings,
    create_document_rate: Gcra,
    create_feed_rate: Gcra,
    get_feed_rate: Gcra,
    get_document_rate: Gcra,
}

impl std::fmt::Debug for AmazonAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmazonAdapter")
            .field("base_url", &self.base_url.as_str())
            .field("seller_id", &self.seller_id)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl AmazonAdapter {
    pub fn new(config: &AmazonConfig) -> Result<Self, AdapterError> {
        let base_url = reqwest::Url::parse(&config.base_url)
            .map_err(|e| AdapterError::new("config", e.to_string()))?;
        Ok(Self {
            client: http::client(&config.http)?,
            base_url,
            seller_id: config.seller_id.clone(),
            marketplace_ids: config.marketplace_ids.clone(),
            product_type: config.product_type.clone(),
            token: config.access_token.clone(),
            body_max: config.http.body_bytes_max,
            verify_delay: Duration::from_millis(config.verify_delay_ms),
            patch_rate: gcra(&config.rate),
            read_rate: gcra(&config.read_rate),
            create_document_rate: gcra(&config.feeds.create_document_rate),
            create_feed_rate: gcra(&config.feeds.create_feed_rate),
            get_feed_rate: gcra(&config.feeds.get_feed_rate),
            get_document_rate: gcra(&config.feeds.get_document_rate),
            feeds: config.feeds.clone(),
        })
    }

    fn listing_url(&self, sku: &str, included: Option<&str>) -> reqwest::Url {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .expect("an http(s) base URL")
            .pop_if_empty()
            .extend(["listings", "2021-08-01", "items", &self.seller_id, sku]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("marketplaceIds", &self.marketplace_ids.join(","));
            if let Some(included) = included {
                query.append_pair("includedData", included);
            }
        }
        url
    }

    fn api_url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .expect("an http(s) base URL")
            .pop_if_empty()
            .extend(segments);
        url
    }

    fn availability(quantity: i64) -> Json {
        json!([{"op": "merge", "path": FULFILLMENT_AVAILABILITY,
                "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": quantity.max(0)}]}])
    }

    /// The failure of an SP-API error answer; a 429 also holds `rate` off.
    fn error(&self, answer: &Answer, rate: &Gcra) -> Failure {
        let body = answer.json();
        let first = body.as_ref().and_then(|b| b["errors"].get(0).cloned());
        let code = first
            .as_ref()
            .and_then(|e| e["code"].as_str())
            .map(str::to_owned);
        let message = first
            .as_ref()
            .and_then(|e| e["message"].as_str())
            .map(str::to_owned);
        let mut failure = http::status_failure(answer, code, message);
        if failure.kind == FailureKind::Throttled {
            // SP-API does not promise Retry-After, and the platform's bucket may be smaller than
            // configured: without it, wait a second (or a token's interval, if longer).
            let wait = failure
                .retry_after
                .unwrap_or(rate.interval().max(Duration::from_secs(1)));
            rate.hold_off(wait);
            failure.retry_after = Some(wait);
        }
        failure
    }

    async fn patch(&self, sku: &str, quantity: i64, report: &mut CallReport) -> EntryOutcome {
        let body =
            json!({"productType": self.product_type, "patches": Self::availability(quantity)});
        let request = self
            .client
            .patch(self.listing_url(sku, None))
            .header("x-amz-access-token", self.token.expose())
            .json(&body);
        let _probe = self.patch_rate.clear().await;
        let answer = match http::send(request, self.body_max).await {
            Ok(answer) => answer,
            Err(failure) => {
                report.calls.push(http::label(Some(&failure)));
                return EntryOutcome::Failed(failure);
            }
        };
        if !answer.status.is_success() {
            let failure = self.error(&answer, &self.patch_rate);
            report.calls.push(http::label(Some(&failure)));
            return EntryOutcome::Failed(failure);
        }
        self.patch_rate.succeeded();
        let Some(body) = answer.json() else {
            report.calls.push("invalid");
            return EntryOutcome::Failed(http::invalid_answer("patchListingsItem", &answer));
        };
        match body["status"].as_str() {
            Some("ACCEPTED") => {
                report.calls.push("ok");
                EntryOutcome::Accepted { quantity }
            }
            Some("INVALID") => {
                report.calls.push("rejected");
                let issue = body["issues"].get(0).cloned().unwrap_or(Json::Null);
                EntryOutcome::Failed(Failure::new(
                    FailureKind::Rejected,
                    issue["code"].as_str().unwrap_or("INVALID"),
                    issue["message"]
                        .as_str()
                        .unwrap_or("the listing was refused"),
                ))
            }
            _ => {
                report.calls.push("invalid");
                EntryOutcome::Failed(http::invalid_answer("patchListingsItem", &answer))
            }
        }
    }

    async fn read_one(&self, key: &SyncKey) -> Result<ReadValue, Failure> {
        self.read_rate.acquire().await;
        let url = self.listing_url(key.sku.as_str(), Some("fulfillmentAvailability"));
        let request = self
            .client
            .get(url)
            .header("x-amz-access-token", self.token.expose());
        let _probe = self.read_rate.clear().await;
        let answer = http::send(request, self.body_max).await?;
        if answer.status == reqwest::StatusCode::NOT_FOUND {
            return Ok(ReadValue {
                key: key.clone(),
                quantity: None,
            });
        }
        if !answer.status.is_success() {
            return Err(self.error(&answer, &self.read_rate));
        }
        self.read_rate.succeeded();
        let body = answer
            .json()
            .ok_or_else(|| http::invalid_answer("getListingsItem", &answer))?;
        let quantity = body["fulfillmentAvailability"]
            .as_array()
            .and_then(|list| {
                list.iter()
                    .find(|entry| entry["fulfillmentChannelCode"] == "DEFAULT")
            })
            .and_then(|entry| entry["quantity"].as_i64());
        Ok(ReadValue {
            key: key.clone(),
            quantity,
        })
    }

    /// One feed operation, retried on transient failures and throttling.
    async fn feed_call(
        &self,
        rate: &Gcra,
        operation: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Answer, AdapterError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            rate.acquire().await;
            let _probe = rate.clear().await;
            let outcome = match http::send(build(), self.body_max).await {
                Ok(answer) if answer.status.is_success() => {
                    rate.succeeded();
                    return Ok(answer);
                }
                Ok(answer) => self.error(&answer, rate),
                Err(failure) => failure,
            };
            let retryable = matches!(
                outcome.kind,
                FailureKind::Throttled | FailureKind::Transient
            );
            if !retryable || attempts >= FEED_ATTEMPTS_MAX {
                return Err(AdapterError::new(
                    outcome.code,
                    format!("{operation}: {}", outcome.message),
                ));
            }
            let wait = outcome
                .retry_after
                .unwrap_or(Duration::from_millis(500) * 2u32.pow(attempts));
            tokio::time::sleep(wait).await;
        }
    }

    fn feed_document(&self, items: &[BulkItem]) -> Json {
        let messages: Vec<Json> = items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                json!({"messageId": index + 1, "sku": item.key.sku.as_str(), "operationType": "PATCH",
                       "productType": self.product_type, "patches": Self::availability(item.quantity)})
            })
            .collect();
        json!({"header": {"sellerId": self.seller_id, "version": "2.0", "issueLocale": "en_US"},
               "messages": messages})
    }

    /// Sends one feed of at most `messages_max` items and waits for its report.
    async fn run_feed(&self, items: &[BulkItem]) -> Result<Vec<EntryOutcome>, AdapterError> {
        let token = self.token.expose();
        let document = self
            .feed_call(&self.create_document_rate, "createFeedDocument", || {
                self.client
                    .post(self.api_url(&["feeds", "2021-06-30", "documents"]))
                    .header("x-amz-access-token", token)
                    .json(&json!({"contentType": FEED_CONTENT_TYPE}))
            })
            .await?;
        let document = document.json().unwrap_or(Json::Null);
        let (Some(document_id), Some(upload_url)) = (
            document["feedDocumentId"].as_str(),
            document["url"].as_str(),
        ) else {
            return Err(AdapterError::new(
                "invalid_response",
                "createFeedDocument answered without feedDocumentId and url",
            ));
        };
        let content = self.feed_document(items).to_string();
        // The upload URL is presigned: it takes no SP-API token.
        let upload = self
            .client
            .put(upload_url)
            .header("content-type", FEED_CONTENT_TYPE)
            .body(content);
        let uploaded = http::send(upload, self.body_max)
            .await
            .map_err(AdapterError::from)?;
        if !uploaded.status.is_success() {
            return Err(AdapterError::new(
                format!("http_{}", uploaded.status.as_u16()),
                "the feed document upload was refused",
            ));
        }
        let created = self
            .feed_call(&self.create_feed_rate, "createFeed", || {
                self.client
                    .post(self.api_url(&["feeds", "2021-06-30", "feeds"]))
                    .header("x-amz-access-token", token)
                    .json(&json!({"feedType": "JSON_LISTINGS_FEED", "marketplaceIds": self.marketplace_ids,
                                  "inputFeedDocumentId": document_id}))
            })
            .await?;
        let feed_id = created
            .json()
            .and_then(|b| b["feedId"].as_str().map(str::to_owned))
            .ok_or_else(|| AdapterError::new("invalid_response", "createFeed gave no feedId"))?;
        let report_id = self.wait_feed(&feed_id).await?;
        let report = self.download_report(&report_id).await?;
        Ok(outcomes_from_report(items.len(), &report))
    }

    /// Polls a feed until it is done; returns its result document id.
    async fn wait_feed(&self, feed_id: &str) -> Result<String, AdapterError> {
        let deadline = Instant::now() + Duration::from_millis(self.feeds.timeout_ms);
        let token = self.token.expose();
        loop {
            let answer = self
                .feed_call(&self.get_feed_rate, "getFeed", || {
                    self.client
                        .get(self.api_url(&["feeds", "2021-06-30", "feeds", feed_id]))
                        .header("x-amz-access-token", token)
                })
                .await?;
            let body = answer.json().unwrap_or(Json::Null);
            match body["processingStatus"].as_str() {
                Some("DONE") => {
                    return body["resultFeedDocumentId"]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            AdapterError::new("invalid_response", "DONE without a report")
                        });
                }
                Some("FATAL") => {
                    // The report says why; every message of the feed failed.
                    return match body["resultFeedDocumentId"].as_str() {
                        Some(id) => Ok(id.to_owned()),
                        None => Err(AdapterError::new("FATAL", "the feed failed")),
                    };
                }
                Some("CANCELLED") => {
                    return Err(AdapterError::new("CANCELLED", "the feed was cancelled"));
                }
                Some("IN_QUEUE" | "IN_PROGRESS") => {}
                _ => {
                    return Err(AdapterError::new(
                        "invalid_response",
                        format!("getFeed: {}", answer.snippet()),
                    ));
                }
            }
            if Instant::now() >= deadline {
                return Err(AdapterError::new(
                    "feed_timeout",
                    format!("feed {feed_id} did not finish"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(self.feeds.poll_interval_ms)).await;
        }
    }

    async fn download_report(&self, document_id: &str) -> Result<Json, AdapterError> {
        let token = self.token.expose();
        let answer = self
            .feed_call(&self.get_document_rate, "getFeedDocument", || {
                self.client
                    .get(self.api_url(&["feeds", "2021-06-30", "documents", document_id]))
                    .header("x-amz-access-token", token)
            })
            .await?;
        let body = answer.json().unwrap_or(Json::Null);
        if body["compressionAlgorithm"]
            .as_str()
            .is_some_and(|a| a != "NONE")
        {
            return Err(AdapterError::new(
                "unsupported_compression",
                "compressed feed reports are not read yet",
            ));
        }
        let url = body["url"]
            .as_str()
            .ok_or_else(|| AdapterError::new("invalid_response", "getFeedDocument gave no url"))?;
        let report = http::send(self.client.get(url), self.body_max)
            .await
            .map_err(AdapterError::from)?;
        report
            .json()
            .ok_or_else(|| AdapterError::new("invalid_response", "the feed report is not JSON"))
    }
}

/// Per message: refused when the report has an ERROR issue for it (or a FATAL for the feed).
fn outcomes_from_report(count: usize, report: &Json) -> Vec<EntryOutcome> {
    let mut outcomes = vec![EntryOutcome::Applied { quantity: 0 }; count];
    let issues = report["issues"].as_array().cloned().unwrap_or_default();
    for issue in issues {
        if issue["severity"] != "ERROR" {
            continue;
        }
        let code = issue["code"].as_str().unwrap_or("ERROR");
        let failure = Failure::new(
            FailureKind::Rejected,
            code,
            issue["message"].as_str().unwrap_or_default(),
        );
        match issue["messageId"].as_u64() {
            Some(id) if (1..=count as u64).contains(&id) => {
                outcomes[id as usize - 1] = EntryOutcome::Failed(failure);
            }
            // A feed-level issue: every message failed.
            _ => outcomes.fill(EntryOutcome::Failed(failure)),
        }
    }
    outcomes
}

impl ChannelAdapter for AmazonAdapter {
    fn place(&self, key: &SyncKey) -> Result<Placement, Failure> {
        if key.location.is_some() {
            return Err(Failure::new(
                FailureKind::Rejected,
                "location_not_supported",
                "Amazon takes one quantity per SKU; the channel must not be per location",
            ));
        }
        Ok(Placement {
            group: String::new(),
            unit: key.to_string(),
            companions: Vec::new(),
        })
    }

    fn units_per_call(&self) -> usize {
        1
    }

    fn acquire(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.patch_rate.acquire())
    }

    fn send(&self, batch: Batch) -> BoxFuture<'_, CallReport> {
        Box::pin(async move {
            let mut report = CallReport {
                sent_at: Some(Instant::now()),
                ..CallReport::default()
            };
            for (index, entry) in batch.entries.iter().enumerate() {
                if index > 0 {
                    self.patch_rate.acquire().await;
                }
                let quantity = entry.quantity.unwrap_or(0);
                let outcome = self
                    .patch(entry.key.sku.as_str(), quantity, &mut report)
                    .await;
                report.outcomes.push(outcome);
            }
            report
        })
    }

    fn read(&self, keys: Vec<SyncKey>) -> BoxFuture<'_, Result<Vec<ReadValue>, AdapterError>> {
        Box::pin(async move {
            let mut values = Vec::with_capacity(keys.len());
            for key in &keys {
                values.push(self.read_one(key).await.map_err(AdapterError::from)?);
            }
            Ok(values)
        })
    }

    fn verify_delay(&self) -> Duration {
        self.verify_delay
    }

    fn has_bulk_path(&self) -> bool {
        true
    }

    fn bulk_sync(
        &self,
        items: Vec<BulkItem>,
        progress: watch::Sender<FullSyncProgress>,
    ) -> BoxFuture<'_, Result<BulkOutcome, AdapterError>> {
        Box::pin(async move {
            let mut outcomes = Vec::with_capacity(items.len());
            for chunk in items.chunks(self.feeds.messages_max) {
                let mut chunk_outcomes = self.run_feed(chunk).await?;
                for (item, outcome) in chunk.iter().zip(chunk_outcomes.iter_mut()) {
                    if let EntryOutcome::Applied { quantity } = outcome {
                        *quantity = item.quantity;
                    }
                }
                let failed = chunk_outcomes
                    .iter()
                    .filter(|o| matches!(o, EntryOutcome::Failed(_)))
                    .count() as u64;
                progress.send_modify(|p| {
                    p.done += chunk.len() as u64 - failed;
                    p.failed += failed;
                });
                outcomes.extend(chunk_outcomes);
            }
            Ok(outcomes)
        })
    }
}
