//! The outbox on a real PostgreSQL server (`TIDINGS_POSTGRES_URL`, or the local server's
//! `postgres` database), relaying to the in-process broker: an event stored in a committed
//! transaction reaches a handler as it was stored, one in a rolled-back transaction never does,
//! a broker that refuses publishes loses nothing and keeps each key's order, two relays at once
//! publish every event once and in order, the relays of two outboxes in one database never wait
//! for each other, and a bus with the outbox as its fallback stores what the broker did not
//! take, for the relay. Each test has a schema of its own.

use std::sync::atomic::Ordering;
use std::time::Duration;

use sqlx::PgPool;
use tidings_core::{Bus, PublishError};
use tidings_sqlx::{Outbox, OutboxError, OutboxFallback, Relay};

mod brokers;
mod support;
use brokers::{Controlled, Recorded, Running, next, receive, relay_at_once};
use support::{drop_schema, pool};

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

#[tokio::test]
#[ignore = "needs PostgreSQL at TIDINGS_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres): run with --include-ignored, as the test command does"]
async fn events_wait_while_the_broker_is_away_and_go_out_in_order_per_key_after() {
    let (pool, schema) = pool().await;
    let broker = Controlled::default();
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
    let running = Running::start(relay);
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
    running.stop().await;
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
    let relay = Relay::new(pool.clone(), &bus).batch(16);
    let counted = pool.clone();
    let total = relay_at_once([relay.clone(), relay], move || {
        let pool = counted.clone();
        async move { pending(&pool).await }
    })
    .await;
    assert_eq!(total as u64, EVENTS, "no event sent by both relays");
    for seq in 0..EVENTS {
        assert_eq!(next(&mut rx).await.seq, seq, "in the order stored");
    }
    assert!(rx.try_recv().is_err(), "each event once");
    drop_schema(pool, &schema).await;
}

async fn store_one(pool: &PgPool, bus: &Bus, seq: u64) {
    let mut tx = pool.begin().await.expect("begun");
    Outbox::new(bus)
        .publish(
            &mut tx,
            &Recorded {
                seq,
                key: "k".into(),
            },
        )
        .await
        .expect("stored");
    tx.commit().await.expect("committed");
}

#[tokio::test]
#[ignore = "needs PostgreSQL at TIDINGS_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres): run with --include-ignored, as the test command does"]
async fn the_relays_of_two_outboxes_in_one_database_never_wait_for_each_other() {
    let (first_pool, first_schema) = pool().await;
    let (second_pool, second_schema) = pool().await;
    let held = Controlled::holding();
    let held_bus = Bus::new(held.clone());
    store_one(&first_pool, &held_bus, 1).await;
    let first = Relay::new(first_pool.clone(), &held_bus);
    let turn = tokio::spawn(async move { first.relay_once().await });
    // The first outbox's relay has its turn and is in the middle of a publish.
    held.entered.notified().await;

    let bus = Bus::memory();
    let (_subscription, mut rx) = receive(&bus).await;
    store_one(&second_pool, &bus, 2).await;
    let second = Relay::new(second_pool.clone(), &bus);
    assert_eq!(
        second.relay_once().await.expect("a turn"),
        1,
        "the other outbox's relay has a turn of its own"
    );
    assert_eq!(next(&mut rx).await.seq, 2);

    held.release.notify_one();
    assert_eq!(turn.await.expect("ran").expect("a turn"), 1);
    drop_schema(first_pool, &first_schema).await;
    drop_schema(second_pool, &second_schema).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL at TIDINGS_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres): run with --include-ignored, as the test command does"]
async fn a_bus_with_the_outbox_as_fallback_stores_what_the_broker_refused_for_the_relay() {
    let (pool, schema) = pool().await;
    let broker = Controlled::default();
    let bus = Bus::new(broker.clone()).with_fallback(OutboxFallback::new(pool.clone()));
    let (_subscription, mut rx) = receive(&bus).await;

    broker.down.store(true, Ordering::SeqCst);
    let receipt = bus
        .publish(&Recorded {
            seq: 7,
            key: "k".into(),
        })
        .await
        .expect("stored instead of failing");
    assert!(receipt.is_deferred());
    assert_eq!(pending(&pool).await, 1);

    broker.down.store(false, Ordering::SeqCst);
    let relay = Relay::new(pool.clone(), &bus);
    assert_eq!(relay.relay_once().await.expect("a turn"), 1);
    let event = next(&mut rx).await;
    assert_eq!(event.seq, 7);
    assert_eq!(&event.envelope().id, receipt.id(), "the event keeps its id");
    assert_eq!(pending(&pool).await, 0);

    // A publish the broker takes does not touch the outbox.
    let receipt = bus
        .publish(&Recorded {
            seq: 8,
            key: "k".into(),
        })
        .await
        .expect("published");
    assert!(!receipt.is_deferred());
    assert_eq!(next(&mut rx).await.seq, 8);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM tidings_outbox")
        .fetch_one(&pool)
        .await
        .expect("counted");
    assert_eq!(stored, 1);
    drop_schema(pool, &schema).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL at TIDINGS_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres): run with --include-ignored, as the test command does"]
async fn a_publish_unconfirmed_in_time_goes_to_the_fallback_and_one_it_cannot_store_fails() {
    let (pool, schema) = pool().await;
    let held = Controlled::holding();
    let bus = Bus::new(held.clone())
        .with_publish_timeout(Duration::from_millis(50))
        .with_fallback(OutboxFallback::new(pool.clone()));
    let receipt = bus
        .publish(&Recorded {
            seq: 1,
            key: "k".into(),
        })
        .await
        .expect("stored after the timeout");
    assert!(receipt.is_deferred());
    assert_eq!(pending(&pool).await, 1);

    // Without its table the outbox cannot store: the publish fails with both reasons.
    sqlx::query("DROP TABLE tidings_outbox")
        .execute(&pool)
        .await
        .expect("dropped");
    let error = bus
        .publish(&Recorded {
            seq: 2,
            key: "k".into(),
        })
        .await
        .expect_err("neither published nor stored");
    assert!(
        matches!(&error, PublishError::Fallback { publish, .. } if matches!(**publish, PublishError::Timeout { .. })),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains("no confirmation") && text.contains("tidings_outbox"),
        "{text}"
    );
    drop_schema(pool, &schema).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL at TIDINGS_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres): run with --include-ignored, as the test command does"]
async fn an_event_stored_in_reaction_to_another_continues_its_chain_and_a_loop_is_refused() {
    let (pool, schema) = pool().await;
    let bus = Bus::memory().with_max_causation_depth(2);
    let (_subscription, mut rx) = receive(&bus).await;
    let outbox = Outbox::new(&bus);
    let relay = Relay::new(pool.clone(), &bus);

    bus.publish(&Recorded {
        seq: 1,
        key: "k".into(),
    })
    .await
    .expect("published");
    let mut cause = next(&mut rx).await;
    // Each event stored in reaction to the one before, as a handler that writes to its own
    // topic through the outbox would.
    for seq in 2..=3 {
        let mut tx = pool.begin().await.expect("begun");
        let event = Recorded {
            seq,
            key: "k".into(),
        };
        let id = outbox
            .publish_with(&mut tx, bus.publish_with(&event).caused_by(&cause))
            .await
            .expect("stored");
        tx.commit().await.expect("committed");
        assert_eq!(relay.relay_once().await.expect("a turn"), 1);
        let caused = next(&mut rx).await;
        assert_eq!(caused.envelope().id, id);
        assert_eq!(
            caused.envelope().causation_id.as_deref(),
            Some(cause.envelope().id.as_str())
        );
        assert_eq!(
            caused.envelope().causation_depth,
            u32::try_from(seq - 1).unwrap()
        );
        cause = caused;
    }

    let mut tx = pool.begin().await.expect("begun");
    let refused = outbox
        .publish_with(
            &mut tx,
            bus.publish_with(&Recorded {
                seq: 4,
                key: "k".into(),
            })
            .caused_by(&cause),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(OutboxError::Event(PublishError::CausationTooDeep {
                depth: 3,
                bound: 2,
                ..
            }))
        ),
        "{refused:?}"
    );
    tx.commit().await.expect("committed");
    assert_eq!(pending(&pool).await, 0, "nothing was stored");
    drop_schema(pool, &schema).await;
}
