//! The physical world of a scenario: the units that really stand on the warehouse's shelves,
//! and the orders that hold them until they ship. Every sandbox of a scenario and the WMS
//! generator share one [`World`]; stockflow never sees it (it learns about the world only
//! through the WMS's events and the platforms' webhooks, as in production).
//!
//! A platform that accepts an order claims units: from the free units of the preferred
//! location first, then of the others. When fewer units are free than were sold, the order is
//! an *oversell*: the platform accepted a sale for stock that did not exist. Oversells are
//! counted per platform, in orders and in units short.
//!
//! Free units of a SKU at a location are `on_shelf - claimed`: what a picker could still take
//! for a new order.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// The sales platforms of a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    Shopify,
    Amazon,
    TikTok,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::Shopify, Platform::Amazon, Platform::TikTok];

    /// The lowercase name (`shopify`, `amazon`, `tiktok`), as reservation ids use it.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Shopify => "shopify",
            Platform::Amazon => "amazon",
            Platform::TikTok => "tiktok",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An order as the world knows it: the platform and the platform's order id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderKey {
    pub platform: Platform,
    pub order_id: String,
}

impl OrderKey {
    pub fn new(platform: Platform, order_id: impl Into<String>) -> Self {
        Self {
            platform,
            order_id: order_id.into(),
        }
    }
}

/// The most open orders the world tracks; claims beyond it are refused (a scenario that needs
/// more is misconfigured).
pub const OPEN_ORDERS_MAX: usize = 1_000_000;

/// Units of an order held at one location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub location: String,
    pub units: i64,
}

/// What claiming units for an accepted order found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub sku: String,
    pub units: i64,
    /// Where the units that exist are held.
    pub held: Vec<Held>,
    /// Units sold that no shelf holds: more than zero makes the order an oversell.
    pub short: i64,
}

impl Claim {
    pub fn is_oversell(&self) -> bool {
        self.short > 0
    }
}

/// Oversells of one platform.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OversellCount {
    /// Orders accepted with at least one unit short.
    pub orders: u64,
    /// Units sold that did not exist.
    pub units: i64,
}

/// Orders of one platform, by what became of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrderCounts {
    pub accepted: u64,
    pub shipped: u64,
    pub cancelled: u64,
    pub oversold: OversellCount,
}

#[derive(Debug)]
struct OpenOrder {
    claim: Claim,
    /// Whether the receiver acknowledged the platform's creation notification: the order has
    /// reached the order system, so the warehouse may pick it.
    known: bool,
    known_at: Option<tokio::time::Instant>,
    paid: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Units physically on the shelves, per (SKU, location).
    shelves: BTreeMap<(String, String), i64>,
    /// Units held by open orders, per (SKU, location).
    claimed: BTreeMap<(String, String), i64>,
    open: HashMap<OrderKey, OpenOrder>,
    counts: BTreeMap<Platform, OrderCounts>,
}

impl State {
    fn free(&self, key: &(String, String)) -> i64 {
        let shelf = self.shelves.get(key).copied().unwrap_or(0);
        let claimed = self.claimed.get(key).copied().unwrap_or(0);
        shelf - claimed
    }

    fn unclaim(&mut self, claim: &Claim) {
        for held in &claim.held {
            let key = (claim.sku.clone(), held.location.clone());
            let claimed = self.claimed.entry(key).or_default();
            *claimed -= held.units;
            assert!(*claimed >= 0, "claimed units never go below zero");
        }
    }
}

/// The shared physical world. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct World {
    state: Arc<Mutex<State>>,
}

impl World {
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts units on a shelf (the starting stock, or a receipt).
    pub fn receive(&self, sku: &str, location: &str, units: i64) {
        assert!(units >= 0, "a receipt adds units");
        let mut state = self.state.lock().unwrap();
        *state
            .shelves
            .entry((sku.to_owned(), location.to_owned()))
            .or_default() += units;
    }

    /// Units on the shelf (what a cycle count finds).
    pub fn on_shelf(&self, sku: &str, location: &str) -> i64 {
        let state = self.state.lock().unwrap();
        let key = (sku.to_owned(), location.to_owned());
        state.shelves.get(&key).copied().unwrap_or(0)
    }

    /// Units on the shelf that no open order holds.
    pub fn free(&self, sku: &str, location: &str) -> i64 {
        let state = self.state.lock().unwrap();
        state.free(&(sku.to_owned(), location.to_owned()))
    }

    /// Free units of a SKU over every location.
    pub fn free_total(&self, sku: &str) -> i64 {
        let state = self.state.lock().unwrap();
        let keys: Vec<(String, String)> = state
            .shelves
            .keys()
            .filter(|(s, _)| s == sku)
            .cloned()
            .collect();
        keys.iter().map(|key| state.free(key)).sum()
    }

    /// Takes up to `units` free units off the shelf without an order (a shipment the channels
    /// never saw, shrinkage, damage). Returns how many were taken.
    pub fn take_free(&self, sku: &str, location: &str, units: i64) -> i64 {
        assert!(units >= 0, "take a positive number of units");
        let mut state = self.state.lock().unwrap();
        let key = (sku.to_owned(), location.to_owned());
        let taken = units.min(state.free(&key)).max(0);
        *state.shelves.entry(key).or_default() -= taken;
        taken
    }

    /// A platform accepted an order: claims its units, preferred locations first. An order
    /// already open is not claimed twice (its first claim is returned).
    pub fn claim(
        &self,
        order: &OrderKey,
        sku: &str,
        units: i64,
        locations: &[String],
    ) -> Result<Claim, WorldError> {
        assert!(units > 0, "an order is for at least one unit");
        let mut state = self.state.lock().unwrap();
        if let Some(open) = state.open.get(order) {
            return Ok(open.claim.clone());
        }
        if state.open.len() >= OPEN_ORDERS_MAX {
            return Err(WorldError::TooManyOpenOrders);
        }
        let mut wanted = units;
        let mut held = Vec::new();
        for location in locations {
            if wanted == 0 {
                break;
            }
            let key = (sku.to_owned(), location.clone());
            let take = wanted.min(state.free(&key)).max(0);
            if take > 0 {
                *state.claimed.entry(key).or_default() += take;
                held.push(Held {
                    location: location.clone(),
                    units: take,
                });
                wanted -= take;
            }
        }
        let claim = Claim {
            sku: sku.to_owned(),
            units,
            held,
            short: wanted,
        };
        let counts = state.counts.entry(order.platform).or_default();
        counts.accepted += 1;
        if claim.is_oversell() {
            counts.oversold.orders += 1;
            counts.oversold.units += claim.short;
        }
        state.open.insert(
            order.clone(),
            OpenOrder {
                claim: claim.clone(),
                known: false,
                known_at: None,
                paid: false,
            },
        );
        Ok(claim)
    }

    /// The order system acknowledged the order: the warehouse may pick it from now on.
    pub fn mark_known(&self, order: &OrderKey) {
        let mut state = self.state.lock().unwrap();
        if let Some(open) = state.open.get_mut(order)
            && !open.known
        {
            open.known = true;
            open.known_at = Some(tokio::time::Instant::now());
        }
    }

    pub fn mark_paid(&self, order: &OrderKey) {
        let mut state = self.state.lock().unwrap();
        if let Some(open) = state.open.get_mut(order) {
            open.paid = true;
        }
    }

    /// Open orders the warehouse may ship now: known to the order system for at least
    /// `pick_delay`, paid, and fully backed by units on the shelf. Oldest first, at most `max`.
    pub fn shippable(&self, pick_delay: std::time::Duration, max: usize) -> Vec<(OrderKey, Claim)> {
        let now = tokio::time::Instant::now();
        let state = self.state.lock().unwrap();
        let mut ready: Vec<(tokio::time::Instant, &OrderKey, &OpenOrder)> = state
            .open
            .iter()
            .filter(|(_, open)| open.paid && !open.claim.is_oversell())
            .filter_map(|(key, open)| {
                let known_at = open.known_at?;
                (now.duration_since(known_at) >= pick_delay).then_some((known_at, key, open))
            })
            .collect();
        ready.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        ready
            .into_iter()
            .take(max)
            .map(|(_, key, open)| (key.clone(), open.claim.clone()))
            .collect()
    }

    /// The order's units left the building: off the shelf, no longer held.
    pub fn ship(&self, order: &OrderKey) -> Option<Claim> {
        let mut state = self.state.lock().unwrap();
        let open = state.open.remove(order)?;
        state.unclaim(&open.claim);
        for held in &open.claim.held {
            let key = (open.claim.sku.clone(), held.location.clone());
            let shelf = state.shelves.entry(key).or_default();
            *shelf -= held.units;
            assert!(*shelf >= 0, "held units are on the shelf");
        }
        state.counts.entry(order.platform).or_default().shipped += 1;
        Some(open.claim)
    }

    /// The order was cancelled before it shipped: its units are free again.
    pub fn cancel(&self, order: &OrderKey) -> Option<Claim> {
        let mut state = self.state.lock().unwrap();
        let open = state.open.remove(order)?;
        state.unclaim(&open.claim);
        state.counts.entry(order.platform).or_default().cancelled += 1;
        Some(open.claim)
    }

    /// Whether an order is open (accepted, not shipped nor cancelled).
    pub fn is_open(&self, order: &OrderKey) -> bool {
        self.state.lock().unwrap().open.contains_key(order)
    }

    /// Open orders that were oversold (the merchant will have to cancel them).
    pub fn oversold_open(&self) -> Vec<OrderKey> {
        let state = self.state.lock().unwrap();
        let mut keys: Vec<OrderKey> = state
            .open
            .iter()
            .filter(|(_, open)| open.claim.is_oversell())
            .map(|(key, _)| key.clone())
            .collect();
        keys.sort();
        keys
    }

    pub fn counts(&self, platform: Platform) -> OrderCounts {
        let state = self.state.lock().unwrap();
        state.counts.get(&platform).copied().unwrap_or_default()
    }

    pub fn oversells(&self, platform: Platform) -> OversellCount {
        self.counts(platform).oversold
    }

    /// Oversells of every platform together.
    pub fn oversells_total(&self) -> OversellCount {
        Platform::ALL
            .iter()
            .map(|p| self.oversells(*p))
            .fold(OversellCount::default(), |sum, c| OversellCount {
                orders: sum.orders + c.orders,
                units: sum.units + c.units,
            })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    #[error("more than {OPEN_ORDERS_MAX} open orders")]
    TooManyOpenOrders,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(platform: Platform, id: &str) -> OrderKey {
        OrderKey::new(platform, id)
    }

    fn east() -> Vec<String> {
        vec!["east".to_owned()]
    }

    #[test]
    fn a_sale_beyond_the_shelf_is_an_oversell_of_its_platform() {
        let world = World::new();
        world.receive("HOT", "east", 2);
        let first = world
            .claim(&order(Platform::Shopify, "1"), "HOT", 1, &east())
            .unwrap();
        assert!(!first.is_oversell());
        let second = world
            .claim(&order(Platform::TikTok, "2"), "HOT", 2, &east())
            .unwrap();
        assert_eq!(second.short, 1);
        assert_eq!(world.free("HOT", "east"), 0);
        assert_eq!(
            world.oversells(Platform::TikTok),
            OversellCount {
                orders: 1,
                units: 1
            }
        );
        assert_eq!(world.oversells(Platform::Shopify), OversellCount::default());
        assert_eq!(world.oversells_total().units, 1);
        assert_eq!(world.oversold_open(), vec![order(Platform::TikTok, "2")]);
    }

    #[test]
    fn shipping_takes_units_off_the_shelf_and_cancelling_frees_them() {
        let world = World::new();
        world.receive("A", "east", 3);
        let shipped = order(Platform::Amazon, "s");
        let cancelled = order(Platform::Amazon, "c");
        world.claim(&shipped, "A", 1, &east()).unwrap();
        world.claim(&cancelled, "A", 1, &east()).unwrap();
        assert_eq!(world.free("A", "east"), 1);
        world.ship(&shipped).unwrap();
        assert_eq!(world.on_shelf("A", "east"), 2);
        assert_eq!(world.free("A", "east"), 1);
        world.cancel(&cancelled).unwrap();
        assert_eq!(world.free("A", "east"), 2);
        assert!(
            world.ship(&cancelled).is_none(),
            "a cancelled order never ships"
        );
        let counts = world.counts(Platform::Amazon);
        assert_eq!(
            (counts.accepted, counts.shipped, counts.cancelled),
            (2, 1, 1)
        );
    }

    #[test]
    fn claims_fall_back_to_other_locations_and_repeat_claims_are_one() {
        let world = World::new();
        world.receive("A", "east", 1);
        world.receive("A", "west", 5);
        let locations = vec!["east".to_owned(), "west".to_owned()];
        let key = order(Platform::Shopify, "9");
        let claim = world.claim(&key, "A", 3, &locations).unwrap();
        assert_eq!(claim.held.len(), 2);
        assert_eq!(world.claim(&key, "A", 3, &locations).unwrap(), claim);
        assert_eq!(world.counts(Platform::Shopify).accepted, 1);
        assert_eq!(world.free_total("A"), 3);
        assert_eq!(world.take_free("A", "west", 10), 3);
        assert_eq!(world.free_total("A"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn only_known_paid_backed_orders_are_shippable_after_the_pick_delay() {
        let world = World::new();
        world.receive("A", "east", 1);
        let backed = order(Platform::Shopify, "1");
        let oversold = order(Platform::Shopify, "2");
        world.claim(&backed, "A", 1, &east()).unwrap();
        world.claim(&oversold, "A", 1, &east()).unwrap();
        let delay = std::time::Duration::from_secs(5);
        world.mark_known(&backed);
        world.mark_known(&oversold);
        world.mark_paid(&oversold);
        assert!(world.shippable(delay, 10).is_empty(), "not paid yet");
        world.mark_paid(&backed);
        assert!(world.shippable(delay, 10).is_empty(), "too early");
        tokio::time::advance(delay).await;
        let ready = world.shippable(delay, 10);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].0, backed);
    }
}
