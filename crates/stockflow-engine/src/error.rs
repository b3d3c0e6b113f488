//! What `submit`, `open` and `shutdown` can fail with. Business refusals are not errors: they are
//! [`stockflow_core::outcome::Reply::Rejected`] inside a successful [`crate::Submitted`].

use std::sync::Arc;
use stockflow_store::StoreError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The shard's queue is full: answer 503 with Retry-After.
    #[error("the writer's queue is full; retry shortly")]
    Overloaded,
    /// `shutdown` was called: no new requests are taken.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// The batch could not be made durable; nothing of it was applied. The writer rebuilt its
    /// state from the store before taking new requests.
    #[error("the journal could not be written; the request was not applied")]
    Storage(#[source] Arc<StoreError>),
    /// The writer stopped after a failure it cannot recover from (a ledger panic, a store that
    /// cannot be read back); the server reports it and stops.
    #[error("the writer stopped: {0}")]
    Stopped(String),
    /// The journal or a snapshot could not be read back into a ledger.
    #[error("recovery failed: {0}")]
    Recovery(String),
    #[error("invalid engine configuration: {0}")]
    Config(String),
}

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        EngineError::Storage(Arc::new(error))
    }
}
