//! Signatures, checked on the raw body before anything else is read or recorded, with the MAC
//! compared in constant time (`Mac::verify_slice`):
//!
//! - Shopify: `X-Shopify-Hmac-Sha256` = base64(HMAC-SHA256(app secret, body)).
//! - TikTok Shop: `Authorization` = hex(HMAC-SHA256(app secret, app_key + body)).
//! - Amazon: Amazon does not sign what reaches us; the merchant's forwarder (reading the SQS
//!   queue or the EventBridge bus) signs the body it posts: `<signature_header>: <prefix><hex
//!   HMAC-SHA256(secret, body)>`, by default `X-Stockflow-Signature: sha256=<hex>`.
//!
//! During a rotation the previous secret is tried after the current one, until its grace ends.
//! Errors say which check failed, never the secret or the signature.

use super::settings::{ChannelWebhook, Platform};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use stockflow_core::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {0} header is missing")]
    Missing(String),
    #[error("the {0} header is not a signature of this body")]
    Invalid(String),
}

impl VerifyError {
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Missing(_) => "missing_signature",
            VerifyError::Invalid(_) => "invalid_signature",
        }
    }
}

/// Checks the delivery's signature against the channel's secrets valid at `now`.
pub fn verify(
    webhook: &ChannelWebhook,
    headers: &axum::http::HeaderMap,
    body: &[u8],
    now: Timestamp,
) -> Result<(), VerifyError> {
    let header = match webhook.platform {
        Platform::Shopify => "x-shopify-hmac-sha256",
        Platform::Tiktok => "authorization",
        Platform::Amazon => webhook.signature_header.as_str(),
    };
    let missing = || VerifyError::Missing(header.to_owned());
    let invalid = || VerifyError::Invalid(header.to_owned());
    let value = headers
        .get(header)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| invalid())?
        .trim();
    if value.is_empty() {
        return Err(missing());
    }
    let tag = match webhook.platform {
        Platform::Shopify => base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| invalid())?,
        Platform::Tiktok => hex::decode(value).map_err(|_| invalid())?,
        Platform::Amazon => {
            let hex_part = value
                .strip_prefix(webhook.signature_prefix.as_str())
                .unwrap_or(value);
            hex::decode(hex_part).map_err(|_| invalid())?
        }
    };
    let prefix: &[u8] = match webhook.platform {
        Platform::Tiktok => webhook.app_key.as_deref().unwrap_or_default().as_bytes(),
        Platform::Shopify | Platform::Amazon => b"",
    };
    let signed_by = |secret: &str| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(prefix);
        mac.update(body);
        mac.verify_slice(&tag).is_ok()
    };
    if webhook
        .secrets(now)
        .into_iter()
        .any(|secret| signed_by(secret.expose()))
    {
        Ok(())
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderName, HeaderValue};
    use std::collections::HashMap;
    use stockflow_channels::config::Secret;
    use stockflow_core::ids::{ChannelId, TenantId};

    const NOW: Timestamp = Timestamp(1_800_000_000_000_000);

    fn webhook(platform: Platform, previous_until: Option<Timestamp>) -> ChannelWebhook {
        ChannelWebhook {
            channel: ChannelId::parse("c").unwrap(),
            tenant: TenantId::default_tenant(),
            platform,
            secret: Secret::new("new"),
            previous: previous_until.map(|until| (Secret::new("old"), until)),
            app_key: Some("key".into()),
            signature_header: HeaderName::from_static("x-stockflow-signature"),
            signature_prefix: "sha256=".into(),
            items: HashMap::new(),
            locations: HashMap::new(),
            sku_ids: HashMap::new(),
        }
    }

    fn mac(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::try_from(name).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    /// The result of verifying `body` signed as the platform signs, with `secret`.
    fn check(platform: Platform, secret: &str, previous_until: Option<Timestamp>) -> String {
        let body = br#"{"id":1}"#;
        let (name, value) = match platform {
            Platform::Shopify => (
                "X-Shopify-Hmac-Sha256",
                base64::engine::general_purpose::STANDARD.encode(mac(secret, &[body])),
            ),
            Platform::Tiktok => ("Authorization", hex::encode(mac(secret, &[b"key", body]))),
            Platform::Amazon => (
                "X-Stockflow-Signature",
                format!("sha256={}", hex::encode(mac(secret, &[body]))),
            ),
        };
        let webhook = webhook(platform, previous_until);
        match verify(&webhook, &headers(name, &value), body, NOW) {
            Ok(()) => "ok".into(),
            Err(error) => error.code().into(),
        }
    }

    #[test]
    fn each_platform_signs_its_own_way() {
        for platform in [Platform::Shopify, Platform::Tiktok, Platform::Amazon] {
            assert_eq!(check(platform, "new", None), "ok", "{platform:?}");
            assert_eq!(
                check(platform, "other", None),
                "invalid_signature",
                "{platform:?}"
            );
        }
    }

    #[test]
    fn the_previous_secret_holds_until_its_grace_ends() {
        let later = Some(NOW.plus_micros(1));
        assert_eq!(check(Platform::Shopify, "old", later), "ok");
        assert_eq!(
            check(Platform::Shopify, "old", Some(NOW)),
            "invalid_signature"
        );
        assert_eq!(check(Platform::Shopify, "old", None), "invalid_signature");
    }

    #[test]
    fn a_missing_or_garbled_header_is_refused() {
        let webhook = webhook(Platform::Shopify, None);
        let refused = |headers: &HeaderMap| verify(&webhook, headers, b"{}", NOW).unwrap_err();
        assert_eq!(refused(&HeaderMap::new()).code(), "missing_signature");
        assert_eq!(
            refused(&headers("X-Shopify-Hmac-Sha256", "not base64!")).code(),
            "invalid_signature"
        );
        // TikTok signs app_key + body: the body's MAC alone is not the signature.
        let tiktok = self::webhook(Platform::Tiktok, None);
        let body_only = hex::encode(mac("new", &[b"{}"]));
        let error = verify(&tiktok, &headers("Authorization", &body_only), b"{}", NOW);
        assert_eq!(error.unwrap_err().code(), "invalid_signature");
    }
}
