//! The binary encoding of journal inputs and ledger snapshots, shared by every backend.
//!
//! MessagePack with field names (`rmp_serde::encode::write_named`): compact and fast, and
//! self-describing, so that a field added later with `#[serde(default)]` still reads old journals,
//! and the core's internally tagged enums and tuple-keyed maps (which postcard and bincode cannot
//! read back) round-trip. Every blob starts with a format byte so that a later format can be told
//! apart from this one.
//!
//! Requests of events, nearly every journal row of a busy store, are written in a compact form
//! of their own ([`FORMAT_EVENTS_COMPACT`], see [`encode_input_into`]): the eight event types
//! field by field, with varints and length-prefixed ids, about a third of the named MessagePack
//! and a fraction of its encoding cost. Every other input stays MessagePack. Both formats are
//! read by [`decode_input`].

use crate::error::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use stockflow_core::command::{Command, LedgerCommand};
use stockflow_core::envelope::Input;
use stockflow_core::ledger::Ledger;

mod events_codec;

/// The first byte of every blob written by this version.
pub const FORMAT_MESSAGEPACK_NAMED: u8 = 1;
/// The first byte of a journal input holding a request of events in the compact form.
pub const FORMAT_EVENTS_COMPACT: u8 = 2;

/// Appends the encoding of `value` to `buffer` (which the caller may reuse between calls).
pub fn encode_into<T: Serialize>(
    buffer: &mut Vec<u8>,
    what: &'static str,
    value: &T,
) -> Result<(), StoreError> {
    buffer.push(FORMAT_MESSAGEPACK_NAMED);
    rmp_serde::encode::write_named(buffer, value).map_err(|source| StoreError::Codec {
        direction: "encode",
        what,
        source: source.into(),
    })
}

pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut buffer = Vec::new();
    encode_into(&mut buffer, what, value)?;
    Ok(buffer)
}

pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    let error = |source: crate::error::BoxError| StoreError::Codec {
        direction: "decode",
        what,
        source,
    };
    match bytes.split_first() {
        Some((&FORMAT_MESSAGEPACK_NAMED, body)) => {
            rmp_serde::from_slice(body).map_err(|source| error(source.into()))
        }
        Some((format, _)) => Err(error(format!("unknown format byte {format}").into())),
        None => Err(error("empty blob".into())),
    }
}

/// Appends the journal encoding of `input` to `buffer`: compact for events, MessagePack for the
/// rest.
pub fn encode_input_into(buffer: &mut Vec<u8>, input: &Input) -> Result<(), StoreError> {
    match input {
        Input::Events(events) => {
            buffer.push(FORMAT_EVENTS_COMPACT);
            events_codec::encode(buffer, events);
            Ok(())
        }
        other => encode_into(buffer, "journal input", other),
    }
}

/// Reads a journal input in either format.
pub fn decode_input(bytes: &[u8]) -> Result<Input, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_EVENTS_COMPACT, body)) => events_codec::decode(body).map(Input::Events),
        _ => decode("journal input", bytes),
    }
}

pub fn encode_ledger(ledger: &Ledger) -> Result<Vec<u8>, StoreError> {
    encode("ledger snapshot", ledger)
}

pub fn decode_ledger(bytes: &[u8]) -> Result<Ledger, StoreError> {
    decode("ledger snapshot", bytes)
}

/// The journal's `kind` column: what the input is, for people reading the journal with SQL.
pub fn input_kind(input: &Input) -> &'static str {
    match input {
        Input::Events(_) => "events",
        Input::Tick => "tick",
        Input::Command { command, .. } => match command {
            Command::Ledger(LedgerCommand::Reserve(_)) => "reserve",
            Command::Ledger(LedgerCommand::Confirm { .. }) => "confirm",
            Command::Ledger(LedgerCommand::Release { .. }) => "release",
            Command::Ledger(LedgerCommand::ReserveOrder(_)) => "reserve_order",
            Command::Ledger(LedgerCommand::CancelOrder { .. }) => "cancel_order",
            Command::Ledger(_) => "ledger_setting",
            Command::Availability(_) => "availability",
        },
    }
}
