//! Rebuilding the ledger from a store (latest snapshot, then the journal tail), and checking
//! invariant 4: the state is a pure function of the journal.

use crate::error::EngineError;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};
use stockflow_core::envelope::Position;
use stockflow_core::ledger::{Ledger, LedgerConfig};
use stockflow_core::time::Timestamp;
use stockflow_store::{JOURNAL_PAGE_MAX, Snapshot, Store, codec};

/// A ledger rebuilt from a store.
#[derive(Debug)]
pub struct Recovered {
    pub ledger: Ledger,
    /// The last position applied (0 for an empty journal).
    pub position: Position,
    /// The `recorded_at` of that envelope.
    pub recorded_at: Timestamp,
    /// The snapshot recovery started from, if any.
    pub snapshot_position: Option<Position>,
    pub replayed: u64,
    pub elapsed: Duration,
}

/// The latest snapshot, then every journaled envelope after it through `Ledger::apply`. A
/// snapshot that cannot be decoded (written by an incompatible build) is skipped with a warning
/// and the whole journal is replayed instead.
pub fn recover(store: &dyn Store, config: &LedgerConfig) -> Result<Recovered, EngineError> {
    let started = Instant::now();
    let snapshot = match store.latest_snapshot() {
        Ok(snapshot) => snapshot,
        Err(error @ stockflow_store::StoreError::Codec { .. }) => {
            tracing::warn!(%error, "the latest snapshot cannot be read; replaying the whole journal");
            None
        }
        Err(error) => return Err(error.into()),
    };
    let snapshot_position = snapshot.as_ref().map(|s| s.position);
    let (mut ledger, position, recorded_at) = match snapshot {
        Some(Snapshot {
            position,
            recorded_at,
            ledger,
        }) => (ledger, position, recorded_at),
        None => (Ledger::new(), 0, Timestamp(0)),
    };
    let tail = replay(&mut ledger, store, config, position, None)?;
    let recovered = Recovered {
        ledger,
        position: tail.position.max(position),
        recorded_at: tail.recorded_at.unwrap_or(recorded_at),
        snapshot_position,
        replayed: tail.replayed,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        snapshot_position = ?recovered.snapshot_position,
        position = recovered.position,
        replayed = recovered.replayed,
        elapsed_ms = recovered.elapsed.as_millis() as u64,
        "ledger recovered"
    );
    Ok(recovered)
}

/// What [`replay`] went through.
pub(crate) struct Replayed {
    pub position: Position,
    pub recorded_at: Option<Timestamp>,
    pub replayed: u64,
}

/// Applies the journal after `after` (through `until` when given) to `ledger`, checking that
/// positions are consecutive. A ledger panic becomes an error.
pub(crate) fn replay(
    ledger: &mut Ledger,
    store: &dyn Store,
    config: &LedgerConfig,
    after: Position,
    until: Option<Position>,
) -> Result<Replayed, EngineError> {
    let mut done = Replayed {
        position: after,
        recorded_at: None,
        replayed: 0,
    };
    loop {
        let remaining = until.map_or(JOURNAL_PAGE_MAX as u64, |u| u.saturating_sub(done.position));
        let limit = remaining.min(JOURNAL_PAGE_MAX as u64) as usize;
        if limit == 0 {
            return Ok(done);
        }
        let page = store.read_journal(done.position, limit)?;
        if page.is_empty() {
            return Ok(done);
        }
        for envelope in &page {
            if envelope.position != done.position + 1 {
                return Err(EngineError::Recovery(format!(
                    "the journal jumps from position {} to {}",
                    done.position, envelope.position
                )));
            }
            catch_unwind(AssertUnwindSafe(|| ledger.apply(config, envelope))).map_err(|panic| {
                EngineError::Recovery(format!(
                    "the ledger panicked replaying position {}: {}",
                    envelope.position,
                    panic_message(&panic)
                ))
            })?;
            done.position = envelope.position;
            done.recorded_at = Some(envelope.recorded_at);
            done.replayed += 1;
        }
    }
}

pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The last journaled position.
    pub journal_position: Position,
    /// Envelopes replayed from empty.
    pub replayed: u64,
    /// Each stored snapshot, and whether the replay from empty reached the same state there.
    pub snapshots: Vec<SnapshotCheck>,
    /// The snapshot recovery starts from (the latest), if any.
    pub recovered_from: Option<Position>,
    /// Whether the replay from empty and the recovery (latest snapshot + tail) give the same
    /// encoded state, byte for byte.
    pub recovery_matches: bool,
    /// Size of the encoded final state.
    pub state_size_bytes: u64,
    pub elapsed: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotCheck {
    pub position: Position,
    pub matches: bool,
}

impl VerifyReport {
    /// Every check passed.
    pub fn is_consistent(&self) -> bool {
        self.recovery_matches && self.snapshots.iter().all(|s| s.matches)
    }
}

/// Replays the whole journal from empty and compares the state, encoded, with every stored
/// snapshot at its position and with what recovery (latest snapshot + tail) gives. Invariant 4:
/// a state that differs means a snapshot or the ledger is not a pure function of the journal.
pub fn verify(store: &dyn Store, config: &LedgerConfig) -> Result<VerifyReport, EngineError> {
    let started = Instant::now();
    let infos = store.snapshots()?;
    let mut ledger = empty_like_snapshots(store, &infos)?;
    let mut position = 0;
    let mut replayed = 0;
    let mut snapshots = Vec::new();
    for info in infos {
        let done = replay(&mut ledger, store, config, position, Some(info.position))?;
        position = done.position;
        replayed += done.replayed;
        if position != info.position {
            return Err(EngineError::Recovery(format!(
                "a snapshot is at position {} but the journal ends at {position}",
                info.position
            )));
        }
        let stored = store.snapshot_at(info.position)?.ok_or_else(|| {
            EngineError::Recovery(format!("the snapshot at {} disappeared", info.position))
        })?;
        snapshots.push(SnapshotCheck {
            position: info.position,
            matches: encoded(&stored.ledger)? == encoded(&ledger)?,
        });
    }
    let done = replay(&mut ledger, store, config, position, None)?;
    let full = encoded(&ledger)?;
    let recovered = recover(store, config)?;
    Ok(VerifyReport {
        journal_position: done.position,
        replayed: replayed + done.replayed,
        snapshots,
        recovered_from: recovered.snapshot_position,
        recovery_matches: encoded(&recovered.ledger)? == full,
        state_size_bytes: full.len() as u64,
        elapsed: started.elapsed(),
    })
}

/// An empty ledger with the body fingerprint scheme of the stored snapshots (they all inherit
/// the first one's): a journal whose snapshots were written before schemes were recorded is
/// replayed with SHA-256 body fingerprints, as its live ledger was.
fn empty_like_snapshots(
    store: &dyn Store,
    infos: &[stockflow_store::SnapshotInfo],
) -> Result<Ledger, EngineError> {
    let Some(oldest) = infos.first() else {
        return Ok(Ledger::new());
    };
    Ok(match store.snapshot_at(oldest.position)? {
        Some(snapshot) => Ledger::with_body_fingerprints(snapshot.ledger.body_fingerprints()),
        None => Ledger::new(),
    })
}

fn encoded(ledger: &Ledger) -> Result<Vec<u8>, EngineError> {
    Ok(codec::encode_ledger(ledger)?)
}
