//! The core's integration tests: one binary, one module per area.

mod availability;
mod events;
mod ingestion;
mod orders;
mod properties;
mod reservations;
mod support;
