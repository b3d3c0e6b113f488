//! Sandboxes of the sales platforms stockflow syncs to: HTTP servers on loopback that keep each
//! platform's published contract, including its awkward parts, so the channel adapters and the
//! end-to-end tests can run against them.
//!
//! The sandboxes stand for the platforms, which know only their own contracts: this crate
//! depends on nothing of stockflow's. None of them says yes to everything; each refuses what the
//! platform refuses, throttles as the platform throttles, and records what it saw.
//!
//! Each sandbox starts in-process on 127.0.0.1:0 from a config struct and returns a handle: the
//! bound address and base URL, shutdown, the [`Recorder`] (what it showed and saw), the
//! [`FaultInjector`] (changeable at run time) and the [`SimClock`] (manual when the config asks).
//!
//! ```no_run
//! # async fn example() -> Result<(), stockflow_sim::SimError> {
//! use stockflow_sim::{Catalogue, CatalogueSpec, FaultConfig, shopify};
//!
//! let catalogue = Catalogue::generate(&CatalogueSpec::new(&["SKU-1"], &["east"], 10));
//! let sandbox = shopify::start(shopify::ShopifyConfig::new(catalogue.shopify, "token")).await?;
//! // ... point the adapter at sandbox.graphql_url() ...
//! sandbox.faults().set(FaultConfig { server_error_rate: 0.2, ..FaultConfig::default() });
//! assert_eq!(sandbox.recorder().violation_count(), 0);
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! `CONTRACT.md` beside this crate's `Cargo.toml` states the wire contract each sandbox keeps,
//! for the adapters to be written against.
//!
//! # Layout
//!
//! - [`clock`]: the sandbox clock, real (tokio's) or manual, with RFC 3339 wall times.
//! - [`faults`]: seeded fault injection (5xx, held requests, forced throttling, latency).
//! - [`recorder`]: per item the timeline of shown quantities; calls by operation and outcome;
//!   rejections and violations of limits.
//! - [`limits`]: the capacity bucket behind every rate limit, which also spots clients that call
//!   again while rejected.
//! - [`catalogue`]: the platform ids and starting quantities a sandbox is seeded with.
//! - [`server`]: common config, the shared core, the loopback server and its shutdown.
//! - [`shopify`]: Admin GraphQL: a parsed document, inventory mutations with compare-and-set and
//!   idempotency keys, inventory reads with cursors, the query-cost leaky bucket.
//! - [`amazon`]: SP-API Listings Items 2021-08-01 (accepted means queued; some never apply) and
//!   the Feeds API 2021-06-30 for a first full sync, with per-seller token buckets.
//! - [`tiktok`]: Partner API 202309 inventory update and search, with request signatures.
//! - [`webhook`]: a receiver of HMAC-signed JSON pushes that records what each SKU was told.
//! - [`world`]: the physical units of a scenario, shared by its sandboxes and its WMS; counts
//!   oversells (sales accepted for units that did not exist) per platform.
//! - [`demand`]: demand curves and the seeded arrivals of buyers.
//! - [`notify`]: each platform's order webhooks, in its format, signed its way.
//! - [`delivery`]: webhook delivery as platforms do it: at least once, reordered, late,
//!   retried, from a bounded queue.
//! - [`market`]: the platforms' storefronts, their orders' lives and their webhooks.
//! - [`buyers`]: simulated buyers who buy what the storefronts show.
//! - [`wms`]: a warehouse that reports receipts, picks, returns, adjustments and counts to
//!   stockflow's event API, and ships orders.
//! - [`scenario`]: the demo's story as data.

pub mod amazon;
pub mod buyers;
pub mod catalogue;
pub mod clock;
pub mod delivery;
pub mod demand;
pub mod faults;
pub mod limits;
pub mod market;
pub mod notify;
pub mod recorder;
pub mod scenario;
pub mod server;
pub mod shopify;
pub mod tiktok;
pub mod webhook;
pub mod wms;
pub mod world;

pub use catalogue::{Catalogue, CatalogueError, CatalogueSpec, Quantities};
pub use clock::SimClock;
pub use faults::{Fault, FaultConfig, FaultInjector};
pub use limits::RateLimit;
pub use recorder::{
    Cause, ItemKey, Outcome, QuantityPoint, Recorder, RecorderSnapshot, Violation, ViolationKind,
};
pub use server::CommonConfig;
pub use world::{OrderKey, Platform, World};

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    #[error("could not bind 127.0.0.1:0: {0}")]
    Bind(#[from] std::io::Error),
}

/// Why a simulated buyer or merchant action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    #[error("unknown item: {0}")]
    UnknownItem(String),
    #[error("unknown order: {0}")]
    UnknownOrder(String),
    #[error("unknown quantity name: {0}")]
    UnknownQuantityName(String),
    #[error("a quantity must be positive")]
    NonPositiveQuantity,
    #[error("only {available} available, {wanted} wanted")]
    NotEnough { available: i64, wanted: i64 },
}
