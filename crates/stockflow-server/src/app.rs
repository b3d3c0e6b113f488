//! Starting and stopping the service, and what every handler shares.
//!
//! Start: open the store, start the channel sync, open the engine (recovery), apply the
//! configured channels and policies as journaled commands, bind, serve. Stop (SIGTERM, SIGINT,
//! or [`ServerHandle::shutdown`]): stop taking connections, let requests in flight finish, let
//! the writer apply and commit what is queued, stop the channel sync with a grace period.

use crate::config::Config;
use crate::settings::ConfiguredSettings;
use crate::sink::ServerSink;
use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use stockflow_channels::SyncEngine;
use stockflow_core::ids::{Sku, TenantId};
use stockflow_core::time::Timestamp;
use stockflow_engine::{Engine, EngineConfig};
use stockflow_store::{SqliteConfig, SqliteStore, Store};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// The most SKUs the live feed remembers between two dashboard updates; beyond it the feed says
/// "many changed" and clients refresh their page instead of the listed rows.
const LIVE_TOUCHED_MAX: usize = 10_000;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub store: Arc<dyn Store>,
    pub sync: Option<Arc<SyncEngine>>,
    pub config: Arc<Config>,
    pub prometheus: PrometheusHandle,
    pub live: Arc<Live>,
    /// The operators' KPIs: other parts report reconciliation results and manual work here.
    pub kpis: Arc<crate::kpis::Kpis>,
    /// Reconciliation runs and mismatch counts (read by the KPIs, alerts and dashboard).
    pub reconciliation: Arc<crate::reconcile::ReconciliationStats>,
    /// Alert rules, open and resolved alerts, webhook deliveries.
    pub alerts: Arc<crate::alerts::Alerts>,
    /// First full syncs of new channels and their progress.
    pub full_syncs: Arc<crate::syncstate::FullSyncs>,
    /// Channel webhooks: settings, the durable inbox, the processor.
    pub inbound: Arc<crate::inbound::Inbound>,
    pub started_at: Timestamp,
}

impl AppState {
    /// Now, as the wall clock says; the writer keeps its own time from never going backwards.
    pub fn now(&self) -> Timestamp {
        wall_clock()
    }
}

pub fn wall_clock() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros() as i64)
        .unwrap_or(0);
    Timestamp(micros)
}

/// SKUs changed since the live feed last looked, coalesced; and a counter that moves on every
/// commit that touched any, for subscribers to wait on.
pub struct Live {
    touched: Mutex<LiveTouched>,
    version: watch::Sender<u64>,
    /// True once the server stops taking requests: live streams end, so that the graceful
    /// shutdown does not wait for browsers to leave.
    closed: watch::Sender<bool>,
}

#[derive(Default)]
struct LiveTouched {
    skus: HashSet<(TenantId, Sku)>,
    overflowed: bool,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            touched: Mutex::default(),
            version: watch::Sender::new(0),
            closed: watch::Sender::new(false),
        }
    }
}

impl Live {
    /// Called from the writer's sink: a set insert under a short lock.
    pub fn touched(&self, tenant: &TenantId, skus: &[Sku]) {
        if skus.is_empty() {
            return;
        }
        {
            let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
            for sku in skus {
                if touched.skus.len() >= LIVE_TOUCHED_MAX {
                    touched.overflowed = true;
                    break;
                }
                touched.skus.insert((tenant.clone(), sku.clone()));
            }
        }
        self.version.send_modify(|version| *version += 1);
    }

    /// Takes what changed since the last call: the SKUs, and whether some were not kept.
    pub fn take(&self) -> (Vec<(TenantId, Sku)>, bool) {
        let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        let overflowed = std::mem::take(&mut touched.overflowed);
        (touched.skus.drain().collect(), overflowed)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Tells live streams to end (the server is stopping).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Changes to true when the server stops taking requests.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }
}

pub struct Server;

/// A running server: its address, its shared state, and the way to stop it.
pub struct ServerHandle {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Starts everything and serves until [`ServerHandle::shutdown`] (or the engine stops).
    pub async fn start(config: Config) -> anyhow::Result<ServerHandle> {
        let config = Arc::new(config);
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("creating the data directory {}", config.data_dir.display())
        })?;
        let prometheus = crate::telemetry::prometheus();
        let configured = ConfiguredSettings::from_config(&config)?;
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(SqliteConfig::new(config.data_dir.join("stockflow.db")))
                .context("opening the journal")?,
        );
        let sync = if configured.sync.channels.is_empty() {
            None
        } else {
            Some(Arc::new(
                SyncEngine::from_config(&configured.sync).context("starting the channel sync")?,
            ))
        };
        let live = Arc::new(Live::default());
        let kpis = Arc::new(crate::kpis::Kpis::open(
            config.kpis.clone(),
            &config.data_dir,
        ));
        let full_syncs = Arc::new(crate::syncstate::FullSyncs::default());
        let alerts = Arc::new(crate::alerts::Alerts::new(config.alerts.clone()));
        let acknowledged = crate::syncstate::Acknowledged::load(&config.data_dir)?;
        let new_channels: Vec<_> = configured
            .sync
            .channels
            .iter()
            .filter(|(id, _)| acknowledged.is_new(id))
            .map(|(id, channel)| (channel.tenant().clone(), id.clone()))
            .collect();
        for (_, channel) in &new_channels {
            full_syncs.hold(channel.clone());
        }
        let sink = Arc::new(ServerSink {
            sync: sync.clone(),
            full_syncs: full_syncs.clone(),
            live: live.clone(),
            kpis: kpis.clone(),
            alerts: alerts.clone(),
        });
        let inbound = Arc::new(
            crate::inbound::Inbound::open(&config, &configured.sync)
                .context("starting the webhook inbox")?,
        );
        let engine = Engine::open(engine_config(&config), store.clone(), sink)
            .await
            .context("opening the ledger (recovery from the journal)")?;
        let state = AppState {
            engine,
            store,
            sync,
            config: config.clone(),
            prometheus,
            live,
            kpis,
            reconciliation: Arc::new(crate::reconcile::ReconciliationStats::new(
                config.reconcile.channels.runs_kept,
            )),
            alerts,
            full_syncs,
            inbound,
            started_at: wall_clock(),
        };
        configured.apply(&state).await?;
        state.kpis.start(&state).await?;
        crate::reconcile::channels::start(&state);
        state.alerts.start(&state);
        if let Some(sync) = &state.sync {
            crate::syncstate::resume(&state, sync.clone(), acknowledged, new_channels).await?;
        }
        // After the resume: the orders it processes tell a primed sync what channels took.
        state.inbound.start(state.clone());
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        let router = crate::api::router(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router, state.clone(), stopped));
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "stockflow is serving");
        Ok(ServerHandle {
            addr,
            state,
            stop: Some(stop),
            task,
        })
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    state: AppState,
    stopped: oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let engine = state.engine.clone();
    let live = state.live.clone();
    let shutdown = async move {
        tokio::select! {
            _ = stopped => {}
            failure = engine.stopped() => {
                tracing::error!(?failure, "the writer stopped; the server stops taking requests");
            }
        }
        live.close();
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    // HTTP no longer takes requests: the processor stops after the row in hand (the rest stay
    // pending in the inbox), then the writer applies and commits what is queued.
    state.inbound.stop().await;
    state
        .engine
        .shutdown()
        .await
        .context("stopping the writer")?;
    if let Some(sync) = &state.sync {
        sync.shutdown(Duration::from_secs(5)).await;
        state.full_syncs.flush().await;
    }
    state.kpis.stop().await;
    crate::reconcile::channels::stop(&state).await;
    state.alerts.stop().await;
    if let Some(failure) = state.engine.stopped().await {
        anyhow::bail!("the writer stopped: {failure}");
    }
    Ok(())
}

impl ServerHandle {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops taking requests, finishes those in flight and the writer's queue, then returns.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.context("the server task panicked")?
    }

    /// Serves until `signal` completes, then shuts down.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let engine = self.state.engine.clone();
        tokio::select! {
            () = signal => tracing::info!("shutting down: finishing requests in flight"),
            _ = engine.stopped() => {}
        }
        self.shutdown().await
    }
}

fn engine_config(config: &Config) -> EngineConfig {
    EngineConfig {
        ledger: config.ledger.ledger_config(),
        queue_capacity: config.engine.queue_capacity,
        batch_requests_max: config.engine.batch_requests_max,
        batch_events_max: config.engine.batch_events_max,
        snapshot_every_positions: config.engine.snapshot_every_positions,
        snapshot_every: Duration::from_secs(config.engine.snapshot_every_seconds),
        snapshots_kept: config.engine.snapshots_kept,
        ..EngineConfig::default()
    }
}
