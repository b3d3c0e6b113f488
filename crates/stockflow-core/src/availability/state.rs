//! What the module keeps per SKU and per tenant besides the settings, and the derived index of
//! the settings that the recompute path reads (rebuilt after every settings change, never
//! serialised).

use super::amount::{Amount, Percent};
use super::attributes::SkuAttributes;
use super::channel::{Allocation, ChannelKind};
use super::holds::{ActiveSignal, PlacedHold};
use super::limits::SLOTS_MAX;
use super::policy::{Policy, Strategy, StrategyKind};
use super::velocity::Velocity;
use crate::ids::{ChannelId, LocationId, PolicyId};
use crate::outcome::{Cause, Rejection};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Channel, location and policy ids interned as small numbers, so that per-SKU state refers to
/// them in two bytes instead of a string. Append-only: a slot keeps its meaning forever.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(super) struct Slots {
    pub channels: Vec<ChannelId>,
    pub locations: Vec<LocationId>,
    pub policies: Vec<PolicyId>,
}

/// The slot of "no location" (a channel told one quantity per SKU).
pub(super) const NO_LOCATION: u16 = u16::MAX;

pub(super) fn slot_of<T: PartialEq>(slots: &[T], id: &T) -> Option<u16> {
    slots.iter().position(|s| s == id).map(|i| i as u16)
}

/// Interns ids, refusing when the table would exceed its limit (checked before anything else
/// changes: `missing` tells how many would be added).
pub(super) fn intern<T: PartialEq + Clone>(slots: &mut Vec<T>, id: &T) -> u16 {
    match slot_of(slots, id) {
        Some(slot) => slot,
        None => {
            slots.push(id.clone());
            (slots.len() - 1) as u16
        }
    }
}

pub(super) fn check_room<'a, T: PartialEq + 'a>(
    slots: &[T],
    ids: impl IntoIterator<Item = &'a T>,
) -> Result<(), Rejection> {
    let missing = ids
        .into_iter()
        .filter(|id| slot_of(slots, id).is_none())
        .count();
    if slots.len() + missing > SLOTS_MAX {
        return Err(Rejection::TooManyItems {
            field: "ids over the tenant's life".to_owned(),
            count: (slots.len() + missing) as u64,
            limit: SLOTS_MAX as u64,
        });
    }
    Ok(())
}

/// Everything kept about one SKU. Small when nothing applies: empty parts are not serialised.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(super) struct SkuState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Box<SkuAttributes>>,
    #[serde(default, skip_serializing_if = "Velocity::is_empty")]
    pub velocity: Velocity,
    /// Levels of dynamic policies above zero.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dynamic: Vec<DynamicLevel>,
    /// Units picked since the end of as-picked time windows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub picked_after_window: Vec<WindowPicks>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<PlacedHold>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<ActiveSignal>,
    /// What each policy asked of each channel at the last recomputation: a difference is a
    /// buffer change, audited.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<Level>,
    /// The last ATS emitted per channel (x location), so that only changes are emitted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emitted: Vec<Emitted>,
    /// A fingerprint of the asks `levels` was computed from: while it matches, no buffer of
    /// this SKU changed and the levels are not compared one by one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub levels_key: u64,
    /// Demand or a signal arrived since dynamic levels were last raised to what they call for.
    #[serde(default, skip_serializing_if = "is_false")]
    pub demand_pending: bool,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl SkuState {
    /// A copy with what explaining the SKU reads, without what only recomputation keeps (the
    /// levels and values last emitted).
    pub fn for_explanation(&self) -> SkuState {
        SkuState {
            attributes: self.attributes.clone(),
            velocity: self.velocity,
            dynamic: self.dynamic.clone(),
            picked_after_window: self.picked_after_window.clone(),
            holds: self.holds.clone(),
            signals: self.signals.clone(),
            levels: Vec::new(),
            emitted: Vec::new(),
            levels_key: self.levels_key,
            demand_pending: self.demand_pending,
        }
    }

    pub fn dynamic_due(&self) -> Option<Timestamp> {
        self.dynamic.iter().map(|d| d.next_step_at).min()
    }

    pub fn picked_after(&self, policy_slot: u16) -> i64 {
        self.picked_after_window
            .iter()
            .find(|p| p.policy == policy_slot)
            .map_or(0, |p| p.picked)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct DynamicLevel {
    pub policy: u16,
    pub level: Percent,
    /// When the level is next compared with what demand calls for (and lowered by a step if
    /// demand calls for less).
    pub next_step_at: Timestamp,
    /// A step lowered it: from then on only a new surge (a step or more above it) raises it
    /// again, so that a reading wavering by a point does not make it flap.
    #[serde(default)]
    pub decaying: bool,
}

impl DynamicLevel {
    /// Raises the level to `target` when demand calls for more (see `decaying`).
    pub fn raise_to(&mut self, target: super::amount::Percent, step: super::amount::Percent) {
        let surge = target.basis_points() >= self.level.basis_points() + step.basis_points();
        if target > self.level && (!self.decaying || surge) {
            self.level = target;
            self.decaying = false;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct WindowPicks {
    pub policy: u16,
    pub picked: i64,
}

/// What a buffer asks, independent of stock: an amount, less the units already given back
/// (as-picked releases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Want {
    pub amount: Amount,
    pub less: i64,
}

impl Want {
    pub fn of(amount: Amount) -> Want {
        Want { amount, less: 0 }
    }

    pub fn is_nothing(&self) -> bool {
        match self.amount {
            Amount::Units(units) => units <= self.less,
            Amount::Percent(percent) => percent.basis_points() <= 0,
        }
    }

    /// For ordering two wants of one buffer (grown or decayed).
    pub fn magnitude(&self) -> i64 {
        match self.amount {
            Amount::Units(units) => units - self.less,
            Amount::Percent(percent) => percent.basis_points() - self.less,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Level {
    pub policy: u16,
    pub channel: u16,
    pub strategy: StrategyKind,
    pub want: Want,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Emitted {
    pub channel: u16,
    /// [`NO_LOCATION`] for channels told per SKU.
    pub location: u16,
    pub available_to_sell: i64,
    pub withheld: i64,
}

/// A settings change reaches every SKU a few hundred at a time, one tick after another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Sweep {
    /// The last SKU done; `None` before the first.
    pub after: Option<crate::ids::Sku>,
    /// When the sweep was asked for: its deadline (it is due at once).
    pub requested_at: Timestamp,
    /// The ingest time of what caused it, for the ATS changes it emits.
    pub caused_at: Timestamp,
    pub cause: Cause,
}

/// The settings as the recompute path reads them: positions instead of ids, shares of
/// channel-aware policies worked out per channel. Derived; rebuilt when stale.
#[derive(Debug, Clone, Default)]
pub(super) struct Compiled {
    pub fresh: bool,
    /// A hash of the settings the asks depend on (channels, policies, measured cancellation
    /// rates): part of every SKU's levels key.
    pub fingerprint: u64,
    /// In id order.
    pub channels: Vec<CompiledChannel>,
    /// Policies applied by at least one channel, in id order (at most 64: selection is a mask).
    pub policies: Vec<CompiledPolicy>,
    /// Distinct locations of all channels, in id order.
    pub locations: Vec<CompiledLocation>,
    /// Indices in `policies` of the dynamic ones.
    pub dynamic: Vec<u8>,
    /// Channels grouped by shape (same locations in the same order, same components, same
    /// allocation: the same numbers for any SKU), in order of their first channel. Each group
    /// is computed once per SKU (unless a hold of the SKU names channels).
    pub shapes: Vec<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub(super) struct CompiledChannel {
    pub id: ChannelId,
    pub slot: u16,
    pub kind: ChannelKind,
    pub per_location: bool,
    pub allocation: Allocation,
    /// Indices in [`Compiled::locations`], highest priority first.
    pub locations: Vec<u8>,
    /// The id and slot of each of `locations`.
    pub location_ids: Vec<LocationId>,
    pub location_slots: Vec<u16>,
    /// The policies it applies, in its order.
    pub components: Vec<ChannelComponent>,
    pub cancellation_rate: Option<Percent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ChannelComponent {
    /// Index in [`Compiled::policies`].
    pub policy: u8,
    /// The policy's share on this channel when it is channel-aware.
    pub share: Option<Percent>,
}

#[derive(Debug, Clone)]
pub(super) struct CompiledPolicy {
    pub slot: u16,
    pub policy: Policy,
}

#[derive(Debug, Clone)]
pub(super) struct CompiledLocation {
    pub id: LocationId,
    pub slot: u16,
}

impl Compiled {
    pub fn policy_index(&self, slot: u16) -> Option<usize> {
        self.policies.iter().position(|p| p.slot == slot)
    }

    pub fn is_dynamic_slot(&self, slot: u16) -> bool {
        self.dynamic
            .iter()
            .any(|&index| self.policies[index as usize].slot == slot)
    }

    pub fn dynamic_settings(&self, slot: u16) -> Option<&super::policy::DynamicSettings> {
        let index = self.policy_index(slot)?;
        match &self.policies[index].policy.strategy {
            Strategy::Dynamic(settings) => Some(settings),
            _ => None,
        }
    }
}

/// A derived value that does not take part in equality or serialisation.
#[derive(Debug, Clone, Default)]
pub(super) struct Derived<T>(pub T);

impl<T> PartialEq for Derived<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
