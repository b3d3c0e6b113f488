//! Recomputing one SKU: dynamic levels grow with demand, every channel's ATS is computed and
//! emitted when it changed, and buffers whose asks changed are audited.
//!
//! The common case (stock moved, no buffer changed its ask) allocates nothing and formats
//! nothing: levels are compared with the stored ones as they are produced, and ATS values with
//! the last emitted in place. Only a real change takes the slow path (audit entries, words).

use super::amount::Percent;
use super::compute::{
    ChannelResult, Discard, Sink, SkuInputs, Source, compute_channel, selection, standalone_units,
};
use super::explain::{ReasonContext, cancellation_samples, policy_reason};
use super::policy::{DynamicSettings, Strategy, StrategyKind, WindowPhase};
use super::state::{
    ChannelComponent, Compiled, CompiledChannel, CompiledLocation, CompiledPolicy, DynamicLevel,
    Emitted, Level, NO_LOCATION, SkuState, Want, slot_of,
};
use super::velocity::VelocityReading;
use super::{Availability, ChannelRules, Context, SkuStock};
use crate::ids::{ChannelId, Sku};
use crate::outcome::{AtsChange, AuditChange, AuditEntry, BufferChangeKind, Cause, Outcome};
use crate::time::Timestamp;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The ATS value of a channel (x location) that was never emitted.
const NEVER_EMITTED: i64 = i64::MIN;

/// Where the cause of audited buffer changes comes from.
#[derive(Clone, Copy)]
pub(super) enum CauseOf<'c> {
    Given(&'c Cause),
    /// A recomputation asked for by the ledger after it recorded demand: the growth of a dynamic
    /// buffer is the only buffer change it can bring (the audit entry's position names the
    /// request).
    Demand,
}

impl CauseOf<'_> {
    fn cause(self, sku: &Sku) -> Cause {
        match self {
            CauseOf::Given(cause) => cause.clone(),
            CauseOf::Demand => Cause::Command {
                name: "record_demand".to_owned(),
                id: sku.to_string(),
            },
        }
    }
}

impl Availability {
    pub(super) fn ensure_compiled(&mut self) {
        if !self.compiled.0.fresh {
            self.compiled.0 = Arc::new(self.compile());
        }
    }

    pub(super) fn invalidate(&mut self) {
        if self.compiled.0.fresh {
            // Published views may share the settings they were explained with: those keep
            // their copy.
            Arc::make_mut(&mut self.compiled.0).fresh = false;
        }
    }

    /// The settings as the recompute path reads them.
    pub(super) fn compile(&self) -> Compiled {
        let slot = |found: Option<u16>| found.expect("ids are interned when settings change");
        let mut location_ids: Vec<_> = self
            .channels
            .values()
            .flat_map(|c| c.locations.iter().map(|l| &l.location))
            .collect();
        location_ids.sort();
        location_ids.dedup();
        let locations: Vec<CompiledLocation> = location_ids
            .iter()
            .map(|id| CompiledLocation {
                id: (*id).clone(),
                slot: slot(slot_of(&self.slots.locations, *id)),
            })
            .collect();
        let empty = ChannelRules::default();
        let rules_of = |id: &ChannelId| self.rules.get(id).unwrap_or(&empty);
        let mut policy_ids: Vec<_> = self.rules.values().flat_map(|r| &r.policies).collect();
        policy_ids.sort();
        policy_ids.dedup();
        let policies: Vec<CompiledPolicy> = policy_ids
            .iter()
            .filter_map(|id| self.policies.get(*id))
            .map(|policy| CompiledPolicy {
                slot: slot(slot_of(&self.slots.policies, &policy.id)),
                policy: policy.clone(),
            })
            .collect();
        let channels = self
            .channels
            .values()
            .map(|config| {
                let cancellation_rate = self
                    .channel_demand
                    .get(&config.id)
                    .and_then(|tracker| tracker.effective_rate());
                let rules = rules_of(&config.id);
                let indices: Vec<u8> = rules
                    .policies
                    .iter()
                    .filter_map(|id| policies.iter().position(|p| p.policy.id == *id))
                    .map(|index| index as u8)
                    .collect();
                let components = indices
                    .iter()
                    .map(|&index| ChannelComponent {
                        policy: index,
                        share: match &policies[index as usize].policy.strategy {
                            Strategy::ChannelAware(settings) => Some(
                                settings.share_for(settings.factor(&config.id), cancellation_rate),
                            ),
                            _ => None,
                        },
                    })
                    .collect();
                let channel_locations: Vec<u8> = config
                    .locations_by_priority()
                    .into_iter()
                    .map(|id| locations.iter().position(|l| l.id == *id).unwrap_or(0) as u8)
                    .collect();
                CompiledChannel {
                    id: config.id.clone(),
                    slot: slot(slot_of(&self.slots.channels, &config.id)),
                    kind: config.kind,
                    per_location: config.per_location,
                    allocation: rules.allocation,
                    location_ids: channel_locations
                        .iter()
                        .map(|&index| locations[index as usize].id.clone())
                        .collect(),
                    location_slots: channel_locations
                        .iter()
                        .map(|&index| locations[index as usize].slot)
                        .collect(),
                    locations: channel_locations,
                    components,
                    cancellation_rate,
                }
            })
            .collect::<Vec<CompiledChannel>>();
        let mut shapes: Vec<Vec<u8>> = Vec::new();
        for (index, channel) in channels.iter().enumerate() {
            let same = |group: &&mut Vec<u8>| {
                let first = &channels[group[0] as usize];
                first.locations == channel.locations
                    && first.components == channel.components
                    && first.allocation == channel.allocation
            };
            match shapes.iter_mut().find(same) {
                Some(group) => group.push(index as u8),
                None => shapes.push(vec![index as u8]),
            }
        }
        let dynamic = policies
            .iter()
            .enumerate()
            .filter(|(_, p)| matches!(p.policy.strategy, Strategy::Dynamic(_)))
            .map(|(index, _)| index as u8)
            .collect();
        Compiled {
            fresh: true,
            fingerprint: self.settings_fingerprint(),
            channels,
            policies,
            locations,
            dynamic,
            shapes,
        }
    }

    /// A hash of everything the asks of policies depend on besides the SKU and the time.
    fn settings_fingerprint(&self) -> u64 {
        let rates: Vec<(&ChannelId, Option<Percent>)> = self
            .channel_demand
            .iter()
            .map(|(channel, tracker)| (channel, tracker.effective_rate()))
            .collect();
        let text = serde_json::to_vec(&(&self.channels, &self.rules, &self.policies, rates))
            .expect("settings serialise");
        let digest = Sha256::digest(&text);
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        // Never 0, which stands for "no key yet" in a SKU's state.
        u64::from_le_bytes(bytes) | 1
    }

    /// Recomputes `sku`: returns whether anything a reader sees changed (an ATS or a buffer).
    pub(super) fn recompute_sku(
        &mut self,
        context: &Context<'_>,
        cause: CauseOf<'_>,
        sku: &Sku,
        stock: &SkuStock,
        out: &mut Outcome,
    ) -> bool {
        self.ensure_compiled();
        if !self.skus.contains_key(sku) {
            self.skus.insert(sku.clone(), SkuState::default());
        }
        let compiled = &self.compiled.0;
        let demand = &self.channel_demand;
        let state = self.skus.get_mut(sku).expect("inserted above");
        let selected = selection(compiled, sku, Some(state));
        let due_before = state.dynamic_due();
        // Dynamic levels rise with demand and signals (the ledger's recomputes after receipts
        // and the like skip this); settings changes and ticks always look.
        let raise = state.demand_pending || !matches!(cause, CauseOf::Demand);
        update_dynamic(compiled, state, selected, context.now, raise);
        state.demand_pending = false;
        prune_window_picks(compiled, state, context.now);
        let due_after = state.dynamic_due();

        let mut emitted = std::mem::take(&mut state.emitted);
        let inputs = SkuInputs::gather(compiled, stock, Some(state), selected, context.now);
        let key = inputs.levels_key(compiled);
        let mut result = ChannelResult::EMPTY;
        let mut cursor = 0;
        let mut changed = false;
        // A hold naming channels makes channels of one shape differ for this SKU.
        let shared = !state.holds.iter().any(|h| !h.hold.channels.is_empty());
        for shape in &compiled.shapes {
            for (member, &channel_index) in shape.iter().enumerate() {
                if member == 0 || !shared {
                    let channel_index = usize::from(channel_index);
                    compute_channel(compiled, channel_index, &inputs, &mut Discard, &mut result);
                }
                changed |= emit_channel(
                    context,
                    sku,
                    &compiled.channels[usize::from(channel_index)],
                    &result,
                    &mut emitted,
                    &mut cursor,
                    out,
                );
            }
        }
        emitted.truncate(cursor);
        let new_levels = (key != state.levels_key).then(|| {
            let samples = cancellation_samples(demand, compiled);
            let reasons = ReasonContext {
                compiled,
                samples: &samples,
                inputs: &inputs,
            };
            audit_level_changes(context, cause, sku, &reasons, &self.slots.policies, out)
        });
        state.emitted = emitted;
        state.levels_key = key;
        if let Some(levels) = new_levels
            && levels != state.levels
        {
            state.levels = levels;
            changed = true;
        }
        if due_before != due_after {
            if let Some(at) = due_before {
                self.dynamic_steps.remove(&(at, sku.clone()));
            }
            if let Some(at) = due_after {
                self.dynamic_steps.insert((at, sku.clone()));
            }
        }
        if changed && out.touched_skus.last() != Some(sku) {
            out.touched_skus.push(sku.clone());
        }
        changed
    }
}

/// Drops the levels of dynamic policies that no longer apply to the SKU, and raises levels to
/// what demand calls for now (lowering happens only in decay steps; once decaying, only a new
/// surge raises a level again).
fn update_dynamic(
    compiled: &Compiled,
    state: &mut SkuState,
    selected: u64,
    now: Timestamp,
    raise: bool,
) {
    if !state.dynamic.is_empty() {
        state.dynamic.retain(|level| {
            compiled.policy_index(level.policy).is_some_and(|index| {
                selected & (1 << index) != 0 && compiled.is_dynamic_slot(level.policy)
            })
        });
    }
    if !raise {
        return;
    }
    let mut reading: Option<VelocityReading> = None;
    for &index in &compiled.dynamic {
        if selected & (1 << index) == 0 {
            continue;
        }
        let policy = &compiled.policies[index as usize];
        let Strategy::Dynamic(settings) = &policy.policy.strategy else {
            continue;
        };
        let reading = *reading.get_or_insert_with(|| state.velocity.read(now));
        let target = target_share(settings, &reading, state, now);
        if target <= Percent::ZERO {
            continue;
        }
        match state.dynamic.iter_mut().find(|d| d.policy == policy.slot) {
            Some(level) => level.raise_to(target, settings.decay_per_step),
            None => state.dynamic.push(DynamicLevel {
                policy: policy.slot,
                level: target,
                next_step_at: now.plus_seconds(i64::from(settings.decay_step_seconds)),
                decaying: false,
            }),
        }
    }
}

/// What a dynamic policy calls for now: the curve at the larger of the measured ratio and the
/// strongest active surge signal.
pub(super) fn target_share(
    settings: &DynamicSettings,
    reading: &VelocityReading,
    state: &SkuState,
    now: Timestamp,
) -> Percent {
    let measured = settings.measured_ratio(reading);
    let announced = settings
        .use_signals
        .then(|| strongest_signal(state, now))
        .flatten()
        .map(|signal| signal.multiplier);
    measured
        .max(announced)
        .map_or(Percent::ZERO, |ratio| settings.share_for(ratio))
}

pub(super) fn strongest_signal(
    state: &SkuState,
    now: Timestamp,
) -> Option<&super::holds::ActiveSignal> {
    state
        .signals
        .iter()
        .filter(|s| s.expires_at > now)
        .max_by_key(|s| (s.multiplier, std::cmp::Reverse(&s.source)))
}

/// Counts of picks after an as-picked window matter only while it is releasing.
fn prune_window_picks(compiled: &Compiled, state: &mut SkuState, now: Timestamp) {
    if state.picked_after_window.is_empty() {
        return;
    }
    state.picked_after_window.retain(|picks| {
        compiled.policy_index(picks.policy).is_some_and(|index| {
            match &compiled.policies[index].policy.strategy {
                Strategy::TimeWindow(settings) => {
                    settings.phase(now) == WindowPhase::ReleasingAsPicked
                }
                _ => false,
            }
        })
    });
}

fn level_of(compiled: &Compiled, channel: usize, policy: u8, want: Want) -> Level {
    let policy = &compiled.policies[policy as usize];
    Level {
        policy: policy.slot,
        channel: compiled.channels[channel].slot,
        strategy: policy.policy.strategy.kind(),
        want,
    }
}

struct CollectLevels<'a> {
    compiled: &'a Compiled,
    levels: Vec<Level>,
}

impl Sink for CollectLevels<'_> {
    const RECORDS_TAKEN: bool = false;
    fn component(&mut self, channel: usize, source: Source, want: Want, _: &[i64]) {
        if let Source::Policy(policy) = source {
            self.levels
                .push(level_of(self.compiled, channel, policy, want));
        }
    }
}

/// The slow path: the levels now, and an audit entry for each (policy, channel) whose ask
/// changed. Returns the levels to store.
fn audit_level_changes(
    context: &Context<'_>,
    cause: CauseOf<'_>,
    sku: &Sku,
    reasons: &ReasonContext<'_>,
    policy_ids: &[crate::ids::PolicyId],
    out: &mut Outcome,
) -> Vec<Level> {
    let compiled = reasons.compiled;
    let state = reasons.inputs.state.expect("recompute passes the state");
    let mut collect = CollectLevels {
        compiled,
        levels: Vec::new(),
    };
    let mut result = ChannelResult::EMPTY;
    for channel_index in 0..compiled.channels.len() {
        compute_channel(
            compiled,
            channel_index,
            reasons.inputs,
            &mut collect,
            &mut result,
        );
    }
    let mut changes: BTreeMap<(u16, u16), (Option<Level>, Option<Level>)> = BTreeMap::new();
    for level in &state.levels {
        changes.entry((level.channel, level.policy)).or_default().0 = Some(*level);
    }
    for level in &collect.levels {
        changes.entry((level.channel, level.policy)).or_default().1 = Some(*level);
    }
    for ((channel_slot, policy_slot), (before, after)) in changes {
        if before.map(|l| l.want) == after.map(|l| l.want) {
            continue;
        }
        // A buffer on a channel that no longer exists went with the channel.
        let Some(channel) = compiled.channels.iter().find(|c| c.slot == channel_slot) else {
            continue;
        };
        let units = |level: Option<Level>| {
            level.map_or(0, |l| {
                standalone_units(channel, reasons.inputs, l.want, None)
            })
        };
        let (units_before, units_after) = (units(before), units(after));
        let kind = change_kind(
            before.map(|l| l.want),
            after.map(|l| l.want),
            units_before,
            units_after,
        );
        let strategy = after
            .or(before)
            .map_or(StrategyKind::Static, |l| l.strategy);
        let policy_index = compiled.policy_index(policy_slot);
        let explanation = match policy_index {
            Some(index) => policy_reason(
                reasons,
                channel,
                &compiled.policies[index],
                after.map(|l| l.want),
                before.map(|l| l.want),
            ),
            None => format!(
                "{}: the policy no longer applies to this channel -> released",
                strategy.name()
            ),
        };
        out.buffer_changes.count(kind);
        out.audit.push(AuditEntry {
            at: context.now,
            position: context.position,
            sku: sku.clone(),
            location: None,
            channel: Some(channel.id.clone()),
            cause: cause.cause(sku),
            actor: context.actor.to_owned(),
            reason: Some(format!("buffer {}", kind.name())),
            change: AuditChange::Buffer {
                policy: policy_ids[policy_slot as usize].clone(),
                strategy: strategy.name().to_owned(),
                before: units_before,
                after: units_after,
                explanation,
            },
        });
    }
    collect.levels
}

/// Applied, grown, decayed or released: by presence, then units, then the ask itself.
pub(super) fn change_kind(
    before: Option<Want>,
    after: Option<Want>,
    units_before: i64,
    units_after: i64,
) -> BufferChangeKind {
    match (before, after) {
        (None, _) => BufferChangeKind::Applied,
        (Some(_), None) => BufferChangeKind::Released,
        (Some(before), Some(after)) => {
            if (units_after, after.magnitude()) > (units_before, before.magnitude()) {
                BufferChangeKind::Grown
            } else {
                BufferChangeKind::Decayed
            }
        }
    }
}

/// Emits the channel's values that changed since last emitted. Returns whether any did.
#[allow(clippy::too_many_arguments)]
fn emit_channel(
    context: &Context<'_>,
    sku: &Sku,
    channel: &CompiledChannel,
    result: &ChannelResult,
    emitted: &mut Vec<Emitted>,
    cursor: &mut usize,
    out: &mut Outcome,
) -> bool {
    let mut changed = false;
    if channel.per_location {
        for index in 0..result.count {
            let (ats, withheld) = (result.shown[index], result.withheld[index]);
            let slot = channel.location_slots[index];
            if update_emitted(emitted, cursor, channel.slot, slot, ats, withheld) {
                changed = true;
                out.availability.push(ats_change(
                    context,
                    sku,
                    channel,
                    Some(index),
                    ats,
                    withheld,
                ));
            }
        }
    } else {
        let (ats, withheld) = (result.shown_total, result.withheld_total);
        if update_emitted(emitted, cursor, channel.slot, NO_LOCATION, ats, withheld) {
            changed = true;
            out.availability
                .push(ats_change(context, sku, channel, None, ats, withheld));
        }
    }
    changed
}

fn ats_change(
    context: &Context<'_>,
    sku: &Sku,
    channel: &CompiledChannel,
    location: Option<usize>,
    available_to_sell: i64,
    withheld: i64,
) -> AtsChange {
    AtsChange {
        tenant: context.tenant.clone(),
        channel: channel.id.clone(),
        sku: sku.clone(),
        location: location.map(|index| channel.location_ids[index].clone()),
        available_to_sell,
        withheld,
        position: context.position,
        caused_at: context.caused_at,
    }
}

/// Brings the entry for (channel, location) to position `cursor` (entries stay in the order
/// recompute produces them, so the usual case is a match in place), records the new values,
/// and returns whether the ATS changed.
fn update_emitted(
    emitted: &mut Vec<Emitted>,
    cursor: &mut usize,
    channel: u16,
    location: u16,
    available_to_sell: i64,
    withheld: i64,
) -> bool {
    let matches = |entry: &Emitted| entry.channel == channel && entry.location == location;
    if let Some(entry) = emitted.get_mut(*cursor)
        && matches(entry)
    {
        // The usual case: the entry is where the last recompute left it.
        *cursor += 1;
        entry.withheld = withheld;
        let changed = entry.available_to_sell != available_to_sell;
        entry.available_to_sell = available_to_sell;
        return changed;
    }
    match emitted[*cursor..].iter().position(matches) {
        Some(offset) => emitted.swap(*cursor, *cursor + offset),
        None => emitted.insert(
            *cursor,
            Emitted {
                channel,
                location,
                available_to_sell: NEVER_EMITTED,
                withheld: 0,
            },
        ),
    }
    let entry = &mut emitted[*cursor];
    *cursor += 1;
    entry.withheld = withheld;
    if entry.available_to_sell == available_to_sell {
        return false;
    }
    entry.available_to_sell = available_to_sell;
    true
}
