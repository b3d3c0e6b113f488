//! The writer's contract: durable before answered, published after commit, batched, bounded,
//! rebuilt after a failed commit, ticking when idle, finishing its work on shutdown.

use crate::support::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use stockflow_core::envelope::Input;
use stockflow_core::outcome::{EventStatus, Reply};
use stockflow_core::reservation::ReservationState;
use stockflow_engine::{
    Clock, Engine, EngineConfig, EngineError, ManualClock, NoopSink, ShardState, Submitted,
};
use stockflow_store::{AuditQuery, Store};

async fn open(store: &Arc<DoubleStore>, config: EngineConfig) -> Engine {
    Engine::open(config, store.clone() as Arc<dyn Store>, Arc::new(NoopSink))
        .await
        .unwrap()
}

/// Polls `future` once: whether it has already finished.
fn is_ready<F: Future + Unpin>(future: &mut F) -> bool {
    let waker = std::task::Waker::noop();
    matches!(
        std::pin::Pin::new(future).poll(&mut Context::from_waker(waker)),
        Poll::Ready(_)
    )
}

type Answer = Pin<Box<dyn Future<Output = Result<Submitted, EngineError>> + Send>>;

/// Submits `input` and polls once, which queues the request; the answer is awaited later.
fn enqueue(engine: &Engine, input: Input) -> Answer {
    let engine = engine.clone();
    let mut answer: Answer = Box::pin(async move { engine.submit(tenant(), input, START).await });
    assert!(
        !is_ready(&mut answer),
        "answered before it could be committed"
    );
    answer
}

fn queue_depth(engine: &Engine) -> usize {
    engine.stats().shards[0].queue_depth
}

/// Closes the store's gate and fills the shard's pipeline: a first batch held at the gate by
/// the committer, then the second and third applied by the writer and held for the next
/// commit (with `batch_requests_max: 1`: the second waiting in the committer's queue, the third
/// waiting to be handed over, and from then on requests stay in the queue). Returns the three.
async fn fill_pipeline(engine: &Engine, store: &DoubleStore, inputs: [Input; 3]) -> Vec<Answer> {
    store.close_gate();
    let mut answers = Vec::new();
    for (index, input) in inputs.into_iter().enumerate() {
        answers.push(enqueue(engine, input));
        if index == 0 {
            eventually("the first batch reaching the commit", || {
                store.waiting_at_gate() == 1
            })
            .await;
        } else {
            eventually("the writer taking the request", || queue_depth(engine) == 0).await;
            // The writer has taken the request; let it finish draining (the queue is empty, so
            // the batch is this request alone) before the next one is queued.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    answers
}

#[tokio::test]
async fn an_applied_event_is_journaled_audited_and_published() {
    let store = DoubleStore::new();
    let engine = open(&store, test_config()).await;
    let submitted = engine
        .submit(tenant(), received("wms", 1, "A", 5), START)
        .await
        .unwrap();
    assert_eq!(statuses(&submitted), [EventStatus::Applied]);
    assert_eq!(submitted.position, Some(1));
    assert_eq!(published(&engine, "A"), Some((5, 5, 0)));
    let journaled = journal(&*store);
    assert_eq!(journaled.len(), 1);
    assert_eq!(
        (journaled[0].position, journaled[0].recorded_at),
        (1, START)
    );
    let audit = store
        .query_audit(&AuditQuery::tenant(tenant(), 10))
        .unwrap();
    assert!(!audit.is_empty(), "the change has an audit entry");
    assert_eq!(engine.reads().position(0), 1);

    // A duplicate changes nothing, is not journaled and uses no position.
    let duplicate = engine
        .submit(tenant(), received("wms", 1, "A", 5), START)
        .await
        .unwrap();
    assert_eq!(statuses(&duplicate), [EventStatus::Duplicate]);
    assert_eq!(duplicate.position, None);
    let next = engine
        .submit(tenant(), received("wms", 2, "A", 1), START)
        .await
        .unwrap();
    assert_eq!(next.position, Some(2));
    assert_eq!(journal(&*store).len(), 2);
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn recorded_time_never_goes_backwards() {
    let store = DoubleStore::new();
    let engine = open(&store, test_config()).await;
    engine
        .submit(tenant(), received("wms", 1, "A", 1), START.plus_seconds(10))
        .await
        .unwrap();
    engine
        .submit(tenant(), received("wms", 2, "A", 1), START)
        .await
        .unwrap();
    let times: Vec<_> = journal(&*store).iter().map(|e| e.recorded_at).collect();
    assert_eq!(times, [START.plus_seconds(10), START.plus_seconds(10)]);
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn no_answer_and_no_published_change_before_the_commit() {
    let store = DoubleStore::new();
    let engine = open(&store, test_config()).await;
    store.close_gate();
    let mut pending = Box::pin(engine.submit(tenant(), received("wms", 1, "A", 5), START));
    assert!(
        !is_ready(&mut pending),
        "the request is queued, not answered"
    );
    eventually("the writer reaching the commit", || {
        store.waiting_at_gate() == 1
    })
    .await;
    // The ledger has applied the event; the commit has not happened.
    assert!(!is_ready(&mut pending), "no answer before the commit");
    assert_eq!(
        published(&engine, "A"),
        None,
        "nothing published before the commit"
    );
    assert_eq!(engine.stats().shards[0].last_position, 0);
    store.open_gate();
    let submitted = pending.await.unwrap();
    assert_eq!(submitted.position, Some(1));
    assert_eq!(published(&engine, "A"), Some((5, 5, 0)));
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn many_concurrent_requests_share_few_commits() {
    let store = DoubleStore::new();
    let engine = open(&store, test_config()).await;
    let mut answers = fill_pipeline(
        &engine,
        &store,
        [
            received("first", 1, "A", 1),
            received("second", 1, "A", 1),
            received("third", 1, "A", 1),
        ],
    )
    .await;
    let requests = 200;
    for i in 0..requests {
        answers.push(enqueue(&engine, received(&format!("src-{i}"), 1, "B", 1)));
    }
    eventually("the writer taking every request", || {
        queue_depth(&engine) == 0
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        answers.iter_mut().all(|answer| !is_ready(answer)),
        "nothing is answered before its commit"
    );
    store.open_gate();
    for answer in answers {
        assert_eq!(statuses(&answer.await.unwrap()), [EventStatus::Applied]);
    }
    assert_eq!(
        store.batch_sizes(),
        [1, 2 + requests],
        "everything applied while the first commit was in progress went in the next one"
    );
    assert_eq!(published(&engine, "B"), Some((200, 200, 0)));
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn batches_respect_the_request_and_event_limits() {
    let store = DoubleStore::new();
    let config = EngineConfig {
        batch_requests_max: 3,
        batch_events_max: 1000,
        ..test_config()
    };
    let engine = open(&store, config).await;
    let mut answers = fill_pipeline(
        &engine,
        &store,
        [
            received("first", 1, "A", 1),
            received("second", 1, "A", 1),
            received("third", 1, "A", 1),
        ],
    )
    .await;
    // The second and third are held for the next commit. Seven one-event requests, then one of
    // 1000 events: the first of the seven fills the held batch to 3, then batches of 3, 3, and
    // the big one alone (it does not fit beside the seventh).
    for i in 0..7 {
        answers.push(enqueue(&engine, received(&format!("src-{i}"), 1, "B", 1)));
    }
    let big: Vec<_> = (1..=1000)
        .map(|seq| match received("bulk", seq, "C", 1) {
            Input::Events(mut events) => events.remove(0),
            _ => unreachable!(),
        })
        .collect();
    answers.push(enqueue(&engine, Input::Events(big)));
    store.open_gate();
    for answer in answers {
        answer.await.unwrap();
    }
    assert_eq!(store.batch_sizes(), [1, 3, 3, 3, 1]);
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_full_queue_answers_overloaded_at_once() {
    let store = DoubleStore::new();
    let engine = open(
        &store,
        EngineConfig {
            queue_capacity: 2,
            // One request per batch: the pipeline is full with three, and the queue fills.
            batch_requests_max: 1,
            ..test_config()
        },
    )
    .await;
    let mut answers = fill_pipeline(
        &engine,
        &store,
        [
            received("wms", 1, "A", 1),
            received("wms", 2, "A", 1),
            received("wms", 3, "A", 1),
        ],
    )
    .await;
    answers.push(enqueue(&engine, received("wms", 4, "A", 1)));
    answers.push(enqueue(&engine, received("wms", 5, "A", 1)));
    let refused = engine
        .submit(tenant(), received("wms", 6, "A", 1), START)
        .await;
    assert!(
        matches!(refused, Err(EngineError::Overloaded)),
        "{refused:?}"
    );
    store.open_gate();
    for answer in answers {
        answer.await.unwrap();
    }
    assert_eq!(published(&engine, "A"), Some((5, 5, 0)));
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_commit_fails_its_batch_and_those_applied_after_it() {
    let store = DoubleStore::new();
    let engine = open(&store, test_config()).await;
    engine
        .submit(tenant(), received("wms", 1, "A", 1), START)
        .await
        .unwrap();
    // The second commit fails. The two batches behind it were applied on top of it, so they
    // cannot be committed either.
    store.fail_append_number(2);
    let answers = fill_pipeline(
        &engine,
        &store,
        [
            received("wms", 2, "A", 10),
            received("wms", 3, "A", 10),
            received("wms", 4, "A", 10),
        ],
    )
    .await;
    store.open_gate();
    for answer in answers {
        let result = answer.await;
        assert!(matches!(result, Err(EngineError::Storage(_))), "{result:?}");
    }
    assert_eq!(
        published(&engine, "A"),
        Some((1, 1, 0)),
        "the failed changes are not visible"
    );
    assert_eq!(journal(&*store).len(), 1);
    // The writer rebuilt its state from the store: seq 2 is new again, not a duplicate.
    for seq in 2..=4 {
        let retry = engine
            .submit(tenant(), received("wms", seq, "A", 10), START)
            .await
            .unwrap();
        assert_eq!(statuses(&retry), [EventStatus::Applied]);
        assert_eq!(retry.position, Some(seq));
    }
    assert_eq!(published(&engine, "A"), Some((31, 31, 0)));
    assert_eq!(engine.stats().shards[0].state, ShardState::Running);
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_commit_of_a_lone_request_leaves_no_trace() {
    let store = DoubleStore::new();
    let engine = open(&store, test_config()).await;
    store.fail_append_number(1);
    let failed = engine
        .submit(tenant(), received("wms", 1, "A", 5), START)
        .await;
    assert!(matches!(failed, Err(EngineError::Storage(_))), "{failed:?}");
    assert!(journal(&*store).is_empty());
    let retried = engine
        .submit(tenant(), received("wms", 1, "A", 5), START)
        .await
        .unwrap();
    assert_eq!(
        (statuses(&retried), retried.position),
        (vec![EventStatus::Applied], Some(1))
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_idle_writer_expires_a_reservation_when_its_ttl_passes() {
    let store = DoubleStore::new();
    let clock = Arc::new(ManualClock::new(START));
    let config = EngineConfig {
        clock: clock.clone() as Arc<dyn Clock>,
        ..test_config()
    };
    let engine = open(&store, config).await;
    engine
        .submit(tenant(), received("wms", 1, "A", 5), START)
        .await
        .unwrap();
    let reserved = engine
        .submit(tenant(), reserve("order-1", "A", 2, 60), START)
        .await
        .unwrap();
    assert_eq!(
        reservation_of(&reserved).state,
        ReservationState::Provisional
    );
    assert_eq!(published(&engine, "A"), Some((5, 3, 2)));
    clock.advance_seconds(59);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        published_state(&engine, "order-1"),
        Some(ReservationState::Provisional)
    );
    clock.advance_seconds(2);
    eventually("the reservation expiring", || {
        published_state(&engine, "order-1") == Some(ReservationState::Expired)
    })
    .await;
    assert_eq!(published(&engine, "A"), Some((5, 5, 0)));
    let journal = journal(&*store);
    let tick = journal.last().unwrap();
    assert_eq!(
        tick.input,
        stockflow_core::envelope::Input::Tick,
        "the expiry is journaled as a tick"
    );
    assert_eq!(tick.recorded_at, START.plus_seconds(61));
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_finishes_the_batch_in_flight_and_what_is_queued() {
    let store = DoubleStore::new();
    let engine = open(&store, test_config()).await;
    let mut answers = fill_pipeline(
        &engine,
        &store,
        [
            received("wms", 1, "A", 1),
            received("wms", 2, "A", 1),
            received("wms", 3, "A", 1),
        ],
    )
    .await;
    answers.push(enqueue(&engine, received("wms", 4, "A", 1)));
    answers.push(enqueue(&engine, received("wms", 5, "A", 1)));
    let shutdown = tokio::spawn({
        let engine = engine.clone();
        async move { engine.shutdown().await }
    });
    eventually("shutdown begun", || {
        engine.stats().shards[0].state == ShardState::Stopping
    })
    .await;
    let refused = engine
        .submit(tenant(), received("wms", 9, "A", 1), START)
        .await;
    assert!(
        matches!(refused, Err(EngineError::ShuttingDown)),
        "{refused:?}"
    );
    store.open_gate();
    for answer in answers {
        assert_eq!(statuses(&answer.await.unwrap()), [EventStatus::Applied]);
    }
    shutdown.await.unwrap().unwrap();
    assert_eq!(engine.stats().shards[0].state, ShardState::Stopped);
    assert_eq!(journal(&*store).len(), 5);
    let snapshot = store
        .latest_snapshot()
        .unwrap()
        .expect("a last snapshot at shutdown");
    assert_eq!(snapshot.position, 5);
    assert_eq!(engine.stopped().await, None, "stopped without a failure");
}

#[tokio::test]
async fn committed_availability_changes_reach_the_sink_with_their_position() {
    let store = DoubleStore::new();
    let sink = Arc::new(RecordingSink::default());
    let engine = Engine::open(test_config(), store.clone() as Arc<dyn Store>, sink.clone())
        .await
        .unwrap();
    engine
        .submit(tenant(), upsert_channel("web"), START)
        .await
        .unwrap();
    let submitted = engine
        .submit(tenant(), received("wms", 1, "A", 4), START)
        .await
        .unwrap();
    let changes = sink.changes.lock().unwrap().clone();
    let last = changes.last().expect("an availability change");
    assert_eq!(last.0, submitted.position);
    assert_eq!(
        (last.1.available_to_sell, Some(last.1.position)),
        (4, submitted.position)
    );
    assert_eq!(last.1.sku, sku("A"));
    assert!(sink.calls.load(Ordering::SeqCst) >= 1);
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn tenants_are_routed_to_stable_shards() {
    let stores: Vec<Arc<dyn Store>> = vec![DoubleStore::new(), DoubleStore::new()];
    let config = EngineConfig {
        shards: 2,
        ..test_config()
    };
    let engine = Engine::open_shards(config, stores.clone(), Arc::new(NoopSink))
        .await
        .unwrap();
    let tenants: Vec<_> = ["default", "acme", "globex", "initech"]
        .iter()
        .map(|t| stockflow_core::ids::TenantId::parse(*t).unwrap())
        .collect();
    for tenant in &tenants {
        let submitted = engine
            .submit(tenant.clone(), received("wms", 1, "A", 1), START)
            .await
            .unwrap();
        assert!(submitted.position.is_some());
    }
    let shards: Vec<usize> = tenants.iter().map(|t| engine.shard_of(t)).collect();
    assert_eq!(
        shards,
        [
            stockflow_engine::engine::shard_of(&tenants[0], 2),
            shards[1],
            shards[2],
            shards[3]
        ]
    );
    assert!(
        shards.contains(&0) && shards.contains(&1),
        "both shards used: {shards:?}"
    );
    for (tenant, shard) in tenants.iter().zip(&shards) {
        let journal = journal(&*stores[*shard]);
        assert!(
            journal.iter().any(|e| &e.tenant == tenant),
            "{tenant} is journaled in its shard"
        );
        assert!(engine.reads().sku(tenant, &sku("A")).is_some());
    }
    let total: usize = stores.iter().map(|s| journal(&**s).len()).sum();
    assert_eq!(total, 4);
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_misconfigured_engine_does_not_open() {
    let store = DoubleStore::new() as Arc<dyn Store>;
    let error = Engine::open(
        EngineConfig {
            queue_capacity: 0,
            ..test_config()
        },
        store.clone(),
        Arc::new(NoopSink),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(error, EngineError::Config(_)), "{error:?}");
    let error = Engine::open(
        EngineConfig {
            shards: 2,
            ..test_config()
        },
        store,
        Arc::new(NoopSink),
    )
    .await
    .err()
    .unwrap();
    assert!(
        error
            .to_string()
            .contains("2 shards configured but 1 stores"),
        "{error}"
    );
}

#[tokio::test]
async fn a_rejection_is_answered_without_journaling() {
    let store = DoubleStore::new();
    let engine = open(&store, test_config()).await;
    engine
        .submit(tenant(), received("wms", 1, "A", 1), START)
        .await
        .unwrap();
    let refused = engine
        .submit(tenant(), reserve("order-1", "A", 5, 60), START)
        .await
        .unwrap();
    assert!(
        matches!(&refused.reply, Reply::Rejected(r) if r.code() == "insufficient_stock"),
        "{refused:?}"
    );
    assert_eq!(refused.position, None);
    assert_eq!(journal(&*store).len(), 1);
    let granted = engine
        .submit(tenant(), reserve("order-1", "A", 1, 60), START)
        .await
        .unwrap();
    assert_eq!(granted.position, Some(2));
    let confirmed = engine
        .submit(tenant(), confirm("order-1"), START)
        .await
        .unwrap();
    assert_eq!(
        reservation_of(&confirmed).state,
        ReservationState::Confirmed
    );
    assert_eq!(
        published_state(&engine, "order-1"),
        Some(ReservationState::Confirmed)
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_ledger_panic_stops_the_writer_before_anything_is_journaled() {
    // A snapshot whose expiry index names a reservation that does not exist: the ledger's own
    // assertion fails on the first envelope of that tenant.
    let store = DoubleStore::new();
    let mut broken = stockflow_core::ledger::TenantLedger::default();
    broken.expiries.insert((START, rid("ghost")));
    let mut ledger = stockflow_core::ledger::Ledger::new();
    ledger.tenants.insert(tenant(), broken);
    store
        .save_snapshot(&stockflow_store::Snapshot {
            position: 0,
            recorded_at: START,
            ledger,
        })
        .unwrap();
    let engine = open(&store, test_config()).await;
    let answer = engine
        .submit(tenant(), received("wms", 1, "A", 1), START.plus_seconds(1))
        .await;
    assert!(
        matches!(&answer, Err(EngineError::Stopped(m)) if m.contains("panicked")),
        "{answer:?}"
    );
    assert!(
        journal(&*store).is_empty(),
        "nothing of the batch was journaled"
    );
    let failure = engine.stopped().await.expect("a failure to report");
    assert!(failure.contains("the ledger panicked"), "{failure}");
    assert!(matches!(
        engine.stats().shards[0].state,
        ShardState::Failed(_)
    ));
    let later = engine
        .submit(tenant(), received("wms", 2, "A", 1), START)
        .await;
    assert!(matches!(later, Err(EngineError::Stopped(_))), "{later:?}");
    assert!(matches!(
        engine.shutdown().await,
        Err(EngineError::Stopped(_))
    ));
    assert_eq!(
        store.latest_snapshot().unwrap().unwrap().position,
        0,
        "no snapshot of the broken state"
    );
}
