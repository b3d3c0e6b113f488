//! The pure domain of stockflow.
//!
//! Everything here is plain data and deterministic functions: no IO, no async runtime, no clock,
//! no randomness. Time and ids are handed in with every input, so that the journal can be replayed
//! and seeded simulations can check the invariants of DESIGN.md section 3.
//!
//! # Layout
//!
//! - [`ids`]: identifiers that parse (tenant, SKU, location, channel, event, reservation, ...).
//! - [`time`]: the [`time::Timestamp`] the caller passes in.
//! - [`quantity`]: the quantity states of one SKU at one location, `available` derived.
//! - [`event`]: warehouse / OMS events (facts).
//! - [`command`]: reservation steps and ledger settings (requests that may be refused).
//! - [`envelope`]: what the journal stores: an input with its tenant, position and time.
//! - [`ledger`]: the state machine that applies envelopes.
//! - [`reservation`]: the two-step reservation and its states.
//! - [`availability`]: channels, buffers and the available-to-sell of each channel.
//! - [`outcome`]: replies, refusals and effects (audit, incidents, availability changes).
//! - [`reconcile`]: cycle counts against the ledger, channel read-backs against the sync.
//! - [`alerts`]: alert rules and the alert state machine (open, hold, resolve).

pub mod alerts;
pub mod availability;
pub mod command;
pub mod envelope;
pub mod event;
pub mod ids;
pub mod ledger;
pub mod outcome;
pub mod quantity;
pub mod reconcile;
pub mod reservation;
pub mod time;
