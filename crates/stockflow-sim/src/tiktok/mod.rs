//! The TikTok Shop sandbox: Partner API 202309 inventory update and inventory search.
//!
//! - [`sign`]: the request signature, public so adapter tests can check their signer against it.
//! - `inventory`: the two endpoints and their rules.
//!
//! Every call is signed: `app_key`, `timestamp`, `shop_cipher` and `sign` in the query,
//! `x-tts-access-token` in a header. Answers are `{"code", "message", "request_id", "data"}`;
//! code 0 is success. Gateway refusals (credentials, signature, timestamp, rate limit) come
//! with a 4xx status, business refusals with 200 and a non-zero code.

mod inventory;
pub mod orders;
pub mod sign;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value as Json, json};

use crate::catalogue::{TIKTOK_SKUS_PER_PRODUCT_MAX, TikTokCatalogue, check_unique};
use crate::clock::SimClock;
use crate::faults::{Draw, Fault, FaultInjector};
use crate::limits::{Admission, Bucket, RateLimit};
use crate::recorder::{Cause, ItemKey, Outcome, Recorder, ViolationKind};
use crate::server::{
    self, BodyError, CommonConfig, Core, HeldReply, ServerHandle, header, read_body, request_id,
};
use crate::{CatalogueError, SimError, StockError};

/// The gateway's code for invalid parameters, credentials, identifiers and timestamps.
pub const CODE_INVALID_REQUEST: u64 = 36009004;
/// An invalid `sign`.
pub const CODE_INVALID_SIGNATURE: u64 = 106001;
/// Too many requests.
pub const CODE_RATE_LIMITED: u64 = 36009002;
/// Internal error; retry later.
pub const CODE_INTERNAL: u64 = 36009003;
/// The most simulated orders remembered for cancellation.
pub const ORDERS_KEPT_MAX: usize = 100_000;
const FORCED_THROTTLE_WAIT: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct TikTokConfig {
    pub common: CommonConfig,
    pub catalogue: TikTokCatalogue,
    pub app_key: String,
    pub app_secret: String,
    /// The accepted `x-tts-access-token`.
    pub access_token: String,
    pub shop_cipher: String,
    /// How far `timestamp` may be from now (5 minutes).
    pub timestamp_tolerance: Duration,
    /// Requests per second per shop; TikTok does not publish it.
    pub rate_limit: RateLimit,
    /// The code for a multi-warehouse SKU that does not list every warehouse: 12052037, or
    /// 12019028 as other sources report.
    pub missing_warehouse_code: u64,
    /// The most ids an inventory search takes.
    pub search_ids_max: usize,
}

impl TikTokConfig {
    pub fn new(
        catalogue: TikTokCatalogue,
        app_key: &str,
        app_secret: &str,
        access_token: &str,
        shop_cipher: &str,
    ) -> Self {
        Self {
            common: CommonConfig::default(),
            catalogue,
            app_key: app_key.to_owned(),
            app_secret: app_secret.to_owned(),
            access_token: access_token.to_owned(),
            shop_cipher: shop_cipher.to_owned(),
            timestamp_tolerance: Duration::from_secs(300),
            rate_limit: RateLimit::new(10.0, 10.0),
            missing_warehouse_code: 12052037,
            search_ids_max: 100,
        }
    }
}

#[derive(Debug, Clone)]
struct Stock {
    warehouse_id: String,
    available: i64,
    committed: i64,
}

#[derive(Debug)]
struct Sku {
    id: String,
    seller_sku: String,
    stock: Vec<Stock>,
}

#[derive(Debug)]
struct Product {
    id: String,
    skus: Vec<Sku>,
}

#[derive(Debug)]
struct Inner {
    products: Vec<Product>,
    product_index: HashMap<String, usize>,
    /// SKU id -> (product, sku) positions.
    sku_index: HashMap<String, (usize, usize)>,
    bucket: Option<Bucket>,
    orders: HashMap<String, (usize, usize, usize, i64)>,
    orders_placed: u64,
    order_book: orders::OrderBook,
}

impl Inner {
    fn new(catalogue: &TikTokCatalogue) -> Result<Self, CatalogueError> {
        check_unique(
            "product",
            catalogue.products.iter().map(|p| p.product_id.as_str()),
        )?;
        check_unique(
            "sku id",
            catalogue
                .products
                .iter()
                .flat_map(|p| p.skus.iter().map(|s| s.id.as_str())),
        )?;
        let mut products = Vec::with_capacity(catalogue.products.len());
        for product in &catalogue.products {
            if product.skus.len() > TIKTOK_SKUS_PER_PRODUCT_MAX {
                return Err(CatalogueError(format!(
                    "product {} has more than 100 SKUs",
                    product.product_id
                )));
            }
            let skus = product
                .skus
                .iter()
                .map(|sku| Self::sku(catalogue, sku))
                .collect::<Result<_, _>>()?;
            products.push(Product {
                id: product.product_id.clone(),
                skus,
            });
        }
        let product_index = products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        let sku_index = products
            .iter()
            .enumerate()
            .flat_map(|(p, product)| {
                product
                    .skus
                    .iter()
                    .enumerate()
                    .map(move |(s, sku)| (sku.id.clone(), (p, s)))
            })
            .collect();
        Ok(Self {
            products,
            product_index,
            sku_index,
            bucket: None,
            orders: HashMap::new(),
            orders_placed: 0,
            order_book: orders::OrderBook::default(),
        })
    }

    fn sku(
        catalogue: &TikTokCatalogue,
        sku: &crate::catalogue::TikTokSku,
    ) -> Result<Sku, CatalogueError> {
        check_unique(
            "warehouse of a sku",
            sku.inventory.iter().map(|s| s.warehouse_id.as_str()),
        )?;
        if sku.inventory.is_empty() {
            return Err(CatalogueError(format!(
                "sku {} is stocked in no warehouse",
                sku.id
            )));
        }
        if let Some(unknown) = sku
            .inventory
            .iter()
            .find(|s| !catalogue.warehouse_ids.contains(&s.warehouse_id))
        {
            return Err(CatalogueError(format!(
                "sku {} is stocked in unknown warehouse {}",
                sku.id, unknown.warehouse_id
            )));
        }
        let stock = sku
            .inventory
            .iter()
            .map(|s| Stock {
                warehouse_id: s.warehouse_id.clone(),
                available: s.quantity,
                committed: 0,
            })
            .collect();
        Ok(Sku {
            id: sku.id.clone(),
            seller_sku: sku.seller_sku.clone(),
            stock,
        })
    }
}

#[derive(Debug)]
struct State {
    core: Core,
    config: TikTokConfig,
    inner: Mutex<Inner>,
}

type Shared = Arc<State>;

/// A TikTok answer: HTTP status and the envelope's code, message and data.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    code: u64,
    message: String,
    data: Json,
    outcome: Outcome,
}

impl Reply {
    fn success(data: Json) -> Self {
        Self {
            status: StatusCode::OK,
            code: 0,
            message: "Success".into(),
            data,
            outcome: Outcome::Ok,
        }
    }

    fn refused(code: u64, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::OK,
            code,
            message: message.into(),
            data: Json::Null,
            outcome: Outcome::Refused,
        }
    }

    fn gateway(
        status: StatusCode,
        code: u64,
        message: impl Into<String>,
        outcome: Outcome,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            data: Json::Null,
            outcome,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::gateway(
            StatusCode::BAD_REQUEST,
            CODE_INVALID_REQUEST,
            message,
            Outcome::Invalid,
        )
    }

    fn rate_limited() -> Self {
        Self::gateway(
            StatusCode::TOO_MANY_REQUESTS,
            CODE_RATE_LIMITED,
            "Too many requests. Please try again later.",
            Outcome::Throttled,
        )
    }

    fn server_error(unavailable: bool) -> Self {
        let status = if unavailable {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        Self::gateway(
            status,
            CODE_INTERNAL,
            "Internal error. Please try again later.",
            Outcome::ServerError,
        )
    }

    fn into_response(self) -> Response {
        let request_id = request_id();
        let body = json!({"code": self.code, "message": self.message, "request_id": request_id, "data": self.data});
        let mut response = (self.status, axum::Json(body)).into_response();
        let value = HeaderValue::from_str(&request_id).expect("uuid is a header value");
        response.headers_mut().insert("x-tt-logid", value);
        response
    }
}

impl HeldReply for Reply {
    fn held_unprocessed() -> Self {
        Self {
            outcome: Outcome::TimedOut,
            ..Self::server_error(true)
        }
    }

    fn timed_out(self) -> Self {
        Self {
            outcome: Outcome::TimedOut,
            ..self
        }
    }
}

/// A signed call that passed the gateway: its fault draw and body.
struct Admitted {
    draw: Draw,
    body: Bytes,
}

impl State {
    /// Records the call and renders the envelope.
    fn finish(&self, operation: &str, reply: Reply) -> Response {
        self.core.recorder.record_call(operation, reply.outcome);
        reply.into_response()
    }

    /// The gateway: faults, credentials, timestamp, signature, shop, rate limit, body.
    async fn gateway(
        &self,
        operation: &'static str,
        uri: &Uri,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Admitted, Reply> {
        let draw = self.core.faults.draw();
        match draw.fault {
            Fault::ServerError { unavailable } => return Err(Reply::server_error(unavailable)),
            Fault::Throttle => return Err(self.forced_throttle(operation)),
            Fault::None | Fault::Timeout { .. } => {}
        }
        let query = match Query::<Vec<(String, String)>>::try_from_uri(uri) {
            Ok(Query(pairs)) => pairs,
            Err(_) => return Err(Reply::invalid("Invalid query string.")),
        };
        let body = self.read(operation, headers, body).await?;
        self.check_credentials(&query)?;
        let signature = value(&query, "sign").unwrap_or_default();
        if !sign::verify(
            &self.config.app_secret,
            uri.path(),
            &query,
            &body,
            signature,
        ) {
            return Err(Reply::gateway(
                StatusCode::UNAUTHORIZED,
                CODE_INVALID_SIGNATURE,
                "Invalid signature.",
                Outcome::Unauthorized,
            ));
        }
        if header(headers, "x-tts-access-token") != Some(self.config.access_token.as_str()) {
            let message = "Invalid credentials. The `x-tts-access-token` header is invalid.";
            return Err(Reply::gateway(
                StatusCode::UNAUTHORIZED,
                CODE_INVALID_REQUEST,
                message,
                Outcome::Unauthorized,
            ));
        }
        if value(&query, "shop_cipher") != Some(self.config.shop_cipher.as_str()) {
            return Err(Reply::invalid(
                "Invalid identifier. The `shop_cipher` query parameter is invalid.",
            ));
        }
        self.admit(operation)?;
        Ok(Admitted { draw, body })
    }

    async fn read(&self, operation: &str, headers: &HeaderMap, body: Body) -> Result<Bytes, Reply> {
        let maximum = self.core.body_bytes_max;
        match read_body(headers, body, maximum).await {
            Ok(bytes) => Ok(bytes),
            Err(BodyError::TooLarge) => {
                self.core.recorder.record_violation(
                    operation,
                    ViolationKind::LimitExceeded,
                    format!("body above {maximum} bytes"),
                );
                Err(Reply {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    ..Reply::invalid("The request body is too large.")
                })
            }
            Err(BodyError::Unreadable) => {
                Err(Reply::invalid("The request body could not be read."))
            }
        }
    }

    /// `app_key`, `sign` and `timestamp` as TikTok's gateway checks them, before the signature.
    fn check_credentials(&self, query: &[(String, String)]) -> Result<(), Reply> {
        if value(query, "app_key") != Some(self.config.app_key.as_str()) {
            return Err(Reply {
                outcome: Outcome::Unauthorized,
                ..Reply::invalid("Invalid credentials. Invalid `app_key` query parameter.")
            });
        }
        if value(query, "sign").is_none_or(str::is_empty) {
            let message = "Missing credentials. The request does not include a required signature in the query.";
            return Err(Reply {
                outcome: Outcome::Unauthorized,
                ..Reply::invalid(message)
            });
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64;
        let tolerance = self.config.timestamp_tolerance.as_secs() as i64;
        match value(query, "timestamp").map(str::parse::<i64>) {
            Some(Ok(timestamp)) if (now - timestamp).abs() <= tolerance => Ok(()),
            _ => Err(Reply {
                outcome: Outcome::Unauthorized,
                ..Reply::invalid(format!(
                    "Invalid timestamp. The value of the `timestamp` query parameter must be within {tolerance} seconds of the current time."
                ))
            }),
        }
    }

    fn admit(&self, operation: &str) -> Result<(), Reply> {
        let now = self.core.clock.now();
        let admission = {
            let mut inner = self.inner.lock().unwrap();
            let bucket = inner
                .bucket
                .get_or_insert_with(|| Bucket::new(self.config.rate_limit, now));
            bucket.try_take(1.0, now)
        };
        match admission {
            Admission::Admitted => Ok(()),
            Admission::Rejected {
                retry_after,
                while_rejected,
            } => {
                self.note_rejection(operation, while_rejected, retry_after);
                Err(Reply::rate_limited())
            }
        }
    }

    fn forced_throttle(&self, operation: &str) -> Reply {
        let now = self.core.clock.now();
        let while_rejected = {
            let mut inner = self.inner.lock().unwrap();
            let bucket = inner
                .bucket
                .get_or_insert_with(|| Bucket::new(self.config.rate_limit, now));
            bucket.reject_for(FORCED_THROTTLE_WAIT, now)
        };
        self.note_rejection(operation, while_rejected, FORCED_THROTTLE_WAIT);
        Reply::rate_limited()
    }

    fn note_rejection(&self, operation: &str, while_rejected: bool, retry_after: Duration) {
        let recorder = &self.core.recorder;
        recorder.record_rejection(operation);
        if while_rejected {
            let detail =
                format!("called again while rate limited (capacity back in {retry_after:?})");
            recorder.record_violation(operation, ViolationKind::CalledWhileRejected, detail);
        }
    }

    fn record(&self, inner: &Inner, product: usize, sku: usize, warehouse: usize, cause: Cause) {
        let sku = &inner.products[product].skus[sku];
        let stock = &sku.stock[warehouse];
        let key = ItemKey::new(&sku.seller_sku, &stock.warehouse_id);
        self.core
            .recorder
            .record_quantity(key, self.core.clock.now(), stock.available, cause);
    }
}

fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn value<'q>(query: &'q [(String, String)], key: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// A running TikTok Shop sandbox.
#[derive(Debug)]
pub struct TikTokHandle {
    server: ServerHandle,
    state: Shared,
}

pub async fn start(config: TikTokConfig) -> Result<TikTokHandle, SimError> {
    let inner = Inner::new(&config.catalogue)?;
    let core = Core::new(&config.common);
    let state = Arc::new(State {
        core,
        config,
        inner: Mutex::new(inner),
    });
    {
        let inner = state.inner.lock().unwrap();
        for (p, product) in inner.products.iter().enumerate() {
            for (s, sku) in product.skus.iter().enumerate() {
                for w in 0..sku.stock.len() {
                    state.record(&inner, p, s, w, Cause::Seed);
                }
            }
        }
    }
    let router = Router::new()
        .route(
            "/product/202309/products/{product_id}/inventory/update",
            post(inventory::update),
        )
        .route("/product/202309/inventory/search", post(inventory::search))
        .route("/order/202309/orders", get(orders::get_order_detail))
        .fallback(not_found)
        .with_state(state.clone());
    let listener = server::bind().await?;
    let server = server::spawn(listener, router)?;
    Ok(TikTokHandle { server, state })
}

async fn not_found() -> Response {
    Reply::gateway(
        StatusCode::NOT_FOUND,
        36009009,
        "Invalid path.",
        Outcome::Invalid,
    )
    .into_response()
}

impl TikTokHandle {
    pub fn address(&self) -> SocketAddr {
        self.server.address()
    }

    /// What the adapter uses instead of `https://open-api.tiktokglobalshop.com`.
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

    /// The available quantity of a SKU id in a warehouse.
    pub fn quantity(&self, sku_id: &str, warehouse_id: &str) -> Option<i64> {
        let inner = self.state.inner.lock().unwrap();
        let &(product, sku) = inner.sku_index.get(sku_id)?;
        let stock = inner.products[product].skus[sku]
            .stock
            .iter()
            .find(|s| s.warehouse_id == warehouse_id)?;
        Some(stock.available)
    }

    /// A buyer orders: TikTok moves units from available to committed. Returns the order id.
    pub fn place_order(
        &self,
        sku_id: &str,
        warehouse_id: &str,
        units: i64,
    ) -> Result<String, StockError> {
        if units <= 0 {
            return Err(StockError::NonPositiveQuantity);
        }
        let mut inner = self.state.inner.lock().unwrap();
        let (product, sku, warehouse) = locate(&inner, sku_id, warehouse_id)?;
        let stock = &mut inner.products[product].skus[sku].stock[warehouse];
        if stock.available < units {
            return Err(StockError::NotEnough {
                available: stock.available,
                wanted: units,
            });
        }
        stock.available -= units;
        stock.committed += units;
        inner.orders_placed += 1;
        let order_id = format!("5770{:014}", inner.orders_placed);
        if inner.orders.len() < ORDERS_KEPT_MAX {
            inner
                .orders
                .insert(order_id.clone(), (product, sku, warehouse, units));
        }
        let now = unix_seconds();
        let detail = orders::OrderDetail {
            id: order_id.clone(),
            status: orders::OrderStatus::Unpaid,
            create_time: now,
            update_time: now,
            paid_time: None,
            warehouse_id: warehouse_id.to_owned(),
            product_id: inner.products[product].id.clone(),
            sku_id: sku_id.to_owned(),
            seller_sku: inner.products[product].skus[sku].seller_sku.clone(),
            units,
            first_line_item: 0,
        };
        inner.order_book.insert(detail);
        self.state.record(
            &inner,
            product,
            sku,
            warehouse,
            Cause::Order {
                order_id: order_id.clone(),
            },
        );
        Ok(order_id)
    }

    /// The order is cancelled: the units are available again.
    pub fn cancel_order(&self, order_id: &str) -> Result<(), StockError> {
        let mut inner = self.state.inner.lock().unwrap();
        let (product, sku, warehouse, units) = inner
            .orders
            .remove(order_id)
            .ok_or_else(|| StockError::UnknownOrder(order_id.to_owned()))?;
        let stock = &mut inner.products[product].skus[sku].stock[warehouse];
        stock.available += units;
        stock.committed -= units;
        let cancelled = orders::OrderStatus::Cancelled;
        inner
            .order_book
            .set_status(order_id, cancelled, unix_seconds());
        self.state.record(
            &inner,
            product,
            sku,
            warehouse,
            Cause::Cancellation {
                order_id: order_id.to_owned(),
            },
        );
        Ok(())
    }

    /// The buyer paid: the order awaits shipment.
    pub fn pay_order(&self, order_id: &str) -> Result<(), StockError> {
        let mut inner = self.state.inner.lock().unwrap();
        if !inner.orders.contains_key(order_id) {
            return Err(StockError::UnknownOrder(order_id.to_owned()));
        }
        let status = orders::OrderStatus::AwaitingShipment;
        inner
            .order_book
            .set_status(order_id, status, unix_seconds());
        Ok(())
    }

    /// The seller shipped the order: its units leave `committed`; it can no longer be cancelled.
    pub fn ship_order(&self, order_id: &str) -> Result<(), StockError> {
        let mut inner = self.state.inner.lock().unwrap();
        let (product, sku, warehouse, units) = inner
            .orders
            .remove(order_id)
            .ok_or_else(|| StockError::UnknownOrder(order_id.to_owned()))?;
        inner.products[product].skus[sku].stock[warehouse].committed -= units;
        let status = orders::OrderStatus::InTransit;
        inner
            .order_book
            .set_status(order_id, status, unix_seconds());
        Ok(())
    }

    /// An order's status as Get Order Detail reports it.
    pub fn order_status(&self, order_id: &str) -> Option<orders::OrderStatus> {
        let inner = self.state.inner.lock().unwrap();
        inner.order_book.get(order_id).map(|detail| detail.status)
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

fn locate(
    inner: &Inner,
    sku_id: &str,
    warehouse_id: &str,
) -> Result<(usize, usize, usize), StockError> {
    let unknown = || StockError::UnknownItem(format!("{sku_id} in {warehouse_id}"));
    let &(product, sku) = inner.sku_index.get(sku_id).ok_or_else(unknown)?;
    let stock = &inner.products[product].skus[sku].stock;
    let warehouse = stock
        .iter()
        .position(|s| s.warehouse_id == warehouse_id)
        .ok_or_else(unknown)?;
    Ok((product, sku, warehouse))
}
