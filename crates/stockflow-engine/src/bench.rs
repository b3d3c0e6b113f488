//! The in-process half of `stockflow bench ledger`: requests pushed through [`Engine::submit`]
//! from concurrent tokio tasks into a fresh SQLite store (WAL, `synchronous=FULL`, one
//! transaction per batch: the durability of production, not a relaxed copy of it).
//!
//! The store lives in a temporary directory under `BenchConfig::dir` (the system's temporary
//! directory by default). Put it on the disk you mean to measure: on a tmpfs an fsync costs
//! nothing and the figure says nothing about durability.

use crate::clock::{Clock, SystemClock};
use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::sink::NoopSink;
use hdrhistogram::Histogram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stockflow_core::availability::{
    Allocation, Amount, AvailabilityCommand, ChannelAwareSettings, ChannelConfig, ChannelKind,
    ChannelLocation, ChannelRules, DynamicSettings, Percent, Policy, Ratio, Release, Selector,
    Signal, Strategy, TimeWindowSettings,
};
use stockflow_core::command::{Command, LedgerCommand, ReservationLineRequest, Reserve};
use stockflow_core::envelope::{EVENTS_PER_REQUEST_MAX, Input};
use stockflow_core::event::{Event, EventKind};
use stockflow_core::ids::{
    ActorId, ChannelId, EventId, LocationId, PolicyId, ReservationId, Sku, SourceId, TenantId,
};
use stockflow_core::outcome::Reply;
use stockflow_core::quantity::QuantityState;
use stockflow_store::{SqliteConfig, SqliteStore, Store};

#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Where the temporary store is created; `None`: the system's temporary directory.
    pub dir: Option<PathBuf>,
    /// Concurrent tokio tasks submitting requests, each waiting for its answer before the next.
    pub clients: usize,
    pub skus: usize,
    pub locations: usize,
    /// Channels configured before the run (each served by every location), so that every
    /// change also recomputes and audits what the channels may sell. 0: none.
    pub channels: usize,
    /// With `channels`: every channel applies all four buffer strategies (static, dynamic,
    /// channel-aware, an open time window), and every SKU carries a surge signal so that the
    /// dynamic buffer withholds stock too. See [`BUFFER_POLICIES`].
    pub buffers: bool,
    pub engine: EngineConfig,
}

/// The policies every channel applies when [`BenchConfig::buffers`] is set, in this order.
pub const BUFFER_POLICIES: [&str; 4] = [
    "static-2pct",
    "viral-guard",
    "marketplace-risk",
    "flash-sale",
];

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            dir: None,
            // Enough requests in flight to fill both stages of the pipeline with large batches:
            // on this 2-core machine 16 clients of 1,000 events beat 8 (smaller batches) and 32
            // (longer queues, no more throughput).
            clients: 16,
            skus: 10_000,
            locations: 4,
            channels: 0,
            buffers: false,
            engine: EngineConfig {
                // A run is short; a snapshot in the middle would measure the snapshot.
                snapshot_every_positions: u64::MAX,
                snapshot_every: Duration::from_secs(24 * 3600),
                ..EngineConfig::default()
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct DurableEvents {
    pub bench: BenchConfig,
    /// Events submitted in the measured phase.
    pub events: u64,
    /// Events per request, at most [`EVENTS_PER_REQUEST_MAX`].
    pub events_per_request: usize,
}

impl Default for DurableEvents {
    fn default() -> Self {
        Self {
            bench: BenchConfig::default(),
            events: 2_000_000,
            events_per_request: EVENTS_PER_REQUEST_MAX,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HotSkuReservations {
    pub bench: BenchConfig,
    /// Reservations of one unit each, all of the same SKU at the same location.
    pub reservations: u64,
    /// Units on hand before the run; reservations beyond it are refused (never granted).
    pub stock: i64,
}

impl Default for HotSkuReservations {
    fn default() -> Self {
        Self {
            bench: BenchConfig {
                clients: 64,
                ..BenchConfig::default()
            },
            reservations: 200_000,
            stock: 150_000,
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub name: &'static str,
    /// Events (or reservation requests) acknowledged as durable (or refused) in the run.
    pub operations: u64,
    pub requests: u64,
    pub elapsed: Duration,
    /// Latency of one request, submit to answer.
    pub request_p50: Duration,
    pub request_p99: Duration,
    pub request_max: Duration,
    /// Reservations granted and refused (hot-SKU run only).
    pub granted: u64,
    pub refused: u64,
    /// Journaled envelopes and the database size at the end.
    pub journal_position: u64,
    pub database_bytes: u64,
    /// The store's durability settings, as read back from the writer's connection.
    pub durability: String,
    /// At the end: SKU x channel pairs with something withheld, the buffer components they
    /// show (by strategy name, e.g. `static`, `hold`) and the units withheld in all.
    pub withheld: WithheldSummary,
}

/// What the buffers withhold at the end of a run, read from the published views.
#[derive(Debug, Clone, Default)]
pub struct WithheldSummary {
    pub pairs: u64,
    pub units: i64,
    /// Pairs in which each strategy withholds something, by strategy name.
    pub by_strategy: std::collections::BTreeMap<&'static str, u64>,
}

impl WithheldSummary {
    fn read(engine: &Engine, tenant: &TenantId) -> Self {
        let mut summary = WithheldSummary::default();
        let reads = engine.reads();
        let mut after: Option<Sku> = None;
        loop {
            let page = reads.skus(tenant, after.as_ref(), crate::reads::SKU_PAGE_MAX);
            let Some(last) = page.last() else { break };
            after = Some(last.sku.clone());
            for channel in page.iter().flat_map(|view| view.channels()) {
                if channel.withheld > 0 {
                    summary.pairs += 1;
                    summary.units += channel.withheld;
                }
                for buffer in channel.buffers.iter().filter(|b| b.quantity > 0) {
                    *summary
                        .by_strategy
                        .entry(buffer.strategy.name())
                        .or_default() += 1;
                }
            }
        }
        summary
    }
}

impl BenchReport {
    pub fn operations_per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} operations in {:.2} s = {:.0}/s; {} requests, p50 {:.2} ms, p99 {:.2} ms, max \
             {:.2} ms; journal position {}, database {:.1} MiB ({})",
            self.name,
            self.operations,
            self.elapsed.as_secs_f64(),
            self.operations_per_second(),
            self.requests,
            self.request_p50.as_secs_f64() * 1e3,
            self.request_p99.as_secs_f64() * 1e3,
            self.request_max.as_secs_f64() * 1e3,
            self.journal_position,
            self.database_bytes as f64 / (1024.0 * 1024.0),
            self.durability,
        )?;
        if self.granted + self.refused > 0 {
            write!(f, "; granted {}, refused {}", self.granted, self.refused)?;
        }
        if self.withheld.pairs > 0 {
            write!(
                f,
                "; {} units withheld on {} SKU x channel pairs",
                self.withheld.units, self.withheld.pairs
            )?;
        }
        Ok(())
    }
}

/// Durable events per second through the writer and the journal: `clients` tasks each submit
/// requests of `events_per_request` receipts and picks spread over the SKUs, until `events`.
pub async fn durable_events(config: DurableEvents) -> Result<BenchReport, EngineError> {
    let per_request = config.events_per_request.clamp(1, EVENTS_PER_REQUEST_MAX);
    let setup = Setup::open(&config.bench).await?;
    setup.stock_every_sku(1_000).await?;
    setup.signal_every_sku(config.bench.clients).await?;
    let clients = config.bench.clients.max(1);
    let requests_total = config.events.div_ceil(per_request as u64);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let engine = setup.engine.clone();
            let shape = setup.shape.clone();
            // Requests client, client + clients, ...: the clients share the work evenly.
            let requests = (client as u64..requests_total).step_by(clients).count() as u64;
            tokio::spawn(async move {
                events_client(engine, shape, client, requests, per_request).await
            })
        })
        .collect();
    let mut latencies = histogram();
    let mut operations = 0;
    for task in tasks {
        let (histogram, events) = join(task).await??;
        latencies.add(&histogram).expect("same bounds");
        operations += events;
    }
    setup
        .finish(
            "durable events",
            operations,
            latencies,
            started.elapsed(),
            (0, 0),
        )
        .await
}

/// Reservations per second on one hot SKU: `clients` tasks each reserve one unit at a time of
/// the same SKU until `reservations` were answered. Never more are granted than the stock.
pub async fn hot_sku_reservations_in_process(
    config: HotSkuReservations,
) -> Result<BenchReport, EngineError> {
    let bench = BenchConfig {
        skus: 1,
        locations: 1,
        ..config.bench.clone()
    };
    let setup = Setup::open(&bench).await?;
    setup.stock_every_sku(config.stock).await?;
    let clients = bench.clients.max(1);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let engine = setup.engine.clone();
            let shape = setup.shape.clone();
            let requests = (client as u64..config.reservations)
                .step_by(clients)
                .count() as u64;
            tokio::spawn(async move { reserve_client(engine, shape, client, requests).await })
        })
        .collect();
    let mut latencies = histogram();
    let (mut granted, mut refused) = (0, 0);
    for task in tasks {
        let (histogram, client_granted, client_refused) = join(task).await??;
        latencies.add(&histogram).expect("same bounds");
        granted += client_granted;
        refused += client_refused;
    }
    if granted > config.stock as u64 {
        return Err(EngineError::Stopped(format!(
            "oversold: {granted} reservations granted for {} units",
            config.stock
        )));
    }
    let elapsed = started.elapsed();
    setup
        .finish(
            "hot SKU reservations (in process)",
            granted + refused,
            latencies,
            elapsed,
            (granted, refused),
        )
        .await
}

/// The names of the benchmark's SKUs and locations.
#[derive(Clone)]
struct Shape {
    tenant: TenantId,
    skus: Arc<Vec<Sku>>,
    locations: Arc<Vec<LocationId>>,
}

impl Shape {
    fn new(skus: usize, locations: usize) -> Self {
        let id = |prefix: &str, i: usize| format!("{prefix}-{i:06}");
        Self {
            tenant: TenantId::default_tenant(),
            skus: Arc::new(
                (0..skus.max(1))
                    .map(|i| Sku::parse(id("SKU", i)).expect("valid"))
                    .collect(),
            ),
            locations: Arc::new(
                (0..locations.max(1))
                    .map(|i| LocationId::parse(id("loc", i)).expect("valid"))
                    .collect(),
            ),
        }
    }

    /// SKU `index` (modulo the count) and its location.
    fn place(&self, index: u64) -> (Sku, LocationId) {
        let sku = (index % self.skus.len() as u64) as usize;
        (
            self.skus[sku].clone(),
            self.locations[sku % self.locations.len()].clone(),
        )
    }
}

fn channel_id(index: usize) -> ChannelId {
    ChannelId::parse(format!("channel-{index}")).expect("valid")
}

struct Setup {
    engine: Engine,
    store: Arc<SqliteStore>,
    shape: Shape,
    /// Whether the channels apply [`BUFFER_POLICIES`] and SKUs carry surge signals.
    buffers: bool,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn open(bench: &BenchConfig) -> Result<Setup, EngineError> {
        let dir = match &bench.dir {
            Some(parent) => tempfile::tempdir_in(parent),
            None => tempfile::tempdir(),
        }
        .map_err(|e| {
            EngineError::Config(format!("cannot create the benchmark's directory: {e}"))
        })?;
        let store = Arc::new(SqliteStore::open(SqliteConfig::new(
            dir.path().join("bench.db"),
        ))?);
        let engine = Engine::open(
            bench.engine.clone(),
            store.clone() as Arc<dyn Store>,
            Arc::new(NoopSink),
        )
        .await?;
        let mut setup = Setup {
            engine,
            store,
            shape: Shape::new(bench.skus, bench.locations),
            buffers: false,
            _dir: dir,
        };
        setup.buffers = bench.buffers && bench.channels > 0;
        if setup.buffers {
            setup.configure_policies(bench.channels).await?;
        }
        setup.configure_channels(bench.channels).await?;
        Ok(setup)
    }

    async fn command(&self, command: AvailabilityCommand) -> Result<(), EngineError> {
        let input = Input::Command {
            actor: ActorId::parse("bench").expect("valid"),
            command: Command::Availability(command),
        };
        let submitted = self
            .engine
            .submit(self.shape.tenant.clone(), input, SystemClock.now())
            .await?;
        match submitted.reply {
            Reply::Rejected(rejection) => Err(EngineError::Config(format!(
                "the benchmark's settings were refused: {rejection:?}"
            ))),
            _ => Ok(()),
        }
    }

    /// The four strategies of [`BUFFER_POLICIES`], all withholding from every SKU for the whole
    /// run: 2% static; dynamic on the default curve (driven by the surge signals of
    /// [`Setup::signal_every_sku`]); channel-aware at 3% times a factor that differs per
    /// channel (so no two channels share a computation); a time window open from an hour ago
    /// to three hours ahead.
    async fn configure_policies(&self, channels: usize) -> Result<(), EngineError> {
        let now = SystemClock.now();
        let factors = (0..channels)
            .map(|index| {
                (
                    channel_id(index),
                    Ratio::from_thousandths(1_000 + 100 * index as i64),
                )
            })
            .collect();
        let strategies = [
            Strategy::Static {
                amount: Amount::Percent(Percent::whole(2)),
            },
            Strategy::Dynamic(DynamicSettings::default()),
            Strategy::ChannelAware(ChannelAwareSettings {
                base: Percent::whole(3),
                factors,
                default_factor: Ratio::ONE,
                cancellation_weight: Ratio::ONE,
                maximum: Percent::whole(25),
            }),
            Strategy::TimeWindow(TimeWindowSettings {
                starts_at: now.plus_seconds(-3_600),
                ends_at: now.plus_seconds(3 * 3_600),
                amount: Amount::Units(5),
                release: Release::Gradual {
                    period_seconds: 3_600,
                    steps: 4,
                },
            }),
        ];
        for (name, strategy) in BUFFER_POLICIES.into_iter().zip(strategies) {
            self.command(AvailabilityCommand::UpsertPolicy(Box::new(Policy {
                id: PolicyId::parse(name).expect("valid"),
                selector: Selector::default(),
                strategy,
            })))
            .await?;
        }
        Ok(())
    }

    /// An 8x surge signal on every SKU (not measured), from `clients` tasks at once.
    async fn signal_every_sku(&self, clients: usize) -> Result<(), EngineError> {
        if !self.buffers {
            return Ok(());
        }
        let clients = clients.max(1);
        let tasks: Vec<_> = (0..clients)
            .map(|client| {
                let engine = self.engine.clone();
                let shape = self.shape.clone();
                tokio::spawn(async move {
                    for sku in shape.skus.iter().skip(client).step_by(clients) {
                        let command = AvailabilityCommand::RecordSignal(Signal {
                            sku: sku.clone(),
                            source: SourceId::parse("bench-surge").expect("valid"),
                            multiplier: Ratio::whole(8),
                            duration_seconds: 7_200,
                        });
                        let input = Input::Command {
                            actor: ActorId::parse("bench").expect("valid"),
                            command: Command::Availability(command),
                        };
                        let submitted = submit(&engine, &shape.tenant, input).await?;
                        if let Reply::Rejected(rejection) = submitted.reply {
                            return Err(EngineError::Config(format!(
                                "a surge signal was refused: {rejection:?}"
                            )));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for task in tasks {
            join(task).await??;
        }
        Ok(())
    }

    async fn configure_channels(&self, channels: usize) -> Result<(), EngineError> {
        for index in 0..channels {
            let channel = ChannelConfig {
                id: channel_id(index),
                kind: ChannelKind::Webhook,
                locations: self
                    .shape
                    .locations
                    .iter()
                    .enumerate()
                    .map(|(priority, location)| ChannelLocation {
                        location: location.clone(),
                        priority: priority as u32,
                    })
                    .collect(),
                per_location: index % 2 == 0,
            };
            let command = if self.buffers {
                AvailabilityCommand::ConfigureChannel {
                    config: channel,
                    rules: ChannelRules {
                        allocation: Allocation::default(),
                        policies: BUFFER_POLICIES
                            .iter()
                            .map(|name| PolicyId::parse(*name).expect("valid"))
                            .collect(),
                    },
                }
            } else {
                AvailabilityCommand::UpsertChannel(channel)
            };
            self.command(command).await?;
        }
        Ok(())
    }

    /// Receives `quantity` of every SKU (not measured).
    async fn stock_every_sku(&self, quantity: i64) -> Result<(), EngineError> {
        let source = SourceId::parse("bench-setup").expect("valid");
        let indexes: Vec<u64> = (0..self.shape.skus.len() as u64).collect();
        for (chunk_index, chunk) in indexes.chunks(EVENTS_PER_REQUEST_MAX).enumerate() {
            let events = chunk
                .iter()
                .map(|&index| {
                    let (sku, location) = self.shape.place(index);
                    let kind = EventKind::Received {
                        sku,
                        location,
                        quantity,
                        to: QuantityState::Available,
                    };
                    bench_event(&source, index + 1, kind)
                })
                .collect();
            let submitted = self
                .engine
                .submit(
                    self.shape.tenant.clone(),
                    Input::Events(events),
                    SystemClock.now(),
                )
                .await?;
            if submitted.position.is_none() {
                return Err(EngineError::Stopped(format!(
                    "setup request {chunk_index} changed nothing"
                )));
            }
        }
        Ok(())
    }

    async fn finish(
        self,
        name: &'static str,
        operations: u64,
        latencies: Histogram<u64>,
        elapsed: Duration,
        (granted, refused): (u64, u64),
    ) -> Result<BenchReport, EngineError> {
        let journal_position = self.engine.stats().shards[0].last_position;
        let withheld = WithheldSummary::read(&self.engine, &self.shape.tenant);
        self.engine.shutdown().await?;
        let settings = self.store.settings()?;
        let database_bytes = std::fs::read_dir(self._dir.path())
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        let micros = |value: u64| Duration::from_micros(value);
        Ok(BenchReport {
            name,
            operations,
            requests: latencies.len(),
            elapsed,
            request_p50: micros(latencies.value_at_quantile(0.50)),
            request_p99: micros(latencies.value_at_quantile(0.99)),
            request_max: micros(latencies.max()),
            granted,
            refused,
            journal_position,
            database_bytes,
            durability: format!(
                "journal_mode={} synchronous={}",
                settings.journal_mode, settings.synchronous
            ),
            withheld,
        })
    }
}

fn bench_event(source: &SourceId, seq: u64, kind: EventKind) -> Event {
    Event {
        event_id: EventId::parse(format!("{source}-{seq}")).expect("valid"),
        source: source.clone(),
        seq,
        occurred_at: None,
        reason: None,
        reference: None,
        kind,
    }
}

/// One client of the events benchmark: receipts of 3 and picks of 1, alternating, on SKUs
/// picked by a multiplicative hash of the event number (spread, reproducible).
async fn events_client(
    engine: Engine,
    shape: Shape,
    client: usize,
    requests: u64,
    per_request: usize,
) -> Result<(Histogram<u64>, u64), EngineError> {
    let source = SourceId::parse(format!("bench-{client}")).expect("valid");
    let mut latencies = histogram();
    let mut seq = 0_u64;
    for _ in 0..requests {
        let events: Vec<Event> = (0..per_request)
            .map(|_| {
                seq += 1;
                let (sku, location) = shape.place(seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20);
                let kind = if seq % 2 == 1 {
                    EventKind::Received {
                        sku,
                        location,
                        quantity: 3,
                        to: QuantityState::Available,
                    }
                } else {
                    EventKind::Picked {
                        sku,
                        location,
                        quantity: 1,
                        reservation_id: None,
                    }
                };
                bench_event(&source, seq, kind)
            })
            .collect();
        let started = Instant::now();
        let submitted = submit(&engine, &shape.tenant, Input::Events(events)).await?;
        record(&mut latencies, started.elapsed());
        if submitted.position.is_none() {
            return Err(EngineError::Stopped(
                "a benchmark request changed nothing".to_owned(),
            ));
        }
    }
    Ok((latencies, seq))
}

async fn reserve_client(
    engine: Engine,
    shape: Shape,
    client: usize,
    requests: u64,
) -> Result<(Histogram<u64>, u64, u64), EngineError> {
    let mut latencies = histogram();
    let (mut granted, mut refused) = (0, 0);
    let (sku, location) = shape.place(0);
    for index in 0..requests {
        let input = Input::Command {
            actor: ActorId::parse("bench").expect("valid"),
            command: Command::Ledger(LedgerCommand::Reserve(Reserve {
                reservation_id: ReservationId::parse(format!("c{client}-{index}")).expect("valid"),
                channel: None,
                lines: vec![ReservationLineRequest {
                    sku: sku.clone(),
                    location: Some(location.clone()),
                    quantity: 1,
                }],
                ttl_seconds: 3600,
            })),
        };
        let started = Instant::now();
        let submitted = submit(&engine, &shape.tenant, input).await?;
        record(&mut latencies, started.elapsed());
        match submitted.reply {
            Reply::Reservation { .. } => granted += 1,
            Reply::Rejected(_) => refused += 1,
            other => return Err(EngineError::Stopped(format!("unexpected reply {other:?}"))),
        }
    }
    Ok((latencies, granted, refused))
}

/// Submits with the current time. The queue (4096 by default) is larger than any sensible
/// client count, so `Overloaded` is a failure of the run, not something to retry.
async fn submit(
    engine: &Engine,
    tenant: &TenantId,
    input: Input,
) -> Result<crate::Submitted, EngineError> {
    engine
        .submit(tenant.clone(), input, SystemClock.now())
        .await
}

/// Request latencies in microseconds, 1 us to 60 s, 3 significant figures.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = (latency.as_micros() as u64).clamp(1, 60_000_000);
    histogram.record(micros).expect("clamped into bounds");
}

async fn join<T>(task: tokio::task::JoinHandle<T>) -> Result<T, EngineError> {
    task.await
        .map_err(|e| EngineError::Stopped(format!("a benchmark client failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_buffers_every_strategy_withholds_on_every_channel() {
        let config = DurableEvents {
            bench: BenchConfig {
                clients: 3,
                skus: 20,
                locations: 2,
                channels: 3,
                buffers: true,
                ..BenchConfig::default()
            },
            events: 2_000,
            events_per_request: 500,
        };
        let report = durable_events(config).await.unwrap();
        assert_eq!(report.operations, 2_000);
        assert_eq!(report.withheld.pairs, 20 * 3, "{report}");
        for strategy in ["static", "dynamic", "channel_aware", "time_window"] {
            assert_eq!(
                report.withheld.by_strategy.get(strategy),
                Some(&(20 * 3)),
                "{strategy}: {:?}",
                report.withheld
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_buffers_nothing_is_withheld() {
        let config = DurableEvents {
            bench: BenchConfig {
                clients: 2,
                skus: 20,
                locations: 2,
                channels: 3,
                ..BenchConfig::default()
            },
            events: 1_000,
            events_per_request: 500,
        };
        let report = durable_events(config).await.unwrap();
        assert_eq!(report.withheld.pairs, 0, "{report}");
    }
}
