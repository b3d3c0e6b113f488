//! A generic webhook, for channels without a dedicated adapter: a `POST` of JSON,
//!
//! ```json
//! {"channel": "outlet", "sent_at": 1795835000,
//!  "items": [{"sku": "SKU-1", "location": "east", "available_to_sell": 4,
//!             "position": 1234, "caused_at": "2026-11-28T01:00:00.123456Z"}]}
//! ```
//!
//! signed in `X-Stockflow-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`, with
//! `X-Stockflow-Timestamp: <sent_at>`. The signed body carries `sent_at`, so the timestamp is
//! part of what is signed: a receiver checks the signature over the raw body (in constant time),
//! then that `sent_at` equals the header and is within five minutes of its clock, and refuses a
//! replay otherwise; `(channel, sku, location, position)` identifies a value, and a value with a
//! lower `position` than one already applied for the key is stale. A 2xx answer acknowledges
//! every item; 429 and 5xx are retried (Retry-After honoured); other statuses keep the items
//! pending with `http_<status>` recorded.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value as Json, json};
use sha2::Sha256;
use stockflow_core::ids::ChannelId;
use tokio::time::Instant;

use crate::adapter::{
    AdapterError, Batch, CallReport, ChannelAdapter, EntryOutcome, Failure, FailureKind, Placement,
    ReadValue, SyncKey,
};
use crate::config::{Secret, WebhookConfig};
use crate::http;
use crate::pacing::Gcra;

/// The most items one delivery carries.
pub const ITEMS_PER_DELIVERY_MAX: usize = 10_000;

/// hex(HMAC-SHA256(secret, body)).
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub struct WebhookAdapter {
    channel: ChannelId,
    client: reqwest::Client,
    url: String,
    secret: Secret,
    signature_header: String,
    timestamp_header: String,
    body_max: usize,
    rate: Gcra,
}

impl std::fmt::Debug for WebhookAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookAdapter")
            .field("channel", &self.channel)
            .field("url", &self.url)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl WebhookAdapter {
    pub fn new(channel: ChannelId, config: &WebhookConfig) -> Result<Self, AdapterError> {
        Ok(Self {
            channel,
            client: http::client(&config.http)?,
            url: config.url.clone(),
            secret: config.secret.clone(),
            signature_header: config.signature_header.clone(),
            timestamp_header: config.timestamp_header.clone(),
            body_max: config.http.body_bytes_max,
            rate: Gcra::new(
                config.rate.per_second,
                config.rate.burst,
                Duration::from_millis(config.rate.margin_ms),
            ),
        })
    }

    fn body(&self, batch: &Batch, sent_at: u64) -> Json {
        let items: Vec<Json> = batch
            .entries
            .iter()
            .map(|entry| {
                json!({"sku": entry.key.sku, "location": entry.key.location,
                       "available_to_sell": entry.quantity.unwrap_or(0).max(0),
                       "position": entry.position, "caused_at": rfc3339(entry.caused_at.unix_micros())})
            })
            .collect();
        json!({"channel": self.channel, "sent_at": sent_at, "items": items})
    }

    async fn deliver(&self, batch: Batch) -> CallReport {
        let sent_at_instant = Instant::now();
        let sent_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let body = self.body(&batch, sent_at).to_string().into_bytes();
        let request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header(
                self.signature_header.as_str(),
                format!("sha256={}", signature(self.secret.expose(), &body)),
            )
            .header(self.timestamp_header.as_str(), sent_at.to_string())
            .body(body);
        let _probe = self.rate.clear().await;
        let result = http::send(request, self.body_max).await;
        let failure = match result {
            Ok(answer) if answer.status.is_success() => None,
            Ok(answer) => {
                let failure = http::status_failure(&answer, None, None);
                if failure.kind == FailureKind::Throttled {
                    let wait = failure.retry_after.unwrap_or(Duration::from_secs(1));
                    self.rate.hold_off(wait);
                }
                Some(failure)
            }
            Err(failure) => Some(failure),
        };
        let mut report = match &failure {
            None => {
                self.rate.succeeded();
                CallReport {
                    outcomes: batch
                        .entries
                        .iter()
                        .map(|e| EntryOutcome::Applied {
                            quantity: e.quantity.unwrap_or(0).max(0),
                        })
                        .collect(),
                    ..CallReport::default()
                }
            }
            Some(failure) => CallReport::all_failed(&batch, failure.clone()),
        };
        report.calls.push(http::label(failure.as_ref()));
        report.sent_at = Some(sent_at_instant);
        report
    }
}

/// RFC 3339 UTC, from Unix microseconds.
fn rfc3339(micros: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl ChannelAdapter for WebhookAdapter {
    fn place(&self, key: &SyncKey) -> Result<Placement, Failure> {
        Ok(Placement {
            group: String::new(),
            unit: key.to_string(),
            companions: Vec::new(),
        })
    }

    fn units_per_call(&self) -> usize {
        ITEMS_PER_DELIVERY_MAX
    }

    fn acquire(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.rate.acquire())
    }

    fn send(&self, batch: Batch) -> BoxFuture<'_, CallReport> {
        Box::pin(self.deliver(batch))
    }

    fn read(&self, _keys: Vec<SyncKey>) -> BoxFuture<'_, Result<Vec<ReadValue>, AdapterError>> {
        Box::pin(async {
            Err(AdapterError::new(
                "unsupported",
                "a webhook channel cannot be read back",
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_795_835_000_123_456),
            "2026-11-28T03:03:20.123456Z"
        );
        assert_eq!(
            signature("key", b"The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
