//! The webhook receiver: signed deliveries are recorded per SKU, bad signatures refused; and
//! the seeded faults every sandbox shares.

use std::time::Duration;

use stockflow_sim::webhook::{self, WebhookConfig, WebhookHandle};
use stockflow_sim::{FaultConfig, Outcome};

use crate::support::{client, json};

const SECRET: &str = "whsec_sandbox";

async fn post(handle: &WebhookHandle, header: (&str, String), body: &str) -> u16 {
    let request = client()
        .post(handle.url())
        .header(header.0, header.1)
        .header("content-type", "application/json")
        .body(body.to_owned());
    request
        .send()
        .await
        .expect("receiver answers")
        .status()
        .as_u16()
}

fn signed(body: &str) -> (&'static str, String) {
    (
        "X-Stockflow-Signature",
        format!("sha256={}", webhook::sign(SECRET, body.as_bytes())),
    )
}

#[tokio::test]
async fn signed_deliveries_are_recorded_per_sku() {
    let handle = webhook::start(WebhookConfig::new(SECRET)).await.unwrap();
    let one = json!({"sku": "SKU-1", "quantity": 5}).to_string();
    assert_eq!(post(&handle, signed(&one), &one).await, 200);
    let many = json!({"items": [{"sku": "SKU-1", "quantity": 4, "location": "east"}, {"sku": "SKU-2", "quantity": 0}]}).to_string();
    assert_eq!(post(&handle, signed(&many), &many).await, 200);
    assert_eq!(handle.told("SKU-1", ""), Some(5));
    assert_eq!(handle.told("SKU-1", "east"), Some(4));
    assert_eq!(handle.told("SKU-2", ""), Some(0));
    assert_eq!(handle.deliveries().len(), 2);
    assert_eq!(handle.recorder().call_count("webhook", Outcome::Ok), 2);
}

#[tokio::test]
async fn a_bad_signature_is_refused_with_401() {
    let handle = webhook::start(WebhookConfig::new(SECRET)).await.unwrap();
    let body = json!({"sku": "SKU-1", "quantity": 5}).to_string();
    let forged = (
        "X-Stockflow-Signature",
        format!("sha256={}", webhook::sign("other", body.as_bytes())),
    );
    assert_eq!(post(&handle, forged, &body).await, 401);
    let unprefixed = (
        "X-Stockflow-Signature",
        webhook::sign(SECRET, body.as_bytes()),
    );
    assert_eq!(post(&handle, unprefixed, &body).await, 401);
    assert_eq!(post(&handle, ("X-Other", "x".into()), &body).await, 401);
    let tampered = json!({"sku": "SKU-1", "quantity": 50}).to_string();
    assert_eq!(post(&handle, signed(&body), &tampered).await, 401);
    assert_eq!(handle.told("SKU-1", ""), None);
    assert_eq!(
        handle
            .recorder()
            .call_count("webhook", Outcome::Unauthorized),
        4
    );
}

#[tokio::test]
async fn the_header_and_prefix_are_configurable() {
    let mut config = WebhookConfig::new(SECRET);
    config.signature_header = "X-Hub-Signature".into();
    config.signature_prefix = String::new();
    let handle = webhook::start(config).await.unwrap();
    let body = json!({"sku": "SKU-9", "quantity": 1}).to_string();
    let header = ("X-Hub-Signature", webhook::sign(SECRET, body.as_bytes()));
    assert_eq!(post(&handle, header, &body).await, 200);
    assert_eq!(handle.told("SKU-9", ""), Some(1));
}

#[tokio::test]
async fn malformed_deliveries_are_refused() {
    let handle = webhook::start(WebhookConfig::new(SECRET)).await.unwrap();
    for body in [
        "not json",
        r#"{"sku": "A"}"#,
        r#"{"sku": "", "quantity": 1}"#,
        r#"{"items": []}"#,
    ] {
        assert_eq!(post(&handle, signed(body), body).await, 400, "{body}");
    }
    assert!(handle.deliveries().is_empty());
}

async fn statuses(seed: u64) -> Vec<u16> {
    let mut config = WebhookConfig::new(SECRET);
    config.common.seed = seed;
    config.common.faults = FaultConfig {
        server_error_rate: 0.5,
        ..FaultConfig::default()
    };
    let handle = webhook::start(config).await.unwrap();
    let body = json!({"sku": "SKU-1", "quantity": 1}).to_string();
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(post(&handle, signed(&body), &body).await);
    }
    statuses
}

#[tokio::test]
async fn faults_are_deterministic_for_a_seed() {
    let first = statuses(11).await;
    assert_eq!(first, statuses(11).await);
    assert_ne!(first, statuses(12).await);
    assert!(first.contains(&200) && first.iter().any(|s| *s >= 500));
}

#[tokio::test]
async fn faults_change_at_run_time() {
    let handle = webhook::start(WebhookConfig::new(SECRET)).await.unwrap();
    let body = json!({"sku": "SKU-1", "quantity": 1}).to_string();
    handle.faults().set(FaultConfig {
        throttle_all: true,
        ..FaultConfig::default()
    });
    assert_eq!(post(&handle, signed(&body), &body).await, 429);
    assert_eq!(post(&handle, signed(&body), &body).await, 429);
    assert_eq!(
        (
            handle.recorder().rejection_count(),
            handle.recorder().violation_count()
        ),
        (2, 1)
    );
    handle.faults().set(FaultConfig {
        latency: Duration::from_millis(150),
        ..FaultConfig::default()
    });
    let started = std::time::Instant::now();
    assert_eq!(post(&handle, signed(&body), &body).await, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let handle = webhook::start(WebhookConfig::new(SECRET)).await.unwrap();
    let url = handle.url();
    let body = json!({"sku": "SKU-1", "quantity": 1}).to_string();
    assert_eq!(post(&handle, signed(&body), &body).await, 200);
    let started = std::time::Instant::now();
    handle.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no call was in flight"
    );
    assert!(client().post(url).body(body).send().await.is_err());
}
