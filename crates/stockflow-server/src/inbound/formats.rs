//! Each platform's webhook format, read in two steps, both pure:
//!
//! - [`delivery`], when a verified webhook arrives: the id it is deduplicated on and its topic,
//!   and whether the body is the platform's format at all. Shopify names both in headers
//!   (`X-Shopify-Event-Id`, else `X-Shopify-Webhook-Id`; `X-Shopify-Topic`); Amazon's
//!   notification in its body (`NotificationMetadata.NotificationId`, `NotificationType`), as the
//!   SQS message body, inside an SNS or SQS envelope, or as EventBridge's `detail`; TikTok in its
//!   body (`tts_notification_id`, `type`).
//! - [`notice`], when the processor takes the row: what the webhook says about an order (placed,
//!   paid, cancelled, fulfilled; its lines) or an inventory level.
//!
//! Shopify order topics carry the REST order (`id`, `line_items[].sku/quantity`,
//! `financial_status`, `cancelled_at`, `fulfillments`); `inventory_levels/update` carries
//! `{inventory_item_id, location_id, available}`. Amazon's `ORDER_CHANGE` has
//! `Payload.OrderChangeNotification {AmazonOrderId, Summary {OrderStatus, OrderItems[]
//! {SellerSKU, Quantity, QuantityShipped}}}`. TikTok's order status change (type 1) has
//! `data {order_id, order_status}` and no lines.

use super::settings::Platform;
use axum::http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The longest platform event id or order id kept.
pub const PLATFORM_ID_LENGTH_MAX: usize = 96;
/// The most lines one order may have (the ledger's limit on a reservation).
const ORDER_LINES_MAX: usize = stockflow_core::command::RESERVATION_LINES_MAX;

/// What the accept step records of a verified webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The platform's id of the event: the same event delivered again has the same one.
    pub event_id: String,
    pub topic: String,
    /// Why the body is not the platform's format, when it is not: the row is recorded
    /// quarantined (the platform would retry a refusal for days) instead of processed.
    pub malformed: Option<String>,
}

/// A webhook refused with 400: not what the platform sends, and nothing a retry would fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub code: &'static str,
    pub detail: String,
}

impl Malformed {
    fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

/// What processing a webhook acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Order(OrderNotice),
    /// A channel-side inventory level changed (Shopify): a trigger to re-read, not a value.
    InventoryLevel {
        inventory_item_id: String,
        location_id: String,
        available: Option<i64>,
    },
    /// A topic or status stockflow does not act on; the reason is recorded.
    Ignored(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStep {
    /// Placed, not paid: a provisional reservation.
    Placed,
    /// Paid (or payment authorised): the reservation is confirmed.
    Paid,
    Cancelled,
    /// Shipped: matched against the warehouse's picks.
    Fulfilled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderNotice {
    pub order_id: String,
    pub step: OrderStep,
    /// The platform's own word for the order's state, for the record.
    pub status: String,
    /// The ordered lines, SKUs summed; None when the webhook carries none (TikTok).
    pub lines: Option<Vec<OrderLine>>,
    /// Units shipped per SKU, for a fulfilment; None: every ordered unit.
    pub shipped: Option<Vec<OrderLine>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    /// The merchant's SKU as the channel knows it; None for a line without one.
    pub sku: Option<String>,
    /// The channel's own id of the SKU (TikTok), to look the SKU up when `sku` is missing.
    pub sku_id: Option<String>,
    pub quantity: i64,
}

/// Reads what the accept step needs; `Err` is answered 400 and nothing is recorded.
pub fn delivery(
    platform: Platform,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Delivery, Malformed> {
    match platform {
        Platform::Shopify => shopify_delivery(headers, body),
        Platform::Amazon => amazon_delivery(body),
        Platform::Tiktok => Ok(tiktok_delivery(body)),
    }
}

/// Reads what processing acts on; `Err` says why the body is not the platform's format.
pub fn notice(platform: Platform, topic: &str, body: &[u8]) -> Result<Notice, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|error| format!("not JSON: {error}"))?;
    match platform {
        Platform::Shopify => shopify_notice(topic, &value),
        Platform::Amazon => amazon_notice(&unwrap_amazon(value).0),
        Platform::Tiktok => tiktok_notice(&value),
    }
}

// ---------------------------------------------------------------------------------------------
// Shopify

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

fn shopify_delivery(headers: &HeaderMap, body: &[u8]) -> Result<Delivery, Malformed> {
    let topic = header(headers, "x-shopify-topic")
        .ok_or_else(|| Malformed::new("missing_header", "X-Shopify-Topic is required"))?;
    let event_id = header(headers, "x-shopify-event-id")
        .or_else(|| header(headers, "x-shopify-webhook-id"))
        .ok_or_else(|| {
            Malformed::new(
                "missing_header",
                "X-Shopify-Event-Id (or X-Shopify-Webhook-Id) is required",
            )
        })?;
    let event_id = platform_id(event_id)
        .ok_or_else(|| Malformed::new("invalid_header", "the event id is not a valid id"))?;
    if topic.len() > PLATFORM_ID_LENGTH_MAX {
        return Err(Malformed::new(
            "invalid_header",
            "X-Shopify-Topic is too long",
        ));
    }
    Ok(Delivery {
        event_id,
        topic: topic.to_owned(),
        malformed: notice(Platform::Shopify, topic, body).err(),
    })
}

fn shopify_notice(topic: &str, order: &Value) -> Result<Notice, String> {
    let step = match topic {
        "orders/create" => shopify_created_step(order),
        "orders/paid" => OrderStep::Paid,
        "orders/cancelled" => OrderStep::Cancelled,
        "orders/fulfilled" => OrderStep::Fulfilled,
        "inventory_levels/update" => return shopify_inventory_level(order),
        "refunds/create" => {
            return Ok(Notice::Ignored(
                "refunds/create: returned units reach the ledger as the warehouse's returned \
                 events"
                    .to_owned(),
            ));
        }
        other => return Ok(Notice::Ignored(format!("topic {other}"))),
    };
    let order_id = order
        .get("id")
        .and_then(text)
        .and_then(|id| platform_id(&id))
        .ok_or("the order has no valid id")?;
    let items = order
        .get("line_items")
        .and_then(Value::as_array)
        .ok_or("the order has no line_items")?;
    let mut lines = Vec::with_capacity(items.len());
    for item in items {
        let quantity = item
            .get("quantity")
            .and_then(Value::as_i64)
            .filter(|q| *q >= 0)
            .ok_or("a line item has no valid quantity")?;
        let sku = item.get("sku").and_then(text).filter(|s| !s.is_empty());
        add_line(&mut lines, sku, None, quantity);
    }
    check_lines(&lines)?;
    let shipped = (step == OrderStep::Fulfilled).then(|| shopify_shipped(order, items));
    Ok(Notice::Order(OrderNotice {
        order_id,
        step,
        status: order
            .get("financial_status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        lines: Some(lines),
        shipped,
    }))
}

/// An order may be created paid, or already cancelled.
fn shopify_created_step(order: &Value) -> OrderStep {
    let cancelled = order.get("cancelled_at").is_some_and(|at| !at.is_null());
    let status = order.get("financial_status").and_then(Value::as_str);
    if cancelled {
        OrderStep::Cancelled
    } else if matches!(status, Some("paid" | "authorized" | "partially_paid")) {
        OrderStep::Paid
    } else {
        OrderStep::Placed
    }
}

/// Units shipped: the fulfilments' lines when listed, else what each line no longer has to
/// fulfil.
fn shopify_shipped(order: &Value, items: &[Value]) -> Vec<OrderLine> {
    let mut shipped = Vec::new();
    let fulfillments = order
        .get("fulfillments")
        .and_then(Value::as_array)
        .filter(|f| !f.is_empty());
    if let Some(fulfillments) = fulfillments {
        for fulfillment in fulfillments {
            let status = fulfillment.get("status").and_then(Value::as_str);
            if matches!(status, Some("cancelled" | "failure" | "error")) {
                continue;
            }
            for item in fulfillment
                .get("line_items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let quantity = item.get("quantity").and_then(Value::as_i64).unwrap_or(0);
                let sku = item.get("sku").and_then(text).filter(|s| !s.is_empty());
                add_line(&mut shipped, sku, None, quantity.max(0));
            }
        }
        return shipped;
    }
    for item in items {
        let quantity = item.get("quantity").and_then(Value::as_i64).unwrap_or(0);
        let fulfilled = match item.get("fulfillable_quantity").and_then(Value::as_i64) {
            _ if item.get("fulfillment_status").and_then(Value::as_str) == Some("fulfilled") => {
                item.get("current_quantity")
                    .and_then(Value::as_i64)
                    .unwrap_or(quantity)
            }
            Some(fulfillable) => quantity - fulfillable,
            None => quantity,
        };
        let sku = item.get("sku").and_then(text).filter(|s| !s.is_empty());
        add_line(&mut shipped, sku, None, fulfilled.max(0));
    }
    shipped
}

fn shopify_inventory_level(level: &Value) -> Result<Notice, String> {
    let inventory_item_id = level
        .get("inventory_item_id")
        .and_then(text)
        .ok_or("inventory_item_id is missing")?;
    let location_id = level
        .get("location_id")
        .and_then(text)
        .ok_or("location_id is missing")?;
    Ok(Notice::InventoryLevel {
        inventory_item_id,
        location_id,
        available: level.get("available").and_then(Value::as_i64),
    })
}

// ---------------------------------------------------------------------------------------------
// Amazon

fn amazon_delivery(body: &[u8]) -> Result<Delivery, Malformed> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| Malformed::new("malformed_notification", format!("not JSON: {error}")))?;
    let (notification, envelope_id) = unwrap_amazon(value);
    let event_id = notification
        .pointer("/NotificationMetadata/NotificationId")
        .and_then(text)
        .or(envelope_id)
        .and_then(|id| platform_id(&id))
        .ok_or_else(|| {
            Malformed::new(
                "malformed_notification",
                "NotificationMetadata.NotificationId is missing",
            )
        })?;
    let topic = notification
        .get("NotificationType")
        .and_then(Value::as_str)
        .ok_or_else(|| Malformed::new("malformed_notification", "NotificationType is missing"))?
        .to_owned();
    // The forwarder is the merchant's: a 4xx tells it to dead-letter the message rather than
    // retry it, so a notification that cannot be read is refused, not kept.
    amazon_notice(&notification)
        .map_err(|detail| Malformed::new("malformed_notification", detail))?;
    Ok(Delivery {
        event_id,
        topic,
        malformed: None,
    })
}

/// The notification inside whatever carried it: an EventBridge event (`detail`), an SNS
/// envelope (`Message`, a JSON string) or an SQS message (`Body`); with the envelope's id.
fn unwrap_amazon(mut value: Value) -> (Value, Option<String>) {
    let mut envelope_id = None;
    for _ in 0..3 {
        if value.get("NotificationType").is_some() {
            break;
        }
        if let Some(detail) = value.get("detail").filter(|d| d.is_object()).cloned() {
            envelope_id = value.get("id").and_then(text);
            let detail_type = value.get("detail-type").cloned();
            value = detail;
            if let (Some(kind), Value::Object(map)) = (detail_type, &mut value) {
                map.entry("NotificationType").or_insert(kind);
            }
            continue;
        }
        let inner = ["Message", "Body", "body"]
            .iter()
            .find_map(|key| value.get(*key).and_then(Value::as_str))
            .and_then(|text| serde_json::from_str::<Value>(text).ok());
        match inner {
            Some(inner) => {
                envelope_id = value
                    .get("MessageId")
                    .or(value.get("messageId"))
                    .and_then(text);
                value = inner;
            }
            None => break,
        }
    }
    (value, envelope_id)
}

fn amazon_notice(notification: &Value) -> Result<Notice, String> {
    let kind = notification
        .get("NotificationType")
        .and_then(Value::as_str)
        .ok_or("NotificationType is missing")?;
    if kind != "ORDER_CHANGE" {
        return Ok(Notice::Ignored(format!("notification type {kind}")));
    }
    let change = notification
        .pointer("/Payload/OrderChangeNotification")
        .ok_or("Payload.OrderChangeNotification is missing")?;
    let order_id = change
        .get("AmazonOrderId")
        .and_then(text)
        .and_then(|id| platform_id(&id))
        .ok_or("AmazonOrderId is missing")?;
    let summary = change.get("Summary").ok_or("Summary is missing")?;
    let status = summary
        .get("OrderStatus")
        .and_then(Value::as_str)
        .ok_or("Summary.OrderStatus is missing")?;
    let step = match status {
        "Pending" | "PendingAvailability" => OrderStep::Placed,
        "Unshipped" | "PartiallyShipped" | "InvoiceUnconfirmed" => OrderStep::Paid,
        "Shipped" => OrderStep::Fulfilled,
        "Canceled" | "Cancelled" => OrderStep::Cancelled,
        other => return Ok(Notice::Ignored(format!("order status {other}"))),
    };
    let items = summary
        .get("OrderItems")
        .and_then(Value::as_array)
        .ok_or("Summary.OrderItems is missing")?;
    let mut lines = Vec::with_capacity(items.len());
    let mut shipped = Vec::new();
    for item in items {
        let sku = item
            .get("SellerSKU")
            .and_then(text)
            .filter(|s| !s.is_empty());
        let quantity = item
            .get("Quantity")
            .and_then(Value::as_i64)
            .filter(|q| *q >= 0)
            .ok_or("an order item has no valid Quantity")?;
        let units_shipped = item
            .get("QuantityShipped")
            .and_then(Value::as_i64)
            .unwrap_or(quantity);
        add_line(&mut lines, sku.clone(), None, quantity);
        add_line(&mut shipped, sku, None, units_shipped.max(0));
    }
    check_lines(&lines)?;
    Ok(Notice::Order(OrderNotice {
        order_id,
        step,
        status: status.to_owned(),
        lines: Some(lines),
        shipped: (step == OrderStep::Fulfilled).then_some(shipped),
    }))
}

// ---------------------------------------------------------------------------------------------
// TikTok Shop

/// TikTok retries a refused webhook for 72 hours: a body that is not its format is kept
/// (quarantined) rather than refused. Without a notification id the body's hash stands in, so
/// that the retries are duplicates.
fn tiktok_delivery(body: &[u8]) -> Delivery {
    let hashed = || format!("sha256:{}", hex::encode(Sha256::digest(body)));
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Delivery {
            event_id: hashed(),
            topic: "unreadable".to_owned(),
            malformed: Some("not JSON".to_owned()),
        };
    };
    let topic = value
        .get("type")
        .and_then(text)
        .map_or_else(|| "unknown".to_owned(), |kind| format!("type:{kind}"));
    let event_id = value
        .get("tts_notification_id")
        .and_then(text)
        .and_then(|id| platform_id(&id));
    match event_id {
        Some(event_id) => Delivery {
            event_id,
            malformed: tiktok_notice(&value).err(),
            topic,
        },
        None => Delivery {
            event_id: hashed(),
            topic,
            malformed: Some("tts_notification_id is missing".to_owned()),
        },
    }
}

fn tiktok_notice(webhook: &Value) -> Result<Notice, String> {
    let kind = webhook
        .get("type")
        .and_then(Value::as_u64)
        .ok_or("type is missing")?;
    if kind != 1 {
        return Ok(Notice::Ignored(format!("webhook type {kind}")));
    }
    let data = webhook.get("data").ok_or("data is missing")?;
    let order_id = data
        .get("order_id")
        .and_then(text)
        .and_then(|id| platform_id(&id))
        .ok_or("data.order_id is missing")?;
    let status = data
        .get("order_status")
        .and_then(Value::as_str)
        .ok_or("data.order_status is missing")?;
    let Some(step) = tiktok_step(status) else {
        return Ok(Notice::Ignored(format!("order status {status}")));
    };
    Ok(Notice::Order(OrderNotice {
        order_id,
        step,
        status: status.to_owned(),
        lines: None,
        shipped: None,
    }))
}

/// TikTok's order statuses (the webhook says `CANCEL`, Get Order Detail `CANCELLED`).
pub fn tiktok_step(status: &str) -> Option<OrderStep> {
    match status {
        "UNPAID" => Some(OrderStep::Placed),
        "ON_HOLD" | "AWAITING_SHIPMENT" | "PARTIALLY_SHIPPING" | "AWAITING_COLLECTION" => {
            Some(OrderStep::Paid)
        }
        "IN_TRANSIT" | "DELIVERED" | "COMPLETED" => Some(OrderStep::Fulfilled),
        "CANCEL" | "CANCELLED" => Some(OrderStep::Cancelled),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Shared

/// A string, or a number written as one (order ids are numbers in Shopify's JSON).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// An id we keep and build reservation ids from: printable ASCII, no spaces, bounded.
fn platform_id(id: &str) -> Option<String> {
    let valid = !id.is_empty()
        && id.len() <= PLATFORM_ID_LENGTH_MAX
        && id.chars().all(|c| c.is_ascii_graphic());
    valid.then(|| id.to_owned())
}

/// Adds units of a SKU to the lines, one line per SKU; zero units add nothing.
pub fn add_line(
    lines: &mut Vec<OrderLine>,
    sku: Option<String>,
    sku_id: Option<String>,
    quantity: i64,
) {
    if quantity == 0 {
        return;
    }
    match lines
        .iter_mut()
        .find(|line| line.sku == sku && line.sku_id == sku_id)
    {
        Some(line) => line.quantity += quantity,
        None => lines.push(OrderLine {
            sku,
            sku_id,
            quantity,
        }),
    }
}

fn check_lines(lines: &[OrderLine]) -> Result<(), String> {
    if lines.len() > ORDER_LINES_MAX {
        return Err(format!(
            "{} lines; an order has at most {ORDER_LINES_MAX}",
            lines.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shopify(topic: &str, body: Value) -> Result<Notice, String> {
        notice(
            Platform::Shopify,
            topic,
            &serde_json::to_vec(&body).unwrap(),
        )
    }

    fn order(notice: Result<Notice, String>) -> OrderNotice {
        match notice {
            Ok(Notice::Order(order)) => order,
            other => panic!("not an order: {other:?}"),
        }
    }

    fn line(sku: &str, quantity: i64) -> OrderLine {
        OrderLine {
            sku: Some(sku.into()),
            sku_id: None,
            quantity,
        }
    }

    #[test]
    fn shopify_orders_by_topic_and_state() {
        let body = json!({"id": 820982911946154508u64, "financial_status": "pending",
            "cancelled_at": null, "line_items": [
                {"sku": "A", "quantity": 2}, {"sku": "A", "quantity": 1},
                {"sku": null, "quantity": 1}, {"sku": "B", "quantity": 0}]});
        let created = order(shopify("orders/create", body.clone()));
        assert_eq!(created.order_id, "820982911946154508");
        assert_eq!(created.step, OrderStep::Placed);
        assert_eq!(
            created.lines,
            Some(vec![
                line("A", 3),
                OrderLine {
                    sku: None,
                    sku_id: None,
                    quantity: 1
                }
            ])
        );
        assert_eq!(
            order(shopify("orders/paid", body.clone())).step,
            OrderStep::Paid
        );
        let mut paid = body.clone();
        paid["financial_status"] = json!("paid");
        assert_eq!(order(shopify("orders/create", paid)).step, OrderStep::Paid);
        let mut cancelled = body;
        cancelled["cancelled_at"] = json!("2026-11-28T01:00:00Z");
        assert_eq!(
            order(shopify("orders/create", cancelled.clone())).step,
            OrderStep::Cancelled
        );
        assert_eq!(
            order(shopify("orders/cancelled", cancelled)).step,
            OrderStep::Cancelled
        );
    }

    #[test]
    fn shopify_fulfilment_counts_shipped_units() {
        let listed = json!({"id": 1, "line_items": [{"sku": "A", "quantity": 3}],
            "fulfillments": [{"status": "success", "line_items": [{"sku": "A", "quantity": 2}]},
                             {"status": "cancelled", "line_items": [{"sku": "A", "quantity": 1}]}]});
        let fulfilled = order(shopify("orders/fulfilled", listed));
        assert_eq!(fulfilled.shipped, Some(vec![line("A", 2)]));
        let unlisted = json!({"id": 1, "line_items": [
            {"sku": "A", "quantity": 3, "fulfillable_quantity": 1},
            {"sku": "B", "quantity": 1, "fulfillment_status": "fulfilled", "fulfillable_quantity": 0}]});
        let fulfilled = order(shopify("orders/fulfilled", unlisted));
        assert_eq!(fulfilled.shipped, Some(vec![line("A", 2), line("B", 1)]));
    }

    #[test]
    fn shopify_other_topics_and_bad_bodies() {
        assert_eq!(
            shopify(
                "inventory_levels/update",
                json!({"inventory_item_id": 40000001, "location_id": 70001, "available": 7})
            ),
            Ok(Notice::InventoryLevel {
                inventory_item_id: "40000001".into(),
                location_id: "70001".into(),
                available: Some(7)
            })
        );
        assert!(matches!(
            shopify("products/update", json!({})),
            Ok(Notice::Ignored(_))
        ));
        assert!(shopify("orders/create", json!({"id": 1})).is_err());
        assert!(shopify("orders/create", json!({"line_items": []})).is_err());
        assert!(
            shopify(
                "orders/create",
                json!({"id": 1, "line_items": [{"sku": "A", "quantity": -1}]})
            )
            .is_err()
        );
        assert!(notice(Platform::Shopify, "orders/create", b"not json").is_err());
    }

    fn amazon_notification(status: &str) -> Value {
        json!({"NotificationVersion": "1.0", "NotificationType": "ORDER_CHANGE",
            "Payload": {"OrderChangeNotification": {"AmazonOrderId": "113-0000001-5550001",
                "OrderChangeType": "OrderStatusChange",
                "Summary": {"OrderStatus": status, "OrderItems": [
                    {"SellerSKU": "A", "Quantity": 2, "QuantityShipped": 1}]}}},
            "NotificationMetadata": {"NotificationId": "d0e9e693-c3ad-4373-979f-ed4ec98dd746"}})
    }

    #[test]
    fn amazon_order_change_in_every_envelope() {
        let bare = amazon_notification("Unshipped");
        let sns = json!({"Type": "Notification", "MessageId": "m1",
                         "Message": bare.to_string()});
        let eventbridge = json!({"version": "0", "id": "e1", "detail-type": "ORDER_CHANGE",
                                 "detail": bare.clone()});
        for body in [bare, sns, eventbridge] {
            let bytes = serde_json::to_vec(&body).unwrap();
            let delivery = delivery(Platform::Amazon, &HeaderMap::new(), &bytes).unwrap();
            assert_eq!(delivery.event_id, "d0e9e693-c3ad-4373-979f-ed4ec98dd746");
            assert_eq!(delivery.topic, "ORDER_CHANGE");
            let order = order(notice(Platform::Amazon, &delivery.topic, &bytes));
            assert_eq!(order.order_id, "113-0000001-5550001");
            assert_eq!(order.step, OrderStep::Paid);
            assert_eq!(order.lines, Some(vec![line("A", 2)]));
        }
        let shipped = serde_json::to_vec(&amazon_notification("Shipped")).unwrap();
        let shipped = order(notice(Platform::Amazon, "ORDER_CHANGE", &shipped));
        assert_eq!(shipped.step, OrderStep::Fulfilled);
        assert_eq!(shipped.shipped, Some(vec![line("A", 1)]));
    }

    #[test]
    fn amazon_refuses_what_it_cannot_read() {
        let refused = |body: &[u8]| delivery(Platform::Amazon, &HeaderMap::new(), body);
        assert_eq!(refused(b"{").unwrap_err().code, "malformed_notification");
        let mut no_id = amazon_notification("Pending");
        no_id["NotificationMetadata"] = json!({});
        assert!(refused(&serde_json::to_vec(&no_id).unwrap()).is_err());
        let mut no_summary = amazon_notification("Pending");
        no_summary["Payload"]["OrderChangeNotification"]["Summary"] = Value::Null;
        assert!(refused(&serde_json::to_vec(&no_summary).unwrap()).is_err());
    }

    #[test]
    fn tiktok_status_changes_and_quarantined_bodies() {
        let body = json!({"type": 1, "tts_notification_id": "7327112393057371910",
            "shop_id": "7494049642642441621", "timestamp": 1644412885,
            "data": {"order_id": "576486316948490001", "order_status": "CANCEL",
                     "update_time": 1644412885}});
        let bytes = serde_json::to_vec(&body).unwrap();
        let delivery = delivery(Platform::Tiktok, &HeaderMap::new(), &bytes).unwrap();
        assert_eq!(delivery.event_id, "7327112393057371910");
        assert_eq!(delivery.malformed, None);
        let order = order(notice(Platform::Tiktok, &delivery.topic, &bytes));
        assert_eq!(order.step, OrderStep::Cancelled);
        assert_eq!(order.lines, None);

        let garbage = super::delivery(Platform::Tiktok, &HeaderMap::new(), b"<xml/>").unwrap();
        assert!(garbage.event_id.starts_with("sha256:"));
        assert!(garbage.malformed.is_some());
        let again = super::delivery(Platform::Tiktok, &HeaderMap::new(), b"<xml/>").unwrap();
        assert_eq!(again.event_id, garbage.event_id, "a retry is the same row");
    }
}
