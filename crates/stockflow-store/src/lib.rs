//! Durable storage for stockflow: the journal, ledger snapshots, the audit trail and incidents.
//!
//! The [`Store`] port speaks the core's types only, so that backends are interchangeable: the
//! in-memory one for tests, SQLite (the embedded default), PostgreSQL later behind a feature.
//! One contract test suite (tests/it/contract.rs) runs against every backend.
//!
//! # Layout
//!
//! - [`port`]: the [`Store`] trait, its batch, snapshot and query types, and its limits.
//! - [`error`]: [`StoreError`], the one error type; backend errors are boxed sources.
//! - [`codec`]: the binary encoding of journal inputs and snapshots: MessagePack with names, and
//!   a compact form for requests of events.
//! - `binary`: varints and length-prefixed text, for the compact encodings.
//! - [`memory`]: [`MemoryStore`], for tests and simulations.
//! - [`sqlite`]: [`SqliteStore`], with WAL, `synchronous=FULL`, one transaction per batch, a pool of
//!   read connections beside the writer's; the audit trail in chunks with an index by SKU.

mod binary;
pub mod codec;
pub mod error;
pub mod memory;
pub mod port;
pub mod sqlite;

pub use error::StoreError;
pub use memory::MemoryStore;
pub use port::{
    AuditQuery, AuditRecord, BatchEntry, IncidentQuery, IncidentRecord, JOURNAL_PAGE_MAX,
    JournalHead, QUERY_LIMIT_MAX, Snapshot, SnapshotInfo, Store, Window,
};
pub use sqlite::{SqliteConfig, SqliteSettings, SqliteStore};
