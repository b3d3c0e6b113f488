//! The Amazon sandbox: SP-API Listings Items 2021-08-01 and Feeds 2021-06-30.
//!
//! - `listings`: `PATCH` and `GET /listings/2021-08-01/items/{sellerId}/{sku}`.
//! - `feeds`: feed documents, their upload and download URLs, `createFeed`, `getFeed`, and the
//!   processing of `JSON_LISTINGS_FEED` documents.
//! - `reply`: the SP-API answer format and headers.
//!
//! ACCEPTED only queues: a submission applies after `apply_delay`; a seeded share of accepted
//! submissions never applies, and nothing says so; a later submission for a SKU supersedes the
//! earlier ones still pending. Reading back is the only way to know. Amazon also moves the
//! quantity itself: an order lowers it, a cancellation raises it again.

mod feeds;
mod listings;
mod reply;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post, put};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::catalogue::{AmazonCatalogue, check_unique};
use crate::clock::SimClock;
use crate::faults::{Draw, Fault, FaultInjector};
use crate::limits::{Admission, Bucket, RateLimit};
use crate::recorder::{Cause, ItemKey, Recorder, ViolationKind};
use crate::server::{self, CommonConfig, Core, ServerHandle, header, request_id};
use crate::{SimError, StockError};
use reply::Reply;

pub use feeds::FeedsConfig;

/// The location Amazon's merchant-fulfilled quantity is recorded under.
pub const DEFAULT_CHANNEL: &str = "DEFAULT";
/// The most accepted submissions waiting to apply; beyond it the sandbox answers 503.
pub const PENDING_SUBMISSIONS_MAX: usize = 100_000;
/// The most simulated orders remembered for cancellation.
pub const ORDERS_KEPT_MAX: usize = 100_000;
/// How long a forced throttle tells the client to wait.
const FORCED_THROTTLE_WAIT: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct AmazonConfig {
    pub common: CommonConfig,
    pub catalogue: AmazonCatalogue,
    /// The accepted `x-amz-access-token`.
    pub access_token: String,
    /// patchListingsItem per seller: 5/s, burst 5 (older references: burst 10).
    pub patch_rate: RateLimit,
    /// getListingsItem per seller: 5/s, burst 10.
    pub get_rate: RateLimit,
    /// How long after ACCEPTED a submission applies.
    pub apply_delay: Duration,
    /// Share (0.0..=1.0) of accepted submissions that never apply, with no error anywhere.
    pub never_applied_share: f64,
    /// Whether 429 answers carry `Retry-After` (SP-API does not promise it).
    pub retry_after: bool,
    pub feeds: FeedsConfig,
}

impl AmazonConfig {
    pub fn new(catalogue: AmazonCatalogue, access_token: &str) -> Self {
        Self {
            common: CommonConfig::default(),
            catalogue,
            access_token: access_token.to_owned(),
            patch_rate: RateLimit::new(5.0, 5.0),
            get_rate: RateLimit::new(5.0, 10.0),
            apply_delay: Duration::from_secs(60),
            never_applied_share: 0.01,
            retry_after: false,
            feeds: FeedsConfig::default(),
        }
    }
}

#[derive(Debug)]
struct Listing {
    product_type: String,
    quantity: i64,
}

/// An accepted submission waiting to apply.
#[derive(Debug)]
struct Submission {
    id: String,
    sku: String,
    quantity: i64,
    apply_at: Duration,
    /// Drawn at acceptance: whether post-processing will succeed.
    applies: bool,
    /// A later submission for the same SKU was accepted before this one applied.
    superseded: bool,
}

/// What became of accepted submissions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubmissionCounts {
    pub accepted: u64,
    pub applied: u64,
    /// Accepted, then silently dropped.
    pub lost: u64,
    pub superseded: u64,
    pub pending: u64,
}

#[derive(Debug)]
struct Inner {
    listings: HashMap<String, Listing>,
    pending: VecDeque<Submission>,
    counts: SubmissionCounts,
    /// Rate-limit buckets by operation (one seller per sandbox).
    buckets: HashMap<&'static str, Bucket>,
    random: ChaCha8Rng,
    orders: HashMap<String, (String, i64)>,
    orders_placed: u64,
    feeds: feeds::FeedStore,
}

#[derive(Debug)]
struct State {
    core: Core,
    config: AmazonConfig,
    /// The sandbox's own URL, for the feed document URLs it hands out.
    base_url: String,
    inner: Mutex<Inner>,
}

impl State {
    fn seller_id(&self) -> &str {
        &self.config.catalogue.seller_id
    }

    /// Applies what is due at `now`: submissions past their delay, feeds done processing.
    fn settle(&self, inner: &mut Inner) {
        let now = self.core.clock.now();
        while inner
            .pending
            .front()
            .is_some_and(|submission| submission.apply_at <= now)
        {
            let submission = inner.pending.pop_front().expect("front exists");
            inner.counts.pending -= 1;
            if submission.superseded {
                inner.counts.superseded += 1;
            } else if !submission.applies {
                inner.counts.lost += 1;
            } else {
                inner.counts.applied += 1;
                let cause = Cause::QueuedApply {
                    submission_id: submission.id,
                };
                self.set_quantity(
                    inner,
                    &submission.sku,
                    submission.quantity,
                    submission.apply_at,
                    cause,
                );
            }
        }
        feeds::settle(self, inner, now);
    }

    fn set_quantity(
        &self,
        inner: &mut Inner,
        sku: &str,
        quantity: i64,
        at: Duration,
        cause: Cause,
    ) {
        let listing = inner
            .listings
            .get_mut(sku)
            .expect("only known SKUs are queued");
        listing.quantity = quantity;
        self.core
            .recorder
            .record_quantity(ItemKey::new(sku, DEFAULT_CHANNEL), at, quantity, cause);
    }

    /// Queues an accepted submission; earlier pending ones for the SKU are superseded.
    fn accept(&self, inner: &mut Inner, sku: &str, quantity: i64) -> Result<String, Reply> {
        if inner.pending.len() >= PENDING_SUBMISSIONS_MAX {
            return Err(Reply::server_error(true));
        }
        for earlier in inner.pending.iter_mut().filter(|s| s.sku == sku) {
            earlier.superseded = true;
        }
        let id = format!("{:032x}", inner.random.random::<u128>());
        let applies = !inner.random.random_bool(self.config.never_applied_share);
        inner.pending.push_back(Submission {
            id: id.clone(),
            sku: sku.to_owned(),
            quantity,
            apply_at: self.core.clock.now() + self.config.apply_delay,
            applies,
            superseded: false,
        });
        inner.counts.accepted += 1;
        inner.counts.pending += 1;
        Ok(id)
    }

    /// The checks every SP-API call passes first: injected faults, the access token, the seller
    /// in the path, the operation's rate limit. Returns the call's draw for latency and holds.
    fn gate(
        &self,
        operation: &'static str,
        headers: &HeaderMap,
        seller: Option<&str>,
        rate: RateLimit,
    ) -> Result<Draw, Reply> {
        let draw = self.core.faults.draw();
        match draw.fault {
            Fault::ServerError { unavailable } => return Err(Reply::server_error(unavailable)),
            Fault::Throttle => return Err(self.forced_throttle(operation, rate)),
            Fault::None | Fault::Timeout { .. } => {}
        }
        if header(headers, "x-amz-access-token") != Some(self.config.access_token.as_str()) {
            return Err(Reply::unauthorized());
        }
        if seller.is_some_and(|seller| seller != self.seller_id()) {
            return Err(Reply::unauthorized());
        }
        self.admit(operation, rate)?;
        Ok(draw)
    }

    fn admit(&self, operation: &'static str, rate: RateLimit) -> Result<(), Reply> {
        let now = self.core.clock.now();
        let admission = {
            let mut inner = self.inner.lock().unwrap();
            let bucket = inner
                .buckets
                .entry(operation)
                .or_insert_with(|| Bucket::new(rate, now));
            bucket.try_take(1.0, now)
        };
        let Admission::Rejected {
            retry_after,
            while_rejected,
        } = admission
        else {
            return Ok(());
        };
        self.note_rejection(operation, while_rejected, retry_after);
        let seconds = self
            .config
            .retry_after
            .then(|| retry_after.as_secs_f64().ceil().max(1.0) as u64);
        Err(Reply::quota_exceeded(seconds))
    }

    fn forced_throttle(&self, operation: &'static str, rate: RateLimit) -> Reply {
        let now = self.core.clock.now();
        let while_rejected = {
            let mut inner = self.inner.lock().unwrap();
            let bucket = inner
                .buckets
                .entry(operation)
                .or_insert_with(|| Bucket::new(rate, now));
            bucket.reject_for(FORCED_THROTTLE_WAIT, now)
        };
        self.note_rejection(operation, while_rejected, FORCED_THROTTLE_WAIT);
        let seconds = self
            .config
            .retry_after
            .then_some(FORCED_THROTTLE_WAIT.as_secs());
        Reply::quota_exceeded(seconds)
    }

    fn note_rejection(&self, operation: &str, while_rejected: bool, retry_after: Duration) {
        let recorder = &self.core.recorder;
        recorder.record_rejection(operation);
        if while_rejected {
            let detail = format!("called again while throttled (a token back in {retry_after:?})");
            recorder.record_violation(operation, ViolationKind::CalledWhileRejected, detail);
        }
    }

    /// Records the call and renders the answer.
    fn finish(&self, operation: &str, rate: Option<RateLimit>, reply: Reply) -> Response {
        self.core.recorder.record_call(operation, reply.outcome);
        reply.into_response(&request_id(), rate.map(|rate| rate.rate_per_second))
    }
}

type Shared = Arc<State>;

/// A running Amazon sandbox.
#[derive(Debug)]
pub struct AmazonHandle {
    server: ServerHandle,
    state: Shared,
}

pub async fn start(config: AmazonConfig) -> Result<AmazonHandle, SimError> {
    assert!(
        (0.0..=1.0).contains(&config.never_applied_share),
        "never_applied_share is a share"
    );
    let catalogue = &config.catalogue;
    check_unique("sku", catalogue.listings.iter().map(|l| l.sku.as_str()))?;
    if catalogue.marketplace_ids.is_empty() {
        return Err(
            crate::CatalogueError("a seller sells in at least one marketplace".into()).into(),
        );
    }
    let core = Core::new(&config.common);
    let listings = catalogue
        .listings
        .iter()
        .map(|listing| {
            let key = ItemKey::new(&listing.sku, DEFAULT_CHANNEL);
            core.recorder
                .record_quantity(key, core.clock.now(), listing.quantity, Cause::Seed);
            (
                listing.sku.clone(),
                Listing {
                    product_type: listing.product_type.clone(),
                    quantity: listing.quantity,
                },
            )
        })
        .collect();
    let inner = Inner {
        listings,
        pending: VecDeque::new(),
        counts: SubmissionCounts::default(),
        buckets: HashMap::new(),
        // A stream of its own, apart from the fault injector's.
        random: ChaCha8Rng::seed_from_u64(config.common.seed ^ 0x616d_617a_6f6e),
        orders: HashMap::new(),
        orders_placed: 0,
        feeds: feeds::FeedStore::default(),
    };
    let listener = server::bind().await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let state = Arc::new(State {
        core,
        config,
        base_url,
        inner: Mutex::new(inner),
    });
    let router = Router::new()
        .route(
            "/listings/2021-08-01/items/{seller_id}/{sku}",
            get(listings::get_item).patch(listings::patch_item),
        )
        .route("/feeds/2021-06-30/documents", post(feeds::create_document))
        .route(
            "/feeds/2021-06-30/documents/{document_id}",
            get(feeds::get_document),
        )
        .route("/feeds/2021-06-30/feeds", post(feeds::create_feed))
        .route("/feeds/2021-06-30/feeds/{feed_id}", get(feeds::get_feed))
        .route(
            "/sandbox-storage/{document_id}",
            put(feeds::upload).get(feeds::download),
        )
        .fallback(not_found)
        .with_state(state.clone());
    let server = server::spawn(listener, router)?;
    Ok(AmazonHandle { server, state })
}

async fn not_found() -> Response {
    Reply::not_found("Resource not found.").into_response(&request_id(), None)
}

impl AmazonHandle {
    pub fn address(&self) -> SocketAddr {
        self.server.address()
    }

    /// The SP-API endpoint (what the adapter uses instead of `https://sellingpartnerapi-na.amazon.com`).
    pub fn base_url(&self) -> String {
        self.server.base_url()
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

    /// The quantity Amazon shows now, after applying what is due.
    pub fn quantity(&self, sku: &str) -> Option<i64> {
        let mut inner = self.state.inner.lock().unwrap();
        self.state.settle(&mut inner);
        inner.listings.get(sku).map(|listing| listing.quantity)
    }

    /// Applies what is due now (reads do it anyway).
    pub fn settle(&self) {
        let mut inner = self.state.inner.lock().unwrap();
        self.state.settle(&mut inner);
    }

    pub fn submission_counts(&self) -> SubmissionCounts {
        let mut inner = self.state.inner.lock().unwrap();
        self.state.settle(&mut inner);
        inner.counts
    }

    /// A buyer orders: Amazon lowers its own quantity at once. Returns the order id.
    pub fn place_order(&self, sku: &str, units: i64) -> Result<String, StockError> {
        if units <= 0 {
            return Err(StockError::NonPositiveQuantity);
        }
        let mut inner = self.state.inner.lock().unwrap();
        self.state.settle(&mut inner);
        let listing = inner
            .listings
            .get(sku)
            .ok_or_else(|| StockError::UnknownItem(sku.to_owned()))?;
        if listing.quantity < units {
            return Err(StockError::NotEnough {
                available: listing.quantity,
                wanted: units,
            });
        }
        let remaining = listing.quantity - units;
        inner.orders_placed += 1;
        let order_id = format!(
            "113-{:07}-{:07}",
            inner.orders_placed,
            5_550_000 + inner.orders_placed
        );
        if inner.orders.len() < ORDERS_KEPT_MAX {
            inner
                .orders
                .insert(order_id.clone(), (sku.to_owned(), units));
        }
        let now = self.state.core.clock.now();
        self.state.set_quantity(
            &mut inner,
            sku,
            remaining,
            now,
            Cause::Order {
                order_id: order_id.clone(),
            },
        );
        Ok(order_id)
    }

    /// The order is cancelled: Amazon raises its quantity again.
    pub fn cancel_order(&self, order_id: &str) -> Result<(), StockError> {
        let mut inner = self.state.inner.lock().unwrap();
        self.state.settle(&mut inner);
        let (sku, units) = inner
            .orders
            .remove(order_id)
            .ok_or_else(|| StockError::UnknownOrder(order_id.to_owned()))?;
        let quantity = inner.listings[&sku].quantity + units;
        let now = self.state.core.clock.now();
        self.state.set_quantity(
            &mut inner,
            &sku,
            quantity,
            now,
            Cause::Cancellation {
                order_id: order_id.to_owned(),
            },
        );
        Ok(())
    }

    /// The seller shipped the order: it can no longer be cancelled (the quantity already
    /// dropped when it was placed).
    pub fn ship_order(&self, order_id: &str) -> Result<(), StockError> {
        let mut inner = self.state.inner.lock().unwrap();
        inner
            .orders
            .remove(order_id)
            .map(|_| ())
            .ok_or_else(|| StockError::UnknownOrder(order_id.to_owned()))
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
