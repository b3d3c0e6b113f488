//! Webhook delivery semantics against a real receiver: at least once (duplicates), reordered,
//! late, retried when the receiver fails or is too slow, given up after the schedule, bounded.

use std::time::Duration;

use axum::body::Bytes;
use stockflow_sim::delivery::{Deliverer, DeliveryConfig, DeliveryStats, Notification};

use crate::support::receiver::Receiver;

fn notification(n: usize) -> Notification {
    Notification {
        topic: "orders/create".into(),
        subject: n.to_string(),
        headers: vec![("X-Test".into(), n.to_string())],
        body: Bytes::from(format!("{{\"n\":{n}}}")),
    }
}

/// Immediate, exact delivery; each test turns on what it shows.
fn config(url: String) -> DeliveryConfig {
    DeliveryConfig {
        url,
        delay_min: Duration::ZERO,
        delay_max: Duration::ZERO,
        late_share: 0.0,
        late_delay: Duration::ZERO,
        duplicate_share: 0.0,
        duplicate_after: Duration::ZERO,
        attempt_timeout: Duration::from_secs(5),
        retry_schedule: vec![Duration::from_millis(20); 3],
        queue_max: 1_000,
        concurrency: 8,
        seed: 7,
    }
}

async fn deliver(config: DeliveryConfig, count: usize) -> DeliveryStats {
    let deliverer = Deliverer::start(config, None);
    for n in 0..count {
        assert!(deliverer.send(notification(n)));
    }
    assert!(deliverer.drain(Duration::from_secs(10)).await, "drained");
    deliverer.stats()
}

fn numbers(receiver: &Receiver) -> Vec<usize> {
    receiver
        .received()
        .iter()
        .map(|r| r.headers["x-test"].to_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn duplicates_deliver_the_same_notification_again() {
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let stats = deliver(
        DeliveryConfig {
            duplicate_share: 1.0,
            duplicate_after: Duration::from_millis(10),
            ..config(receiver.url())
        },
        20,
    )
    .await;
    assert_eq!((stats.delivered, stats.duplicates), (20, 20));
    let mut seen = numbers(&receiver);
    assert_eq!(seen.len(), 40);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 20, "each one twice, byte for byte");
    let received = receiver.received();
    let first = received.iter().filter(|r| r.body == notification(3).body);
    assert_eq!(first.count(), 2);
}

#[tokio::test]
async fn drawn_delays_reorder_notifications() {
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let stats = deliver(
        DeliveryConfig {
            delay_max: Duration::from_millis(300),
            ..config(receiver.url())
        },
        50,
    )
    .await;
    assert_eq!(stats.delivered, 50);
    let seen = numbers(&receiver);
    assert_eq!(seen.len(), 50);
    assert!(
        seen.windows(2).any(|w| w[0] > w[1]),
        "not in sending order: {seen:?}"
    );
}

#[tokio::test]
async fn a_failing_receiver_is_retried_on_the_schedule() {
    let receiver = Receiver::start(2, Duration::ZERO).await;
    let stats = deliver(config(receiver.url()), 10).await;
    assert_eq!(stats.delivered, 10);
    assert_eq!(stats.attempts, 30, "two failures and a success each");
    assert_eq!(
        (stats.failed_attempts, stats.retries, stats.gave_up),
        (20, 20, 0)
    );
}

#[tokio::test]
async fn after_the_last_retry_the_platform_gives_up() {
    let receiver = Receiver::start(u32::MAX, Duration::ZERO).await;
    let stats = deliver(config(receiver.url()), 4).await;
    assert_eq!((stats.delivered, stats.gave_up), (0, 4));
    assert_eq!(stats.attempts, 16, "one attempt and three retries each");
    assert_eq!(receiver.received().len(), 16);
}

#[tokio::test]
async fn an_answer_after_the_deadline_is_a_failed_attempt() {
    let receiver = Receiver::start(0, Duration::from_millis(500)).await;
    let stats = deliver(
        DeliveryConfig {
            attempt_timeout: Duration::from_millis(100),
            ..config(receiver.url())
        },
        3,
    )
    .await;
    assert_eq!(stats.delivered, 3);
    assert_eq!((stats.failed_attempts, stats.retries), (3, 3));
}

#[tokio::test]
async fn late_notifications_arrive_after_the_late_delay() {
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let deliverer = Deliverer::start(
        DeliveryConfig {
            late_share: 1.0,
            late_delay: Duration::from_millis(400),
            ..config(receiver.url())
        },
        None,
    );
    deliverer.send(notification(1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(receiver.received().is_empty(), "not yet");
    assert!(deliverer.drain(Duration::from_secs(5)).await);
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(deliverer.stats().late, 1);
}

#[tokio::test]
async fn the_queue_is_bounded() {
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let deliverer = Deliverer::start(
        DeliveryConfig {
            queue_max: 5,
            delay_min: Duration::from_secs(60),
            delay_max: Duration::from_secs(60),
            ..config(receiver.url())
        },
        None,
    );
    let accepted = (0..8).filter(|n| deliverer.send(notification(*n))).count();
    assert_eq!(accepted, 5);
    let stats = deliverer.stats();
    assert_eq!((stats.queued, stats.dropped, stats.pending), (5, 3, 5));
}

#[tokio::test]
async fn the_same_seed_draws_the_same_delays() {
    // Which notifications are duplicated is drawn from the seed, whatever the timing.
    let mut duplicated = Vec::new();
    for _ in 0..2 {
        let receiver = Receiver::start(0, Duration::ZERO).await;
        deliver(
            DeliveryConfig {
                duplicate_share: 0.3,
                duplicate_after: Duration::from_millis(5),
                ..config(receiver.url())
            },
            40,
        )
        .await;
        let mut seen = numbers(&receiver);
        seen.sort();
        let twice: Vec<usize> = seen
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        duplicated.push(twice);
    }
    assert_eq!(duplicated[0], duplicated[1]);
    assert!(!duplicated[0].is_empty());
}
