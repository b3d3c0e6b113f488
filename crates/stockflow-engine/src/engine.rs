//! The handle the server and the benchmark hold: routes requests to shards, reads, stats,
//! shutdown.

use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::metrics;
use crate::reads::ReadModel;
use crate::sink::EffectSink;
use crate::writer::{self, Request, ShardShared, Submitted, WriterParts};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use stockflow_core::envelope::{Input, Position};
use stockflow_core::ids::TenantId;
use stockflow_core::time::Timestamp;
use stockflow_store::Store;
use tokio::sync::{mpsc, oneshot};

/// A cheap-to-clone handle on the running engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Vec<Shard>,
    reads: Arc<ReadModel>,
}

struct Shard {
    sender: mpsc::Sender<Request>,
    shared: Arc<ShardShared>,
    store: Arc<dyn Store>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineStats {
    pub shards: Vec<ShardStats>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStats {
    pub shard: usize,
    pub state: ShardState,
    pub last_position: Position,
    pub queue_depth: usize,
    pub queue_capacity: usize,
    pub last_commit_at: Option<Timestamp>,
    pub last_snapshot_position: Position,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardState {
    Running,
    Stopping,
    Stopped,
    /// Stopped on a failure it could not recover from.
    Failed(String),
}

impl EngineStats {
    /// Every shard is running.
    pub fn healthy(&self) -> bool {
        self.shards.iter().all(|s| s.state == ShardState::Running)
    }
}

impl Engine {
    /// Opens a one-shard engine on `store` (`config.shards` must be 1): recovers the ledger
    /// (latest snapshot, then the journal tail), publishes its views, starts the writer thread.
    /// Accepts a `Box<dyn Store>` or an `Arc<dyn Store>` (keep a clone of the latter to query the
    /// audit trail, or use [`Engine::store_for`]).
    pub async fn open(
        config: EngineConfig,
        store: impl Into<Arc<dyn Store>>,
        sink: Arc<dyn EffectSink>,
    ) -> Result<Engine, EngineError> {
        Self::open_shards(config, vec![store.into()], sink).await
    }

    /// Opens one writer per store; `stores.len()` must equal `config.shards`.
    pub async fn open_shards(
        config: EngineConfig,
        stores: Vec<Arc<dyn Store>>,
        sink: Arc<dyn EffectSink>,
    ) -> Result<Engine, EngineError> {
        config.check().map_err(EngineError::Config)?;
        if stores.len() != config.shards {
            return Err(EngineError::Config(format!(
                "{} shards configured but {} stores given",
                config.shards,
                stores.len()
            )));
        }
        let reads = Arc::new(ReadModel::new(config.shards));
        let mut shards = Vec::with_capacity(stores.len());
        for (index, store) in stores.into_iter().enumerate() {
            match start_shard(index, &config, store, sink.clone(), reads.clone()).await {
                Ok(shard) => shards.push(shard),
                Err(error) => {
                    let opened = Engine {
                        inner: Arc::new(Inner { shards, reads }),
                    };
                    let _ = opened.shutdown().await;
                    return Err(error);
                }
            }
        }
        Ok(Engine {
            inner: Arc::new(Inner { shards, reads }),
        })
    }

    /// Applies `input` for `tenant` and answers once it is durable (or refused, or changed
    /// nothing). `arrived_at` is when the request reached stockflow; the envelope's time is the
    /// later of it and the previous envelope's. Fails fast with `Overloaded` when the shard's
    /// queue is full. Dropping the future does not withdraw a request already queued.
    pub async fn submit(
        &self,
        tenant: TenantId,
        input: Input,
        arrived_at: Timestamp,
    ) -> Result<Submitted, EngineError> {
        let shard = &self.inner.shards[self.shard_of(&tenant)];
        if shard.shared.stopping.load(Ordering::Acquire) {
            return Err(shard.stopped_error());
        }
        let (reply, answer) = oneshot::channel();
        let request = Request {
            tenant,
            input,
            arrived_at,
            reply,
        };
        shard
            .sender
            .try_send(request)
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => {
                    ::metrics::counter!(metrics::REQUESTS_OVERLOADED_TOTAL).increment(1);
                    EngineError::Overloaded
                }
                mpsc::error::TrySendError::Closed(_) => shard.stopped_error(),
            })?;
        answer.await.map_err(|_| shard.stopped_error())?
    }

    /// The published read model: views as of the last commit, never ahead of the journal.
    pub fn reads(&self) -> &Arc<ReadModel> {
        &self.inner.reads
    }

    /// The shard that owns `tenant`.
    pub fn shard_of(&self, tenant: &TenantId) -> usize {
        shard_of(tenant, self.inner.shards.len())
    }

    /// The store holding `tenant`'s journal and audit trail, for queries.
    pub fn store_for(&self, tenant: &TenantId) -> &Arc<dyn Store> {
        &self.inner.shards[self.shard_of(tenant)].store
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            shards: self.inner.shards.iter().map(Shard::stats).collect(),
        }
    }

    /// Resolves when any shard's writer has stopped, with the failure that stopped it (`None`
    /// after a shutdown). The server selects on it to exit when the engine cannot go on.
    pub async fn stopped(&self) -> Option<String> {
        let waits = self.inner.shards.iter().map(|shard| {
            let mut stopped = shard.shared.stopped.subscribe();
            Box::pin(async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            })
        });
        futures::future::select_all(waits).await;
        self.inner.shards.iter().find_map(|s| s.shared.failure())
    }

    /// Refuses new requests, lets every writer apply and answer what is queued (the batch in
    /// flight included), take a last snapshot and stop. Returns the failure of a writer that
    /// had stopped on one.
    pub async fn shutdown(&self) -> Result<(), EngineError> {
        for shard in &self.inner.shards {
            shard.shared.stopping.store(true, Ordering::Release);
            shard.shared.wake.notify_one();
        }
        for shard in &self.inner.shards {
            let mut stopped = shard.shared.stopped.subscribe();
            let _ = stopped.wait_for(|stopped| *stopped).await;
            let thread = shard
                .thread
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            if let Some(thread) = thread {
                // The thread has signalled that it finished; joining does not wait long.
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
        }
        match self.inner.shards.iter().find_map(|s| s.shared.failure()) {
            Some(failure) => Err(EngineError::Stopped(failure)),
            None => Ok(()),
        }
    }
}

impl Shard {
    fn stopped_error(&self) -> EngineError {
        match self.shared.failure() {
            Some(failure) => EngineError::Stopped(failure),
            None => EngineError::ShuttingDown,
        }
    }

    fn stats(&self) -> ShardStats {
        let shared = &self.shared;
        let state = if let Some(failure) = shared.failure() {
            ShardState::Failed(failure)
        } else if *shared.stopped.borrow() {
            ShardState::Stopped
        } else if shared.stopping.load(Ordering::Acquire) {
            ShardState::Stopping
        } else {
            ShardState::Running
        };
        let commit = shared.last_commit_at.load(Ordering::Acquire);
        ShardStats {
            shard: shared.shard,
            state,
            last_position: shared.last_position.load(Ordering::Acquire),
            queue_depth: self.sender.max_capacity() - self.sender.capacity(),
            queue_capacity: self.sender.max_capacity(),
            last_commit_at: (commit != 0).then_some(Timestamp(commit)),
            last_snapshot_position: shared.last_snapshot_position.load(Ordering::Acquire),
        }
    }
}

async fn start_shard(
    index: usize,
    config: &EngineConfig,
    store: Arc<dyn Store>,
    sink: Arc<dyn EffectSink>,
    reads: Arc<ReadModel>,
) -> Result<Shard, EngineError> {
    let (sender, receiver) = mpsc::channel(config.queue_capacity);
    let shared = Arc::new(ShardShared::new(index));
    let parts = WriterParts {
        shared: shared.clone(),
        config: config.clone(),
        store: store.clone(),
        sink,
        reads,
        receiver,
    };
    let (ready, is_ready) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("stockflow-writer-{index}"))
        .spawn(move || writer::run(parts, ready))
        .map_err(|e| EngineError::Config(format!("cannot start a writer thread: {e}")))?;
    let shard = Shard {
        sender,
        shared,
        store,
        thread: Mutex::new(Some(thread)),
    };
    match is_ready.await {
        Ok(Ok(())) => Ok(shard),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(EngineError::Recovery(
            "the writer thread ended during recovery".to_owned(),
        )),
    }
}

/// The shard of a tenant: FNV-1a of its id, modulo the shard count. Stable across builds and
/// restarts (the standard library's hasher is randomly keyed), since a tenant's journal lives
/// in its shard's store.
pub fn shard_of(tenant: &TenantId, shards: usize) -> usize {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = tenant.as_str().bytes().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    (hash % shards.max(1) as u64) as usize
}
