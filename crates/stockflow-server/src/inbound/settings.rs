//! `[webhooks.channels.<id>]`: how each channel's webhooks are authenticated, parsed into what
//! the handlers and the processor use. The channel's `[channels.<id>]` table supplies what it
//! already says (the platform, the tenant, TikTok's app key, Shopify's item and location ids).
//!
//! ```toml
//! [webhooks.channels.shop]
//! secret = "env:SHOPIFY_WEBHOOK_SECRET"   # Shopify: the app's client secret
//! previous_secret = "env:SHOPIFY_WEBHOOK_SECRET_OLD"
//! rotated_at = "2026-11-28T01:00:00Z"     # `secret` replaced `previous_secret` then
//!
//! [webhooks.channels.tiktok]
//! secret = "env:TIKTOK_APP_SECRET"        # TikTok: the app secret; app_key from [channels.tiktok]
//!
//! [webhooks.channels.amazon]
//! secret = "env:AMAZON_FORWARDER_SECRET"  # Amazon: the forwarder's signing secret
//! signature_header = "X-Stockflow-Signature"
//! ```

use crate::config::Config;
use anyhow::{Context, bail};
use axum::http::HeaderName;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use stockflow_channels::config::{ChannelConfig, Secret, SyncConfig};
use stockflow_core::ids::{ChannelId, LocationId, Sku, TenantId};
use stockflow_core::time::Timestamp;

/// The platforms that send us webhooks, as named in the path `/v1/webhooks/{platform}/...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    Shopify,
    Amazon,
    Tiktok,
}

impl Platform {
    pub fn parse(name: &str) -> Option<Platform> {
        match name {
            "shopify" => Some(Platform::Shopify),
            "amazon" => Some(Platform::Amazon),
            "tiktok" => Some(Platform::Tiktok),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Platform::Shopify => "shopify",
            Platform::Amazon => "amazon",
            Platform::Tiktok => "tiktok",
        }
    }

    /// How long the platform waits for a 2xx before it counts the delivery as failed
    /// (CHANNELS.md; Amazon's forwarder is ours, and is given Shopify's 5 s).
    pub fn deadline(self) -> Duration {
        match self {
            Platform::Shopify | Platform::Amazon => Duration::from_secs(5),
            Platform::Tiktok => Duration::from_secs(3),
        }
    }
}

/// One channel's webhook settings, parsed.
#[derive(Debug)]
pub struct ChannelWebhook {
    pub channel: ChannelId,
    pub tenant: TenantId,
    pub platform: Platform,
    pub secret: Secret,
    /// The secret replaced by a rotation, and until when it is still accepted.
    pub previous: Option<(Secret, Timestamp)>,
    /// TikTok signs `app_key + body`.
    pub app_key: Option<String>,
    /// Amazon's forwarder: the header that carries the signature, and the text before the hex.
    pub signature_header: HeaderName,
    pub signature_prefix: String,
    /// Shopify inventory item id (numeric) -> SKU, from `[channels.<id>].items`.
    pub items: HashMap<String, Sku>,
    /// Shopify location id (numeric) -> our location, from `[channels.<id>].locations`.
    pub locations: HashMap<String, LocationId>,
    /// TikTok SKU id -> SKU, for line items without a seller SKU.
    pub sku_ids: HashMap<String, Sku>,
}

impl ChannelWebhook {
    /// The secrets that may have signed a delivery received at `now`: the current one first.
    pub fn secrets(&self, now: Timestamp) -> Vec<&Secret> {
        let mut secrets = vec![&self.secret];
        if let Some((previous, until)) = &self.previous
            && now < *until
        {
            secrets.push(previous);
        }
        secrets
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    platform: Option<String>,
    tenant: Option<String>,
    secret: Secret,
    previous_secret: Option<Secret>,
    rotated_at: Option<String>,
    app_key: Option<String>,
    signature_header: Option<String>,
    signature_prefix: Option<String>,
}

/// Every channel that takes webhooks.
#[derive(Debug, Default)]
pub struct InboundSettings {
    pub channels: HashMap<ChannelId, ChannelWebhook>,
}

impl InboundSettings {
    pub fn from_config(config: &Config) -> anyhow::Result<InboundSettings> {
        let grace_micros = (config.webhooks.rotation_grace_seconds as i64)
            .saturating_mul(Timestamp::MICROS_PER_SECOND);
        let mut channels = HashMap::new();
        for (id, raw) in &config.webhooks.channels {
            let table = config.channels.get(id);
            let parsed = parse_channel(id, raw, table, grace_micros)
                .with_context(|| format!("webhooks.channels.{id} in the configuration"))?;
            channels.insert(parsed.channel.clone(), parsed);
        }
        Ok(InboundSettings { channels })
    }

    /// The channel's settings, if it takes webhooks from `platform`.
    pub fn channel(&self, platform: Platform, channel: &str) -> Option<&ChannelWebhook> {
        let id = ChannelId::parse(channel.to_owned()).ok()?;
        self.channels
            .get(&id)
            .filter(|webhook| webhook.platform == platform)
    }
}

fn parse_channel(
    id: &str,
    raw: &Value,
    table: Option<&Value>,
    grace_micros: i64,
) -> anyhow::Result<ChannelWebhook> {
    let channel = ChannelId::parse(id.to_owned())?;
    let raw: RawChannel = serde_json::from_value(raw.clone())?;
    let text = |key: &str| table.and_then(|t| t.get(key)).and_then(Value::as_str);
    let platform_name = raw
        .platform
        .as_deref()
        .or(text("kind"))
        .context("platform is required when [channels.<id>] does not name its kind")?;
    let Some(platform) = Platform::parse(platform_name) else {
        bail!("platform {platform_name:?}: webhooks come from shopify, amazon or tiktok")
    };
    let tenant = match raw.tenant.as_deref().or(text("tenant")) {
        Some(tenant) => TenantId::parse(tenant.to_owned())?,
        None => TenantId::default_tenant(),
    };
    let previous = match (raw.previous_secret, raw.rotated_at.as_deref()) {
        (None, _) => None,
        (Some(_), None) => bail!("previous_secret needs rotated_at (when the rotation happened)"),
        (Some(previous), Some(at)) => {
            let mut errors = Vec::new();
            let at = crate::wire::parse_time("rotated_at", at, &mut errors)
                .context("rotated_at must be an RFC 3339 time")?;
            Some((previous, at.plus_micros(grace_micros)))
        }
    };
    let app_key = raw.app_key.or(text("app_key").map(str::to_owned));
    if platform == Platform::Tiktok && app_key.is_none() {
        bail!("app_key is required for TikTok (here or in [channels.{id}])");
    }
    let signature_header = raw
        .signature_header
        .as_deref()
        .unwrap_or("X-Stockflow-Signature");
    let signature_header = HeaderName::try_from(signature_header.to_ascii_lowercase())
        .context("signature_header is not a valid header name")?;
    Ok(ChannelWebhook {
        channel,
        tenant,
        platform,
        secret: raw.secret,
        previous,
        app_key,
        signature_header,
        signature_prefix: raw.signature_prefix.unwrap_or_else(|| "sha256=".to_owned()),
        items: shopify_items(table)?,
        locations: channel_locations(table)?,
        sku_ids: tiktok_sku_ids(table)?,
    })
}

/// The number at the end of a Shopify gid (`gid://shopify/InventoryItem/123` -> `123`), or the
/// id itself.
pub fn gid_tail(gid: &str) -> &str {
    gid.rsplit('/').next().unwrap_or(gid)
}

fn shopify_items(table: Option<&Value>) -> anyhow::Result<HashMap<String, Sku>> {
    let mut items = HashMap::new();
    if let Some(Value::Object(map)) = table.and_then(|t| t.get("items")) {
        for (sku, item) in map {
            if let Value::String(gid) = item {
                items.insert(gid_tail(gid).to_owned(), Sku::parse(sku.clone())?);
            }
        }
    }
    Ok(items)
}

fn tiktok_sku_ids(table: Option<&Value>) -> anyhow::Result<HashMap<String, Sku>> {
    let mut sku_ids = HashMap::new();
    if let Some(Value::Object(map)) = table.and_then(|t| t.get("items")) {
        for (sku, item) in map {
            if let Some(sku_id) = item.get("sku_id").and_then(Value::as_str) {
                sku_ids.insert(sku_id.to_owned(), Sku::parse(sku.clone())?);
            }
        }
    }
    Ok(sku_ids)
}

fn channel_locations(table: Option<&Value>) -> anyhow::Result<HashMap<String, LocationId>> {
    let mut locations = HashMap::new();
    if let Some(Value::Object(map)) = table.and_then(|t| t.get("locations")) {
        for (location, remote) in map {
            if let Value::String(remote) = remote {
                locations.insert(
                    gid_tail(remote).to_owned(),
                    LocationId::parse(location.clone())?,
                );
            }
        }
    }
    Ok(locations)
}

/// The TikTok channels whose adapter settings let us read their orders.
pub fn tiktok_readers(
    sync: &SyncConfig,
) -> anyhow::Result<HashMap<ChannelId, std::sync::Arc<stockflow_channels::orders::TiktokOrders>>> {
    let mut readers = HashMap::new();
    for (id, channel) in &sync.channels {
        if let ChannelConfig::Tiktok(config) = channel {
            let reader = stockflow_channels::orders::TiktokOrders::new(config)
                .map_err(|error| anyhow::anyhow!("channels.{id}: {error}"))?;
            readers.insert(id.clone(), std::sync::Arc::new(reader));
        }
    }
    Ok(readers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(channels: Value, webhooks: Value) -> Result<InboundSettings, String> {
        let mut config = Config {
            channels: serde_json::from_value(channels).unwrap(),
            ..Config::default()
        };
        config.webhooks.channels = serde_json::from_value(webhooks).unwrap();
        InboundSettings::from_config(&config).map_err(|error| format!("{error:#}"))
    }

    #[test]
    fn a_channel_takes_its_platform_tenant_and_ids_from_its_channel_table() {
        let settings = parse(
            json!({"shop": {"kind": "shopify", "tenant": "acme",
                            "locations": {"east": "gid://shopify/Location/70001"},
                            "items": {"SKU-1": "gid://shopify/InventoryItem/40000001"}}}),
            json!({"shop": {"secret": "s", "previous_secret": "p",
                            "rotated_at": "2026-11-28T01:00:00Z"}}),
        )
        .unwrap();
        let shop = settings.channel(Platform::Shopify, "shop").unwrap();
        assert_eq!(shop.tenant.as_str(), "acme");
        assert_eq!(shop.items["40000001"].as_str(), "SKU-1");
        assert_eq!(shop.locations["70001"].as_str(), "east");
        assert!(shop.previous.is_some());
        assert!(settings.channel(Platform::Amazon, "shop").is_none());
        assert!(format!("{shop:?}").contains("Secret(redacted)"));
    }

    #[test]
    fn what_cannot_be_checked_stops_the_start() {
        let cases = [
            (
                json!({}),
                json!({"x": {"secret": "s"}}),
                "platform is required",
            ),
            (
                json!({}),
                json!({"x": {"platform": "ebay", "secret": "s"}}),
                "ebay",
            ),
            (
                json!({}),
                json!({"x": {"platform": "shopify", "secret": "s", "previous_secret": "p"}}),
                "rotated_at",
            ),
            (
                json!({}),
                json!({"x": {"platform": "tiktok", "secret": "s"}}),
                "app_key is required",
            ),
            (
                json!({}),
                json!({"x": {"platform": "shopify", "secret": "s", "secrt": "t"}}),
                "unknown field",
            ),
        ];
        for (channels, webhooks, expected) in cases {
            let error = parse(channels, webhooks.clone()).unwrap_err();
            assert!(error.contains(expected), "{webhooks}: {error}");
        }
    }
}
