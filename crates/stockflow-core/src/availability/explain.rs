//! Explanations: what each channel may sell of a SKU and every buffer component behind it, in
//! words with the numbers (for `GET /v1/skus/{sku}`), and what is withheld across SKUs, largest
//! first (for `GET /v1/buffers`). Built only here, never on the recompute path, and for
//! published views only when someone reads them: the writer captures [`ExplainInputs`] (shared
//! compiled settings, the SKU's own state, the instant), and the words come from those.

use super::amount::{Amount, Percent};
use super::channel::{Allocation, ChannelKind};
use super::compute::{ChannelResult, Sink, SkuInputs, Source, compute_channel, selection};
use super::holds::PlacedHold;
use super::limits::LISTING_LIMIT_MAX;
use super::policy::{
    ChannelAwareSettings, DynamicSettings, Release, Strategy, StrategyKind, TimeWindowSettings,
    WindowPhase,
};
use super::recompute::{strongest_signal, target_share};
use super::state::{Compiled, CompiledChannel, CompiledPolicy, SkuState, Want};
use super::velocity::{CANCELLATION_SAMPLE_UNITS_MIN, CancellationTracker, RECENT_WINDOW_SECONDS};
use super::{Availability, SkuStock};
use crate::ids::{ChannelId, LocationId, PolicyId, Sku};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

/// What one channel may sell of one SKU, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelAvailability {
    pub channel: ChannelId,
    pub kind: ChannelKind,
    /// Told per location (then `locations` carries what it is told).
    pub per_location: bool,
    /// Available at the channel's locations (each counted from 0), before buffers.
    pub available: i64,
    pub available_to_sell: i64,
    /// The sum of `buffers`' quantities.
    pub withheld: i64,
    /// Per location of the channel, highest priority first.
    pub locations: Vec<LocationAvailability>,
    pub buffers: Vec<BufferComponent>,
    /// How the channel's allocation rules changed what it is shown, when they did.
    pub allocation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationAvailability {
    pub location: LocationId,
    pub available: i64,
    pub available_to_sell: i64,
    pub withheld: i64,
}

/// One buffer's part of what a channel does not see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferComponent {
    /// The policy's name, or the hold's id.
    pub policy: PolicyId,
    pub strategy: StrategyKind,
    /// Units it withholds on this channel (after the buffers before it, never beyond what is
    /// available).
    pub quantity: i64,
    /// What it asks, whatever the stock.
    pub ask: Amount,
    /// Present when it applies at one location only.
    pub location: Option<LocationId>,
    /// In words, with the numbers behind it.
    pub reason: String,
}

/// One row of the withheld listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithheldEntry {
    pub sku: Sku,
    pub channel: ChannelId,
    pub withheld: i64,
    pub available_to_sell: i64,
    pub buffers: Vec<BufferComponent>,
}

/// A listing candidate: larger is better (more withheld, then the smaller SKU and channel slot).
type Ranked<'a> = (i64, Reverse<&'a Sku>, Reverse<u16>);

/// What the reason builders read.
pub(super) struct ReasonContext<'a> {
    pub compiled: &'a Compiled,
    /// See [`cancellation_samples`].
    pub samples: &'a [(u16, u64)],
    pub inputs: &'a SkuInputs<'a>,
}

/// Units reserved so far towards measuring each channel's cancellation rate, by channel slot
/// (channels with a tracker only): the reason of a channel-aware buffer names them until the
/// rate is measured.
pub(super) fn cancellation_samples(
    demand: &BTreeMap<ChannelId, CancellationTracker>,
    compiled: &Compiled,
) -> Vec<(u16, u64)> {
    demand
        .iter()
        .filter_map(|(channel, tracker)| {
            let slot = compiled.channels.iter().find(|c| &c.id == channel)?.slot;
            Some((slot, tracker.sample_units()))
        })
        .collect()
}

/// Everything explaining one SKU reads, captured when the writer publishes its view: the
/// compiled settings (shared, not copied), the SKU's own state, the channels' cancellation
/// samples and the instant. [`ExplainInputs::explain`] gives what
/// [`Availability::explain`] gave at that instant, whenever it is called.
#[derive(Debug, Clone)]
pub struct ExplainInputs {
    compiled: Arc<Compiled>,
    state: Option<SkuState>,
    samples: Vec<(u16, u64)>,
    now: Timestamp,
}

impl ExplainInputs {
    /// What each channel may sell of `sku` (with `stock`, the stock it was captured with), with
    /// every buffer component explained.
    pub fn explain(&self, sku: &Sku, stock: &SkuStock) -> Vec<ChannelAvailability> {
        explain_sku(
            &self.compiled,
            &self.samples,
            sku,
            stock,
            self.state.as_ref(),
            self.now,
        )
    }
}

impl Availability {
    /// What each channel may sell of `sku` at `now`, with every buffer component explained.
    pub fn explain(&self, sku: &Sku, stock: &SkuStock, now: Timestamp) -> Vec<ChannelAvailability> {
        self.explain_with(&self.compiled_now(), sku, stock, now)
    }

    /// The compiled settings, compiled afresh when settings changed since the last recompute.
    fn compiled_now(&self) -> Arc<Compiled> {
        if self.compiled.0.fresh {
            self.compiled.0.clone()
        } else {
            Arc::new(self.compile())
        }
    }

    /// What [`Availability::explain`] reads for `sku` at `now`, captured without building any
    /// words: a copy of the SKU's state (without what only recomputation needs) and a share of
    /// the compiled settings.
    pub fn explain_inputs(&self, sku: &Sku, now: Timestamp) -> ExplainInputs {
        let compiled = self.compiled_now();
        let samples = cancellation_samples(&self.channel_demand, &compiled);
        ExplainInputs {
            compiled,
            state: self.skus.get(sku).map(SkuState::for_explanation),
            samples,
            now,
        }
    }

    fn explain_with(
        &self,
        compiled: &Compiled,
        sku: &Sku,
        stock: &SkuStock,
        now: Timestamp,
    ) -> Vec<ChannelAvailability> {
        explain_sku(
            compiled,
            &cancellation_samples(&self.channel_demand, compiled),
            sku,
            stock,
            self.skus.get(sku),
            now,
        )
    }

    /// What is withheld across SKUs, largest first (then by SKU and channel), at most `limit`
    /// rows (and never more than [`LISTING_LIMIT_MAX`]). Ranks by the values last emitted (a
    /// walk over the SKUs' stored values, no recomputation), then explains the rows returned.
    pub fn withheld(
        &self,
        stocks: &BTreeMap<Sku, SkuStock>,
        now: Timestamp,
        limit: usize,
    ) -> Vec<WithheldEntry> {
        let limit = limit.min(LISTING_LIMIT_MAX);
        if limit == 0 {
            return Vec::new();
        }
        let compiled = self.compiled_now();
        let compiled = &*compiled;
        let mut best: BinaryHeap<Reverse<Ranked<'_>>> = BinaryHeap::new();
        for (sku, state) in &self.skus {
            let mut totals: Vec<(u16, i64)> = Vec::new();
            for entry in &state.emitted {
                match totals.last_mut() {
                    Some((channel, total)) if *channel == entry.channel => *total += entry.withheld,
                    _ => totals.push((entry.channel, entry.withheld)),
                }
            }
            for (channel, total) in totals {
                if total <= 0 || !compiled.channels.iter().any(|c| c.slot == channel) {
                    continue;
                }
                best.push(Reverse((total, Reverse(sku), Reverse(channel))));
                if best.len() > limit {
                    best.pop();
                }
            }
        }
        let mut chosen: BTreeMap<&Sku, Vec<u16>> = BTreeMap::new();
        for Reverse((_, Reverse(sku), Reverse(channel))) in best {
            chosen.entry(sku).or_default().push(channel);
        }
        let mut rows = Vec::new();
        for (sku, channels) in chosen {
            let Some(stock) = stocks.get(sku) else {
                continue;
            };
            let views = self.explain_with(compiled, sku, stock, now);
            for (view, compiled_channel) in views.into_iter().zip(&compiled.channels) {
                if channels.contains(&compiled_channel.slot) && view.withheld > 0 {
                    rows.push(WithheldEntry {
                        sku: sku.clone(),
                        channel: view.channel,
                        withheld: view.withheld,
                        available_to_sell: view.available_to_sell,
                        buffers: view.buffers,
                    });
                }
            }
        }
        rows.sort_by(|a, b| {
            b.withheld
                .cmp(&a.withheld)
                .then_with(|| a.sku.cmp(&b.sku))
                .then_with(|| a.channel.cmp(&b.channel))
        });
        rows
    }
}

fn explain_sku(
    compiled: &Compiled,
    samples: &[(u16, u64)],
    sku: &Sku,
    stock: &SkuStock,
    state: Option<&SkuState>,
    now: Timestamp,
) -> Vec<ChannelAvailability> {
    let selected = selection(compiled, sku, state);
    let inputs = SkuInputs::gather(compiled, stock, state, selected, now);
    let reasons = ReasonContext {
        compiled,
        samples,
        inputs: &inputs,
    };
    (0..compiled.channels.len())
        .map(|index| explain_channel(&reasons, index))
        .collect()
}

struct Collect {
    components: Vec<(Source, Want, Vec<i64>)>,
}

impl Sink for Collect {
    const RECORDS_TAKEN: bool = true;
    fn component(&mut self, _: usize, source: Source, want: Want, taken: &[i64]) {
        self.components.push((source, want, taken.to_vec()));
    }
}

fn explain_channel(reasons: &ReasonContext<'_>, channel_index: usize) -> ChannelAvailability {
    let compiled = reasons.compiled;
    let channel = &compiled.channels[channel_index];
    let mut collect = Collect {
        components: Vec::new(),
    };
    let mut result = ChannelResult::EMPTY;
    compute_channel(
        compiled,
        channel_index,
        reasons.inputs,
        &mut collect,
        &mut result,
    );
    let location_id = |index: usize| {
        compiled.locations[channel.locations[index] as usize]
            .id
            .clone()
    };
    let locations = (0..result.count)
        .map(|index| LocationAvailability {
            location: location_id(index),
            available: result.available[index],
            available_to_sell: result.shown[index],
            withheld: result.withheld[index],
        })
        .collect();
    let buffers = collect
        .components
        .into_iter()
        .map(|(source, want, taken)| {
            let quantity = taken.iter().sum();
            match source {
                Source::Policy(index) => {
                    let policy = &compiled.policies[index as usize];
                    BufferComponent {
                        policy: policy.policy.id.clone(),
                        strategy: policy.policy.strategy.kind(),
                        quantity,
                        ask: want.amount,
                        location: None,
                        reason: policy_reason(reasons, channel, policy, Some(want), None),
                    }
                }
                Source::Hold(index) => {
                    let state = reasons.inputs.state.expect("holds come from the state");
                    let placed = &state.holds[index as usize];
                    BufferComponent {
                        policy: placed.hold.id.clone(),
                        strategy: StrategyKind::Hold,
                        quantity,
                        ask: placed.hold.amount,
                        location: placed.hold.location.clone(),
                        reason: hold_reason(placed, reasons.inputs.now),
                    }
                }
            }
        })
        .collect();
    ChannelAvailability {
        channel: channel.id.clone(),
        kind: channel.kind,
        per_location: channel.per_location,
        available: result.available_total,
        available_to_sell: result.shown_total,
        withheld: result.withheld_total,
        locations,
        buffers,
        allocation: allocation_note(&channel.allocation, &result),
    }
}

fn allocation_note(allocation: &Allocation, result: &ChannelResult) -> Option<String> {
    if result.shown_total == result.sellable_total {
        return None;
    }
    let mut rules = Vec::new();
    if let Some(fixed) = allocation.fixed {
        rules.push(format!("fixed {fixed}"));
    }
    if let Some(percent) = allocation.percent {
        rules.push(format!("{percent} rounded down"));
    }
    if let Some(maximum) = allocation.maximum {
        rules.push(format!("at most {maximum}"));
    }
    if let Some(floor) = allocation.floor {
        rules.push(format!("0 below {floor}"));
    }
    Some(format!(
        "allocation ({}): {} sellable -> {} shown",
        rules.join(", "),
        result.sellable_total,
        result.shown_total
    ))
}

fn describe_want(want: Want) -> String {
    match (want.amount, want.less) {
        (amount, 0) => amount.to_string(),
        (Amount::Units(units), less) => Amount::Units((units - less).max(0)).to_string(),
        (amount, less) => format!("{amount} less {less} units picked"),
    }
}

/// A buffer policy's part, in words: "dynamic: 12.4x baseline velocity over 60 min -> 10%".
/// `want` is what it asks now (`None`: nothing), `previous` what it asked before (audits).
pub(super) fn policy_reason(
    reasons: &ReasonContext<'_>,
    channel: &CompiledChannel,
    policy: &CompiledPolicy,
    want: Option<Want>,
    previous: Option<Want>,
) -> String {
    let outcome = match (want, previous) {
        (Some(want), _) => describe_want(want),
        (None, Some(previous)) => format!("released (was {})", describe_want(previous)),
        (None, None) => "nothing".to_owned(),
    };
    let scope = policy.policy.selector.describe();
    let scope = if scope.is_empty() {
        String::new()
    } else {
        format!(" ({scope})")
    };
    let why = match &policy.policy.strategy {
        Strategy::Static { amount } => format!("static: fixed buffer of {amount}{scope}"),
        Strategy::Dynamic(settings) => {
            let level = want.map_or(Percent::ZERO, |w| match w.amount {
                Amount::Percent(percent) => percent,
                Amount::Units(_) => Percent::ZERO,
            });
            dynamic_reason(reasons.inputs, settings, level)
        }
        Strategy::ChannelAware(settings) => channel_aware_reason(reasons, channel, settings),
        Strategy::TimeWindow(settings) => {
            let picked = reasons
                .inputs
                .state
                .map_or(0, |s| s.picked_after(policy.slot));
            time_window_reason(settings, reasons.inputs.now, picked)
        }
    };
    format!("{why} -> {outcome}")
}

fn dynamic_reason(inputs: &SkuInputs<'_>, settings: &DynamicSettings, level: Percent) -> String {
    let now = inputs.now;
    let window_minutes = RECENT_WINDOW_SECONDS / 60;
    let Some(state) = inputs.state else {
        return format!("dynamic: no demand recorded in the last {window_minutes} min");
    };
    let reading = state.velocity.read(now);
    let measured = settings.measured_ratio(&reading);
    let signal = settings
        .use_signals
        .then(|| strongest_signal(state, now))
        .flatten();
    let history_needed = i64::from(settings.history_hours_min) * 3_600;
    let velocity = match measured {
        Some(ratio) => format!("{ratio} baseline velocity over {window_minutes} min"),
        None if reading.history_seconds < history_needed => format!(
            "{} units in the last {window_minutes} min, {} of history (velocity counts after {} h)",
            reading.recent_units,
            duration_words(reading.history_seconds * Timestamp::MICROS_PER_SECOND),
            settings.history_hours_min
        ),
        None => format!(
            "{} units in the last {window_minutes} min (a spike needs {})",
            reading.recent_units, settings.recent_units_min
        ),
    };
    let mut text = match signal {
        Some(signal) if measured.is_none_or(|m| signal.multiplier > m) => format!(
            "dynamic: surge signal from {}: {} expected demand for {} more; {velocity}",
            signal.source,
            signal.multiplier,
            duration_words(signal.expires_at.micros_since(now))
        ),
        _ => format!("dynamic: {velocity}"),
    };
    let target = target_share(settings, &reading, state, now);
    if level > target {
        text.push_str(&format!(
            "; calls for {target}, lowering by {} every {}",
            settings.decay_per_step,
            duration_words(i64::from(settings.decay_step_seconds) * Timestamp::MICROS_PER_SECOND)
        ));
    }
    text
}

fn channel_aware_reason(
    reasons: &ReasonContext<'_>,
    channel: &CompiledChannel,
    settings: &ChannelAwareSettings,
) -> String {
    let mut text = format!(
        "channel-aware: {} factor {} x {}",
        channel.id,
        settings.factor(&channel.id),
        settings.base
    );
    if settings.cancellation_weight > super::amount::Ratio::ZERO {
        match channel.cancellation_rate {
            Some(rate) => text.push_str(&format!(
                " + measured cancellation rate {rate} x {}",
                settings.cancellation_weight
            )),
            None => {
                let sample = reasons
                    .samples
                    .iter()
                    .find(|(slot, _)| *slot == channel.slot)
                    .map_or(0, |(_, units)| *units);
                text.push_str(&format!(
                    " (cancellation rate not measured yet: {sample} of {CANCELLATION_SAMPLE_UNITS_MIN} units reserved)"
                ));
            }
        }
    }
    let share = settings.share_for(settings.factor(&channel.id), channel.cancellation_rate);
    if share == settings.maximum {
        text.push_str(&format!(", capped at {}", settings.maximum));
    }
    text
}

fn time_window_reason(settings: &TimeWindowSettings, now: Timestamp, picked: i64) -> String {
    let ends = settings.ends_at;
    match settings.phase(now) {
        WindowPhase::NotStarted => format!(
            "time-window: starts in {}",
            duration_words(settings.starts_at.micros_since(now))
        ),
        WindowPhase::Open => format!(
            "time-window: scheduled hold, ends in {}",
            duration_words(ends.micros_since(now))
        ),
        WindowPhase::Releasing { done, steps } => {
            let Release::Gradual { period_seconds, .. } = settings.release else {
                unreachable!("gradual phases come from gradual releases")
            };
            format!(
                "time-window: ended {} ago, releasing in {steps} steps over {}, {done} done",
                duration_words(now.micros_since(ends)),
                duration_words(i64::from(period_seconds) * Timestamp::MICROS_PER_SECOND)
            )
        }
        WindowPhase::ReleasingAsPicked => {
            let Release::AsPicked { period_seconds } = settings.release else {
                unreachable!("as-picked phases come from as-picked releases")
            };
            let rest_at = ends.plus_seconds(i64::from(period_seconds));
            format!(
                "time-window: ended {} ago, released as picked ({picked} units picked since), the rest in {}",
                duration_words(now.micros_since(ends)),
                duration_words(rest_at.micros_since(now))
            )
        }
        WindowPhase::Over => "time-window: over".to_owned(),
    }
}

pub(super) fn hold_reason(placed: &PlacedHold, now: Timestamp) -> String {
    let expiry = placed.hold.expires_at.map_or(String::new(), |at| {
        format!(", expires in {}", duration_words(at.micros_since(now)))
    });
    format!(
        "hold by {}: {}{expiry} -> {}",
        placed.placed_by, placed.hold.reason, placed.hold.amount
    )
}

/// "45 s", "12 min", "3 h", "2 d" (rounded down; 0 s for the past).
pub(super) fn duration_words(micros: i64) -> String {
    let seconds = micros.max(0) / Timestamp::MICROS_PER_SECOND;
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3_600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3_600),
        s => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        let words = |seconds: i64| duration_words(seconds * Timestamp::MICROS_PER_SECOND);
        assert_eq!(words(-5), "0 s");
        assert_eq!(words(45), "45 s");
        assert_eq!(words(300), "5 min");
        assert_eq!(words(3 * 3_600), "3 h");
        assert_eq!(words(3 * 86_400), "3 d");
    }
}
