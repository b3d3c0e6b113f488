//! Test doubles (a store that counts, blocks and fails commits; a sink that records) and
//! builders of inputs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use stockflow_core::availability::{
    AvailabilityCommand, ChannelConfig, ChannelKind, ChannelLocation,
};
use stockflow_core::command::{Command, LedgerCommand, ReservationLineRequest, Reserve};
use stockflow_core::envelope::{Envelope, Input, Position};
use stockflow_core::event::{Event, EventKind};
use stockflow_core::ids::{
    ActorId, ChannelId, EventId, LocationId, ReservationId, Sku, SourceId, TenantId,
};
use stockflow_core::outcome::{AtsChange, EventStatus, Reply};
use stockflow_core::quantity::QuantityState;
use stockflow_core::reservation::{Reservation, ReservationState};
use stockflow_core::time::Timestamp;
use stockflow_engine::{EffectSink, Effects, Engine, EngineConfig, Submitted};
use stockflow_store::{
    AuditQuery, AuditRecord, BatchEntry, IncidentQuery, IncidentRecord, JournalHead, MemoryStore,
    Snapshot, SnapshotInfo, Store, StoreError,
};

pub const START: Timestamp = Timestamp(1_800_000_000_000_000);

pub fn tenant() -> TenantId {
    TenantId::default_tenant()
}

pub fn sku(name: &str) -> Sku {
    Sku::parse(name).unwrap()
}

pub fn location() -> LocationId {
    LocationId::parse("east").unwrap()
}

pub fn rid(name: &str) -> ReservationId {
    ReservationId::parse(name).unwrap()
}

pub fn event(source: &str, seq: u64, kind: EventKind) -> Event {
    Event {
        event_id: EventId::parse(format!("{source}-{seq}")).unwrap(),
        source: SourceId::parse(source).unwrap(),
        seq,
        occurred_at: None,
        reason: None,
        reference: None,
        kind,
    }
}

pub fn received(source: &str, seq: u64, sku_name: &str, quantity: i64) -> Input {
    Input::Events(vec![event(
        source,
        seq,
        EventKind::Received {
            sku: sku(sku_name),
            location: location(),
            quantity,
            to: QuantityState::Available,
        },
    )])
}

pub fn reserve(id: &str, sku_name: &str, quantity: i64, ttl_seconds: u32) -> Input {
    command(LedgerCommand::Reserve(Reserve {
        reservation_id: rid(id),
        channel: None,
        lines: vec![ReservationLineRequest {
            sku: sku(sku_name),
            location: Some(location()),
            quantity,
        }],
        ttl_seconds,
    }))
}

pub fn confirm(id: &str) -> Input {
    command(LedgerCommand::Confirm {
        reservation_id: rid(id),
        lines: None,
    })
}

pub fn command(command: LedgerCommand) -> Input {
    Input::Command {
        actor: ActorId::parse("tester").unwrap(),
        command: Command::Ledger(command),
    }
}

pub fn upsert_channel(id: &str) -> Input {
    Input::Command {
        actor: ActorId::parse("operator").unwrap(),
        command: Command::Availability(AvailabilityCommand::UpsertChannel(ChannelConfig {
            id: ChannelId::parse(id).unwrap(),
            kind: ChannelKind::Webhook,
            locations: vec![ChannelLocation {
                location: location(),
                priority: 1,
            }],
            per_location: false,
        })),
    }
}

/// The statuses of an events reply.
pub fn statuses(submitted: &Submitted) -> Vec<EventStatus> {
    match &submitted.reply {
        Reply::Events(results) => results.iter().map(|r| r.status).collect(),
        other => panic!("not an events reply: {other:?}"),
    }
}

pub fn reservation_of(submitted: &Submitted) -> &Reservation {
    match &submitted.reply {
        Reply::Reservation { reservation, .. } => reservation,
        other => panic!("not a reservation reply: {other:?}"),
    }
}

/// What the published read model says of a SKU: (on_hand, available, reserved).
pub fn published(engine: &Engine, sku_name: &str) -> Option<(i64, i64, i64)> {
    let view = engine.reads().sku(&tenant(), &sku(sku_name))?;
    let q = view.stock.get(&location())?;
    Some((q.on_hand, q.available(), q.reserved))
}

pub fn published_state(engine: &Engine, id: &str) -> Option<ReservationState> {
    engine
        .reads()
        .reservation(&tenant(), &rid(id))
        .map(|r| r.state)
}

pub fn journal(store: &dyn Store) -> Vec<Envelope> {
    let mut all = Vec::new();
    loop {
        let page = store
            .read_journal(all.last().map_or(0, |e: &Envelope| e.position), 1000)
            .unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

pub fn test_config() -> EngineConfig {
    EngineConfig {
        idle_wake_interval: Duration::from_millis(10),
        ..EngineConfig::default()
    }
}

/// Waits (in real time, bounded) until `condition` holds; panics when it never does.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 5 s");
}

/// A store that counts commits and can block them (a gate) or fail chosen ones.
#[derive(Default)]
pub struct DoubleStore {
    inner: MemoryStore,
    /// `append` calls that reached the inner store (or failed on purpose).
    appends: AtomicUsize,
    /// The 1-based `append` calls that fail.
    failing: Mutex<Vec<usize>>,
    gate: Mutex<Gate>,
    gate_changed: Condvar,
    /// Envelopes per successful commit, in order.
    batch_sizes: Mutex<Vec<usize>>,
}

#[derive(Default)]
struct Gate {
    closed: bool,
    /// Commits waiting at the closed gate.
    waiting: usize,
}

impl DoubleStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn batch_sizes(&self) -> Vec<usize> {
        self.batch_sizes.lock().unwrap().clone()
    }

    /// Makes the `n`th `append` call (counting from 1, all calls so far included) fail.
    pub fn fail_append_number(&self, n: usize) {
        self.failing.lock().unwrap().push(n);
    }

    pub fn close_gate(&self) {
        self.gate.lock().unwrap().closed = true;
    }

    pub fn open_gate(&self) {
        self.gate.lock().unwrap().closed = false;
        self.gate_changed.notify_all();
    }

    pub fn waiting_at_gate(&self) -> usize {
        self.gate.lock().unwrap().waiting
    }
}

impl Store for DoubleStore {
    fn append(&self, batch: &[BatchEntry<'_>]) -> Result<(), StoreError> {
        {
            let mut gate = self.gate.lock().unwrap();
            gate.waiting += 1;
            while gate.closed {
                gate = self.gate_changed.wait(gate).unwrap();
            }
            gate.waiting -= 1;
        }
        let number = self.appends.fetch_add(1, Ordering::SeqCst) + 1;
        if self.failing.lock().unwrap().contains(&number) {
            return Err(StoreError::backend(
                "appending a batch",
                "the disk is full (injected)",
            ));
        }
        self.inner.append(batch)?;
        self.batch_sizes.lock().unwrap().push(batch.len());
        Ok(())
    }

    fn journal_head(&self) -> Result<Option<JournalHead>, StoreError> {
        self.inner.journal_head()
    }

    fn read_journal(&self, after: Position, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        self.inner.read_journal(after, limit)
    }

    fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot)
    }

    fn latest_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        self.inner.latest_snapshot()
    }

    fn snapshot_at(&self, position: Position) -> Result<Option<Snapshot>, StoreError> {
        self.inner.snapshot_at(position)
    }

    fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        self.inner.snapshots()
    }

    fn prune_snapshots(&self, keep: usize) -> Result<usize, StoreError> {
        self.inner.prune_snapshots(keep)
    }

    fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.query_audit(query)
    }

    fn query_incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentRecord>, StoreError> {
        self.inner.query_incidents(query)
    }
}

/// Records every availability change it is handed, with the position it came with.
#[derive(Default)]
pub struct RecordingSink {
    pub changes: Mutex<Vec<(Option<Position>, AtsChange)>>,
    pub calls: AtomicUsize,
}

impl EffectSink for RecordingSink {
    fn committed(&self, effects: &[Effects<'_>]) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut changes = self.changes.lock().unwrap();
        for effect in effects {
            changes.extend(
                effect
                    .availability
                    .iter()
                    .map(|c| (effect.position, c.clone())),
            );
        }
    }
}
