//! Outbound channel sync: what each sales channel may sell reaches it within seconds, inside its
//! rate limits, never stale.
//!
//! The server hands every availability change ([`stockflow_core::outcome::AtsChange`]) to
//! [`SyncEngine::offer`] after each commit; per channel the engine keeps only the newest value
//! per key, sends drops to zero and decreases first, batches within the channel's limits and
//! latency budget, retries with backoff, and measures the time from the causing input to the
//! channel's acknowledgement.
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
//! - [`setup`]: from configuration to adapters and a running engine.
//! - [`fake`]: an in-memory adapter that keeps a channel's rules, for tests.
//! - [`bench`]: a synthetic load driver for the bench command.

pub mod adapter;
pub mod amazon;
pub mod backoff;
pub mod config;
pub mod engine;
pub mod fake;
pub mod http;
pub mod pacing;
pub mod pending;
pub mod setup;
pub mod shopify;
pub mod stats;
pub mod tiktok;
pub mod webhook;

pub use adapter::{ChannelAdapter, FullSyncProgress, SyncKey};
pub use config::{ChannelConfig, SyncConfig};
pub use engine::{ChannelSpec, SyncEngine, SyncError, SyncEvent, WallClock};
pub use setup::StartError;
pub use stats::ChannelStats;
