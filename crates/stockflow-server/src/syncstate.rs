//! What each channel last acknowledged, kept across restarts, so that a restart neither loses a
//! change that was committed but not yet pushed nor re-sends the whole catalogue.
//!
//! A task follows the channel sync's acknowledgements and upserts them, a batch at a time, into
//! `sync.db` in the data directory. At start, the channels are primed with those values, and the
//! current ATS of every SKU x channel is offered where it differs from what the channel last
//! acknowledged (or where nothing is known). If the task ever falls behind the sync's event
//! stream, the values it missed are unknown: it records that, and the next start offers every
//! key of the channel again.

use crate::app::AppState;
use anyhow::Context;
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use stockflow_channels::{SyncEngine, SyncEvent, SyncKey};
use stockflow_core::ids::{ChannelId, LocationId, Sku, TenantId};
use stockflow_core::outcome::AtsChange;
use tokio::sync::broadcast::error::RecvError;

/// Acknowledgements written per transaction at most.
const WRITE_BATCH_MAX: usize = 4096;
/// How long acknowledgements wait to be written together.
const WRITE_INTERVAL: Duration = Duration::from_millis(250);

type AckKey = (ChannelId, Sku, Option<LocationId>);

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

/// Loads what was acknowledged, primes the sync with it, offers what differs, and starts the
/// task that keeps the file up to date.
pub async fn resume(state: &AppState, sync: Arc<SyncEngine>) -> anyhow::Result<()> {
    let path = state.config.data_dir.join("sync.db");
    let events = sync.subscribe();
    let (known, unreliable) = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || load(&path)).await??
    };
    for (channel, values) in group_by_channel(&known) {
        if !unreliable.contains(&channel) {
            let _ = sync.prime(&channel, &values);
        }
    }
    let changes = differences(state, &known, &unreliable);
    if !changes.is_empty() {
        tracing::info!(
            keys = changes.len(),
            "offering values the channels have not acknowledged"
        );
        for chunk in changes.chunks(1024) {
            sync.offer(chunk);
        }
    }
    let connection = tokio::task::spawn_blocking(move || -> anyhow::Result<Connection> {
        let connection = open(&path)?;
        connection.execute("DELETE FROM unreliable", [])?;
        Ok(connection)
    })
    .await??;
    tokio::spawn(follow(connection, events));
    Ok(())
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
                for channel in &view.channels {
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
async fn follow(connection: Connection, mut events: tokio::sync::broadcast::Receiver<SyncEvent>) {
    let connection = Arc::new(std::sync::Mutex::new(connection));
    let mut pending: HashMap<AckKey, (i64, u64)> = HashMap::new();
    let mut lagged = false;
    let mut ticker = tokio::time::interval(WRITE_INTERVAL);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(SyncEvent::Acknowledged { channel, sku, location, quantity, position, .. }) => {
                    pending.insert((channel, sku, location), (quantity, position));
                    if pending.len() < WRITE_BATCH_MAX {
                        continue;
                    }
                }
                Ok(_) => continue,
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
        }
        if !pending.is_empty() || lagged {
            write(&connection, std::mem::take(&mut pending), lagged).await;
        }
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
