//! Runs the in-process benchmarks: `cargo run --release -p stockflow-engine --example bench --
//! [events|hot|all|ledger] [DIR]`. DIR is where the temporary store goes (default: the system's
//! temporary directory); it must be on the disk being measured.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use stockflow_engine::bench::{self, DurableEvents, HotSkuReservations};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "all".to_owned());
    let dir = args.next().map(std::path::PathBuf::from);
    if which == "events" || which == "all" {
        let mut config = DurableEvents::default();
        config.bench.dir = dir.clone();
        if let Ok(events) = std::env::var("BENCH_EVENTS") {
            config.events = events.parse()?;
        }
        if let Ok(channels) = std::env::var("BENCH_CHANNELS") {
            config.bench.channels = channels.parse()?;
        }
        if let Ok(buffers) = std::env::var("BENCH_BUFFERS") {
            config.bench.buffers = buffers == "1";
        }
        if let Ok(clients) = std::env::var("BENCH_CLIENTS") {
            config.bench.clients = clients.parse()?;
        }
        if let Ok(events) = std::env::var("BENCH_BATCH_EVENTS") {
            config.bench.engine.batch_events_max = events.parse()?;
        }
        println!("{}", bench::durable_events(config).await?);
    }
    if which == "ledger" {
        ledger_only(std::env::var("BENCH_EVENTS").map_or(Ok(1_000_000), |v| v.parse())?);
    }
    if which == "hot" || which == "all" {
        let mut config = HotSkuReservations::default();
        config.bench.dir = dir;
        println!("{}", bench::hot_sku_reservations_in_process(config).await?);
    }
    Ok(())
}

/// The ledger alone, for comparison: requests like the events benchmark's, applied to a
/// `Ledger` in a loop, without the engine, the store or any thread.
fn ledger_only(events: u64) {
    use stockflow_core::envelope::{Envelope, Input};
    use stockflow_core::event::{Event, EventKind};
    use stockflow_core::ids::{EventId, LocationId, Sku, SourceId, TenantId};
    use stockflow_core::ledger::{Ledger, LedgerConfig};
    use stockflow_core::quantity::QuantityState;
    use stockflow_core::time::Timestamp;
    let skus: Vec<Sku> = (0..10_000)
        .map(|i| Sku::parse(format!("SKU-{i:06}")).unwrap())
        .collect();
    let location = LocationId::parse("loc-000000").unwrap();
    let source = SourceId::parse("bench-0").unwrap();
    let mut ledger = Ledger::new();
    let config = LedgerConfig::default();
    let mut seq = 0_u64;
    let requests: Vec<Input> = (0..events / 1000)
        .map(|_| {
            Input::Events(
                (0..1000)
                    .map(|_| {
                        seq += 1;
                        let sku = skus
                            [((seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) % 10_000) as usize]
                            .clone();
                        let kind = if seq % 2 == 1 {
                            EventKind::Received {
                                sku,
                                location: location.clone(),
                                quantity: 3,
                                to: QuantityState::Available,
                            }
                        } else {
                            EventKind::Picked {
                                sku,
                                location: location.clone(),
                                quantity: 1,
                                reservation_id: None,
                            }
                        };
                        Event {
                            event_id: EventId::parse(format!("bench-0-{seq}")).unwrap(),
                            source: source.clone(),
                            seq,
                            occurred_at: None,
                            reason: None,
                            reference: None,
                            kind,
                        }
                    })
                    .collect(),
            )
        })
        .collect();
    let started = std::time::Instant::now();
    for (index, input) in requests.into_iter().enumerate() {
        let envelope = Envelope {
            position: index as u64 + 1,
            tenant: TenantId::default_tenant(),
            recorded_at: Timestamp(1_800_000_000_000_000),
            input,
        };
        let outcome = ledger.apply(&config, &envelope);
        assert!(outcome.persist);
    }
    let elapsed = started.elapsed();
    println!(
        "ledger alone: {events} events in {:.2} s = {:.0}/s",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    );
    // What a snapshot costs at this size: the clone is the writer's only stall.
    let started = std::time::Instant::now();
    let copy = ledger.clone();
    let clone_elapsed = started.elapsed();
    let started = std::time::Instant::now();
    let bytes = stockflow_store::codec::encode_ledger(&copy).expect("encodes");
    println!(
        "snapshot of that ledger: clone {:.1} ms (the writer's stall), encode {:.1} ms ({:.1} MiB)",
        clone_elapsed.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64() * 1e3,
        bytes.len() as f64 / (1024.0 * 1024.0)
    );
}
