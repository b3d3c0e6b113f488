//! Snapshots without stalling the writer for long: the writer copies its ledger (the only stall,
//! measured as `stockflow_snapshot_clone_seconds`) and sends the copy after its batch to the
//! committer, which hands it to the snapshot thread once that batch is durable (a snapshot must
//! never hold state the journal lacks). The snapshot thread encodes and stores it through the
//! store's own maintenance connection, then prunes old snapshots. At most one snapshot is in
//! flight; a due snapshot waits for the previous one to finish.

use crate::config::EngineConfig;
use crate::metrics;
use crate::writer::ShardShared;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use stockflow_core::envelope::Position;
use stockflow_core::ledger::Ledger;
use stockflow_core::time::Timestamp;
use stockflow_store::{Snapshot, Store};

pub(crate) struct Snapshotter {
    thread: Option<JoinHandle<()>>,
    in_flight: Arc<AtomicBool>,
    store: Arc<dyn Store>,
    shared: Arc<ShardShared>,
    kept: usize,
    every_positions: u64,
    every: Duration,
    /// The position of the last snapshot handed to the thread (or found at recovery).
    last_position: Position,
    last_taken: Instant,
}

impl Snapshotter {
    /// Starts the snapshot thread; the sender goes to the committer (the thread stops when it
    /// is dropped).
    pub fn start(
        shared: Arc<ShardShared>,
        store: Arc<dyn Store>,
        config: &EngineConfig,
        recovered_from: Position,
    ) -> (Self, Option<SyncSender<Snapshot>>) {
        shared
            .last_snapshot_position
            .store(recovered_from, Ordering::Release);
        let (sender, receiver) = sync_channel::<Snapshot>(1);
        let in_flight = Arc::new(AtomicBool::new(false));
        let thread = {
            let store = store.clone();
            let shared = shared.clone();
            let in_flight = in_flight.clone();
            let kept = config.snapshots_kept;
            std::thread::Builder::new()
                .name(format!("stockflow-snapshot-{}", shared.shard))
                .spawn(move || {
                    for snapshot in receiver {
                        save(&*store, &shared, &snapshot, kept);
                        in_flight.store(false, Ordering::Release);
                    }
                })
                .ok()
        };
        if thread.is_none() {
            tracing::error!(
                "cannot start the snapshot thread; snapshots are taken at shutdown only"
            );
        }
        let sender = thread.as_ref().map(|_| sender);
        let snapshotter = Self {
            thread,
            in_flight,
            store,
            shared,
            kept: config.snapshots_kept,
            every_positions: config.snapshot_every_positions,
            every: config.snapshot_every,
            last_position: recovered_from,
            last_taken: Instant::now(),
        };
        (snapshotter, sender)
    }

    pub fn in_flight(&self) -> Arc<AtomicBool> {
        self.in_flight.clone()
    }

    fn due(&self, position: Position) -> bool {
        let behind = position.saturating_sub(self.last_position);
        behind >= self.every_positions || (behind > 0 && self.last_taken.elapsed() >= self.every)
    }

    /// A copy of the ledger when a snapshot is due and none is in flight.
    pub fn maybe_take(
        &mut self,
        ledger: &Ledger,
        position: Position,
        recorded_at: Timestamp,
    ) -> Option<Snapshot> {
        if self.thread.is_none() || !self.due(position) || self.in_flight.load(Ordering::Acquire) {
            return None;
        }
        let started = Instant::now();
        let snapshot = Snapshot {
            position,
            recorded_at,
            ledger: ledger.clone(),
        };
        ::metrics::histogram!(metrics::SNAPSHOT_CLONE_SECONDS)
            .record(started.elapsed().as_secs_f64());
        self.in_flight.store(true, Ordering::Release);
        self.last_position = position;
        self.last_taken = Instant::now();
        Some(snapshot)
    }

    /// Waits for the snapshot in flight (the committer, holding the sender, has stopped), then
    /// stores a last one when anything was journaled since, so that the next start replays
    /// nothing.
    pub fn finish(&mut self, ledger: Ledger, position: Position, recorded_at: Timestamp) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let stored = self.shared.last_snapshot_position.load(Ordering::Acquire);
        if position > stored {
            let snapshot = Snapshot {
                position,
                recorded_at,
                ledger,
            };
            save(&*self.store, &self.shared, &snapshot, self.kept);
        }
    }
}

fn save(store: &dyn Store, shared: &ShardShared, snapshot: &Snapshot, kept: usize) {
    let started = Instant::now();
    let result = store
        .save_snapshot(snapshot)
        .and_then(|()| store.prune_snapshots(kept));
    match result {
        Ok(pruned) => {
            let elapsed = started.elapsed();
            ::metrics::histogram!(metrics::SNAPSHOT_SECONDS).record(elapsed.as_secs_f64());
            shared
                .last_snapshot_position
                .store(snapshot.position, Ordering::Release);
            tracing::info!(
                shard = shared.shard,
                position = snapshot.position,
                pruned,
                elapsed_ms = elapsed.as_millis() as u64,
                "snapshot stored"
            );
        }
        Err(error) => {
            // Not fatal: the journal holds everything; the next snapshot tries again.
            tracing::warn!(shard = shared.shard, %error, "a snapshot could not be stored");
        }
    }
}
