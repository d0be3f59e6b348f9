//! A service that stores events in the outbox and relays them, stopping where the outbox crash
//! test kills it with SIGKILL: `tests/tests/outbox_crash.rs` runs it.
//!
//! `outbox_worker BROKER_URL SCHEMA RUN STEP [ARG]`, where STEP is one of:
//! - `before-commit FROM TO`: stores events FROM..TO with an order row each in one transaction,
//!   prints `ready` and waits, the transaction open;
//! - `after-commit FROM TO`: the same, committed, then prints `ready` and waits;
//! - `publish-then-hang N`: relays (one batch of up to 100), printing `ready` and waiting once
//!   the broker confirmed N events, before the relay marks any of them sent;
//! - `relay`: relays until nothing is pending, then exits.
//!
//! SCHEMA is the PostgreSQL schema to work in (the test's own); events are the conformance
//! suite's `Restart` probes of run RUN, all with one partition key, so their order is fixed.

use std::future::pending;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use tidings::broker::{DeliveryStream, Message, SubscribeRequest};
use tidings::{Broker, BrokerError, Bus, Capabilities, Confirmation, Topic};
use tidings_conformance::probe::{Probe, Restart};
use tidings_sqlx::sqlx::postgres::PgPoolOptions;
use tidings_sqlx::sqlx::{Executor, PgPool};
use tidings_sqlx::{Outbox, Relay};

/// A broker that, once it confirmed `after` publishes, says so and never confirms another: the
/// moment between a publish and its mark, held until the test kills the process.
struct HangAfter {
    inner: Arc<dyn Broker>,
    after: usize,
    confirmed: AtomicUsize,
}

#[async_trait]
impl Broker for HangAfter {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn publish(&self, topic: &Topic, message: Message) -> Result<Confirmation, BrokerError> {
        if self.confirmed.load(Ordering::SeqCst) >= self.after {
            println!("ready");
            pending::<()>().await;
        }
        let confirmation = self.inner.publish(topic, message).await?;
        self.confirmed.fetch_add(1, Ordering::SeqCst);
        Ok(confirmation)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        self.inner.subscribe(request).await
    }
}

async fn pool(schema: &str) -> Result<PgPool, Box<dyn std::error::Error>> {
    let url = std::env::var("TIDINGS_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let set = format!("SET search_path TO {schema}");
    Ok(PgPoolOptions::new()
        .max_connections(2)
        .after_connect(move |conn, _| {
            let set = set.clone();
            Box::pin(async move { conn.execute(set.as_str()).await.map(drop) })
        })
        .connect(&url)
        .await?)
}

/// Stores events `from..to` with their order rows in one transaction; commits it if `commit`.
async fn store(
    pool: &PgPool,
    bus: &Bus,
    run: &str,
    range: std::ops::Range<u64>,
    commit: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let outbox = Outbox::new(bus);
    let mut tx = pool.begin().await?;
    for seq in range {
        tidings_sqlx::sqlx::query("INSERT INTO orders (seq) VALUES ($1)")
            .bind(i64::try_from(seq)?)
            .execute(&mut *tx)
            .await?;
        outbox
            .publish(&mut tx, &Restart::new(run, seq, "one"))
            .await?;
    }
    if commit {
        tx.commit().await?;
    }
    println!("ready");
    pending::<()>().await;
    Ok(())
}

async fn work(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [url, schema, run, step, rest @ ..] = args else {
        return Err("usage: outbox_worker BROKER_URL SCHEMA RUN STEP [ARG...]".into());
    };
    let pool = pool(schema).await?;
    let broker = tidings::connect(url).await?;
    let number = |i: usize| -> Result<u64, Box<dyn std::error::Error>> {
        Ok(rest.get(i).ok_or("a number is missing")?.parse()?)
    };
    match step.as_str() {
        "before-commit" | "after-commit" => {
            let bus = Bus::from_arc(broker);
            let commit = step == "after-commit";
            store(&pool, &bus, run, number(0)?..number(1)?, commit).await
        }
        "publish-then-hang" => {
            let bus = Bus::new(HangAfter {
                inner: broker,
                after: usize::try_from(number(0)?)?,
                confirmed: AtomicUsize::new(0),
            });
            let sent = Relay::new(pool, &bus).relay_once().await?;
            Err(format!("the relay's turn ended ({sent} sent) before it was killed").into())
        }
        "relay" => {
            let relay = Relay::new(pool, &Bus::from_arc(broker));
            while relay.relay_once().await? > 0 {}
            Ok(())
        }
        other => Err(format!("unknown step {other}").into()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match work(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outbox_worker: {e}");
            ExitCode::FAILURE
        }
    }
}
