//! Graceful shutdown: SIGTERM while requests are in flight. The process finishes what it
//! accepted, exits 0, and every request it answered is durable.

use crate::support::{Serve, assert_consistent, data_dir, log_path};
use crate::workload::{self, Model, Progress};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_requests_in_flight_exits_0_and_keeps_every_answered_request() {
    let dir = data_dir();
    let mut serve = Serve::start(dir.path(), 25);
    workload::stock(&serve).await;
    let model = Model::new(3, 3);
    let progress = Progress::default();
    let url = serve.url.clone();
    let stream = tokio::spawn({
        let progress = progress.clone();
        async move { workload::stream(&url, model, &progress).await }
    });
    let started = Instant::now();
    while progress.acknowledged.load(Ordering::Relaxed) < 30 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &serve.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exited = Instant::now();
    let exit = loop {
        if let Some(exit) = serve
            .child
            .try_wait()
            .expect("the process can be waited on")
        {
            break exit;
        }
        assert!(
            exited.elapsed() < Duration::from_secs(30),
            "the server did not stop within 30 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let model = stream.await.expect("the stream ran");
    assert!(
        exit.success(),
        "exit status {exit}; log:\n{}",
        std::fs::read_to_string(log_path(dir.path())).unwrap_or_default()
    );
    assert!(model.acknowledged_requests() >= 30);
    assert_consistent(dir.path());
    serve = Serve::start(dir.path(), 25);
    workload::check(&serve, model).await;
    serve.kill();
}
