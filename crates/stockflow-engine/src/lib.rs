//! The single writer per shard, between the HTTP layer and the pure ledger.
//!
//! A shard's writer is a dedicated thread that owns the shard's [`Ledger`]. Requests reach it
//! through a bounded queue; it applies them in batches and hands each batch to the shard's
//! committer thread, which commits it in one store transaction (group commit), publishes the
//! changed views, hands the effects to an [`EffectSink`], and only then answers. The two
//! threads overlap: batch N is committed while batch N+1 is applied. Reads come from the
//! published [`ReadModel`], never from the writer's state.
//!
//! ```text
//! Engine::open(EngineConfig, store, sink).await -> Result<Engine, EngineError>
//! engine.submit(tenant, Input, arrived_at).await -> Result<Submitted, EngineError>
//! engine.reads()      -> &ReadModel   (sku, reservation, skus page; as of the last commit)
//! engine.stats()      -> EngineStats  (position, queue depth, last commit, state per shard)
//! engine.shutdown().await             (applies what is queued, snapshots, stops)
//! verify(store, ledger_config)        (replay from empty == snapshot + tail)
//! ```
//!
//! # Wiring (what the server does)
//!
//! - Open a store (`SqliteStore::open(SqliteConfig::new(data_dir.join("stockflow.db")))`), keep
//!   an `Arc<dyn Store>` clone for audit and incident queries (or use [`Engine::store_for`]).
//! - Implement [`EffectSink`] without blocking: `try_send` availability changes to the channel
//!   sync and incidents to alerts; coalesce or count what does not fit.
//! - Install the Prometheus recorder, then call [`metrics::describe`].
//! - `Engine::open(config, store, sink).await`; hand `engine.clone()` to the handlers; map
//!   [`EngineError::Overloaded`] to 503 with Retry-After, `Storage` to 503, `ShuttingDown` to 503,
//!   `Stopped` to 500; business refusals arrive as `Reply::Rejected` inside `Ok`.
//! - Serve reads from [`Engine::reads`]; serve `/healthz` from [`Engine::stats`].
//! - Select on [`Engine::stopped`] beside the shutdown signal; on SIGTERM call
//!   [`Engine::shutdown`] after the HTTP server stops taking requests.
//! - The binary should use mimalloc as its global allocator: the writer allocates what the
//!   committer frees, which glibc's malloc handles poorly (see [`mod@bench`]).
//!
//! # Layout
//!
//! - [`engine`]: the [`Engine`] handle: open, submit, reads, stats, shutdown; shard routing.
//! - `writer`: the writer thread's loop: batch, apply, compute views, hand to the committer.
//! - `committer`: the committer thread: commit, publish, hand off effects, answer.
//! - `snapshot`: the snapshot thread (copy on the writer, encode and store elsewhere).
//! - [`recovery`]: [`recover`] (snapshot + journal tail) and [`verify`] (invariant 4).
//! - [`reads`]: the published [`ReadModel`].
//! - [`sink`]: the [`EffectSink`] port for availability changes and incidents.
//! - [`clock`]: the [`Clock`] port (system and manual).
//! - [`config`]: [`EngineConfig`] and its limits.
//! - [`metrics`]: metric names (Prometheus conventions) and their descriptions.
//! - [`mod@bench`]: the in-process half of `stockflow bench ledger`.
//!
//! [`Ledger`]: stockflow_core::ledger::Ledger

pub mod bench;
pub mod clock;
mod committer;
pub mod config;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod reads;
pub mod recovery;
pub mod sink;
mod snapshot;
mod writer;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::EngineConfig;
pub use engine::{Engine, EngineStats, ShardState, ShardStats};
pub use error::EngineError;
pub use reads::{ReadModel, TenantSettings};
pub use recovery::{Recovered, VerifyReport, recover, verify};
pub use sink::{EffectSink, Effects, NoopSink};
pub use writer::Submitted;
