//! The `stockflow` command.

mod bench;
mod client;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use stockflow_server::config::{Config, Overrides};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "stockflow",
    version,
    about = "Real-time inventory orchestration"
)]
struct Cli {
    #[command(subcommand)]
    command: CommandLine,
}

#[derive(Subcommand)]
enum CommandLine {
    /// Serve the HTTP API on the embedded store (SQLite in the data directory).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Where the journal, snapshots and audit trail live.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A TOML configuration file (channels, policies, limits).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check that the state recovered from the latest snapshot and the journal equals a replay
    /// of the whole journal from empty (the server must not be running on the same directory).
    Verify {
        #[arg(long)]
        data_dir: PathBuf,
        /// The server's configuration file: the ledger's limits in it decide how the journal
        /// replays.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The whole story in one command: stockflow, the Shopify, Amazon and TikTok Shop
    /// sandboxes, buyers and a warehouse, on a temporary data directory; ends with the KPIs and
    /// a timeline chart.
    Demo(stockflow::demo::DemoArgs),
    /// Reconciliation against a running server.
    Reconcile {
        #[command(subcommand)]
        which: ReconcileCommand,
    },
    /// The audit trail of a running server.
    Audit {
        #[command(subcommand)]
        which: AuditCommand,
    },
    /// Benchmarks (commands, not tests): see BENCHMARKS.md.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

#[derive(Subcommand)]
enum ReconcileCommand {
    /// Import a cycle count: compare it with on_hand as of its count time and report (a dry
    /// run), or apply the differences.
    Counts(client::CountsArgs),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Export the audit trail (filtered) as CSV or JSON lines.
    Export(client::ExportArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Durable events/s in process (without channels, with channels, with all four buffer
    /// strategies), durable reservations/s on one hot SKU over HTTP, and the PostgreSQL
    /// baseline, in one run.
    Ledger(bench::LedgerArgs),
    /// What the dashboard's live stream costs ingestion: events/s with the stream closed and
    /// open (paced at 5,000 events/s and unpaced), and the updates each browser receives.
    Dashboard(bench::DashboardArgs),
    /// Propagation latency from event ingest to the Shopify, Amazon and TikTok Shop sandboxes'
    /// acknowledgements at a sustained event rate, through the real server in process: per
    /// channel, drops to zero, Amazon's backlog and its age, internal latency.
    Sync(bench::SyncArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A benchmark's output is its table: the servers and engines it starts log warnings only.
    let default_filter = match cli.command {
        CommandLine::Bench { .. } | CommandLine::Demo(_) => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STOCKFLOW_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            CommandLine::Serve {
                listen,
                data_dir,
                config,
            } => serve(listen, data_dir, config).await,
            CommandLine::Verify { data_dir, config } => verify(data_dir, config).await,
            CommandLine::Reconcile {
                which: ReconcileCommand::Counts(args),
            } => client::counts(args).await,
            CommandLine::Audit {
                which: AuditCommand::Export(args),
            } => client::export(args).await,
            CommandLine::Bench {
                which: BenchCommand::Ledger(args),
            } => bench::ledger(args).await,
            CommandLine::Bench {
                which: BenchCommand::Dashboard(args),
            } => bench::dashboard(args).await,
            CommandLine::Bench {
                which: BenchCommand::Sync(args),
            } => bench::sync(args).await,
            CommandLine::Demo(args) => stockflow::demo::run(args).await.map(|_| ()),
        }
    })
}

async fn serve(
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = Config::load(config.as_deref(), &Overrides { listen, data_dir })?;
    let server = stockflow_server::Server::start(config).await?;
    println!("stockflow listening on {}", server.url());
    server.run_until(shutdown_signal()).await
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

async fn verify(data_dir: PathBuf, config: Option<PathBuf>) -> anyhow::Result<()> {
    let path = data_dir.join("stockflow.db");
    anyhow::ensure!(path.exists(), "no journal at {}", path.display());
    let store = stockflow_store::SqliteStore::open(stockflow_store::SqliteConfig::new(path))
        .context("opening the journal")?;
    let config = Config::load(config.as_deref(), &Overrides::default())?;
    let ledger = config.ledger.ledger_config();
    let report = tokio::task::spawn_blocking(move || stockflow_engine::verify(&store, &ledger))
        .await
        .context("verification panicked")??;
    println!("{report:?}");
    anyhow::ensure!(
        report.is_consistent(),
        "the state does not equal a replay of the journal"
    );
    println!("consistent: the snapshot + journal tail equal a full replay");
    Ok(())
}
