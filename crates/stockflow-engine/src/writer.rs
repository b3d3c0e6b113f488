//! The single writer of one shard: a dedicated thread that owns the ledger and the journal.
//!
//! The loop: block for the first request (or until a deadline or the idle interval), drain up to
//! the batch limits, apply every request (ticks for due deadlines first), commit the journaled
//! envelopes with their audit rows and incidents in one store transaction, then publish the
//! changed views, then hand the effects to the sink, then answer every request of the batch.
//! Nothing is visible to anyone before its batch is durable.

use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::metrics;
use crate::reads::{ReadModel, TenantUpdate};
use crate::recovery::{self, panic_message};
use crate::sink::{EffectSink, Effects};
use crate::snapshot::Snapshotter;
use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stockflow_core::envelope::{Envelope, Input, Position};
use stockflow_core::ids::TenantId;
use stockflow_core::ledger::Ledger;
use stockflow_core::outcome::{Outcome, Reply};
use stockflow_core::time::Timestamp;
use stockflow_store::{BatchEntry, Store};
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

/// State of one shard shared between its writer thread and the engine handle.
pub(crate) struct ShardShared {
    pub shard: usize,
    /// Set by `shutdown`: the writer finishes what is queued and stops; `submit` refuses.
    pub stopping: AtomicBool,
    /// Wakes a writer waiting for requests, so that it notices `stopping`.
    pub wake: Notify,
    pub last_position: AtomicU64,
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
            last_position: AtomicU64::new(0),
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

    fn fail(&self, message: String) {
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
    sink: Arc<dyn EffectSink>,
    reads: Arc<ReadModel>,
    receiver: mpsc::Receiver<Request>,
    /// A current-thread runtime used only to wait for the queue with a timeout.
    runtime: tokio::runtime::Runtime,
    ledger: Ledger,
    /// The last journaled position.
    position: Position,
    /// The last `recorded_at` handed to the ledger: time never goes backwards.
    recorded_at: Timestamp,
    /// A request drained from the queue that did not fit the batch: first of the next one.
    carry: Option<Request>,
    snapshots: Snapshotter,
}

/// One applied envelope of a batch.
struct Applied {
    envelope: Envelope,
    outcome: Outcome,
    /// Index of the request in the batch; `None` for a tick.
    request: Option<usize>,
    journaled: bool,
}

enum Wake {
    Request(Request),
    Timeout,
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
        let snapshots = Snapshotter::start(
            parts.shared.clone(),
            parts.store.clone(),
            &parts.config,
            recovered.snapshot_position.unwrap_or(0),
        );
        let writer = Writer {
            shared: parts.shared,
            config: parts.config,
            store: parts.store,
            sink: parts.sink,
            reads: parts.reads,
            receiver: parts.receiver,
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
            let first = match self.carry.take() {
                Some(request) => Some(request),
                None => match self.wait() {
                    Wake::Request(request) => Some(request),
                    Wake::Timeout => None,
                    Wake::Stop => break,
                },
            };
            let batch = first.map(|request| self.drain(request)).unwrap_or_default();
            if (!batch.is_empty() || self.ticks_due()) && !self.run_batch(batch) {
                return;
            }
            self.snapshots
                .maybe_take(&self.ledger, self.position, self.recorded_at);
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
                return;
            }
        }
        self.snapshots
            .finish(&self.ledger, self.position, self.recorded_at);
        tracing::info!(
            shard = self.shared.shard,
            position = self.position,
            "writer stopped"
        );
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
        self.runtime.block_on(async {
            tokio::select! {
                biased;
                () = shared.wake.notified() => Wake::Stop,
                request = receiver.recv() => request.map_or(Wake::Stop, Wake::Request),
                () = tokio::time::sleep(timeout) => Wake::Timeout,
            }
        })
    }

    /// The batch that starts with `first`: whatever else is queued, within both limits.
    fn drain(&mut self, first: Request) -> Vec<Request> {
        let mut events = first.weight();
        let mut batch = vec![first];
        while batch.len() < self.config.batch_requests_max {
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
        batch
    }

    /// Applies, commits, publishes, hands off effects and answers one batch. Returns false when
    /// the writer must stop.
    fn run_batch(&mut self, requests: Vec<Request>) -> bool {
        let mut replies = Vec::with_capacity(requests.len());
        let mut inputs = Vec::with_capacity(requests.len());
        for request in requests {
            replies.push(Some(request.reply));
            inputs.push((request.tenant, request.input, request.arrived_at));
        }
        let now = self.now();
        let applied = match catch_unwind(AssertUnwindSafe(|| self.apply_all(inputs, now))) {
            Ok(applied) => applied,
            Err(panic) => {
                // The ledger may be half-changed; nothing of the batch reached the journal.
                let message = format!("the ledger panicked: {}", panic_message(&panic));
                self.shared.fail(message.clone());
                answer_all(&mut replies, &EngineError::Stopped(message));
                return false;
            }
        };
        if let Err(error) = self.commit(&applied, replies.len()) {
            let error = EngineError::from(error);
            answer_all(&mut replies, &error);
            return self.rebuild();
        }
        self.publish(&applied);
        self.hand_off(&applied);
        answer(replies, applied);
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

    fn commit(
        &mut self,
        applied: &[Applied],
        requests: usize,
    ) -> Result<(), stockflow_store::StoreError> {
        let entries: Vec<BatchEntry<'_>> = applied
            .iter()
            .filter(|a| a.journaled)
            .map(|a| BatchEntry {
                envelope: &a.envelope,
                audit: &a.outcome.audit,
                incidents: &a.outcome.incidents,
            })
            .collect();
        if !entries.is_empty() {
            let started = Instant::now();
            if let Err(error) = self.store.append(&entries) {
                ::metrics::counter!(metrics::JOURNAL_COMMIT_FAILURES_TOTAL).increment(1);
                tracing::error!(shard = self.shared.shard, %error, "a batch commit failed");
                return Err(error);
            }
            metrics::record_commit(
                self.shared.shard,
                requests,
                entries.len(),
                started.elapsed(),
            );
            self.shared
                .last_commit_at
                .store(self.config.clock.now().0, Ordering::Release);
        }
        for a in applied {
            metrics::record_outcome(&a.outcome);
        }
        self.shared
            .last_position
            .store(self.position, Ordering::Release);
        metrics::record_position(self.shared.shard, self.position, self.receiver.len());
        Ok(())
    }

    /// After a failed commit the ledger ran ahead of the journal: rebuild it from the store.
    fn rebuild(&mut self) -> bool {
        match recovery::recover(&*self.store, &self.config.ledger) {
            Ok(recovered) => {
                tracing::warn!(
                    shard = self.shared.shard,
                    position = recovered.position,
                    "state rebuilt from the store after a failed commit"
                );
                self.ledger = recovered.ledger;
                self.position = recovered.position;
                self.shared
                    .last_position
                    .store(self.position, Ordering::Release);
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

    /// Publishes the view of every SKU and reservation the batch touched, once each.
    fn publish(&self, applied: &[Applied]) {
        let mut updates: HashMap<TenantId, TenantUpdate> = HashMap::new();
        let mut seen_skus = HashSet::new();
        let mut seen_reservations = HashSet::new();
        for a in applied {
            let tenant = &a.envelope.tenant;
            for sku in &a.outcome.touched_skus {
                if seen_skus.insert((tenant, sku)) {
                    let view = self.ledger.sku_view_at(tenant, sku, self.recorded_at);
                    let update = updates.entry(tenant.clone()).or_default();
                    update.skus.push((sku.clone(), view));
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
        self.reads
            .publish(self.shared.shard, updates, self.position);
    }

    /// Publishes every view of the ledger (after recovery).
    fn publish_everything(&self) {
        let mut updates: HashMap<TenantId, TenantUpdate> = HashMap::new();
        for (tenant, state) in &self.ledger.tenants {
            let update = updates.entry(tenant.clone()).or_default();
            for sku in state.stock.keys() {
                let view = self.ledger.sku_view_at(tenant, sku, self.recorded_at);
                update.skus.push((sku.clone(), view));
            }
            update
                .reservations
                .extend(state.reservations.values().cloned());
        }
        self.reads
            .publish(self.shared.shard, updates, self.position);
    }

    fn hand_off(&self, applied: &[Applied]) {
        let effects: Vec<Effects<'_>> = applied
            .iter()
            .filter(|a| {
                let o = &a.outcome;
                !(o.availability.is_empty()
                    && o.incidents.is_empty()
                    && o.touched_skus.is_empty()
                    && o.touched_reservations.is_empty())
            })
            .map(|a| Effects {
                shard: self.shared.shard,
                tenant: &a.envelope.tenant,
                position: a.journaled.then_some(a.envelope.position),
                recorded_at: a.envelope.recorded_at,
                availability: &a.outcome.availability,
                incidents: &a.outcome.incidents,
                touched_skus: &a.outcome.touched_skus,
                touched_reservations: &a.outcome.touched_reservations,
            })
            .collect();
        if effects.is_empty() {
            return;
        }
        // A panicking sink loses this batch's effects, not the writer: the batch is durable and
        // its requests still get their answers.
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.sink.committed(&effects))) {
            tracing::error!(panic = %panic_message(&panic), "the effect sink panicked");
        }
    }
}

fn answer_all(replies: &mut [Option<ReplySender>], error: &EngineError) {
    for reply in replies.iter_mut().filter_map(Option::take) {
        let _ = reply.send(Err(error.clone()));
    }
}

/// Sends each request its outcome. A requester that went away (its HTTP client disconnected)
/// is ignored: the change is durable all the same.
fn answer(mut replies: Vec<Option<ReplySender>>, applied: Vec<Applied>) {
    for a in applied {
        let Some(index) = a.request else { continue };
        if let Some(reply) = replies[index].take() {
            let position = a.journaled.then_some(a.envelope.position);
            let _ = reply.send(Ok(Submitted {
                position,
                reply: a.outcome.reply,
            }));
        }
    }
    debug_assert!(
        replies.iter().all(Option::is_none),
        "every request is answered"
    );
}
