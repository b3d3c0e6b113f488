//! The ATS computation of one SKU on one channel (DESIGN.md section 2), shared by `recompute`
//! (the hot path: fixed-size arrays, no allocation, no formatting) and `explain` (which collects
//! the components through a [`Sink`] and words them afterwards).
//!
//! Per location of the channel, highest priority first: `available` (never below 0), then each
//! buffer component in turn takes what it asks, up to what is left at the location, so that the
//! components always add up to `withheld` and `withheld <= available`. Then the allocation rules
//! apply to the channel's total, and the total shown is taken from the locations in priority
//! order.
//!
//! What a policy asks of a SKU is worked out once per SKU ([`SkuInputs::wants`]); only
//! channel-aware shares differ per channel, and those are worked out once per settings change.

use super::SkuStock;
use super::amount::{Amount, Percent};
use super::holds::PlacedHold;
use super::limits::{CHANNEL_LOCATIONS_MAX, LOCATIONS_MAX, POLICIES_MAX};
use super::policy::{Strategy, WindowPhase};
use super::state::{ChannelComponent, Compiled, CompiledChannel, SkuState, Want};
use crate::ids::Sku;
use crate::time::Timestamp;

/// Available quantities up to this take the share fast path (no 128-bit arithmetic).
const SHARE_FAST_MAX: i64 = i64::MAX / 10_000 - 10_000;

/// What one SKU brings to the computation, gathered once per recompute.
pub(super) struct SkuInputs<'a> {
    pub now: Timestamp,
    /// Per [`Compiled::locations`] entry: available, never below 0.
    pub available: [i64; LOCATIONS_MAX],
    /// Bit `i`: policy `i` of [`Compiled::policies`] selects this SKU.
    pub selected: u64,
    /// Per policy of [`Compiled::policies`] that selects the SKU and is not channel-aware: what
    /// it asks now.
    pub wants: [Option<Want>; POLICIES_MAX],
    pub state: Option<&'a SkuState>,
}

impl<'a> SkuInputs<'a> {
    pub fn gather(
        compiled: &Compiled,
        stock: &SkuStock,
        state: Option<&'a SkuState>,
        selected: u64,
        now: Timestamp,
    ) -> Self {
        let mut available = [0; LOCATIONS_MAX];
        // Both are in id order: one merge instead of a look-up per location.
        let mut stock_entries = stock.iter().peekable();
        for (index, location) in compiled.locations.iter().enumerate() {
            while stock_entries
                .next_if(|(id, _)| **id < location.id)
                .is_some()
            {}
            if let Some((_, quantities)) = stock_entries.next_if(|(id, _)| **id == location.id) {
                available[index] = quantities.available().max(0);
            }
        }
        let mut wants = [None; POLICIES_MAX];
        for (index, want) in wants.iter_mut().enumerate().take(compiled.policies.len()) {
            if selected & (1 << index) != 0 {
                *want = sku_want(compiled, index, state, now);
            }
        }
        SkuInputs {
            now,
            available,
            selected,
            wants,
            state,
        }
    }

    /// A fingerprint of every policy's ask of this SKU on every channel: equal fingerprints,
    /// equal asks (the settings' own fingerprint covers channel-aware shares).
    pub fn levels_key(&self, compiled: &Compiled) -> u64 {
        let mut key = mix(compiled.fingerprint, self.selected);
        for want in self.wants.iter().take(compiled.policies.len()) {
            key = match want {
                None => mix(key, 0),
                Some(want) => {
                    let (kind, value) = match want.amount {
                        Amount::Units(units) => (1, units),
                        Amount::Percent(percent) => (2, percent.basis_points()),
                    };
                    mix(mix(mix(key, kind), value as u64), want.less as u64)
                }
            };
        }
        key
    }
}

/// A fixed, platform-independent mixing step (the multiplier of Fibonacci hashing).
pub(super) fn mix(hash: u64, value: u64) -> u64 {
    (hash ^ value)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29)
}

/// Which policies of `compiled` select the SKU.
pub(super) fn selection(compiled: &Compiled, sku: &Sku, state: Option<&SkuState>) -> u64 {
    let attributes = state.and_then(|s| s.attributes.as_deref());
    let volatility = state.map_or(Default::default(), |s| s.velocity.volatility());
    let mut selected = 0u64;
    for (index, policy) in compiled.policies.iter().enumerate() {
        if policy.policy.selector.matches(sku, attributes, volatility) {
            selected |= 1 << index;
        }
    }
    selected
}

/// What policy `index` asks of the SKU now, on every channel (`None` for channel-aware ones,
/// whose ask is per channel, and for policies that ask nothing now).
fn sku_want(
    compiled: &Compiled,
    index: usize,
    state: Option<&SkuState>,
    now: Timestamp,
) -> Option<Want> {
    let policy = &compiled.policies[index];
    let want = match &policy.policy.strategy {
        Strategy::Static { amount } => Want::of(*amount),
        Strategy::Dynamic(_) => {
            let level = state?
                .dynamic
                .iter()
                .find(|d| d.policy == policy.slot)?
                .level;
            Want::of(Amount::Percent(level))
        }
        Strategy::ChannelAware(_) => return None,
        Strategy::TimeWindow(settings) => {
            let phase = settings.phase(now);
            let amount = settings.amount_in(phase)?;
            let less = match phase {
                WindowPhase::ReleasingAsPicked => state.map_or(0, |s| s.picked_after(policy.slot)),
                _ => 0,
            };
            Want { amount, less }
        }
    };
    (!want.is_nothing()).then_some(want)
}

/// Where a component comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// Index in [`Compiled::policies`].
    Policy(u8),
    /// Index in the SKU's holds.
    Hold(u8),
}

/// Receives each component as it is taken.
pub(super) trait Sink {
    /// Whether `component` needs the units taken per location (explanations do; the recompute
    /// path does not, and skips the bookkeeping).
    const RECORDS_TAKEN: bool;
    fn component(&mut self, channel: usize, source: Source, want: Want, taken: &[i64]);
}

/// A sink for the recompute path: keeps nothing.
pub(super) struct Discard;

impl Sink for Discard {
    const RECORDS_TAKEN: bool = false;
    fn component(&mut self, _: usize, _: Source, _: Want, _: &[i64]) {}
}

/// One channel's numbers for one SKU, per location in the channel's priority order.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChannelResult {
    pub count: usize,
    pub available: [i64; CHANNEL_LOCATIONS_MAX],
    pub withheld: [i64; CHANNEL_LOCATIONS_MAX],
    pub shown: [i64; CHANNEL_LOCATIONS_MAX],
    pub available_total: i64,
    pub withheld_total: i64,
    /// `available_total - withheld_total`: what allocation rules apply to.
    pub sellable_total: i64,
    pub shown_total: i64,
}

impl ChannelResult {
    pub const EMPTY: ChannelResult = ChannelResult {
        count: 0,
        available: [0; CHANNEL_LOCATIONS_MAX],
        withheld: [0; CHANNEL_LOCATIONS_MAX],
        shown: [0; CHANNEL_LOCATIONS_MAX],
        available_total: 0,
        withheld_total: 0,
        sellable_total: 0,
        shown_total: 0,
    };

    /// Resets to the channel's available stock, nothing withheld yet.
    pub fn start(&mut self, channel: &CompiledChannel, inputs: &SkuInputs) {
        let count = channel.locations.len();
        debug_assert!(count <= CHANNEL_LOCATIONS_MAX);
        self.count = count;
        for (available, &location) in self.available.iter_mut().zip(&channel.locations) {
            *available = inputs.available[location as usize];
        }
        self.withheld[..count].fill(0);
        self.available_total = 0;
        self.withheld_total = 0;
    }

    /// Takes what `want` asks (at one location, or across the channel's locations), up to what
    /// is left at each location.
    #[inline(always)]
    pub fn take(&mut self, want: Want, location: Option<usize>) {
        let (start, end) = match location {
            Some(index) => (index, index + 1),
            None => (0, self.count),
        };
        match want.amount {
            Amount::Percent(percent) if want.less <= 0 => self.take_share(percent, start, end),
            Amount::Percent(percent) => self.take_share_less(percent, want.less, start, end),
            Amount::Units(units) => {
                // Channel-wide units are taken from the locations in priority order.
                let mut remaining = (units - want.less).max(0);
                for index in start..end {
                    let taken = remaining.min(self.available[index] - self.withheld[index]);
                    self.withheld[index] += taken;
                    remaining -= taken;
                }
            }
        }
    }

    /// A share of each location's available, rounded up, up to what is left there.
    #[inline(always)]
    fn take_share(&mut self, percent: Percent, start: usize, end: usize) {
        let share = percent.basis_points().clamp(0, 10_000);
        let end = end.min(CHANNEL_LOCATIONS_MAX);
        for index in start..end {
            let available = self.available[index];
            let asked = if available <= SHARE_FAST_MAX {
                // available >= 0 here: one multiplication and a division by a constant.
                (available * share + 9_999) / 10_000
            } else {
                percent.of_rounded_up(available)
            };
            let room = available - self.withheld[index];
            self.withheld[index] += asked.min(room);
        }
    }

    /// A share less units already given back, which come off the lowest-priority locations
    /// first (as-picked releases; rare).
    fn take_share_less(&mut self, percent: Percent, less: i64, start: usize, end: usize) {
        let mut asked = [0i64; CHANNEL_LOCATIONS_MAX];
        let available = &self.available[start..end];
        for (ask, available) in asked[start..end].iter_mut().zip(available) {
            *ask = percent.of_rounded_up(*available);
        }
        let mut less = less;
        for ask in asked[start..end].iter_mut().rev() {
            let cut = less.min(*ask);
            *ask -= cut;
            less -= cut;
        }
        let withheld = &mut self.withheld[start..end];
        for ((ask, available), withheld) in asked[start..end].iter().zip(available).zip(withheld) {
            *withheld += (*ask).min(*available - *withheld);
        }
    }

    /// [`ChannelResult::take`], reporting the component to `sink`.
    #[inline(always)]
    fn take_into<S: Sink>(
        &mut self,
        sink: &mut S,
        channel: usize,
        source: Source,
        want: Want,
        location: Option<usize>,
    ) {
        if S::RECORDS_TAKEN {
            let before = self.withheld;
            self.take(want, location);
            let mut taken = [0i64; CHANNEL_LOCATIONS_MAX];
            for index in 0..self.count {
                taken[index] = self.withheld[index] - before[index];
            }
            sink.component(channel, source, want, &taken[..self.count]);
        } else {
            self.take(want, location);
            sink.component(channel, source, want, &[]);
        }
    }

    /// Totals, allocation rules, and the total shown spread over the locations.
    pub fn finish(&mut self, channel: &CompiledChannel) {
        let count = self.count;
        let mut available_total = 0;
        let mut withheld_total = 0;
        for (available, withheld) in self.available[..count].iter().zip(&self.withheld[..count]) {
            debug_assert!(0 <= *withheld && *withheld <= *available);
            available_total += *available;
            withheld_total += *withheld;
        }
        self.available_total = available_total;
        self.withheld_total = withheld_total;
        self.sellable_total = available_total - withheld_total;
        self.shown_total = channel.allocation.apply(self.sellable_total);
        let mut remaining = self.shown_total;
        for index in 0..count {
            let shown = remaining.min(self.available[index] - self.withheld[index]);
            self.shown[index] = shown;
            remaining -= shown;
        }
        debug_assert_eq!(remaining, 0);
        debug_assert!(self.shown_total >= 0 && self.shown_total <= self.available_total);
    }
}

/// The whole computation for one channel, into `result`.
pub(super) fn compute_channel<S: Sink>(
    compiled: &Compiled,
    channel_index: usize,
    inputs: &SkuInputs,
    sink: &mut S,
    result: &mut ChannelResult,
) {
    let channel = &compiled.channels[channel_index];
    result.start(channel, inputs);
    for component in &channel.components {
        if let Some(want) = channel_want(component, inputs) {
            let source = Source::Policy(component.policy);
            result.take_into(sink, channel_index, source, want, None);
        }
    }
    if let Some(state) = inputs.state {
        for (index, placed) in state.holds.iter().enumerate() {
            let Some(location) = hold_location(compiled, channel, placed) else {
                continue;
            };
            let want = Want::of(placed.hold.amount);
            result.take_into(
                sink,
                channel_index,
                Source::Hold(index as u8),
                want,
                location,
            );
        }
    }
    result.finish(channel);
}

/// Whether a hold applies to the channel: `None` when not, else the location it is taken at
/// (`Some(None)`: across the channel's locations).
pub(super) fn hold_location(
    compiled: &Compiled,
    channel: &CompiledChannel,
    placed: &PlacedHold,
) -> Option<Option<usize>> {
    if !placed.hold.applies_to(&channel.id) {
        return None;
    }
    match &placed.hold.location {
        None => Some(None),
        Some(location) => channel
            .locations
            .iter()
            .position(|&index| compiled.locations[index as usize].id == *location)
            .map(Some),
    }
}

/// What a policy asks of a channel (`None`: nothing).
#[inline]
pub(super) fn channel_want(component: &ChannelComponent, inputs: &SkuInputs) -> Option<Want> {
    if inputs.selected & (1 << component.policy) == 0 {
        return None;
    }
    match component.share {
        Some(share) => Some(Want::of(Amount::Percent(share))).filter(|w| !w.is_nothing()),
        None => inputs.wants[usize::from(component.policy)],
    }
}

/// The units `want` withholds on its own on a channel (before other buffers): the before and
/// after of a buffer's audit entry.
pub(super) fn standalone_units(
    channel: &CompiledChannel,
    inputs: &SkuInputs,
    want: Want,
    location: Option<usize>,
) -> i64 {
    let mut result = ChannelResult::EMPTY;
    result.start(channel, inputs);
    result.take(want, location);
    result.withheld[..result.count].iter().sum()
}
