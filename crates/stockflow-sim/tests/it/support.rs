//! Shared test helpers: an HTTP client and small conveniences.

use std::sync::Once;
use std::time::Duration;

pub use serde_json::{Value as Json, json};

/// A client with a short timeout; installs rustls' ring provider once per process.
pub fn client() -> reqwest::Client {
    client_with_timeout(Duration::from_secs(10))
}

pub fn client_with_timeout(timeout: Duration) -> reqwest::Client {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("client builds")
}

/// Status and JSON body of a response.
pub async fn read(response: reqwest::Response) -> (u16, Json) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body reads");
    let body = serde_json::from_str(&text).unwrap_or(Json::String(text));
    (status, body)
}
