//! `stockflow bench dashboard`: what the dashboard's live stream costs ingestion, in one run.
//!
//! A server in this process (a temporary data directory, the embedded store) holds `--skus`
//! SKUs. HTTP clients post `received` events in batches; the same run alternates phases with no
//! dashboard open and with `--browsers` live streams open (each following a page of 25 SKUs that
//! the events keep touching), `--repeat` times each:
//!
//! 1. paced at `--rate` events/s (5,000 by default): the events/s achieved and the request
//!    latency, stream closed and open;
//! 2. unpaced: the most events/s the server takes, stream closed and open.
//!
//! It prints the medians, the slowdown with the stream open (the target is at most 10%), and the
//! updates each browser received per second (the stream sends at most one per interval: 2/s).

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use stockflow_server::{Config, Server};

/// The slowdown the stream may cost ingestion, in percent.
const SLOWDOWN_TARGET_PERCENT: f64 = 10.0;
/// SKUs on a dashboard page.
const PAGE_SKUS: usize = 25;

/// `stockflow bench dashboard` options. Defaults take about a minute and a half.
#[derive(Debug, Clone, clap::Args)]
pub struct DashboardArgs {
    /// A CI-sized run: short phases, one repetition (a smoke test, not a measurement).
    #[arg(long)]
    pub quick: bool,
    /// Events/s offered in the paced phases.
    #[arg(long, default_value_t = 5000)]
    pub rate: u64,
    /// Seconds per phase [default: 4, --quick: 1].
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Repetitions of each phase pair; medians are reported [default: 5, --quick: 1]. Short
    /// interleaved phases, many times: a shared machine's slow spells touch both sides alike.
    #[arg(long)]
    pub repeat: Option<usize>,
    /// Dashboard streams open in the "open" phases.
    #[arg(long, default_value_t = 4)]
    pub browsers: usize,
    /// SKUs in the ledger.
    #[arg(long, default_value_t = 10_000)]
    pub skus: usize,
    /// Concurrent HTTP clients posting events.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Events per request.
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
}

/// What one phase measured.
#[derive(Debug, Clone, Copy, Default)]
struct Phase {
    events_per_second: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    /// Per browser, updates received per second (0 with the stream closed).
    updates_per_second: f64,
    /// CPU time of this process (server and clients) per 1,000 events: unlike events/s, it
    /// does not move when other programs take the machine's cores.
    cpu_ms_per_1000_events: f64,
}

/// User + system CPU time of this process, from /proc (None elsewhere).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis((user + system) * 10))
}

/// Producers' shared counters: sequence numbers must keep increasing across phases.
struct Producers {
    sources: Vec<AtomicU64>,
    skus: usize,
}

pub async fn dashboard(args: DashboardArgs) -> anyhow::Result<()> {
    let seconds = args.seconds.unwrap_or(if args.quick { 1 } else { 4 });
    let repeat = args.repeat.unwrap_or(if args.quick { 1 } else { 5 }).max(1);
    let dir =
        std::env::temp_dir().join(format!("stockflow-bench-dashboard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.clone(),
        ..Config::default()
    };
    let interval_ms = config.dashboard.stream_interval_ms;
    let server = Server::start(config).await.context("starting the server")?;
    let base = server.url();
    let client = reqwest::Client::new();
    let producers = Arc::new(Producers {
        sources: (0..args.clients).map(|_| AtomicU64::new(0)).collect(),
        skus: args.skus,
    });
    seed(&client, &base, &producers).await?;
    println!(
        "stockflow bench dashboard: {} SKUs, {} clients x {} events/request, {} browsers, {seconds} s phases, {repeat} repetitions, stream interval {interval_ms} ms",
        args.skus, args.clients, args.batch, args.browsers
    );
    let phase_length = Duration::from_secs(seconds);
    let (mut paced, mut unpaced) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for round in 0..repeat {
        // Alternate which goes first, so that the journal's growth over the run weighs on both.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for open in order {
            let run = |rate| run_phase(&client, &base, &producers, &args, rate, open, phase_length);
            let at_rate = run(Some(args.rate)).await?;
            let flat_out = run(None).await?;
            let (paced_runs, unpaced_runs) = if open {
                (&mut paced.1, &mut unpaced.1)
            } else {
                (&mut paced.0, &mut unpaced.0)
            };
            paced_runs.push(at_rate);
            unpaced_runs.push(flat_out);
            println!(
                "  round {} stream {}: paced {:.0} events/s (p99 {:.1} ms, CPU {:.1} ms/1000), unpaced {:.0} events/s (CPU {:.1} ms/1000), {:.2} updates/s per browser",
                round + 1,
                if open { "open  " } else { "closed" },
                at_rate.events_per_second,
                at_rate.latency_p99_ms,
                at_rate.cpu_ms_per_1000_events,
                flat_out.events_per_second,
                flat_out.cpu_ms_per_1000_events,
                at_rate.updates_per_second.max(flat_out.updates_per_second),
            );
        }
    }
    report(&args, &paced, &unpaced);
    server.shutdown().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A row of the table: its name, the closed and open runs, what to read of a run, the unit.
type TableRow<'a> = (
    &'a str,
    &'a [Phase],
    &'a [Phase],
    fn(&Phase) -> f64,
    &'a str,
);

fn report(
    args: &DashboardArgs,
    paced: &(Vec<Phase>, Vec<Phase>),
    unpaced: &(Vec<Phase>, Vec<Phase>),
) {
    let median = |runs: &[Phase], pick: fn(&Phase) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let rate = |p: &Phase| p.events_per_second;
    println!();
    println!("| phase | stream closed | stream open | change |");
    println!("|---|---|---|---|");
    let p50 = |p: &Phase| p.latency_p50_ms;
    let p99 = |p: &Phase| p.latency_p99_ms;
    let cpu = |p: &Phase| p.cpu_ms_per_1000_events;
    let rows: [TableRow; 7] = [
        ("paced events/s", &paced.0, &paced.1, rate, ""),
        ("paced request p50", &paced.0, &paced.1, p50, " ms"),
        ("paced request p99", &paced.0, &paced.1, p99, " ms"),
        ("paced CPU per 1000 events", &paced.0, &paced.1, cpu, " ms"),
        ("unpaced events/s", &unpaced.0, &unpaced.1, rate, ""),
        ("unpaced request p99", &unpaced.0, &unpaced.1, p99, " ms"),
        (
            "unpaced CPU per 1000 events",
            &unpaced.0,
            &unpaced.1,
            cpu,
            " ms",
        ),
    ];
    for (name, closed, open, pick, unit) in rows {
        let (closed, open) = (median(closed, pick), median(open, pick));
        println!(
            "| {name} | {closed:.1}{unit} | {open:.1}{unit} | {:+.1}% |",
            (open / closed - 1.0) * 100.0
        );
    }
    let paced_drop = (1.0 - median(&paced.1, rate) / median(&paced.0, rate)) * 100.0;
    let unpaced_drop = (1.0 - median(&unpaced.1, rate) / median(&unpaced.0, rate)) * 100.0;
    let cpu_paced = (median(&paced.1, cpu) / median(&paced.0, cpu) - 1.0) * 100.0;
    let cpu_unpaced = (median(&unpaced.1, cpu) / median(&unpaced.0, cpu) - 1.0) * 100.0;
    let updates = median(&paced.1, |p| p.updates_per_second)
        .max(median(&unpaced.1, |p| p.updates_per_second));
    println!();
    println!(
        "ingestion slowdown with {} streams open: {paced_drop:.1}% at {} events/s offered, {unpaced_drop:.1}% unpaced (target: at most {SLOWDOWN_TARGET_PERCENT}%): {}",
        args.browsers,
        args.rate,
        if paced_drop.max(unpaced_drop) <= SLOWDOWN_TARGET_PERCENT {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "CPU per event with the streams open: {cpu_paced:+.1}% paced, {cpu_unpaced:+.1}% unpaced \
         (events/s moves with whatever else the machine runs; CPU per event does not)"
    );
    println!("updates per browser: {updates:.2}/s (the stream sends at most one per interval)");
}

async fn seed(client: &reqwest::Client, base: &str, producers: &Producers) -> anyhow::Result<()> {
    let mut sku = 0;
    while sku < producers.skus {
        let end = (sku + 1000).min(producers.skus);
        let events: Vec<Value> = (sku..end)
            .map(|i| received("seed", (i + 1) as u64, i, 100))
            .collect();
        post(client, base, &json!({ "events": events })).await?;
        sku = end;
    }
    Ok(())
}

fn sku_name(index: usize) -> String {
    format!("SKU-{index:06}")
}

fn received(source: &str, seq: u64, sku: usize, quantity: i64) -> Value {
    json!({"event_id": format!("{source}-{seq}"), "source": source, "seq": seq, "type": "received",
           "sku": sku_name(sku), "location": "east", "quantity": quantity})
}

async fn post(client: &reqwest::Client, base: &str, body: &Value) -> anyhow::Result<()> {
    let response = client
        .post(format!("{base}/v1/events"))
        .json(body)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "POST /v1/events: {}",
        response.status()
    );
    Ok(())
}

/// One phase: the producers for `length` (paced at `rate` events/s, or flat out), with the
/// browsers' streams open or not.
async fn run_phase(
    client: &reqwest::Client,
    base: &str,
    producers: &Arc<Producers>,
    args: &DashboardArgs,
    rate: Option<u64>,
    open: bool,
    length: Duration,
) -> anyhow::Result<Phase> {
    let stop = Arc::new(AtomicBool::new(false));
    let updates = Arc::new(AtomicU64::new(0));
    let mut browsers = Vec::new();
    if open {
        for browser in 0..args.browsers {
            let follow = follow_stream(
                client.clone(),
                base.to_owned(),
                browser,
                stop.clone(),
                updates.clone(),
            );
            browsers.push(tokio::spawn(follow));
        }
        // Let the streams open (and send their first, full update) before measuring.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let updates_before = updates.load(Ordering::Relaxed);
    let cpu_before = process_cpu();
    let started = Instant::now();
    let mut producing = Vec::new();
    for index in 0..args.clients {
        let interval = rate.map(|rate| {
            Duration::from_secs_f64((args.batch * args.clients) as f64 / rate.max(1) as f64)
        });
        producing.push(tokio::spawn(produce(
            client.clone(),
            base.to_owned(),
            producers.clone(),
            index,
            args.batch,
            interval,
            started + length,
        )));
    }
    let mut events = 0u64;
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for task in producing {
        let (sent, histogram) = task.await??;
        events += sent;
        latencies.add(histogram)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = process_cpu()
        .zip(cpu_before)
        .map_or(0.0, |(after, before)| {
            (after - before).as_secs_f64() * 1000.0
        });
    let updates = updates.load(Ordering::Relaxed) - updates_before;
    stop.store(true, Ordering::Relaxed);
    for browser in browsers {
        browser.await??;
    }
    Ok(Phase {
        events_per_second: events as f64 / elapsed,
        latency_p50_ms: latencies.value_at_quantile(0.5) as f64 / 1000.0,
        latency_p99_ms: latencies.value_at_quantile(0.99) as f64 / 1000.0,
        cpu_ms_per_1000_events: cpu / (events.max(1) as f64 / 1000.0),
        updates_per_second: if open {
            updates as f64 / args.browsers as f64 / elapsed
        } else {
            0.0
        },
    })
}

/// Posts batches until `until`, every `interval` (or back to back); returns the events sent and
/// the request latencies in microseconds. Every batch touches one SKU of the dashboards' pages.
async fn produce(
    client: reqwest::Client,
    base: String,
    producers: Arc<Producers>,
    index: usize,
    batch: usize,
    interval: Option<Duration>,
    until: Instant,
) -> anyhow::Result<(u64, Histogram<u64>)> {
    let source = format!("bench-{index}");
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut sent = 0u64;
    let mut next = Instant::now();
    let mut sku = index * 7919;
    while Instant::now() < until {
        if let Some(interval) = interval {
            tokio::time::sleep_until(next.into()).await;
            next += interval;
        }
        let events: Vec<Value> = (0..batch)
            .map(|n| {
                let seq = producers.sources[index].fetch_add(1, Ordering::Relaxed) + 1;
                sku = (sku + 1) % producers.skus;
                let target = if n == 0 { sku % PAGE_SKUS } else { sku };
                received(&source, seq, target, 1)
            })
            .collect();
        let body = json!({ "events": events });
        let start = Instant::now();
        post(&client, &base, &body).await?;
        latencies.record((start.elapsed().as_micros() as u64).max(1))?;
        sent += batch as u64;
    }
    Ok((sent, latencies))
}

/// One browser: the stream of the first page; counts `update` events into `updates` until told
/// to stop.
async fn follow_stream(
    client: reqwest::Client,
    base: String,
    browser: usize,
    stop: Arc<AtomicBool>,
    updates: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let skus: Vec<String> = (0..PAGE_SKUS).map(sku_name).collect();
    let url = format!("{base}/v1/dashboard/stream?skus={}", skus.join("%20"));
    let mut response = client.get(url).send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "browser {browser}: {}",
        response.status()
    );
    const MARKER: &[u8] = b"event: update";
    // Bytes not yet searched, at most a marker's length but one between chunks.
    let mut tail: Vec<u8> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(100), response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                tail.extend_from_slice(&chunk);
                let mut searched = 0;
                while let Some(at) = tail[searched..]
                    .windows(MARKER.len())
                    .position(|w| w == MARKER)
                {
                    updates.fetch_add(1, Ordering::Relaxed);
                    searched += at + MARKER.len();
                }
                let keep_from = searched.max(tail.len().saturating_sub(MARKER.len() - 1));
                tail.drain(..keep_from);
            }
            Ok(Ok(None)) | Ok(Err(_)) => break,
            Err(_) => {}
        }
    }
    Ok(())
}
