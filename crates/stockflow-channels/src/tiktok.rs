//! TikTok Shop Partner API 202309: `POST /product/202309/products/{product_id}/inventory/update`
//! and `POST /product/202309/inventory/search`, signed as TikTok documents it.
//!
//! - A call is one product: every SKU in it lists every warehouse it is stocked in (TikTok
//!   refuses a multi-warehouse SKU that does not, 12052037 / 12019028). The engine sends the
//!   other warehouses of a SKU along as companions with their newest known value; one nobody
//!   knows is read first (inventory search) and sent back unchanged.
//! - At most 100 SKUs of one product per call (12052050).
//! - Quantities are clamped to TikTok's 0..=99,999: never more than what may be sold.
//! - Errors keep TikTok's numeric code (`106001` signature, `36009002` rate limit, ...).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value as Json, json};
use sha2::Sha256;
use stockflow_core::ids::{LocationId, Sku};
use tokio::time::Instant;

use crate::adapter::{
    AdapterError, Batch, CallReport, ChannelAdapter, Entry, EntryOutcome, Failure, FailureKind,
    Placement, ReadValue, SyncKey,
};
use crate::config::{Secret, TIKTOK_SKUS_PER_CALL_MAX, TiktokConfig, TiktokItem};
use crate::http::{self, Answer};
use crate::pacing::Gcra;

/// TikTok's largest stock count.
pub const STOCK_MAX: i64 = 99_999;
const CODE_RATE_LIMITED: u64 = 36009002;
const CODE_INTERNAL: u64 = 36009003;
/// Query parameters that are not signed.
const UNSIGNED: [&str; 2] = ["sign", "access_token"];

/// TikTok's `sign`: sort the query parameters except `sign` and `access_token` by key, then
/// hex(HMAC-SHA256(app_secret, app_secret + path + k1v1k2v2... + body + app_secret)).
pub fn sign(app_secret: &str, path: &str, query: &[(String, String)], body: &[u8]) -> String {
    let mut pairs: Vec<&(String, String)> = query
        .iter()
        .filter(|(key, _)| !UNSIGNED.contains(&key.as_str()))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(app_secret.as_bytes());
    mac.update(path.as_bytes());
    for (key, value) in pairs {
        mac.update(key.as_bytes());
        mac.update(value.as_bytes());
    }
    mac.update(body);
    mac.update(app_secret.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Adapter for one TikTok shop.
pub struct TiktokAdapter {
    client: reqwest::Client,
    base_url: String,
    app_key: String,
    app_secret: Secret,
    token: Secret,
    shop_cipher: String,
    body_max: usize,
    warehouses: BTreeMap<LocationId, String>,
    items: Mutex<HashMap<Sku, TiktokItem>>,
    product_ids: Vec<String>,
    looked_up: Mutex<bool>,
    rate: Gcra,
}

impl std::fmt::Debug for TiktokAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiktokAdapter")
            .field("base_url", &self.base_url)
            .field("app_key", &self.app_key)
            .field("app_secret", &self.app_secret)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl TiktokAdapter {
    pub fn new(config: &TiktokConfig) -> Result<Self, AdapterError> {
        Ok(Self {
            client: http::client(&config.http)?,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            app_key: config.app_key.clone(),
            app_secret: config.app_secret.clone(),
            token: config.access_token.clone(),
            shop_cipher: config.shop_cipher.clone(),
            body_max: config.http.body_bytes_max,
            warehouses: config.locations.clone(),
            items: Mutex::new(config.items.clone().into_iter().collect()),
            product_ids: config.product_ids.clone(),
            looked_up: Mutex::new(false),
            rate: Gcra::new(
                config.rate.per_second,
                config.rate.burst,
                Duration::from_millis(config.rate.margin_ms),
            ),
        })
    }

    /// A signed POST of `body` to `path`.
    fn signed(&self, path: &str, body: &[u8], timestamp: u64) -> reqwest::RequestBuilder {
        let mut query = vec![
            ("app_key".to_owned(), self.app_key.clone()),
            ("shop_cipher".to_owned(), self.shop_cipher.clone()),
            ("timestamp".to_owned(), timestamp.to_string()),
        ];
        let signature = sign(self.app_secret.expose(), path, &query, body);
        query.push(("sign".to_owned(), signature));
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base_url))
            .expect("base URL validated at configuration");
        url.query_pairs_mut().extend_pairs(query);
        self.client
            .post(url)
            .header("x-tts-access-token", self.token.expose())
            .header("content-type", "application/json")
            .body(body.to_vec())
    }

    /// One signed call, paced (`acquired`: the engine already took this call's share).
    async fn call(&self, path: &str, body: &Json, acquired: bool) -> Result<Json, Failure> {
        if !acquired {
            self.rate.acquire().await;
        }
        let body = body.to_string().into_bytes();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let request = self.signed(path, &body, timestamp);
        let _probe = self.rate.clear().await;
        let answer = http::send(request, self.body_max).await?;
        let envelope = answer.json();
        let code = envelope.as_ref().and_then(|e| e["code"].as_u64());
        match code {
            Some(0) if answer.status.is_success() => {
                self.rate.succeeded();
                Ok(envelope.expect("parsed")["data"].clone())
            }
            Some(code) => Err(self.failure(&answer, code, envelope.as_ref())),
            None if answer.status.is_success() => Err(http::invalid_answer(path, &answer)),
            None => Err(http::status_failure(&answer, None, None)),
        }
    }

    fn failure(&self, answer: &Answer, code: u64, envelope: Option<&Json>) -> Failure {
        let message = envelope
            .and_then(|e| e["message"].as_str())
            .unwrap_or_default()
            .to_owned();
        let kind = if code == CODE_RATE_LIMITED || answer.status.as_u16() == 429 {
            FailureKind::Throttled
        } else if code == CODE_INTERNAL || answer.status.is_server_error() {
            FailureKind::Transient
        } else {
            FailureKind::Rejected
        };
        let mut failure = Failure::new(kind, code.to_string(), message);
        if kind == FailureKind::Throttled {
            let wait = answer
                .retry_after()
                .unwrap_or(self.rate.interval().max(Duration::from_secs(1)));
            self.rate.hold_off(wait);
            failure.retry_after = Some(wait);
        }
        failure
    }

    /// Learns the SKUs of the configured products (seller SKU -> product and SKU ids), once.
    async fn look_up(&self) -> Result<(), Failure> {
        if self.product_ids.is_empty() || *self.looked_up.lock().unwrap() {
            return Ok(());
        }
        for chunk in self.product_ids.chunks(100) {
            let data = self
                .call(
                    "/product/202309/inventory/search",
                    &json!({"product_ids": chunk}),
                    false,
                )
                .await?;
            let mut items = self.items.lock().unwrap();
            for product in data["inventory"].as_array().into_iter().flatten() {
                let Some(product_id) = product["product_id"].as_str() else {
                    continue;
                };
                for sku in product["skus"].as_array().into_iter().flatten() {
                    let (Some(id), Some(seller_sku)) =
                        (sku["id"].as_str(), sku["seller_sku"].as_str())
                    else {
                        continue;
                    };
                    if let Ok(seller_sku) = Sku::parse(seller_sku) {
                        items.entry(seller_sku).or_insert(TiktokItem {
                            product_id: product_id.to_owned(),
                            sku_id: id.to_owned(),
                        });
                    }
                }
            }
        }
        *self.looked_up.lock().unwrap() = true;
        Ok(())
    }

    fn item(&self, sku: &Sku) -> Option<TiktokItem> {
        self.items.lock().unwrap().get(sku).cloned()
    }

    fn unknown_sku(sku: &Sku) -> Failure {
        Failure::new(
            FailureKind::Rejected,
            "unknown_sku",
            format!("no TikTok product and SKU id for {sku}"),
        )
    }

    /// Reads the warehouses' available quantities of these SKUs.
    async fn search(&self, skus: &[Sku]) -> Result<Vec<ReadValue>, Failure> {
        self.look_up().await?;
        let known: Vec<(Sku, TiktokItem)> = skus
            .iter()
            .filter_map(|sku| self.item(sku).map(|item| (sku.clone(), item)))
            .collect();
        let mut values = Vec::new();
        for chunk in known.chunks(100) {
            let ids: Vec<&str> = chunk.iter().map(|(_, item)| item.sku_id.as_str()).collect();
            let data = self
                .call(
                    "/product/202309/inventory/search",
                    &json!({"sku_ids": ids}),
                    false,
                )
                .await?;
            for product in data["inventory"].as_array().into_iter().flatten() {
                for sku in product["skus"].as_array().into_iter().flatten() {
                    let Some((ours, _)) = chunk
                        .iter()
                        .find(|(_, item)| sku["id"].as_str() == Some(item.sku_id.as_str()))
                    else {
                        continue;
                    };
                    for stock in sku["warehouse_inventory"].as_array().into_iter().flatten() {
                        let warehouse = stock["warehouse_id"].as_str().unwrap_or_default();
                        for (location, mapped) in &self.warehouses {
                            if mapped == warehouse {
                                values.push(ReadValue {
                                    key: SyncKey::new(ours.clone(), Some(location.clone())),
                                    quantity: stock["available_quantity"].as_i64(),
                                });
                            }
                        }
                    }
                }
            }
        }
        Ok(values)
    }

    async fn send_batch(&self, mut batch: Batch) -> CallReport {
        let mut report = CallReport {
            sent_at: Some(Instant::now()),
            ..CallReport::default()
        };
        if let Err(failure) = self.fill_unknown(&mut batch.entries, &mut report).await {
            return CallReport {
                calls: report.calls,
                sent_at: report.sent_at,
                ..CallReport::all_failed(&batch, failure)
            };
        }
        let Some(product) = batch.entries.first().and_then(|e| self.item(&e.key.sku)) else {
            let sku = &batch.entries[0].key.sku;
            return CallReport {
                calls: report.calls,
                ..CallReport::all_failed(&batch, Self::unknown_sku(sku))
            };
        };
        let body = self.update_body(&batch.entries);
        let path = format!(
            "/product/202309/products/{}/inventory/update",
            product.product_id
        );
        match self.call(&path, &body, true).await {
            Ok(_) => {
                report.calls.push("ok");
                report.outcomes = batch
                    .entries
                    .iter()
                    .map(|e| EntryOutcome::Applied {
                        quantity: clamp(e.quantity.unwrap_or(0)),
                    })
                    .collect();
            }
            Err(failure) => {
                report.calls.push(http::label(Some(&failure)));
                report.outcomes = vec![EntryOutcome::Failed(failure); batch.entries.len()];
            }
        }
        report
    }

    /// Reads companions whose value nobody knows, so that they are sent back unchanged.
    async fn fill_unknown(
        &self,
        entries: &mut [Entry],
        report: &mut CallReport,
    ) -> Result<(), Failure> {
        let unknown: Vec<Sku> = entries
            .iter()
            .filter(|e| e.quantity.is_none() || self.item(&e.key.sku).is_none())
            .map(|e| e.key.sku.clone())
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let values = self.search(&unknown).await?;
        report.calls.push("ok");
        for entry in entries.iter_mut().filter(|e| e.quantity.is_none()) {
            let found = values
                .iter()
                .find(|v| v.key == entry.key)
                .and_then(|v| v.quantity);
            match found {
                Some(found) => entry.quantity = Some(found),
                None => return Err(Self::unknown_sku(&entry.key.sku)),
            }
        }
        Ok(())
    }

    /// `{"skus": [{"id", "inventory": [{"warehouse_id", "quantity"}]}]}`, one SKU per entry
    /// group, in the order the entries came.
    fn update_body(&self, entries: &[Entry]) -> Json {
        let mut skus: Vec<(String, Vec<Json>)> = Vec::new();
        for entry in entries {
            let Some(item) = self.item(&entry.key.sku) else {
                continue;
            };
            let warehouse = entry
                .key
                .location
                .as_ref()
                .and_then(|l| self.warehouses.get(l))
                .cloned()
                .unwrap_or_default();
            let stock =
                json!({"warehouse_id": warehouse, "quantity": clamp(entry.quantity.unwrap_or(0))});
            match skus.iter_mut().find(|(id, _)| *id == item.sku_id) {
                Some((_, inventory)) => inventory.push(stock),
                None => skus.push((item.sku_id, vec![stock])),
            }
        }
        let skus: Vec<Json> = skus
            .into_iter()
            .map(|(id, inventory)| json!({"id": id, "inventory": inventory}))
            .collect();
        json!({ "skus": skus })
    }
}

fn clamp(quantity: i64) -> i64 {
    quantity.clamp(0, STOCK_MAX)
}

impl ChannelAdapter for TiktokAdapter {
    fn place(&self, key: &SyncKey) -> Result<Placement, Failure> {
        let location = key.location.as_ref().ok_or_else(|| {
            Failure::new(
                FailureKind::Rejected,
                "location_required",
                "TikTok is told per warehouse; the change named no location",
            )
        })?;
        if !self.warehouses.contains_key(location) {
            return Err(Failure::new(
                FailureKind::Rejected,
                "unmapped_location",
                format!("location {location} has no TikTok warehouse in the configuration"),
            ));
        }
        let companions = self
            .warehouses
            .keys()
            .filter(|other| *other != location)
            .map(|other| SyncKey::new(key.sku.clone(), Some(other.clone())))
            .collect();
        let (group, unit) = match self.item(&key.sku) {
            Some(item) => (item.product_id, item.sku_id),
            // Not looked up yet: sent on its own; the call looks it up.
            None if !self.product_ids.is_empty() => {
                (format!("?{}", key.sku), format!("?{}", key.sku))
            }
            None => return Err(Self::unknown_sku(&key.sku)),
        };
        Ok(Placement {
            group,
            unit,
            companions,
        })
    }

    fn units_per_call(&self) -> usize {
        TIKTOK_SKUS_PER_CALL_MAX
    }

    fn acquire(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.rate.acquire())
    }

    fn send(&self, batch: Batch) -> BoxFuture<'_, CallReport> {
        Box::pin(self.send_batch(batch))
    }

    fn read(&self, keys: Vec<SyncKey>) -> BoxFuture<'_, Result<Vec<ReadValue>, AdapterError>> {
        Box::pin(async move {
            let mut skus: Vec<Sku> = keys.iter().map(|k| k.sku.clone()).collect();
            skus.sort();
            skus.dedup();
            let values = self.search(&skus).await.map_err(AdapterError::from)?;
            Ok(keys
                .into_iter()
                .map(|key| ReadValue {
                    quantity: values
                        .iter()
                        .find(|v| v.key == key)
                        .and_then(|v| v.quantity),
                    key,
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_sorted_parameters_without_sign_and_access_token() {
        let query = vec![
            ("timestamp".to_owned(), "1700000000".to_owned()),
            ("app_key".to_owned(), "k".to_owned()),
            ("sign".to_owned(), "x".to_owned()),
            ("access_token".to_owned(), "t".to_owned()),
        ];
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(b"secret/p/1app_keyktimestamp1700000000{}secret");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(sign("secret", "/p/1", &query, b"{}"), expected);
    }
}
