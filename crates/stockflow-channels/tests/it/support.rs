//! Shared helpers: changes, engines around adapters, waiting on conditions.

use std::sync::Arc;
use std::time::Duration;

use stockflow_channels::config::{EngineSettings, RetrySettings};
use stockflow_channels::{ChannelAdapter, ChannelSpec, SyncEngine, SyncKey};
use stockflow_core::ids::{ChannelId, LocationId, Sku, TenantId};
use stockflow_core::outcome::AtsChange;

pub fn channel_id(name: &str) -> ChannelId {
    ChannelId::parse(name).unwrap()
}

pub fn key(sku: &str, location: Option<&str>) -> SyncKey {
    SyncKey::new(
        Sku::parse(sku).unwrap(),
        location.map(|l| LocationId::parse(l).unwrap()),
    )
}

/// A change of `sku` (at `location`) to `quantity`, computed at `position`, caused now.
pub fn change(
    engine: &SyncEngine,
    channel: &str,
    key: &SyncKey,
    quantity: i64,
    position: u64,
) -> AtsChange {
    AtsChange {
        tenant: TenantId::default_tenant(),
        channel: channel_id(channel),
        sku: key.sku.clone(),
        location: key.location.clone(),
        available_to_sell: quantity,
        withheld: 0,
        position,
        caused_at: engine.clock().now(),
    }
}

pub fn settings(batch_max: usize, linger_ms: u64) -> EngineSettings {
    EngineSettings {
        pending_max: 1_000,
        keys_max: 10_000,
        batch_max,
        batch_linger_ms: linger_ms,
        latency_budget_ms: 1_000,
        in_flight_max: 2,
    }
}

pub fn retry() -> RetrySettings {
    RetrySettings {
        attempts_max: 8,
        base_ms: 100,
        cap_ms: 1_000,
        slow_interval_ms: 30_000,
    }
}

pub fn spec(
    name: &str,
    adapter: Arc<dyn ChannelAdapter>,
    settings: EngineSettings,
    retry: RetrySettings,
) -> ChannelSpec {
    ChannelSpec {
        id: channel_id(name),
        tenant: TenantId::default_tenant(),
        kind: "test",
        adapter,
        settings,
        retry,
        order_grace: Duration::from_secs(10),
    }
}

/// Waits (on tokio's clock) until `condition` holds, checking every 10 ms, for at most `limit`.
pub async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

/// Installs rustls' ring provider once per process (the binary does it in production).
pub fn install_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
