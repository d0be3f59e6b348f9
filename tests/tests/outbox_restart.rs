//! 10,000 events published through the outbox while the NATS server restarts: every one
//! reaches the handler, and the duplicates the restart causes (a publish whose confirmation was
//! lost, published again by the relay) are counted and removed by the Redis dedup store.
//!
//! Alone in this file, as a restart would break tests running beside it. Ignored unless asked
//! for (`--include-ignored`, as the test command passes); needs the local NATS server (restarted
//! with its service command), PostgreSQL and Redis.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tidings::broker::nats::{DEFAULT_URL, NatsBroker, NatsConfig};
use tidings::broker::redis::{RedisConfig, RedisDedup};
use tidings::{Bus, DedupError, DedupStore, Received};
use tidings_conformance::probe::{Probe, Restart, run_id};
use tidings_sqlx::sqlx::PgPool;
use tidings_sqlx::{Outbox, Relay, migrate};
use tokio::sync::mpsc;

const EVENTS: u64 = 10_000;

/// The Redis store, counting the deliveries it recognised as handled before.
struct Counting {
    inner: RedisDedup,
    duplicates: AtomicU64,
}

#[async_trait]
impl DedupStore for Counting {
    async fn seen(&self, scope: &str, id: &str) -> Result<bool, DedupError> {
        let seen = self.inner.seen(scope, id).await?;
        if seen {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        Ok(seen)
    }

    async fn record(&self, scope: &str, id: &str) -> Result<(), DedupError> {
        self.inner.record(scope, id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs NATS with JetStream on 127.0.0.1:4222 (restarted by the test), PostgreSQL and Redis: run with --include-ignored, as the test command does"]
async fn events_stored_in_the_outbox_survive_a_broker_restart() {
    let config = NatsConfig::from_env()
        .max_age(Duration::from_secs(3600))
        .group_expiry(Some(Duration::from_secs(600)));
    assert_eq!(
        config.url(),
        DEFAULT_URL,
        "the test restarts the local server"
    );
    let postgres = std::env::var("TIDINGS_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let pool = PgPool::connect(&postgres)
        .await
        .expect("PostgreSQL is reachable");
    migrate(&pool).await.expect("the migrations run");
    let bus = Bus::new(
        NatsBroker::connect(config)
            .await
            .expect("NATS is reachable"),
    )
    .with_source("/tests/outbox-restart");

    let run = run_id();
    let store = Arc::new(Counting {
        inner: RedisDedup::connect(RedisConfig::from_env())
            .await
            .expect("Redis is reachable"),
        duplicates: AtomicU64::new(0),
    });
    let (tx, mut handled) = mpsc::unbounded_channel();
    let group = format!("outbox_{run}");
    let subscription = {
        let run = run.clone();
        bus.subscribe(move |event: Received<Restart>| {
            let (tx, run) = (tx.clone(), run.clone());
            async move {
                // Other runs' leftovers are no business of this one.
                if event.run() == run {
                    tx.send(event.seq())
                        .map_err(|_| "the test stopped listening")?;
                }
                Ok::<_, tidings::HandlerError>(())
            }
        })
        .group(group)
        .dedup(store.clone())
        .concurrency(64)
        .await
        .expect("subscribed")
    };

    let outbox = Outbox::new(&bus);
    for chunk in 0..EVENTS / 100 {
        let mut transaction = pool.begin().await.expect("begun");
        for seq in chunk * 100..(chunk + 1) * 100 {
            outbox
                .publish(&mut transaction, &Restart::new(&run, seq, ""))
                .await
                .expect("stored");
        }
        transaction.commit().await.expect("committed");
    }

    let relay = Relay::new(pool.clone(), &bus).timeout(Duration::from_secs(2));
    let relay_errors = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relaying = {
        let errors = relay_errors.clone();
        tokio::spawn(async move {
            relay
                .run(
                    async {
                        stopped.await.ok();
                    },
                    |_| {
                        errors.fetch_add(1, Ordering::Relaxed);
                    },
                )
                .await;
        })
    };

    let mut seen = BTreeSet::new();
    let mut restarted = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while (seen.len() as u64) < EVENTS {
        let seq = tokio::time::timeout_at(deadline, handled.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {EVENTS} events arrived within 3 minutes",
                    seen.len()
                )
            })
            .expect("the handler is alive");
        assert!(seen.insert(seq), "event {seq} reached the handler twice");
        if !restarted && seen.len() as u64 >= EVENTS / 5 {
            restarted = true;
            tokio::task::spawn_blocking(tidings_tests::nats_server::restart)
                .await
                .expect("the restart ran")
                .expect("the server restarted");
        }
    }
    stop.send(()).expect("the relay runs");
    relaying.await.expect("the relay stopped");
    subscription.shutdown().await;
    eprintln!(
        "outbox across a NATS restart: {} of {EVENTS} events handled once; {} duplicates removed \
         by the Redis dedup store; {} relay turns failed while the server was away",
        seen.len(),
        store.duplicates.load(Ordering::Relaxed),
        relay_errors.load(Ordering::Relaxed),
    );
    assert!(restarted);
}
