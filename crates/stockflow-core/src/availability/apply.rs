//! Commands: every check first, then the change, so that a refused command changes nothing.
//!
//! Work per command is bounded: a hold, a release or a signal recomputes its one SKU; SKU
//! attributes recompute the SKUs named (at most [`ATTRIBUTE_ITEMS_MAX`]); a channel or policy
//! change starts a sweep that ticks through the SKUs [`super::limits::TICK_SKUS_MAX`] at a time.

use super::channel::too_many;
use super::compute::{SkuInputs, hold_location, standalone_units};
use super::explain::hold_reason;
use super::holds::{ActiveSignal, Hold, PlacedHold, Signal};
use super::limits::{
    ATTRIBUTE_ITEMS_MAX, CHANNELS_MAX, HOLDS_MAX, LOCATIONS_MAX, POLICIES_MAX, SKU_HOLDS_MAX,
    SKU_SIGNALS_MAX,
};
use super::policy::{Policy, Strategy, StrategyKind};
use super::recompute::{CauseOf, change_kind};
use super::state::{SkuState, Sweep, Want, check_room, intern};
use super::{
    Availability, AvailabilityCommand, ChannelConfig, ChannelRules, Context, SkuAttributesItem,
    SkuStock,
};
use crate::ids::{ChannelId, LocationId, PolicyId, Sku};
use crate::outcome::{AuditChange, AuditEntry, Cause, Outcome, Rejection};
use crate::time::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

fn command_cause(name: &str, id: impl ToString) -> Cause {
    Cause::Command {
        name: name.to_owned(),
        id: id.to_string(),
    }
}

impl Availability {
    /// Applies a channel, policy, attribute, hold or signal command. `stocks` is the tenant's
    /// stock, for recomputing what the command changes; effects go into `out`. On refusal
    /// nothing changed.
    pub fn apply_command(
        &mut self,
        context: &Context<'_>,
        command: &AvailabilityCommand,
        stocks: &BTreeMap<Sku, SkuStock>,
        out: &mut Outcome,
    ) -> Result<(), Rejection> {
        match command {
            AvailabilityCommand::UpsertChannel(config) => {
                self.upsert_channel(context, config, None)
            }
            AvailabilityCommand::ConfigureChannel { config, rules } => {
                self.upsert_channel(context, config, Some(rules))
            }
            AvailabilityCommand::RemoveChannel { channel } => self.remove_channel(context, channel),
            AvailabilityCommand::UpsertPolicy(policy) => {
                self.upsert_policy(context, policy.as_ref())
            }
            AvailabilityCommand::RemovePolicy { policy } => self.remove_policy(context, policy),
            AvailabilityCommand::SetSkuAttributes { items } => {
                self.set_attributes(context, items, stocks, out)
            }
            AvailabilityCommand::PlaceHold(hold) => self.place_hold(context, hold, stocks, out),
            AvailabilityCommand::ReleaseHold { hold } => {
                self.release_hold(context, hold, stocks, out)
            }
            AvailabilityCommand::RecordSignal(signal) => {
                self.record_signal(context, signal, stocks, out)
            }
        }
    }

    /// Asks every SKU to be recomputed, a tick at a time (restarting a sweep under way).
    pub(super) fn request_sweep(&mut self, now: Timestamp, caused_at: Timestamp, cause: Cause) {
        let (requested_at, caused_at) = match &self.sweep {
            Some(sweep) => (sweep.requested_at.min(now), sweep.caused_at.min(caused_at)),
            None => (now, caused_at),
        };
        self.sweep = Some(Sweep {
            after: None,
            requested_at,
            caused_at,
            cause,
        });
    }

    fn upsert_channel(
        &mut self,
        context: &Context<'_>,
        config: &ChannelConfig,
        rules: Option<&ChannelRules>,
    ) -> Result<(), Rejection> {
        config.validate()?;
        let empty = ChannelRules::default();
        let rules = rules.unwrap_or_else(|| self.rules.get(&config.id).unwrap_or(&empty));
        rules.validate(&config.id)?;
        let unchanged = self.channels.get(&config.id) == Some(config)
            && self.rules.get(&config.id).unwrap_or(&empty) == rules;
        if unchanged {
            return Ok(());
        }
        if !self.channels.contains_key(&config.id) {
            too_many("channels", self.channels.len() + 1, CHANNELS_MAX)?;
        }
        if let Some(missing) = rules
            .policies
            .iter()
            .find(|p| !self.policies.contains_key(p))
        {
            return Err(Rejection::UnknownPolicy {
                policy: missing.clone(),
            });
        }
        let others = self.channels.values().filter(|c| c.id != config.id);
        let locations: BTreeSet<&LocationId> = others
            .flat_map(|c| c.locations.iter().map(|l| &l.location))
            .chain(config.locations.iter().map(|l| &l.location))
            .collect();
        too_many("locations across channels", locations.len(), LOCATIONS_MAX)?;
        let attached: BTreeSet<&PolicyId> = self
            .rules
            .iter()
            .filter(|(id, _)| **id != config.id)
            .flat_map(|(_, r)| &r.policies)
            .chain(&rules.policies)
            .collect();
        too_many("policies across channels", attached.len(), POLICIES_MAX)?;
        check_room(&self.slots.channels, [&config.id])?;
        check_room(
            &self.slots.locations,
            config.locations.iter().map(|l| &l.location),
        )?;

        let rules = rules.clone();
        intern(&mut self.slots.channels, &config.id);
        for location in &config.locations {
            intern(&mut self.slots.locations, &location.location);
        }
        self.channels.insert(config.id.clone(), config.clone());
        if rules == empty {
            self.rules.remove(&config.id);
        } else {
            self.rules.insert(config.id.clone(), rules);
        }
        self.invalidate();
        self.request_sweep(
            context.now,
            context.caused_at,
            command_cause("configure_channel", &config.id),
        );
        Ok(())
    }

    fn remove_channel(
        &mut self,
        context: &Context<'_>,
        channel: &ChannelId,
    ) -> Result<(), Rejection> {
        if self.channels.remove(channel).is_none() {
            return Err(Rejection::UnknownChannel {
                channel: channel.clone(),
            });
        }
        self.rules.remove(channel);
        self.channel_demand.remove(channel);
        self.invalidate();
        // The sweep drops the channel's stored values from every SKU.
        self.request_sweep(
            context.now,
            context.caused_at,
            command_cause("remove_channel", channel),
        );
        Ok(())
    }

    fn upsert_policy(&mut self, context: &Context<'_>, policy: &Policy) -> Result<(), Rejection> {
        policy.validate(context.now)?;
        if self.policies.get(&policy.id) == Some(policy) {
            return Ok(());
        }
        if !self.policies.contains_key(&policy.id) {
            too_many("policies", self.policies.len() + 1, POLICIES_MAX)?;
        }
        check_room(&self.slots.policies, [&policy.id])?;

        intern(&mut self.slots.policies, &policy.id);
        match &policy.strategy {
            Strategy::TimeWindow(settings) => {
                self.windows
                    .insert(policy.id.clone(), settings.transitions_passed(context.now));
            }
            _ => {
                self.windows.remove(&policy.id);
            }
        }
        self.policies.insert(policy.id.clone(), policy.clone());
        self.invalidate();
        if self.rules.values().any(|r| r.policies.contains(&policy.id)) {
            self.request_sweep(
                context.now,
                context.caused_at,
                command_cause("upsert_policy", &policy.id),
            );
        }
        Ok(())
    }

    fn remove_policy(
        &mut self,
        _context: &Context<'_>,
        policy: &PolicyId,
    ) -> Result<(), Rejection> {
        if !self.policies.contains_key(policy) {
            return Err(Rejection::UnknownPolicy {
                policy: policy.clone(),
            });
        }
        let users: Vec<ChannelId> = self
            .rules
            .iter()
            .filter(|(_, r)| r.policies.contains(policy))
            .map(|(id, _)| id.clone())
            .collect();
        if !users.is_empty() {
            return Err(Rejection::PolicyInUse {
                policy: policy.clone(),
                channels: users,
            });
        }
        // No channel applies it, so no SKU's numbers change.
        self.policies.remove(policy);
        self.windows.remove(policy);
        self.invalidate();
        Ok(())
    }

    fn set_attributes(
        &mut self,
        context: &Context<'_>,
        items: &[SkuAttributesItem],
        stocks: &BTreeMap<Sku, SkuStock>,
        out: &mut Outcome,
    ) -> Result<(), Rejection> {
        too_many("items", items.len(), ATTRIBUTE_ITEMS_MAX)?;
        let mut seen = BTreeSet::new();
        for item in items {
            item.attributes.validate(&item.sku)?;
            if !seen.insert(&item.sku) {
                return Err(Rejection::InvalidAttributes {
                    sku: item.sku.clone(),
                    detail: "named twice in one command".to_owned(),
                });
            }
        }

        for item in items {
            let state = self.skus.entry(item.sku.clone()).or_default();
            state.attributes =
                (!item.attributes.is_empty()).then(|| Box::new(item.attributes.clone()));
            out.audit.push(setting_entry(
                context,
                &item.sku,
                command_cause("set_sku_attributes", &item.sku),
                None,
                serde_json::json!({ "attributes": item.attributes }),
            ));
            if let Some(stock) = stocks.get(&item.sku) {
                let cause = command_cause("set_sku_attributes", &item.sku);
                self.recompute_sku(context, CauseOf::Given(&cause), &item.sku, stock, out);
            }
        }
        Ok(())
    }

    fn place_hold(
        &mut self,
        context: &Context<'_>,
        hold: &Hold,
        stocks: &BTreeMap<Sku, SkuStock>,
        out: &mut Outcome,
    ) -> Result<(), Rejection> {
        hold.validate(context.now)?;
        let Some(stock) = stocks.get(&hold.sku) else {
            return Err(Rejection::UnknownSku {
                sku: hold.sku.clone(),
            });
        };
        if let Some(location) = &hold.location
            && !stock.contains_key(location)
        {
            return Err(Rejection::UnknownLocation {
                location: location.clone(),
            });
        }
        if let Some(unknown) = hold
            .channels
            .iter()
            .find(|c| !self.channels.contains_key(c))
        {
            return Err(Rejection::UnknownChannel {
                channel: unknown.clone(),
            });
        }
        let previous_sku = self.holds.get(&hold.id);
        if previous_sku.is_some_and(|sku| *sku != hold.sku) {
            return Err(Rejection::Invalid {
                field: "id".to_owned(),
                detail: format!("hold {} is on another SKU", hold.id),
            });
        }
        if previous_sku.is_none() {
            too_many("holds", self.holds.len() + 1, HOLDS_MAX)?;
            let on_sku = self.skus.get(&hold.sku).map_or(0, |s| s.holds.len());
            too_many("holds on the SKU", on_sku + 1, SKU_HOLDS_MAX)?;
        }

        let placed = PlacedHold {
            hold: hold.clone(),
            placed_at: context.now,
            placed_by: context.actor.to_owned(),
        };
        let cause = command_cause("place_hold", &hold.id);
        let previous = self.take_hold(&hold.id);
        self.audit_hold(
            context,
            &cause,
            stock,
            previous.as_ref(),
            Some(&placed),
            out,
        );
        out.audit.push(setting_entry(
            context,
            &hold.sku,
            cause.clone(),
            Some(hold.reason.clone()),
            serde_json::json!({ "hold": hold }),
        ));
        if let Some(expires_at) = hold.expires_at {
            self.hold_expiries.insert((expires_at, hold.id.clone()));
        }
        self.holds.insert(hold.id.clone(), hold.sku.clone());
        let state = self.skus.entry(hold.sku.clone()).or_default();
        let at = state.holds.partition_point(|h| h.hold.id < hold.id);
        state.holds.insert(at, placed);
        self.recompute_sku(context, CauseOf::Given(&cause), &hold.sku, stock, out);
        Ok(())
    }

    fn release_hold(
        &mut self,
        context: &Context<'_>,
        hold: &PolicyId,
        stocks: &BTreeMap<Sku, SkuStock>,
        out: &mut Outcome,
    ) -> Result<(), Rejection> {
        if !self.holds.contains_key(hold) {
            return Err(Rejection::UnknownHold { hold: hold.clone() });
        }
        let cause = command_cause("release_hold", hold);
        self.end_hold(context, &cause, hold, stocks, out);
        Ok(())
    }

    /// Removes a hold (released or expired): audited, and its SKU recomputed.
    pub(super) fn end_hold(
        &mut self,
        context: &Context<'_>,
        cause: &Cause,
        hold: &PolicyId,
        stocks: &BTreeMap<Sku, SkuStock>,
        out: &mut Outcome,
    ) {
        let Some(placed) = self.take_hold(hold) else {
            return;
        };
        let sku = placed.hold.sku.clone();
        let empty = SkuStock::new();
        let stock = stocks.get(&sku).unwrap_or(&empty);
        self.audit_hold(context, cause, stock, Some(&placed), None, out);
        out.audit.push(setting_entry(
            context,
            &sku,
            cause.clone(),
            Some(placed.hold.reason.clone()),
            serde_json::json!({ "released_hold": placed.hold.id }),
        ));
        if let Some(stock) = stocks.get(&sku) {
            self.recompute_sku(context, CauseOf::Given(cause), &sku, stock, out);
        }
    }

    /// Takes a hold out of the state (index, expiry and SKU), returning it.
    fn take_hold(&mut self, hold: &PolicyId) -> Option<PlacedHold> {
        let sku = self.holds.remove(hold)?;
        let state = self.skus.get_mut(&sku)?;
        let index = state.holds.iter().position(|h| h.hold.id == *hold)?;
        let placed = state.holds.remove(index);
        if let Some(expires_at) = placed.hold.expires_at {
            self.hold_expiries.remove(&(expires_at, hold.clone()));
        }
        Some(placed)
    }

    /// One audit entry per channel whose part of this hold changed.
    fn audit_hold(
        &mut self,
        context: &Context<'_>,
        cause: &Cause,
        stock: &SkuStock,
        before: Option<&PlacedHold>,
        after: Option<&PlacedHold>,
        out: &mut Outcome,
    ) {
        self.ensure_compiled();
        let compiled = &self.compiled.0;
        let Some(placed) = after.or(before) else {
            return;
        };
        let sku = &placed.hold.sku;
        let inputs = SkuInputs::gather(compiled, stock, None, 0, context.now);
        for channel in &compiled.channels {
            let part = |hold: Option<&PlacedHold>| {
                let hold = hold?;
                let location = hold_location(compiled, channel, hold)?;
                let want = Want::of(hold.hold.amount);
                Some((want, standalone_units(channel, &inputs, want, location)))
            };
            let (old, new) = (part(before), part(after));
            if old.is_none() && new.is_none() || old.map(|p| p.0) == new.map(|p| p.0) {
                continue;
            }
            let (units_before, units_after) = (old.map_or(0, |p| p.1), new.map_or(0, |p| p.1));
            let kind = change_kind(
                old.map(|p| p.0),
                new.map(|p| p.0),
                units_before,
                units_after,
            );
            let explanation = match after {
                Some(placed) => hold_reason(placed, context.now),
                None => format!(
                    "hold by {}: {} -> released (was {})",
                    placed.placed_by, placed.hold.reason, placed.hold.amount
                ),
            };
            out.buffer_changes.count(kind);
            out.audit.push(AuditEntry {
                at: context.now,
                position: context.position,
                sku: sku.clone(),
                location: placed.hold.location.clone(),
                channel: Some(channel.id.clone()),
                cause: cause.clone(),
                actor: context.actor.to_owned(),
                reason: Some(format!("buffer {}", kind.name())),
                change: AuditChange::Buffer {
                    policy: placed.hold.id.clone(),
                    strategy: StrategyKind::Hold.name().to_owned(),
                    before: units_before,
                    after: units_after,
                    explanation,
                },
            });
        }
    }

    fn record_signal(
        &mut self,
        context: &Context<'_>,
        signal: &Signal,
        stocks: &BTreeMap<Sku, SkuStock>,
        out: &mut Outcome,
    ) -> Result<(), Rejection> {
        signal.validate(context.now)?;
        let Some(stock) = stocks.get(&signal.sku) else {
            return Err(Rejection::UnknownSku {
                sku: signal.sku.clone(),
            });
        };
        let existing = self.skus.get(&signal.sku);
        let replaces =
            existing.is_some_and(|s| s.signals.iter().any(|a| a.source == signal.source));
        if !replaces {
            let count = existing.map_or(0, |s| s.signals.len());
            too_many("signals on the SKU", count + 1, SKU_SIGNALS_MAX)?;
        }

        let expires_at = signal.expires_at(context.now);
        let active = ActiveSignal {
            source: signal.source.clone(),
            multiplier: signal.multiplier,
            recorded_at: context.now,
            expires_at,
        };
        let state: &mut SkuState = self.skus.entry(signal.sku.clone()).or_default();
        state.signals.retain(|a| a.source != signal.source);
        let at = state.signals.partition_point(|a| a.source < signal.source);
        state.signals.insert(at, active);
        self.signal_expiries
            .insert((expires_at, signal.sku.clone()));
        let cause = command_cause("record_signal", &signal.source);
        out.audit.push(setting_entry(
            context,
            &signal.sku,
            cause.clone(),
            None,
            serde_json::json!({ "signal": signal }),
        ));
        self.recompute_sku(context, CauseOf::Given(&cause), &signal.sku, stock, out);
        Ok(())
    }
}

fn setting_entry(
    context: &Context<'_>,
    sku: &Sku,
    cause: Cause,
    reason: Option<String>,
    detail: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        at: context.now,
        position: context.position,
        sku: sku.clone(),
        location: None,
        channel: None,
        cause,
        actor: context.actor.to_owned(),
        reason,
        change: AuditChange::Setting { detail },
    }
}
