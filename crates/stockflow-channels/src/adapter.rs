//! The port between the sync engine and a platform: what one call carries, what comes back, and
//! the trait every adapter implements. The engine decides *what* to send and *when*; an adapter
//! decides *how* (wire format, batching rules, pacing inside the platform's limit).

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use stockflow_core::envelope::Position;
use stockflow_core::ids::{LocationId, Sku};
use stockflow_core::time::Timestamp;
use tokio::sync::watch;

/// What one channel is told one number for: a SKU, at a location for per-location channels.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SyncKey {
    pub sku: Sku,
    pub location: Option<LocationId>,
}

impl SyncKey {
    pub fn new(sku: Sku, location: Option<LocationId>) -> Self {
        Self { sku, location }
    }
}

impl fmt::Debug for SyncKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(f, "{}@{}", self.sku, location),
            None => write!(f, "{}", self.sku),
        }
    }
}

impl fmt::Display for SyncKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One quantity of a call.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: SyncKey,
    /// The quantity to set. `None` only for a companion whose value nobody knows yet: the adapter
    /// reads it from the channel and sends it back unchanged.
    pub quantity: Option<i64>,
    /// What the engine believes the channel shows now (Shopify's `changeFromQuantity`); `None`
    /// when unknown, and the adapter reads it first when its platform needs it.
    pub believed: Option<i64>,
    /// The journal position the quantity was computed from.
    pub position: Position,
    pub caused_at: Timestamp,
    /// Not waiting to be sent: carried only because the platform wants it in the same call
    /// (TikTok lists every warehouse of a SKU). Its quantity is the newest known one.
    pub companion: bool,
}

/// A call the engine asks an adapter to make.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub entries: Vec<Entry>,
}

/// Where a key goes in a call, as the adapter's platform groups them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Keys of different groups never share a call (a TikTok product; one group elsewhere).
    pub group: String,
    /// What the per-call maximum counts (a TikTok SKU; the key itself elsewhere).
    pub unit: String,
    /// Other keys that must travel in the same call as this one (the other warehouses of a
    /// TikTok SKU).
    pub companions: Vec<SyncKey>,
}

/// How a failure is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The platform's rate limit answered; wait as it says.
    Throttled,
    /// 5xx, timeouts, transport errors, answers not in the platform's format: retried with
    /// backoff.
    Transient,
    /// The platform refused the entry (unknown item, bad credentials, invalid quantity): it stays
    /// pending and is retried on the slow cadence.
    Rejected,
    /// Compare-and-set kept failing after re-reads within the call: retried with backoff.
    Conflict,
}

/// Why an entry was not acknowledged, with the platform's own code.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// The platform's code (`THROTTLED`, `INVALID_INVENTORY_ITEM`, `QuotaExceeded`, `106001`,
    /// `http_503`, `timeout`, ...).
    pub code: String,
    pub message: String,
    /// What the platform said about when to come back.
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn new(kind: FailureKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }
}

/// What became of one entry of a call.
#[derive(Clone, Debug, PartialEq)]
pub enum EntryOutcome {
    /// The channel applied the quantity (its answer says so).
    Applied {
        quantity: i64,
    },
    /// The channel queued the quantity; whether it lands is known only by reading back later
    /// (Amazon's ACCEPTED).
    Accepted {
        quantity: i64,
    },
    Failed(Failure),
}

/// A value the adapter read from the channel during a call, against what the engine believed.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub key: SyncKey,
    pub believed: Option<i64>,
    pub found: i64,
}

/// The answer to one [`Batch`], entry by entry in the same order.
#[derive(Clone, Debug, Default)]
pub struct CallReport {
    pub outcomes: Vec<EntryOutcome>,
    /// Values read from the channel (compare-and-set repairs, unknown values read first).
    pub observations: Vec<Observation>,
    /// HTTP calls made, by outcome label (`ok`, `throttled`, `server_error`, `timeout`,
    /// `rejected`, `invalid`), for the per-channel call counters.
    pub calls: Vec<&'static str>,
    /// When the first HTTP request of the call left (for the internal latency).
    pub sent_at: Option<tokio::time::Instant>,
}

impl CallReport {
    /// Every entry failed the same way.
    pub fn all_failed(batch: &Batch, failure: Failure) -> Self {
        Self {
            outcomes: batch
                .entries
                .iter()
                .map(|_| EntryOutcome::Failed(failure.clone()))
                .collect(),
            ..Self::default()
        }
    }
}

/// A value read back from the channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadValue {
    pub key: SyncKey,
    /// `None`: the channel does not know the item.
    pub quantity: Option<i64>,
}

/// Why a read or a bulk sync failed as a whole.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AdapterError {
    pub code: String,
    pub message: String,
}

impl AdapterError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<Failure> for AdapterError {
    fn from(failure: Failure) -> Self {
        Self::new(failure.code, failure.message)
    }
}

/// One value of a first full sync.
#[derive(Clone, Debug, PartialEq)]
pub struct BulkItem {
    pub key: SyncKey,
    pub quantity: i64,
    pub position: Position,
    pub caused_at: Timestamp,
}

/// Progress of a first full sync.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FullSyncProgress {
    pub total: u64,
    /// Values the channel applied or accepted.
    pub done: u64,
    /// Values the channel refused (they stay pending on the normal path).
    pub failed: u64,
    pub finished: bool,
    /// Why the sync stopped early, if it did.
    pub error: Option<String>,
}

/// What a bulk path reports per item, in the order given.
pub type BulkOutcome = Vec<EntryOutcome>;

/// A platform adapter.
///
/// Every method that talks to the platform keeps inside the platform's rate limit by itself
/// (waiting when it must). The first request of [`ChannelAdapter::send`] spends the share taken
/// by [`ChannelAdapter::acquire`]; further requests of the same call (reads for a
/// compare-and-set repair) take their own.
pub trait ChannelAdapter: Send + Sync + 'static {
    /// How keys group into calls, or why this key cannot be sent (no item id for the SKU).
    fn place(&self, key: &SyncKey) -> Result<Placement, Failure>;

    /// The most units (see [`Placement::unit`]) one call carries.
    fn units_per_call(&self) -> usize;

    /// Waits until the rate limit lets one more call go, and takes that call's share. The engine
    /// calls it before forming a batch, so that the batch carries the newest values; `send`
    /// then spends what was taken.
    fn acquire(&self) -> BoxFuture<'_, ()>;

    /// Makes one call (or a few, for a compare-and-set repair) and says what became of each
    /// entry. Never panics on bad answers: they are failures with the platform's code.
    fn send(&self, batch: Batch) -> BoxFuture<'_, CallReport>;

    /// Reads what the channel shows for these keys (reconciliation, verification of queued
    /// values).
    fn read(&self, keys: Vec<SyncKey>) -> BoxFuture<'_, Result<Vec<ReadValue>, AdapterError>>;

    /// How long after an `Accepted` outcome to read back (channels that queue).
    fn verify_delay(&self) -> Duration {
        Duration::ZERO
    }

    /// Whether the platform has a bulk path for a first full sync.
    fn has_bulk_path(&self) -> bool {
        false
    }

    /// Sends a whole catalogue through the bulk path, reporting progress as it goes.
    fn bulk_sync(
        &self,
        items: Vec<BulkItem>,
        progress: watch::Sender<FullSyncProgress>,
    ) -> BoxFuture<'_, Result<BulkOutcome, AdapterError>> {
        let _ = (items, progress);
        Box::pin(async { Err(AdapterError::new("unsupported", "no bulk path")) })
    }
}
