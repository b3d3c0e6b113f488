//! The engine's configuration: limits on every queue and batch, snapshot cadence, the clock.

use crate::clock::{Clock, SystemClock};
use std::sync::Arc;
use std::time::Duration;
use stockflow_core::ledger::LedgerConfig;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Handed to every `Ledger::apply`, live and on replay (it is not journaled).
    pub ledger: LedgerConfig,
    /// Writers, one per shard, each with its own store; a tenant's requests always go to shard
    /// `hash(tenant) % shards`, so that a reservation's lines stay in one shard.
    pub shards: usize,
    /// Requests waiting for a shard's writer; a full queue answers `Overloaded` at once.
    pub queue_capacity: usize,
    /// The most requests applied and committed together.
    pub batch_requests_max: usize,
    /// The most events (a request of events counts each; any other request counts 1) applied
    /// and committed together.
    pub batch_events_max: usize,
    /// The longest an idle writer sleeps before checking the clock for deadlines (reservation
    /// TTLs, held-event limits) that its ledger did not announce.
    pub idle_wake_interval: Duration,
    /// A snapshot is taken when this many positions were journaled since the last one...
    pub snapshot_every_positions: u64,
    /// ...or when this much time passed and anything was journaled.
    pub snapshot_every: Duration,
    /// Snapshots kept after each new one.
    pub snapshots_kept: usize,
    /// The source of "now" for ticks; requests carry their own arrival time.
    pub clock: Arc<dyn Clock>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            ledger: LedgerConfig::default(),
            shards: 1,
            queue_capacity: 4096,
            batch_requests_max: 1024,
            batch_events_max: 8192,
            idle_wake_interval: Duration::from_secs(1),
            snapshot_every_positions: 100_000,
            snapshot_every: Duration::from_secs(300),
            snapshots_kept: 3,
            clock: Arc::new(SystemClock),
        }
    }
}

impl EngineConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        let positive = [
            ("shards", self.shards),
            ("queue_capacity", self.queue_capacity),
            ("batch_requests_max", self.batch_requests_max),
            ("batch_events_max", self.batch_events_max),
            ("snapshots_kept", self.snapshots_kept),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.batch_events_max < stockflow_core::envelope::EVENTS_PER_REQUEST_MAX {
            return Err(format!(
                "batch_events_max ({}) must hold the largest request ({} events)",
                self.batch_events_max,
                stockflow_core::envelope::EVENTS_PER_REQUEST_MAX
            ));
        }
        if self.snapshot_every_positions == 0 {
            return Err("snapshot_every_positions must be at least 1".to_owned());
        }
        Ok(())
    }
}
