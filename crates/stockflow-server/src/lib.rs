//! The stockflow service: the HTTP API of DESIGN.md section 5 in front of the single writer
//! (`stockflow-engine`), the channel sync (`stockflow-channels`), metrics and configuration.
//!
//! # Layout
//!
//! - [`config`]: layered configuration (defaults, TOML, `STOCKFLOW_` environment, flags).
//! - [`settings`]: channels and policies from the configuration file, as journaled commands.
//! - [`app`]: starting and stopping the whole service ([`app::Server`]); what handlers share.
//! - [`sink`]: the engine's effect sink: availability changes to the channel sync, counters.
//! - [`syncstate`]: what channels acknowledged, kept across restarts; resuming the sync.
//! - [`api`]: the axum handlers, one module per resource, and the OpenAPI document.
//! - [`wire`]: JSON shapes of the contract, parsed by hand into the core's types.
//! - [`problem`]: RFC 9457 problem documents with stable codes.
//! - [`json`]: the JSON body extractor that answers problem documents.
//! - [`telemetry`]: the Prometheus recorder.
//! - [`reconcile`]: cycle counts against the ledger, channel read-backs against the sync.
//! - [`alerts`]: alert rules evaluated on a timer, listed and delivered to webhooks.
//! - [`kpis`]: the operators' KPIs in time buckets, reported over windows.
//! - [`inbound`]: channel webhooks: verified, recorded in a durable inbox, processed into
//!   reservations, fulfilment checks and drift repairs.
//! - [`dashboard`]: the page at `/`, its embedded assets and its live stream.

pub mod alerts;
pub mod api;
pub mod app;
pub mod config;
pub mod dashboard;
pub mod inbound;
pub mod json;
pub mod kpis;
pub mod problem;
pub mod reconcile;
pub mod settings;
pub mod sink;
pub mod syncstate;
pub mod telemetry;
pub mod wire;

pub use app::{Server, ServerHandle};
pub use config::Config;
