//! A synthetic load for the bench command: warehouse events at a steady rate across a set of
//! SKUs and locations, turned into the availability changes each channel would get (per
//! location for per-location channels, the sum over locations otherwise), offered to a running
//! engine; then a report per channel of the latency from `caused_at` to the channel's
//! acknowledgement (drops to zero apart), the backlog and its age when the load stopped, and
//! the internal latency (offer to call sent) and the cost of `offer` itself.

use std::collections::HashMap;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use serde::Serialize;
use stockflow_core::ids::{ChannelId, LocationId, Sku, TenantId};
use stockflow_core::outcome::AtsChange;
use tokio::time::Instant;

use crate::engine::SyncEngine;
use crate::stats::{LatencyHistogram, Percentiles};

/// One channel of the load.
#[derive(Clone, Debug)]
pub struct BenchChannel {
    pub channel: ChannelId,
    /// Told per location (Shopify, TikTok) or one number per SKU (Amazon).
    pub per_location: bool,
}

#[derive(Clone, Debug)]
pub struct BenchSpec {
    pub events_per_second: u32,
    pub skus: Vec<Sku>,
    pub locations: Vec<LocationId>,
    pub duration: Duration,
    /// How long to wait after the load for the backlog to drain (latencies keep counting).
    pub drain: Duration,
    /// Share of events that empty a location (a drop to zero), the rest move it by a few units.
    pub zero_share: f64,
    pub seed: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChannelBench {
    pub channel: ChannelId,
    pub acknowledged: u64,
    pub propagation: Percentiles,
    /// Acknowledged drops to zero only.
    pub zero_drops: Percentiles,
    /// Share of acknowledgements within one second.
    pub under_1s_share: f64,
    /// Keys waiting when the load stopped, and the age of the oldest.
    pub backlog_at_end: usize,
    pub backlog_age_ms_at_end: u64,
    pub backlog_after_drain: usize,
    pub internal: Percentiles,
    pub calls: u64,
    pub rate_limited: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub events: u64,
    pub changes_offered: u64,
    /// Time spent inside `SyncEngine::offer`, per call (one call per event).
    pub offer_cost: Percentiles,
    pub channels: Vec<ChannelBench>,
}

/// Runs the load against `engine` and reports. The engine's channels must include `channels`.
pub async fn drive(
    engine: &SyncEngine,
    channels: &[BenchChannel],
    spec: &BenchSpec,
) -> BenchReport {
    assert!(!spec.skus.is_empty() && !spec.locations.is_empty());
    let (offered, event_count, offer_cost) = load(engine, channels, spec).await;
    let at_end = engine.stats();
    tokio::time::sleep(spec.drain).await;
    let after = engine.stats();
    engine.shutdown(Duration::from_secs(5)).await;
    report(channels, offered, event_count, offer_cost, &at_end, &after)
}

async fn load(
    engine: &SyncEngine,
    channels: &[BenchChannel],
    spec: &BenchSpec,
) -> (u64, u64, LatencyHistogram) {
    let mut random = rand::rngs::StdRng::seed_from_u64(spec.seed);
    let mut stock: HashMap<(usize, usize), i64> = HashMap::new();
    let tick = Duration::from_millis(10);
    let per_tick = (spec.events_per_second as f64 * tick.as_secs_f64()).max(1.0) as u64;
    let start = Instant::now();
    let mut position = 0u64;
    let mut offered = 0u64;
    let mut events = 0u64;
    let mut cost = LatencyHistogram::default();
    let mut next = start;
    while Instant::now() - start < spec.duration {
        for _ in 0..per_tick {
            let sku = random.random_range(0..spec.skus.len());
            let location = random.random_range(0..spec.locations.len());
            let quantity = if random.random_bool(spec.zero_share) {
                0
            } else {
                let current = *stock.get(&(sku, location)).unwrap_or(&50);
                (current + random.random_range(-3..=3)).clamp(1, 100)
            };
            stock.insert((sku, location), quantity);
            position += 1;
            let total: i64 = (0..spec.locations.len())
                .map(|l| *stock.get(&(sku, l)).unwrap_or(&50))
                .sum();
            let caused_at = engine.clock().now();
            let changes: Vec<AtsChange> = channels
                .iter()
                .map(|c| AtsChange {
                    tenant: TenantId::default_tenant(),
                    channel: c.channel.clone(),
                    sku: spec.skus[sku].clone(),
                    location: c.per_location.then(|| spec.locations[location].clone()),
                    available_to_sell: if c.per_location { quantity } else { total },
                    withheld: 0,
                    position,
                    caused_at,
                })
                .collect();
            let before = std::time::Instant::now();
            engine.offer(&changes);
            cost.record(before.elapsed());
            offered += changes.len() as u64;
            events += 1;
        }
        next += tick;
        tokio::time::sleep_until(next).await;
    }
    (offered, events, cost)
}

fn report(
    channels: &[BenchChannel],
    offered: u64,
    events: u64,
    offer_cost: LatencyHistogram,
    at_end: &[crate::stats::ChannelStats],
    after: &[crate::stats::ChannelStats],
) -> BenchReport {
    let channels = channels
        .iter()
        .filter_map(|c| {
            let end = at_end.iter().find(|s| s.channel == c.channel)?;
            let done = after.iter().find(|s| s.channel == c.channel)?;
            Some(ChannelBench {
                channel: c.channel.clone(),
                acknowledged: done.acknowledged,
                propagation: done.propagation_latency.clone(),
                zero_drops: done.zero_latency.clone(),
                under_1s_share: done.under_1s_share,
                backlog_at_end: end.queue_depth,
                backlog_age_ms_at_end: end.oldest_pending_age_ms,
                backlog_after_drain: done.queue_depth,
                internal: done.internal_latency.clone(),
                calls: done.calls.values().sum(),
                rate_limited: done.rate_limited,
            })
        })
        .collect();
    BenchReport {
        events,
        changes_offered: offered,
        offer_cost: offer_cost.percentiles(),
        channels,
    }
}
