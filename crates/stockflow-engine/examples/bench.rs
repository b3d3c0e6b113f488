//! Runs the in-process benchmarks: `cargo run --release -p stockflow-engine --example bench --
//! [events|hot|all] [DIR]`. DIR is where the temporary store goes (default: the system's
//! temporary directory); it must be on the disk being measured.

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
        println!("{}", bench::durable_events(config).await?);
    }
    if which == "hot" || which == "all" {
        let mut config = HotSkuReservations::default();
        config.bench.dir = dir;
        println!("{}", bench::hot_sku_reservations_in_process(config).await?);
    }
    Ok(())
}
