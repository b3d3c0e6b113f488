//! The sync engine: one worker task per channel around its [`PendingQueue`], its adapter and
//! its counters.
//!
//! - [`SyncEngine::offer`] never blocks or awaits: it takes the channel's std mutex for the time
//!   of a map update and wakes the worker.
//! - A worker waits until something is ready (respecting backoffs and the batch linger), takes
//!   the rate limit's share for one call, forms the batch then (so it carries the newest values),
//!   and runs the call as a task; up to `in_flight_max` calls at once, at most one per key.
//! - Values a channel only queued (Amazon's ACCEPTED) are read back after the adapter's delay;
//!   the rule is on `verify_one` below and in ARCHITECTURE.md.
//!
//! Invariant 5 of DESIGN.md is kept here: a key is sent only its newest value, a value older
//! than one known for the key is ignored on offer, and one call per key is in flight, so calls
//! for a key land in position order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use stockflow_core::envelope::Position;
use stockflow_core::ids::{ChannelId, LocationId, Sku, TenantId};
use stockflow_core::outcome::AtsChange;
use stockflow_core::time::Timestamp;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::adapter::{
    AdapterError, Batch, BulkItem, CallReport, ChannelAdapter, EntryOutcome, Failure, FailureKind,
    FullSyncProgress, ReadValue, SyncKey,
};
use crate::backoff::Backoff;
use crate::config::{EngineSettings, RetrySettings};
use crate::pending::{Offered, PendingQueue, Priority, QueueLimits, Selection, Wanted};
use crate::stats::{self, ChannelStats, Counters, LastError};

/// Events the server can subscribe to.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SyncEvent {
    /// The channel acknowledged a value (`queued`: it only accepted it for later).
    Acknowledged {
        channel: ChannelId,
        sku: Sku,
        location: Option<LocationId>,
        quantity: i64,
        position: Position,
        latency_ms: f64,
        queued: bool,
    },
    /// The channel showed something other than what stockflow believed it showed.
    Drift {
        channel: ChannelId,
        sku: Sku,
        location: Option<LocationId>,
        believed: Option<i64>,
        found: i64,
    },
    /// A queued value was not found when read back; the key is sent again.
    NotApplied {
        channel: ChannelId,
        sku: Sku,
        location: Option<LocationId>,
        sent: i64,
        found: Option<i64>,
    },
    /// A call or an entry failed; the key stays pending.
    Error {
        channel: ChannelId,
        sku: Option<Sku>,
        location: Option<LocationId>,
        kind: FailureKind,
        code: String,
        message: String,
        attempts: u32,
    },
    /// A new key was refused because the channel's queue was full.
    Refused {
        channel: ChannelId,
        sku: Sku,
        location: Option<LocationId>,
        quantity: i64,
    },
    /// Values a first full sync's bulk path established on the channel (Amazon's listings feed
    /// once its processing report is in), a bounded slice at a time, sent before the
    /// [`SyncEvent::FullSync`] that says the sync finished. Kept apart from `Acknowledged`: they
    /// are not a change propagating (no latency), and a catalogue's worth of single events
    /// would overrun subscribers.
    FullSyncAcknowledged {
        channel: ChannelId,
        values: Vec<AcknowledgedValue>,
    },
    FullSync {
        channel: ChannelId,
        progress: FullSyncProgress,
    },
}

/// One value a channel acknowledged (see [`SyncEvent::FullSyncAcknowledged`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AcknowledgedValue {
    pub sku: Sku,
    pub location: Option<LocationId>,
    pub quantity: i64,
    pub position: Position,
    /// The channel only accepted it for later (never the case for Amazon's feed, whose report
    /// says what was applied).
    pub queued: bool,
}

/// What the engine knows of one key (see [`SyncEngine::key_view`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct KeyView {
    /// What the channel is believed to show; None when nothing was read, sent or primed.
    pub believed: Option<i64>,
    /// The newest value known for the key.
    pub wanted: Option<i64>,
    /// The newest value waits to be sent or is in flight: a read now may race it.
    pub waiting: bool,
}

/// Why an engine call could not be served.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SyncError {
    #[error("unknown channel {0}")]
    UnknownChannel(ChannelId),
    #[error("the sync engine is shut down")]
    ShutDown,
    #[error(transparent)]
    Adapter(#[from] AdapterError),
}

/// Wall-clock time that follows tokio's clock from a fixed anchor, so that a paused tokio clock
/// in tests moves it too. Propagation latency is this time at the acknowledgement minus the
/// change's `caused_at`.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    anchor: Instant,
    anchor_wall: Timestamp,
}

impl WallClock {
    pub fn new() -> Self {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        Self::anchored(Timestamp(micros))
    }

    /// A clock reading `wall` now.
    pub fn anchored(wall: Timestamp) -> Self {
        Self {
            anchor: Instant::now(),
            anchor_wall: wall,
        }
    }

    pub fn now(&self) -> Timestamp {
        self.at(Instant::now())
    }

    pub fn at(&self, instant: Instant) -> Timestamp {
        let elapsed = instant.saturating_duration_since(self.anchor);
        self.anchor_wall.plus_micros(elapsed.as_micros() as i64)
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

/// One channel as the engine runs it.
pub struct ChannelSpec {
    pub id: ChannelId,
    pub tenant: TenantId,
    pub kind: &'static str,
    pub adapter: Arc<dyn ChannelAdapter>,
    pub settings: EngineSettings,
    pub retry: RetrySettings,
    /// How long a read-back below what was sent is taken for an order not ingested yet.
    pub order_grace: Duration,
}

/// A queued value waiting to be read back.
#[derive(Clone, Debug)]
struct Verification {
    key: SyncKey,
    quantity: i64,
    position: Position,
    sent_at: Instant,
}

struct FullSyncTracker {
    keys: HashMap<SyncKey, Position>,
    failed: HashSet<SyncKey>,
    progress: FullSyncProgress,
    sender: watch::Sender<FullSyncProgress>,
}

struct ChannelState {
    queue: PendingQueue,
    counters: Counters,
    verifications: BTreeMap<(Instant, u64), Verification>,
    verification_sequence: u64,
    /// Values being read back right now.
    verifying: usize,
    full_syncs: Vec<FullSyncTracker>,
}

struct Channel {
    spec: ChannelSpec,
    backoff: Backoff,
    state: Mutex<ChannelState>,
    wake: Notify,
}

struct Shared {
    channels: HashMap<ChannelId, Arc<Channel>>,
    events: broadcast::Sender<SyncEvent>,
    clock: WallClock,
    shutdown: watch::Sender<bool>,
    unknown_channel: Mutex<u64>,
}

/// The most verifications waiting per channel; beyond it the oldest is dropped, counted as an
/// error (`verification_dropped`) and reported.
const VERIFICATIONS_MAX: usize = 100_000;
/// How many ready keys one batch selection looks at to fill a call of one group.
const SCAN_MAX: usize = 4_096;
/// How many keys one read-back call checks.
const VERIFY_BATCH_MAX: usize = 50;
/// Events kept for slow subscribers.
const EVENTS_CAPACITY: usize = 8_192;
/// Values of a full sync per [`SyncEvent::FullSyncAcknowledged`].
const FULL_SYNC_ACKS_PER_EVENT: usize = 1_000;
/// Keys with errors listed in stats.
const KEY_ERRORS_LISTED: usize = 20;
/// How often queue gauges are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_millis(250);

/// The running sync engine. Cheap to clone; every clone drives the same workers.
#[derive(Clone)]
pub struct SyncEngine {
    shared: Arc<Shared>,
    workers: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// Held only by engine handles: when the last one goes, the workers are told to stop.
    _stop_on_drop: Arc<StopOnDrop>,
}

struct StopOnDrop(watch::Sender<bool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl SyncEngine {
    /// Starts one worker per channel on the current tokio runtime.
    pub fn start(channels: Vec<ChannelSpec>) -> Self {
        Self::start_with_clock(channels, WallClock::new())
    }

    pub fn start_with_clock(channels: Vec<ChannelSpec>, clock: WallClock) -> Self {
        stats::describe_metrics();
        let (events, _) = broadcast::channel(EVENTS_CAPACITY);
        let (shutdown, _) = watch::channel(false);
        let channels: HashMap<ChannelId, Arc<Channel>> = channels
            .into_iter()
            .map(|spec| (spec.id.clone(), Arc::new(Channel::new(spec))))
            .collect();
        let shared = Arc::new(Shared {
            channels,
            events,
            clock,
            shutdown,
            unknown_channel: Mutex::new(0),
        });
        let workers = shared
            .channels
            .values()
            .map(|channel| tokio::spawn(run(shared.clone(), channel.clone())))
            .collect();
        Self {
            _stop_on_drop: Arc::new(StopOnDrop(shared.shutdown.clone())),
            shared,
            workers: Arc::new(Mutex::new(workers)),
        }
    }

    /// The engine's wall clock (what `caused_at` is compared with).
    pub fn clock(&self) -> WallClock {
        self.shared.clock
    }

    /// Hands new availability values to the channels. Never blocks or awaits; values for unknown
    /// channels or another tenant are counted and dropped with an error event.
    pub fn offer(&self, changes: &[AtsChange]) {
        let now = Instant::now();
        let mut woken: Vec<&Arc<Channel>> = Vec::new();
        for change in changes {
            let Some(channel) = self.shared.channels.get(&change.channel) else {
                *self.shared.unknown_channel.lock().unwrap() += 1;
                continue;
            };
            if change.tenant != channel.spec.tenant {
                channel.refuse_tenant(&self.shared, change);
                continue;
            }
            channel.offer(&self.shared, change, now, false);
            if !woken.iter().any(|c| Arc::ptr_eq(c, channel)) {
                woken.push(channel);
            }
        }
        for channel in woken {
            channel.wake.notify_one();
        }
    }

    /// The channel itself took `units` for an order (the server heard of it by webhook or
    /// notification): what the channel shows went down by as much. Keeps compare-and-set values
    /// right and explains read-backs below what was sent.
    pub fn order_seen(
        &self,
        channel: &ChannelId,
        sku: &Sku,
        location: Option<&LocationId>,
        units: i64,
    ) -> Result<(), SyncError> {
        let channel = self.channel(channel)?;
        let key = SyncKey::new(sku.clone(), location.cloned());
        let mut state = channel.state.lock().unwrap();
        state.queue.order_seen(&key, units, Instant::now());
        Ok(())
    }

    /// What the channel is known to show, from outside the engine (values acknowledged before a
    /// restart, a catalogue the channel was seeded with): used for compare-and-set and for
    /// priority until a read or an acknowledgement says otherwise. A wrong value costs one
    /// compare-and-set repair on Shopify, nothing elsewhere.
    pub fn prime(&self, channel: &ChannelId, values: &[(SyncKey, i64)]) -> Result<(), SyncError> {
        let channel = self.channel(channel)?;
        let mut state = channel.state.lock().unwrap();
        for (key, quantity) in values {
            state.queue.prime(key, *quantity);
        }
        Ok(())
    }

    fn channel(&self, id: &ChannelId) -> Result<&Arc<Channel>, SyncError> {
        self.shared
            .channels
            .get(id)
            .ok_or_else(|| SyncError::UnknownChannel(id.clone()))
    }

    /// Every channel's stats, by channel id.
    pub fn stats(&self) -> Vec<ChannelStats> {
        let now = Instant::now();
        let mut all: Vec<ChannelStats> = self
            .shared
            .channels
            .values()
            .map(|channel| channel.stats(now))
            .collect();
        all.sort_by(|a, b| a.channel.cmp(&b.channel));
        all
    }

    /// Changes offered for channels that are not configured.
    pub fn unknown_channel_count(&self) -> u64 {
        *self.shared.unknown_channel.lock().unwrap()
    }

    /// A stream of acknowledgements, drift, errors and full-sync progress. A subscriber that
    /// falls more than a few thousand events behind loses the oldest (stats stay exact).
    pub fn subscribe(&self) -> broadcast::Receiver<SyncEvent> {
        self.shared.events.subscribe()
    }

    /// Reads what the channel shows for these keys.
    pub async fn read_back(
        &self,
        channel: &ChannelId,
        keys: Vec<SyncKey>,
    ) -> Result<Vec<ReadValue>, SyncError> {
        let channel = self.channel(channel)?.clone();
        Ok(channel.spec.adapter.read(keys).await?)
    }

    /// What the engine knows of one key, for reconciliation done outside the engine (a channel
    /// announcing an edit by webhook).
    pub fn key_view(&self, channel: &ChannelId, key: &SyncKey) -> Result<KeyView, SyncError> {
        let channel = self.channel(channel)?;
        let state = channel.state.lock().unwrap();
        let newest = state.queue.newest(key);
        Ok(KeyView {
            believed: state.queue.believed(key),
            wanted: newest.map(|(wanted, _)| wanted.quantity),
            waiting: newest.is_some_and(|(_, waiting)| waiting),
        })
    }

    /// A read of the channel made outside the engine found `found` for `key`: it becomes what
    /// the channel is believed to show. Returns what was believed before. A difference is drift,
    /// counted and reported like the engine's own reads; what to do about it is the caller's.
    pub fn observe(
        &self,
        channel_id: &ChannelId,
        key: &SyncKey,
        found: i64,
    ) -> Result<Option<i64>, SyncError> {
        let channel = self.channel(channel_id)?;
        let mut state = channel.state.lock().unwrap();
        let believed = state.queue.believed(key);
        let drift = state.queue.observe(key, found, None);
        if drift == 0 {
            return Ok(believed);
        }
        state.counters.drift += 1;
        drop(state);
        stats::record_drift(channel.id());
        let _ = self.shared.events.send(SyncEvent::Drift {
            channel: channel.id().clone(),
            sku: key.sku.clone(),
            location: key.location.clone(),
            believed,
            found,
        });
        Ok(believed)
    }

    /// Sends a key again to overwrite an edit made on the channel: `current` (a value computed
    /// from the ledger now) unless a newer value is known, in which case that one is sent.
    pub fn resend(&self, current: &AtsChange) -> Result<(), SyncError> {
        let channel = self.channel(&current.channel)?;
        if current.tenant != channel.spec.tenant {
            channel.refuse_tenant(&self.shared, current);
            return Ok(());
        }
        let now = Instant::now();
        if channel.offer(&self.shared, current, now, false) == Offered::Stale {
            let key = SyncKey::new(current.sku.clone(), current.location.clone());
            channel.state.lock().unwrap().queue.requeue(&key, None, now);
        }
        channel.wake.notify_one();
        Ok(())
    }

    /// Sends a whole catalogue to a new channel: through the platform's bulk path where it has
    /// one (Amazon's feeds), else through the normal path at the lowest priority (Shopify 250
    /// quantities a call). Values older than one already known for a key are skipped.
    pub fn full_sync(
        &self,
        channel_id: &ChannelId,
        values: Vec<AtsChange>,
    ) -> Result<watch::Receiver<FullSyncProgress>, SyncError> {
        if *self.shared.shutdown.borrow() {
            return Err(SyncError::ShutDown);
        }
        let channel = self.channel(channel_id)?.clone();
        let progress = FullSyncProgress {
            total: values.len() as u64,
            ..FullSyncProgress::default()
        };
        let (sender, receiver) = watch::channel(progress);
        if channel.spec.adapter.has_bulk_path() {
            tokio::spawn(bulk_sync(self.shared.clone(), channel, values, sender));
        } else {
            channel.track_full_sync(&self.shared, values, sender);
            channel.wake.notify_one();
        }
        Ok(receiver)
    }

    /// Stops dispatching, lets calls in flight finish for up to `grace`, then stops the workers.
    /// Keys still waiting are reported in the returned stats.
    pub async fn shutdown(&self, grace: Duration) -> Vec<ChannelStats> {
        self.shared.shutdown.send_replace(true);
        for channel in self.shared.channels.values() {
            channel.wake.notify_one();
        }
        let workers: Vec<_> = std::mem::take(&mut *self.workers.lock().unwrap());
        let deadline = Instant::now() + grace;
        for mut worker in workers {
            if tokio::time::timeout_at(deadline, &mut worker)
                .await
                .is_err()
            {
                worker.abort();
            }
        }
        self.stats()
    }
}

impl Channel {
    fn new(spec: ChannelSpec) -> Self {
        let limits = QueueLimits {
            pending_max: spec.settings.pending_max,
            keys_max: spec.settings.keys_max,
            order_credits_max: 64,
            order_credit_ttl: spec.order_grace.max(Duration::from_secs(60)) * 2,
        };
        Self {
            backoff: Backoff::from_settings(&spec.retry),
            state: Mutex::new(ChannelState {
                queue: PendingQueue::new(limits),
                counters: Counters::default(),
                verifications: BTreeMap::new(),
                verification_sequence: 0,
                verifying: 0,
                full_syncs: Vec::new(),
            }),
            wake: Notify::new(),
            spec,
        }
    }

    fn id(&self) -> &ChannelId {
        &self.spec.id
    }

    fn offer(&self, shared: &Shared, change: &AtsChange, now: Instant, bulk: bool) -> Offered {
        let key = SyncKey::new(change.sku.clone(), change.location.clone());
        let wanted = Wanted {
            quantity: change.available_to_sell,
            position: change.position,
            caused_at: change.caused_at,
            offered_at: now,
            bulk,
        };
        let mut state = self.state.lock().unwrap();
        let offered = state.queue.offer(&key, wanted);
        state.counters.offered += 1;
        match offered {
            Offered::Queued => {}
            Offered::Coalesced => state.counters.coalesced += 1,
            Offered::Stale => state.counters.stale += 1,
            Offered::QueueFull => {
                state.counters.refused += 1;
                state.counters.last_error = Some(LastError {
                    code: "queue_full".into(),
                    message: format!("{} keys already waiting", state.queue.depth()),
                    key: Some(key.clone()),
                    at_unix_ms: shared.clock.now().unix_millis(),
                });
                *state
                    .counters
                    .errors
                    .entry("queue_full".into())
                    .or_default() += 1;
                drop(state);
                stats::record_error(self.id(), "queue_full");
                let _ = shared.events.send(SyncEvent::Refused {
                    channel: self.id().clone(),
                    sku: key.sku,
                    location: key.location,
                    quantity: change.available_to_sell,
                });
            }
        }
        offered
    }

    fn refuse_tenant(&self, shared: &Shared, change: &AtsChange) {
        let mut state = self.state.lock().unwrap();
        *state
            .counters
            .errors
            .entry("tenant_mismatch".into())
            .or_default() += 1;
        drop(state);
        stats::record_error(self.id(), "tenant_mismatch");
        let _ = shared.events.send(SyncEvent::Error {
            channel: self.id().clone(),
            sku: Some(change.sku.clone()),
            location: change.location.clone(),
            kind: FailureKind::Rejected,
            code: "tenant_mismatch".into(),
            message: format!(
                "change for tenant {} offered to a channel of tenant {}",
                change.tenant, self.spec.tenant
            ),
            attempts: 0,
        });
    }

    fn stats(&self, now: Instant) -> ChannelStats {
        let state = self.state.lock().unwrap();
        let counters = &state.counters;
        let lag = state
            .queue
            .oldest_since()
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        ChannelStats {
            channel: self.id().clone(),
            kind: self.spec.kind,
            queue_depth: state.queue.depth(),
            in_flight_keys: state.queue.in_flight_count(),
            oldest_pending_age_ms: lag.as_millis() as u64,
            verifications_pending: state.verifications.len() + state.verifying,
            offered: counters.offered,
            coalesced: counters.coalesced,
            stale: counters.stale,
            refused: counters.refused,
            acknowledged: counters.acknowledged,
            calls: counters.calls.clone(),
            rate_limited: counters.rate_limited,
            retries: counters.retries,
            drift: counters.drift,
            verified: counters.verified,
            not_applied: counters.not_applied,
            errors: counters.errors.clone(),
            last_error: counters.last_error.clone(),
            key_errors: state.queue.errors(KEY_ERRORS_LISTED),
            propagation_latency: counters.propagation.percentiles(),
            zero_latency: counters.zero.percentiles(),
            under_1s_share: if counters.acknowledged == 0 {
                0.0
            } else {
                counters.under_1s as f64 / counters.acknowledged as f64
            },
            internal_latency: counters.internal.percentiles(),
        }
    }

    fn track_full_sync(
        &self,
        shared: &Shared,
        values: Vec<AtsChange>,
        sender: watch::Sender<FullSyncProgress>,
    ) {
        let now = Instant::now();
        let mut keys = HashMap::new();
        let mut done = 0;
        for change in &values {
            let key = SyncKey::new(change.sku.clone(), change.location.clone());
            match self.offer(shared, change, now, true) {
                Offered::Queued | Offered::Coalesced => {
                    keys.insert(key, change.position);
                }
                // A newer value is known (sent or waiting): the full sync has nothing to add.
                Offered::Stale => done += 1,
                Offered::QueueFull => {}
            }
        }
        let mut progress = FullSyncProgress {
            total: values.len() as u64,
            done,
            ..FullSyncProgress::default()
        };
        progress.finished = keys.is_empty();
        let _ = sender.send(progress.clone());
        let mut state = self.state.lock().unwrap();
        state.full_syncs.push(FullSyncTracker {
            keys,
            failed: HashSet::new(),
            progress,
            sender,
        });
    }
}

/// A full sync's bookkeeping after an entry was acknowledged or failed.
fn track(state: &mut ChannelState, key: &SyncKey, position: Position, failed: bool) {
    for tracker in &mut state.full_syncs {
        let Some(&wanted) = tracker.keys.get(key) else {
            continue;
        };
        if failed {
            if tracker.failed.insert(key.clone()) {
                tracker.progress.failed += 1;
            }
        } else if position >= wanted {
            tracker.keys.remove(key);
            if tracker.failed.remove(key) {
                tracker.progress.failed -= 1;
            }
            tracker.progress.done += 1;
        } else {
            continue;
        }
        tracker.progress.finished = tracker.keys.is_empty();
        let _ = tracker.sender.send(tracker.progress.clone());
    }
    state.full_syncs.retain(|t| !t.progress.finished);
}

/// What the worker does next.
enum Step {
    Dispatch,
    Wait(Option<Instant>),
}

async fn run(shared: Arc<Shared>, channel: Arc<Channel>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut calls: JoinSet<()> = JoinSet::new();
    let mut gauges_at = Instant::now();
    loop {
        while calls.try_join_next().is_some() {}
        if *shutdown.borrow() {
            break;
        }
        let now = Instant::now();
        if now >= gauges_at {
            refresh_gauges(&channel, now);
            gauges_at = now + GAUGE_INTERVAL;
        }
        start_verification(&shared, &channel, &mut calls, now);
        match next_step(&channel, calls.len(), now) {
            Step::Dispatch => {
                tokio::select! {
                    () = channel.spec.adapter.acquire() => {}
                    _ = shutdown.changed() => continue,
                }
                dispatch(&shared, &channel, &mut calls);
            }
            Step::Wait(deadline) => {
                let deadline = deadline.map_or(gauges_at, |d| d.min(gauges_at));
                tokio::select! {
                    () = channel.wake.notified() => {}
                    () = tokio::time::sleep_until(deadline) => {}
                    Some(_) = calls.join_next(), if !calls.is_empty() => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
    // Shutting down: calls in flight finish (the caller bounds how long), nothing new leaves.
    while calls.join_next().await.is_some() {}
    refresh_gauges(&channel, Instant::now());
}

fn refresh_gauges(channel: &Channel, now: Instant) {
    let (depth, lag) = {
        let state = channel.state.lock().unwrap();
        let lag = state
            .queue
            .oldest_since()
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        (state.queue.depth(), lag)
    };
    stats::record_queue(channel.id(), depth, lag);
}

/// Decides whether a call can be formed now, or until when to wait.
fn next_step(channel: &Channel, calls_in_flight: usize, now: Instant) -> Step {
    let settings = &channel.spec.settings;
    let mut state = channel.state.lock().unwrap();
    state.queue.promote(now);
    let mut deadline = state.queue.next_retry();
    let verify_at = state
        .verifications
        .first_key_value()
        .filter(|_| state.verifying == 0)
        .map(|((at, _), _)| *at);
    deadline = earliest(deadline, verify_at);
    if calls_in_flight >= settings.in_flight_max {
        return Step::Wait(deadline);
    }
    let Some((priority, since)) = state.queue.head() else {
        return Step::Wait(deadline);
    };
    // Wait for a fuller batch only while the oldest change has waited less than the linger
    // (never more than the latency budget, which validation ensures); drops to zero never wait.
    let linger = Duration::from_millis(settings.batch_linger_ms);
    let full = state.queue.ready_count() >= settings.batch_max;
    let hold_until = since + linger;
    if priority != Priority::Zero && !full && now < hold_until {
        return Step::Wait(earliest(deadline, Some(hold_until)));
    }
    Step::Dispatch
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn dispatch(shared: &Arc<Shared>, channel: &Arc<Channel>, calls: &mut JoinSet<()>) {
    let now = Instant::now();
    let settings = channel.spec.settings;
    let units_max = settings
        .batch_max
        .min(channel.spec.adapter.units_per_call());
    let slow = channel.backoff.slow;
    let adapter = channel.spec.adapter.clone();
    let selection = {
        let mut state = channel.state.lock().unwrap();
        state.queue.promote(now);
        state
            .queue
            .select(units_max, SCAN_MAX, now, slow, |key| adapter.place(key))
    };
    let Some(selection) = selection else {
        return;
    };
    let shared = shared.clone();
    let channel = channel.clone();
    calls.spawn(async move {
        let batch = Batch {
            entries: selection.entries.clone(),
        };
        let report = channel.spec.adapter.send(batch).await;
        complete(&shared, &channel, &selection, report, now);
        channel.wake.notify_one();
    });
}

/// Applies a call's report: acknowledgements, failures with their retry times, observations.
fn complete(
    shared: &Shared,
    channel: &Channel,
    selection: &Selection,
    report: CallReport,
    dispatched_at: Instant,
) {
    let now = Instant::now();
    let wall = shared.clock.at(now);
    // Internal latency is the issue's: from the change's ingest to its call being sent.
    let sent_wall = shared.clock.at(report.sent_at.unwrap_or(dispatched_at));
    let mut events = Vec::new();
    let mut state = channel.state.lock().unwrap();
    for label in &report.calls {
        *state.counters.calls.entry(label).or_default() += 1;
        stats::record_call(channel.id(), label);
    }
    for observation in &report.observations {
        let drift = state
            .queue
            .observe(&observation.key, observation.found, observation.believed);
        if drift != 0 {
            state.counters.drift += 1;
            stats::record_drift(channel.id());
            events.push(SyncEvent::Drift {
                channel: channel.id().clone(),
                sku: observation.key.sku.clone(),
                location: observation.key.location.clone(),
                believed: observation.believed,
                found: observation.found,
            });
        }
    }
    for (index, entry) in selection.entries.iter().enumerate() {
        let outcome = report.outcomes.get(index).cloned().unwrap_or_else(|| {
            EntryOutcome::Failed(Failure::new(
                FailureKind::Transient,
                "no_outcome",
                "the adapter gave no outcome for this entry",
            ))
        });
        if entry.companion {
            let applied = match outcome {
                EntryOutcome::Applied { quantity } | EntryOutcome::Accepted { quantity } => {
                    Some(quantity)
                }
                EntryOutcome::Failed(_) => None,
            };
            state.queue.release_companion(&entry.key, applied);
            continue;
        }
        let internal = Duration::from_micros(sent_wall.micros_since(entry.caused_at).max(0) as u64);
        state.counters.internal.record(internal);
        stats::record_internal(channel.id(), internal);
        match outcome {
            EntryOutcome::Applied { quantity } | EntryOutcome::Accepted { quantity } => {
                let queued = matches!(outcome, EntryOutcome::Accepted { .. });
                let latency =
                    Duration::from_micros(wall.micros_since(entry.caused_at).max(0) as u64);
                state
                    .queue
                    .acknowledge(&entry.key, quantity, entry.position, dispatched_at);
                state.counters.acknowledged += 1;
                state.counters.propagation.record(latency);
                if quantity == 0 {
                    state.counters.zero.record(latency);
                }
                if latency < Duration::from_secs(1) {
                    state.counters.under_1s += 1;
                }
                stats::record_propagation(channel.id(), latency);
                track(&mut state, &entry.key, entry.position, false);
                if queued {
                    let verify_at = now + channel.spec.adapter.verify_delay();
                    schedule_verification(
                        &mut state,
                        shared,
                        channel.id(),
                        verify_at,
                        Verification {
                            key: entry.key.clone(),
                            quantity,
                            position: entry.position,
                            sent_at: dispatched_at,
                        },
                    );
                }
                events.push(SyncEvent::Acknowledged {
                    channel: channel.id().clone(),
                    sku: entry.key.sku.clone(),
                    location: entry.key.location.clone(),
                    quantity,
                    position: entry.position,
                    latency_ms: latency.as_secs_f64() * 1_000.0,
                    queued,
                });
            }
            EntryOutcome::Failed(failure) => {
                events.push(fail_entry(
                    &mut state,
                    shared,
                    channel,
                    &entry.key,
                    entry.position,
                    failure,
                    now,
                ));
            }
        }
    }
    drop(state);
    for event in events {
        let _ = shared.events.send(event);
    }
}

fn fail_entry(
    state: &mut ChannelState,
    shared: &Shared,
    channel: &Channel,
    key: &SyncKey,
    position: Position,
    failure: Failure,
    now: Instant,
) -> SyncEvent {
    let attempts = state.queue.attempts(key) + 1;
    let delay = match failure.kind {
        FailureKind::Rejected => channel
            .backoff
            .slow
            .max(failure.retry_after.unwrap_or_default()),
        FailureKind::Throttled | FailureKind::Transient | FailureKind::Conflict => {
            channel.backoff.next(attempts, failure.retry_after)
        }
    };
    if failure.kind == FailureKind::Throttled {
        state.counters.rate_limited += 1;
        stats::record_rate_limited(channel.id());
    }
    state.counters.retries += 1;
    stats::record_retry(channel.id());
    *state
        .counters
        .errors
        .entry(failure.code.clone())
        .or_default() += 1;
    stats::record_error(channel.id(), &failure.code);
    state.counters.last_error = Some(LastError {
        code: failure.code.clone(),
        message: failure.message.clone(),
        key: Some(key.clone()),
        at_unix_ms: shared.clock.now().unix_millis(),
    });
    tracing::debug!(channel = %channel.id(), %key, code = %failure.code, attempts, ?delay, "sync entry failed");
    let event = SyncEvent::Error {
        channel: channel.id().clone(),
        sku: Some(key.sku.clone()),
        location: key.location.clone(),
        kind: failure.kind,
        code: failure.code.clone(),
        message: failure.message.clone(),
        attempts,
    };
    state.queue.fail(key, failure, now + delay);
    track(state, key, position, true);
    event
}

fn schedule_verification(
    state: &mut ChannelState,
    shared: &Shared,
    channel: &ChannelId,
    at: Instant,
    verification: Verification,
) {
    if state.verifications.len() >= VERIFICATIONS_MAX
        && let Some((_, dropped)) = state.verifications.pop_first()
    {
        *state
            .counters
            .errors
            .entry("verification_dropped".into())
            .or_default() += 1;
        stats::record_error(channel, "verification_dropped");
        let _ = shared.events.send(SyncEvent::Error {
            channel: channel.clone(),
            sku: Some(dropped.key.sku.clone()),
            location: dropped.key.location.clone(),
            kind: FailureKind::Transient,
            code: "verification_dropped".into(),
            message: "too many values waiting to be read back".into(),
            attempts: 0,
        });
    }
    state.verification_sequence += 1;
    let sequence = state.verification_sequence;
    state.verifications.insert((at, sequence), verification);
}

/// Starts a read-back of due verifications when none is running.
fn start_verification(
    shared: &Arc<Shared>,
    channel: &Arc<Channel>,
    calls: &mut JoinSet<()>,
    now: Instant,
) {
    let due: Vec<Verification> = {
        let mut state = channel.state.lock().unwrap();
        if state.verifying > 0 {
            return;
        }
        let mut due = Vec::new();
        while due.len() < VERIFY_BATCH_MAX {
            match state.verifications.first_key_value() {
                Some(((at, _), _)) if *at <= now => {
                    let (_, verification) = state.verifications.pop_first().expect("first");
                    due.push(verification);
                }
                _ => break,
            }
        }
        if due.is_empty() {
            return;
        }
        state.verifying = due.len();
        due
    };
    let shared = shared.clone();
    let channel = channel.clone();
    calls.spawn(async move {
        let keys = due.iter().map(|v| v.key.clone()).collect();
        let read = channel.spec.adapter.read(keys).await;
        verify(&shared, &channel, due, read);
        channel.wake.notify_one();
    });
}

fn verify(
    shared: &Shared,
    channel: &Channel,
    due: Vec<Verification>,
    read: Result<Vec<ReadValue>, AdapterError>,
) {
    let now = Instant::now();
    let mut events = Vec::new();
    let mut state = channel.state.lock().unwrap();
    state.verifying = 0;
    let values: HashMap<SyncKey, Option<i64>> = match read {
        Ok(values) => values.into_iter().map(|v| (v.key, v.quantity)).collect(),
        Err(error) => {
            // The read failed: try the same verifications again later.
            *state.counters.errors.entry(error.code.clone()).or_default() += 1;
            stats::record_error(channel.id(), &error.code);
            let retry_at = now + channel.backoff.next(1, None).max(Duration::from_secs(1));
            for verification in due {
                schedule_verification(&mut state, shared, channel.id(), retry_at, verification);
            }
            return;
        }
    };
    for verification in due {
        let found = values.get(&verification.key).copied().flatten();
        if let Some(event) = verify_one(&mut state, shared, channel, verification, found, now) {
            events.push(event);
        }
    }
    drop(state);
    for event in events {
        let _ = shared.events.send(event);
    }
}

/// How a value a channel only queued is checked (Amazon's ACCEPTED), one read-back at a time:
///
/// 1. If a newer value for the key is known, nothing is done: that value is (or was) sent and
///    checked on its own.
/// 2. Read = sent: verified.
/// 3. Read above sent (or the item not found): the value did not land, or the platform gave
///    units back for a cancellation we will hear about. The key is sent again with its
///    **newest** value; a lower value never oversells, so this repair is immediate.
/// 4. Read below sent: the channel may have taken units for an order we have not ingested yet.
///    If the orders we were told about since the send (`SyncEngine::order_seen`) explain the
///    difference, it is verified. Otherwise it is read again until the order grace period has
///    passed since the send, and only then the key is sent again with its **newest** value:
///    repairing upward earlier would re-list a sold unit.
fn verify_one(
    state: &mut ChannelState,
    shared: &Shared,
    channel: &Channel,
    verification: Verification,
    found: Option<i64>,
    now: Instant,
) -> Option<SyncEvent> {
    let key = verification.key.clone();
    let newer = state
        .queue
        .newest(&key)
        .is_some_and(|(wanted, _)| wanted.position > verification.position);
    if newer {
        return None;
    }
    let not_applied = |state: &mut ChannelState| {
        state.counters.not_applied += 1;
        state.counters.drift += 1;
        stats::record_drift(channel.id());
        state.queue.requeue(&key, found, now);
        channel.wake.notify_one();
        Some(SyncEvent::NotApplied {
            channel: channel.id().clone(),
            sku: key.sku.clone(),
            location: key.location.clone(),
            sent: verification.quantity,
            found,
        })
    };
    match found {
        Some(found) if found == verification.quantity => {
            state.counters.verified += 1;
            None
        }
        Some(found) if found > verification.quantity => not_applied(state),
        Some(found) => {
            let missing = verification.quantity - found;
            if state.queue.orders_since(&key, verification.sent_at) >= missing {
                state.queue.observe(&key, found, Some(found));
                state.counters.verified += 1;
                return None;
            }
            let grace_end = verification.sent_at + channel.spec.order_grace;
            if now < grace_end {
                let again = (now + channel.spec.adapter.verify_delay()).min(grace_end);
                schedule_verification(state, shared, channel.id(), again, verification);
                return None;
            }
            not_applied(state)
        }
        None => not_applied(state),
    }
}

async fn bulk_sync(
    shared: Arc<Shared>,
    channel: Arc<Channel>,
    values: Vec<AtsChange>,
    sender: watch::Sender<FullSyncProgress>,
) {
    let items: Vec<BulkItem> = values
        .iter()
        .map(|change| BulkItem {
            key: SyncKey::new(change.sku.clone(), change.location.clone()),
            quantity: change.available_to_sell,
            position: change.position,
            caused_at: change.caused_at,
        })
        .collect();
    let result = channel
        .spec
        .adapter
        .bulk_sync(items.clone(), sender.clone())
        .await;
    let now = Instant::now();
    let mut progress = sender.borrow().clone();
    match result {
        Ok(outcomes) => {
            let mut refused = Vec::new();
            let mut acknowledged = Vec::new();
            {
                let mut state = channel.state.lock().unwrap();
                for (item, outcome) in items.iter().zip(outcomes) {
                    let wanted = Wanted {
                        quantity: item.quantity,
                        position: item.position,
                        caused_at: item.caused_at,
                        offered_at: now,
                        bulk: true,
                    };
                    match outcome {
                        EntryOutcome::Applied { quantity }
                        | EntryOutcome::Accepted { quantity } => {
                            state.queue.acknowledge_bulk(&item.key, wanted, now);
                            acknowledged.push(AcknowledgedValue {
                                sku: item.key.sku.clone(),
                                location: item.key.location.clone(),
                                quantity,
                                position: item.position,
                                queued: matches!(outcome, EntryOutcome::Accepted { .. }),
                            });
                        }
                        EntryOutcome::Failed(failure) => refused.push((item, failure)),
                    }
                }
            }
            // The channel shows these values now: subscribers record them as acknowledged
            // (the server's sync state, so that a restart primes them instead of syncing again).
            for values in acknowledged.chunks(FULL_SYNC_ACKS_PER_EVENT) {
                let _ = shared.events.send(SyncEvent::FullSyncAcknowledged {
                    channel: channel.id().clone(),
                    values: values.to_vec(),
                });
            }
            // Refused values go the normal way, so that they stay pending with their error.
            for (item, failure) in refused {
                let change = values
                    .iter()
                    .find(|c| c.sku == item.key.sku && c.location == item.key.location)
                    .expect("items come from values");
                channel.offer(&shared, change, now, true);
                let mut state = channel.state.lock().unwrap();
                let event = fail_entry(
                    &mut state,
                    &shared,
                    &channel,
                    &item.key,
                    item.position,
                    failure,
                    now,
                );
                drop(state);
                let _ = shared.events.send(event);
            }
        }
        Err(error) => {
            progress.error = Some(error.to_string());
            // Nothing is lost: every value goes the normal way instead.
            for change in &values {
                channel.offer(&shared, change, now, true);
            }
        }
    }
    progress.finished = true;
    let _ = sender.send(progress.clone());
    let _ = shared.events.send(SyncEvent::FullSync {
        channel: channel.id().clone(),
        progress,
    });
    channel.wake.notify_one();
}

/// Progress of a full sync: the engine's summary for a caller that only wants to wait.
pub async fn wait_full_sync(mut progress: watch::Receiver<FullSyncProgress>) -> FullSyncProgress {
    loop {
        let current = progress.borrow_and_update().clone();
        if current.finished || progress.changed().await.is_err() {
            return current;
        }
    }
}
