//! Invariant 3: kill -9 at any instant; the restarted service has every acknowledged change and
//! no change twice. The same data directory goes through several kills at different moments
//! (after a short, a medium and a longer stretch of streaming), each followed by
//! `stockflow verify` and a restart that is checked against what the clients recorded.

use crate::support::{Serve, assert_consistent, data_dir};
use crate::workload::{self, Model, Progress};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Waits until at least `count` more requests were acknowledged, then `delay` more.
async fn streamed(progress: &Progress, count: u64, delay: Duration) {
    let started = Instant::now();
    let base = progress.acknowledged.load(Ordering::Relaxed);
    while progress.acknowledged.load(Ordering::Relaxed) < base + count {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the clients made no progress"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(delay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_acknowledged_change_and_applies_none_twice() {
    let dir = data_dir();
    // A snapshot every 25 positions: restarts recover from a snapshot and a journal tail.
    let mut serve = Serve::start(dir.path(), 25);
    workload::stock(&serve).await;
    let mut model = Model::new(3, 3);
    let moments = [
        Duration::from_millis(0),
        Duration::from_millis(70),
        Duration::from_millis(250),
        Duration::from_millis(600),
    ];
    for (round, delay) in moments.into_iter().enumerate() {
        let before = model.acknowledged_requests();
        let progress = Progress::default();
        let url = serve.url.clone();
        let stream = tokio::spawn({
            let progress = progress.clone();
            async move { workload::stream(&url, model, &progress).await }
        });
        streamed(&progress, 10, delay).await;
        serve.kill();
        model = stream.await.expect("the stream ran");
        assert!(
            model.acknowledged_requests() >= before + 10,
            "round {round}: streamed before the kill"
        );
        assert!(
            model.lost_requests() > 0,
            "round {round}: the kill found requests in flight"
        );
        assert_consistent(dir.path());
        serve = Serve::start(dir.path(), 25);
        model = workload::check(&serve, model).await;
    }
    serve.kill();
    assert_consistent(dir.path());
}
