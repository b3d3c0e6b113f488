//! Availability and buffers through the public interface: the seed's viral-SKU scenario, one
//! table per strategy, combination and rounding rules, allocation rules, refusals, and the
//! property that no channel is ever shown more than its locations have available.

use proptest::prelude::{
    Just, ProptestConfig, any, prop_assert, prop_assert_eq, prop_oneof, proptest,
};
use proptest::strategy::Strategy as Generator;
use std::collections::{BTreeMap, BTreeSet};
use stockflow_core::availability::{
    Allocation, Amount, Availability, AvailabilityCommand, ChannelAvailability,
    ChannelAwareSettings, ChannelConfig, ChannelKind, ChannelLocation, ChannelRules, Context,
    CurvePoint, DynamicSettings, Hold, Percent, Policy, Ratio, Release, Selector, Signal,
    SkuAttributes, SkuAttributesItem, SkuStock, Strategy, StrategyKind, TimeWindowSettings,
};
use stockflow_core::ids::{ChannelId, LocationId, PolicyId, Sku, SourceId, TenantId};
use stockflow_core::outcome::{AuditChange, AuditEntry, Outcome, Rejection};
use stockflow_core::quantity::{Quantities, QuantityState};
use stockflow_core::time::Timestamp;

const START_SECONDS: i64 = 1_800_000_000;

fn sku(name: &str) -> Sku {
    Sku::parse(name).unwrap()
}

fn location(name: &str) -> LocationId {
    LocationId::parse(name).unwrap()
}

fn channel_id(name: &str) -> ChannelId {
    ChannelId::parse(name).unwrap()
}

fn policy_id(name: &str) -> PolicyId {
    PolicyId::parse(name).unwrap()
}

fn percent(value: i64) -> Percent {
    Percent::whole(value)
}

/// A channel and its rules.
#[derive(Clone)]
struct Channel {
    config: ChannelConfig,
    rules: ChannelRules,
}

/// A channel served by `locations` (in priority order), applying `policies`.
fn channel(name: &str, kind: ChannelKind, locations: &[&str], policies: &[&str]) -> Channel {
    Channel {
        config: ChannelConfig {
            id: channel_id(name),
            kind,
            locations: locations
                .iter()
                .enumerate()
                .map(|(priority, l)| ChannelLocation {
                    location: location(l),
                    priority: priority as u32,
                })
                .collect(),
            per_location: matches!(kind, ChannelKind::Shopify | ChannelKind::Tiktok),
        },
        rules: ChannelRules {
            allocation: Allocation::default(),
            policies: policies.iter().map(|p| policy_id(p)).collect(),
        },
    }
}

fn upsert_channel(channel: Channel) -> AvailabilityCommand {
    AvailabilityCommand::ConfigureChannel {
        config: channel.config,
        rules: channel.rules,
    }
}

fn policy(name: &str, strategy: Strategy) -> Policy {
    Policy {
        id: policy_id(name),
        selector: Selector::default(),
        strategy,
    }
}

fn upsert_policy(policy: Policy) -> AvailabilityCommand {
    AvailabilityCommand::UpsertPolicy(Box::new(policy))
}

fn static_policy(name: &str, amount: Amount) -> Policy {
    policy(name, Strategy::Static { amount })
}

fn hold(id: &str, sku_name: &str, amount: Amount) -> Hold {
    Hold {
        id: policy_id(id),
        sku: sku(sku_name),
        location: None,
        channels: BTreeSet::new(),
        amount,
        reason: "launch reserve".to_owned(),
        expires_at: None,
    }
}

/// One tenant's availability with its stock, driven the way the ledger drives it.
struct World {
    availability: Availability,
    stocks: BTreeMap<Sku, SkuStock>,
    tenant: TenantId,
    now: Timestamp,
    position: u64,
    /// Every outcome, in order.
    log: Vec<Outcome>,
}

impl World {
    fn new() -> Self {
        World {
            availability: Availability::default(),
            stocks: BTreeMap::new(),
            tenant: TenantId::default_tenant(),
            now: Timestamp::from_unix_seconds(START_SECONDS),
            position: 0,
            log: Vec::new(),
        }
    }

    fn context(&mut self, actor: &'static str) -> (u64, &'static str) {
        self.position += 1;
        (self.position, actor)
    }

    /// Applies a command, then ticks through what it made due (a settings sweep).
    fn command(&mut self, command: AvailabilityCommand) -> Result<(), Rejection> {
        let (position, actor) = self.context("ops");
        let context = Context {
            tenant: &self.tenant,
            now: self.now,
            position,
            caused_at: self.now,
            actor,
        };
        let mut out = Outcome::default();
        let result = self
            .availability
            .apply_command(&context, &command, &self.stocks, &mut out);
        self.log.push(out);
        result?;
        self.settle();
        Ok(())
    }

    fn commands(&mut self, commands: Vec<AvailabilityCommand>) {
        for command in commands {
            self.command(command).unwrap();
        }
    }

    /// Sets `available` of a SKU at a location, and recomputes it (as the ledger does after an
    /// event).
    fn stock(&mut self, sku_name: &str, at: &str, available: i64) {
        let mut quantities = Quantities::default();
        quantities.add(QuantityState::Available, available);
        self.stocks
            .entry(sku(sku_name))
            .or_default()
            .insert(location(at), quantities);
        self.recompute(sku_name);
    }

    fn recompute(&mut self, sku_name: &str) {
        let (position, actor) = self.context("wms");
        let context = Context {
            tenant: &self.tenant,
            now: self.now,
            position,
            caused_at: self.now,
            actor,
        };
        let mut out = Outcome::default();
        let sku = sku(sku_name);
        self.availability
            .recompute(&context, &sku, &self.stocks[&sku], &mut out);
        self.log.push(out);
    }

    /// Demand of `quantity` units recorded and the SKU recomputed (a pick from available).
    fn demand(&mut self, sku_name: &str, quantity: i64) {
        self.availability
            .record_demand(&sku(sku_name), None, quantity, self.now);
        self.recompute(sku_name);
    }

    /// Ticks at every deadline up to now.
    fn settle(&mut self) {
        let mut ticks = 0;
        while let Some(at) = self.availability.next_deadline()
            && at <= self.now
        {
            self.tick_at(self.now);
            ticks += 1;
            assert!(ticks < 10_000, "time never stops being due");
        }
    }

    fn tick_at(&mut self, now: Timestamp) {
        let (position, actor) = self.context("stockflow");
        let context = Context {
            tenant: &self.tenant,
            now,
            position,
            caused_at: now,
            actor,
        };
        let mut out = Outcome::default();
        self.availability.tick(&context, &self.stocks, &mut out);
        self.log.push(out);
    }

    /// Moves time to `seconds` later, ticking at each deadline on the way.
    fn advance(&mut self, seconds: i64) {
        let until = self.now.plus_seconds(seconds);
        while let Some(at) = self.availability.next_deadline()
            && at <= until
        {
            self.now = self.now.max(at);
            self.tick_at(self.now);
        }
        self.now = until;
    }

    fn view(&self, sku_name: &str) -> Vec<ChannelAvailability> {
        let sku = sku(sku_name);
        self.availability
            .explain(&sku, &self.stocks[&sku], self.now)
    }

    fn channel_view(&self, sku_name: &str, channel: &str) -> ChannelAvailability {
        self.view(sku_name)
            .into_iter()
            .find(|c| c.channel.as_str() == channel)
            .unwrap()
    }

    /// (available to sell, withheld) per channel.
    fn numbers(&self, sku_name: &str) -> Vec<(String, i64, i64)> {
        self.view(sku_name)
            .into_iter()
            .map(|c| (c.channel.to_string(), c.available_to_sell, c.withheld))
            .collect()
    }

    fn audit(&self) -> impl Iterator<Item = &AuditEntry> {
        self.log.iter().flat_map(|o| &o.audit)
    }

    /// Buffer audit entries of one policy on one channel: (kind, before, after, explanation).
    fn buffer_changes(&self, policy: &str, channel: &str) -> Vec<(String, i64, i64, String)> {
        self.audit()
            .filter(|e| e.channel.as_ref().is_some_and(|c| c.as_str() == channel))
            .filter_map(|e| match &e.change {
                AuditChange::Buffer {
                    policy: p,
                    before,
                    after,
                    explanation,
                    ..
                } if p.as_str() == policy => Some((
                    e.reason.clone().unwrap_or_default(),
                    *before,
                    *after,
                    explanation.clone(),
                )),
                _ => None,
            })
            .collect()
    }

    /// The last ATS emitted per (channel, location).
    fn last_emitted(&self) -> BTreeMap<(String, Option<String>), i64> {
        let mut last = BTreeMap::new();
        for change in self.log.iter().flat_map(|o| &o.availability) {
            last.insert(
                (
                    change.channel.to_string(),
                    change.location.as_ref().map(|l| l.to_string()),
                ),
                change.available_to_sell,
            );
        }
        last
    }
}

/// Records `per_hour` units an hour for `minutes`, one unit at a time, ticking on the way.
fn feed(world: &mut World, sku_name: &str, per_hour: i64, minutes: i64) {
    let step_seconds = 3_600 / per_hour;
    let until = world.now.plus_seconds(minutes * 60);
    while world.now < until {
        world.demand(sku_name, 1);
        world.advance(step_seconds);
    }
}

// ---------------------------------------------------------------------------------------------
// The seed scenario.

#[test]
fn a_tenfold_spike_withholds_from_marketplaces_within_the_band_and_decays_back_step_by_step() {
    let mut world = World::new();
    let risk = ChannelAwareSettings {
        base: percent(3),
        factors: BTreeMap::from([(channel_id("shopify"), Ratio::ZERO)]),
        default_factor: Ratio::ONE,
        cancellation_weight: Ratio::ONE,
        maximum: percent(10),
    };
    world.commands(vec![
        upsert_channel(channel("shopify", ChannelKind::Shopify, &["east"], &[])),
        upsert_policy(policy(
            "viral-guard",
            Strategy::Dynamic(DynamicSettings::default()),
        )),
        upsert_policy(policy("marketplace-risk", Strategy::ChannelAware(risk))),
        upsert_channel(channel(
            "amazon",
            ChannelKind::Amazon,
            &["east"],
            &["viral-guard", "marketplace-risk"],
        )),
        upsert_channel(channel(
            "tiktok",
            ChannelKind::Tiktok,
            &["east"],
            &["viral-guard", "marketplace-risk"],
        )),
        upsert_channel(channel(
            "shopify",
            ChannelKind::Shopify,
            &["east"],
            &["viral-guard", "marketplace-risk"],
        )),
    ]);
    world.stock("SKU-VIRAL", "east", 1_000);
    let calm = world.numbers("SKU-VIRAL");
    assert_eq!(
        calm,
        vec![
            ("amazon".to_owned(), 970, 30),
            ("shopify".to_owned(), 1_000, 0),
            ("tiktok".to_owned(), 970, 30),
        ]
    );

    // Two days at 10 units an hour, then ten times that for an hour.
    feed(&mut world, "SKU-VIRAL", 10, 48 * 60);
    assert_eq!(
        world.numbers("SKU-VIRAL"),
        calm,
        "steady demand withholds nothing more"
    );
    feed(&mut world, "SKU-VIRAL", 100, 60);

    let spiked = world.view("SKU-VIRAL");
    for channel in &spiked {
        let share = channel.withheld as f64 / channel.available as f64;
        match channel.channel.as_str() {
            "amazon" | "tiktok" => {
                assert!((0.05..=0.15).contains(&share), "{channel:#?}")
            }
            _ => assert!(channel.withheld > 0, "{channel:#?}"),
        }
    }
    let withheld = |name: &str| {
        spiked
            .iter()
            .find(|c| c.channel.as_str() == name)
            .unwrap()
            .withheld
    };
    assert!(withheld("shopify") < withheld("amazon"));
    assert_eq!(withheld("amazon"), withheld("tiktok"));
    let dynamic = world.channel_view("SKU-VIRAL", "amazon").buffers[0].clone();
    assert_eq!(dynamic.strategy, StrategyKind::Dynamic);
    assert!(
        dynamic.reason.starts_with("dynamic: ")
            && dynamic
                .reason
                .contains("x baseline velocity over 60 min -> "),
        "{}",
        dynamic.reason
    );
    let applied = world.buffer_changes("viral-guard", "amazon");
    assert_eq!(applied[0].0, "buffer applied", "{applied:#?}");
    assert!(
        applied[0].3.contains("x baseline velocity over 60 min -> "),
        "{applied:#?}"
    );

    // Demand subsides: back to 10 an hour for three hours. While the spike is still inside the
    // window the buffer may rise a little more; after its peak it only goes down, a step at a
    // time.
    feed(&mut world, "SKU-VIRAL", 10, 3 * 60);
    let changes = world.buffer_changes("viral-guard", "amazon");
    let peak = changes
        .iter()
        .rposition(|(kind, ..)| kind == "buffer applied" || kind == "buffer grown")
        .unwrap();
    let steps = changes[peak + 1..].to_vec();
    assert!(
        steps.len() >= 3,
        "released in steps, not one jump: {changes:#?}"
    );
    for (kind, before, after, explanation) in &steps {
        assert!(
            kind == "buffer decayed" || kind == "buffer released",
            "{changes:#?}"
        );
        assert!(after < before, "{before} -> {after}");
        // The default decay is 2 points of 1,000 units a step.
        assert!(
            before - after <= 20,
            "one step released {before} -> {after}: {explanation}"
        );
    }
    assert_eq!(steps.last().unwrap().0, "buffer released");
    assert_eq!(steps.last().unwrap().2, 0);
    assert_eq!(
        world.numbers("SKU-VIRAL"),
        calm,
        "the stock is sellable again"
    );
    // The channels were told so: what was last emitted is what they may sell now.
    let emitted = world.last_emitted();
    assert_eq!(emitted[&("amazon".to_owned(), None)], 970);
    assert_eq!(
        emitted[&("shopify".to_owned(), Some("east".to_owned()))],
        1_000
    );
    let releases: u64 = world.log.iter().map(|o| o.buffer_changes.released).sum();
    assert!(
        releases >= 3,
        "one release per channel at least: {releases}"
    );
}

// ---------------------------------------------------------------------------------------------
// One table per strategy.

/// A case: channels, policies, SKU attributes and holds, the stock of SKU-1 at east and west,
/// then the numbers expected per channel: (channel, available to sell, withheld, the buffer
/// quantities by policy).
struct Case {
    policies: Vec<Policy>,
    channels: Vec<Channel>,
    attributes: Option<SkuAttributes>,
    holds: Vec<Hold>,
    stock: [(&'static str, i64); 2],
    demand: Vec<(i64, i64)>,
}

impl Default for Case {
    fn default() -> Self {
        Case {
            policies: Vec::new(),
            channels: Vec::new(),
            attributes: None,
            holds: Vec::new(),
            stock: [("east", 100), ("west", 0)],
            demand: Vec::new(),
        }
    }
}

/// A channel's numbers as a check compares them: (channel, ATS, withheld, buffers by policy).
type Row = (String, i64, i64, Vec<(String, i64)>);

type Expected<'a> = &'a [(&'a str, i64, i64, &'a [(&'a str, i64)])];

fn check(case: Case, expected: Expected<'_>) -> World {
    let mut world = World::new();
    for (at, available) in case.stock {
        world.stock("SKU-1", at, available);
    }
    for policy in case.policies {
        world.command(upsert_policy(policy)).unwrap();
    }
    for channel in case.channels {
        world.command(upsert_channel(channel)).unwrap();
    }
    if let Some(attributes) = case.attributes {
        world
            .command(AvailabilityCommand::SetSkuAttributes {
                items: vec![SkuAttributesItem {
                    sku: sku("SKU-1"),
                    attributes,
                }],
            })
            .unwrap();
    }
    for hold in case.holds {
        world.command(AvailabilityCommand::PlaceHold(hold)).unwrap();
    }
    for (per_hour, minutes) in case.demand {
        feed(&mut world, "SKU-1", per_hour, minutes);
    }
    let actual: Vec<Row> = world
        .view("SKU-1")
        .into_iter()
        .map(|c| {
            let sum: i64 = c.buffers.iter().map(|b| b.quantity).sum();
            assert_eq!(
                sum, c.withheld,
                "components add up to the withheld total: {c:#?}"
            );
            assert!(c.available_to_sell >= 0 && c.available_to_sell + c.withheld <= c.available);
            (
                c.channel.to_string(),
                c.available_to_sell,
                c.withheld,
                c.buffers
                    .iter()
                    .map(|b| (b.policy.to_string(), b.quantity))
                    .collect(),
            )
        })
        .collect();
    let expected: Vec<Row> = expected
        .iter()
        .map(|(channel, ats, withheld, buffers)| {
            (
                channel.to_string(),
                *ats,
                *withheld,
                buffers.iter().map(|(p, q)| (p.to_string(), *q)).collect(),
            )
        })
        .collect();
    assert_eq!(actual, expected);
    // And the channel sync was told the same numbers.
    let emitted = world.last_emitted();
    for view in world.view("SKU-1") {
        let told: i64 = emitted
            .iter()
            .filter(|((channel, _), _)| channel == view.channel.as_str())
            .map(|(_, ats)| ats)
            .sum();
        assert_eq!(told, view.available_to_sell, "{}", view.channel);
    }
    world
}

fn amazon(policies: &[&str]) -> Channel {
    channel("amazon", ChannelKind::Amazon, &["east", "west"], policies)
}

fn shopify(policies: &[&str]) -> Channel {
    channel("shopify", ChannelKind::Shopify, &["east", "west"], policies)
}

#[test]
fn static_buffers() {
    // A share, rounded up.
    check(
        Case {
            policies: vec![static_policy("s", Amount::Percent(percent(10)))],
            channels: vec![amazon(&["s"])],
            stock: [("east", 95), ("west", 0)],
            ..Case::default()
        },
        &[("amazon", 85, 10, &[("s", 10)])],
    );
    // Units, from the highest-priority location first.
    check(
        Case {
            policies: vec![static_policy("s", Amount::Units(5))],
            channels: vec![shopify(&["s"])],
            stock: [("east", 3), ("west", 10)],
            ..Case::default()
        },
        &[("shopify", 8, 5, &[("s", 5)])],
    );
    // Per tier: tier A is selected, a SKU of tier C is not.
    let by_tier = |tier: &str| Case {
        policies: vec![Policy {
            selector: Selector {
                tiers: ["A".to_owned()].into(),
                ..Selector::default()
            },
            ..static_policy("tier-a", Amount::Percent(percent(20)))
        }],
        channels: vec![amazon(&["tier-a"])],
        attributes: Some(SkuAttributes {
            tier: Some(tier.to_owned()),
            ..SkuAttributes::default()
        }),
        ..Case::default()
    };
    check(by_tier("A"), &[("amazon", 80, 20, &[("tier-a", 20)])]);
    check(by_tier("C"), &[("amazon", 100, 0, &[])]);
    // Per tag.
    check(
        Case {
            policies: vec![Policy {
                selector: Selector {
                    tags_any: ["viral".to_owned()].into(),
                    ..Selector::default()
                },
                ..static_policy("tagged", Amount::Units(7))
            }],
            channels: vec![amazon(&["tagged"])],
            attributes: Some(SkuAttributes {
                tags: ["viral".to_owned(), "electronics".to_owned()].into(),
                ..SkuAttributes::default()
            }),
            ..Case::default()
        },
        &[("amazon", 93, 7, &[("tagged", 7)])],
    );
}

#[test]
fn dynamic_buffers() {
    let dynamic = || policy("dyn", Strategy::Dynamic(DynamicSettings::default()));
    // Steady demand: nothing.
    check(
        Case {
            policies: vec![dynamic()],
            channels: vec![amazon(&["dyn"])],
            demand: vec![(10, 26 * 60)],
            ..Case::default()
        },
        &[("amazon", 100, 0, &[])],
    );
    // Ten times the baseline in the last hour reads 9.x (the window is 60 to 65 minutes, and
    // the baseline a day's decayed average): 9% on the default curve.
    check(
        Case {
            policies: vec![dynamic()],
            channels: vec![amazon(&["dyn"])],
            demand: vec![(10, 26 * 60), (100, 60)],
            stock: [("east", 1_000), ("west", 0)],
            ..Case::default()
        },
        &[("amazon", 910, 90, &[("dyn", 90)])],
    );
    // Twenty times: the top of the curve, 15%.
    check(
        Case {
            policies: vec![dynamic()],
            channels: vec![amazon(&["dyn"])],
            demand: vec![(10, 26 * 60), (300, 60)],
            stock: [("east", 1_000), ("west", 0)],
            ..Case::default()
        },
        &[("amazon", 850, 150, &[("dyn", 150)])],
    );
    // A custom curve: anything from 2x withholds 30%.
    let custom = policy(
        "dyn",
        Strategy::Dynamic(DynamicSettings {
            curve: vec![CurvePoint {
                ratio: Ratio::whole(2),
                percent: percent(30),
            }],
            decay_per_step: percent(5),
            ..DynamicSettings::default()
        }),
    );
    check(
        Case {
            policies: vec![custom],
            channels: vec![amazon(&["dyn"])],
            demand: vec![(10, 26 * 60), (30, 60)],
            ..Case::default()
        },
        &[("amazon", 70, 30, &[("dyn", 30)])],
    );
}

#[test]
fn a_surge_signal_raises_a_dynamic_buffer_before_demand_arrives_and_it_decays_after() {
    let mut world = check(
        Case {
            policies: vec![policy("dyn", Strategy::Dynamic(DynamicSettings::default()))],
            channels: vec![amazon(&["dyn"])],
            ..Case::default()
        },
        &[("amazon", 100, 0, &[])],
    );
    world
        .command(AvailabilityCommand::RecordSignal(Signal {
            sku: sku("SKU-1"),
            source: SourceId::parse("influencer-feed").unwrap(),
            multiplier: Ratio::whole(20),
            duration_seconds: 1_800,
        }))
        .unwrap();
    let view = world.channel_view("SKU-1", "amazon");
    assert_eq!((view.available_to_sell, view.withheld), (85, 15));
    assert!(
        view.buffers[0]
            .reason
            .starts_with("dynamic: surge signal from influencer-feed: 20x expected demand"),
        "{}",
        view.buffers[0].reason
    );
    world.advance(3 * 3_600);
    assert_eq!(world.numbers("SKU-1"), vec![("amazon".to_owned(), 100, 0)]);
    let changes = world.buffer_changes("dyn", "amazon");
    let kinds: Vec<&str> = changes.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"buffer applied"));
    assert_eq!(kinds.last(), Some(&"buffer released"));
    assert!(kinds.len() >= 5, "15% at 2 points a step: {changes:#?}");
}

#[test]
fn channel_aware_buffers() {
    let risk = |cancellation_weight| {
        policy(
            "risk",
            Strategy::ChannelAware(ChannelAwareSettings {
                base: percent(4),
                factors: BTreeMap::from([
                    (channel_id("amazon"), Ratio::from_thousandths(1_500)),
                    (channel_id("shopify"), Ratio::ZERO),
                ]),
                default_factor: Ratio::ONE,
                cancellation_weight,
                maximum: percent(20),
            }),
        )
    };
    let channels = || {
        vec![
            amazon(&[]),
            shopify(&[]),
            channel("tiktok", ChannelKind::Tiktok, &["east"], &[]),
            amazon(&["risk"]),
            shopify(&["risk"]),
            channel("tiktok", ChannelKind::Tiktok, &["east"], &["risk"]),
        ]
    };
    // Configured factors: 1.5 x 4% on Amazon, 1 x 4% on TikTok, nothing on the storefront.
    let mut world = check(
        Case {
            policies: vec![risk(Ratio::whole(2))],
            channels: channels(),
            ..Case::default()
        },
        &[
            ("amazon", 94, 6, &[("risk", 6)]),
            ("shopify", 100, 0, &[]),
            ("tiktok", 96, 4, &[("risk", 4)]),
        ],
    );
    // Orders flow: Amazon cancels 3 units of 100, so 2 x 3% more is held back from it.
    let amazon_id = channel_id("amazon");
    let now = world.now;
    world
        .availability
        .record_reservation(&amazon_id, &sku("SKU-1"), 100, now);
    world
        .availability
        .record_cancellation(&amazon_id, &sku("SKU-1"), 3, now);
    assert_eq!(
        world.availability.cancellation_rate(&amazon_id),
        Some(percent(3))
    );
    world.settle();
    assert_eq!(
        world.numbers("SKU-1"),
        vec![
            ("amazon".to_owned(), 88, 12),
            ("shopify".to_owned(), 100, 0),
            ("tiktok".to_owned(), 96, 4),
        ]
    );
    assert_eq!(world.last_emitted()[&("amazon".to_owned(), None)], 88);
    let reason = &world.channel_view("SKU-1", "amazon").buffers[0].reason;
    assert_eq!(
        reason,
        "channel-aware: amazon factor 1.5x x 4% + measured cancellation rate 3% x 2x -> 12%"
    );
    let changes = world.buffer_changes("risk", "amazon");
    assert_eq!(changes.last().unwrap().0, "buffer grown");
    assert_eq!(
        (changes.last().unwrap().1, changes.last().unwrap().2),
        (6, 12)
    );
}

#[test]
fn time_window_buffers() {
    let window = |release, starts_in: i64| {
        let now = Timestamp::from_unix_seconds(START_SECONDS);
        policy(
            "flash",
            Strategy::TimeWindow(TimeWindowSettings {
                starts_at: now.plus_seconds(starts_in),
                ends_at: now.plus_seconds(starts_in + 3_600),
                amount: Amount::Units(20),
                release,
            }),
        )
    };
    let gradual = Release::Gradual {
        period_seconds: 2_400,
        steps: 4,
    };
    // Open now: the full amount.
    check(
        Case {
            policies: vec![window(gradual, -60)],
            channels: vec![amazon(&["flash"])],
            ..Case::default()
        },
        &[("amazon", 80, 20, &[("flash", 20)])],
    );
    // Not started yet: nothing, then everything at its start, then four steps after its end.
    let mut world = check(
        Case {
            policies: vec![window(gradual, 600)],
            channels: vec![amazon(&["flash"])],
            ..Case::default()
        },
        &[("amazon", 100, 0, &[])],
    );
    let mut seen = Vec::new();
    for _ in 0..12 {
        world.advance(600);
        seen.push(world.channel_view("SKU-1", "amazon").withheld);
    }
    // Open from 600 s to 4,200 s, then a step every 600 s.
    assert_eq!(seen, vec![20, 20, 20, 20, 20, 20, 20, 15, 10, 5, 0, 0]);
    let kinds: Vec<String> = world
        .buffer_changes("flash", "amazon")
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(
        kinds,
        [
            "buffer applied",
            "buffer decayed",
            "buffer decayed",
            "buffer decayed",
            "buffer released"
        ]
    );
    // Released as picked: after the end each unit picked gives one back.
    let mut world = check(
        Case {
            policies: vec![window(
                Release::AsPicked {
                    period_seconds: 7_200,
                },
                -3_000,
            )],
            channels: vec![amazon(&["flash"])],
            ..Case::default()
        },
        &[("amazon", 80, 20, &[("flash", 20)])],
    );
    world.advance(600);
    world.availability.record_pick(&sku("SKU-1"), 6, world.now);
    world.stock("SKU-1", "east", 94);
    assert_eq!(world.numbers("SKU-1"), vec![("amazon".to_owned(), 80, 14)]);
    world.advance(7_200);
    assert_eq!(world.numbers("SKU-1"), vec![("amazon".to_owned(), 94, 0)]);
}

#[test]
fn operator_holds() {
    // At one location, on one channel only; expires.
    let mut world = check(
        Case {
            channels: vec![amazon(&[]), shopify(&[])],
            stock: [("east", 50), ("west", 50)],
            holds: vec![Hold {
                location: Some(location("west")),
                channels: [channel_id("shopify")].into(),
                expires_at: Some(Timestamp::from_unix_seconds(START_SECONDS + 3_600)),
                ..hold("h1", "SKU-1", Amount::Percent(percent(50)))
            }],
            ..Case::default()
        },
        &[("amazon", 100, 0, &[]), ("shopify", 75, 25, &[("h1", 25)])],
    );
    let shopify_west = world.last_emitted()[&("shopify".to_owned(), Some("west".to_owned()))];
    assert_eq!(shopify_west, 25);
    let placed = world.buffer_changes("h1", "shopify");
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].0, "buffer applied");
    assert!(
        placed[0]
            .3
            .starts_with("hold by ops: launch reserve, expires in 60 min -> 50%")
    );
    world.advance(3_600);
    assert_eq!(world.channel_view("SKU-1", "shopify").withheld, 0);
    assert_eq!(
        world.buffer_changes("h1", "shopify")[1].0,
        "buffer released"
    );
    // Released by hand.
    let mut world = check(
        Case {
            channels: vec![amazon(&[])],
            holds: vec![hold("h2", "SKU-1", Amount::Units(30))],
            ..Case::default()
        },
        &[("amazon", 70, 30, &[("h2", 30)])],
    );
    world
        .command(AvailabilityCommand::ReleaseHold {
            hold: policy_id("h2"),
        })
        .unwrap();
    assert_eq!(world.numbers("SKU-1"), vec![("amazon".to_owned(), 100, 0)]);
}

// ---------------------------------------------------------------------------------------------
// Combination, rounding, allocation.

#[test]
fn components_add_up_in_order_and_are_capped_at_available() {
    check(
        Case {
            policies: vec![
                static_policy("ten", Amount::Percent(percent(10))),
                static_policy("units", Amount::Units(5)),
            ],
            channels: vec![amazon(&["ten", "units"])],
            holds: vec![hold("h", "SKU-1", Amount::Percent(percent(3)))],
            ..Case::default()
        },
        &[("amazon", 82, 18, &[("ten", 10), ("units", 5), ("h", 3)])],
    );
    // More asked than available: the later components get what is left; never negative.
    check(
        Case {
            policies: vec![
                static_policy("most", Amount::Percent(percent(60))),
                static_policy("units", Amount::Units(50)),
            ],
            channels: vec![amazon(&["most", "units"])],
            holds: vec![hold("h", "SKU-1", Amount::Units(10))],
            ..Case::default()
        },
        &[("amazon", 0, 100, &[("most", 60), ("units", 40), ("h", 0)])],
    );
    // The channel's order decides who takes what is left.
    check(
        Case {
            policies: vec![
                static_policy("most", Amount::Percent(percent(60))),
                static_policy("units", Amount::Units(50)),
            ],
            channels: vec![amazon(&["units", "most"])],
            ..Case::default()
        },
        &[("amazon", 0, 100, &[("units", 50), ("most", 50)])],
    );
}

#[test]
fn rounding_never_shows_more_than_available_nor_less_than_zero() {
    // 1% of 1 unit withholds it (buffers round up).
    check(
        Case {
            policies: vec![static_policy(
                "s",
                Amount::Percent(Percent::from_basis_points(100)),
            )],
            channels: vec![amazon(&["s"])],
            stock: [("east", 1), ("west", 0)],
            ..Case::default()
        },
        &[("amazon", 0, 1, &[("s", 1)])],
    );
    // Percentages apply per location: 10% of 5 and 10% of 5 is 1 + 1.
    check(
        Case {
            policies: vec![static_policy("s", Amount::Percent(percent(10)))],
            channels: vec![amazon(&["s"])],
            stock: [("east", 5), ("west", 5)],
            ..Case::default()
        },
        &[("amazon", 8, 2, &[("s", 2)])],
    );
    // Negative available (an oversell) counts as nothing; the other location still sells.
    check(
        Case {
            policies: vec![static_policy("s", Amount::Units(2))],
            channels: vec![amazon(&["s"]), shopify(&["s"])],
            stock: [("east", -7), ("west", 3)],
            ..Case::default()
        },
        &[
            ("amazon", 1, 2, &[("s", 2)]),
            ("shopify", 1, 2, &[("s", 2)]),
        ],
    );
    let world = check(
        Case {
            channels: vec![shopify(&[])],
            stock: [("east", -7), ("west", 0)],
            ..Case::default()
        },
        &[("shopify", 0, 0, &[])],
    );
    let emitted = world.last_emitted();
    assert_eq!(emitted[&("shopify".to_owned(), Some("east".to_owned()))], 0);
}

#[test]
fn allocation_rules() {
    let with = |allocation: Allocation| {
        let mut config = shopify(&["s"]);
        config.rules.allocation = allocation;
        Case {
            policies: vec![static_policy("s", Amount::Units(1))],
            channels: vec![config],
            stock: [("east", 6), ("west", 4)],
            ..Case::default()
        }
    };
    let half = Allocation {
        percent: Some(percent(50)),
        ..Allocation::default()
    };
    let world = check(with(half), &[("shopify", 4, 1, &[("s", 1)])]);
    // Told per location: the highest-priority location keeps its stock first.
    let emitted = world.last_emitted();
    assert_eq!(emitted[&("shopify".to_owned(), Some("east".to_owned()))], 4);
    assert_eq!(emitted[&("shopify".to_owned(), Some("west".to_owned()))], 0);
    let note = world.channel_view("SKU-1", "shopify").allocation.unwrap();
    assert_eq!(note, "allocation (50% rounded down): 9 sellable -> 4 shown");
    let maximum = Allocation {
        maximum: Some(3),
        ..Allocation::default()
    };
    check(with(maximum), &[("shopify", 3, 1, &[("s", 1)])]);
    let floor = Allocation {
        floor: Some(10),
        ..Allocation::default()
    };
    check(with(floor), &[("shopify", 0, 1, &[("s", 1)])]);
    let fixed = Allocation {
        fixed: Some(5),
        ..Allocation::default()
    };
    check(with(fixed), &[("shopify", 5, 1, &[("s", 1)])]);
}

// ---------------------------------------------------------------------------------------------
// Refusals.

#[test]
fn refusals_have_specific_codes_and_change_nothing() {
    let mut world = check(
        Case {
            policies: vec![static_policy("s", Amount::Units(1))],
            channels: vec![amazon(&["s"])],
            holds: vec![hold("h", "SKU-1", Amount::Units(1))],
            ..Case::default()
        },
        &[("amazon", 98, 2, &[("s", 1), ("h", 1)])],
    );
    let now = world.now;
    let window = |starts: i64, ends: i64| {
        policy(
            "w",
            Strategy::TimeWindow(TimeWindowSettings {
                starts_at: now.plus_seconds(starts),
                ends_at: now.plus_seconds(ends),
                amount: Amount::Units(1),
                release: Release::AsPicked { period_seconds: 60 },
            }),
        )
    };
    let mut bad_curve = DynamicSettings::default();
    bad_curve.curve.reverse();
    let cases: Vec<(AvailabilityCommand, &str)> = vec![
        (
            upsert_policy(policy("d", Strategy::Dynamic(bad_curve))),
            "invalid_policy",
        ),
        (
            upsert_policy(static_policy("s", Amount::Percent(percent(101)))),
            "invalid_percentage",
        ),
        (upsert_policy(window(100, 50)), "invalid_window"),
        (upsert_channel(amazon(&["missing"])), "unknown_policy"),
        (
            upsert_channel(channel("x", ChannelKind::Webhook, &[], &[])),
            "invalid_channel",
        ),
        (
            upsert_channel({
                let mut config = amazon(&["s"]);
                config.rules.allocation.fixed = Some(2);
                config.rules.allocation.maximum = Some(3);
                config
            }),
            "invalid_allocation",
        ),
        (
            AvailabilityCommand::RemoveChannel {
                channel: channel_id("ebay"),
            },
            "unknown_channel",
        ),
        (
            AvailabilityCommand::RemovePolicy {
                policy: policy_id("s"),
            },
            "policy_in_use",
        ),
        (
            AvailabilityCommand::RemovePolicy {
                policy: policy_id("nope"),
            },
            "unknown_policy",
        ),
        (
            AvailabilityCommand::PlaceHold(hold("h2", "SKU-404", Amount::Units(1))),
            "unknown_sku",
        ),
        (
            AvailabilityCommand::PlaceHold(Hold {
                channels: [channel_id("ebay")].into(),
                ..hold("h2", "SKU-1", Amount::Units(1))
            }),
            "unknown_channel",
        ),
        (
            AvailabilityCommand::PlaceHold(Hold {
                location: Some(location("north")),
                ..hold("h2", "SKU-1", Amount::Units(1))
            }),
            "unknown_location",
        ),
        (
            AvailabilityCommand::PlaceHold(hold("h2", "SKU-1", Amount::Percent(percent(-5)))),
            "invalid_percentage",
        ),
        (
            AvailabilityCommand::PlaceHold(Hold {
                expires_at: Some(now.plus_seconds(-1)),
                ..hold("h2", "SKU-1", Amount::Units(1))
            }),
            "invalid_window",
        ),
        (
            AvailabilityCommand::ReleaseHold {
                hold: policy_id("nope"),
            },
            "unknown_hold",
        ),
        (
            AvailabilityCommand::RecordSignal(Signal {
                sku: sku("SKU-1"),
                source: SourceId::parse("feed").unwrap(),
                multiplier: Ratio::from_thousandths(500),
                duration_seconds: 60,
            }),
            "invalid_signal",
        ),
        (
            AvailabilityCommand::SetSkuAttributes {
                items: (0..1_001)
                    .map(|i| SkuAttributesItem {
                        sku: sku(&format!("SKU-{i}")),
                        attributes: SkuAttributes::default(),
                    })
                    .collect(),
            },
            "too_many_items",
        ),
        (
            AvailabilityCommand::SetSkuAttributes {
                items: vec![
                    SkuAttributesItem {
                        sku: sku("SKU-2"),
                        attributes: SkuAttributes::default(),
                    },
                    SkuAttributesItem {
                        sku: sku("SKU-1"),
                        attributes: SkuAttributes {
                            tier: Some("not a tier".to_owned()),
                            ..SkuAttributes::default()
                        },
                    },
                ],
            },
            "invalid_attributes",
        ),
    ];
    for (command, code) in cases {
        let before = world.availability.clone();
        let json_before = serde_json::to_string(&world.availability).unwrap();
        let rejection = world.command(command.clone()).unwrap_err();
        assert_eq!(rejection.code(), code, "{command:?}");
        assert!(
            world.availability == before,
            "{command:?} changed the state"
        );
        assert_eq!(
            serde_json::to_string(&world.availability).unwrap(),
            json_before
        );
        let last = world.log.last().unwrap();
        assert!(last.audit.is_empty() && last.availability.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Effects, sweeps, listing, state.

#[test]
fn a_settings_change_reaches_every_sku_a_bounded_batch_per_tick() {
    let mut world = World::new();
    for index in 0..1_200 {
        world.stock(&format!("SKU-{index:04}"), "east", 10);
    }
    let emitted_before = world
        .log
        .iter()
        .map(|o| o.availability.len())
        .sum::<usize>();
    assert_eq!(emitted_before, 0, "no channel yet");
    let (position, actor) = world.context("ops");
    let context = Context {
        tenant: &world.tenant,
        now: world.now,
        position,
        caused_at: world.now,
        actor,
    };
    let mut out = Outcome::default();
    world
        .availability
        .apply_command(
            &context,
            &upsert_channel(amazon(&[])),
            &world.stocks,
            &mut out,
        )
        .unwrap();
    assert!(
        out.availability.is_empty(),
        "the command itself touches no SKU"
    );
    assert_eq!(world.availability.next_deadline(), Some(world.now));
    let mut batches = Vec::new();
    while world
        .availability
        .next_deadline()
        .is_some_and(|at| at <= world.now)
    {
        world.tick_at(world.now);
        batches.push(world.log.last().unwrap().availability.len());
    }
    assert_eq!(batches, vec![512, 512, 176]);
}

#[test]
fn the_withheld_listing_is_largest_first_and_limited() {
    let mut world = World::new();
    world.commands(vec![
        upsert_policy(static_policy("s", Amount::Percent(percent(10)))),
        upsert_channel(amazon(&["s"])),
        upsert_channel(channel("plain", ChannelKind::Webhook, &["east"], &[])),
    ]);
    for (name, available) in [("A", 100), ("B", 300), ("C", 200), ("D", 0)] {
        world.stock(name, "east", available);
    }
    let rows = world.availability.withheld(&world.stocks, world.now, 2);
    let summary: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| (r.sku.to_string(), r.channel.to_string(), r.withheld))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("B".to_owned(), "amazon".to_owned(), 30),
            ("C".to_owned(), "amazon".to_owned(), 20)
        ]
    );
    assert_eq!(
        rows[0].buffers[0].reason,
        "static: fixed buffer of 10% -> 10%"
    );
}

#[test]
fn state_round_trips_through_serialisation_and_explains_the_same() {
    let mut world = World::new();
    world.commands(vec![
        upsert_policy(policy("dyn", Strategy::Dynamic(DynamicSettings::default()))),
        upsert_channel(amazon(&["dyn"])),
    ]);
    world.stock("SKU-1", "east", 100);
    feed(&mut world, "SKU-1", 10, 26 * 60);
    feed(&mut world, "SKU-1", 100, 60);
    world
        .command(AvailabilityCommand::PlaceHold(hold(
            "h",
            "SKU-1",
            Amount::Units(3),
        )))
        .unwrap();
    let json = serde_json::to_string(&world.availability).unwrap();
    let restored: Availability = serde_json::from_str(&json).unwrap();
    assert!(restored == world.availability);
    assert_eq!(serde_json::to_string(&restored).unwrap(), json);
    let sku = sku("SKU-1");
    assert_eq!(
        restored.explain(&sku, &world.stocks[&sku], world.now),
        world.view("SKU-1")
    );
    assert_eq!(restored.next_deadline(), world.availability.next_deadline());
}

// ---------------------------------------------------------------------------------------------
// The property.

fn arbitrary_amount() -> impl Generator<Value = Amount> {
    prop_oneof![
        (1i64..200).prop_map(Amount::Units),
        (1i64..=10_000).prop_map(|bp| Amount::Percent(Percent::from_basis_points(bp))),
    ]
}

fn arbitrary_policy(name: &'static str) -> impl Generator<Value = Policy> {
    let strategy = prop_oneof![
        arbitrary_amount().prop_map(|amount| Strategy::Static { amount }),
        Just(Strategy::Dynamic(DynamicSettings::default())),
        (0i64..=10_000, 0i64..5_000, 0i64..=10_000).prop_map(|(base, factor, maximum)| {
            Strategy::ChannelAware(ChannelAwareSettings {
                base: Percent::from_basis_points(base),
                factors: BTreeMap::new(),
                default_factor: Ratio::from_thousandths(factor),
                cancellation_weight: Ratio::ONE,
                maximum: Percent::from_basis_points(maximum),
            })
        }),
        (
            arbitrary_amount(),
            -7_200i64..3_600,
            1i64..7_200,
            any::<bool>()
        )
            .prop_map(|(amount, starts, length, gradual)| {
                let now = Timestamp::from_unix_seconds(START_SECONDS);
                Strategy::TimeWindow(TimeWindowSettings {
                    starts_at: now.plus_seconds(starts),
                    ends_at: now.plus_seconds(starts + length),
                    amount,
                    release: if gradual {
                        Release::Gradual {
                            period_seconds: 86_400,
                            steps: 3,
                        }
                    } else {
                        Release::AsPicked {
                            period_seconds: 86_400,
                        }
                    },
                })
            }),
    ];
    strategy.prop_map(move |strategy| policy(name, strategy))
}

fn arbitrary_allocation() -> impl Generator<Value = Allocation> {
    (
        proptest::option::of(0i64..=10_000),
        proptest::option::of(0i64..500),
        proptest::option::of(0i64..50),
        proptest::option::of(0i64..500),
    )
        .prop_map(|(share, maximum, floor, fixed)| Allocation {
            percent: share
                .filter(|_| fixed.is_none())
                .map(Percent::from_basis_points),
            maximum: maximum.filter(|_| fixed.is_none()),
            floor,
            fixed,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_channel_is_never_shown_more_than_its_locations_have_available(
        stock in proptest::collection::vec(-100i64..1_000, 3),
        policies in (arbitrary_policy("p1"), arbitrary_policy("p2"), arbitrary_policy("p3")),
        allocations in proptest::collection::vec(arbitrary_allocation(), 3),
        holds in proptest::collection::vec((arbitrary_amount(), proptest::option::of(0usize..3)), 0..3),
        signal in proptest::option::of(1_000i64..100_000),
        demand in proptest::collection::vec(1i64..20, 0..30),
        wait_seconds in 0i64..20_000,
    ) {
        let mut world = World::new();
        let locations = ["east", "north", "west"];
        for (at, available) in locations.iter().zip(&stock) {
            world.stock("SKU-1", at, *available);
        }
        for policy in [policies.0, policies.1, policies.2] {
            world.command(upsert_policy(policy)).unwrap();
        }
        let shapes: [(&str, ChannelKind, &[&str]); 3] = [
            ("amazon", ChannelKind::Amazon, &["east", "west"]),
            ("shopify", ChannelKind::Shopify, &["west", "north", "east"]),
            ("tiktok", ChannelKind::Tiktok, &["north"]),
        ];
        for ((name, kind, served), allocation) in shapes.into_iter().zip(allocations) {
            let mut config = channel(name, kind, served, &["p1", "p2", "p3"]);
            config.rules.allocation = allocation;
            world.command(upsert_channel(config)).unwrap();
        }
        for (index, (amount, at)) in holds.into_iter().enumerate() {
            world.command(AvailabilityCommand::PlaceHold(Hold {
                location: at.map(|i| location(locations[i])),
                ..hold(&format!("h{index}"), "SKU-1", amount)
            })).unwrap();
        }
        if let Some(multiplier) = signal {
            world.command(AvailabilityCommand::RecordSignal(Signal {
                sku: sku("SKU-1"),
                source: SourceId::parse("feed").unwrap(),
                multiplier: Ratio::from_thousandths(multiplier),
                duration_seconds: 3_600,
            })).unwrap();
        }
        for quantity in demand {
            world.demand("SKU-1", quantity);
            world.availability.record_pick(&sku("SKU-1"), quantity, world.now);
            world.advance(60);
        }
        world.advance(wait_seconds);
        world.recompute("SKU-1");

        let emitted = world.last_emitted();
        for view in world.view("SKU-1") {
            let served: i64 = view.locations.iter()
                .map(|l| stock[locations.iter().position(|n| *n == l.location.as_str()).unwrap()].max(0))
                .sum();
            prop_assert_eq!(view.available, served);
            prop_assert!(view.available_to_sell >= 0);
            prop_assert!(view.available_to_sell <= served);
            prop_assert!(view.withheld >= 0 && view.withheld <= served);
            prop_assert!(view.available_to_sell + view.withheld <= served);
            prop_assert_eq!(view.buffers.iter().map(|b| b.quantity).sum::<i64>(), view.withheld);
            for location_view in &view.locations {
                prop_assert!(location_view.available_to_sell >= 0);
                prop_assert!(location_view.available_to_sell + location_view.withheld <= location_view.available);
            }
            let told: i64 = emitted.iter()
                .filter(|((channel, _), _)| channel == view.channel.as_str())
                .map(|(_, ats)| *ats)
                .sum();
            prop_assert_eq!(told, view.available_to_sell);
        }
        for change in world.log.iter().flat_map(|o| &o.availability) {
            prop_assert!(change.available_to_sell >= 0);
        }
        for entry in world.audit() {
            if let AuditChange::Buffer { before, after, .. } = &entry.change {
                prop_assert!(*before >= 0 && *after >= 0);
            }
        }
        let kinds = world.log.iter().map(|o| o.buffer_changes).fold(0, |n, c| n + c.applied + c.grown + c.decayed + c.released);
        let entries = world.audit().filter(|e| matches!(e.change, AuditChange::Buffer { .. })).count() as u64;
        prop_assert_eq!(kinds, entries);
    }
}

// ---------------------------------------------------------------------------------------------
// Through the ledger: the hooks it calls.

mod through_the_ledger {
    use super::{
        ChannelAwareSettings, Percent, Ratio, Strategy, StrategyKind, channel, channel_id, percent,
        policy, upsert_channel, upsert_policy,
    };
    use crate::support::{Harness, picked, received, release, reserve};
    use std::collections::BTreeMap;
    use stockflow_core::availability::ChannelKind;
    use stockflow_core::command::Command;
    use stockflow_core::envelope::Input;
    use stockflow_core::ids::ActorId;
    use stockflow_core::ledger::SkuView;
    use stockflow_core::outcome::Outcome;

    fn configure(
        harness: &mut Harness,
        command: stockflow_core::availability::AvailabilityCommand,
    ) {
        let outcome = harness.apply(Input::Command {
            actor: ActorId::parse("ops").unwrap(),
            command: Command::Availability(command),
        });
        assert!(outcome.persist, "{:?}", outcome.reply);
    }

    /// Ticks while something is due; returns the outcomes.
    fn settle(harness: &mut Harness) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        while harness
            .ledger
            .next_deadline()
            .is_some_and(|at| at <= harness.now)
        {
            outcomes.push(harness.tick());
        }
        outcomes
    }

    #[test]
    fn releases_and_expiries_of_a_channel_raise_its_measured_cancellation_rate() {
        let mut harness = Harness::default();
        harness.wms(vec![received("SKU-1", "east", 1_000)]);
        let risk = ChannelAwareSettings {
            base: Percent::ZERO,
            factors: BTreeMap::new(),
            default_factor: Ratio::ONE,
            cancellation_weight: Ratio::ONE,
            maximum: percent(50),
        };
        configure(
            &mut harness,
            upsert_policy(policy("risk", Strategy::ChannelAware(risk))),
        );
        configure(
            &mut harness,
            upsert_channel(channel("amazon", ChannelKind::Amazon, &["east"], &["risk"])),
        );
        let swept = settle(&mut harness);
        assert!(
            swept
                .iter()
                .any(|o| o.touched_skus.iter().any(|s| s.as_str() == "SKU-1"))
        );
        // 60 orders of one unit; 4 released by the channel, 2 expire.
        for index in 0..60 {
            let id = format!("order-{index}");
            let outcome = harness.command(reserve(&id, Some("amazon"), &[("SKU-1", None, 1)], 60));
            assert!(outcome.persist);
        }
        for index in 0..4 {
            harness.command(release(&format!("order-{index}")));
        }
        for index in 4..58 {
            let id = format!("order-{index}");
            harness.command(crate::support::confirm(&id, None));
        }
        harness.advance_seconds(120);
        let expired = settle(&mut harness);
        assert!(!expired.is_empty());
        let availability = &harness.ledger.tenant(&harness.tenant).unwrap().availability;
        assert_eq!(
            availability.cancellation_rate(&channel_id("amazon")),
            Some(percent(10))
        );
        let view = harness
            .ledger
            .sku_view_at(&harness.tenant, &super::sku("SKU-1"), harness.now)
            .unwrap();
        let amazon = &view.channels()[0];
        // 1,000 - 54 committed = 946 available, 10% of it (rounded up) withheld.
        assert_eq!((amazon.available, amazon.withheld), (946, 95));
        assert_eq!(amazon.buffers[0].strategy, StrategyKind::ChannelAware);

        // A view published with captured inputs says the same, words included, and keeps
        // saying it after the ledger moves on (a published view is as of its batch).
        let sku = super::sku("SKU-1");
        let tenant = harness.ledger.tenant(&harness.tenant).unwrap();
        let stock = tenant.stock[&sku].clone();
        let inputs = tenant.availability.explain_inputs(&sku, harness.now);
        let deferred = SkuView::deferred(sku.clone(), stock.clone(), inputs);
        assert_eq!(deferred.channels(), view.channels());
        assert!(
            deferred.channels()[0].buffers[0]
                .reason
                .contains("cancellation rate 10%"),
            "{:?}",
            deferred.channels()[0].buffers[0].reason
        );
        harness.wms(vec![received("SKU-1", "east", 500)]);
        configure(
            &mut harness,
            upsert_channel(channel("amazon", ChannelKind::Amazon, &["east"], &[])),
        );
        settle(&mut harness);
        let now = harness
            .ledger
            .sku_view_at(&harness.tenant, &sku, harness.now)
            .unwrap();
        assert_eq!(now.channels()[0].withheld, 0);
        assert_eq!(deferred.channels(), view.channels());
        assert_eq!(deferred.stock, stock);
    }

    #[test]
    fn picks_feed_the_velocity_tracker_and_a_spike_engages_a_dynamic_buffer() {
        let mut harness = Harness::default();
        harness.wms(vec![received("SKU-1", "east", 10_000)]);
        configure(
            &mut harness,
            upsert_policy(policy(
                "viral-guard",
                Strategy::Dynamic(stockflow_core::availability::DynamicSettings::default()),
            )),
        );
        configure(
            &mut harness,
            upsert_channel(channel(
                "amazon",
                ChannelKind::Amazon,
                &["east"],
                &["viral-guard"],
            )),
        );
        settle(&mut harness);
        // A day at 10 picks an hour, then 100 in an hour.
        for _ in 0..240 {
            harness.wms(vec![picked("SKU-1", "east", 1, None)]);
            harness.advance_seconds(360);
            settle(&mut harness);
        }
        let mut outcomes = Vec::new();
        for _ in 0..100 {
            outcomes.push(harness.wms(vec![picked("SKU-1", "east", 1, None)]));
            harness.advance_seconds(36);
            outcomes.extend(settle(&mut harness));
        }
        let applied: u64 = outcomes.iter().map(|o| o.buffer_changes.applied).sum();
        assert_eq!(applied, 1, "the buffer engaged once");
        let view = harness
            .ledger
            .sku_view_at(&harness.tenant, &super::sku("SKU-1"), harness.now)
            .unwrap();
        let amazon = &view.channels()[0];
        let share = amazon.withheld as f64 / amazon.available as f64;
        assert!((0.05..=0.15).contains(&share), "{amazon:#?}");
        let velocity = harness
            .ledger
            .tenant(&harness.tenant)
            .unwrap()
            .availability
            .velocity(&super::sku("SKU-1"), harness.now)
            .unwrap();
        assert!(velocity.recent_units >= 100);
    }
}

#[test]
fn changing_a_channels_policies_audits_the_buffers_it_gains_and_loses() {
    let mut world = check(
        Case {
            policies: vec![
                static_policy("five", Amount::Units(5)),
                static_policy("ten", Amount::Percent(percent(10))),
            ],
            channels: vec![amazon(&["five"])],
            ..Case::default()
        },
        &[("amazon", 95, 5, &[("five", 5)])],
    );
    world.command(upsert_channel(amazon(&["ten"]))).unwrap();
    assert_eq!(world.numbers("SKU-1"), vec![("amazon".to_owned(), 90, 10)]);
    let gained = world.buffer_changes("ten", "amazon");
    let lost = world.buffer_changes("five", "amazon");
    assert_eq!(gained.len(), 1);
    assert_eq!(
        (gained[0].0.as_str(), gained[0].1, gained[0].2),
        ("buffer applied", 0, 10)
    );
    assert_eq!(
        lost.last().map(|l| (l.0.as_str(), l.1, l.2)),
        Some(("buffer released", 5, 0))
    );
    assert_eq!(world.last_emitted()[&("amazon".to_owned(), None)], 90);
}
