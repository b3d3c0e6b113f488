//! `stockflow bench ledger`: every figure of the ledger's performance targets in one run.
//!
//! 1. Durable events/s through the writer and the journal, in process (the engine's benchmark),
//!    without channels: the ledger's own figure (target 200,000/s).
//! 2. The same with 10 channels and no buffer policy, then with every channel applying all four
//!    buffer strategies (static, dynamic, channel-aware, time window) and a surge signal on
//!    every SKU: the cost of buffers (target: at most 25% below figure 1).
//! 3. Durable reservations/s of one unit on one hot SKU over HTTP, against the real server
//!    started in this process, from 64 keep-alive clients (target 20,000/s); never more granted
//!    than the stock, and the ledger's reserved equals what was granted.
//! 4. The PostgreSQL baseline in the same run (a conditional `UPDATE` of one hot row per
//!    transaction, 64 connections), and the ratio of 3 to it.
//!
//! Runs of one benchmark repeat (`--repeat`); each row shows the median run. The runs of the
//! different benchmarks are interleaved (one of each, then again), so that a slow spell of the
//! machine touches them alike.

mod dashboard;
mod http;
mod machine;
mod postgres;
mod report;
mod sync;

pub use dashboard::{DashboardArgs, dashboard};
pub use sync::{SyncArgs, sync};

use anyhow::Context;
use report::{Row, Runs, Throughput};
use std::path::PathBuf;
use std::time::Duration;
use stockflow_engine::bench::{BenchConfig, BenchReport, DurableEvents};

const EVENTS_TARGET_PER_SECOND: f64 = 200_000.0;
const RESERVATIONS_TARGET_PER_SECOND: f64 = 20_000.0;
const BUFFER_DROP_TARGET_PERCENT: f64 = 25.0;

/// `stockflow bench ledger` options. Defaults take about two minutes on a 2-core machine.
#[derive(Debug, Clone, clap::Args)]
pub struct LedgerArgs {
    /// A CI-sized run: small sizes, one repetition, a short baseline (a smoke test of the
    /// command, not a measurement).
    #[arg(long)]
    pub quick: bool,
    /// Repetitions of each benchmark; the median is reported [default: 3, --quick: 1].
    #[arg(long)]
    pub repeat: Option<usize>,
    /// Events per in-process run [default: 1000000, --quick: 50000].
    #[arg(long)]
    pub events: Option<u64>,
    /// Events per request of the in-process runs (at most 1000).
    #[arg(long, default_value_t = 1000)]
    pub events_per_request: usize,
    /// Concurrent submitters of the in-process runs.
    #[arg(long, default_value_t = 16)]
    pub event_clients: usize,
    /// SKUs the in-process events are spread over [default: 10000, --quick: 1000].
    #[arg(long)]
    pub skus: Option<usize>,
    /// Locations the SKUs are spread over.
    #[arg(long, default_value_t = 4)]
    pub locations: usize,
    /// Channels of the runs with channels (each served by every location).
    #[arg(long, default_value_t = 10)]
    pub channels: usize,
    /// Concurrent HTTP clients of the hot-SKU run and connections of the baseline.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Reservations per hot-SKU run (the stock is exactly this) [default: 60000, --quick: 3000].
    #[arg(long)]
    pub reservations: Option<u64>,
    /// Seconds per PostgreSQL baseline run [default: 5, --quick: 1].
    #[arg(long)]
    pub postgres_seconds: Option<u64>,
    /// The PostgreSQL server of the baseline; when it cannot be reached the baseline is
    /// skipped with the reason printed.
    #[arg(long, default_value = "postgresql://postgres@127.0.0.1:5432/test")]
    pub postgres_url: String,
    /// Skip the PostgreSQL baseline.
    #[arg(long)]
    pub no_postgres: bool,
    /// Where the temporary stores go [default: the system's temporary directory]. Put them
    /// on the disk being measured: on a tmpfs an fsync costs nothing.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The sizes in force, from the options and `--quick`.
struct Plan {
    repeat: usize,
    events: u64,
    skus: usize,
    reservations: u64,
    postgres: Duration,
}

impl Plan {
    fn from(args: &LedgerArgs) -> Plan {
        let pick = |given: Option<u64>, full: u64, quick: u64| {
            given.unwrap_or(if args.quick { quick } else { full })
        };
        Plan {
            repeat: pick(args.repeat.map(|r| r as u64), 3, 1).max(1) as usize,
            events: pick(args.events, 1_000_000, 50_000).max(1),
            skus: pick(args.skus.map(|s| s as u64), 10_000, 1_000).max(1) as usize,
            reservations: pick(args.reservations, 60_000, 3_000).max(1),
            postgres: Duration::from_secs(pick(args.postgres_seconds, 5, 1).max(1)),
        }
    }
}

/// What a whole run gathered.
#[derive(Default)]
struct Results {
    events: Runs,
    channels: Runs,
    buffers: Runs,
    http: Runs,
    postgres: Runs,
    /// Skipped, and why.
    postgres_skipped: Option<String>,
    postgres_settings: String,
    engine_durability: String,
    http_durability: String,
    oversell: Vec<String>,
    withheld: String,
}

pub async fn ledger(args: LedgerArgs) -> anyhow::Result<()> {
    let plan = Plan::from(&args);
    let machine = machine::Machine::read();
    let store_dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    println!("stockflow bench ledger");
    println!("command:    {}", command_line());
    println!("machine:    {machine}");
    println!(
        "stores in:  {} on {}",
        store_dir.display(),
        machine::filesystem_of(&store_dir)
    );
    println!(
        "load avg:   {} (1, 5, 15 min) at the start",
        machine::load_average()
    );
    if args.quick {
        println!("(--quick: CI-sized, one repetition; the figures are not a measurement)");
    }
    let mut results = Results::default();
    let postgres_url = (!args.no_postgres).then_some(args.postgres_url.as_str());
    match postgres_url {
        None => results.postgres_skipped = Some("--no-postgres".to_owned()),
        Some(url) => match postgres::probe(url).await {
            Ok(settings) => {
                results.postgres_settings = format!(
                    "PostgreSQL {} at {url}: {}",
                    settings.version, settings.durability
                );
            }
            Err(reason) => {
                println!("PostgreSQL baseline skipped: {reason}");
                results.postgres_skipped = Some(reason);
            }
        },
    }
    for repetition in 1..=plan.repeat {
        println!("\n-- repetition {repetition} of {}", plan.repeat);
        run_once(&args, &plan, &mut results).await?;
    }
    print_summary(&args, &plan, &results);
    println!(
        "load avg:   {} (1, 5, 15 min) at the end",
        machine::load_average()
    );
    Ok(())
}

async fn run_once(args: &LedgerArgs, plan: &Plan, results: &mut Results) -> anyhow::Result<()> {
    let events = |channels: usize, buffers: bool| DurableEvents {
        bench: BenchConfig {
            dir: args.dir.clone(),
            clients: args.event_clients,
            skus: plan.skus,
            locations: args.locations,
            channels,
            buffers,
            ..BenchConfig::default()
        },
        events: plan.events,
        events_per_request: args.events_per_request,
    };
    let report = in_process("durable events, no channels", events(0, false)).await?;
    results.engine_durability = report.durability.clone();
    results.events.push(Throughput::from(&report));
    let report = in_process("durable events, channels", events(args.channels, false)).await?;
    results.channels.push(Throughput::from(&report));
    let report = in_process("durable events, buffers", events(args.channels, true)).await?;
    results.withheld = format!(
        "{} units withheld on {} SKU x channel pairs; pairs withholding per strategy: {:?}",
        report.withheld.units, report.withheld.pairs, report.withheld.by_strategy
    );
    results.buffers.push(Throughput::from(&report));

    let hot = http::HotSkuHttp {
        dir: args.dir.clone(),
        clients: args.clients,
        reservations: plan.reservations,
    };
    let run = http::run(&hot)
        .await
        .context("the hot-SKU HTTP benchmark")?;
    println!("  hot SKU over HTTP:          {}", run.throughput);
    println!("  group commit:               {}", run.commits);
    let check = format!(
        "granted {} of a stock of {} ({} refused, of which {} attempts after the stock ran \
         out); ledger reserved = {}: {}",
        run.granted,
        run.stock,
        run.refused,
        run.probes,
        run.ledger_reserved,
        if run.granted <= run.stock && run.ledger_reserved == run.granted as i64 {
            "no oversell"
        } else {
            "OVERSOLD"
        }
    );
    println!("  {check}");
    results.oversell.push(check);
    results.http_durability = run.durability;
    results.http.push(run.throughput);

    if results.postgres_skipped.is_none() {
        let baseline = postgres::PostgresBaseline {
            url: args.postgres_url.clone(),
            clients: args.clients,
            duration: plan.postgres,
        };
        let run = postgres::run(&baseline)
            .await
            .context("the PostgreSQL baseline")?;
        println!("  PostgreSQL baseline:        {run}");
        results.postgres.push(run);
    }
    Ok(())
}

async fn in_process(label: &str, config: DurableEvents) -> anyhow::Result<BenchReport> {
    let report = stockflow_engine::bench::durable_events(config)
        .await
        .with_context(|| format!("the in-process benchmark ({label})"))?;
    println!("  {label:<27} {}", Throughput::from(&report));
    Ok(report)
}

fn rate(runs: &Runs) -> Option<f64> {
    runs.median().map(|run| run.per_second())
}

fn print_summary(args: &LedgerArgs, plan: &Plan, results: &Results) {
    let events = rate(&results.events);
    let buffers = rate(&results.buffers);
    let drop_from = |plain: Option<f64>| {
        plain
            .zip(buffers)
            .map(|(plain, buffered)| 100.0 * (plain - buffered) / plain)
    };
    // The target compares with the figure without buffers: the same 10 channels, no buffer
    // policies (row 2), so that the drop is what the buffers cost. The drop from the ledger
    // without any channel (row 1) is printed beside it.
    let drop = drop_from(rate(&results.channels));
    let drop_ledger = drop_from(events);
    let percent = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |d| format!("{d:.1}%"));
    let http = rate(&results.http);
    let ratio = http
        .zip(rate(&results.postgres))
        .map(|(ours, pg)| ours / pg);
    let at_least = |value: Option<f64>, target: f64| value.map(|v| v >= target);
    let rows = [
        Row {
            name: format!(
                "durable events/s in process, requests of {}, {} clients, no channels",
                args.events_per_request, args.event_clients
            ),
            runs: results.events.clone(),
            target: format!(">= {}/s", report::thousands(EVENTS_TARGET_PER_SECOND)),
            met: at_least(events, EVENTS_TARGET_PER_SECOND),
        },
        Row {
            name: format!("the same, {} channels, no buffer policies", args.channels),
            runs: results.channels.clone(),
            target: String::new(),
            met: None,
        },
        Row {
            name: format!(
                "the same, {} channels x 4 strategies (static, dynamic, channel-aware, \
                 time window) + surge signals",
                args.channels
            ),
            runs: results.buffers.clone(),
            target: format!(
                "drop <= {BUFFER_DROP_TARGET_PERCENT:.0}% from the figure without buffers (row \
                 2): here {} ({} from row 1, no channels)",
                percent(drop),
                percent(drop_ledger)
            ),
            met: drop.map(|d| d <= BUFFER_DROP_TARGET_PERCENT),
        },
        Row {
            name: format!(
                "durable reservations/s, one hot SKU, over HTTP, {} keep-alive clients",
                args.clients
            ),
            runs: results.http.clone(),
            target: format!(">= {}/s", report::thousands(RESERVATIONS_TARGET_PER_SECOND)),
            met: at_least(http, RESERVATIONS_TARGET_PER_SECOND),
        },
        Row {
            name: format!(
                "PostgreSQL baseline: UPDATE ... WHERE available >= 1, one hot row, {} \
                 connections",
                args.clients
            ),
            runs: results.postgres.clone(),
            target: String::new(),
            met: None,
        },
    ];
    println!("\n== results (median of {} runs each)\n", plan.repeat);
    print!("{}", report::table(&rows));
    println!();
    match (&results.postgres_skipped, ratio) {
        (Some(reason), _) => println!("stockflow / PostgreSQL: baseline skipped ({reason})"),
        (None, Some(ratio)) => {
            println!("stockflow / PostgreSQL (hot-SKU reservations): {ratio:.2}x")
        }
        (None, None) => println!("stockflow / PostgreSQL: no figure"),
    }
    for check in &results.oversell {
        println!("oversell check: {check}");
    }
    println!(
        "buffers at the end of the median-sized run: {}",
        results.withheld
    );
    println!("durability (read back from SQLite):");
    println!("  in process: {}", results.engine_durability);
    println!("  HTTP server: {}", results.http_durability);
    if !results.postgres_settings.is_empty() {
        println!("  {}", results.postgres_settings);
    }
    println!(
        "sizes: {} events per in-process run over {} SKUs at {} locations; {} reservations per \
         HTTP run; {} s per baseline run",
        plan.events,
        plan.skus,
        args.locations,
        plan.reservations,
        plan.postgres.as_secs()
    );
}

/// The command as typed, quoted where a shell would need it.
fn command_line() -> String {
    std::env::args()
        .map(|arg| {
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
                format!("'{}'", arg.replace('\'', "'\\''"))
            } else {
                arg
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LedgerArgs,
    }

    #[test]
    fn quick_shrinks_what_was_not_given() {
        let cli = Cli::parse_from(["bench", "--quick", "--events", "7"]);
        let plan = Plan::from(&cli.args);
        assert_eq!((plan.repeat, plan.events, plan.reservations), (1, 7, 3_000));
        let cli = Cli::parse_from(["bench"]);
        let plan = Plan::from(&cli.args);
        assert_eq!(
            (plan.repeat, plan.events, plan.skus),
            (3, 1_000_000, 10_000)
        );
        assert_eq!(
            cli.args.postgres_url,
            "postgresql://postgres@127.0.0.1:5432/test"
        );
    }
}
