//! The single writer (API outline; being built).
//!
//! ```text
//! Engine::open(EngineConfig, store, sink) -> (Engine, EngineTask)
//! Engine::submit(tenant, Input, arrived_at).await -> Result<Submitted, EngineError>
//! Engine::reads() -> &ReadModel      (sku view, reservation, published after commit)
//! Engine::shutdown().await           (finishes the batch in flight, then stops)
//! ```
