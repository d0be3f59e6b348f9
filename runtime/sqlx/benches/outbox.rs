//! The outbox against its floors, in the same run, interleaved rounds, median of the rounds'
//! ratios:
//!
//! - storing: an event stored by `Outbox::publish` in a transaction of its own, against a plain
//!   insert of the same bytes (the encoded event and its attributes) in a transaction of its own,
//!   the two sides alternating event by event (target ratio >= 0.8);
//! - relaying: the relay publishing stored events to NATS JetStream, each confirmed, against the
//!   bus publishing the same events to NATS directly, each confirmed (target ratio >= 0.7).
//!
//! `cargo bench -p tidings-sqlx --bench outbox` needs PostgreSQL (`TIDINGS_POSTGRES_URL`, default
//! the local server's `postgres` database) and NATS with JetStream (`TIDINGS_NATS_URL`, default
//! 127.0.0.1:4222). It works in a schema of its own, dropped at the end.

use std::time::{Duration, Instant};

use sqlx::{Executor, PgPool};
use tidings_core::{Bus, Event, Protobuf};
use tidings_nats::{NatsBroker, NatsConfig};
use tidings_sqlx::{Outbox, Relay};

// The tests' scratch schema: a database of the bench's own to work in.
#[path = "../tests/support/mod.rs"]
mod support;

const ROUNDS: usize = 7;
const STORED: usize = 2_000;
const RELAYED: usize = 2_000;

/// The shop's order event, flattened: 106 bytes or so, like `events.order.created.v1`.
#[derive(Clone, PartialEq, prost::Message)]
struct Created {
    #[prost(string, tag = "1")]
    order_id: String,
    #[prost(string, tag = "2")]
    customer_id: String,
    #[prost(string, repeated, tag = "3")]
    skus: Vec<String>,
    #[prost(int64, tag = "4")]
    total_minor_units: i64,
    #[prost(string, tag = "5")]
    currency: String,
}

impl Event for Created {
    const TOPIC: &'static str = "bench.outbox.created.v1";
    const SCHEMA: &'static str = "bench.outbox.v1.Created";
    const DATA_SCHEMA: &'static str = "proto:bench.outbox.v1.Created";
    type Codec = Protobuf;
}

fn sample(n: usize) -> Created {
    Created {
        order_id: format!("order-{n:08}"),
        customer_id: "customer-0042".into(),
        skus: vec!["sku-0001-blue".into(), "sku-0002-large".into()],
        total_minor_units: 12_345,
        currency: "EUR".into(),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Seconds to store `STORED` events, each in a transaction of its own, through the outbox, and
/// seconds to insert the same bytes as often, each in a transaction of its own: event by event,
/// alternating which side goes first, so that both meet the same disk and the same load (the
/// commit's flush dominates both, and it varies from second to second on a busy machine).
async fn store(pool: &PgPool, bus: &Bus, outbox: &Outbox) -> (f64, f64) {
    let (mut stored, mut plain) = (Duration::ZERO, Duration::ZERO);
    for n in 0..STORED {
        if n % 2 == 0 {
            stored += store_outbox(pool, outbox, n).await;
            plain += store_plain(pool, bus, n).await;
        } else {
            plain += store_plain(pool, bus, n).await;
            stored += store_outbox(pool, outbox, n).await;
        }
    }
    (stored.as_secs_f64(), plain.as_secs_f64())
}

/// The time to store event `n` in a transaction of its own, through the outbox.
async fn store_outbox(pool: &PgPool, outbox: &Outbox, n: usize) -> Duration {
    let start = Instant::now();
    let mut tx = pool.begin().await.expect("begun");
    outbox.publish(&mut tx, &sample(n)).await.expect("stored");
    tx.commit().await.expect("committed");
    start.elapsed()
}

/// The time to insert the bytes of event `n` in a transaction of its own.
async fn store_plain(pool: &PgPool, bus: &Bus, n: usize) -> Duration {
    let start = Instant::now();
    // The same work to make the bytes as the outbox does.
    let (topic, message) = bus.prepare(&sample(n)).expect("a message");
    let (names, values): (Vec<&str>, Vec<String>) = message
        .envelope
        .attributes()
        .into_iter()
        .map(|(k, v)| (k, v.into_owned()))
        .unzip();
    let mut tx = pool.begin().await.expect("begun");
    sqlx::query("INSERT INTO plain (topic, names, vals, data) VALUES ($1, $2, $3, $4)")
        .bind(topic.as_str())
        .bind(&names)
        .bind(&values)
        .bind(message.data.as_ref())
        .execute(&mut *tx)
        .await
        .expect("inserted");
    tx.commit().await.expect("committed");
    start.elapsed()
}

/// Seconds for the relay to publish `RELAYED` stored events (stored beforehand, not timed).
async fn relay(pool: &PgPool, bus: &Bus) -> f64 {
    let outbox = Outbox::new(bus);
    let mut tx = pool.begin().await.expect("begun");
    for n in 0..RELAYED {
        outbox.publish(&mut tx, &sample(n)).await.expect("stored");
    }
    tx.commit().await.expect("committed");
    let relay = Relay::new(pool.clone(), bus).batch(100);
    let start = Instant::now();
    let mut sent = 0;
    while sent < RELAYED {
        sent += relay.relay_once().await.expect("a turn");
    }
    start.elapsed().as_secs_f64()
}

/// Seconds for the bus to publish `RELAYED` events directly, one after another, each confirmed.
async fn direct(bus: &Bus) -> f64 {
    let start = Instant::now();
    for n in 0..RELAYED {
        bus.publish(&sample(n)).await.expect("published");
    }
    start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (pool, schema) = support::pool().await;
    pool.execute(
        "CREATE TABLE plain (seq BIGSERIAL PRIMARY KEY, topic TEXT, names TEXT[], vals TEXT[], \
         data BYTEA)",
    )
    .await
    .expect("the plain table");
    let nats = NatsBroker::connect(NatsConfig::from_env().max_age(Duration::from_secs(600)))
        .await
        .expect("NATS is reachable");
    let bus = Bus::new(nats).with_source("/bench/outbox");
    let outbox = Outbox::new(&bus);
    // Warm-up: connections, the stream, statement caches.
    store(&pool, &bus, &outbox).await;
    direct(&bus).await;

    let (mut stored, mut plain, mut relayed, mut published) = (vec![], vec![], vec![], vec![]);
    for round in 0..ROUNDS {
        // Interleaved, and alternating which side goes first.
        let (outbox_secs, plain_secs) = store(&pool, &bus, &outbox).await;
        stored.push(outbox_secs);
        plain.push(plain_secs);
        if round % 2 == 0 {
            relayed.push(relay(&pool, &bus).await);
            published.push(direct(&bus).await);
        } else {
            published.push(direct(&bus).await);
            relayed.push(relay(&pool, &bus).await);
        }
    }
    let rate = |secs: &[f64], n: usize| median(secs.iter().map(|s| n as f64 / s).collect());
    let ratio =
        |side: &[f64], floor: &[f64]| median(side.iter().zip(floor).map(|(s, f)| f / s).collect());
    println!("outbox on PostgreSQL, median of {ROUNDS} interleaved rounds");
    println!("storing {STORED} events, each in a transaction of its own");
    println!(
        "  Outbox::publish + commit:        {:8.0} events/s",
        rate(&stored, STORED)
    );
    println!(
        "  plain insert of the same bytes:  {:8.0} events/s",
        rate(&plain, STORED)
    );
    println!("  ratio {:.2} (target >= 0.80)", ratio(&stored, &plain));
    println!("relaying {RELAYED} events to NATS JetStream, each confirmed");
    println!(
        "  relay (batches of 100):          {:8.0} events/s",
        rate(&relayed, RELAYED)
    );
    println!(
        "  bus.publish directly:            {:8.0} events/s",
        rate(&published, RELAYED)
    );
    println!(
        "  ratio {:.2} (target >= 0.70)",
        ratio(&relayed, &published)
    );
    support::drop_schema(pool, &schema).await;
}
