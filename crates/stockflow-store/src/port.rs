//! The storage port: what the writer and the readers need of a store, in the core's types only.

use crate::error::StoreError;
use stockflow_core::envelope::{Envelope, Position};
use stockflow_core::ids::{ChannelId, LocationId, Sku, TenantId};
use stockflow_core::ledger::Ledger;
use stockflow_core::outcome::{AuditEntry, Incident, IncidentKind};
use stockflow_core::time::Timestamp;

/// The most envelopes one [`Store::read_journal`] call returns.
pub const JOURNAL_PAGE_MAX: usize = 1000;
/// The most rows one audit or incident query returns.
pub const QUERY_LIMIT_MAX: usize = 1000;

/// One journaled envelope of a batch, with the audit entries and incidents its outcome produced.
#[derive(Debug, Clone, Copy)]
pub struct BatchEntry<'a> {
    pub envelope: &'a Envelope,
    pub audit: &'a [AuditEntry],
    pub incidents: &'a [Incident],
}

/// The last envelope of the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalHead {
    pub position: Position,
    pub recorded_at: Timestamp,
}

/// The whole ledger as of a journal position.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The last envelope applied to `ledger`.
    pub position: Position,
    /// The `recorded_at` of that envelope: the ledger's time at the snapshot.
    pub recorded_at: Timestamp,
    pub ledger: Ledger,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub position: Position,
    pub recorded_at: Timestamp,
    /// Size of the encoded ledger.
    pub size_bytes: u64,
}

/// Which end of the matching rows a query returns when more than `limit` match. Rows are always
/// returned oldest first ("newest last"): in journal order (ids increase with it, and so does
/// `at`); a cursor (`after_id`) means "after that row".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Window {
    /// The oldest matching rows after the cursor: for paging forward with `after_id`.
    #[default]
    Earliest,
    /// The newest matching rows: for "what happened lately".
    Latest,
}

/// Filters of an audit query; all present filters must match.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditQuery {
    pub tenant: TenantId,
    pub sku: Option<Sku>,
    pub location: Option<LocationId>,
    pub channel: Option<ChannelId>,
    /// The source of an event, the actor of a command, `stockflow` for time.
    pub actor: Option<String>,
    pub reason: Option<String>,
    /// The event id, reservation id or hold id of the cause.
    pub cause_id: Option<String>,
    pub position: Option<Position>,
    /// Entries at or after this instant.
    pub since: Option<Timestamp>,
    /// Entries strictly before this instant.
    pub until: Option<Timestamp>,
    /// Entries after this id (the `id` of the last row of the previous page).
    pub after_id: Option<u64>,
    /// 1 to [`QUERY_LIMIT_MAX`].
    pub limit: usize,
    pub window: Window,
}

impl AuditQuery {
    /// Everything of a tenant, the first `limit` rows.
    pub fn tenant(tenant: TenantId, limit: usize) -> Self {
        Self {
            tenant,
            sku: None,
            location: None,
            channel: None,
            actor: None,
            reason: None,
            cause_id: None,
            position: None,
            since: None,
            until: None,
            after_id: None,
            limit,
            window: Window::Earliest,
        }
    }
}

/// An audit entry as stored: with its id (a cursor, increasing in journal order) and tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: u64,
    pub tenant: TenantId,
    pub entry: AuditEntry,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IncidentQuery {
    pub tenant: TenantId,
    pub kind: Option<IncidentKind>,
    pub sku: Option<Sku>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub after_id: Option<u64>,
    pub limit: usize,
    pub window: Window,
}

impl IncidentQuery {
    pub fn tenant(tenant: TenantId, limit: usize) -> Self {
        Self {
            tenant,
            kind: None,
            sku: None,
            since: None,
            until: None,
            after_id: None,
            limit,
            window: Window::Earliest,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRecord {
    pub id: u64,
    pub tenant: TenantId,
    pub incident: Incident,
}

/// Durable storage of the journal, snapshots, audit trail and incidents.
///
/// One writer appends (the shard's writer thread); any number of readers query at the same time
/// (HTTP handlers, the snapshot thread, `stockflow verify`). Implementations are internally
/// synchronised; every method takes `&self`.
pub trait Store: Send + Sync + 'static {
    /// Appends a committed batch (envelopes at consecutive positions continuing the journal,
    /// with their audit entries and incidents) in one durable transaction: when this returns
    /// `Ok` all of it survives a crash; when it returns `Err` none of it is visible.
    fn append(&self, batch: &[BatchEntry<'_>]) -> Result<(), StoreError>;

    /// The last envelope of the journal, `None` when it is empty.
    fn journal_head(&self) -> Result<Option<JournalHead>, StoreError>;

    /// Up to `limit` (at most [`JOURNAL_PAGE_MAX`]) envelopes after `after`, in position order.
    fn read_journal(&self, after: Position, limit: usize) -> Result<Vec<Envelope>, StoreError>;

    /// Stores a snapshot. Saving one at a position that already has one replaces it.
    fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError>;

    /// The snapshot at the highest position.
    fn latest_snapshot(&self) -> Result<Option<Snapshot>, StoreError>;

    /// The snapshot at exactly `position`.
    fn snapshot_at(&self, position: Position) -> Result<Option<Snapshot>, StoreError>;

    /// The stored snapshots, oldest first.
    fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError>;

    /// Deletes all but the newest `keep` snapshots (at least one is always kept); returns how
    /// many were deleted.
    fn prune_snapshots(&self, keep: usize) -> Result<usize, StoreError>;

    fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    fn query_incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentRecord>, StoreError>;
}

pub(crate) fn check_limit(limit: usize) -> Result<(), StoreError> {
    if limit == 0 || limit > QUERY_LIMIT_MAX {
        return Err(StoreError::InvalidQuery(format!(
            "limit must be between 1 and {QUERY_LIMIT_MAX}, got {limit}"
        )));
    }
    Ok(())
}

/// Checks that a batch continues a journal that ends at `last` with consecutive positions.
pub(crate) fn check_batch(last: Position, batch: &[BatchEntry<'_>]) -> Result<(), StoreError> {
    for (expected, entry) in (last + 1..).zip(batch) {
        if entry.envelope.position != expected {
            return Err(StoreError::PositionGap {
                last: expected - 1,
                first: entry.envelope.position,
            });
        }
    }
    Ok(())
}

/// The id of the cause, for the audit trail's `cause_id` column and filter.
pub fn cause_id(cause: &stockflow_core::outcome::Cause) -> Option<&str> {
    use stockflow_core::outcome::Cause;
    match cause {
        Cause::Event { event_id, .. } => Some(event_id.as_str()),
        Cause::Command { id, .. } => Some(id.as_str()),
        Cause::Time { .. } => None,
    }
}

/// Whether `record` matches every filter of `query` except the cursor, window and limit. The
/// in-memory store uses it; the SQL backends say the same in their WHERE clause.
pub(crate) fn audit_matches(query: &AuditQuery, record: &AuditRecord) -> bool {
    let entry = &record.entry;
    record.tenant == query.tenant
        && query.sku.as_ref().is_none_or(|sku| *sku == entry.sku)
        && query
            .location
            .as_ref()
            .is_none_or(|l| entry.location.as_ref() == Some(l))
        && query
            .channel
            .as_ref()
            .is_none_or(|c| entry.channel.as_ref() == Some(c))
        && query.actor.as_ref().is_none_or(|a| *a == entry.actor)
        && query
            .reason
            .as_ref()
            .is_none_or(|r| entry.reason.as_ref() == Some(r))
        && query
            .cause_id
            .as_deref()
            .is_none_or(|id| cause_id(&entry.cause) == Some(id))
        && query.position.is_none_or(|p| p == entry.position)
        && query.since.is_none_or(|since| entry.at >= since)
        && query.until.is_none_or(|until| entry.at < until)
}

pub(crate) fn incident_matches(query: &IncidentQuery, record: &IncidentRecord) -> bool {
    let incident = &record.incident;
    record.tenant == query.tenant
        && query.kind.is_none_or(|k| k == incident.kind)
        && query
            .sku
            .as_ref()
            .is_none_or(|s| incident.sku.as_ref() == Some(s))
        && query.since.is_none_or(|since| incident.at >= since)
        && query.until.is_none_or(|until| incident.at < until)
}

/// Picks `limit` rows of `matching` after the cursor, from the window's end, in the order of
/// `key_of` (audit: id; incidents: (at, id)).
pub(crate) fn select_window<T, K: Ord + Copy>(
    matching: impl Iterator<Item = T>,
    cursor: Option<K>,
    key_of: impl Fn(&T) -> K,
    limit: usize,
    window: Window,
) -> Vec<T> {
    let mut rows: Vec<T> = matching
        .filter(|row| cursor.is_none_or(|cursor| key_of(row) > cursor))
        .collect();
    rows.sort_by_key(|row| key_of(row));
    match window {
        Window::Earliest => rows.truncate(limit),
        Window::Latest => {
            let skip = rows.len().saturating_sub(limit);
            rows.drain(..skip);
        }
    }
    rows
}
