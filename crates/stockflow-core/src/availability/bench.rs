//! A recompute workload for the `bench` command: one SKU at 3 locations, 10 channels (Shopify and
//! TikTok per location, Amazon and webhooks per SKU), every channel applying all four strategies
//! (static, dynamic with a live spike, channel-aware, an open time window), plus an operator
//! hold and a surge signal. The core reads no clock: the caller times [`RecomputeBench::run`].
//!
//! [`RecomputeBench::new`] is the worst case: every channel has its own channel-aware factor,
//! so no two channels share a computation. [`RecomputeBench::shared`] gives channels of one
//! kind the same settings, as merchants usually do, so channels of one shape are computed once.

use super::{
    Amount, Availability, AvailabilityCommand, ChannelAwareSettings, ChannelConfig, ChannelKind,
    ChannelLocation, ChannelRules, Context, DynamicSettings, Hold, Percent, Policy, Ratio, Release,
    Selector, Signal, SkuAttributes, SkuAttributesItem, SkuStock, Strategy, TimeWindowSettings,
};
use crate::ids::{ChannelId, LocationId, PolicyId, Sku, SourceId, TenantId};
use crate::outcome::Outcome;
use crate::quantity::{Quantities, QuantityState};
use crate::time::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

pub struct RecomputeBench {
    availability: Availability,
    tenant: TenantId,
    sku: Sku,
    /// Two stock states the runs alternate between, so that every channel's ATS changes.
    stocks: [SkuStock; 2],
    out: Outcome,
    position: u64,
    now: Timestamp,
    /// Which of `stocks` the next pick goes to.
    flip: bool,
}

const LOCATIONS: [&str; 3] = ["central", "east", "west"];
const CHANNELS: [(&str, ChannelKind, bool); 10] = [
    ("amazon-eu", ChannelKind::Amazon, false),
    ("amazon-uk", ChannelKind::Amazon, false),
    ("amazon-us", ChannelKind::Amazon, false),
    ("hook-a", ChannelKind::Webhook, false),
    ("hook-b", ChannelKind::Webhook, false),
    ("shopify-b2b", ChannelKind::Shopify, true),
    ("shopify-main", ChannelKind::Shopify, true),
    ("shopify-outlet", ChannelKind::Shopify, true),
    ("tiktok-eu", ChannelKind::Tiktok, true),
    ("tiktok-us", ChannelKind::Tiktok, true),
];

fn id<T: TryFrom<String>>(value: &str) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(value.to_owned()).expect("a valid id")
}

/// 1,000 available at each location, less `picked` at the first.
fn stock(picked: i64) -> SkuStock {
    LOCATIONS
        .iter()
        .enumerate()
        .map(|(index, location)| {
            let mut quantities = Quantities::default();
            let picked_here = if index == 0 { picked } else { 0 };
            quantities.add(QuantityState::Available, 1_000 - picked_here);
            (id::<LocationId>(location), quantities)
        })
        .collect()
}

impl Default for RecomputeBench {
    fn default() -> Self {
        Self::new()
    }
}

impl RecomputeBench {
    /// Every channel configured differently.
    pub fn new() -> Self {
        Self::build(false, true)
    }

    /// Channels of one kind configured alike.
    pub fn shared() -> Self {
        Self::build(true, true)
    }

    /// The same channels without any buffer (no policy, hold or signal): the cost of the ATS
    /// computation and emission alone, to compare with.
    pub fn without_buffers() -> Self {
        Self::build(false, false)
    }

    fn build(shared: bool, buffers: bool) -> Self {
        let now = Timestamp::from_unix_seconds(1_800_000_000);
        let mut bench = RecomputeBench {
            availability: Availability::default(),
            tenant: TenantId::default_tenant(),
            sku: id("BENCH-SKU"),
            stocks: [stock(0), stock(10)],
            out: Outcome::default(),
            position: 0,
            now,
            flip: true,
        };
        for command in bench.commands(shared) {
            let is_buffer = !matches!(command, AvailabilityCommand::UpsertChannel(_));
            if buffers || !is_buffer {
                bench.apply(&command);
            }
        }
        // A day of steady demand, then ten times that in the last hour: the dynamic policy is on.
        for minute in 0..(24 * 60) {
            let at = now.plus_seconds((minute - 25 * 60) * 60);
            bench.availability.record_demand(&bench.sku, None, 1, at);
        }
        for second in (0..3_600).step_by(6) {
            let at = now.plus_seconds(second - 3_600);
            bench.availability.record_demand(&bench.sku, None, 1, at);
        }
        bench.settle();
        if buffers {
            bench.apply(&AvailabilityCommand::RecordSignal(Signal {
                sku: bench.sku.clone(),
                source: id::<SourceId>("influencer-feed"),
                multiplier: Ratio::whole(8),
                duration_seconds: 7_200,
            }));
        }
        bench
    }

    fn commands(&self, shared: bool) -> Vec<AvailabilityCommand> {
        let factors = CHANNELS
            .iter()
            .enumerate()
            .map(|(index, (name, kind, _))| {
                let factor = match (shared, kind) {
                    (false, _) => 1_000 + 100 * index as i64,
                    (true, ChannelKind::Amazon | ChannelKind::Tiktok) => 1_500,
                    (true, _) => 500,
                };
                (id::<ChannelId>(name), Ratio::from_thousandths(factor))
            })
            .collect();
        let policy = |name: &str, strategy| {
            AvailabilityCommand::UpsertPolicy(Box::new(Policy {
                id: id(name),
                selector: Selector::default(),
                strategy,
            }))
        };
        let mut commands = Vec::new();
        for (index, (name, kind, per_location)) in CHANNELS.into_iter().enumerate() {
            // Channels first (the channel-aware policy names them), without policies for now.
            let priority_shift = if shared { kind as usize } else { index };
            commands.push(AvailabilityCommand::UpsertChannel(ChannelConfig {
                id: id(name),
                kind,
                locations: LOCATIONS
                    .iter()
                    .enumerate()
                    .map(|(priority, location)| ChannelLocation {
                        location: id(location),
                        priority: ((priority + priority_shift) % LOCATIONS.len()) as u32,
                    })
                    .collect(),
                per_location,
            }));
        }
        commands.extend([
            policy(
                "static-2pct",
                Strategy::Static {
                    amount: Amount::Percent(Percent::whole(2)),
                },
            ),
            policy("viral-guard", Strategy::Dynamic(DynamicSettings::default())),
            policy(
                "marketplace-risk",
                Strategy::ChannelAware(ChannelAwareSettings {
                    base: Percent::whole(3),
                    factors,
                    default_factor: Ratio::ONE,
                    cancellation_weight: Ratio::ONE,
                    maximum: Percent::whole(25),
                }),
            ),
            policy(
                "flash-sale",
                Strategy::TimeWindow(TimeWindowSettings {
                    starts_at: self.now.plus_seconds(-3_600),
                    ends_at: self.now.plus_seconds(3 * 3_600),
                    amount: Amount::Units(5),
                    release: Release::Gradual {
                        period_seconds: 3_600,
                        steps: 4,
                    },
                }),
            ),
        ]);
        for command in commands.clone() {
            let AvailabilityCommand::UpsertChannel(config) = command else {
                continue;
            };
            let policies = [
                "static-2pct",
                "viral-guard",
                "marketplace-risk",
                "flash-sale",
            ];
            commands.push(AvailabilityCommand::ConfigureChannel {
                config,
                rules: ChannelRules {
                    allocation: Default::default(),
                    policies: policies.iter().map(|name| id::<PolicyId>(name)).collect(),
                },
            });
        }
        commands.push(AvailabilityCommand::SetSkuAttributes {
            // (Selects nothing here; it keeps attribute look-ups on the measured path.)
            items: vec![SkuAttributesItem {
                sku: self.sku.clone(),
                attributes: SkuAttributes {
                    tier: Some("A".to_owned()),
                    ..SkuAttributes::default()
                },
            }],
        });
        commands.push(AvailabilityCommand::PlaceHold(Hold {
            id: id("ops-hold"),
            sku: self.sku.clone(),
            location: None,
            channels: BTreeSet::new(),
            amount: Amount::Units(2),
            reason: "launch reserve".to_owned(),
            expires_at: Some(self.now.plus_seconds(86_400)),
        }));
        commands
    }

    fn apply(&mut self, command: &AvailabilityCommand) {
        self.position += 1;
        let context = Context {
            tenant: &self.tenant,
            now: self.now,
            position: self.position,
            caused_at: self.now,
            actor: "bench",
        };
        let stocks = BTreeMap::from([(self.sku.clone(), self.stocks[0].clone())]);
        self.availability
            .apply_command(&context, command, &stocks, &mut self.out)
            .expect("the bench's settings are valid");
        self.settle();
    }

    /// Ticks until no sweep is left.
    fn settle(&mut self) {
        let stocks = BTreeMap::from([(self.sku.clone(), self.stocks[0].clone())]);
        while self
            .availability
            .next_deadline()
            .is_some_and(|at| at <= self.now)
        {
            self.position += 1;
            let context = Context {
                tenant: &self.tenant,
                now: self.now,
                position: self.position,
                caused_at: self.now,
                actor: "stockflow",
            };
            self.availability.tick(&context, &stocks, &mut self.out);
        }
    }

    /// What the ledger does after a pick from available: records the demand and recomputes the
    /// SKU, whose stock alternates between two states differing at one location, so that every
    /// channel told per SKU and one location of each channel told per location change (and
    /// are emitted). Repeated `iterations` times; returns the number of ATS changes emitted.
    pub fn run(&mut self, iterations: u64) -> u64 {
        self.run_with(iterations, true)
    }

    /// A recompute with the stock unchanged and no demand (as after an event that changed
    /// nothing sellable): nothing is emitted, the cost of the computation alone.
    pub fn run_unchanged(&mut self, iterations: u64) -> u64 {
        self.run_with(iterations, false)
    }

    fn run_with(&mut self, iterations: u64, picks: bool) -> u64 {
        let mut emitted = 0;
        for _ in 0..iterations {
            self.position += 1;
            let context = Context {
                tenant: &self.tenant,
                now: self.now,
                position: self.position,
                caused_at: self.now,
                actor: "bench",
            };
            if picks {
                self.flip = !self.flip;
            }
            let stock = &self.stocks[usize::from(picks && !self.flip)];
            if picks {
                self.availability
                    .record_demand(&self.sku, None, 1, self.now);
            }
            self.out.availability.clear();
            self.out.audit.clear();
            self.out.touched_skus.clear();
            self.availability
                .recompute(&context, &self.sku, stock, &mut self.out);
            emitted += self.out.availability.len() as u64;
        }
        emitted
    }

    /// How many channel computations one recompute makes (channels of one shape share one).
    pub fn computations_per_recompute(&mut self) -> usize {
        self.availability.ensure_compiled();
        self.availability.compiled.0.shapes.len()
    }

    /// The channels and their buffers as the workload sees them (for a sanity line in the
    /// bench's report).
    pub fn describe(&self) -> Vec<(ChannelId, i64, i64)> {
        self.availability
            .explain(&self.sku, &self.stocks[0], self.now)
            .into_iter()
            .map(|c| (c.channel, c.available_to_sell, c.withheld))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::availability::StrategyKind;

    #[test]
    fn the_workload_has_every_strategy_active_on_every_channel() {
        let bench = RecomputeBench::new();
        let views = bench
            .availability
            .explain(&bench.sku, &bench.stocks[0], bench.now);
        assert_eq!(views.len(), 10);
        for view in &views {
            let strategies: BTreeSet<StrategyKind> =
                view.buffers.iter().map(|b| b.strategy).collect();
            assert_eq!(strategies.len(), 5, "{view:#?}");
            assert!(view.withheld > 0 && view.available_to_sell < view.available);
        }
    }

    #[test]
    fn channels_alike_share_a_computation_and_get_the_same_numbers() {
        let mut distinct = RecomputeBench::new();
        let mut shared = RecomputeBench::shared();
        assert_eq!(distinct.computations_per_recompute(), 10);
        assert_eq!(shared.computations_per_recompute(), 3);
        for bench in [&mut distinct, &mut shared] {
            bench.run(3);
            let stock = &bench.stocks[1];
            let explained = bench.availability.explain(&bench.sku, stock, bench.now);
            let state = &bench.availability.skus[&bench.sku];
            for view in explained {
                let slot =
                    super::super::state::slot_of(&bench.availability.slots.channels, &view.channel)
                        .unwrap();
                let emitted: i64 = state
                    .emitted
                    .iter()
                    .filter(|e| e.channel == slot)
                    .map(|e| e.available_to_sell)
                    .sum();
                assert_eq!(emitted, view.available_to_sell, "{}", view.channel);
            }
        }
    }

    #[test]
    fn every_run_emits_every_channel_value_and_an_unchanged_run_nothing() {
        let mut bench = RecomputeBench::new();
        // 5 channels told per SKU + 5 told per location, at least at the location that
        // changed (more when the demand raised the dynamic level).
        for _ in 0..4 {
            assert!((10..=20).contains(&bench.run(1)));
        }
        assert_eq!(bench.run_unchanged(3), 0);
    }
}
