//! The second half of a shard's pipeline: a thread that commits the batches the writer applied,
//! in order, then publishes their views, hands their effects to the sink and answers their
//! requests. While it commits batch N the writer applies batch N+1, so that the ledger's work
//! and the store's (encoding, SQLite, the fsync) overlap on two cores.
//!
//! A batch is applied on top of the ones before it. When a commit fails, every later batch of
//! the same epoch was applied on state that will never be durable: the committer refuses them
//! too, and raises `commit_failed`; the writer then waits for the committer to drain, rebuilds
//! its ledger from the store and starts a new epoch.

use crate::error::EngineError;
use crate::metrics;
use crate::reads::{ReadModel, TenantUpdate};
use crate::recovery::panic_message;
use crate::sink::{EffectSink, Effects};
use crate::writer::{ReplySender, ShardShared, Submitted};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Instant;
use stockflow_core::envelope::{Envelope, Position};
use stockflow_core::ids::TenantId;
use stockflow_core::outcome::Outcome;
use stockflow_store::{BatchEntry, Snapshot, Store};

use crate::clock::Clock;

/// One applied envelope of a batch.
pub(crate) struct Applied {
    pub envelope: Envelope,
    pub outcome: Outcome,
    /// Index of the request in the batch; `None` for a tick.
    pub request: Option<usize>,
    pub journaled: bool,
}

/// A batch applied by the writer, to be committed.
pub(crate) struct Pending {
    pub epoch: u64,
    pub applied: Vec<Applied>,
    pub replies: Vec<Option<ReplySender>>,
    /// The views of what the batch touched, as of its end, to publish once it is durable.
    pub updates: HashMap<TenantId, TenantUpdate>,
    /// The last journaled position after the batch.
    pub position: Position,
    /// Events and commands of its requests (`Request::weight`), against the batch limits.
    pub weight: usize,
}

impl Pending {
    /// Appends a batch applied after this one (same epoch): one transaction for both.
    pub fn absorb(&mut self, later: Pending) {
        debug_assert_eq!(self.epoch, later.epoch);
        let offset = self.replies.len();
        self.applied
            .extend(later.applied.into_iter().map(|mut applied| {
                applied.request = applied.request.map(|index| index + offset);
                applied
            }));
        self.replies.extend(later.replies);
        for (tenant, update) in later.updates {
            self.updates.entry(tenant).or_default().absorb(update);
        }
        self.position = later.position;
        self.weight += later.weight;
    }
}

pub(crate) enum ToCommitter {
    Batch(Pending),
    /// A copy of the ledger as of the batches sent before it: stored only once they are durable.
    Snapshot {
        epoch: u64,
        snapshot: Snapshot,
    },
    /// Answered once everything sent before it has been handled.
    Flush(SyncSender<()>),
}

pub(crate) struct Committer {
    pub shared: Arc<ShardShared>,
    pub store: Arc<dyn Store>,
    pub sink: Arc<dyn EffectSink>,
    pub reads: Arc<ReadModel>,
    pub clock: Arc<dyn Clock>,
    pub snapshots: Option<SyncSender<Snapshot>>,
    /// Cleared when a snapshot is dropped instead of handed to the snapshot thread.
    pub snapshot_in_flight: Arc<AtomicBool>,
    /// The epoch whose commit failed, and why.
    pub failed: Option<(u64, EngineError)>,
}

impl Committer {
    pub fn run(mut self, receiver: Receiver<ToCommitter>) {
        for message in receiver {
            match message {
                ToCommitter::Batch(pending) => {
                    self.commit(pending);
                    self.shared.batches_in_flight.fetch_sub(1, Ordering::AcqRel);
                    self.shared.committer_idle.notify_one();
                }
                ToCommitter::Snapshot { epoch, snapshot } => self.forward_snapshot(epoch, snapshot),
                ToCommitter::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    fn poisoned(&self, epoch: u64) -> Option<&EngineError> {
        self.failed
            .as_ref()
            .filter(|(failed, _)| *failed == epoch)
            .map(|(_, error)| error)
    }

    fn commit(&mut self, mut pending: Pending) {
        if let Some(error) = self.poisoned(pending.epoch) {
            answer_all(&mut pending.replies, error);
            return;
        }
        let requests = pending.replies.len();
        if let Err(error) = self.append(&pending.applied, requests) {
            // Raised before answering, so that a client retrying on the error finds the writer
            // rebuilding, not applying the retry on top of the failed batch.
            self.shared.commit_failed.store(true, Ordering::Release);
            let error = EngineError::from(error);
            answer_all(&mut pending.replies, &error);
            self.failed = Some((pending.epoch, error));
            return;
        }
        for applied in &pending.applied {
            metrics::record_outcome(&applied.outcome);
        }
        self.shared
            .last_position
            .store(pending.position, Ordering::Release);
        self.reads
            .publish(self.shared.shard, pending.updates, pending.position);
        self.hand_off(&pending.applied);
        answer(pending.replies, pending.applied);
    }

    fn append(
        &self,
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
        if entries.is_empty() {
            return Ok(());
        }
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
        let last = entries[entries.len() - 1].envelope.position;
        metrics::record_position(self.shared.shard, last);
        self.shared
            .last_commit_at
            .store(self.clock.now().0, Ordering::Release);
        Ok(())
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
                buffer_changes: a.outcome.buffer_changes,
                audit_entries: a.outcome.audit.len(),
            })
            .collect();
        if effects.is_empty() {
            return;
        }
        // A panicking sink loses this batch's effects, not the shard: the batch is durable and
        // its requests still get their answers.
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.sink.committed(&effects))) {
            tracing::error!(panic = %panic_message(&panic), "the effect sink panicked");
        }
    }

    fn forward_snapshot(&self, epoch: u64, snapshot: Snapshot) {
        let handed = self.poisoned(epoch).is_none()
            && self
                .snapshots
                .as_ref()
                .is_some_and(|sender| sender.try_send(snapshot).is_ok());
        if !handed {
            self.snapshot_in_flight.store(false, Ordering::Release);
        }
    }
}

pub(crate) fn answer_all(replies: &mut [Option<ReplySender>], error: &EngineError) {
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
