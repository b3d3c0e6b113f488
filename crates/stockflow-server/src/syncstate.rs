//! What each channel last acknowledged, kept across restarts, so that a restart neither loses a
//! change that was committed but not yet pushed nor re-sends the whole catalogue.
//!
//! A task follows the channel sync's acknowledgements (single values, and the values a first
//! full sync's bulk path established) and upserts them, a batch at a time, into
//! `sync.db` in the data directory. At start, the channels are primed with those values, and the
//! current ATS of every SKU x channel is offered where it differs from what the channel last
//! acknowledged (or where nothing is known). If the task ever falls behind the sync's event
//! stream, the values it missed are unknown: it records that, and the next start offers every
//! key of the channel again.

use crate::app::AppState;
use anyhow::Context;
use rusqlite::{Connection, params};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use stockflow_channels::{FullSyncProgress, SyncEngine, SyncEvent, SyncKey};
use stockflow_core::ids::{ChannelId, LocationId, Sku, TenantId};
use stockflow_core::outcome::AtsChange;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

/// Acknowledgements written per transaction at most.
const WRITE_BATCH_MAX: usize = 4096;
/// How long acknowledgements wait to be written together.
const WRITE_INTERVAL: Duration = Duration::from_millis(250);

type AckKey = (ChannelId, Sku, Option<LocationId>);

/// A channel that never acknowledged anything gets the whole catalogue through its bulk path
/// (Amazon's listings feed; Shopify's 250-quantity calls) once it has at least this many keys.
const FULL_SYNC_KEYS_MIN: usize = 100;

/// First full syncs of new channels: their progress, and the changes held back while they run.
///
/// A channel that never acknowledged anything gets the whole catalogue through its bulk path.
/// From the moment the server starts until that sync ends, the channel's changes from the
/// ledger are held (one per key, the newest) instead of being sent one by one beside the bulk
/// path; when it ends, the held values that differ from what the bulk path sent are offered.
#[derive(Default)]
pub struct FullSyncs {
    any_holding: AtomicBool,
    inner: std::sync::Mutex<FullSyncsInner>,
    /// The task that records acknowledgements: told to write what it holds and stop.
    follower: std::sync::Mutex<
        Option<(
            tokio::sync::oneshot::Sender<()>,
            tokio::task::JoinHandle<()>,
        )>,
    >,
}

#[derive(Default)]
struct FullSyncsInner {
    holding: HashMap<ChannelId, HashMap<SyncKey, AtsChange>>,
    progress: BTreeMap<ChannelId, watch::Receiver<FullSyncProgress>>,
}

impl FullSyncs {
    fn lock(&self) -> std::sync::MutexGuard<'_, FullSyncsInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds the channel's changes until [`FullSyncs::release`].
    pub fn hold(&self, channel: ChannelId) {
        self.lock().holding.entry(channel).or_default();
        self.any_holding.store(true, Ordering::Release);
    }

    /// From the effect sink: keeps the changes of held channels and answers the others, or
    /// `None` when nothing is held (offer everything: the common case, without a lock).
    pub fn filter(&self, changes: &[AtsChange]) -> Option<Vec<AtsChange>> {
        if !self.any_holding.load(Ordering::Acquire) {
            return None;
        }
        let mut inner = self.lock();
        let mut rest = Vec::new();
        for change in changes {
            match inner.holding.get_mut(&change.channel) {
                Some(held) => {
                    let key = SyncKey::new(change.sku.clone(), change.location.clone());
                    held.insert(key, change.clone());
                }
                None => rest.push(change.clone()),
            }
        }
        Some(rest)
    }

    /// Stops holding the channel's changes and returns those held.
    fn release(&self, channel: &ChannelId) -> Vec<AtsChange> {
        let mut inner = self.lock();
        let held = inner.holding.remove(channel).unwrap_or_default();
        self.any_holding
            .store(!inner.holding.is_empty(), Ordering::Release);
        held.into_values().collect()
    }

    /// Writes the acknowledgements not yet recorded and stops recording (at shutdown, after the
    /// channel sync stopped).
    pub async fn flush(&self) {
        let follower = self
            .follower
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((stop, task)) = follower {
            let _ = stop.send(());
            let _ = task.await;
        }
    }

    /// Every full sync of this process, by channel.
    pub fn progress(&self) -> BTreeMap<ChannelId, FullSyncProgress> {
        let inner = self.lock();
        inner
            .progress
            .iter()
            .map(|(channel, progress)| (channel.clone(), progress.borrow().clone()))
            .collect()
    }
}

/// What each channel acknowledged before this start, and the channels whose record is
/// incomplete. Read before the engine opens, so that new channels are held from the start.
pub struct Acknowledged {
    known: HashMap<AckKey, i64>,
    unreliable: Vec<ChannelId>,
}

impl Acknowledged {
    pub fn load(data_dir: &Path) -> anyhow::Result<Acknowledged> {
        let (known, unreliable) = load(&data_dir.join("sync.db"))?;
        Ok(Acknowledged { known, unreliable })
    }

    /// A channel that never acknowledged anything.
    pub fn is_new(&self, channel: &ChannelId) -> bool {
        !self.known.keys().any(|(c, _, _)| c == channel)
    }
}

/// Primes the sync with what was acknowledged, offers what differs, runs the first full sync of
/// new channels, and starts the task that keeps the record up to date.
pub async fn resume(
    state: &AppState,
    sync: Arc<SyncEngine>,
    acknowledged: Acknowledged,
    new_channels: Vec<(TenantId, ChannelId)>,
) -> anyhow::Result<()> {
    let path = state.config.data_dir.join("sync.db");
    let events = sync.subscribe();
    let Acknowledged { known, unreliable } = acknowledged;
    for (channel, values) in group_by_channel(&known) {
        if !unreliable.contains(&channel) {
            let _ = sync.prime(&channel, &values);
        }
    }
    let is_new = |channel: &ChannelId| new_channels.iter().any(|(_, c)| c == channel);
    let changes: Vec<AtsChange> = differences(state, &known, &unreliable)
        .into_iter()
        .filter(|c| !is_new(&c.channel))
        .collect();
    if !changes.is_empty() {
        tracing::info!(
            keys = changes.len(),
            "offering values the channels have not acknowledged"
        );
        for chunk in changes.chunks(1024) {
            sync.offer(chunk);
        }
    }
    for (tenant, channel) in new_channels {
        tokio::spawn(first_full_sync(
            state.clone(),
            sync.clone(),
            tenant,
            channel,
        ));
    }
    let connection = tokio::task::spawn_blocking(move || -> anyhow::Result<Connection> {
        let connection = open(&path)?;
        connection.execute("DELETE FROM unreliable", [])?;
        Ok(connection)
    })
    .await??;
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(follow(connection, events, stopped));
    *state
        .full_syncs
        .follower
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some((stop, task));
    Ok(())
}

/// The longest a first full sync waits for the ledger to finish applying a settings change to
/// every SKU (until then the SKU views may not show the channel yet).
const SWEEP_WAIT_MAX: Duration = Duration::from_secs(600);

async fn first_full_sync(
    state: AppState,
    sync: Arc<SyncEngine>,
    tenant: TenantId,
    channel: ChannelId,
) {
    let deadline = tokio::time::Instant::now() + SWEEP_WAIT_MAX;
    while state
        .engine
        .reads()
        .settings(&tenant)
        .is_some_and(|s| s.availability.sweeping)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let values: Vec<AtsChange> = differences(&state, &HashMap::new(), &[])
        .into_iter()
        .filter(|c| c.channel == channel)
        .collect();
    let sent: HashMap<SyncKey, i64> = values
        .iter()
        .map(|c| {
            (
                SyncKey::new(c.sku.clone(), c.location.clone()),
                c.available_to_sell,
            )
        })
        .collect();
    if values.len() >= FULL_SYNC_KEYS_MIN {
        match sync.full_sync(&channel, values) {
            Ok(progress) => {
                tracing::info!(%channel, keys = sent.len(), "first full sync of the channel");
                state
                    .full_syncs
                    .lock()
                    .progress
                    .insert(channel.clone(), progress.clone());
                log_progress(channel.clone(), progress).await;
            }
            Err(error) => {
                tracing::warn!(%channel, %error, "the full sync could not start; values go one by one");
                state.full_syncs.release(&channel);
                return;
            }
        }
    } else {
        sync.offer(&values);
    }
    let held: Vec<AtsChange> = state
        .full_syncs
        .release(&channel)
        .into_iter()
        .filter(|c| {
            sent.get(&SyncKey::new(c.sku.clone(), c.location.clone())) != Some(&c.available_to_sell)
        })
        .collect();
    if !held.is_empty() {
        tracing::info!(%channel, keys = held.len(), "offering values that changed during the full sync");
        sync.offer(&held);
    }
}

/// Logs a full sync's progress every few seconds until it finishes.
async fn log_progress(channel: ChannelId, mut progress: watch::Receiver<FullSyncProgress>) {
    let mut last_logged = tokio::time::Instant::now();
    if progress.borrow_and_update().finished {
        return;
    }
    while progress.changed().await.is_ok() {
        let now = progress.borrow().clone();
        if now.finished {
            tracing::info!(%channel, done = now.done, failed = now.failed, total = now.total, error = ?now.error, "full sync finished");
            return;
        }
        if last_logged.elapsed() >= Duration::from_secs(2) {
            last_logged = tokio::time::Instant::now();
            tracing::info!(%channel, done = now.done, failed = now.failed, total = now.total, "full sync in progress");
        }
    }
}

fn open(path: &Path) -> anyhow::Result<Connection> {
    let connection =
        Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    connection.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS acknowledged (
             channel TEXT NOT NULL, sku TEXT NOT NULL, location TEXT NOT NULL,
             quantity INTEGER NOT NULL, position INTEGER NOT NULL,
             PRIMARY KEY (channel, sku, location));
         CREATE TABLE IF NOT EXISTS unreliable (channel TEXT PRIMARY KEY);",
    )?;
    Ok(connection)
}

fn load(path: &Path) -> anyhow::Result<(HashMap<AckKey, i64>, Vec<ChannelId>)> {
    let connection = open(path)?;
    let mut known = HashMap::new();
    let mut statement =
        connection.prepare("SELECT channel, sku, location, quantity FROM acknowledged")?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (channel, sku, location, quantity) = row?;
        let (Ok(channel), Ok(sku)) = (ChannelId::parse(channel), Sku::parse(sku)) else {
            continue;
        };
        let location = if location.is_empty() {
            None
        } else {
            LocationId::parse(location).ok()
        };
        known.insert((channel, sku, location), quantity);
    }
    let mut unreliable = Vec::new();
    let mut statement = connection.prepare("SELECT channel FROM unreliable")?;
    for channel in statement.query_map([], |row| row.get::<_, String>(0))? {
        if let Ok(channel) = ChannelId::parse(channel?) {
            unreliable.push(channel);
        }
    }
    Ok((known, unreliable))
}

fn group_by_channel(known: &HashMap<AckKey, i64>) -> HashMap<ChannelId, Vec<(SyncKey, i64)>> {
    let mut grouped: HashMap<ChannelId, Vec<(SyncKey, i64)>> = HashMap::new();
    for ((channel, sku, location), quantity) in known {
        grouped
            .entry(channel.clone())
            .or_default()
            .push((SyncKey::new(sku.clone(), location.clone()), *quantity));
    }
    grouped
}

/// The current ATS of every SKU x channel (x location) that differs from what was acknowledged.
fn differences(
    state: &AppState,
    known: &HashMap<AckKey, i64>,
    unreliable: &[ChannelId],
) -> Vec<AtsChange> {
    let reads = state.engine.reads();
    let now = crate::app::wall_clock();
    let mut changes = Vec::new();
    for tenant in reads.tenants() {
        let position = reads.position(state.engine.shard_of(&tenant));
        let mut after: Option<Sku> = None;
        loop {
            let page = reads.skus(
                &tenant,
                after.as_ref(),
                stockflow_engine::reads::SKU_PAGE_MAX,
            );
            let Some(last) = page.last() else { break };
            after = Some(last.sku.clone());
            for view in &page {
                for channel in view.channels() {
                    let values: Vec<(Option<LocationId>, i64, i64)> = if channel.per_location {
                        channel
                            .locations
                            .iter()
                            .map(|l| (Some(l.location.clone()), l.available_to_sell, l.withheld))
                            .collect()
                    } else {
                        vec![(None, channel.available_to_sell, channel.withheld)]
                    };
                    for (location, ats, withheld) in values {
                        let key = (channel.channel.clone(), view.sku.clone(), location.clone());
                        if !unreliable.contains(&channel.channel) && known.get(&key) == Some(&ats) {
                            continue;
                        }
                        changes.push(change(&tenant, &key, ats, withheld, position, now));
                    }
                }
            }
        }
    }
    changes
}

fn change(
    tenant: &TenantId,
    (channel, sku, location): &AckKey,
    ats: i64,
    withheld: i64,
    position: u64,
    now: stockflow_core::time::Timestamp,
) -> AtsChange {
    AtsChange {
        tenant: tenant.clone(),
        channel: channel.clone(),
        sku: sku.clone(),
        location: location.clone(),
        available_to_sell: ats,
        withheld,
        position,
        caused_at: now,
    }
}

/// Follows acknowledgements and writes them in batches; notes a channel as unreliable when
/// events were missed.
async fn follow(
    connection: Connection,
    mut events: tokio::sync::broadcast::Receiver<SyncEvent>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let connection = Arc::new(std::sync::Mutex::new(connection));
    let mut pending: HashMap<AckKey, (i64, u64)> = HashMap::new();
    let mut lagged = false;
    let mut ticker = tokio::time::interval(WRITE_INTERVAL);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    if !note(&mut pending, event) || pending.len() < WRITE_BATCH_MAX {
                        continue;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "acknowledgements missed; every channel is offered again at the next start");
                    lagged = true;
                }
                Err(RecvError::Closed) => {
                    write(&connection, std::mem::take(&mut pending), lagged).await;
                    return;
                }
            },
            _ = ticker.tick() => {}
            _ = &mut stopped => {
                // Everything the sync acknowledged before it stopped is already in the channel.
                while let Ok(event) = events.try_recv() {
                    note(&mut pending, event);
                }
                write(&connection, std::mem::take(&mut pending), lagged).await;
                return;
            }
        }
        if !pending.is_empty() || lagged {
            write(&connection, std::mem::take(&mut pending), lagged).await;
        }
    }
}

/// Keeps what an event says a channel acknowledged: a single value, or the values a first full
/// sync's bulk path established (so that the next start primes them instead of syncing the
/// channel again). True when the event held any.
fn note(pending: &mut HashMap<AckKey, (i64, u64)>, event: SyncEvent) -> bool {
    match event {
        SyncEvent::Acknowledged {
            channel,
            sku,
            location,
            quantity,
            position,
            ..
        } => {
            pending.insert((channel, sku, location), (quantity, position));
            true
        }
        SyncEvent::FullSyncAcknowledged { channel, values } => {
            for value in values {
                let key = (channel.clone(), value.sku, value.location);
                match pending.get(&key) {
                    Some((_, newer)) if *newer > value.position => {}
                    _ => {
                        pending.insert(key, (value.quantity, value.position));
                    }
                }
            }
            true
        }
        _ => false,
    }
}

async fn write(
    connection: &Arc<std::sync::Mutex<Connection>>,
    pending: HashMap<AckKey, (i64, u64)>,
    lagged: bool,
) {
    let connection = connection.clone();
    let result = tokio::task::spawn_blocking(move || -> rusqlite::Result<()> {
        let mut connection = connection.lock().unwrap_or_else(|p| p.into_inner());
        let transaction = connection.transaction()?;
        {
            let mut upsert = transaction.prepare_cached(
                "INSERT INTO acknowledged (channel, sku, location, quantity, position) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (channel, sku, location) DO UPDATE SET quantity = excluded.quantity, position = excluded.position
                 WHERE excluded.position >= acknowledged.position",
            )?;
            for ((channel, sku, location), (quantity, position)) in &pending {
                let location = location.as_ref().map_or("", |l| l.as_str());
                upsert.execute(params![channel.as_str(), sku.as_str(), location, quantity, *position as i64])?;
            }
            if lagged {
                transaction.execute(
                    "INSERT OR IGNORE INTO unreliable (channel) SELECT DISTINCT channel FROM acknowledged",
                    [],
                )?;
            }
        }
        transaction.commit()
    })
    .await;
    if !matches!(result, Ok(Ok(()))) {
        tracing::warn!(
            "could not record acknowledged values; the next start offers more keys again"
        );
    }
}
