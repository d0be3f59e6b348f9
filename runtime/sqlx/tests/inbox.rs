//! The inbox on a real PostgreSQL server: a handler that records its event as handled in its
//! own transaction has its effect applied once, even when the delivery comes again after the
//! commit (a crash before the ack, played here by an error returned after the commit); without
//! the record, the same handler applies it twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use tidings_core::{Bus, DedupError, DedupStore, Event, Protobuf, Received, RetryPolicy};
use tidings_sqlx::PgDedup;
use tokio::sync::mpsc;

mod support;
use support::{drop_schema, pool};

#[derive(Clone, PartialEq, prost::Message)]
struct Reserved {
    #[prost(string, tag = "1")]
    sku: String,
}

impl Event for Reserved {
    const TOPIC: &'static str = "tests.inbox.reserved.v1";
    const SCHEMA: &'static str = "tests.inbox.v1.Reserved";
    const DATA_SCHEMA: &'static str = "proto:tests.inbox.v1.Reserved";
    type Codec = Protobuf;
}

const GROUP: &str = "reservations";

/// The store, telling each answer of `seen`: the subscription asks it before every attempt, so
/// the second answer means the redelivery reached the consumer.
struct Watched {
    inner: PgDedup,
    answers: mpsc::UnboundedSender<bool>,
}

#[async_trait]
impl DedupStore for Watched {
    async fn seen(&self, scope: &str, id: &str) -> Result<bool, DedupError> {
        let seen = self.inner.seen(scope, id).await?;
        self.answers
            .send(seen)
            .map_err(|_| DedupError(Box::from("the test stopped listening")))?;
        Ok(seen)
    }

    async fn record(&self, scope: &str, id: &str) -> Result<(), DedupError> {
        self.inner.record(scope, id).await
    }
}

/// Runs one event through a handler that writes its effect, records the event in the same
/// transaction when `inbox` says so, commits, then fails its first attempt as a crash after the
/// commit would, until the event was delivered a second time and handled or skipped. Returns
/// how often the handler ran and how many effects were written.
async fn run(pool: &PgPool, inbox: bool) -> (u32, i64) {
    sqlx::query("CREATE TABLE IF NOT EXISTS effects (event_id TEXT NOT NULL)")
        .execute(pool)
        .await
        .expect("the effects table");
    let store = PgDedup::new(pool.clone());
    let calls = Arc::new(AtomicU32::new(0));
    let (answers, mut answered) = mpsc::unbounded_channel();
    let bus = Bus::memory();
    let handler = {
        let (pool, store, calls) = (pool.clone(), store.clone(), calls.clone());
        move |event: Received<Reserved>| {
            let (pool, store, calls) = (pool.clone(), store.clone(), calls.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let mut tx = pool.begin().await?;
                sqlx::query("INSERT INTO effects (event_id) VALUES ($1)")
                    .bind(event.envelope().id.as_str())
                    .execute(&mut *tx)
                    .await?;
                if inbox {
                    store.record_in(&mut tx, GROUP, &event).await?;
                }
                tx.commit().await?;
                if event.attempt() == 1 {
                    return Err("the process died after its commit, before the ack".into());
                }
                Ok::<_, tidings_core::HandlerError>(())
            }
        }
    };
    let subscription = bus
        .subscribe(handler)
        .group(GROUP)
        .dedup(Watched {
            inner: store,
            answers,
        })
        .retry(RetryPolicy::default().initial_backoff(Duration::from_millis(1)))
        .await
        .expect("subscribed");
    bus.publish(&Reserved {
        sku: "sku-1".into(),
    })
    .await
    .expect("published");
    let mut answers = Vec::new();
    for _ in 0..2 {
        let answer = tokio::time::timeout(Duration::from_secs(10), answered.recv())
            .await
            .expect("the store asked within 10 s")
            .expect("the subscription is alive");
        answers.push(answer);
    }
    assert_eq!(
        answers,
        [false, inbox],
        "what the store knew at each delivery"
    );
    // Shutting down waits for the handling in flight: the redelivery's, if it runs.
    subscription.shutdown().await;
    let effects: i64 = sqlx::query_scalar("SELECT count(*) FROM effects")
        .fetch_one(pool)
        .await
        .expect("counted");
    (calls.load(Ordering::SeqCst), effects)
}

#[tokio::test]
#[ignore = "needs PostgreSQL at TIDINGS_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres): run with --include-ignored, as the test command does"]
async fn an_event_recorded_in_the_handlers_transaction_is_applied_once() {
    let (pool, schema) = pool().await;
    let (calls, effects) = run(&pool, true).await;
    assert_eq!(effects, 1, "the effect was applied once");
    assert_eq!(calls, 1, "the redelivery was recognised before the handler");
    drop_schema(pool, &schema).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL at TIDINGS_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres): run with --include-ignored, as the test command does"]
async fn without_the_record_the_same_handler_applies_it_twice() {
    let (pool, schema) = pool().await;
    let (calls, effects) = run(&pool, false).await;
    assert_eq!(calls, 2);
    assert_eq!(effects, 2, "a crash after the commit repeats the effect");
    drop_schema(pool, &schema).await;
}
