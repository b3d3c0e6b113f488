//! What the journal stores: every accepted input with the tenant, its position and its time.
//! Replaying the envelopes of a journal in order through [`crate::ledger::Ledger::apply`]
//! rebuilds the state exactly.

use crate::command::Command;
use crate::event::Event;
use crate::ids::{ActorId, TenantId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The most events one request (and so one envelope) may carry.
pub const EVENTS_PER_REQUEST_MAX: usize = 1000;

/// Position in the journal: assigned by the writer, strictly increasing, from 1. Doubles as the
/// version of everything the envelope changed (availability changes carry it, so that a channel
/// is never sent a value computed from an older state than one it already has).
pub type Position = u64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub position: Position,
    pub tenant: TenantId,
    /// When the input reached stockflow (assigned by the writer, never decreasing). The core's
    /// only notion of "now": expiries, time limits and buffer decay are measured against it.
    pub recorded_at: Timestamp,
    pub input: Input,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// One request of producer events: applied all together or not at all.
    Events(Vec<Event>),
    /// A command from a person or a system.
    Command { actor: ActorId, command: Command },
    /// Time passed: reservations expire, held events time out, buffers decay. Journaled only
    /// when it changed something.
    Tick,
}
