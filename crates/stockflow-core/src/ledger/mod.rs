//! The ledger: the state machine that applies envelopes (events, commands, ticks) to the stock
//! of every tenant x SKU x location, with exactly-once ordered ingestion and two-step
//! reservations. Pure and deterministic: the same envelopes give the same state, byte for byte.
//!
//! # Layout
//!
//! - `mod.rs`: the state, [`Ledger::apply`] (deadlines first, then the input, then the
//!   availability recomputation) and the read helpers.
//! - `transaction.rs`: mutation helpers with the undo log that makes a request atomic, and the
//!   effects collected on the way.
//! - `ingest.rs`: exactly-once, per-source ordered ingestion (deduplication, held events, gaps,
//!   late events of a given-up gap).
//! - `effects.rs`: what each event type does to the quantities and reservations.
//! - `reservations.rs`: reserve, confirm, release, expire; channel orders (oversells, early
//!   cancellations).
//! - `picked_ahead.rs`: units picked for a reservation before it arrived, counted as picked
//!   when it does.
//! - `validate.rs`: the checks that need no state, done for a whole request before any change.
//! - `fingerprint.rs`: canonical fingerprints of event ids, event bodies and reserve requests.
//! - `event_index.rs`: the forever-growing set of event ids seen, fast at any size.

mod effects;
pub mod event_index;
pub mod fingerprint;
mod ingest;
mod picked_ahead;
mod reservations;
mod transaction;
mod validate;

use crate::availability::{Availability, ChannelAvailability, Context, ExplainInputs, SkuStock};
use crate::command::{Command, LedgerCommand};
use crate::envelope::{Envelope, Input};
use crate::event::Event;
use crate::ids::{ActorId, LocationId, ReservationId, Sku, SourceId, TenantId};
use crate::outcome::{Outcome, Rejection, Reply};
use crate::reservation::Reservation;
use crate::time::Timestamp;
use event_index::EventIndex;
use fingerprint::BodyFingerprints;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use transaction::{DemandKind, Transaction};

/// The actor recorded for changes made by the passing of time.
pub const TIME_ACTOR: &str = "stockflow";

/// Limits and time limits of the ledger. Not journaled: part of the configuration a journal is
/// replayed with (a replay with other limits may give another state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LedgerConfig {
    /// The most events held per source while waiting for a missing `seq`.
    pub held_events_per_source_max: usize,
    /// How long a held event waits for its gap to fill before the gap is given up on. Applied
    /// when the event is held (its release time is stored with it).
    pub held_timeout_micros: i64,
    /// The most given-up gaps remembered per source (as ranges of `seq`), so that an event of
    /// one that arrives after all is applied late instead of dropped. Past the limit the lowest
    /// range is forgotten: a late event of it is answered `duplicate`, as before a gap was
    /// remembered at all. 0 remembers none.
    pub given_up_ranges_per_source_max: usize,
    /// The most reservations remembered per tenant with units picked for them before they
    /// arrived (a `picked` event naming a reservation not seen yet). Past the limit the record
    /// picked first is forgotten: its reservation, when it arrives, reserves those units again.
    /// 0 remembers none.
    pub picked_ahead_max: usize,
    /// How long units picked ahead of their reservation are remembered; older records are
    /// forgotten at the tenant's next input.
    pub picked_ahead_max_age_micros: i64,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            held_events_per_source_max: 1000,
            held_timeout_micros: 30 * 1_000_000,
            given_up_ranges_per_source_max: 64,
            picked_ahead_max: 10_000,
            picked_ahead_max_age_micros: 72 * 3600 * 1_000_000,
        }
    }
}

/// The whole state. Serialisable for snapshots.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Ledger {
    pub tenants: BTreeMap<TenantId, TenantLedger>,
    /// How every tenant's `events_seen` fingerprints event bodies, for the ledger's whole life:
    /// a snapshot written before schemes were recorded used SHA-256 and goes on with it.
    #[serde(default = "BodyFingerprints::unrecorded")]
    body_fingerprints: BodyFingerprints,
}

/// The state of one tenant.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TenantLedger {
    /// Stock per SKU, per location.
    pub stock: BTreeMap<Sku, SkuStock>,
    /// Every reservation ever made, resolved ones included: reservation ids are deduplicated
    /// forever, like event ids. A cancellation that arrived before its reservation leaves a
    /// tombstone here (released, no lines).
    pub reservations: BTreeMap<ReservationId, Reservation>,
    pub availability: Availability,
    /// The order in which locations are tried for reservation lines without a location, when
    /// the reservation's channel does not configure its own (`SetLocationPriority`).
    pub location_priority: Vec<LocationId>,
    /// Every location that ever held stock of any SKU (distinguishes an unknown location from a
    /// known one where a SKU has none).
    pub locations: BTreeSet<LocationId>,
    /// Per producer: the last `seq` applied and the events held until their gap fills.
    pub sources: BTreeMap<SourceId, SourceState>,
    /// Every event applied or held, forever: the fingerprint of its id -> of its body.
    pub events_seen: EventIndex,
    /// Provisional reservations by expiry time: the only ones time can change.
    pub expiries: BTreeSet<(Timestamp, ReservationId)>,
    /// Sources with held events, by the release time of their earliest-released held event.
    pub held_deadlines: BTreeSet<(Timestamp, SourceId)>,
    /// Units picked for reservations not seen yet, by reservation id: when the reservation
    /// arrives they count as picked instead of being reserved again. Never holds the id of a
    /// known reservation (inserting a reservation consumes its record).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub picked_ahead: BTreeMap<ReservationId, PickedAhead>,
    /// `picked_ahead` by the time of each record's first pick: the oldest are forgotten first.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub picked_ahead_by_time: BTreeSet<(Timestamp, ReservationId)>,
}

/// Units picked for one reservation before the ledger saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickedAhead {
    /// When the first of these picks was applied (the record's age counts from it).
    pub first_picked_at: Timestamp,
    /// Per SKU x location, in that order; at most [`crate::command::RESERVATION_LINES_MAX`].
    pub lines: Vec<PickedAheadLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickedAheadLine {
    pub sku: Sku,
    pub location: LocationId,
    pub quantity: i64,
}

/// The ingestion state of one producer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SourceState {
    /// The last `seq` applied (0 before the first event).
    pub last_seq: u64,
    /// Events that arrived ahead of a missing `seq`, by `seq`.
    pub held: BTreeMap<u64, HeldEvent>,
    /// The earliest `release_at` among `held`: this source's key in the tenant's held index.
    pub release_at: Option<Timestamp>,
    /// The `seq`s of given-up gaps that have not arrived since, as sorted, disjoint ranges below
    /// `last_seq`; at most [`LedgerConfig::given_up_ranges_per_source_max`] (the lowest are
    /// forgotten first). An unseen event of one is applied late.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub given_up: Vec<SeqRange>,
}

/// The `seq`s `first..=last` of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRange {
    pub first: u64,
    pub last: u64,
}

impl SeqRange {
    pub fn contains(&self, seq: u64) -> bool {
        (self.first..=self.last).contains(&seq)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldEvent {
    pub event: Event,
    pub held_at: Timestamp,
    /// When the gap before this event is given up on if it has not filled.
    pub release_at: Timestamp,
}

/// What `GET /v1/skus/{sku}` shows: the stock, and what each channel may sell with every buffer
/// explained. The explanation is built on first read, from inputs captured with the view (a
/// writer publishes a view per changed SKU per batch; most are replaced before anyone reads
/// them, so their words are never built).
#[derive(Debug, Clone)]
pub struct SkuView {
    pub sku: Sku,
    pub stock: SkuStock,
    channels: ViewChannels,
}

#[derive(Debug, Clone)]
struct ViewChannels {
    inputs: Option<Box<ExplainInputs>>,
    explained: OnceLock<Vec<ChannelAvailability>>,
}

impl SkuView {
    /// A view whose channels are already explained.
    pub fn new(sku: Sku, stock: SkuStock, channels: Vec<ChannelAvailability>) -> Self {
        Self {
            sku,
            stock,
            channels: ViewChannels {
                inputs: None,
                explained: OnceLock::from(channels),
            },
        }
    }

    /// A view whose channels are explained from `inputs` when first read.
    pub fn deferred(sku: Sku, stock: SkuStock, inputs: ExplainInputs) -> Self {
        Self {
            sku,
            stock,
            channels: ViewChannels {
                inputs: Some(Box::new(inputs)),
                explained: OnceLock::new(),
            },
        }
    }

    /// What each channel may sell of the SKU, and why (built once, on the first call).
    pub fn channels(&self) -> &[ChannelAvailability] {
        self.channels.explained.get_or_init(|| {
            self.channels
                .inputs
                .as_ref()
                .map_or_else(Vec::new, |inputs| inputs.explain(&self.sku, &self.stock))
        })
    }
}

impl PartialEq for SkuView {
    fn eq(&self, other: &Self) -> bool {
        self.sku == other.sku && self.stock == other.stock && self.channels() == other.channels()
    }
}

impl Serialize for SkuView {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("SkuView", 3)?;
        out.serialize_field("sku", &self.sku)?;
        out.serialize_field("stock", &self.stock)?;
        out.serialize_field("channels", self.channels())?;
        out.end()
    }
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty ledger that fingerprints event bodies with `scheme`: to replay a journal from
    /// empty into the same state as the snapshots of a ledger that uses it.
    pub fn with_body_fingerprints(scheme: BodyFingerprints) -> Self {
        Self {
            tenants: BTreeMap::new(),
            body_fingerprints: scheme,
        }
    }

    pub fn body_fingerprints(&self) -> BodyFingerprints {
        self.body_fingerprints
    }

    /// Applies one envelope. `envelope.recorded_at` is "now"; deadlines that passed by then
    /// (reservation TTLs, held-event time limits, buffer steps) are handled first, and are kept
    /// even when the request itself is refused: `persist` may then be true beside a
    /// [`Reply::Rejected`], and the envelope must be journaled all the same (its replay refuses
    /// the request again).
    pub fn apply(&mut self, config: &LedgerConfig, envelope: &Envelope) -> Outcome {
        let tenant_id = &envelope.tenant;
        let created = !self.tenants.contains_key(tenant_id);
        if created {
            if matches!(envelope.input, Input::Tick) {
                return Outcome::default();
            }
            self.tenants
                .insert(tenant_id.clone(), TenantLedger::default());
        }
        let tenant = self.tenants.get_mut(tenant_id).expect("inserted above");
        let outcome = apply_to_tenant(config, self.body_fingerprints, tenant_id, tenant, envelope);
        if created && !outcome.persist {
            self.tenants.remove(tenant_id);
        }
        outcome
    }

    pub fn tenant(&self, tenant: &TenantId) -> Option<&TenantLedger> {
        self.tenants.get(tenant)
    }

    /// The SKU's stock and what each channel may sell of it, with buffers evaluated at `now`.
    pub fn sku_view_at(&self, tenant: &TenantId, sku: &Sku, now: Timestamp) -> Option<SkuView> {
        let tenant = self.tenants.get(tenant)?;
        let stock = tenant.stock.get(sku)?;
        Some(SkuView::new(
            sku.clone(),
            stock.clone(),
            tenant.availability.explain(sku, stock, now),
        ))
    }

    /// [`Ledger::sku_view_at`] with buffers evaluated at the epoch; prefer `sku_view_at` with the
    /// time of the last applied envelope once buffers depend on time.
    pub fn sku_view(&self, tenant: &TenantId, sku: &Sku) -> Option<SkuView> {
        self.sku_view_at(tenant, sku, Timestamp(0))
    }

    pub fn reservation(&self, tenant: &TenantId, id: &ReservationId) -> Option<&Reservation> {
        self.tenants.get(tenant)?.reservations.get(id)
    }

    /// The last `seq` applied from `source` (0 when none), for producers resuming a stream.
    pub fn source_last_seq(&self, tenant: &TenantId, source: &SourceId) -> u64 {
        self.tenants
            .get(tenant)
            .and_then(|t| t.sources.get(source))
            .map_or(0, |s| s.last_seq)
    }

    /// The earliest instant at which time alone changes the state; the writer sends a tick then
    /// (to each tenant [`Ledger::tenants_due`] names).
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.tenants
            .values()
            .filter_map(TenantLedger::next_deadline)
            .min()
    }

    /// The tenants with a deadline at or before `now`: each needs an `Input::Tick` envelope.
    pub fn tenants_due(&self, now: Timestamp) -> Vec<TenantId> {
        self.tenants
            .iter()
            .filter(|(_, tenant)| tenant.next_deadline().is_some_and(|at| at <= now))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

impl TenantLedger {
    /// The earliest instant at which time alone changes this tenant.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let expiry = self.expiries.first().map(|(at, _)| *at);
        let held = self.held_deadlines.first().map(|(at, _)| *at);
        [expiry, held, self.availability.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }
}

fn apply_to_tenant(
    config: &LedgerConfig,
    body_fingerprints: BodyFingerprints,
    tenant_id: &TenantId,
    tenant: &mut TenantLedger,
    envelope: &Envelope,
) -> Outcome {
    let mut transaction = Transaction::new(
        config,
        body_fingerprints,
        tenant_id,
        tenant,
        envelope.recorded_at,
        envelope.position,
    );
    transaction.run_deadlines();
    let mark = transaction.mark();
    let result = match &envelope.input {
        Input::Events(events) => transaction.ingest(events).map(Reply::Events),
        Input::Command { actor, command } => transaction.command(actor, command),
        Input::Tick => Ok(Reply::Done),
    };
    let reply = match result {
        Ok(reply) => {
            transaction.keep(mark);
            reply
        }
        Err(rejection) => {
            transaction.rollback(mark);
            Reply::Rejected(rejection)
        }
    };
    transaction.finish(reply, actor_of(&envelope.input))
}

/// Who the availability module is told caused a recomputation.
fn actor_of(input: &Input) -> &str {
    match input {
        Input::Events(events) => events.first().map_or(TIME_ACTOR, |e| e.source.as_str()),
        Input::Command { actor, .. } => actor.as_str(),
        Input::Tick => TIME_ACTOR,
    }
}

impl Transaction<'_> {
    /// Everything due at `now`, in the order it fell due: provisional reservations expire, gaps
    /// whose held events waited too long are given up on; then records of units picked ahead of
    /// their reservation that are too old are forgotten (due work, but never worth a tick of its
    /// own: it changes no quantity); then the availability module's own time-driven work.
    fn run_deadlines(&mut self) {
        loop {
            let expiry = self.tenant.expiries.first().cloned();
            let held = self.tenant.held_deadlines.first().cloned();
            match (expiry, held) {
                (Some((at, id)), held)
                    if at <= self.now && held.as_ref().is_none_or(|h| at <= h.0) =>
                {
                    self.expire(&id);
                }
                (_, Some((at, source))) if at <= self.now => self.give_up_timed_out_gap(&source),
                _ => break,
            }
        }
        self.forget_old_picked_ahead();
        // The availability module's decay steps and time windows. Its state is not covered by
        // the undo log; that is fine since deadline work is never undone.
        if self
            .tenant
            .availability
            .next_deadline()
            .is_some_and(|at| at <= self.now)
        {
            let context = Context {
                tenant: self.tenant_id,
                now: self.now,
                position: self.position,
                caused_at: self.now,
                actor: TIME_ACTOR,
            };
            let tenant = &mut *self.tenant;
            tenant
                .availability
                .tick(&context, &tenant.stock, &mut self.out);
            self.changed_elsewhere = true;
        }
    }

    fn command(&mut self, actor: &ActorId, command: &Command) -> Result<Reply, Rejection> {
        match command {
            Command::Ledger(LedgerCommand::Reserve(request)) => self.reserve(actor, request),
            Command::Ledger(LedgerCommand::Confirm {
                reservation_id,
                lines,
            }) => self.confirm(actor, reservation_id, lines.as_deref()),
            Command::Ledger(LedgerCommand::Release {
                reservation_id,
                reason,
            }) => self.release(actor, reservation_id, reason.as_deref()),
            Command::Ledger(LedgerCommand::ReserveOrder(request)) => {
                self.reserve_order(actor, request)
            }
            Command::Ledger(LedgerCommand::CancelOrder {
                reservation_id,
                reason,
            }) => self.cancel_order(actor, reservation_id, reason.as_deref()),
            Command::Ledger(LedgerCommand::SetLocationPriority { locations }) => {
                validate::location_priority(locations)?;
                self.set_location_priority(locations.clone());
                Ok(Reply::Done)
            }
            Command::Availability(command) => {
                let context = Context {
                    tenant: self.tenant_id,
                    now: self.now,
                    position: self.position,
                    caused_at: self.now,
                    actor: actor.as_str(),
                };
                let tenant = &mut *self.tenant;
                tenant.availability.apply_command(
                    &context,
                    command,
                    &tenant.stock,
                    &mut self.out,
                )?;
                // The command recomputed the SKUs it names (listed in the outcome's touched
                // SKUs); a channel or policy change reaches the others through the availability
                // module's sweep, a bounded batch per tick.
                self.changed_elsewhere = true;
                Ok(Reply::Done)
            }
        }
    }

    /// Hands demand to the availability module, recomputes what channels may sell of every
    /// touched SKU (once each), and assembles the outcome.
    fn finish(mut self, reply: Reply, actor: &str) -> Outcome {
        let context = Context {
            tenant: self.tenant_id,
            now: self.now,
            position: self.position,
            caused_at: self.now,
            actor,
        };
        let (touched_skus, touched_reservations) = self.take_touched();
        let tenant = &mut *self.tenant;
        for demand in &self.demand {
            let (sku, channel, quantity) = (&demand.sku, demand.channel.as_ref(), demand.quantity);
            let availability = &mut tenant.availability;
            match demand.kind {
                DemandKind::Reserved => {
                    availability.record_demand(sku, channel, quantity, self.now);
                    if let Some(channel) = channel {
                        availability.record_reservation(channel, sku, quantity, self.now);
                    }
                }
                DemandKind::PickedFromAvailable => {
                    availability.record_demand(sku, channel, quantity, self.now);
                }
                DemandKind::Picked => availability.record_pick(sku, quantity, self.now),
                DemandKind::Returned => {
                    if let Some(channel) = channel {
                        availability.record_cancellation(channel, sku, quantity, self.now);
                    }
                }
            }
        }
        // Usually one value per channel per touched SKU: room for them at once, rather than
        // doubling (and copying) through a request of a thousand events.
        let expected = touched_skus.len() * tenant.availability.channel_count();
        self.out.availability.reserve(expected);
        for sku in &touched_skus {
            if let Some(stock) = tenant.stock.get(sku) {
                tenant
                    .availability
                    .recompute(&context, sku, stock, &mut self.out);
            }
        }
        let persist = self.changed() || !self.demand.is_empty();
        let mut out = std::mem::take(&mut self.out);
        out.reply = reply;
        out.persist = persist;
        // Availability work (commands, ticks) lists the SKUs whose view it changed in `out`.
        let mut touched = touched_skus;
        if !out.touched_skus.is_empty() {
            touched.append(&mut out.touched_skus);
            touched.sort_unstable();
            touched.dedup();
        }
        out.touched_skus = touched;
        out.touched_reservations = touched_reservations;
        out
    }
}
