//! Delivery of opened and resolved alerts to a webhook, with a Slack-compatible body
//! (`{"text": ..., "blocks": [...]}`, which Slack's incoming webhooks take as is).
//!
//! One task per target, fed through a bounded queue (a full queue drops the newest transition
//! and counts it, so that a dead receiver never holds the evaluation). Each delivery is retried
//! with exponential backoff (`backoff_base_ms` doubling up to `backoff_cap_ms`) on a transport
//! error, a timeout, a 429 or a 5xx, up to `attempts_max` attempts; other answers are final.

use crate::wire::format_time;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use stockflow_core::alerts::{Alert, Transition};
use tokio::sync::mpsc;

/// One `[[alerts.webhooks]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    pub url: String,
    #[serde(default = "defaults::attempts_max")]
    pub attempts_max: u32,
    #[serde(default = "defaults::backoff_base_ms")]
    pub backoff_base_ms: u64,
    #[serde(default = "defaults::backoff_cap_ms")]
    pub backoff_cap_ms: u64,
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    /// Transitions waiting to be delivered at most.
    #[serde(default = "defaults::queue_max")]
    pub queue_max: usize,
}

mod defaults {
    pub fn attempts_max() -> u32 {
        8
    }
    pub fn backoff_base_ms() -> u64 {
        500
    }
    pub fn backoff_cap_ms() -> u64 {
        60_000
    }
    pub fn timeout_ms() -> u64 {
        5_000
    }
    pub fn queue_max() -> usize {
        1_000
    }
}

impl WebhookTarget {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            attempts_max: defaults::attempts_max(),
            backoff_base_ms: defaults::backoff_base_ms(),
            backoff_cap_ms: defaults::backoff_cap_ms(),
            timeout_ms: defaults::timeout_ms(),
            queue_max: defaults::queue_max(),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!(
                "alerts.webhooks: {:?} is not an http(s) URL",
                self.url
            ));
        }
        if self.attempts_max == 0 || self.queue_max == 0 || self.backoff_base_ms == 0 {
            return Err(
                "alerts.webhooks: attempts_max, queue_max and backoff_base_ms must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }

    /// The wait before attempt `attempt` (2, 3, ...): base x 2^(attempt-2), capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u64 << attempt.saturating_sub(2).min(20);
        Duration::from_millis(
            self.backoff_base_ms
                .saturating_mul(factor)
                .min(self.backoff_cap_ms),
        )
    }
}

/// Counters of one target, for `GET /v1/alerts`.
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub retries: AtomicU64,
    pub dropped: AtomicU64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryStats {
    pub url: String,
    pub delivered: u64,
    pub failed: u64,
    pub retries: u64,
    pub dropped: u64,
}

/// One target: its queue and counters; [`Delivery::start`] runs it.
pub struct Delivery {
    target: WebhookTarget,
    sender: mpsc::Sender<Transition>,
    receiver: std::sync::Mutex<Option<mpsc::Receiver<Transition>>>,
    counters: Arc<DeliveryCounters>,
}

impl Delivery {
    pub fn new(target: &WebhookTarget) -> Self {
        let (sender, receiver) = mpsc::channel(target.queue_max.max(1));
        Self {
            target: target.clone(),
            sender,
            receiver: std::sync::Mutex::new(Some(receiver)),
            counters: Arc::default(),
        }
    }

    pub fn offer(&self, transition: &Transition) {
        if self.sender.try_send(transition.clone()).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> DeliveryStats {
        let c = &self.counters;
        DeliveryStats {
            url: redact(&self.target.url),
            delivered: c.delivered.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    pub fn start(
        &self,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let receiver = self
            .receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let target = self.target.clone();
        let counters = self.counters.clone();
        tokio::spawn(async move {
            let Some(mut receiver) = receiver else { return };
            // reqwest is built without a default TLS provider; the binary installs ring at
            // start, a server started as a library may not have.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = match reqwest::Client::builder()
                .timeout(Duration::from_millis(target.timeout_ms))
                .build()
            {
                Ok(client) => client,
                Err(error) => {
                    tracing::error!(%error, "alerts: no HTTP client for the webhooks");
                    return;
                }
            };
            loop {
                let transition = tokio::select! {
                    transition = receiver.recv() => match transition {
                        Some(transition) => transition,
                        None => return,
                    },
                    _ = stop.wait_for(|stopped| *stopped) => return,
                };
                deliver(
                    &client,
                    &target,
                    &counters,
                    &slack_body(&transition),
                    &mut stop,
                )
                .await;
            }
        })
    }
}

/// Only the scheme and host of a URL are shown (webhook paths carry secrets).
fn redact(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.split('/').next().unwrap_or("");
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    format!("{scheme}://{host}/...")
}

async fn deliver(
    client: &reqwest::Client,
    target: &WebhookTarget,
    counters: &DeliveryCounters,
    body: &Value,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) {
    for attempt in 1..=target.attempts_max {
        if attempt > 1 {
            counters.retries.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(target.backoff(attempt)) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
        let retry = match client.post(&target.url).json(body).send().await {
            Ok(response) if response.status().is_success() => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(response) => {
                let status = response.status();
                tracing::warn!(%status, attempt, url = %redact(&target.url), "alert webhook refused");
                status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            }
            Err(error) => {
                tracing::warn!(%error, attempt, url = %redact(&target.url), "alert webhook unreachable");
                true
            }
        };
        if !retry {
            break;
        }
    }
    counters.failed.fetch_add(1, Ordering::Relaxed);
}

/// The Slack-compatible body of a transition.
pub fn slack_body(transition: &Transition) -> Value {
    let (verb, alert) = match transition {
        Transition::Opened(alert) => ("opened", alert),
        Transition::Resolved(alert) => ("resolved", alert),
    };
    let icon = if verb == "opened" {
        ":rotating_light:"
    } else {
        ":white_check_mark:"
    };
    let text = format!(
        "{icon} Alert {verb}: {} on {}: {}",
        alert.rule.name(),
        alert.subject,
        alert.summary
    );
    json!({
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": format!("Alert {verb}: {}", alert.rule.name())}},
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*\n{}", alert.subject, alert.summary)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context(alert)}]},
        ],
    })
}

fn context(alert: &Alert) -> String {
    let mut text = format!(
        "alert {} · opened {} · value {:.3} (threshold {:.3}, peak {:.3})",
        alert.id,
        format_time(alert.opened_at),
        alert.value,
        alert.threshold,
        alert.peak_value
    );
    if let Some(resolved_at) = alert.resolved_at {
        text.push_str(&format!(" · resolved {}", format_time(resolved_at)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let mut target = WebhookTarget::new("http://127.0.0.1:1/hook");
        target.backoff_base_ms = 100;
        target.backoff_cap_ms = 500;
        let waits: Vec<u128> = (2..=6).map(|a| target.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert!(WebhookTarget::new("ftp://x").validate().is_err());
    }

    #[test]
    fn the_url_shown_keeps_no_path() {
        assert_eq!(
            redact("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/..."
        );
    }
}
