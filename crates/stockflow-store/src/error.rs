//! The store's one error type. Backend errors are boxed so that the [`crate::Store`] port names no
//! backend's types (SQLite today, PostgreSQL behind a feature later).

use std::path::PathBuf;
use stockflow_core::envelope::Position;

/// Any error of a backend, kept as the source of a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: BoxError,
    },
    #[error(
        "the store's schema version is {found} but this build of stockflow knows versions up to \
         {supported}: it was written by a newer stockflow; upgrade stockflow to open it"
    )]
    SchemaTooNew { found: u32, supported: u32 },
    #[error("the storage backend failed while {operation}")]
    Backend {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("cannot {direction} {what}")]
    Codec {
        direction: &'static str,
        what: &'static str,
        #[source]
        source: BoxError,
    },
    /// The writer tried to append a batch that does not continue the journal: a bug in the
    /// writer or a second writer on the same store.
    #[error("the journal ends at position {last} but the batch starts at {first}")]
    PositionGap { last: Position, first: Position },
    #[error("invalid query: {0}")]
    InvalidQuery(String),
}

impl StoreError {
    pub fn backend(operation: &'static str, source: impl Into<BoxError>) -> Self {
        StoreError::Backend {
            operation,
            source: source.into(),
        }
    }
}
