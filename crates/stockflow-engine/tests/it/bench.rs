//! The benchmark functions run (tiny sizes; speed is never asserted) and report what they did.

use stockflow_engine::bench::{self, BenchConfig, DurableEvents, HotSkuReservations};

fn small() -> BenchConfig {
    BenchConfig {
        clients: 3,
        skus: 50,
        locations: 2,
        channels: 1,
        ..BenchConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_events_reports_every_event_durable() {
    let config = DurableEvents {
        bench: small(),
        events: 5_000,
        events_per_request: 1000,
    };
    let report = bench::durable_events(config).await.unwrap();
    assert_eq!((report.operations, report.requests), (5_000, 5));
    assert_eq!(report.durability, "journal_mode=wal synchronous=full");
    // One channel, one setup request, five measured requests, and the ticks of the channel's
    // time-driven work, if any fell due.
    assert!(report.journal_position >= 7, "{report}");
    assert!(report.request_p50 <= report.request_p99 && report.request_p99 <= report.request_max);
    assert!(
        report
            .to_string()
            .contains("durable events: 5000 operations"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_sku_reservations_never_grant_beyond_the_stock() {
    let config = HotSkuReservations {
        bench: small(),
        reservations: 300,
        stock: 200,
    };
    let report = bench::hot_sku_reservations_in_process(config)
        .await
        .unwrap();
    assert_eq!((report.granted, report.refused), (200, 100));
    assert_eq!(report.operations, 300);
}
