//! The durable inbox: every verified webhook, in its own SQLite file (`inbox.db` in the data
//! directory, WAL, synchronous=FULL), written before the platform is answered.
//!
//! - `inbox`: one row per (channel, platform event id), unique forever: a retry of a webhook
//!   that was accepted, however late, is a duplicate. A row is `pending` until processed, then
//!   `done`, `ignored` (a topic stockflow does not act on) or `quarantined` (not the platform's
//!   format, or failed every attempt). Bodies of finished rows are pruned after a configured
//!   age; the row and its key stay.
//! - `incidents`: what processing found that needs a person (unknown SKU, a fulfilment that
//!   does not match the picks, drift, a quarantined body), written in the same transaction that
//!   finishes the row, so a row processed twice after a crash records them once.
//! - `sources`: the last `seq` given out per event source the processor produces (drift
//!   adjustments), so those events apply in order and exactly once.
//!
//! Calls block (SQLite): the async side runs them on the blocking pool.

use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The most rows or incidents one listing returns.
pub const LIST_LIMIT_MAX: usize = 1000;

#[derive(Debug, thiserror::Error)]
#[error("inbox: {what}: {detail}")]
pub struct InboxError {
    what: &'static str,
    detail: String,
}

fn failed(what: &'static str) -> impl Fn(rusqlite::Error) -> InboxError {
    move |error| InboxError {
        what,
        detail: error.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    Pending,
    Done,
    Ignored,
    Quarantined,
}

impl RowState {
    pub fn name(self) -> &'static str {
        match self {
            RowState::Pending => "pending",
            RowState::Done => "done",
            RowState::Ignored => "ignored",
            RowState::Quarantined => "quarantined",
        }
    }

    pub fn parse(name: &str) -> Option<RowState> {
        [
            RowState::Pending,
            RowState::Done,
            RowState::Ignored,
            RowState::Quarantined,
        ]
        .into_iter()
        .find(|state| state.name() == name)
    }
}

/// A verified webhook to record.
#[derive(Debug, Clone)]
pub struct NewRow {
    pub tenant: String,
    pub channel: String,
    pub platform: &'static str,
    pub event_id: String,
    pub topic: String,
    pub received_at: i64,
    pub body: Vec<u8>,
    /// Set for a body that is not the platform's format: the row is recorded quarantined with
    /// this incident.
    pub quarantine: Option<NewIncident>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    New(i64),
    Duplicate(i64),
    /// The backlog of pending rows is at its limit: nothing was recorded.
    Full,
}

/// A pending row, as the processor takes it.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub tenant: String,
    pub channel: String,
    pub platform: String,
    pub event_id: String,
    pub topic: String,
    pub received_at: i64,
    pub body: Option<Vec<u8>>,
    pub attempts: u32,
    /// What an earlier attempt decided and must carry out unchanged (a drift adjustment).
    pub plan: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIncident {
    pub kind: &'static str,
    pub order_id: Option<String>,
    pub sku: Option<String>,
    pub quantity: Option<i64>,
    pub detail: String,
}

impl NewIncident {
    pub fn new(kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            order_id: None,
            sku: None,
            quantity: None,
            detail: detail.into(),
        }
    }
}

/// A row as listings show it (without its body).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RowSummary {
    pub id: i64,
    pub tenant: String,
    pub channel: String,
    pub platform: String,
    pub event_id: String,
    pub topic: String,
    pub state: String,
    pub received_at: i64,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub processed_at: Option<i64>,
    pub outcome: Option<String>,
    pub last_error: Option<String>,
    pub body_bytes: i64,
    pub body_kept: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IncidentRecord {
    pub id: i64,
    pub row_id: i64,
    pub at: i64,
    pub tenant: String,
    pub channel: String,
    pub kind: String,
    pub order_id: Option<String>,
    pub sku: Option<String>,
    pub quantity: Option<i64>,
    pub detail: String,
}

/// Filters of a listing; `after` is the last id of the previous page.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub tenant: Option<String>,
    pub channel: Option<String>,
    /// A row state, or an incident kind.
    pub kind: Option<String>,
    pub after: Option<i64>,
    pub limit: usize,
}

pub struct Inbox {
    connection: Mutex<Connection>,
    /// Rows in state `pending`, kept beside the table for the backlog check.
    pending: AtomicU64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    channel TEXT NOT NULL,
    platform TEXT NOT NULL,
    event_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    body BLOB,
    body_bytes INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    plan TEXT,
    outcome TEXT,
    processed_at INTEGER,
    UNIQUE (channel, event_id)
);
CREATE INDEX IF NOT EXISTS inbox_pending ON inbox (id) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    row_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    order_id TEXT,
    sku TEXT,
    quantity INTEGER,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_kind ON incidents (kind, id);
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
";

const ROW_COLUMNS: &str = "id, tenant, channel, platform, event_id, topic, state, received_at, \
     attempts, next_attempt_at, processed_at, outcome, last_error, body_bytes, body IS NOT NULL";

impl Inbox {
    pub fn open(path: &Path) -> Result<Inbox, InboxError> {
        let connection = Connection::open(path).map_err(failed("opening"))?;
        // WAL with FULL: an accepted webhook survives power loss, not only a crash; the
        // platform is answered only after the commit's fsync.
        let mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(failed("switching to WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(InboxError {
                what: "switching to WAL",
                detail: format!("the database stays in journal mode {mode:?}"),
            });
        }
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(failed("setting synchronous"))?;
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(failed("setting the busy timeout"))?;
        connection
            .execute_batch(SCHEMA)
            .map_err(failed("creating the tables"))?;
        let pending: i64 = connection
            .query_row(
                "SELECT COUNT(*) FROM inbox WHERE state = 'pending'",
                [],
                |row| row.get(0),
            )
            .map_err(failed("counting pending rows"))?;
        Ok(Inbox {
            connection: Mutex::new(connection),
            pending: AtomicU64::new(pending as u64),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic under the lock cannot leave SQLite half-written: transactions roll back.
        self.connection.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn pending_count(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Records a verified webhook, unless its key is known (a duplicate, whatever became of the
    /// first) or the backlog is full.
    pub fn accept(&self, row: &NewRow, backlog_max: u64) -> Result<Accepted, InboxError> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(failed("beginning"))?;
        let existing: Option<i64> = transaction
            .query_row(
                "SELECT id FROM inbox WHERE channel = ?1 AND event_id = ?2",
                params![row.channel, row.event_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(failed("looking up the key"))?;
        if let Some(id) = existing {
            return Ok(Accepted::Duplicate(id));
        }
        let pending = row.quarantine.is_none();
        if pending && self.pending.load(Ordering::Relaxed) >= backlog_max {
            return Ok(Accepted::Full);
        }
        let state = if pending {
            RowState::Pending
        } else {
            RowState::Quarantined
        };
        transaction
            .execute(
                "INSERT INTO inbox (tenant, channel, platform, event_id, topic, received_at, body, \
                 body_bytes, state, next_attempt_at, processed_at, outcome) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?6, ?10, ?11)",
                params![
                    row.tenant,
                    row.channel,
                    row.platform,
                    row.event_id,
                    row.topic,
                    row.received_at,
                    row.body,
                    row.body.len() as i64,
                    state.name(),
                    (!pending).then_some(row.received_at),
                    row.quarantine.as_ref().map(|i| i.detail.clone()),
                ],
            )
            .map_err(failed("inserting the row"))?;
        let id = transaction.last_insert_rowid();
        if let Some(incident) = &row.quarantine {
            insert_incident(
                &transaction,
                id,
                row.received_at,
                &row.tenant,
                &row.channel,
                incident,
            )?;
        }
        transaction.commit().map_err(failed("committing"))?;
        if pending {
            self.pending.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Accepted::New(id))
    }

    /// Up to `limit` pending rows due at `now`, oldest first.
    pub fn due(&self, now: i64, limit: usize) -> Result<Vec<Row>, InboxError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT id, tenant, channel, platform, event_id, topic, received_at, body, \
                 attempts, plan FROM inbox WHERE state = 'pending' AND next_attempt_at <= ?1 \
                 ORDER BY id LIMIT ?2",
            )
            .map_err(failed("preparing the due query"))?;
        let rows = statement
            .query_map(params![now, limit as i64], |r| {
                Ok(Row {
                    id: r.get(0)?,
                    tenant: r.get(1)?,
                    channel: r.get(2)?,
                    platform: r.get(3)?,
                    event_id: r.get(4)?,
                    topic: r.get(5)?,
                    received_at: r.get(6)?,
                    body: r.get(7)?,
                    attempts: r.get(8)?,
                    plan: r.get(9)?,
                })
            })
            .map_err(failed("reading due rows"))?;
        rows.collect::<Result<_, _>>()
            .map_err(failed("reading due rows"))
    }

    /// When the earliest pending row is due.
    pub fn next_due_at(&self) -> Result<Option<i64>, InboxError> {
        self.lock()
            .query_row(
                "SELECT MIN(next_attempt_at) FROM inbox WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )
            .map_err(failed("reading the next due time"))
    }

    /// Ends a pending row with its outcome and incidents, in one transaction.
    pub fn finish(
        &self,
        row: &Row,
        state: RowState,
        outcome: &str,
        at: i64,
        incidents: &[NewIncident],
    ) -> Result<(), InboxError> {
        assert_ne!(
            state,
            RowState::Pending,
            "finishing leaves the pending state"
        );
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(failed("beginning"))?;
        let changed = transaction
            .execute(
                "UPDATE inbox SET state = ?2, outcome = ?3, processed_at = ?4 \
                 WHERE id = ?1 AND state = 'pending'",
                params![row.id, state.name(), outcome, at],
            )
            .map_err(failed("finishing the row"))?;
        if changed == 0 {
            return Ok(());
        }
        for incident in incidents {
            insert_incident(
                &transaction,
                row.id,
                at,
                &row.tenant,
                &row.channel,
                incident,
            )?;
        }
        transaction.commit().map_err(failed("committing"))?;
        self.pending.fetch_sub(1, Ordering::Relaxed);
        Ok(())
    }

    /// The row stays pending until `next_at`; `count_attempt` when it failed (an error), not
    /// when it waits on purpose.
    pub fn postpone(
        &self,
        id: i64,
        next_at: i64,
        note: &str,
        count_attempt: bool,
    ) -> Result<(), InboxError> {
        self.lock()
            .execute(
                "UPDATE inbox SET next_attempt_at = ?2, last_error = ?3, \
                 attempts = attempts + ?4 WHERE id = ?1 AND state = 'pending'",
                params![id, next_at, note, i64::from(count_attempt)],
            )
            .map_err(failed("postponing the row"))?;
        Ok(())
    }

    /// Keeps what an attempt decided, before it is carried out.
    pub fn set_plan(&self, id: i64, plan: &str) -> Result<(), InboxError> {
        self.lock()
            .execute(
                "UPDATE inbox SET plan = ?2 WHERE id = ?1",
                params![id, plan],
            )
            .map_err(failed("keeping the plan"))?;
        Ok(())
    }

    /// The next `seq` of a source the processor produces, given out once.
    pub fn next_seq(&self, source: &str) -> Result<u64, InboxError> {
        let connection = self.lock();
        let seq: i64 = connection
            .query_row(
                "INSERT INTO sources (source, last_seq) VALUES (?1, 1) \
                 ON CONFLICT (source) DO UPDATE SET last_seq = last_seq + 1 \
                 RETURNING last_seq",
                params![source],
                |r| r.get(0),
            )
            .map_err(failed("taking a sequence number"))?;
        Ok(seq as u64)
    }

    /// Deletes the bodies of finished rows received before `before`; returns how many.
    pub fn prune_bodies(&self, before: i64) -> Result<usize, InboxError> {
        self.lock()
            .execute(
                "UPDATE inbox SET body = NULL WHERE state != 'pending' AND received_at < ?1 \
                 AND body IS NOT NULL",
                params![before],
            )
            .map_err(failed("pruning bodies"))
    }

    /// Rows in id order, without bodies; `kind` filters on the state.
    pub fn rows(&self, query: &ListQuery) -> Result<Vec<RowSummary>, InboxError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM inbox WHERE (?1 IS NULL OR channel = ?1) \
                 AND (?2 IS NULL OR state = ?2) AND id > ?3 AND (?5 IS NULL OR tenant = ?5) \
                 ORDER BY id LIMIT ?4"
            ))
            .map_err(failed("preparing the row listing"))?;
        let rows = statement
            .query_map(
                params![
                    query.channel,
                    query.kind,
                    query.after.unwrap_or(0),
                    query.limit.min(LIST_LIMIT_MAX) as i64,
                    query.tenant,
                ],
                |r| {
                    Ok(RowSummary {
                        id: r.get(0)?,
                        tenant: r.get(1)?,
                        channel: r.get(2)?,
                        platform: r.get(3)?,
                        event_id: r.get(4)?,
                        topic: r.get(5)?,
                        state: r.get(6)?,
                        received_at: r.get(7)?,
                        attempts: r.get(8)?,
                        next_attempt_at: r.get(9)?,
                        processed_at: r.get(10)?,
                        outcome: r.get(11)?,
                        last_error: r.get(12)?,
                        body_bytes: r.get(13)?,
                        body_kept: r.get(14)?,
                    })
                },
            )
            .map_err(failed("listing rows"))?;
        rows.collect::<Result<_, _>>()
            .map_err(failed("listing rows"))
    }

    /// Incidents in id order; `kind` filters on the incident kind.
    pub fn incidents(&self, query: &ListQuery) -> Result<Vec<IncidentRecord>, InboxError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT id, row_id, at, tenant, channel, kind, order_id, sku, quantity, detail \
                 FROM incidents WHERE (?1 IS NULL OR channel = ?1) AND (?2 IS NULL OR kind = ?2) \
                 AND id > ?3 AND (?5 IS NULL OR tenant = ?5) ORDER BY id LIMIT ?4",
            )
            .map_err(failed("preparing the incident listing"))?;
        let incidents = statement
            .query_map(
                params![
                    query.channel,
                    query.kind,
                    query.after.unwrap_or(0),
                    query.limit.min(LIST_LIMIT_MAX) as i64,
                    query.tenant,
                ],
                |r| {
                    Ok(IncidentRecord {
                        id: r.get(0)?,
                        row_id: r.get(1)?,
                        at: r.get(2)?,
                        tenant: r.get(3)?,
                        channel: r.get(4)?,
                        kind: r.get(5)?,
                        order_id: r.get(6)?,
                        sku: r.get(7)?,
                        quantity: r.get(8)?,
                        detail: r.get(9)?,
                    })
                },
            )
            .map_err(failed("listing incidents"))?;
        incidents
            .collect::<Result<_, _>>()
            .map_err(failed("listing incidents"))
    }

    /// Rows per channel and state.
    pub fn counts(&self) -> Result<Vec<(String, String, u64)>, InboxError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT channel, state, COUNT(*) FROM inbox GROUP BY channel, state \
                 ORDER BY channel, state",
            )
            .map_err(failed("preparing the counts"))?;
        let counts = statement
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })
            .map_err(failed("counting rows"))?;
        counts
            .collect::<Result<_, _>>()
            .map_err(failed("counting rows"))
    }
}

fn insert_incident(
    transaction: &rusqlite::Transaction<'_>,
    row_id: i64,
    at: i64,
    tenant: &str,
    channel: &str,
    incident: &NewIncident,
) -> Result<(), InboxError> {
    transaction
        .execute(
            "INSERT INTO incidents (row_id, at, tenant, channel, kind, order_id, sku, quantity, \
             detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                row_id,
                at,
                tenant,
                channel,
                incident.kind,
                incident.order_id,
                incident.sku,
                incident.quantity,
                incident.detail
            ],
        )
        .map_err(failed("recording an incident"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(event_id: &str) -> NewRow {
        NewRow {
            tenant: "default".into(),
            channel: "shop".into(),
            platform: "shopify",
            event_id: event_id.into(),
            topic: "orders/create".into(),
            received_at: 100,
            body: b"{}".to_vec(),
            quarantine: None,
        }
    }

    fn open() -> (Inbox, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "stockflow-inbox-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("inbox.db");
        (Inbox::open(&path).unwrap(), path)
    }

    #[test]
    fn a_key_is_recorded_once_forever_and_the_backlog_is_bounded() {
        let (inbox, path) = open();
        let Accepted::New(first) = inbox.accept(&row("e1"), 2).unwrap() else {
            panic!("new")
        };
        assert_eq!(
            inbox.accept(&row("e1"), 2).unwrap(),
            Accepted::Duplicate(first)
        );
        inbox.accept(&row("e2"), 2).unwrap();
        assert_eq!(inbox.accept(&row("e3"), 2).unwrap(), Accepted::Full);
        assert_eq!(inbox.pending_count(), 2);
        let due = inbox.due(100, 10).unwrap();
        assert_eq!(due.len(), 2);
        inbox
            .finish(&due[0], RowState::Done, "reserved", 200, &[])
            .unwrap();
        assert_eq!(inbox.pending_count(), 1);
        // Processed, pruned, and still a duplicate; the count survives a reopening.
        assert_eq!(inbox.prune_bodies(101).unwrap(), 1);
        drop(inbox);
        let inbox = Inbox::open(&path).unwrap();
        assert_eq!(inbox.pending_count(), 1);
        assert_eq!(
            inbox.accept(&row("e1"), 2).unwrap(),
            Accepted::Duplicate(first)
        );
        let listed = inbox.rows(&ListQuery {
            limit: 10,
            ..ListQuery::default()
        });
        let listed = listed.unwrap();
        assert!(!listed[0].body_kept && listed[1].body_kept);
    }

    #[test]
    fn a_quarantined_row_is_not_pending_and_records_its_incident() {
        let (inbox, _) = open();
        let mut bad = row("e1");
        bad.quarantine = Some(NewIncident::new("malformed", "not JSON"));
        inbox.accept(&bad, 0).unwrap();
        assert_eq!(inbox.pending_count(), 0);
        assert!(inbox.due(1_000, 10).unwrap().is_empty());
        let incidents = inbox
            .incidents(&ListQuery {
                kind: Some("malformed".into()),
                limit: 10,
                ..ListQuery::default()
            })
            .unwrap();
        assert_eq!(incidents.len(), 1);
        assert_eq!(incidents[0].detail, "not JSON");
    }

    #[test]
    fn postponed_rows_wait_and_sequences_are_given_out_once() {
        let (inbox, _) = open();
        inbox.accept(&row("e1"), 10).unwrap();
        let due = inbox.due(100, 10).unwrap();
        inbox.postpone(due[0].id, 500, "engine busy", true).unwrap();
        assert!(inbox.due(499, 10).unwrap().is_empty());
        assert_eq!(inbox.next_due_at().unwrap(), Some(500));
        assert_eq!(inbox.due(500, 10).unwrap()[0].attempts, 1);
        assert_eq!(inbox.next_seq("drift-shop").unwrap(), 1);
        assert_eq!(inbox.next_seq("drift-shop").unwrap(), 2);
        assert_eq!(inbox.next_seq("drift-other").unwrap(), 1);
    }
}
