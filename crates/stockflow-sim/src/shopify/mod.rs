//! The Shopify sandbox: Admin GraphQL at `POST /admin/api/{version}/graphql.json`.
//!
//! - [`schema`]: the served part of the schema.
//! - [`graphql`]: request body, parsed document, variables, fragments, validation and requested
//!   cost.
//! - [`store`]: items, locations, quantities, adjustment groups, idempotency keys.
//! - [`mutations`]: the two inventory mutations and every rule they keep.
//! - [`resolve`]: answers the fields asked for, counting the actual cost.
//! - `handler`: the HTTP flow: auth, body, faults, cost bucket, idempotency, answer.
//!
//! Besides the API, the handle plays the storefront and the merchant: a buyer's order moves
//! units from `available` to `committed` (as on Shopify), a cancellation moves them back, and a
//! merchant may edit a quantity in the admin (drift the adapter must notice).

mod handler;

pub mod graphql;
pub mod mutations;
pub mod resolve;
pub mod schema;
pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;

use crate::catalogue::ShopifyCatalogue;
use crate::clock::SimClock;
use crate::faults::FaultInjector;
use crate::limits::{Bucket, RateLimit};
use crate::recorder::{Cause, ItemKey, Recorder};
use crate::server::{self, CommonConfig, Core, ServerHandle};
use crate::{SimError, StockError};
use store::{Store, quantity, with_quantity};

/// The most simulated orders remembered for cancellation.
pub const ORDERS_KEPT_MAX: usize = 100_000;

/// The HTTP status of a throttled answer. Sources disagree; the adapter must cope with both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ThrottledStatus {
    /// 200 with `errors[].extensions.code = "THROTTLED"`.
    #[default]
    Ok,
    /// 429 with the same body and a `Retry-After` header.
    TooManyRequests,
}

#[derive(Clone, Debug)]
pub struct ShopifyConfig {
    pub common: CommonConfig,
    pub catalogue: ShopifyCatalogue,
    /// Accepted `X-Shopify-Access-Token` values; each is an app with its own cost bucket.
    pub access_tokens: Vec<String>,
    /// Accepted API versions; the first is the one [`ShopifyHandle::graphql_url`] uses.
    pub api_versions: Vec<String>,
    /// Restore rate (points/s) and bucket size. Standard: 100/s, 2,000.
    pub cost_limit: RateLimit,
    /// The most a single query may cost (MAX_COST_EXCEEDED above it).
    pub query_cost_max: u64,
    pub throttled_status: ThrottledStatus,
}

impl ShopifyConfig {
    /// Standard plan limits, API version 2026-04 and later, one access token.
    pub fn new(catalogue: ShopifyCatalogue, access_token: &str) -> Self {
        Self {
            common: CommonConfig::default(),
            catalogue,
            access_tokens: vec![access_token.to_owned()],
            api_versions: ["2026-04", "2026-07", "2026-10", "2027-01", "unstable"]
                .map(str::to_owned)
                .to_vec(),
            cost_limit: RateLimit::new(100.0, 2_000.0),
            query_cost_max: 1_000,
            throttled_status: ThrottledStatus::Ok,
        }
    }
}

/// The cost buckets of the apps, and the limits in force.
#[derive(Debug)]
struct Throttle {
    buckets: HashMap<String, Bucket>,
    normal: RateLimit,
    /// A temporary lowering and when it ends.
    lowered: Option<(RateLimit, Duration)>,
}

impl Throttle {
    /// The bucket of a token, with the limit in force at `now`.
    fn bucket(&mut self, token: &str, now: Duration) -> &mut Bucket {
        let limit = match self.lowered {
            Some((lowered, until)) if now < until => lowered,
            _ => self.normal,
        };
        let bucket = self
            .buckets
            .entry(token.to_owned())
            .or_insert_with(|| Bucket::new(limit, now));
        if bucket.limit() != limit {
            bucket.set_limit(limit, now);
        }
        bucket
    }
}

/// A simulated order: the level it took units from.
#[derive(Debug, Clone)]
struct Order {
    item: usize,
    level: usize,
    quantity: i64,
}

#[derive(Debug, Default)]
struct Orders {
    open: HashMap<String, Order>,
    placed: u64,
}

#[derive(Debug)]
struct State {
    core: Core,
    config: ShopifyConfig,
    store: Mutex<Store>,
    throttle: Mutex<Throttle>,
    orders: Mutex<Orders>,
}

/// A running Shopify sandbox.
#[derive(Debug)]
pub struct ShopifyHandle {
    server: ServerHandle,
    state: Arc<State>,
}

/// Starts a Shopify sandbox on 127.0.0.1:0.
pub async fn start(config: ShopifyConfig) -> Result<ShopifyHandle, SimError> {
    assert!(
        !config.access_tokens.is_empty(),
        "a shop needs an access token"
    );
    assert!(
        !config.api_versions.is_empty(),
        "a shop serves at least one API version"
    );
    let store = Store::new(&config.catalogue)?;
    let core = Core::new(&config.common);
    seed_timelines(&store, &core);
    let state = Arc::new(State {
        throttle: Mutex::new(Throttle {
            buckets: HashMap::new(),
            normal: config.cost_limit,
            lowered: None,
        }),
        core,
        config,
        store: Mutex::new(store),
        orders: Mutex::new(Orders::default()),
    });
    let router = Router::new()
        .route("/admin/api/{version}/graphql.json", post(handler::graphql))
        .fallback(handler::not_found)
        .with_state(state.clone());
    let listener = server::bind().await?;
    let server = server::spawn(listener, router)?;
    Ok(ShopifyHandle { server, state })
}

fn seed_timelines(store: &Store, core: &Core) {
    for item in &store.items {
        for level in &item.levels {
            let location = &store.locations[level.location].id;
            let key = ItemKey::new(&item.sku, location);
            core.recorder.record_quantity(
                key,
                core.clock.now(),
                level.quantities.available,
                Cause::Seed,
            );
        }
    }
}

impl ShopifyHandle {
    pub fn address(&self) -> SocketAddr {
        self.server.address()
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The GraphQL endpoint of the first configured API version.
    pub fn graphql_url(&self) -> String {
        let version = &self.state.config.api_versions[0];
        format!("{}/admin/api/{version}/graphql.json", self.base_url())
    }

    pub fn recorder(&self) -> &Recorder {
        &self.state.core.recorder
    }

    pub fn faults(&self) -> &FaultInjector {
        &self.state.core.faults
    }

    pub fn clock(&self) -> &SimClock {
        &self.state.core.clock
    }

    /// Changes the restore rate and bucket size for good.
    pub fn set_cost_limit(&self, limit: RateLimit) {
        let mut throttle = self.state.throttle.lock().unwrap();
        throttle.normal = limit;
        throttle.lowered = None;
    }

    /// Lowers the limits for a while, as Shopify may; they come back by themselves.
    pub fn lower_cost_limit_for(&self, limit: RateLimit, duration: Duration) {
        let until = self.state.core.clock.now() + duration;
        self.state.throttle.lock().unwrap().lowered = Some((limit, until));
    }

    /// Points currently available to a token, as `throttleStatus.currentlyAvailable` would say.
    pub fn currently_available(&self, token: &str) -> f64 {
        let now = self.state.core.clock.now();
        self.state
            .throttle
            .lock()
            .unwrap()
            .bucket(token, now)
            .available(now)
    }

    /// A named quantity (available, committed, on_hand, ...) of a SKU at a location gid.
    pub fn quantity(&self, sku: &str, location_id: &str, name: &str) -> Option<i64> {
        let store = self.state.store.lock().unwrap();
        let (item, level) = find_level(&store, sku, location_id).ok()?;
        quantity(&store.quantities(item, level), name)
    }

    /// A buyer orders: `available -> committed`. Refused when fewer are available (the shop
    /// does not sell out of stock). Returns the order id.
    pub fn buyer_order(
        &self,
        sku: &str,
        location_id: &str,
        units: i64,
    ) -> Result<String, StockError> {
        if units <= 0 {
            return Err(StockError::NonPositiveQuantity);
        }
        let mut store = self.state.store.lock().unwrap();
        let (item, level) = find_level(&store, sku, location_id)?;
        let mut quantities = store.quantities(item, level);
        if quantities.available < units {
            return Err(StockError::NotEnough {
                available: quantities.available,
                wanted: units,
            });
        }
        quantities.available -= units;
        quantities.committed += units;
        store.items[item].levels[level].quantities = quantities;
        let mut orders = self.state.orders.lock().unwrap();
        orders.placed += 1;
        let order_id = format!("gid://shopify/Order/{}", 5_000_000 + orders.placed);
        if orders.open.len() < ORDERS_KEPT_MAX {
            orders.open.insert(
                order_id.clone(),
                Order {
                    item,
                    level,
                    quantity: units,
                },
            );
        }
        self.record(
            &store,
            item,
            level,
            Cause::Order {
                order_id: order_id.clone(),
            },
        );
        Ok(order_id)
    }

    /// The order is cancelled: `committed -> available`.
    pub fn cancel_order(&self, order_id: &str) -> Result<(), StockError> {
        let order = self.state.orders.lock().unwrap().open.remove(order_id);
        let order = order.ok_or_else(|| StockError::UnknownOrder(order_id.to_owned()))?;
        let mut store = self.state.store.lock().unwrap();
        let quantities = &mut store.items[order.item].levels[order.level].quantities;
        quantities.committed -= order.quantity;
        quantities.available += order.quantity;
        self.record(
            &store,
            order.item,
            order.level,
            Cause::Cancellation {
                order_id: order_id.to_owned(),
            },
        );
        Ok(())
    }

    /// The order is fulfilled (shipped): its units leave `committed` and `on_hand`; it can no
    /// longer be cancelled.
    pub fn fulfil_order(&self, order_id: &str) -> Result<(), StockError> {
        let order = self.state.orders.lock().unwrap().open.remove(order_id);
        let order = order.ok_or_else(|| StockError::UnknownOrder(order_id.to_owned()))?;
        let mut store = self.state.store.lock().unwrap();
        let quantities = &mut store.items[order.item].levels[order.level].quantities;
        quantities.committed -= order.quantity;
        Ok(())
    }

    /// The merchant sets a quantity in Shopify's admin, behind the adapter's back.
    pub fn merchant_set(
        &self,
        sku: &str,
        location_id: &str,
        name: &str,
        value: i64,
    ) -> Result<(), StockError> {
        let mut store = self.state.store.lock().unwrap();
        let (item, level) = find_level(&store, sku, location_id)?;
        let next = with_quantity(store.quantities(item, level), name, value)
            .ok_or_else(|| StockError::UnknownQuantityName(name.to_owned()))?;
        store.items[item].levels[level].quantities = next;
        self.record(&store, item, level, Cause::MerchantEdit);
        Ok(())
    }

    fn record(&self, store: &Store, item: usize, level: usize, cause: Cause) {
        record_level(&self.state.core, store, item, level, cause);
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

fn find_level(store: &Store, sku: &str, location_id: &str) -> Result<(usize, usize), StockError> {
    let unknown = || StockError::UnknownItem(format!("{sku} at {location_id}"));
    let item = store.item_by_sku(sku).ok_or_else(unknown)?;
    let location = store.location_by_id(location_id).ok_or_else(unknown)?;
    let level = store.level_at(item, location).ok_or_else(unknown)?;
    Ok((item, level))
}

/// Records the `available` quantity of a level: what buyers are shown.
fn record_level(core: &Core, store: &Store, item: usize, level: usize, cause: Cause) {
    let stored = &store.items[item].levels[level];
    let key = ItemKey::new(&store.items[item].sku, &store.locations[stored.location].id);
    core.recorder
        .record_quantity(key, core.clock.now(), stored.quantities.available, cause);
}
