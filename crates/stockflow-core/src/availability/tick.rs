//! The passing of time: time-window transitions, hold and signal expiries, dynamic decay steps,
//! and settings sweeps. A tick touches only the SKUs that are due (at most
//! [`TICK_SKUS_MAX`] of them); what is left stays due and the writer ticks again.

use super::limits::TICK_SKUS_MAX;
use super::policy::Strategy;
use super::recompute::{CauseOf, target_share};
use super::state::SkuState;
use super::{Availability, Context, SkuStock};
use crate::ids::Sku;
use crate::outcome::{Cause, Outcome};
use crate::time::Timestamp;
use std::collections::BTreeMap;
use std::ops::Bound;

fn time_cause(what: &str) -> Cause {
    Cause::Time {
        what: what.to_owned(),
    }
}

impl Availability {
    /// Time passed: applies what is due at `context.now`. Changes of ATS are emitted with
    /// `caused_at` the tick's time, except a settings sweep's, which carry the settings change's.
    pub fn tick(
        &mut self,
        context: &Context<'_>,
        stocks: &BTreeMap<Sku, SkuStock>,
        out: &mut Outcome,
    ) {
        self.ensure_compiled();
        let mut budget = TICK_SKUS_MAX;
        self.advance_windows(context.now);
        self.expire_holds(context, stocks, out, &mut budget);
        self.expire_signals(context.now, &mut budget);
        self.step_dynamic(context, stocks, out, &mut budget);
        self.continue_sweep(context, stocks, out, &mut budget);
    }

    /// The next instant at which time alone changes something here: a hold or signal expiry, a
    /// decay step, a time window's transition, or a sweep under way (due at once).
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let windows =
            self.windows
                .iter()
                .filter_map(|(id, passed)| match &self.policies.get(id)?.strategy {
                    Strategy::TimeWindow(settings) => settings.transition(*passed),
                    _ => None,
                });
        [
            self.hold_expiries.first().map(|(at, _)| *at),
            self.signal_expiries.first().map(|(at, _)| *at),
            self.dynamic_steps.first().map(|(at, _)| *at),
            self.sweep.as_ref().map(|s| s.requested_at),
        ]
        .into_iter()
        .flatten()
        .chain(windows)
        .min()
    }

    /// A window that started, ended or took a release step changes every SKU it selects.
    fn advance_windows(&mut self, now: Timestamp) {
        let mut moved = Vec::new();
        for (id, passed) in self.windows.iter_mut() {
            let Some(Strategy::TimeWindow(settings)) = self.policies.get(id).map(|p| &p.strategy)
            else {
                continue;
            };
            let now_passed = settings.transitions_passed(now);
            if now_passed != *passed {
                *passed = now_passed;
                moved.push(id.clone());
            }
        }
        for id in moved {
            let applied = self.compiled.0.policies.iter().any(|p| p.policy.id == id);
            if applied {
                self.request_sweep(now, now, time_cause(&format!("time window {id}")));
            }
        }
    }

    fn expire_holds(
        &mut self,
        context: &Context<'_>,
        stocks: &BTreeMap<Sku, SkuStock>,
        out: &mut Outcome,
        budget: &mut usize,
    ) {
        let cause = time_cause("hold expired");
        while *budget > 0 {
            let Some((at, hold)) = self.hold_expiries.first().cloned() else {
                break;
            };
            if at > context.now {
                break;
            }
            *budget -= 1;
            self.hold_expiries.remove(&(at, hold.clone()));
            self.end_hold(context, &cause, &hold, stocks, out);
        }
    }

    /// Expired signals are dropped (a dynamic level they raised decays in its own steps).
    fn expire_signals(&mut self, now: Timestamp, budget: &mut usize) {
        while *budget > 0 {
            let Some((at, sku)) = self.signal_expiries.first().cloned() else {
                break;
            };
            if at > now {
                break;
            }
            *budget -= 1;
            self.signal_expiries.remove(&(at, sku.clone()));
            if let Some(state) = self.skus.get_mut(&sku) {
                state.signals.retain(|signal| signal.expires_at > now);
            }
        }
    }

    /// Each due SKU's dynamic levels move one step towards what demand calls for now: up at
    /// once (a decaying level only for a new surge), down by at most the policy's decay per
    /// step, never in one jump.
    fn step_dynamic(
        &mut self,
        context: &Context<'_>,
        stocks: &BTreeMap<Sku, SkuStock>,
        out: &mut Outcome,
        budget: &mut usize,
    ) {
        let cause = time_cause("dynamic buffer step");
        while *budget > 0 {
            let Some((at, sku)) = self.dynamic_steps.first().cloned() else {
                break;
            };
            if at > context.now {
                break;
            }
            *budget -= 1;
            self.dynamic_steps.remove(&(at, sku.clone()));
            let Some(state) = self.skus.get_mut(&sku) else {
                continue;
            };
            step_levels(&self.compiled.0, state, context.now);
            if let Some(next) = state.dynamic_due() {
                self.dynamic_steps.insert((next, sku.clone()));
            }
            if let Some(stock) = stocks.get(&sku) {
                self.recompute_sku(context, CauseOf::Given(&cause), &sku, stock, out);
            }
        }
    }

    /// Recomputes the next SKUs of a settings sweep.
    fn continue_sweep(
        &mut self,
        context: &Context<'_>,
        stocks: &BTreeMap<Sku, SkuStock>,
        out: &mut Outcome,
        budget: &mut usize,
    ) {
        let Some(sweep) = self.sweep.clone() else {
            return;
        };
        if *budget == 0 || sweep.requested_at > context.now {
            return;
        }
        let start = match &sweep.after {
            Some(sku) => Bound::Excluded(sku),
            None => Bound::Unbounded,
        };
        let batch: Vec<&Sku> = stocks
            .range::<Sku, _>((start, Bound::Unbounded))
            .take(*budget)
            .map(|(sku, _)| sku)
            .collect();
        *budget -= batch.len();
        let swept = Context {
            caused_at: sweep.caused_at,
            ..*context
        };
        for sku in &batch {
            self.recompute_sku(
                &swept,
                CauseOf::Given(&sweep.cause),
                sku,
                &stocks[*sku],
                out,
            );
        }
        let finished = *budget > 0;
        self.sweep = if finished {
            None
        } else {
            batch.last().map(|last| super::state::Sweep {
                after: Some((*last).clone()),
                ..sweep
            })
        };
    }
}

fn step_levels(compiled: &super::state::Compiled, state: &mut SkuState, now: Timestamp) {
    let reading = state.velocity.read(now);
    let mut levels = std::mem::take(&mut state.dynamic);
    levels.retain_mut(|level| {
        let Some(settings) = compiled.dynamic_settings(level.policy) else {
            return false;
        };
        if level.next_step_at > now {
            return true;
        }
        let target = target_share(settings, &reading, state, now);
        if target >= level.level {
            level.raise_to(target, settings.decay_per_step);
        } else {
            let lowered = level.level.basis_points() - settings.decay_per_step.basis_points();
            level.level = target.max(super::amount::Percent::from_basis_points(lowered));
            level.decaying = true;
        }
        level.next_step_at = now.plus_seconds(i64::from(settings.decay_step_seconds));
        level.level.basis_points() > 0
    });
    state.dynamic = levels;
}
