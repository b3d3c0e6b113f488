//! Configuration of the channels, as the server's TOML holds it:
//!
//! ```toml
//! [channels.shop]
//! kind = "shopify"
//! base_url = "https://example.myshopify.com"
//! access_token = "env:SHOPIFY_TOKEN"      # a literal, or env:NAME to read it from the environment
//! locations = { east = "gid://shopify/Location/70001" }
//! sync = { latency_budget_ms = 1000, batch_linger_ms = 100 }
//! retry = { attempts_max = 6 }
//! http = { request_timeout_ms = 10000 }
//! ```
//!
//! Every kind takes `tenant`, `sync`, `retry` and `http`; the rest is the platform's. Defaults
//! follow CHANNELS.md (Amazon 5 requests/s with a burst of 5, Shopify's Standard bucket, at most
//! 250 Shopify quantities, 100 TikTok SKUs per product). [`ChannelConfig::validate`] says what is
//! wrong in words that name the channel and the field.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};
use stockflow_core::ids::{ChannelId, LocationId, Sku, TenantId};

/// Shopify's most quantities per `inventorySetQuantities`.
pub const SHOPIFY_QUANTITIES_PER_CALL_MAX: usize = 250;
/// TikTok's most SKUs of one product per inventory update.
pub const TIKTOK_SKUS_PER_CALL_MAX: usize = 100;
/// Amazon's most messages per JSON_LISTINGS_FEED.
pub const AMAZON_FEED_MESSAGES_MAX: usize = 10_000;

/// A credential. Never printed: `Debug` shows `Secret(redacted)`, and there is no `Display` or
/// `Serialize`. In configuration it is a literal or `env:NAME`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.strip_prefix("env:") {
            Some(name) => std::env::var(name).map(Secret).map_err(|_| {
                serde::de::Error::custom(format!("environment variable {name} is not set"))
            }),
            None => Ok(Secret(text)),
        }
    }
}

/// Every configured channel, by id.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    #[serde(default)]
    pub channels: BTreeMap<ChannelId, ChannelConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChannelConfig {
    Shopify(ShopifyConfig),
    Amazon(AmazonConfig),
    Tiktok(TiktokConfig),
    Webhook(WebhookConfig),
}

/// The engine's settings for one channel (queue, batching, latency).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    /// Most keys waiting at once; a new key beyond it is refused with a counted error.
    pub pending_max: Option<usize>,
    /// Most keys remembered (what each channel shows).
    pub keys_max: Option<usize>,
    /// Most units per call (entries; TikTok SKUs of one product; webhook items).
    pub batch_max: Option<usize>,
    /// The longest a change may wait for a fuller batch; never above the latency budget.
    pub batch_linger_ms: Option<u64>,
    /// The propagation latency aimed for; the linger is bounded by it.
    pub latency_budget_ms: Option<u64>,
    /// Calls in flight at once.
    pub in_flight_max: Option<usize>,
}

/// Resolved engine settings of one channel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EngineSettings {
    pub pending_max: usize,
    pub keys_max: usize,
    pub batch_max: usize,
    pub batch_linger_ms: u64,
    pub latency_budget_ms: u64,
    pub in_flight_max: usize,
}

impl SyncSettings {
    fn resolve(&self, defaults: EngineSettings) -> EngineSettings {
        EngineSettings {
            pending_max: self.pending_max.unwrap_or(defaults.pending_max),
            keys_max: self.keys_max.unwrap_or(defaults.keys_max),
            batch_max: self.batch_max.unwrap_or(defaults.batch_max),
            batch_linger_ms: self.batch_linger_ms.unwrap_or(defaults.batch_linger_ms),
            latency_budget_ms: self.latency_budget_ms.unwrap_or(defaults.latency_budget_ms),
            in_flight_max: self.in_flight_max.unwrap_or(defaults.in_flight_max),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Failures in a row retried with exponential backoff; then the slow cadence.
    pub attempts_max: u32,
    pub base_ms: u64,
    pub cap_ms: u64,
    /// The cadence of an entry whose attempt series is used up, or that the platform refused.
    pub slow_interval_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            attempts_max: 6,
            base_ms: 250,
            cap_ms: 30_000,
            slow_interval_ms: 60_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    pub connect_timeout_ms: u64,
    /// The whole call, answer included.
    pub request_timeout_ms: u64,
    /// Larger answers are refused (and the call counted as invalid).
    pub body_bytes_max: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 3_000,
            request_timeout_ms: 10_000,
            body_bytes_max: 4 << 20,
        }
    }
}

/// A request rate with a burst.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateSettings {
    pub per_second: f64,
    pub burst: u32,
    /// Added to each request's share of the rate, so that requests that leave evenly paced but
    /// arrive bunched up still fit.
    #[serde(default = "default_margin_ms")]
    pub margin_ms: u64,
}

fn default_margin_ms() -> u64 {
    5
}

impl RateSettings {
    pub const fn new(per_second: f64, burst: u32) -> Self {
        Self {
            per_second,
            burst,
            margin_ms: 5,
        }
    }
}

fn default_tenant() -> TenantId {
    TenantId::default_tenant()
}

fn default_shopify_version() -> String {
    "2026-04".into()
}

fn default_reason() -> String {
    "correction".into()
}

fn default_product_type() -> String {
    "PRODUCT".into()
}

/// Shopify's cost bucket as the plan sets it (Standard: 2,000 points, 100 per second); the
/// answers' `throttleStatus` corrects it at run time.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CostSettings {
    pub maximum: f64,
    pub restore_per_second: f64,
    /// The least wait after a THROTTLED answer without Retry-After.
    #[serde(default = "default_throttle_wait_min_ms")]
    pub throttle_wait_min_ms: u64,
}

fn default_throttle_wait_min_ms() -> u64 {
    1_000
}

impl Default for CostSettings {
    fn default() -> Self {
        Self {
            maximum: 2_000.0,
            restore_per_second: 100.0,
            throttle_wait_min_ms: default_throttle_wait_min_ms(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopifyConfig {
    #[serde(default = "default_tenant")]
    pub tenant: TenantId,
    /// The shop's admin origin (`https://<shop>.myshopify.com`).
    pub base_url: String,
    #[serde(default = "default_shopify_version")]
    pub api_version: String,
    pub access_token: Secret,
    /// Our location -> Shopify location gid.
    pub locations: BTreeMap<LocationId, String>,
    /// SKU -> inventory item gid; SKUs not listed are looked up by `sku:` and cached.
    #[serde(default)]
    pub items: BTreeMap<Sku, String>,
    #[serde(default)]
    pub cost: CostSettings,
    /// The `reason` of every quantity set.
    #[serde(default = "default_reason")]
    pub reason: String,
    #[serde(default)]
    pub sync: SyncSettings,
    #[serde(default)]
    pub retry: RetrySettings,
    #[serde(default)]
    pub http: HttpSettings,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmazonConfig {
    #[serde(default = "default_tenant")]
    pub tenant: TenantId,
    /// The SP-API endpoint (`https://sellingpartnerapi-na.amazon.com`).
    pub base_url: String,
    pub seller_id: String,
    pub marketplace_ids: Vec<String>,
    #[serde(default = "default_product_type")]
    pub product_type: String,
    pub access_token: Secret,
    /// patchListingsItem: 5/s, burst 5.
    #[serde(default = "amazon_patch_rate")]
    pub rate: RateSettings,
    /// getListingsItem: 5/s, burst 10.
    #[serde(default = "amazon_read_rate")]
    pub read_rate: RateSettings,
    /// How long after ACCEPTED to read the value back.
    #[serde(default = "amazon_verify_delay_ms")]
    pub verify_delay_ms: u64,
    /// How long a read-back below what was sent is taken for an order not ingested yet before it
    /// is repaired upward.
    #[serde(default = "amazon_order_grace_ms")]
    pub order_grace_ms: u64,
    #[serde(default)]
    pub feeds: FeedSettings,
    #[serde(default)]
    pub sync: SyncSettings,
    #[serde(default)]
    pub retry: RetrySettings,
    #[serde(default)]
    pub http: HttpSettings,
}

fn amazon_patch_rate() -> RateSettings {
    RateSettings::new(5.0, 5)
}

fn amazon_read_rate() -> RateSettings {
    RateSettings::new(5.0, 10)
}

fn amazon_verify_delay_ms() -> u64 {
    120_000
}

fn amazon_order_grace_ms() -> u64 {
    600_000
}

/// The Feeds API, for a first full sync.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FeedSettings {
    pub messages_max: usize,
    /// How often a feed's processing status is read.
    pub poll_interval_ms: u64,
    /// How long a feed may take before the sync gives up on it.
    pub timeout_ms: u64,
    pub create_feed_rate: RateSettings,
    pub create_document_rate: RateSettings,
    pub get_feed_rate: RateSettings,
    pub get_document_rate: RateSettings,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            messages_max: AMAZON_FEED_MESSAGES_MAX,
            poll_interval_ms: 30_000,
            timeout_ms: 4 * 3_600_000,
            create_feed_rate: RateSettings::new(1.0 / 120.0, 15),
            create_document_rate: RateSettings::new(0.5, 15),
            get_feed_rate: RateSettings::new(2.0, 15),
            get_document_rate: RateSettings::new(0.0222, 10),
        }
    }
}

/// A TikTok SKU's ids.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TiktokItem {
    pub product_id: String,
    pub sku_id: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TiktokConfig {
    #[serde(default = "default_tenant")]
    pub tenant: TenantId,
    /// `https://open-api.tiktokglobalshop.com`.
    pub base_url: String,
    pub app_key: String,
    pub app_secret: Secret,
    pub access_token: Secret,
    pub shop_cipher: String,
    /// Our location -> TikTok warehouse id.
    pub locations: BTreeMap<LocationId, String>,
    /// SKU -> product and SKU ids.
    #[serde(default)]
    pub items: BTreeMap<Sku, TiktokItem>,
    /// Products whose SKUs are looked up (by seller SKU) through the inventory search.
    #[serde(default)]
    pub product_ids: Vec<String>,
    /// Not published by TikTok.
    #[serde(default = "tiktok_rate")]
    pub rate: RateSettings,
    #[serde(default)]
    pub sync: SyncSettings,
    #[serde(default)]
    pub retry: RetrySettings,
    #[serde(default)]
    pub http: HttpSettings,
}

fn tiktok_rate() -> RateSettings {
    RateSettings::new(10.0, 10)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[serde(default = "default_tenant")]
    pub tenant: TenantId,
    /// Where changes are posted.
    pub url: String,
    pub secret: Secret,
    #[serde(default = "webhook_signature_header")]
    pub signature_header: String,
    #[serde(default = "webhook_timestamp_header")]
    pub timestamp_header: String,
    #[serde(default = "webhook_rate")]
    pub rate: RateSettings,
    #[serde(default)]
    pub sync: SyncSettings,
    #[serde(default)]
    pub retry: RetrySettings,
    #[serde(default)]
    pub http: HttpSettings,
}

fn webhook_signature_header() -> String {
    "X-Stockflow-Signature".into()
}

fn webhook_timestamp_header() -> String {
    "X-Stockflow-Timestamp".into()
}

fn webhook_rate() -> RateSettings {
    RateSettings::new(20.0, 20)
}

/// What is wrong with a channel's configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("channel '{channel}': {field}: {message}")]
pub struct ConfigError {
    pub channel: String,
    pub field: String,
    pub message: String,
}

impl ChannelConfig {
    pub fn tenant(&self) -> &TenantId {
        match self {
            ChannelConfig::Shopify(c) => &c.tenant,
            ChannelConfig::Amazon(c) => &c.tenant,
            ChannelConfig::Tiktok(c) => &c.tenant,
            ChannelConfig::Webhook(c) => &c.tenant,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            ChannelConfig::Shopify(_) => "shopify",
            ChannelConfig::Amazon(_) => "amazon",
            ChannelConfig::Tiktok(_) => "tiktok",
            ChannelConfig::Webhook(_) => "webhook",
        }
    }

    pub fn retry(&self) -> &RetrySettings {
        match self {
            ChannelConfig::Shopify(c) => &c.retry,
            ChannelConfig::Amazon(c) => &c.retry,
            ChannelConfig::Tiktok(c) => &c.retry,
            ChannelConfig::Webhook(c) => &c.retry,
        }
    }

    pub fn http(&self) -> &HttpSettings {
        match self {
            ChannelConfig::Shopify(c) => &c.http,
            ChannelConfig::Amazon(c) => &c.http,
            ChannelConfig::Tiktok(c) => &c.http,
            ChannelConfig::Webhook(c) => &c.http,
        }
    }

    /// The engine settings, with this kind's defaults for what is not given.
    pub fn engine(&self) -> EngineSettings {
        let base = EngineSettings {
            pending_max: 100_000,
            keys_max: 1_000_000,
            batch_max: 1,
            batch_linger_ms: 0,
            latency_budget_ms: 1_000,
            in_flight_max: 4,
        };
        let (settings, defaults) = match self {
            ChannelConfig::Shopify(c) => (
                &c.sync,
                EngineSettings {
                    batch_max: SHOPIFY_QUANTITIES_PER_CALL_MAX,
                    batch_linger_ms: 100,
                    in_flight_max: 2,
                    ..base
                },
            ),
            ChannelConfig::Amazon(c) => (
                &c.sync,
                EngineSettings {
                    latency_budget_ms: 2_000,
                    in_flight_max: 5,
                    ..base
                },
            ),
            ChannelConfig::Tiktok(c) => (
                &c.sync,
                EngineSettings {
                    batch_max: TIKTOK_SKUS_PER_CALL_MAX,
                    batch_linger_ms: 100,
                    ..base
                },
            ),
            ChannelConfig::Webhook(c) => (
                &c.sync,
                EngineSettings {
                    batch_max: 50,
                    batch_linger_ms: 50,
                    ..base
                },
            ),
        };
        settings.resolve(defaults)
    }

    /// Checks everything that can be checked without calling the platform.
    pub fn validate(&self, channel: &ChannelId) -> Result<(), ConfigError> {
        let error = |field: &str, message: String| ConfigError {
            channel: channel.to_string(),
            field: field.to_owned(),
            message,
        };
        self.validate_engine(&error)?;
        self.validate_retry_and_http(&error)?;
        match self {
            ChannelConfig::Shopify(c) => validate_shopify(c, &error),
            ChannelConfig::Amazon(c) => validate_amazon(c, &error),
            ChannelConfig::Tiktok(c) => validate_tiktok(c, &error),
            ChannelConfig::Webhook(c) => {
                check_url(&c.url, &|m| error("url", m))?;
                check_rate(&c.rate, &|m| error("rate", m))?;
                check_header(&c.signature_header, &|m| error("signature_header", m))?;
                check_header(&c.timestamp_header, &|m| error("timestamp_header", m))?;
                if c.secret.expose().is_empty() {
                    return Err(error("secret", "must not be empty".into()));
                }
                Ok(())
            }
        }
    }

    fn validate_engine(
        &self,
        error: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let engine = self.engine();
        if engine.pending_max == 0 {
            return Err(error("sync.pending_max", "must be at least 1".into()));
        }
        if engine.keys_max < engine.pending_max {
            return Err(error(
                "sync.keys_max",
                format!("must be at least pending_max ({})", engine.pending_max),
            ));
        }
        if engine.in_flight_max == 0 {
            return Err(error("sync.in_flight_max", "must be at least 1".into()));
        }
        let batch_limit = match self {
            ChannelConfig::Shopify(_) => SHOPIFY_QUANTITIES_PER_CALL_MAX,
            ChannelConfig::Amazon(_) => 1,
            ChannelConfig::Tiktok(_) => TIKTOK_SKUS_PER_CALL_MAX,
            ChannelConfig::Webhook(_) => 10_000,
        };
        if engine.batch_max == 0 || engine.batch_max > batch_limit {
            return Err(error(
                "sync.batch_max",
                format!(
                    "{} is outside 1..={batch_limit}, what one {} call accepts",
                    engine.batch_max,
                    self.kind_name()
                ),
            ));
        }
        if engine.batch_linger_ms > engine.latency_budget_ms {
            return Err(error(
                "sync.batch_linger_ms",
                format!(
                    "{} ms is above the latency budget ({} ms): a change would wait longer for a fuller batch than the budget allows",
                    engine.batch_linger_ms, engine.latency_budget_ms
                ),
            ));
        }
        Ok(())
    }

    fn validate_retry_and_http(
        &self,
        error: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let retry = self.retry();
        if retry.base_ms == 0 || retry.cap_ms < retry.base_ms {
            return Err(error(
                "retry",
                "base_ms must be positive and cap_ms at least base_ms".into(),
            ));
        }
        if retry.slow_interval_ms == 0 {
            return Err(error("retry.slow_interval_ms", "must be positive".into()));
        }
        let http = self.http();
        if http.request_timeout_ms == 0 || http.connect_timeout_ms == 0 {
            return Err(error("http", "timeouts must be positive".into()));
        }
        if http.body_bytes_max < 1024 {
            return Err(error("http.body_bytes_max", "must be at least 1024".into()));
        }
        Ok(())
    }
}

fn validate_shopify(
    c: &ShopifyConfig,
    error: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    check_url(&c.base_url, &|m| error("base_url", m))?;
    if c.access_token.expose().is_empty() {
        return Err(error("access_token", "must not be empty".into()));
    }
    if c.locations.is_empty() {
        return Err(error(
            "locations",
            "map at least one location to a Shopify location gid".into(),
        ));
    }
    for (location, gid) in &c.locations {
        if !gid.starts_with("gid://shopify/Location/") {
            return Err(error(
                &format!("locations.{location}"),
                format!("{gid:?} is not a gid://shopify/Location/ id"),
            ));
        }
    }
    for (sku, gid) in &c.items {
        if !gid.starts_with("gid://shopify/InventoryItem/") {
            return Err(error(
                &format!("items.{sku}"),
                format!("{gid:?} is not a gid://shopify/InventoryItem/ id"),
            ));
        }
    }
    if c.cost.maximum < 10.0 || c.cost.restore_per_second <= 0.0 {
        return Err(error(
            "cost",
            "maximum must be at least 10 points and restore_per_second positive".into(),
        ));
    }
    Ok(())
}

fn validate_amazon(
    c: &AmazonConfig,
    error: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    check_url(&c.base_url, &|m| error("base_url", m))?;
    if c.seller_id.is_empty() {
        return Err(error("seller_id", "must not be empty".into()));
    }
    if c.marketplace_ids.is_empty() {
        return Err(error(
            "marketplace_ids",
            "name at least one marketplace".into(),
        ));
    }
    if c.access_token.expose().is_empty() {
        return Err(error("access_token", "must not be empty".into()));
    }
    check_rate(&c.rate, &|m| error("rate", m))?;
    check_rate(&c.read_rate, &|m| error("read_rate", m))?;
    let feeds = &c.feeds;
    if feeds.messages_max == 0 || feeds.messages_max > AMAZON_FEED_MESSAGES_MAX {
        return Err(error(
            "feeds.messages_max",
            format!("must be within 1..={AMAZON_FEED_MESSAGES_MAX}"),
        ));
    }
    for (name, rate) in [
        ("feeds.create_feed_rate", &feeds.create_feed_rate),
        ("feeds.create_document_rate", &feeds.create_document_rate),
        ("feeds.get_feed_rate", &feeds.get_feed_rate),
        ("feeds.get_document_rate", &feeds.get_document_rate),
    ] {
        check_rate(rate, &|m| error(name, m))?;
    }
    if feeds.poll_interval_ms == 0 {
        return Err(error("feeds.poll_interval_ms", "must be positive".into()));
    }
    Ok(())
}

fn validate_tiktok(
    c: &TiktokConfig,
    error: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    check_url(&c.base_url, &|m| error("base_url", m))?;
    for (field, value) in [
        ("app_key", c.app_key.as_str()),
        ("app_secret", c.app_secret.expose()),
        ("access_token", c.access_token.expose()),
        ("shop_cipher", c.shop_cipher.as_str()),
    ] {
        if value.is_empty() {
            return Err(error(field, "must not be empty".into()));
        }
    }
    if c.locations.is_empty() {
        return Err(error(
            "locations",
            "map at least one location to a TikTok warehouse id".into(),
        ));
    }
    if c.items.is_empty() && c.product_ids.is_empty() {
        return Err(error(
            "items",
            "give the SKUs' product and SKU ids, or product_ids to look them up".into(),
        ));
    }
    check_rate(&c.rate, &|m| error("rate", m))
}

fn check_url(url: &str, error: &dyn Fn(String) -> ConfigError) -> Result<(), ConfigError> {
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(()),
        Ok(_) => Err(error(format!("{url:?} is not an http(s) URL"))),
        Err(parse) => Err(error(format!("{url:?} is not a URL: {parse}"))),
    }
}

fn check_rate(
    rate: &RateSettings,
    error: &dyn Fn(String) -> ConfigError,
) -> Result<(), ConfigError> {
    if !(rate.per_second.is_finite() && rate.per_second > 0.0) || rate.burst == 0 {
        return Err(error(format!(
            "per_second must be positive and burst at least 1 (got {} and {})",
            rate.per_second, rate.burst
        )));
    }
    Ok(())
}

fn check_header(name: &str, error: &dyn Fn(String) -> ConfigError) -> Result<(), ConfigError> {
    reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map(|_| ())
        .map_err(|_| error(format!("{name:?} is not a header name")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SyncConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    fn check(text: &str) -> Result<(), String> {
        let config = parse(text)?;
        for (id, channel) in &config.channels {
            channel.validate(id).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    const SHOPIFY: &str = r#"
[channels.shop]
kind = "shopify"
base_url = "https://example.myshopify.com"
access_token = "shpat_x"
locations = { east = "gid://shopify/Location/1" }
"#;

    #[test]
    fn a_minimal_channel_takes_the_platform_defaults() {
        let config = parse(SHOPIFY).unwrap();
        let channel = &config.channels[&ChannelId::parse("shop").unwrap()];
        let engine = channel.engine();
        assert_eq!(engine.batch_max, 250);
        assert_eq!(engine.latency_budget_ms, 1_000);
        assert_eq!(check(SHOPIFY), Ok(()));
        let ChannelConfig::Shopify(shop) = channel else {
            panic!("a shopify channel");
        };
        assert_eq!(format!("{:?}", shop.access_token), "Secret(redacted)");
        assert!(!format!("{shop:?}").contains("shpat_x"));
    }

    #[test]
    fn errors_name_the_channel_and_the_field() {
        let too_big = format!("{SHOPIFY}sync = {{ batch_max = 251 }}\n");
        assert_eq!(
            check(&too_big),
            Err("channel 'shop': sync.batch_max: 251 is outside 1..=250, what one shopify call accepts".into())
        );
        let linger = format!("{SHOPIFY}sync = {{ batch_linger_ms = 5000 }}\n");
        assert!(
            check(&linger)
                .unwrap_err()
                .contains("above the latency budget")
        );
        let amazon = r#"
[channels.amz]
kind = "amazon"
base_url = "ftp://x"
seller_id = "S"
marketplace_ids = ["M"]
access_token = "t"
"#;
        assert!(
            check(amazon)
                .unwrap_err()
                .starts_with("channel 'amz': base_url:")
        );
        let unknown = format!("{SHOPIFY}colour = \"red\"\n");
        assert!(parse(&unknown).unwrap_err().contains("unknown field"));
        let missing_env = SHOPIFY.replace("shpat_x", "env:STOCKFLOW_TEST_SURELY_UNSET");
        assert!(
            parse(&missing_env)
                .unwrap_err()
                .contains("environment variable STOCKFLOW_TEST_SURELY_UNSET is not set")
        );
    }
}
