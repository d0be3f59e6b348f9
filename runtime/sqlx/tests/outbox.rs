//! The outbox on a real PostgreSQL server (`TIDINGS_POSTGRES_URL`, or the local server's
//! `postgres` database), relaying to the in-process broker: an event stored in a committed
//! transaction reaches a handler as it was stored, one in a rolled-back transaction never does,
//! a broker that refuses publishes loses nothing and keeps each key's order, and two relays at
//! once publish every event once and in order. Each test has a schema of its own, so their relays never meet.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use tidings_core::broker::{DeliveryStream, Message, SubscribeRequest};
use tidings_core::{
    Broker, BrokerError, Bus, Capabilities, Confirmation, Event, MemoryBroker, Protobuf, Received,
    Topic,
};
use tidings_sqlx::{Outbox, OutboxError, Relay};

mod support;
use support::{drop_schema, pool};
use tokio::sync::mpsc;

#[derive(Clone, PartialEq, prost::Message)]
struct Recorded {
    #[prost(uint64, tag = "1")]
    seq: u64,
    #[prost(string, tag = "2")]
    key: String,
}

impl Event for Recorded {
    const TOPIC: &'static str = "tests.outbox.recorded.v1";
    const SCHEMA: &'static str = "tests.outbox.v1.Recorded";
    type Codec = Protobuf;

    fn key(&self) -> Option<String> {
        Some(self.key.clone())
    }
}

/// The events a subscriber of `bus` receives, in arrival order.
async fn receive(
    bus: &Bus,
) -> (
    tidings_core::Subscription,
    mpsc::UnboundedReceiver<Received<Recorded>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let subscription = bus
        .subscribe(move |event: Received<Recorded>| {
            let tx = tx.clone();
            async move { tx.send(event).map_err(|_| "the test stopped listening") }
        })
        .concurrency(1)
        .await
        .expect("subscribed");
    (subscription, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received<Recorded>>) -> Received<Recorded> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("the handler is alive")
}

async fn pending(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tidings_outbox WHERE sent_at IS NULL")
        .fetch_one(pool)
        .await
        .expect("counted")
}

#[tokio::test]
#[ignore = "needs PostgreSQL at TIDINGS_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres): run with --include-ignored, as the test command does"]
async fn a_committed_event_is_relayed_as_stored_and_a_rolled_back_one_never() {
    let (pool, schema) = pool().await;
    let bus = Bus::memory().with_source("/tests/outbox");
    let (_subscription, mut rx) = receive(&bus).await;
    let outbox = Outbox::new(&bus);

    let mut tx = pool.begin().await.expect("begun");
    let gone = outbox
        .publish(
            &mut tx,
            &Recorded {
                seq: 1,
                key: "k".into(),
            },
        )
        .await
        .expect("stored");
    tx.rollback().await.expect("rolled back");

    let mut tx = pool.begin().await.expect("begun");
    let kept = outbox
        .publish(
            &mut tx,
            &Recorded {
                seq: 2,
                key: "k".into(),
            },
        )
        .await
        .expect("stored");
    // Not visible to the relay before the commit.
    let relay = Relay::new(pool.clone(), &bus);
    assert_eq!(relay.relay_once().await.expect("a turn"), 0);
    tx.commit().await.expect("committed");

    assert_eq!(relay.relay_once().await.expect("a turn"), 1);
    let event = next(&mut rx).await;
    assert_eq!(event.seq, 2);
    assert_eq!(event.envelope().id, kept);
    assert_ne!(event.envelope().id, gone);
    assert_eq!(&*event.envelope().source, "/tests/outbox");
    assert_eq!(event.envelope().partition_key.as_deref(), Some("k"));
    assert_eq!(pending(&pool).await, 0);
    assert_eq!(relay.relay_once().await.expect("a turn"), 0, "sent once");
    assert!(
        rx.try_recv().is_err(),
        "the rolled-back event never arrives"
    );
    drop_schema(pool, &schema).await;
}

/// The in-process broker, refusing every publish while `down` is set.
#[derive(Clone, Default)]
struct Flaky {
    inner: MemoryBroker,
    down: Arc<AtomicBool>,
}

#[async_trait]
impl Broker for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn publish(&self, topic: &Topic, message: Message) -> Result<Confirmation, BrokerError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BrokerError::Unreachable {
                broker: "flaky",
                address: "nowhere".into(),
                reason: "down for the test".into(),
            });
        }
        self.inner.publish(topic, message).await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        self.inner.subscribe(request).await
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL at TIDINGS_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres): run with --include-ignored, as the test command does"]
async fn events_wait_while_the_broker_is_away_and_go_out_in_order_per_key_after() {
    let (pool, schema) = pool().await;
    let broker = Flaky::default();
    let bus = Bus::new(broker.clone());
    let (_subscription, mut rx) = receive(&bus).await;
    let outbox = Outbox::new(&bus);
    let mut tx = pool.begin().await.expect("begun");
    for seq in 0..20 {
        let key = format!("k{}", seq % 3);
        outbox
            .publish(&mut tx, &Recorded { seq, key })
            .await
            .expect("stored");
    }
    tx.commit().await.expect("committed");

    broker.down.store(true, Ordering::SeqCst);
    let relay = Relay::new(pool.clone(), &bus).batch(7);
    let error = relay.relay_once().await.expect_err("the broker is away");
    assert!(matches!(error, OutboxError::Broker(_)), "{error}");
    assert_eq!(pending(&pool).await, 20, "nothing is marked sent");

    broker.down.store(false, Ordering::SeqCst);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        relay
            .run(
                async {
                    stop_rx.await.ok();
                },
                |e| panic!("the relay failed: {e}"),
            )
            .await;
    });
    let mut per_key: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for _ in 0..20 {
        let event = next(&mut rx).await.into_inner();
        per_key.entry(event.key).or_default().push(event.seq);
    }
    for (key, seqs) in &per_key {
        let stored: Vec<u64> = (0..20)
            .filter(|seq| format!("k{}", seq % 3) == *key)
            .collect();
        assert_eq!(
            seqs, &stored,
            "the events of {key}, once each, in the order stored"
        );
    }
    assert_eq!(per_key.len(), 3);
    stop_tx.send(()).expect("the relay runs");
    running.await.expect("the relay stopped cleanly");
    assert_eq!(pending(&pool).await, 0);
    assert!(rx.try_recv().is_err(), "each event once");
    drop_schema(pool, &schema).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL at TIDINGS_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres): run with --include-ignored, as the test command does"]
async fn two_relays_at_once_publish_every_event_once_in_order() {
    const EVENTS: u64 = 300;
    let (pool, schema) = pool().await;
    let bus = Bus::memory();
    let (_subscription, mut rx) = receive(&bus).await;
    let outbox = Outbox::new(&bus);
    for chunk in 0..(EVENTS / 50) {
        let mut tx = pool.begin().await.expect("begun");
        for seq in chunk * 50..(chunk + 1) * 50 {
            outbox
                .publish(
                    &mut tx,
                    &Recorded {
                        seq,
                        key: "one".into(),
                    },
                )
                .await
                .expect("stored");
        }
        tx.commit().await.expect("committed");
    }
    let relays: Vec<_> = (0..2)
        .map(|_| {
            let (pool, relay) = (pool.clone(), Relay::new(pool.clone(), &bus).batch(16));
            tokio::spawn(async move {
                let mut sent = 0;
                while pending(&pool).await > 0 {
                    match relay.relay_once().await.expect("a turn") {
                        // The other relay has the turn.
                        0 => tokio::task::yield_now().await,
                        n => sent += n,
                    }
                }
                sent
            })
        })
        .collect();
    let mut total = 0;
    for relay in relays {
        total += relay.await.expect("the relay ran");
    }
    assert_eq!(total as u64, EVENTS, "no event sent by both relays");
    for seq in 0..EVENTS {
        assert_eq!(next(&mut rx).await.seq, seq, "in the order stored");
    }
    assert!(rx.try_recv().is_err(), "each event once");
    drop_schema(pool, &schema).await;
}
