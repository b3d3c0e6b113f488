//! Shopify order webhooks: the REST `Order` resource as the body, posted with
//!
//! - `X-Shopify-Topic`: `orders/create`, `orders/paid`, `orders/cancelled`, `orders/fulfilled`
//! - `X-Shopify-Hmac-Sha256`: base64 of HMAC-SHA256(app secret, raw body)
//! - `X-Shopify-Shop-Domain`, `X-Shopify-API-Version`, `X-Shopify-Triggered-At`
//! - `X-Shopify-Webhook-Id`: one per delivery of a topic for an order (kept on retries and
//!   duplicate deliveries)
//! - `X-Shopify-Event-Id`: one per event (the same event delivered twice has the same id)

use axum::body::Bytes;
use base64::Engine;
use serde_json::{Value as Json, json};

use super::{hmac_sha256, rfc3339_millis, uuid_from};
use crate::delivery::Notification;

pub const ORDERS_CREATE: &str = "orders/create";
pub const ORDERS_PAID: &str = "orders/paid";
pub const ORDERS_CANCELLED: &str = "orders/cancelled";
pub const ORDERS_FULFILLED: &str = "orders/fulfilled";

/// What the shop's webhook subscription says about every delivery.
#[derive(Clone, Debug)]
pub struct ShopifyWebhooks {
    /// `<shop>.myshopify.com`.
    pub shop_domain: String,
    pub api_version: String,
    /// The app's client secret, which signs every body.
    pub secret: String,
    /// Seeds the ids.
    pub seed: u64,
}

/// An order of one line, as the buyers driver places them.
#[derive(Clone, Debug, PartialEq)]
pub struct ShopifyOrder {
    /// The numeric order id (`gid://shopify/Order/<id>`).
    pub id: u64,
    /// The shop's order number (`name` is `#<number>`).
    pub number: u64,
    pub line_item_id: u64,
    pub sku: String,
    pub variant_id: u64,
    pub product_id: u64,
    pub quantity: i64,
    /// The location the units were committed at (numeric).
    pub location_id: u64,
    pub created_at_ms: i64,
    pub unit_price_cents: i64,
}

/// What changed since the order was created.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrderState {
    pub paid: bool,
    /// When cancelled, the time and reason (`customer`, `inventory`, `fraud`, `declined`,
    /// `other`).
    pub cancelled: Option<(i64, String)>,
    pub fulfilled: bool,
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The order resource as the webhook body carries it (the fields that matter, named as in
/// the REST Admin API).
pub fn order_json(order: &ShopifyOrder, state: &OrderState, updated_at_ms: i64) -> Json {
    let total = money(order.unit_price_cents * order.quantity);
    let financial_status = match (&state.cancelled, state.paid) {
        (Some(_), true) => "refunded",
        (Some(_), false) => "voided",
        (None, true) => "paid",
        (None, false) => "pending",
    };
    let fulfillable = if state.fulfilled || state.cancelled.is_some() {
        0
    } else {
        order.quantity
    };
    json!({
        "id": order.id,
        "admin_graphql_api_id": format!("gid://shopify/Order/{}", order.id),
        "name": format!("#{}", order.number),
        "order_number": order.number,
        "email": format!("buyer{}@example.com", order.number),
        "created_at": rfc3339_millis(order.created_at_ms),
        "updated_at": rfc3339_millis(updated_at_ms),
        "processed_at": rfc3339_millis(order.created_at_ms),
        "currency": "USD",
        "total_price": total,
        "subtotal_price": total,
        "financial_status": financial_status,
        "fulfillment_status": if state.fulfilled { Json::from("fulfilled") } else { Json::Null },
        "cancelled_at": state.cancelled.as_ref().map(|(at, _)| rfc3339_millis(*at)),
        "cancel_reason": state.cancelled.as_ref().map(|(_, reason)| reason.clone()),
        "confirmed": true,
        "test": false,
        "source_name": "web",
        "location_id": Json::Null,
        "line_items": [{
            "id": order.line_item_id,
            "admin_graphql_api_id": format!("gid://shopify/LineItem/{}", order.line_item_id),
            "variant_id": order.variant_id,
            "product_id": order.product_id,
            "sku": order.sku,
            "title": order.sku,
            "quantity": order.quantity,
            "current_quantity": if state.cancelled.is_some() { 0 } else { order.quantity },
            "fulfillable_quantity": fulfillable,
            "fulfillment_service": "manual",
            "fulfillment_status": if state.fulfilled { Json::from("fulfilled") } else { Json::Null },
            "requires_shipping": true,
            "price": money(order.unit_price_cents),
            "gift_card": false,
            "origin_location": {"id": order.location_id},
        }],
    })
}

impl ShopifyWebhooks {
    /// The delivery of `topic` for `order` in `state`, event number `event` (unique per shop).
    pub fn notification(
        &self,
        topic: &str,
        order: &ShopifyOrder,
        state: &OrderState,
        event: u64,
        triggered_at_ms: i64,
    ) -> Notification {
        let body = serde_json::to_vec(&order_json(order, state, triggered_at_ms))
            .expect("JSON serialises");
        let signature =
            base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&self.secret, &[&body]));
        let headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("X-Shopify-Topic".to_owned(), topic.to_owned()),
            ("X-Shopify-Hmac-Sha256".to_owned(), signature),
            ("X-Shopify-Shop-Domain".to_owned(), self.shop_domain.clone()),
            ("X-Shopify-API-Version".to_owned(), self.api_version.clone()),
            (
                "X-Shopify-Webhook-Id".to_owned(),
                uuid_from(self.seed, event),
            ),
            (
                "X-Shopify-Event-Id".to_owned(),
                (9_800_000_000_000 + event).to_string(),
            ),
            (
                "X-Shopify-Triggered-At".to_owned(),
                rfc3339_millis(triggered_at_ms),
            ),
        ];
        Notification {
            topic: topic.to_owned(),
            subject: order.id.to_string(),
            headers,
            body: Bytes::from(body),
        }
    }
}

/// Whether `signature` (the header's value) signs `body` with `secret`: what a receiver checks.
pub fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(signature) else {
        return false;
    };
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    hmac::Mac::update(&mut mac, body);
    hmac::Mac::verify_slice(mac, &tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> ShopifyOrder {
        ShopifyOrder {
            id: 5_000_001,
            number: 1001,
            line_item_id: 6_000_001,
            sku: "HOT".into(),
            variant_id: 44_000_001,
            product_id: 8_000_001,
            quantity: 2,
            location_id: 70_001,
            created_at_ms: 1_700_000_000_000,
            unit_price_cents: 4_999,
        }
    }

    #[test]
    fn a_paid_order_is_signed_and_carries_its_line() {
        let hooks = ShopifyWebhooks {
            shop_domain: "demo.myshopify.com".into(),
            api_version: "2026-04".into(),
            secret: "shpss".into(),
            seed: 1,
        };
        let state = OrderState {
            paid: true,
            ..OrderState::default()
        };
        let n = hooks.notification(ORDERS_PAID, &order(), &state, 3, 1_700_000_001_000);
        let header = |name: &str| {
            n.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(header("X-Shopify-Topic"), "orders/paid");
        assert!(verify("shpss", &n.body, &header("X-Shopify-Hmac-Sha256")));
        assert!(!verify("other", &n.body, &header("X-Shopify-Hmac-Sha256")));
        let body: Json = serde_json::from_slice(&n.body).unwrap();
        assert_eq!(body["financial_status"], "paid");
        assert_eq!(body["line_items"][0]["sku"], "HOT");
        assert_eq!(body["line_items"][0]["quantity"], 2);
        assert_eq!(body["line_items"][0]["variant_id"], 44_000_001);
        let again = hooks.notification(ORDERS_PAID, &order(), &state, 3, 1_700_000_001_000);
        assert_eq!(again, n, "the same event is the same delivery");
    }

    #[test]
    fn a_cancelled_unpaid_order_is_voided() {
        let state = OrderState {
            cancelled: Some((1_700_000_002_000, "inventory".into())),
            ..OrderState::default()
        };
        let body = order_json(&order(), &state, 1_700_000_002_000);
        assert_eq!(body["financial_status"], "voided");
        assert_eq!(body["cancel_reason"], "inventory");
        assert_eq!(body["line_items"][0]["fulfillable_quantity"], 0);
    }
}
