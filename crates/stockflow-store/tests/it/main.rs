//! Integration tests of stockflow-store: one contract suite run against every backend, then what
//! is particular to SQLite.

mod codec;
mod contract;
mod fixtures;
mod sqlite;
