//! The order webhooks each platform sends, in the platform's own format and signature:
//!
//! - [`shopify`]: `orders/create`, `orders/paid`, `orders/cancelled`, `orders/fulfilled`; the
//!   REST order resource as the body; `X-Shopify-Hmac-Sha256` = base64 HMAC-SHA256 of the raw
//!   body with the app's secret.
//! - [`amazon`]: `ORDER_CHANGE` notifications as an SQS message body or an EventBridge event,
//!   posted by a forwarder that signs the raw body with HMAC-SHA256 (hex) in a configurable
//!   header.
//! - [`tiktok`]: order status change (type 1) with `Authorization` = hex HMAC-SHA256 of
//!   `app_key + raw body` keyed with the app secret. The line items are read with Get Order
//!   Detail, which the TikTok sandbox serves.
//!
//! Ids are drawn from counters, not from the clock, so a seed's notifications are the same on
//! every run.

pub mod amazon;
pub mod shopify;
pub mod tiktok;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// HMAC-SHA256 of `parts` concatenated, keyed with `secret`.
pub(crate) fn hmac_sha256(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// A UUID-shaped id made from a number (version 4 layout, deterministic).
pub(crate) fn uuid_from(seed: u64, n: u64) -> String {
    let a = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n;
    let b = n.wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ seed;
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0xfff) as u16,
        (b >> 52) as u16 & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

/// RFC 3339 of a Unix time in milliseconds (UTC, milliseconds shown).
pub(crate) fn rfc3339_millis(unix_ms: i64) -> String {
    let instant = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .expect("a time within range");
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    instant.format(&format).expect("formats")
}

/// Now, in Unix milliseconds.
pub(crate) fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_times_have_the_platform_shapes() {
        let id = uuid_from(7, 1);
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_ne!(uuid_from(7, 1), uuid_from(7, 2));
        assert_eq!(
            rfc3339_millis(1_644_412_885_123),
            "2022-02-09T13:21:25.123Z"
        );
    }
}
