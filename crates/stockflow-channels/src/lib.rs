//! Outbound channel sync: what each sales channel may sell reaches it within seconds, inside its
//! rate limits, never stale.
//!
//! The server hands every availability change ([`stockflow_core::outcome::AtsChange`]) to
//! [`SyncEngine::offer`] after each commit; per channel the engine keeps only the newest value
//! per key, sends drops to zero and decreases first, batches within the channel's limits and
//! latency budget, retries with backoff, and measures the time from the causing input to the
//! channel's acknowledgement.
//!
//! # Wiring (the server)
//!
//! - At start: install rustls' ring provider, parse `[channels.<id>]` into [`SyncConfig`],
//!   `SyncEngine::from_config`, then `prime` each channel with what it last acknowledged (if
//!   kept) and `full_sync` a new channel with the whole catalogue.
//! - After each commit of the writer: `offer(&outcome.availability)` from the effect sink (it
//!   never blocks). Channel orders heard by webhook: `order_seen(channel, sku, location, units)`
//!   beside the reservation.
//! - `stats()` for `/v1/channels`-like views, `subscribe()` for the dashboard, `read_back`,
//!   `key_view`, `observe` and `resend` for reconciliation (a channel-side edit heard by
//!   webhook), `shutdown(grace)` on SIGTERM. Metrics go through the `metrics` facade.
//!
//! # Architecture invariants
//!
//! - A key is sent only its newest known value; a value with a lower position than one known
//!   for the key is ignored; at most one call per key is in flight, so values land in position
//!   order (DESIGN.md invariant 5). A retry, a compare-and-set repair and a verification repair
//!   all send the newest value, never the one that failed.
//! - Nothing is dropped silently: a refused entry stays pending with the platform's code (stats,
//!   metrics, events) and is retried on a slow cadence; a new key refused because the queue is
//!   full is counted as `queue_full` and reported.
//! - No call leaves before the platform said capacity is back (Retry-After, throttleStatus, a
//!   second after a 429 without a hint), and after a rejection calls go one at a time until the
//!   platform has been quiet for a while.
//! - Adapters never read the ledger or the store: they know the platform and the engine's
//!   belief of what the platform shows.
//! - Credentials are [`config::Secret`]: redacted in `Debug`, never logged.
//!
//! # Layout
//!
//! - [`config`]: the channels' configuration (serde, for the server's TOML) and its validation.
//! - [`adapter`]: the port to a platform: keys, batches, outcomes, the [`ChannelAdapter`] trait.
//! - [`pending`]: the coalescing priority queue of one channel (pure data).
//! - [`backoff`]: exponential backoff with full jitter, Retry-After, the slow cadence.
//! - [`pacing`]: GCRA (governor) and Shopify's cost bucket, both on tokio's clock.
//! - [`engine`]: the per-channel workers, `offer`, `order_seen`, verification, full sync,
//!   shutdown.
//! - [`stats`]: per-channel counters, latency histograms, the `metrics` names.
//! - [`http`]: the HTTP client, bounded bodies, Retry-After, error mapping.
//! - [`shopify`], [`amazon`], [`tiktok`], [`webhook`]: the platform adapters.
//! - [`orders`]: reads of channel orders for the inbound side (TikTok's Get Order Detail: its
//!   order webhooks carry no line items).
//! - [`setup`]: from configuration to adapters and a running engine.
//! - [`fake`]: an in-memory adapter that keeps a channel's rules, for tests.
//!
//! `stockflow bench sync` measures the sync end to end: the real server in process, the
//! sandboxes at their documented limits, a sustained event rate.

pub mod adapter;
pub mod amazon;
pub mod backoff;
pub mod config;
pub mod engine;
pub mod fake;
pub mod http;
pub mod orders;
pub mod pacing;
pub mod pending;
pub mod setup;
pub mod shopify;
pub mod stats;
pub mod tiktok;
pub mod webhook;

pub use adapter::{ChannelAdapter, FullSyncProgress, SyncKey};
pub use config::{ChannelConfig, SyncConfig};
pub use engine::{
    AcknowledgedValue, ChannelSpec, KeyView, SyncEngine, SyncError, SyncEvent, WallClock,
};
pub use setup::StartError;
pub use stats::ChannelStats;
