//! The engine against the in-memory channel, on tokio's paused clock: coalescing, priority,
//! backoff and Retry-After, refusals, verification of queued values, drift, full sync, limits.

use std::sync::Arc;
use std::time::Duration;

use stockflow_channels::adapter::{Failure, FailureKind};
use stockflow_channels::engine::wait_full_sync;
use stockflow_channels::fake::{FakeAdapter, FakeMode, Scripted};
use stockflow_channels::{ChannelStats, SyncEngine, SyncEvent, SyncKey};
use tokio::time::{Instant, sleep};

use crate::support::{change, channel_id, key, retry, settings, spec, wait_until};

const CHANNEL: &str = "fake";

struct Rig {
    engine: SyncEngine,
    fake: FakeAdapter,
}

impl Rig {
    fn start(fake: FakeAdapter, batch_max: usize, linger_ms: u64) -> Self {
        Self::with_settings(fake, settings(batch_max, linger_ms))
    }

    fn with_settings(
        fake: FakeAdapter,
        settings: stockflow_channels::config::EngineSettings,
    ) -> Self {
        let engine = SyncEngine::start(vec![spec(
            CHANNEL,
            Arc::new(fake.clone()),
            settings,
            retry(),
        )]);
        Self { engine, fake }
    }

    fn offer(&self, key: &SyncKey, quantity: i64, position: u64) {
        self.engine
            .offer(&[change(&self.engine, CHANNEL, key, quantity, position)]);
    }

    fn stats(&self) -> ChannelStats {
        self.engine.stats().remove(0)
    }

    async fn settled(&self, limit: Duration) -> bool {
        wait_until(limit, || self.stats().queue_depth == 0).await
    }
}

fn apply(rate: f64, units: usize) -> FakeAdapter {
    FakeAdapter::new(FakeMode::Apply, rate, 1, units, Duration::from_millis(20))
}

#[tokio::test(start_paused = true)]
async fn a_thousand_changes_of_one_sku_become_a_handful_of_calls_ending_on_the_last() {
    let rig = Rig::start(apply(5.0, 250), 250, 100);
    let a = key("A", None);
    for position in 1..=1_000u64 {
        rig.offer(&a, 1_000 - position as i64 / 2, position);
        sleep(Duration::from_millis(1)).await;
    }
    assert!(rig.settled(Duration::from_secs(10)).await);
    let calls = rig.fake.calls();
    assert!(
        (2..=10).contains(&calls.len()),
        "{} calls for one SKU",
        calls.len()
    );
    assert_eq!(calls.last().unwrap(), &vec![(a.clone(), Some(500))]);
    assert_eq!(rig.fake.shown(&a), Some(500));
    let stats = rig.stats();
    assert_eq!(stats.offered, 1_000);
    // The key waited from the first change to the last acknowledgement: every later change
    // replaced a waiting value.
    assert_eq!(stats.coalesced, 999);
    assert_eq!(stats.acknowledged as usize, calls.len());
}

#[tokio::test(start_paused = true)]
async fn drops_to_zero_then_decreases_overtake_increases_under_backlog() {
    let rig = Rig::start(apply(2.0, 1), 1, 0);
    let names = ["UP1", "DOWN1", "ZERO", "UP2", "DOWN2"];
    for (index, name) in names.iter().enumerate() {
        rig.offer(&key(name, None), 10, 1 + index as u64);
    }
    assert!(rig.settled(Duration::from_secs(10)).await);
    let before = rig.fake.calls().len();
    let new = [
        ("UP1", 12),
        ("DOWN1", 5),
        ("ZERO", 0),
        ("UP2", 15),
        ("DOWN2", 3),
    ];
    for (index, (name, quantity)) in new.iter().enumerate() {
        rig.offer(&key(name, None), *quantity, 10 + index as u64);
    }
    assert!(rig.settled(Duration::from_secs(10)).await);
    let order: Vec<String> = rig.fake.calls()[before..]
        .iter()
        .map(|call| call[0].0.sku.to_string())
        .collect();
    assert_eq!(order, vec!["ZERO", "DOWN1", "DOWN2", "UP1", "UP2"]);
}

#[tokio::test(start_paused = true)]
async fn transient_failures_back_off_and_the_retry_sends_the_newest_value() {
    let rig = Rig::start(apply(100.0, 10), 10, 0);
    let mut events = rig.engine.subscribe();
    let unavailable = Failure::new(FailureKind::Transient, "http_503", "Service Unavailable");
    rig.fake.script(Scripted::Fail(unavailable.clone()));
    rig.fake.script(Scripted::Fail(unavailable));
    let a = key("A", None);
    rig.offer(&a, 7, 1);
    sleep(Duration::from_millis(30)).await;
    rig.offer(&a, 4, 2);
    assert!(rig.settled(Duration::from_secs(10)).await);
    let sent: Vec<Option<i64>> = rig.fake.calls().iter().map(|c| c[0].1).collect();
    // A retry may leave before the newer value arrives (the backoff has full jitter); once the
    // newer value is known, no call carries the older one again.
    assert_eq!(sent[0], Some(7));
    let first_new = sent
        .iter()
        .position(|q| *q == Some(4))
        .expect("the newest value is sent");
    assert!(sent[..first_new].iter().all(|q| *q == Some(7)), "{sent:?}");
    assert!(sent[first_new..].iter().all(|q| *q == Some(4)), "{sent:?}");
    assert_eq!(rig.fake.shown(&a), Some(4));
    let stats = rig.stats();
    assert_eq!(stats.retries, 2);
    assert_eq!(stats.errors["http_503"], 2);
    assert_eq!(stats.last_error.as_ref().unwrap().code, "http_503");
    let mut errors = 0;
    while let Ok(event) = events.try_recv() {
        if let SyncEvent::Error { code, .. } = event {
            assert_eq!(code, "http_503");
            errors += 1;
        }
    }
    assert_eq!(errors, 2);
}

#[tokio::test(start_paused = true)]
async fn throttling_waits_as_long_as_the_platform_says() {
    let rig = Rig::start(apply(100.0, 10), 10, 0);
    let throttled = Failure::new(FailureKind::Throttled, "THROTTLED", "Throttled")
        .with_retry_after(Some(Duration::from_secs(3)));
    rig.fake.script(Scripted::Fail(throttled));
    let a = key("A", None);
    let start = Instant::now();
    rig.offer(&a, 7, 1);
    assert!(rig.settled(Duration::from_secs(10)).await);
    assert!(Instant::now() - start >= Duration::from_secs(3));
    assert_eq!(rig.fake.calls().len(), 2);
    assert_eq!(rig.stats().rate_limited, 1);
}

#[tokio::test(start_paused = true)]
async fn a_refused_entry_stays_pending_with_its_code_and_is_retried_slowly() {
    let rig = Rig::start(apply(100.0, 10), 10, 0);
    let a = key("A", None);
    rig.fake.forget(&a);
    rig.offer(&a, 7, 1);
    sleep(Duration::from_secs(1)).await;
    let stats = rig.stats();
    assert_eq!(stats.queue_depth, 1);
    assert_eq!(stats.key_errors.len(), 1);
    assert_eq!(stats.key_errors[0].1.failure.code, "INVALID_ITEM");
    assert_eq!(rig.fake.calls().len(), 1);
    // The slow cadence (30 s here) brings it back, with the newest value.
    rig.offer(&a, 6, 2);
    sleep(Duration::from_secs(20)).await;
    assert_eq!(rig.fake.calls().len(), 1);
    sleep(Duration::from_secs(15)).await;
    assert_eq!(rig.fake.calls().len(), 2);
    assert_eq!(rig.fake.calls()[1][0].1, Some(6));
    assert_eq!(rig.stats().queue_depth, 1);
}

#[tokio::test(start_paused = true)]
async fn a_queued_value_that_never_lands_is_found_by_reading_back_and_sent_again() {
    let fake = FakeAdapter::new(
        FakeMode::Queue {
            apply_delay: Duration::from_millis(500),
        },
        10.0,
        5,
        1,
        Duration::from_millis(20),
    )
    .with_verify_delay(Duration::from_secs(2));
    let rig = Rig::start(fake, 1, 0);
    let a = key("A", None);
    rig.fake.set_shown(&a, 9);
    rig.fake.lose_next(&a);
    rig.offer(&a, 4, 1);
    assert!(
        wait_until(Duration::from_secs(10), || rig.stats().not_applied == 1).await,
        "{:?}",
        rig.stats()
    );
    assert!(
        wait_until(Duration::from_secs(10), || rig.fake.shown(&a) == Some(4)
            && rig.stats().verified == 1)
        .await
    );
    assert_eq!(rig.fake.calls().len(), 2);
    assert_eq!(rig.fake.calls()[1][0].1, Some(4));
}

#[tokio::test(start_paused = true)]
async fn a_lower_read_back_is_not_repaired_upward_before_the_order_grace() {
    let fake = FakeAdapter::new(
        FakeMode::Queue {
            apply_delay: Duration::from_millis(100),
        },
        10.0,
        5,
        1,
        Duration::from_millis(10),
    )
    .with_verify_delay(Duration::from_secs(1));
    let rig = Rig::start(fake, 1, 0);
    let (a, b) = (key("A", None), key("B", None));
    rig.offer(&a, 8, 1);
    rig.offer(&b, 8, 2);
    sleep(Duration::from_millis(500)).await;
    // The channel sold one unit of each; only A's order reached stockflow.
    rig.fake.set_shown(&a, 7);
    rig.fake.set_shown(&b, 7);
    rig.engine
        .order_seen(&channel_id(CHANNEL), &a.sku, None, 1)
        .unwrap();
    sleep(Duration::from_secs(5)).await;
    assert_eq!(rig.stats().verified, 1, "A is explained by its order");
    assert_eq!(rig.fake.calls().len(), 2, "B waits for its order");
    assert_eq!(rig.fake.shown(&b), Some(7));
    // The grace (10 s) passes without B's order: B is sent its newest value again.
    sleep(Duration::from_secs(10)).await;
    assert_eq!(rig.fake.calls().len(), 3);
    assert_eq!(rig.fake.calls()[2], vec![(b.clone(), Some(8))]);
    assert_eq!(rig.stats().not_applied, 1);
}

#[tokio::test(start_paused = true)]
async fn a_compare_and_set_conflict_is_drift_unless_a_channel_order_explains_it() {
    let fake = FakeAdapter::new(
        FakeMode::CompareAndSet,
        100.0,
        10,
        10,
        Duration::from_millis(10),
    );
    let rig = Rig::start(fake, 10, 0);
    let (a, b) = (key("A", Some("east")), key("B", Some("east")));
    rig.offer(&a, 10, 1);
    rig.offer(&b, 10, 2);
    assert!(rig.settled(Duration::from_secs(5)).await);
    // A: the merchant edits the channel. B: a buyer orders 2 and the engine is told.
    rig.fake.set_shown(&a, 6);
    rig.fake.set_shown(&b, 8);
    rig.engine
        .order_seen(&channel_id(CHANNEL), &b.sku, b.location.as_ref(), 2)
        .unwrap();
    rig.offer(&a, 9, 3);
    rig.offer(&b, 8, 4);
    assert!(rig.settled(Duration::from_secs(5)).await);
    assert_eq!(rig.stats().drift, 1);
    assert_eq!(rig.fake.shown(&a), Some(9));
    assert_eq!(rig.fake.shown(&b), Some(8));
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_new_keys_with_a_counted_error() {
    let mut limits = settings(1, 0);
    limits.pending_max = 2;
    limits.in_flight_max = 1;
    let rig = Rig::with_settings(apply(0.5, 1), limits);
    let mut events = rig.engine.subscribe();
    rig.offer(&key("A", None), 1, 1);
    rig.offer(&key("B", None), 1, 2);
    rig.offer(&key("C", None), 1, 3);
    rig.offer(&key("A", None), 0, 4);
    let stats = rig.stats();
    assert_eq!(stats.queue_depth, 2);
    assert_eq!(stats.refused, 1);
    assert_eq!(stats.errors["queue_full"], 1);
    let refused = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, SyncEvent::Refused { .. }))
        .count();
    assert_eq!(refused, 1);
}

#[tokio::test(start_paused = true)]
async fn a_full_sync_without_a_bulk_path_goes_at_the_lowest_priority_and_reports_progress() {
    let rig = Rig::start(apply(10.0, 50), 50, 0);
    let catalogue: Vec<_> = (0..120)
        .map(|i| {
            change(
                &rig.engine,
                CHANNEL,
                &key(&format!("S{i}"), None),
                i,
                1 + i as u64,
            )
        })
        .collect();
    let progress = rig
        .engine
        .full_sync(&channel_id(CHANNEL), catalogue)
        .unwrap();
    // A real-time drop to zero arriving meanwhile goes before the catalogue.
    rig.offer(&key("HOT", None), 0, 500);
    let done = wait_full_sync(progress).await;
    assert_eq!((done.total, done.done, done.failed), (120, 120, 0));
    assert!(done.finished);
    assert!(
        rig.fake.calls()[..2]
            .iter()
            .any(|call| call.contains(&(key("HOT", None), Some(0))))
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_sending_and_reports_what_still_waits() {
    let rig = Rig::start(apply(1.0, 1), 1, 0);
    rig.offer(&key("A", None), 1, 1);
    rig.offer(&key("B", None), 1, 2);
    rig.offer(&key("C", None), 1, 3);
    sleep(Duration::from_millis(100)).await;
    let stats = rig.engine.shutdown(Duration::from_secs(1)).await;
    assert_eq!(stats[0].queue_depth, 2);
    let calls = rig.fake.calls().len();
    rig.offer(&key("D", None), 1, 4);
    sleep(Duration::from_secs(5)).await;
    assert_eq!(rig.fake.calls().len(), calls);
}

#[tokio::test(start_paused = true)]
async fn an_edit_made_on_the_channel_is_observed_as_drift_and_overwritten_on_request() {
    let rig = Rig::start(apply(10.0, 10), 10, 0);
    let a = key("A", None);
    rig.offer(&a, 5, 1);
    assert!(rig.settled(Duration::from_secs(5)).await);
    let view = rig.engine.key_view(&channel_id(CHANNEL), &a).unwrap();
    assert_eq!(
        (view.believed, view.wanted, view.waiting),
        (Some(5), Some(5), false)
    );

    // The merchant sets 9 on the channel; a read outside the engine finds it.
    rig.fake.set_shown(&a, 9);
    let mut events = rig.engine.subscribe();
    let believed = rig.engine.observe(&channel_id(CHANNEL), &a, 9).unwrap();
    assert_eq!(believed, Some(5));
    assert_eq!(rig.stats().drift, 1);
    assert!(matches!(
        events.try_recv(),
        Ok(SyncEvent::Drift {
            believed: Some(5),
            found: 9,
            ..
        })
    ));
    // Observing the same value again is no drift.
    rig.engine.observe(&channel_id(CHANNEL), &a, 9).unwrap();
    assert_eq!(rig.stats().drift, 1);

    // Overwrite: the value already sent (position 1) goes again, since nothing newer is known.
    let calls = rig.fake.calls().len();
    rig.engine
        .resend(&change(&rig.engine, CHANNEL, &a, 5, 1))
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || rig.fake.shown(&a) == Some(5)).await);
    assert_eq!(rig.fake.calls().len(), calls + 1);

    // A newer value known to the engine wins over the one handed to resend.
    rig.offer(&a, 3, 2);
    rig.engine
        .resend(&change(&rig.engine, CHANNEL, &a, 5, 1))
        .unwrap();
    assert!(rig.settled(Duration::from_secs(5)).await);
    assert_eq!(rig.fake.shown(&a), Some(3));
}

#[tokio::test(start_paused = true)]
async fn internal_latency_runs_from_the_changes_ingest_not_from_the_hand_off() {
    let rig = Rig::start(apply(100.0, 250), 250, 0);
    // The change was ingested 300 ms before the ledger handed it to the sync.
    let mut late = change(&rig.engine, CHANNEL, &key("SKU-1", None), 4, 1);
    late.caused_at = late.caused_at.plus_micros(-300_000);
    rig.engine.offer(&[late]);
    assert!(rig.settled(Duration::from_secs(5)).await);
    let internal = rig.stats().internal_latency;
    assert_eq!(internal.count, 1, "{internal:?}");
    assert!(
        internal.p50_ms >= 300.0 && internal.p50_ms < 400.0,
        "ingest -> call sent includes the time before the hand-off: {internal:?}"
    );
}
