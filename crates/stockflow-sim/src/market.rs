//! The platforms' side of a scenario: each sandbox's storefront (what buyers are shown and
//! where they order), the physical [`World`] their orders claim units from, and each platform's
//! outgoing order webhooks ([`Deliverer`]).
//!
//! An order's life on the platforms: placed (the platform lowers what it shows and sends the
//! creation notification), paid, then either fulfilled when the warehouse ships it or
//! cancelled (the platform shows the units again). Every step sends the platform's webhook.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::amazon::AmazonHandle;
use crate::catalogue::gid_number;
use crate::delivery::{Deliverer, DeliveryConfig, DeliveryStats, Notification, OnDelivered};
use crate::notify::amazon::{AmazonNotifications, AmazonOrder, Change};
use crate::notify::shopify::{self as shopify_notify, OrderState, ShopifyOrder, ShopifyWebhooks};
use crate::notify::tiktok::TikTokWebhooks;
use crate::notify::unix_ms_now;
use crate::shopify::ShopifyHandle;
use crate::tiktok::TikTokHandle;
use crate::tiktok::orders::OrderStatus;
use crate::world::{Claim, OrderKey, Platform, World};

/// The most orders the market remembers until they ship or are cancelled.
pub const ORDERS_TRACKED_MAX: usize = 1_000_000;

/// The Shopify storefront: one location sells.
pub struct ShopifyOutlet {
    pub handle: Arc<ShopifyHandle>,
    /// The Shopify location gid orders commit at.
    pub location_id: String,
    pub webhooks: ShopifyWebhooks,
    pub delivery: DeliveryConfig,
}

pub struct AmazonOutlet {
    pub handle: Arc<AmazonHandle>,
    pub notifications: AmazonNotifications,
    pub delivery: DeliveryConfig,
}

/// The TikTok storefront: one warehouse sells; SKU ids by seller SKU.
pub struct TikTokOutlet {
    pub handle: Arc<TikTokHandle>,
    pub warehouse_id: String,
    pub sku_ids: BTreeMap<String, String>,
    pub webhooks: TikTokWebhooks,
    pub delivery: DeliveryConfig,
}

pub struct MarketConfig {
    pub world: World,
    /// Locations of the world in the order orders claim units from them.
    pub locations: Vec<String>,
    pub shopify: Option<ShopifyOutlet>,
    pub amazon: Option<AmazonOutlet>,
    pub tiktok: Option<TikTokOutlet>,
    pub unit_price_cents: i64,
}

/// Who cancelled an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Canceller {
    /// The buyer changed their mind.
    Buyer,
    /// The merchant could not fulfil it (no unit was left): a seller-fault cancellation.
    Merchant,
}

/// What a buyer's attempt to order found.
#[derive(Clone, Debug, PartialEq)]
pub enum Placed {
    Ordered {
        order: OrderKey,
        claim: Claim,
    },
    /// The storefront showed fewer units than wanted.
    NotShown {
        shown: i64,
    },
    /// The platform is not part of the scenario or does not list the SKU.
    NotListed,
}

/// Counts of one platform's storefront.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorefrontStats {
    pub attempts: u64,
    pub ordered: u64,
    pub units_ordered: i64,
    pub not_shown: u64,
    pub paid: u64,
    pub fulfilled: u64,
    pub cancelled_by_buyer: u64,
    pub cancelled_by_merchant: u64,
    pub delivery: DeliveryStats,
}

#[derive(Clone, Debug)]
enum Details {
    Shopify {
        order: ShopifyOrder,
        state: OrderState,
    },
    Amazon(AmazonOrder),
    TikTok,
}

#[derive(Debug)]
struct Record {
    details: Details,
}

#[derive(Default)]
struct Books {
    orders: HashMap<OrderKey, Record>,
    stats: BTreeMap<Platform, StorefrontStats>,
    /// Notification numbers per platform.
    notifications: BTreeMap<Platform, u64>,
}

impl Books {
    fn next_number(&mut self, platform: Platform) -> u64 {
        let number = self.notifications.entry(platform).or_default();
        *number += 1;
        *number
    }

    fn stats(&mut self, platform: Platform) -> &mut StorefrontStats {
        self.stats.entry(platform).or_default()
    }
}

pub struct Market {
    config: MarketConfig,
    books: Mutex<Books>,
    deliverers: BTreeMap<Platform, Deliverer>,
}

impl std::fmt::Debug for Market {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Market")
            .field("platforms", &self.deliverers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Market {
    /// Starts one deliverer per configured platform. Every delivered notification tells the
    /// world that its order reached the order system.
    pub fn start(config: MarketConfig) -> Arc<Market> {
        let mut deliverers = BTreeMap::new();
        let mut add = |platform: Platform, delivery: &DeliveryConfig| {
            let world = config.world.clone();
            let known: OnDelivered = Arc::new(move |notification: &Notification| {
                world.mark_known(&OrderKey::new(platform, notification.subject.clone()));
            });
            deliverers.insert(platform, Deliverer::start(delivery.clone(), Some(known)));
        };
        if let Some(outlet) = &config.shopify {
            add(Platform::Shopify, &outlet.delivery);
        }
        if let Some(outlet) = &config.amazon {
            add(Platform::Amazon, &outlet.delivery);
        }
        if let Some(outlet) = &config.tiktok {
            add(Platform::TikTok, &outlet.delivery);
        }
        Arc::new(Market {
            config,
            books: Mutex::new(Books::default()),
            deliverers,
        })
    }

    pub fn world(&self) -> &World {
        &self.config.world
    }

    pub fn platforms(&self) -> Vec<Platform> {
        self.deliverers.keys().copied().collect()
    }

    /// What the platform's storefront shows for a SKU now.
    pub fn shown(&self, platform: Platform, sku: &str) -> Option<i64> {
        match platform {
            Platform::Shopify => {
                let outlet = self.config.shopify.as_ref()?;
                outlet
                    .handle
                    .quantity(sku, &outlet.location_id, "available")
            }
            Platform::Amazon => self.config.amazon.as_ref()?.handle.quantity(sku),
            Platform::TikTok => {
                let outlet = self.config.tiktok.as_ref()?;
                let sku_id = outlet.sku_ids.get(sku)?;
                outlet.handle.quantity(sku_id, &outlet.warehouse_id)
            }
        }
    }

    /// A buyer orders `units` of `sku` on `platform`, if the storefront shows them.
    pub fn place(&self, platform: Platform, sku: &str, units: i64) -> Placed {
        let Some(shown) = self.shown(platform, sku) else {
            return Placed::NotListed;
        };
        self.books.lock().unwrap().stats(platform).attempts += 1;
        if shown < units {
            self.books.lock().unwrap().stats(platform).not_shown += 1;
            return Placed::NotShown { shown };
        }
        let placed = match platform {
            Platform::Shopify => self.place_shopify(sku, units),
            Platform::Amazon => self.place_amazon(sku, units),
            Platform::TikTok => self.place_tiktok(sku, units),
        };
        let Some(order) = placed else {
            // Another buyer took the units between the look and the order.
            self.books.lock().unwrap().stats(platform).not_shown += 1;
            return Placed::NotShown { shown };
        };
        let claim = self
            .config
            .world
            .claim(&order, sku, units, &self.config.locations)
            .expect("the world tracks every open order of a scenario");
        let mut books = self.books.lock().unwrap();
        let stats = books.stats(platform);
        stats.ordered += 1;
        stats.units_ordered += units;
        Placed::Ordered { order, claim }
    }

    fn place_shopify(&self, sku: &str, units: i64) -> Option<OrderKey> {
        let outlet = self.config.shopify.as_ref()?;
        let gid = outlet
            .handle
            .buyer_order(sku, &outlet.location_id, units)
            .ok()?;
        let id: u64 = gid_number(&gid).parse().expect("numeric order ids");
        let order = ShopifyOrder {
            id,
            number: 1_000 + (id % 1_000_000),
            line_item_id: 13_000_000_000 + id,
            sku: sku.to_owned(),
            variant_id: 440_000_000_000 + stable_number(sku),
            product_id: 880_000_000_000 + stable_number(sku),
            quantity: units,
            location_id: gid_number(&outlet.location_id).parse().unwrap_or(0),
            created_at_ms: unix_ms_now(),
            unit_price_cents: self.config.unit_price_cents,
        };
        let key = OrderKey::new(Platform::Shopify, id.to_string());
        let details = Details::Shopify {
            order,
            state: OrderState::default(),
        };
        self.track(&key, details);
        self.notify_shopify(&key, shopify_notify::ORDERS_CREATE, |_| {});
        Some(key)
    }

    fn place_amazon(&self, sku: &str, units: i64) -> Option<OrderKey> {
        let outlet = self.config.amazon.as_ref()?;
        let id = outlet.handle.place_order(sku, units).ok()?;
        let order = AmazonOrder {
            order_item_id: format!("{:014}", stable_number(&id)),
            amazon_order_id: id.clone(),
            seller_sku: sku.to_owned(),
            quantity: units,
            purchase_ms: unix_ms_now(),
        };
        let key = OrderKey::new(Platform::Amazon, id);
        self.track(&key, Details::Amazon(order));
        self.notify_amazon(&key, Change::status("Pending", unix_ms_now()));
        Some(key)
    }

    fn place_tiktok(&self, sku: &str, units: i64) -> Option<OrderKey> {
        let outlet = self.config.tiktok.as_ref()?;
        let sku_id = outlet.sku_ids.get(sku)?;
        let id = outlet
            .handle
            .place_order(sku_id, &outlet.warehouse_id, units)
            .ok()?;
        let key = OrderKey::new(Platform::TikTok, id);
        self.track(&key, Details::TikTok);
        self.notify_tiktok(&key, OrderStatus::Unpaid);
        Some(key)
    }

    fn track(&self, key: &OrderKey, details: Details) {
        let mut books = self.books.lock().unwrap();
        assert!(
            books.orders.len() < ORDERS_TRACKED_MAX,
            "more than {ORDERS_TRACKED_MAX} open orders"
        );
        books.orders.insert(key.clone(), Record { details });
    }

    /// The buyer paid.
    pub fn pay(&self, key: &OrderKey) {
        if !self.config.world.is_open(key) {
            return;
        }
        self.config.world.mark_paid(key);
        self.books.lock().unwrap().stats(key.platform).paid += 1;
        match key.platform {
            Platform::Shopify => {
                self.notify_shopify(key, shopify_notify::ORDERS_PAID, |s| s.paid = true)
            }
            Platform::Amazon => self.notify_amazon(key, Change::status("Unshipped", unix_ms_now())),
            Platform::TikTok => {
                if let Some(outlet) = &self.config.tiktok
                    && outlet.handle.pay_order(&key.order_id).is_ok()
                {
                    self.notify_tiktok(key, OrderStatus::AwaitingShipment);
                }
            }
        }
    }

    /// Cancels an order that has not shipped: the platform shows its units again. False when
    /// it already shipped or was cancelled.
    pub fn cancel(&self, key: &OrderKey, by: Canceller) -> bool {
        if self.config.world.cancel(key).is_none() {
            return false;
        }
        let restocked = match key.platform {
            Platform::Shopify => self.config.shopify.as_ref().map(|outlet| {
                let gid = format!("gid://shopify/Order/{}", key.order_id);
                outlet.handle.cancel_order(&gid).is_ok()
            }),
            Platform::Amazon => (self.config.amazon.as_ref())
                .map(|outlet| outlet.handle.cancel_order(&key.order_id).is_ok()),
            Platform::TikTok => (self.config.tiktok.as_ref())
                .map(|outlet| outlet.handle.cancel_order(&key.order_id).is_ok()),
        };
        debug_assert_eq!(
            restocked,
            Some(true),
            "an open order is open on its platform"
        );
        let reason = match by {
            Canceller::Buyer => "customer",
            Canceller::Merchant => "inventory",
        };
        let now = unix_ms_now();
        match key.platform {
            Platform::Shopify => self.notify_shopify(key, shopify_notify::ORDERS_CANCELLED, |s| {
                s.cancelled = Some((now, reason.to_owned()));
            }),
            Platform::Amazon => {
                let mut change = Change::status("Canceled", now);
                if by == Canceller::Buyer {
                    change.change_type = "BuyerRequestedChange";
                    change.change_reason = "Buyer Requested Cancel".into();
                    change.buyer_requested_cancel = true;
                }
                self.notify_amazon(key, change);
            }
            Platform::TikTok => self.notify_tiktok(key, OrderStatus::Cancelled),
        }
        let mut books = self.books.lock().unwrap();
        books.orders.remove(key);
        let stats = books.stats(key.platform);
        match by {
            Canceller::Buyer => stats.cancelled_by_buyer += 1,
            Canceller::Merchant => stats.cancelled_by_merchant += 1,
        }
        true
    }

    /// The warehouse shipped the order: the platform marks it fulfilled.
    pub fn fulfil(&self, key: &OrderKey) {
        let shipped = match key.platform {
            Platform::Shopify => self.config.shopify.as_ref().map(|outlet| {
                let gid = format!("gid://shopify/Order/{}", key.order_id);
                outlet.handle.fulfil_order(&gid).is_ok()
            }),
            Platform::Amazon => (self.config.amazon.as_ref())
                .map(|outlet| outlet.handle.ship_order(&key.order_id).is_ok()),
            Platform::TikTok => (self.config.tiktok.as_ref())
                .map(|outlet| outlet.handle.ship_order(&key.order_id).is_ok()),
        };
        if shipped != Some(true) {
            return;
        }
        match key.platform {
            Platform::Shopify => self.notify_shopify(key, shopify_notify::ORDERS_FULFILLED, |s| {
                s.fulfilled = true
            }),
            Platform::Amazon => self.notify_amazon(key, Change::status("Shipped", unix_ms_now())),
            Platform::TikTok => self.notify_tiktok(key, OrderStatus::InTransit),
        }
        let mut books = self.books.lock().unwrap();
        books.orders.remove(key);
        books.stats(key.platform).fulfilled += 1;
    }

    fn notify_shopify(&self, key: &OrderKey, topic: &str, change: impl FnOnce(&mut OrderState)) {
        let Some(outlet) = &self.config.shopify else {
            return;
        };
        let notification = {
            let mut books = self.books.lock().unwrap();
            let number = books.next_number(Platform::Shopify);
            let Some(Record {
                details: Details::Shopify { order, state },
            }) = books.orders.get_mut(key)
            else {
                return;
            };
            change(state);
            outlet
                .webhooks
                .notification(topic, order, state, number, unix_ms_now())
        };
        self.send(Platform::Shopify, notification);
    }

    fn notify_amazon(&self, key: &OrderKey, change: Change) {
        let Some(outlet) = &self.config.amazon else {
            return;
        };
        let notification = {
            let mut books = self.books.lock().unwrap();
            let number = books.next_number(Platform::Amazon);
            let Some(Record {
                details: Details::Amazon(order),
            }) = books.orders.get(key)
            else {
                return;
            };
            outlet.notifications.notification(order, &change, number)
        };
        self.send(Platform::Amazon, notification);
    }

    fn notify_tiktok(&self, key: &OrderKey, status: OrderStatus) {
        let Some(outlet) = &self.config.tiktok else {
            return;
        };
        let number = self.books.lock().unwrap().next_number(Platform::TikTok);
        let now_s = unix_ms_now() / 1_000;
        let notification =
            outlet
                .webhooks
                .notification(&key.order_id, status.webhook_name(), now_s, number);
        self.send(Platform::TikTok, notification);
    }

    fn send(&self, platform: Platform, notification: Notification) {
        if let Some(deliverer) = self.deliverers.get(&platform)
            && !deliverer.send(notification)
        {
            tracing::warn!(%platform, "webhook queue full: a notification was dropped");
        }
    }

    pub fn stats(&self, platform: Platform) -> StorefrontStats {
        let mut stats = self
            .books
            .lock()
            .unwrap()
            .stats
            .get(&platform)
            .copied()
            .unwrap_or_default();
        if let Some(deliverer) = self.deliverers.get(&platform) {
            stats.delivery = deliverer.stats();
        }
        stats
    }

    /// Waits until every platform's webhooks are delivered (or given up), at most `timeout`.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut drained = true;
        for deliverer in self.deliverers.values() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            drained &= deliverer.drain(left).await;
        }
        drained
    }

    /// Stops every platform's webhooks.
    pub fn close(&self) {
        for deliverer in self.deliverers.values() {
            deliverer.close();
        }
    }
}

/// A number from a text, the same on every run (FNV-1a, folded to 9 digits).
fn stable_number(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % 1_000_000_000
}
