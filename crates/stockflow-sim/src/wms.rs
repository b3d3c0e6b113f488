//! A warehouse management system that tells stockflow what physically happens, in stockflow's
//! documented event format (`POST /v1/events` with `{"events": [...]}`; every event has
//! `event_id`, `source` and a `seq` that grows by one per source): receipts, picks scanned as
//! orders ship (naming the order's reservation), picks of shipments no channel sold, returns,
//! adjustments and cycle counts.
//!
//! Every event changes the physical [`World`] first, then is queued; one task sends the queue
//! in order, in batches, and retries a batch that was not answered 200 (with the same event
//! ids, so a retry is a duplicate, never a second fact). The sequence number is given when the
//! event leaves the queue, so the events of one source always reach stockflow in `seq` order.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::sync::{Notify, mpsc};

use crate::market::Market;
use crate::notify::{rfc3339_millis, unix_ms_now};
use crate::world::{OrderKey, Platform, World};

/// How reservation ids are derived from platform order ids: a template per platform in which
/// `{order_id}` is replaced, e.g. `shopify-shop-{order_id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReservationIds {
    pub templates: BTreeMap<Platform, String>,
}

impl ReservationIds {
    /// `<platform>-<channel>-<order id>` for each platform, with the given channel ids.
    pub fn per_channel(channels: &[(Platform, &str)]) -> Self {
        Self {
            templates: channels
                .iter()
                .map(|(platform, channel)| {
                    (*platform, format!("{platform}-{channel}-{{order_id}}"))
                })
                .collect(),
        }
    }

    pub fn id(&self, order: &OrderKey) -> Option<String> {
        let template = self.templates.get(&order.platform)?;
        Some(template.replace("{order_id}", &order.order_id))
    }
}

#[derive(Clone, Debug)]
pub struct WmsConfig {
    /// `http://<stockflow>/v1/events`.
    pub events_url: String,
    /// The producer's name; event ids are `<source>-<seq>`.
    pub source: String,
    /// The warehouse's location in stockflow and in the world.
    pub location: String,
    /// Extra headers on every request (a tenant, a token).
    pub headers: Vec<(String, String)>,
    pub reservation_ids: ReservationIds,
    /// Events per request (stockflow takes up to 1000).
    pub batch_max: usize,
    /// Events waiting to be sent; beyond it, producing waits.
    pub queue_max: usize,
    /// The wait before a failed request is sent again.
    pub retry_wait: Duration,
    pub request_timeout: Duration,
}

impl WmsConfig {
    pub fn new(events_url: impl Into<String>, source: &str, location: &str) -> Self {
        Self {
            events_url: events_url.into(),
            source: source.to_owned(),
            location: location.to_owned(),
            headers: Vec::new(),
            reservation_ids: ReservationIds::default(),
            batch_max: 200,
            queue_max: 100_000,
            retry_wait: Duration::from_millis(200),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// What the WMS sent and how stockflow answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WmsStats {
    pub events: u64,
    pub applied: u64,
    pub duplicate: u64,
    pub held: u64,
    pub requests: u64,
    /// Requests not answered 200 (sent again).
    pub failed_requests: u64,
    pub receipts: u64,
    pub picks: u64,
    pub unreserved_picks: u64,
    pub returns: u64,
    pub adjustments: u64,
    pub counts: u64,
}

#[derive(Default)]
struct Progress {
    stats: WmsStats,
    /// Events queued and not yet answered.
    outstanding: u64,
    last_seq: u64,
}

pub struct Wms {
    config: WmsConfig,
    world: World,
    queue: mpsc::Sender<Json>,
    progress: Arc<Mutex<Progress>>,
    settled: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Wms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wms")
            .field("source", &self.config.source)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for Wms {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Wms {
    pub fn start(config: WmsConfig, world: World) -> Arc<Wms> {
        assert!(
            (1..=1_000).contains(&config.batch_max),
            "stockflow takes 1 to 1000 events"
        );
        let (queue, receiver) = mpsc::channel(config.queue_max);
        let progress = Arc::new(Mutex::new(Progress::default()));
        let settled = Arc::new(Notify::new());
        let task = tokio::spawn(send_loop(
            config.clone(),
            receiver,
            progress.clone(),
            settled.clone(),
        ));
        Arc::new(Wms {
            config,
            world,
            queue,
            progress,
            settled,
            task,
        })
    }

    pub fn location(&self) -> &str {
        &self.config.location
    }

    fn event(&self, kind: &str, sku: &str, quantity: i64) -> serde_json::Map<String, Json> {
        let mut event = serde_json::Map::new();
        event.insert("type".into(), kind.into());
        event.insert("sku".into(), sku.into());
        event.insert("location".into(), self.config.location.clone().into());
        event.insert("quantity".into(), quantity.into());
        event.insert("occurred_at".into(), rfc3339_millis(unix_ms_now()).into());
        event
    }

    async fn queue(&self, event: serde_json::Map<String, Json>, count: impl FnOnce(&mut WmsStats)) {
        {
            let mut progress = self.progress.lock().unwrap();
            progress.outstanding += 1;
            progress.stats.events += 1;
            count(&mut progress.stats);
        }
        if self.queue.send(Json::Object(event)).await.is_err() {
            tracing::warn!("the WMS sender stopped; an event was not sent");
        }
    }

    /// Goods arrived: on the shelf, and `received`.
    pub async fn received(&self, sku: &str, units: i64, reference: &str) {
        self.world.receive(sku, &self.config.location, units);
        let mut event = self.event("received", sku, units);
        event.insert("reference".into(), reference.into());
        self.queue(event, |s| s.receipts += 1).await;
    }

    /// A shipment no channel sold (a wholesale order, a store transfer) is picked: units leave
    /// the shelf without a reservation. Returns the units picked (what was free).
    pub async fn picked_unreserved(&self, sku: &str, units: i64, reference: &str) -> i64 {
        let taken = self.world.take_free(sku, &self.config.location, units);
        if taken > 0 {
            let mut event = self.event("picked", sku, taken);
            event.insert("reference".into(), reference.into());
            self.queue(event, |s| s.unreserved_picks += 1).await;
        }
        taken
    }

    /// A channel order is picked as it ships: its units leave the shelf, and each location's
    /// pick names the order's reservation. False when the order was not open.
    pub async fn picked_order(&self, order: &OrderKey) -> bool {
        let Some(claim) = self.world.ship(order) else {
            return false;
        };
        let reservation = self.config.reservation_ids.id(order);
        for held in claim.held {
            let mut event = self.event("picked", &claim.sku, held.units);
            event.insert("location".into(), held.location.into());
            if let Some(reservation) = &reservation {
                event.insert("reservation_id".into(), reservation.clone().into());
            }
            event.insert(
                "reference".into(),
                format!("{}:{}", order.platform, order.order_id).into(),
            );
            self.queue(event, |s| s.picks += 1).await;
        }
        true
    }

    /// A buyer sent units back: on the shelf again when sellable.
    pub async fn returned(&self, sku: &str, units: i64, condition: &str) {
        if condition == "sellable" {
            self.world.receive(sku, &self.config.location, units);
        }
        let mut event = self.event("returned", sku, units);
        event.insert("condition".into(), condition.into());
        self.queue(event, |s| s.returns += 1).await;
    }

    /// Units found or lost. Losses come out of free units only (a held unit is shipped).
    /// Returns the delta applied.
    pub async fn adjusted(&self, sku: &str, delta: i64, reason: &str) -> i64 {
        let location = &self.config.location;
        let applied = if delta >= 0 {
            self.world.receive(sku, location, delta);
            delta
        } else {
            -self.world.take_free(sku, location, -delta)
        };
        if applied != 0 {
            let mut event = self.event("adjusted", sku, applied);
            event.insert("reason".into(), reason.into());
            self.queue(event, |s| s.adjustments += 1).await;
        }
        applied
    }

    /// A cycle count: what is on the shelf now.
    pub async fn counted(&self, sku: &str) -> i64 {
        let on_shelf = self.world.on_shelf(sku, &self.config.location);
        let event = self.event("counted", sku, on_shelf);
        self.queue(event, |s| s.counts += 1).await;
        on_shelf
    }

    pub fn stats(&self) -> WmsStats {
        self.progress.lock().unwrap().stats
    }

    /// The last sequence number sent.
    pub fn last_seq(&self) -> u64 {
        self.progress.lock().unwrap().last_seq
    }

    /// Waits until every queued event was answered, at most `timeout`; true when all were.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let settled = self.settled.notified();
            if self.progress.lock().unwrap().outstanding == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return self.progress.lock().unwrap().outstanding == 0;
            }
        }
    }
}

async fn send_loop(
    config: WmsConfig,
    mut receiver: mpsc::Receiver<Json>,
    progress: Arc<Mutex<Progress>>,
    settled: Arc<Notify>,
) {
    let client = crate::delivery::http_client(config.request_timeout);
    let mut seq = 0u64;
    let mut batch: Vec<Json> = Vec::with_capacity(config.batch_max);
    loop {
        if receiver.recv_many(&mut batch, config.batch_max).await == 0 {
            return;
        }
        for event in &mut batch {
            seq += 1;
            let object = event.as_object_mut().expect("events are objects");
            object.insert(
                "event_id".into(),
                format!("{}-{seq:09}", config.source).into(),
            );
            object.insert("source".into(), config.source.clone().into());
            object.insert("seq".into(), seq.into());
        }
        let body = json!({ "events": batch });
        let answer = post_until_answered(&client, &config, &body, &progress).await;
        let mut progress = progress.lock().unwrap();
        for result in answer.iter() {
            match result["status"].as_str() {
                Some("applied") => progress.stats.applied += 1,
                Some("duplicate") => progress.stats.duplicate += 1,
                Some("held") => progress.stats.held += 1,
                _ => {}
            }
        }
        progress.outstanding -= batch.len() as u64;
        progress.last_seq = seq;
        drop(progress);
        settled.notify_waiters();
        batch.clear();
    }
}

/// The most times one batch is sent before the WMS gives up on it (about ten minutes at the
/// default wait); a gap it leaves is stockflow's to report.
const ATTEMPTS_MAX: u32 = 3_000;

async fn post_until_answered(
    client: &reqwest::Client,
    config: &WmsConfig,
    body: &Json,
    progress: &Mutex<Progress>,
) -> VecDeque<Json> {
    for _ in 0..ATTEMPTS_MAX {
        progress.lock().unwrap().stats.requests += 1;
        let mut request = client.post(&config.events_url).json(body);
        for (name, value) in &config.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Ok(response) = request.send().await
            && response.status().is_success()
            && let Ok(answer) = response.json::<Json>().await
        {
            let results = answer["results"].as_array().cloned().unwrap_or_default();
            return results.into();
        }
        progress.lock().unwrap().stats.failed_requests += 1;
        tokio::time::sleep(config.retry_wait).await;
    }
    tracing::error!(source = %config.source, "a batch of events was never accepted");
    VecDeque::new()
}

/// How the warehouse ships channel orders.
#[derive(Clone, Debug)]
pub struct ShippingConfig {
    /// How long after the order system learned of an order it is picked.
    pub pick_delay: Duration,
    /// How often the pick list is read.
    pub interval: Duration,
    /// Orders picked per round at most.
    pub orders_per_round_max: usize,
    /// Share (0..=1) of shipped orders that come back, `return_after` later, sellable.
    pub return_share: f64,
    pub return_after: Duration,
}

impl Default for ShippingConfig {
    fn default() -> Self {
        Self {
            pick_delay: Duration::from_secs(2),
            interval: Duration::from_millis(250),
            orders_per_round_max: 200,
            return_share: 0.02,
            return_after: Duration::from_secs(10),
        }
    }
}

/// The most returns waiting to come back.
const RETURNS_WAITING_MAX: usize = 10_000;

/// Ships paid orders as the warehouse picks them: pick events to stockflow, then the platform
/// marks each order fulfilled. Runs until aborted.
pub fn spawn_shipping(
    wms: Arc<Wms>,
    market: Arc<Market>,
    config: ShippingConfig,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut returns: VecDeque<(tokio::time::Instant, String, i64)> = VecDeque::new();
        let mut shipped = 0u64;
        let every = if config.return_share > 0.0 {
            (1.0 / config.return_share).round().max(1.0) as u64
        } else {
            u64::MAX
        };
        let mut ticker = tokio::time::interval(config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let ready = wms
                .world
                .shippable(config.pick_delay, config.orders_per_round_max);
            for (order, claim) in ready {
                if wms.picked_order(&order).await {
                    market.fulfil(&order);
                    shipped += 1;
                    if shipped.is_multiple_of(every) && returns.len() < RETURNS_WAITING_MAX {
                        let due = tokio::time::Instant::now() + config.return_after;
                        returns.push_back((due, claim.sku.clone(), claim.units));
                    }
                }
            }
            let now = tokio::time::Instant::now();
            while returns.front().is_some_and(|(due, _, _)| *due <= now) {
                let (_, sku, units) = returns.pop_front().expect("front exists");
                wms.returned(&sku, units, "sellable").await;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_ids_follow_the_template() {
        let ids =
            ReservationIds::per_channel(&[(Platform::Shopify, "shop"), (Platform::TikTok, "tts")]);
        let order = OrderKey::new(Platform::Shopify, "5000001");
        assert_eq!(ids.id(&order).as_deref(), Some("shopify-shop-5000001"));
        assert_eq!(ids.id(&OrderKey::new(Platform::Amazon, "1")), None);
    }
}
