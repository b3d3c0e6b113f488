//! Integration tests of stockflow-engine: the writer's contract through test doubles, recovery
//! and verification on SQLite.

mod bench;
mod recovery;
mod support;
mod writer;
