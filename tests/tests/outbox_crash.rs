//! A service killed with SIGKILL at each point of publishing through the outbox, then started
//! again: after the change and before its commit, after the commit and before the publish,
//! after a publish and before it is marked sent, and in the middle of a batch. Every committed
//! event reaches the handler, none that was rolled back ever does, and with the PostgreSQL
//! inbox each effect is applied exactly once. Over NATS JetStream and RabbitMQ.
//!
//! The service is `src/bin/outbox_worker.rs`, a process of its own; the handler runs here.
//! Ignored unless asked for (`--include-ignored`, as the test command passes); needs
//! PostgreSQL and the broker.

use std::process::Stdio;
use std::time::Duration;

use sqlx::Executor;
use tidings::{Bus, Received};
use tidings_conformance::probe::{Probe, Restart, run_id};
use tidings_sqlx::PgDedup;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[path = "../../runtime/sqlx/tests/support/mod.rs"]
mod support;

/// A worker process, killed with SIGKILL when dropped if it still runs.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        // Already gone is fine: the point is that none outlives the test.
        if let Err(e) = self.0.start_kill() {
            eprintln!("killing a worker: {e}");
        }
    }
}

/// Runs `outbox_worker` with `args` and waits (up to 30 s) for its `ready`.
async fn until_ready(url: &str, schema: &str, run: &str, args: &[&str]) -> Worker {
    let mut child = Command::new(env!("CARGO_BIN_EXE_outbox_worker"))
        .args([url, schema, run])
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the worker starts");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("the worker ({args:?}) was not ready within 30 s"))
        .expect("the worker's output reads");
    assert_eq!(line.as_deref(), Some("ready"), "the worker ({args:?})");
    Worker(child)
}

/// Kills `worker` with SIGKILL, as a crash would, and waits until it is gone.
async fn crash(mut worker: Worker) {
    worker.0.kill().await.expect("killed");
}

async fn crash_at_every_point(url: &str) {
    let (pool, schema) = support::pool().await;
    pool.execute(
        "CREATE TABLE orders (seq BIGINT NOT NULL); \
         CREATE TABLE effects (seq BIGINT NOT NULL, event_id TEXT NOT NULL)",
    )
    .await
    .expect("the service's tables");
    let run = run_id();

    // The consumer, in a group, with the inbox: its effect and the event's record commit
    // together.
    let bus = Bus::from_arc(
        tidings::connect(url)
            .await
            .expect("the broker is reachable"),
    );
    let store = PgDedup::new(pool.clone());
    let group = format!("crash_{run}");
    let handler = {
        let (pool, store, group, run) = (pool.clone(), store.clone(), group.clone(), run.clone());
        move |event: Received<Restart>| {
            let (pool, store, group, run) =
                (pool.clone(), store.clone(), group.clone(), run.clone());
            async move {
                if event.run() != run {
                    return Ok(());
                }
                let mut tx = pool.begin().await?;
                sqlx::query("INSERT INTO effects (seq, event_id) VALUES ($1, $2)")
                    .bind(i64::try_from(event.seq())?)
                    .bind(event.envelope().id.as_str())
                    .execute(&mut *tx)
                    .await?;
                store.record_in(&mut tx, &group, &event).await?;
                tx.commit().await?;
                Ok::<_, tidings::HandlerError>(())
            }
        }
    };
    let subscription = bus
        .subscribe(handler)
        .group(group)
        .dedup(store)
        .await
        .expect("subscribed");

    // Killed before the commit: events 0..10 and their orders are rolled back.
    crash(until_ready(url, &schema, &run, &["before-commit", "0", "10"]).await).await;
    // Killed after the commit, before any publish: 10..20 wait in the outbox.
    crash(until_ready(url, &schema, &run, &["after-commit", "10", "20"]).await).await;
    // Killed after one publish, before it is marked sent.
    crash(until_ready(url, &schema, &run, &["publish-then-hang", "1"]).await).await;
    // More events, then killed in the middle of a batch of 100, after 50 publishes.
    crash(until_ready(url, &schema, &run, &["after-commit", "20", "120"]).await).await;
    crash(until_ready(url, &schema, &run, &["publish-then-hang", "50"]).await).await;
    // Started again, it relays what is left.
    let status = Command::new(env!("CARGO_BIN_EXE_outbox_worker"))
        .args([url, &schema, &run, "relay"])
        .status()
        .await
        .expect("the worker runs");
    assert!(status.success(), "the last relay ended with {status}");

    let committed: Vec<i64> = (10..120).collect();
    let orders: Vec<i64> = sqlx::query_scalar("SELECT seq FROM orders ORDER BY seq")
        .fetch_all(&pool)
        .await
        .expect("read");
    assert_eq!(
        orders, committed,
        "the rolled-back orders are gone, the others kept"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let handled: i64 = sqlx::query_scalar("SELECT count(DISTINCT seq) FROM effects")
            .fetch_one(&pool)
            .await
            .expect("counted");
        if handled == 110 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{handled} of 110 committed events reached the handler within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Shutting down waits for the deliveries in flight, duplicates included.
    subscription.shutdown().await;
    let effects: Vec<i64> = sqlx::query_scalar("SELECT seq FROM effects ORDER BY seq")
        .fetch_all(&pool)
        .await
        .expect("read");
    assert_eq!(
        effects, committed,
        "each committed event's effect applied exactly once, and no rolled-back one"
    );
    support::drop_schema(pool, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and NATS with JetStream on their loopback ports: run with --include-ignored, as the test command does"]
async fn a_service_killed_at_every_point_loses_nothing_over_nats() {
    let url = std::env::var("TIDINGS_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    crash_at_every_point(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and RabbitMQ on their loopback ports: run with --include-ignored, as the test command does"]
async fn a_service_killed_at_every_point_loses_nothing_over_rabbitmq() {
    let url = std::env::var("TIDINGS_RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    crash_at_every_point(&url).await;
}
