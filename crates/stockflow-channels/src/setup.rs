//! From configuration to running channels: one adapter per configured channel, validated.

use std::sync::Arc;
use std::time::Duration;

use stockflow_core::ids::ChannelId;

use crate::adapter::{AdapterError, ChannelAdapter};
use crate::amazon::AmazonAdapter;
use crate::config::{ChannelConfig, ConfigError, SyncConfig};
use crate::engine::{ChannelSpec, SyncEngine};
use crate::shopify::ShopifyAdapter;
use crate::tiktok::TiktokAdapter;
use crate::webhook::WebhookAdapter;

/// Why the channels could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("channel '{channel}': {source}")]
    Adapter {
        channel: ChannelId,
        source: AdapterError,
    },
}

/// The engine's view of one configured channel, with its adapter built.
pub fn channel_spec(id: &ChannelId, config: &ChannelConfig) -> Result<ChannelSpec, StartError> {
    config.validate(id)?;
    let built: Result<Arc<dyn ChannelAdapter>, AdapterError> = match config {
        ChannelConfig::Shopify(c) => ShopifyAdapter::new(c).map(|a| Arc::new(a) as _),
        ChannelConfig::Amazon(c) => AmazonAdapter::new(c).map(|a| Arc::new(a) as _),
        ChannelConfig::Tiktok(c) => TiktokAdapter::new(c).map(|a| Arc::new(a) as _),
        ChannelConfig::Webhook(c) => WebhookAdapter::new(id.clone(), c).map(|a| Arc::new(a) as _),
    };
    let adapter = built.map_err(|source| StartError::Adapter {
        channel: id.clone(),
        source,
    })?;
    let order_grace = match config {
        ChannelConfig::Amazon(c) => Duration::from_millis(c.order_grace_ms),
        _ => Duration::from_secs(600),
    };
    Ok(ChannelSpec {
        id: id.clone(),
        tenant: config.tenant().clone(),
        kind: config.kind_name(),
        adapter,
        settings: config.engine(),
        retry: config.retry().clone(),
        order_grace,
    })
}

impl SyncEngine {
    /// Validates every channel, builds its adapter and starts the engine on the current tokio
    /// runtime. The process must have installed a rustls crypto provider first.
    pub fn from_config(config: &SyncConfig) -> Result<SyncEngine, StartError> {
        let specs = config
            .channels
            .iter()
            .map(|(id, channel)| channel_spec(id, channel))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SyncEngine::start(specs))
    }
}
