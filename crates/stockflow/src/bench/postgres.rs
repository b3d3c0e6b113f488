//! The baseline the field usually starts from: a reservation as a conditional decrement of one
//! hot row in PostgreSQL (`UPDATE ... SET available = available - 1 WHERE available >= 1`), each
//! in its own committed transaction, from many concurrent connections. Run against the local
//! server so that the ratio to stockflow is measured on the same machine in the same run.

use super::report::{LatencyRecorder, Throughput};
use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

pub struct PostgresBaseline {
    pub url: String,
    pub clients: usize,
    pub duration: Duration,
}

/// The server's durability settings, for the report.
pub struct PostgresSettings {
    pub version: String,
    pub durability: String,
}

/// Connects once to read the server's version and durability settings, or answers why it
/// cannot (the baseline is then skipped).
pub async fn probe(url: &str) -> Result<PostgresSettings, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|error| format!("cannot connect to {url} ({error})"))?;
    tokio::spawn(connection);
    let show = |name: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(&format!("SHOW {name}"), &[])
                .await
                .map(|row| format!("{name}={}", row.get::<_, String>(0)))
                .map_err(|error| format!("SHOW {name} failed ({error})"))
        }
    };
    let version = client
        .query_one("SHOW server_version", &[])
        .await
        .map(|row| row.get::<_, String>(0))
        .map_err(|error| format!("SHOW server_version failed ({error})"))?;
    let mut durability = Vec::new();
    for name in ["fsync", "synchronous_commit", "wal_sync_method"] {
        durability.push(show(name).await?);
    }
    Ok(PostgresSettings {
        version,
        durability: durability.join(" "),
    })
}

/// One run of the baseline: the table is created with a stock no run can exhaust, every
/// client connects and prepares its statement, then all start together for `duration`.
pub async fn run(baseline: &PostgresBaseline) -> anyhow::Result<Throughput> {
    let (setup, connection) = tokio_postgres::connect(&baseline.url, tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(connection);
    setup
        .batch_execute(
            "DROP TABLE IF EXISTS stockflow_bench_stock;
             CREATE TABLE stockflow_bench_stock (sku text PRIMARY KEY, available bigint NOT NULL);
             INSERT INTO stockflow_bench_stock VALUES ('HOT-1', 1000000000);",
        )
        .await
        .context("creating the baseline table")?;

    let clients = baseline.clients.max(1);
    let stop = Arc::new(AtomicBool::new(false));
    // Connections and statements are ready before the clock starts: connecting 64 clients
    // takes a noticeable part of a short run and is not what is measured.
    let ready = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, connection) = tokio_postgres::connect(&baseline.url, tokio_postgres::NoTls)
            .await
            .context("connecting a baseline client")?;
        tokio::spawn(connection);
        let stop = stop.clone();
        let ready = ready.clone();
        tasks.push(tokio::spawn(async move {
            let statement = client
                .prepare(
                    "UPDATE stockflow_bench_stock SET available = available - 1 \
                     WHERE sku = 'HOT-1' AND available >= 1",
                )
                .await;
            ready.wait().await;
            let statement = statement?;
            let mut latencies = LatencyRecorder::new();
            while !stop.load(Ordering::Relaxed) {
                let begun = Instant::now();
                let updated = client.execute(&statement, &[]).await?;
                anyhow::ensure!(updated == 1, "the hot row ran out of stock");
                latencies.record(begun.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    ready.wait().await;
    let started = Instant::now();
    tokio::time::sleep(baseline.duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = LatencyRecorder::new();
    for task in tasks {
        latencies.merge(&task.await.context("a baseline client panicked")??);
    }
    // Requests in flight at the stop finish after it and are counted: the span is until the
    // last one answered.
    let elapsed = started.elapsed();
    let remaining: i64 = setup
        .query_one(
            "SELECT available FROM stockflow_bench_stock WHERE sku = 'HOT-1'",
            &[],
        )
        .await
        .context("reading the baseline's stock")?
        .get(0);
    anyhow::ensure!(
        1_000_000_000 - remaining == latencies.count() as i64,
        "the baseline's row lost updates: {} decrements acknowledged, {} applied",
        latencies.count(),
        1_000_000_000 - remaining
    );
    setup
        .batch_execute("DROP TABLE IF EXISTS stockflow_bench_stock")
        .await
        .ok();
    Ok(latencies.throughput(elapsed))
}
