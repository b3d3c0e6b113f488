//! Availability per channel: channel settings, SKU attributes, buffer policies, holds, signals,
//! the velocity tracker, and the available-to-sell (ATS) computation with its explanation
//! (DESIGN.md section 2). Pure: a function of ledger stock, these settings, the demand and
//! signals recorded, and the time passed in. No IO, no clock; every map is ordered.
//!
//! # Layout
//!
//! - `amount.rs`: [`Percent`] (basis points), [`Ratio`] (thousandths), [`Amount`], roundings.
//! - `channel.rs`: [`ChannelConfig`] and its [`Allocation`] rules.
//! - `attributes.rs`: [`SkuAttributes`] and the [`Selector`] that tiers policies.
//! - `policy.rs`: [`Policy`] and the four strategies.
//! - `velocity.rs`: the per-SKU velocity tracker and the per-channel cancellation rate.
//! - `holds.rs`: operators' [`Hold`]s and surge [`Signal`]s.
//! - `state.rs`: per-SKU state, interned ids, and the derived index the hot path reads.
//! - `compute.rs`: the ATS of one SKU on one channel (hot path, no allocation).
//! - `recompute.rs`: emitting changed ATS values and auditing changed buffers.
//! - `apply.rs`: commands (validated whole before anything changes).
//! - `tick.rs`: what time changes: expiries, decay steps, windows, settings sweeps.
//! - `explain.rs`: explanations in words, and the withheld listing.
//! - `bench.rs`: a workload for the `bench` command.
//! - `limits.rs`: every limit.
//!
//! # How buffers combine (the rules tests hold this module to)
//!
//! A buffer component is one policy applied by a channel to a SKU it selects, or one operator
//! hold. For each SKU x channel x location, highest-priority location first:
//!
//! 1. `available` is the location's available, counted from 0 when negative.
//! 2. Components **add up**, in a fixed order: the channel's policies in the order it lists them,
//!    then holds by id. Each takes what it asks, capped at what is still left at the location:
//!    so `withheld <= available` and the components always sum to `withheld`. A share (a
//!    percentage) asks `ceil(share x available)` at each location; whole units without a
//!    location are taken from the channel's locations in priority order.
//! 3. `sellable = available - withheld`, summed over the channel's locations.
//! 4. The channel's allocation rules apply to that sum: a fixed allocation shows
//!    `min(fixed, sellable)`; otherwise a percentage shows `floor(share x sellable)`, then at
//!    most `maximum`; then below `floor` the channel is shown 0. For channels told per
//!    location, the total shown is taken from the locations in priority order.
//!
//! Rounding: every rounding goes towards showing less (buffers round up, allocations round
//! down), withheld units are whole, the ATS is never negative and never more than the sum of
//! the channel's locations' available (a property test checks this for arbitrary settings).
//!
//! Strategies: static asks a fixed amount; dynamic asks a share from its curve at the larger of
//! the measured velocity ratio and the strongest surge signal, rising at once and falling by at
//! most its decay per step; channel-aware asks `min(maximum, base x channel factor + measured
//! cancellation rate x weight)`; a time window asks its amount while open and releases it in
//! steps or as picks complete after its end.
//!
//! # Effects
//!
//! A "buffer" is what one policy (or hold) asks of one channel for one SKU, independent of the
//! stock; a change of it (applied, grown, decayed, released) is an [`AuditChange::Buffer`]
//! entry (its before and after are the units it withholds on its own) and counted in
//! [`Outcome::buffer_changes`]. Stock moving under an unchanged ask is not a buffer change; it
//! shows in the [`AtsChange`]s. Every change of what a channel may sell is an [`AtsChange`].
//!
//! **Architecture Invariant:** the recompute path touches one SKU, allocates nothing and formats
//! nothing unless a buffer changed or a value is emitted; a tick touches only due SKUs, at most
//! [`limits::TICK_SKUS_MAX`]; no call walks the catalogue except [`Availability::withheld`] (a
//! read) and settings sweeps (bounded per tick).
//!
//! [`AuditChange::Buffer`]: crate::outcome::AuditChange::Buffer
//! [`Outcome::buffer_changes`]: crate::outcome::Outcome::buffer_changes
//! [`AtsChange`]: crate::outcome::AtsChange

mod amount;
mod apply;
mod attributes;
pub mod bench;
mod channel;
mod compute;
mod explain;
mod holds;
pub mod limits;
mod policy;
mod recompute;
mod state;
mod tick;
mod velocity;

pub use amount::{Amount, Percent, Ratio};
pub use attributes::{Selector, SkuAttributes};
pub use channel::{Allocation, ChannelConfig, ChannelKind, ChannelLocation, ChannelRules};
pub use explain::{
    BufferComponent, ChannelAvailability, ExplainInputs, LocationAvailability, WithheldEntry,
};
pub use holds::{ActiveSignal, Hold, PlacedHold, SIGNAL_MULTIPLIER_MAX, Signal};
pub use policy::{
    ChannelAwareSettings, CurvePoint, DynamicSettings, Policy, Release, Strategy, StrategyKind,
    TimeWindowSettings, WindowPhase, default_curve,
};
pub use velocity::{
    BASELINE_SECONDS, CANCELLATION_SAMPLE_UNITS_MIN, LONG_MEMORY_SECONDS, RECENT_WINDOW_SECONDS,
    Velocity, VelocityReading,
};

use crate::envelope::Position;
use crate::ids::{ChannelId, PolicyId, Sku, TenantId};
use crate::outcome::{Cause, Outcome};
use crate::quantity::Quantities;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use state::{Compiled, Derived, SkuState, Slots, Sweep};
use std::collections::{BTreeMap, BTreeSet};
use velocity::CancellationTracker;

/// The stock of one SKU at every location that has held it, as the ledger keeps it.
pub type SkuStock = BTreeMap<crate::ids::LocationId, Quantities>;

/// A channel with its rules, as [`Availability::settings_view`] shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSettings {
    pub config: ChannelConfig,
    pub rules: ChannelRules,
    /// The measured cancellation rate channel-aware policies use (`None` until measured).
    pub cancellation_rate: Option<Percent>,
}

/// The availability settings of a tenant: what `GET /v1/channels`, `/v1/policies` and
/// `/v1/buffers/holds` show.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SettingsView {
    pub channels: Vec<ChannelSettings>,
    pub policies: Vec<Policy>,
    pub holds: Vec<PlacedHold>,
    /// A settings change is still on its way through the SKUs (their views may not show it yet).
    pub sweeping: bool,
}

/// Channel, policy, attribute, hold and signal commands (journaled, so serialisable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AvailabilityCommand {
    /// Creates or replaces a channel's kind and locations, keeping its rules (a new channel has
    /// none: it shows everything available).
    UpsertChannel(ChannelConfig),
    /// Creates or replaces a channel with its rules, in one step (its policies must exist).
    ConfigureChannel {
        config: ChannelConfig,
        rules: ChannelRules,
    },
    RemoveChannel {
        channel: ChannelId,
    },
    /// Creates or replaces a buffer policy (boxed: the largest command).
    UpsertPolicy(Box<Policy>),
    /// Removes a policy no channel applies.
    RemovePolicy {
        policy: PolicyId,
    },
    /// Sets (replaces) the attributes of up to [`limits::ATTRIBUTE_ITEMS_MAX`] SKUs.
    SetSkuAttributes {
        items: Vec<SkuAttributesItem>,
    },
    /// Places (or replaces, by id) an operator's hold.
    PlaceHold(Hold),
    /// Releases an operator's hold before its expiry.
    ReleaseHold {
        hold: PolicyId,
    },
    /// Records an external surge signal (one per SKU and source; a new one replaces it).
    RecordSignal(Signal),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkuAttributesItem {
    pub sku: Sku,
    pub attributes: SkuAttributes,
}

/// Where and when a recomputation happens: handed in by the ledger.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub tenant: &'a TenantId,
    /// The envelope's time.
    pub now: Timestamp,
    /// The envelope's journal position: the version of every value computed here.
    pub position: Position,
    /// When the input that caused this reached stockflow (equal to `now` except for work that
    /// a later input triggered).
    pub caused_at: Timestamp,
    /// Who caused it, for audit entries ("stockflow" for time).
    pub actor: &'a str,
}

/// Availability state of one tenant.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Availability {
    channels: BTreeMap<ChannelId, ChannelConfig>,
    /// Allocation rules and policies per channel (absent: none).
    #[serde(default)]
    rules: BTreeMap<ChannelId, ChannelRules>,
    policies: BTreeMap<PolicyId, Policy>,
    /// Per SKU: attributes, demand, buffer levels, holds, signals, last values emitted.
    skus: BTreeMap<Sku, SkuState>,
    /// Per channel: reserved and cancelled units, for channel-aware policies.
    #[serde(default)]
    channel_demand: BTreeMap<ChannelId, CancellationTracker>,
    #[serde(default)]
    slots: Slots,
    /// Hold id -> its SKU.
    #[serde(default)]
    holds: BTreeMap<PolicyId, Sku>,
    #[serde(default)]
    hold_expiries: BTreeSet<(Timestamp, PolicyId)>,
    #[serde(default)]
    signal_expiries: BTreeSet<(Timestamp, Sku)>,
    /// SKUs with a dynamic level, by their next decay step.
    #[serde(default)]
    dynamic_steps: BTreeSet<(Timestamp, Sku)>,
    /// Time-window policies -> how many of their transitions were handled.
    #[serde(default)]
    windows: BTreeMap<PolicyId, u32>,
    /// A settings change on its way through the SKUs.
    #[serde(default)]
    sweep: Option<Sweep>,
    #[serde(skip)]
    compiled: Derived<std::sync::Arc<Compiled>>,
}

impl Availability {
    /// A state with these channels (no rules) and nothing else, for fixtures and tests; live
    /// changes go through [`Availability::apply_command`].
    pub fn with_channels(channels: impl IntoIterator<Item = ChannelConfig>) -> Self {
        let mut availability = Availability::default();
        for config in channels {
            state::intern(&mut availability.slots.channels, &config.id);
            for location in &config.locations {
                state::intern(&mut availability.slots.locations, &location.location);
            }
            availability.channels.insert(config.id.clone(), config);
        }
        availability
    }

    pub fn channel(&self, id: &ChannelId) -> Option<&ChannelConfig> {
        self.channels.get(id)
    }

    /// Every channel, in id order.
    pub fn channels(&self) -> impl Iterator<Item = &ChannelConfig> {
        self.channels.values()
    }

    /// A channel's allocation rules and policies (`None`: none set).
    pub fn channel_rules(&self, id: &ChannelId) -> Option<&ChannelRules> {
        self.rules.get(id)
    }

    pub fn policy(&self, id: &PolicyId) -> Option<&Policy> {
        self.policies.get(id)
    }

    /// Every policy, in id order.
    pub fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.policies.values()
    }

    pub fn sku_attributes(&self, sku: &Sku) -> Option<&SkuAttributes> {
        self.skus.get(sku)?.attributes.as_deref()
    }

    /// The holds on `sku`, by id.
    pub fn holds_on(&self, sku: &Sku) -> &[PlacedHold] {
        self.skus.get(sku).map_or(&[], |s| &s.holds)
    }

    /// The signals recorded on `sku` that are still active at `now`.
    pub fn signals_on(&self, sku: &Sku, now: Timestamp) -> Vec<&ActiveSignal> {
        self.skus.get(sku).map_or(Vec::new(), |s| {
            s.signals.iter().filter(|a| a.expires_at > now).collect()
        })
    }

    /// The tenant's availability settings as of `now`, for reading over HTTP: channels with their
    /// rules, policies, and every hold still in force. Small (no per-SKU state but holds).
    pub fn settings_view(&self, now: Timestamp) -> SettingsView {
        let channels = self
            .channels
            .values()
            .map(|config| ChannelSettings {
                config: config.clone(),
                rules: self.rules.get(&config.id).cloned().unwrap_or_default(),
                cancellation_rate: self.cancellation_rate(&config.id),
            })
            .collect();
        let holds = self
            .holds
            .iter()
            .filter_map(|(id, sku)| {
                self.holds_on(sku)
                    .iter()
                    .find(|placed| &placed.hold.id == id)
            })
            .filter(|placed| placed.hold.expires_at.is_none_or(|at| at > now))
            .cloned()
            .collect();
        SettingsView {
            channels,
            policies: self.policies.values().cloned().collect(),
            holds,
            sweeping: self.sweep.is_some(),
        }
    }

    /// Demand of `sku` as the velocity tracker sees it at `now` (for alerts and dashboards).
    pub fn velocity(&self, sku: &Sku, now: Timestamp) -> Option<VelocityReading> {
        let state = self.skus.get(sku)?;
        (!state.velocity.is_empty()).then(|| state.velocity.read(now))
    }

    /// The cancellation rate channel-aware policies use for `channel` (`None` until measured).
    pub fn cancellation_rate(&self, channel: &ChannelId) -> Option<Percent> {
        self.channel_demand.get(channel)?.effective_rate()
    }

    /// Demand seen by the ledger: a reservation granted, or units picked that no reservation
    /// held. Feeds the velocity tracker (the channel is not needed: velocity is per SKU).
    pub fn record_demand(
        &mut self,
        sku: &Sku,
        _channel: Option<&ChannelId>,
        quantity: i64,
        now: Timestamp,
    ) {
        if quantity <= 0 {
            return;
        }
        if !self.skus.contains_key(sku) {
            self.skus.insert(sku.clone(), SkuState::default());
        }
        let state = self.skus.get_mut(sku).expect("inserted above");
        state.velocity.record(quantity, now);
        state.demand_pending = true;
    }

    /// Units of `sku` picked (any pick, from a reservation or not): releases as-picked time
    /// windows that have ended. The ledger recomputes the SKU afterwards, which audits it.
    pub fn record_pick(&mut self, sku: &Sku, quantity: i64, now: Timestamp) {
        if quantity <= 0 {
            return;
        }
        self.ensure_compiled();
        let compiled = &self.compiled.0;
        let Some(state) = self.skus.get_mut(sku) else {
            return;
        };
        let selected = compute::selection(compiled, sku, Some(&*state));
        for (index, policy) in compiled.policies.iter().enumerate() {
            let Strategy::TimeWindow(settings) = &policy.policy.strategy else {
                continue;
            };
            if selected & (1 << index) == 0 || settings.phase(now) != WindowPhase::ReleasingAsPicked
            {
                continue;
            }
            match state
                .picked_after_window
                .iter_mut()
                .find(|p| p.policy == policy.slot)
            {
                Some(picks) => picks.picked = picks.picked.saturating_add(quantity),
                None => state.picked_after_window.push(state::WindowPicks {
                    policy: policy.slot,
                    picked: quantity,
                }),
            }
        }
    }

    /// A reservation of `quantity` units was granted to `channel`: the denominator of the
    /// channel's measured cancellation rate.
    pub fn record_reservation(
        &mut self,
        channel: &ChannelId,
        _sku: &Sku,
        quantity: i64,
        now: Timestamp,
    ) {
        self.record_channel_demand(channel, now, |tracker| {
            tracker.record_reserved(quantity, now)
        });
    }

    /// `quantity` reserved units of `channel` were given back before being picked (an order
    /// cancelled, a reservation released or expired): the numerator of its cancellation rate.
    /// When the rate in use moves by a whole point, the channel's SKUs are re-evaluated by a
    /// sweep.
    pub fn record_cancellation(
        &mut self,
        channel: &ChannelId,
        _sku: &Sku,
        quantity: i64,
        now: Timestamp,
    ) {
        self.record_channel_demand(channel, now, |tracker| {
            tracker.record_cancelled(quantity, now)
        });
    }

    fn record_channel_demand(
        &mut self,
        channel: &ChannelId,
        now: Timestamp,
        record: impl FnOnce(&mut CancellationTracker) -> bool,
    ) {
        if !self.channels.contains_key(channel) {
            return;
        }
        let tracker = self.channel_demand.entry(channel.clone()).or_default();
        if record(tracker) {
            let rate = tracker.effective_rate();
            self.invalidate();
            let what = match rate {
                Some(rate) => format!("cancellation rate of {channel} is now {rate}"),
                None => format!("cancellation rate of {channel} is no longer measured"),
            };
            self.request_sweep(now, now, Cause::Time { what });
        }
    }

    /// Channels configured.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Recomputes what every channel may sell of `sku` and appends the values that changed (and
    /// the buffer changes, as audit entries) to `out`. Call once per touched SKU per request,
    /// after [`Availability::record_demand`].
    pub fn recompute(
        &mut self,
        context: &Context<'_>,
        sku: &Sku,
        stock: &SkuStock,
        out: &mut Outcome,
    ) {
        self.recompute_sku(context, recompute::CauseOf::Demand, sku, stock, out);
    }

    /// [`Availability::recompute`] naming the cause of any buffer change it audits (the event or
    /// command of the request).
    pub fn recompute_caused(
        &mut self,
        context: &Context<'_>,
        cause: &Cause,
        sku: &Sku,
        stock: &SkuStock,
        out: &mut Outcome,
    ) {
        self.recompute_sku(context, recompute::CauseOf::Given(cause), sku, stock, out);
    }
}
