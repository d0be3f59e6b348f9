//! The outbox on SQLite, in a temporary file: an event stored in a committed transaction is
//! relayed and one rolled back never is; a bus with the SQLite outbox as its fallback loses
//! nothing while its broker is down, even across a restart of the service, and takes a publish
//! the broker did not confirm in time; clones of a relay
//! take turns; sent rows are purged after the retention.
#![cfg(feature = "sqlite")]

use std::sync::atomic::Ordering;
use std::time::Duration;

use sqlx::SqlitePool;
use tidings_core::Bus;
use tidings_sqlx::{Outbox, OutboxFallback, Relay, open_sqlite};

mod brokers;
use brokers::{Controlled, Recorded, Running, next, receive, relay_at_once};

async fn count(pool: &SqlitePool, filter: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM tidings_outbox {filter}"))
        .fetch_one(pool)
        .await
        .expect("counted")
}

/// A fresh SQLite outbox in a temporary folder, kept as long as the folder is.
async fn scratch() -> (tempfile::TempDir, SqlitePool) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let pool = open_sqlite(dir.path().join("outbox.db"))
        .await
        .expect("opened");
    (dir, pool)
}

fn recorded(seq: u64) -> Recorded {
    Recorded {
        seq,
        key: format!("k{}", seq % 2),
    }
}

#[tokio::test]
async fn a_committed_event_is_relayed_in_order_and_a_rolled_back_one_never() {
    let (_dir, pool) = scratch().await;
    let bus = Bus::memory();
    let (_subscription, mut rx) = receive(&bus).await;
    let outbox = Outbox::new(&bus);

    let mut tx = pool.begin().await.expect("begun");
    outbox
        .publish(&mut tx, &recorded(100))
        .await
        .expect("stored");
    tx.rollback().await.expect("rolled back");
    let mut tx = pool.begin().await.expect("begun");
    for seq in 0..10 {
        outbox
            .publish(&mut tx, &recorded(seq))
            .await
            .expect("stored");
    }
    tx.commit().await.expect("committed");

    let relay = Relay::new(pool.clone(), &bus)
        .batch(4)
        .retention(Duration::ZERO);
    let mut sent = 0;
    loop {
        match relay.relay_once().await.expect("a turn") {
            0 => break,
            n => sent += n,
        }
    }
    assert_eq!(sent, 10);
    let mut per_key: [Vec<u64>; 2] = Default::default();
    for _ in 0..10 {
        let event = next(&mut rx).await.into_inner();
        per_key[usize::try_from(event.seq % 2).expect("small")].push(event.seq);
    }
    assert_eq!(per_key, [vec![0, 2, 4, 6, 8], vec![1, 3, 5, 7, 9]]);
    assert!(
        rx.try_recv().is_err(),
        "each once, the rolled-back one never"
    );
    assert_eq!(count(&pool, "WHERE sent_at IS NULL").await, 0);

    // Sent a second ago or more: past a retention of zero.
    sqlx::query("UPDATE tidings_outbox SET sent_at = sent_at - 1")
        .execute(&pool)
        .await
        .expect("aged");
    assert_eq!(relay.purge().await.expect("purged"), 10);
    assert_eq!(count(&pool, "").await, 0);
}

#[tokio::test]
async fn with_the_sqlite_fallback_nothing_is_lost_while_the_broker_is_down_even_across_a_restart() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("fallback.db");
    let broker = Controlled::default();
    broker.down.store(true, Ordering::SeqCst);
    let mut ids = Vec::new();
    {
        // The service, its broker down: every publish is stored.
        let pool = open_sqlite(&file).await.expect("opened");
        let bus = Bus::new(broker.clone()).with_fallback(OutboxFallback::new(pool.clone()));
        for seq in 0..20 {
            let receipt = bus.publish(&recorded(seq)).await.expect("stored");
            assert!(receipt.is_deferred());
            ids.push(receipt.id().clone());
        }
        pool.close().await;
    }

    // Started again, with the broker back: the relay publishes what was stored.
    broker.down.store(false, Ordering::SeqCst);
    let pool = open_sqlite(&file).await.expect("opened again");
    let bus = Bus::new(broker.clone()).with_fallback(OutboxFallback::new(pool.clone()));
    let (_subscription, mut rx) = receive(&bus).await;
    let relay = Relay::new(pool.clone(), &bus);
    let running = Running::start(relay);
    let mut received = Vec::new();
    for _ in 0..20 {
        let event = next(&mut rx).await;
        received.push((event.seq, event.envelope().id.clone()));
    }
    running.stop().await;
    for key in 0..2 {
        let stored: Vec<_> = (0..20)
            .filter(|seq| seq % 2 == key)
            .map(|seq| ids[seq as usize].clone())
            .collect();
        let relayed: Vec<_> = received
            .iter()
            .filter(|(seq, _)| seq % 2 == key)
            .map(|(_, id)| id.clone())
            .collect();
        assert_eq!(
            relayed, stored,
            "every stored event of key {key}, with its id, in order"
        );
    }
    assert_eq!(count(&pool, "WHERE sent_at IS NULL").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_of_a_relay_take_turns_and_publish_every_event_once() {
    let (_dir, pool) = scratch().await;
    let bus = Bus::memory();
    let (_subscription, mut rx) = receive(&bus).await;
    let outbox = Outbox::new(&bus);
    let mut tx = pool.begin().await.expect("begun");
    for seq in 0..200 {
        outbox
            .publish(&mut tx, &recorded(seq))
            .await
            .expect("stored");
    }
    tx.commit().await.expect("committed");

    let relay = Relay::new(pool.clone(), &bus).batch(8);
    let counted = pool.clone();
    let total = relay_at_once([relay.clone(), relay], move || {
        let pool = counted.clone();
        async move { count(&pool, "WHERE sent_at IS NULL").await }
    })
    .await;
    assert_eq!(total, 200, "no event sent by both clones");
    for _ in 0..200 {
        next(&mut rx).await;
    }
    assert!(rx.try_recv().is_err(), "each event once");
}

#[tokio::test]
async fn a_publish_the_broker_does_not_confirm_in_time_goes_to_the_sqlite_fallback() {
    let (_dir, pool) = scratch().await;
    let held = Controlled::holding();
    let bus = Bus::new(held.clone())
        .with_publish_timeout(Duration::from_millis(50))
        .with_fallback(OutboxFallback::new(pool.clone()));
    let receipt = bus.publish(&recorded(1)).await.expect("stored");
    assert!(receipt.is_deferred());
    let stored: String = sqlx::query_scalar("SELECT id FROM tidings_outbox WHERE sent_at IS NULL")
        .fetch_one(&pool)
        .await
        .expect("one pending");
    assert_eq!(stored, receipt.id().as_str());
}
