//! The single writer of one shard: a dedicated thread that owns the ledger.
//!
//! The loop: block for the first request (or until a deadline or the idle interval), drain up to
//! the batch limits, apply every request (ticks for due deadlines first), compute the views of
//! what changed, and hand the batch to the shard's committer (`committer.rs`), which commits
//! the journaled envelopes with their audit rows and incidents in one store transaction, then
//! publishes the views, then hands the effects to the sink, then answers every request of the
//! batch. Nothing is visible to anyone before its batch is durable.

use crate::committer::{Applied, Committer, Pending, ToCommitter, answer_all};
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::metrics;
use crate::reads::{ReadModel, TenantSettings, TenantUpdate};
use crate::recovery::{self, panic_message};
use crate::sink::EffectSink;
use crate::snapshot::Snapshotter;
use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use stockflow_core::command::{Command, LedgerCommand};
use stockflow_core::envelope::{Envelope, Input, Position};
use stockflow_core::ids::TenantId;
use stockflow_core::ledger::Ledger;
use stockflow_core::outcome::Reply;
use stockflow_core::time::Timestamp;
use stockflow_store::Store;
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// What `submit` gets back: the ledger's reply, and the journal position when the request
/// changed anything (it is then durable).
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub position: Option<Position>,
    pub reply: Reply,
}

pub(crate) type ReplySender = oneshot::Sender<Result<Submitted, EngineError>>;

pub(crate) struct Request {
    pub tenant: TenantId,
    pub input: Input,
    pub arrived_at: Timestamp,
    pub reply: ReplySender,
}

impl Request {
    /// What the request counts against `batch_events_max`.
    fn weight(&self) -> usize {
        match &self.input {
            Input::Events(events) => events.len().max(1),
            _ => 1,
        }
    }
}

/// Whether an input can change what [`crate::reads::ReadModel::settings`] shows: a settings
/// command, or a tick (holds and signals expire with time).
fn changes_settings(input: &Input) -> bool {
    match input {
        Input::Tick => true,
        Input::Command { command, .. } => !matches!(
            command,
            Command::Ledger(
                LedgerCommand::Reserve(_)
                    | LedgerCommand::Confirm { .. }
                    | LedgerCommand::Release { .. }
                    | LedgerCommand::ReserveOrder(_)
                    | LedgerCommand::CancelOrder { .. }
            )
        ),
        Input::Events(_) => false,
    }
}

/// State of one shard shared between its writer thread and the engine handle.
pub(crate) struct ShardShared {
    pub shard: usize,
    /// Set by `shutdown`: the writer finishes what is queued and stops; `submit` refuses.
    pub stopping: AtomicBool,
    /// Wakes a writer waiting for requests, so that it notices `stopping`.
    pub wake: Notify,
    /// Batches sent to the committer and not yet done with (committed, published, answered).
    pub batches_in_flight: AtomicUsize,
    /// Raised by the committer each time it is done with a batch: a writer holding applied
    /// requests hands them over then.
    pub committer_idle: Notify,
    /// The last durable position (set by the committer).
    pub last_position: AtomicU64,
    /// Set by the committer when a commit failed; cleared by the writer once it has rebuilt.
    pub commit_failed: AtomicBool,
    /// Microseconds since the epoch of the last commit; 0 before the first.
    pub last_commit_at: AtomicI64,
    pub last_snapshot_position: AtomicU64,
    /// Why the writer stopped, when it stopped on a failure.
    pub failure: Mutex<Option<String>>,
    /// Becomes true when the writer thread has finished.
    pub stopped: watch::Sender<bool>,
}

impl ShardShared {
    pub fn new(shard: usize) -> Self {
        Self {
            shard,
            stopping: AtomicBool::new(false),
            wake: Notify::new(),
            batches_in_flight: AtomicUsize::new(0),
            committer_idle: Notify::new(),
            last_position: AtomicU64::new(0),
            commit_failed: AtomicBool::new(false),
            last_commit_at: AtomicI64::new(0),
            last_snapshot_position: AtomicU64::new(0),
            failure: Mutex::new(None),
            stopped: watch::Sender::new(false),
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn fail(&self, message: String) {
        tracing::error!(shard = self.shard, %message, "the writer stopped");
        *self
            .failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(message);
    }
}

/// Everything a writer thread is started with.
pub(crate) struct WriterParts {
    pub shared: Arc<ShardShared>,
    pub config: EngineConfig,
    pub store: Arc<dyn Store>,
    pub sink: Arc<dyn EffectSink>,
    pub reads: Arc<ReadModel>,
    pub receiver: mpsc::Receiver<Request>,
}

pub(crate) struct Writer {
    shared: Arc<ShardShared>,
    config: EngineConfig,
    store: Arc<dyn Store>,
    reads: Arc<ReadModel>,
    receiver: mpsc::Receiver<Request>,
    /// Batches to the committer, handed over when it has none (`batches_in_flight`): while it
    /// commits, the writer goes on applying and gathers what it applied in `held`.
    committer: Option<SyncSender<ToCommitter>>,
    /// Applied, not yet handed to the committer: every request applied while the committer was
    /// busy, so that they share its next transaction and fsync (group commit). At most
    /// `batch_requests_max` requests or `batch_events_max` events; beyond, the writer waits.
    held: Option<Pending>,
    committer_thread: Option<JoinHandle<()>>,
    /// Increases each time the ledger is rebuilt after a failed commit.
    epoch: u64,
    /// A current-thread runtime used only to wait for the queue with a timeout.
    runtime: tokio::runtime::Runtime,
    ledger: Ledger,
    /// The last position applied (journaled once the committer is done with it).
    position: Position,
    /// The last `recorded_at` handed to the ledger: time never goes backwards.
    recorded_at: Timestamp,
    /// A request drained from the queue that did not fit the batch: first of the next one.
    carry: Option<Request>,
    snapshots: Snapshotter,
}

enum Wake {
    Request(Request),
    Timeout,
    /// The committer finished a batch: time to hand over what is held.
    CommitterIdle,
    Stop,
}

/// The writer thread's body: recover, report readiness, run until stopped.
pub(crate) fn run(parts: WriterParts, ready: oneshot::Sender<Result<(), EngineError>>) {
    let shared = parts.shared.clone();
    match Writer::start(parts) {
        Ok(writer) => {
            let _ = ready.send(Ok(()));
            writer.run();
        }
        Err(error) => {
            shared.fail(error.to_string());
            let _ = ready.send(Err(error));
        }
    }
    shared.stopped.send_replace(true);
}

impl Writer {
    fn start(parts: WriterParts) -> Result<Writer, EngineError> {
        let recovered = recovery::recover(&*parts.store, &parts.config.ledger)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| EngineError::Config(format!("cannot start the writer's timer: {e}")))?;
        let (snapshots, snapshot_sender) = Snapshotter::start(
            parts.shared.clone(),
            parts.store.clone(),
            &parts.config,
            recovered.snapshot_position.unwrap_or(0),
        );
        let committer = Committer {
            shared: parts.shared.clone(),
            store: parts.store.clone(),
            sink: parts.sink,
            reads: parts.reads.clone(),
            clock: parts.config.clock.clone(),
            snapshots: snapshot_sender,
            snapshot_in_flight: snapshots.in_flight(),
            failed: None,
        };
        let (sender, receiver) = sync_channel(1);
        let committer_thread = std::thread::Builder::new()
            .name(format!("stockflow-commit-{}", parts.shared.shard))
            .spawn(move || committer.run(receiver))
            .map_err(|e| EngineError::Config(format!("cannot start the committer thread: {e}")))?;
        let writer = Writer {
            shared: parts.shared,
            config: parts.config,
            store: parts.store,
            reads: parts.reads,
            receiver: parts.receiver,
            committer: Some(sender),
            held: None,
            committer_thread: Some(committer_thread),
            epoch: 0,
            runtime,
            ledger: recovered.ledger,
            position: recovered.position,
            recorded_at: recovered.recorded_at,
            carry: None,
            snapshots,
        };
        writer
            .shared
            .last_position
            .store(writer.position, Ordering::Release);
        writer.publish_everything();
        Ok(writer)
    }

    fn run(mut self) {
        while !self.shared.stopping.load(Ordering::Acquire) {
            self.offer_held();
            let first = match self.carry.take() {
                Some(request) => Some(request),
                None => match self.wait() {
                    Wake::Request(request) => Some(request),
                    Wake::Timeout | Wake::CommitterIdle => None,
                    Wake::Stop => break,
                },
            };
            let batch = first.map(|request| self.drain(request)).unwrap_or_default();
            if (!batch.is_empty() || self.ticks_due()) && !self.run_batch(batch) {
                self.stop_committer();
                return;
            }
            if let Some(snapshot) =
                self.snapshots
                    .maybe_take(&self.ledger, self.position, self.recorded_at)
            {
                // The snapshot is of a state that includes what is held: that goes first.
                self.send_held();
                self.send(ToCommitter::Snapshot {
                    epoch: self.epoch,
                    snapshot,
                });
            }
        }
        self.finish();
    }

    /// Stops taking requests, applies those already queued, takes a last snapshot.
    fn finish(mut self) {
        self.receiver.close();
        loop {
            let first = match self.carry.take() {
                Some(request) => request,
                None => match self.receiver.try_recv() {
                    Ok(request) => request,
                    Err(_) => break,
                },
            };
            let batch = self.drain(first);
            if !self.run_batch(batch) {
                self.stop_committer();
                return;
            }
        }
        self.stop_committer();
        if self.shared.commit_failed.load(Ordering::Acquire) && !self.rebuild() {
            return;
        }
        // A last snapshot only of a state the journal holds entirely: not after a failure that
        // may have left the ledger ahead of it.
        let durable = self.shared.last_position.load(Ordering::Acquire);
        if self.shared.failure().is_some() || durable != self.position {
            tracing::warn!(
                shard = self.shared.shard,
                position = self.position,
                durable,
                "no snapshot at shutdown: the ledger is not the journal's state"
            );
            return;
        }
        let ledger = std::mem::take(&mut self.ledger);
        self.snapshots
            .finish(ledger, self.position, self.recorded_at);
        tracing::info!(
            shard = self.shared.shard,
            position = self.position,
            "writer stopped"
        );
    }

    /// Lets the committer finish every batch sent to it (and what is held), then waits for its
    /// thread.
    fn stop_committer(&mut self) {
        self.send_held();
        self.committer = None;
        if let Some(thread) = self.committer_thread.take() {
            let _ = thread.join();
        }
    }

    /// Adds an applied batch to what is held for the committer, and hands that over at once if
    /// the committer is idle; when the held batch is full, waits for the committer.
    fn hold(&mut self, pending: Pending) {
        let held = match self.held.take() {
            Some(mut held) => {
                held.absorb(pending);
                held
            }
            None => pending,
        };
        self.held = Some(held);
        if self.held_fits(1, 1) {
            self.offer_held();
        } else {
            self.send_held();
        }
    }

    /// Requests and events held for the committer.
    fn held_size(&self) -> (usize, usize) {
        self.held
            .as_ref()
            .map_or((0, 0), |held| (held.replies.len(), held.weight))
    }

    /// Whether `requests` more requests of `weight` events in all fit beside what is held,
    /// within the batch limits.
    fn held_fits(&self, requests: usize, weight: usize) -> bool {
        let (held_requests, held_weight) = self.held_size();
        held_requests + requests <= self.config.batch_requests_max
            && held_weight + weight <= self.config.batch_events_max
    }

    /// Hands what is held to the committer if it has no batch.
    fn offer_held(&mut self) {
        // A committer thread that ended (it panicked) never lowers the count: sending is how
        // the writer finds out.
        let committer_gone = self
            .committer_thread
            .as_ref()
            .is_some_and(JoinHandle::is_finished);
        if self.shared.batches_in_flight.load(Ordering::Acquire) == 0 || committer_gone {
            self.send_held();
        }
    }

    /// Hands what is held to the committer, waiting for room in its queue if needed.
    fn send_held(&mut self) {
        if let Some(held) = self.held.take() {
            self.shared.batches_in_flight.fetch_add(1, Ordering::AcqRel);
            self.send(ToCommitter::Batch(held));
        }
    }

    fn send(&mut self, message: ToCommitter) {
        let sent = self
            .committer
            .as_ref()
            .is_some_and(|committer| committer.send(message).is_ok());
        if !sent {
            // The committer thread is gone (it panicked): nothing can become durable any more.
            self.shared.fail("the committer thread stopped".to_owned());
            self.shared.stopping.store(true, Ordering::Release);
        }
    }

    fn now(&self) -> Timestamp {
        self.config.clock.now().max(self.recorded_at)
    }

    fn ticks_due(&self) -> bool {
        self.ledger
            .next_deadline()
            .is_some_and(|deadline| deadline <= self.now())
    }

    /// How long to wait for a request: until the next deadline, at most the idle interval.
    fn idle_timeout(&self) -> Duration {
        let interval = self.config.idle_wake_interval;
        match self.ledger.next_deadline() {
            Some(deadline) => {
                let micros = deadline.micros_since(self.now()).max(1_000) as u64;
                Duration::from_micros(micros).min(interval)
            }
            None => interval,
        }
    }

    fn wait(&mut self) -> Wake {
        let timeout = self.idle_timeout();
        let shared = &self.shared;
        let receiver = &mut self.receiver;
        let holding = self.held.is_some();
        self.runtime.block_on(async {
            tokio::select! {
                biased;
                () = shared.wake.notified() => Wake::Stop,
                () = shared.committer_idle.notified(), if holding => Wake::CommitterIdle,
                request = receiver.recv() => request.map_or(Wake::Stop, Wake::Request),
                () = tokio::time::sleep(timeout) => Wake::Timeout,
            }
        })
    }

    /// The batch that starts with `first`: whatever else is queued, within both limits.
    /// Held requests count against both limits: what is drained joins them in one commit.
    fn drain(&mut self, first: Request) -> Vec<Request> {
        if !self.held_fits(1, first.weight()) {
            self.send_held();
        }
        let (held_requests, held_weight) = self.held_size();
        let requests_max = self.config.batch_requests_max - held_requests;
        let mut events = held_weight + first.weight();
        let mut batch = vec![first];
        while batch.len() < requests_max {
            let Ok(request) = self.receiver.try_recv() else {
                break;
            };
            if events + request.weight() > self.config.batch_events_max {
                self.carry = Some(request);
                break;
            }
            events += request.weight();
            batch.push(request);
        }
        metrics::record_queue_depth(self.shared.shard, self.receiver.len());
        batch
    }

    /// Applies one batch and hands it to the committer. Returns false when the writer must stop.
    fn run_batch(&mut self, requests: Vec<Request>) -> bool {
        if self.shared.commit_failed.load(Ordering::Acquire) && !self.rebuild() {
            let mut replies: Vec<_> = requests.into_iter().map(|r| Some(r.reply)).collect();
            let failure = self.shared.failure().unwrap_or_default();
            answer_all(&mut replies, &EngineError::Stopped(failure));
            return false;
        }
        let mut replies = Vec::with_capacity(requests.len());
        let mut inputs = Vec::with_capacity(requests.len());
        let weight = requests.iter().map(Request::weight).sum();
        for request in requests {
            replies.push(Some(request.reply));
            inputs.push((request.tenant, request.input, request.arrived_at));
        }
        let now = self.now();
        let applied = match catch_unwind(AssertUnwindSafe(|| self.apply_all(inputs, now))) {
            Ok(applied) => applied,
            Err(panic) => {
                // The ledger may be half-changed; nothing of this batch reaches the journal.
                let message = format!("the ledger panicked: {}", panic_message(&panic));
                self.shared.fail(message.clone());
                answer_all(&mut replies, &EngineError::Stopped(message));
                return false;
            }
        };
        let updates = self.views(&applied);
        self.hold(Pending {
            epoch: self.epoch,
            applied,
            replies,
            updates,
            position: self.position,
            weight,
        });
        true
    }

    fn apply_all(
        &mut self,
        inputs: Vec<(TenantId, Input, Timestamp)>,
        now: Timestamp,
    ) -> Vec<Applied> {
        let mut applied = Vec::with_capacity(inputs.len() + 1);
        for tenant in self.ledger.tenants_due(now) {
            applied.push(self.apply_one(tenant, Input::Tick, now, None));
        }
        for (index, (tenant, input, arrived_at)) in inputs.into_iter().enumerate() {
            applied.push(self.apply_one(tenant, input, arrived_at, Some(index)));
        }
        applied
    }

    fn apply_one(
        &mut self,
        tenant: TenantId,
        input: Input,
        arrived_at: Timestamp,
        request: Option<usize>,
    ) -> Applied {
        self.recorded_at = self.recorded_at.max(arrived_at);
        // A position is used only when the envelope is journaled: one that changed nothing
        // leaves it to the next, so the journal stays gapless.
        let envelope = Envelope {
            position: self.position + 1,
            tenant,
            recorded_at: self.recorded_at,
            input,
        };
        let outcome = self.ledger.apply(&self.config.ledger, &envelope);
        let journaled = outcome.persist;
        if journaled {
            self.position += 1;
        }
        Applied {
            envelope,
            outcome,
            request,
            journaled,
        }
    }

    /// After a failed commit the ledger ran ahead of the journal: wait for the committer to
    /// refuse what it still holds, then rebuild the ledger from the store.
    fn rebuild(&mut self) -> bool {
        // Applied on top of the failed batch: the committer refuses it with the others.
        self.send_held();
        if let Some(committer) = &self.committer {
            let (done, flushed) = sync_channel(1);
            if committer.send(ToCommitter::Flush(done)).is_ok() {
                let _ = flushed.recv();
            }
        }
        match recovery::recover(&*self.store, &self.config.ledger) {
            Ok(recovered) => {
                tracing::warn!(
                    shard = self.shared.shard,
                    position = recovered.position,
                    "state rebuilt from the store after a failed commit"
                );
                self.ledger = recovered.ledger;
                self.position = recovered.position;
                self.epoch += 1;
                self.shared.commit_failed.store(false, Ordering::Release);
                true
            }
            Err(error) => {
                self.shared.fail(format!(
                    "cannot rebuild the state after a failed commit: {error}"
                ));
                false
            }
        }
    }

    /// The view of every SKU and reservation the batch touched, once each, as of its end.
    fn views(&self, applied: &[Applied]) -> HashMap<TenantId, TenantUpdate> {
        let mut updates: HashMap<TenantId, TenantUpdate> = HashMap::new();
        // Each outcome lists its SKUs once: only a batch of several envelopes can repeat one.
        let repeats_possible = applied.len() > 1;
        let touched_total = applied.iter().map(|a| a.outcome.touched_skus.len()).sum();
        let mut seen_skus =
            HashSet::with_capacity(if repeats_possible { touched_total } else { 0 });
        let mut seen_reservations = HashSet::new();
        for a in applied {
            let tenant = &a.envelope.tenant;
            if a.journaled && changes_settings(&a.envelope.input) {
                let update = updates.entry(tenant.clone()).or_default();
                update.settings = self.settings_of(tenant, a.envelope.position);
            }
            let mut skus = a
                .outcome
                .touched_skus
                .iter()
                .filter(|sku| !repeats_possible || seen_skus.insert((tenant, *sku)))
                .peekable();
            if skus.peek().is_some() {
                // One search of the updates per envelope, not per SKU.
                let update = updates.entry(tenant.clone()).or_default();
                for sku in skus {
                    update.push_sku(&self.ledger, tenant, sku, self.recorded_at);
                }
            }
            for id in &a.outcome.touched_reservations {
                if seen_reservations.insert((tenant, id))
                    && let Some(reservation) = self.ledger.reservation(tenant, id)
                {
                    let update = updates.entry(tenant.clone()).or_default();
                    update.reservations.push(reservation.clone());
                }
            }
        }
        updates
    }

    fn settings_of(&self, tenant: &TenantId, position: Position) -> Option<TenantSettings> {
        let state = self.ledger.tenant(tenant)?;
        Some(TenantSettings {
            availability: state.availability.settings_view(self.recorded_at),
            location_priority: state.location_priority.clone(),
            position,
        })
    }

    /// Publishes every view of the ledger (after recovery).
    fn publish_everything(&self) {
        let mut updates: HashMap<TenantId, TenantUpdate> = HashMap::new();
        for (tenant, state) in &self.ledger.tenants {
            let update = updates.entry(tenant.clone()).or_default();
            update.settings = self.settings_of(tenant, self.position);
            for sku in state.stock.keys() {
                update.push_sku(&self.ledger, tenant, sku, self.recorded_at);
            }
            update
                .reservations
                .extend(state.reservations.values().cloned());
        }
        self.reads
            .publish(self.shared.shard, updates, self.position);
    }
}
