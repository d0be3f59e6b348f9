//! In-process bus: typed publish -> handler on the `MemoryBroker`, against its floor, raw prost
//! encode -> tokio mpsc -> decode of the same message, in the same run, on one thread.
//!
//! `cargo bench -p tidings --bench inproc` prints events/s for both and `ratio 0.NN`, for two
//! messages: the shop's order event as `schemas/events/order/v1/order.proto` defines it, and a
//! flat one of six scalar fields, where the codec's share of the work is smallest.
//!
//! The typed side runs twice per round, in the same run: with no `tracing` subscriber, and with
//! `tracing_subscriber::fmt` at INFO writing into a sink (what a service that logs pays), and
//! the bench prints the ratio of the two. The build without instrumentation is the same bench
//! with `--features tracing/max_level_off`, which compiles every span and event out.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost_types::Timestamp;
use tidings::{Bus, Event, HandlerError, MemoryBroker, Protobuf, Received};
use tokio::sync::{Notify, mpsc};

/// The shop's order event, field for field as `schemas/events/order/v1/order.proto` defines it
/// (the runtime cannot build on the code generator, so it is written out here).
#[derive(Clone, PartialEq, prost::Message)]
struct Created {
    #[prost(string, tag = "1")]
    order_id: String,
    #[prost(string, tag = "2")]
    customer_id: String,
    #[prost(message, repeated, tag = "3")]
    lines: Vec<LineItem>,
    #[prost(message, optional, tag = "4")]
    total: Option<Money>,
    #[prost(enumeration = "Channel", tag = "5")]
    channel: i32,
    #[prost(message, optional, tag = "6")]
    placed_at: Option<Timestamp>,
}

/// One product in an order.
#[derive(Clone, PartialEq, prost::Message)]
struct LineItem {
    #[prost(string, tag = "1")]
    sku: String,
    #[prost(uint32, tag = "2")]
    quantity: u32,
    #[prost(message, optional, tag = "3")]
    unit_price: Option<Money>,
}

/// An amount in minor units of a currency.
#[derive(Clone, PartialEq, prost::Message)]
struct Money {
    #[prost(string, tag = "1")]
    currency: String,
    #[prost(int64, tag = "2")]
    minor_units: i64,
}

/// Where an order came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
enum Channel {
    Unspecified = 0,
    Web = 1,
}

impl Event for Created {
    const TOPIC: &'static str = "events.order.created.v1";
    const SCHEMA: &'static str = "events.order.v1.Created";
    const DATA_SCHEMA: &'static str = "proto:events.order.v1.Created";
    type Codec = Protobuf;
}

fn money(minor_units: i64) -> Option<Money> {
    Some(Money {
        currency: "EUR".into(),
        minor_units,
    })
}

/// An order of two lines.
fn order() -> Created {
    Created {
        order_id: "ord-000123456789".into(),
        customer_id: "cus-42".into(),
        lines: vec![
            LineItem {
                sku: "SKU-RED-MUG".into(),
                quantity: 2,
                unit_price: money(1_250),
            },
            LineItem {
                sku: "SKU-TEA-500G".into(),
                quantity: 1,
                unit_price: money(1_890),
            },
        ],
        total: money(4_390),
        channel: Channel::Web as i32,
        placed_at: Some(Timestamp {
            seconds: 1_790_000_000,
            nanos: 123_000_000,
        }),
    }
}

/// The flat event: ids, an amount, a currency, a short note.
#[derive(Clone, PartialEq, prost::Message)]
struct Flat {
    #[prost(string, tag = "1")]
    order_id: String,
    #[prost(string, tag = "2")]
    customer_id: String,
    #[prost(int64, tag = "3")]
    amount_cents: i64,
    #[prost(string, tag = "4")]
    currency: String,
    #[prost(uint32, tag = "5")]
    items: u32,
    #[prost(string, tag = "6")]
    note: String,
}

impl Event for Flat {
    const TOPIC: &'static str = "events.bench.flat.v1";
    const SCHEMA: &'static str = "events.bench.v1.Flat";
    const DATA_SCHEMA: &'static str = "proto:events.bench.v1.Flat";
    type Codec = Protobuf;
}

fn flat() -> Flat {
    Flat {
        order_id: "ord-000123456789".into(),
        customer_id: "cus-42".into(),
        amount_cents: 129_900,
        currency: "EUR".into(),
        items: 3,
        note: "leave at the door".into(),
    }
}

/// Events per round, and rounds per side.
/// Events per round: 200,000, or `TIDINGS_BENCH_EVENTS` (a short run under a profiler).
fn events() -> u64 {
    static EVENTS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *EVENTS.get_or_init(|| {
        std::env::var("TIDINGS_BENCH_EVENTS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(200_000)
    })
}
const ROUNDS: usize = 7;

async fn typed<E: Event + prost::Message>(bus: &Bus, event: &E) -> Duration {
    let handled = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let events = events();
    let handler = {
        let (handled, done) = (handled.clone(), done.clone());
        move |event: Received<E>| {
            std::hint::black_box(&*event);
            // One thread runs the handler, one call at a time, so a plain load and store count
            // exactly, as the raw side's `Cell` does.
            let count = handled.load(Ordering::Relaxed) + 1;
            handled.store(count, Ordering::Relaxed);
            if count == events {
                done.notify_one();
            }
            std::future::ready(Ok::<(), HandlerError>(()))
        }
    };
    let sub = bus.subscribe(handler).await.expect("subscribing");
    let start = Instant::now();
    for _ in 0..events {
        bus.publish(event).await.expect("publishing");
    }
    done.notified().await;
    let elapsed = start.elapsed();
    sub.shutdown().await;
    elapsed
}

async fn raw<E: prost::Message + Default + 'static>(event: &E, capacity: usize) -> Duration {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(capacity);
    let handled = Rc::new(Cell::new(0u64));
    let consumer = tokio::task::spawn_local({
        let handled = handled.clone();
        async move {
            while let Some(bytes) = rx.recv().await {
                let decoded = E::decode(&bytes[..]).expect("decoding");
                std::hint::black_box(&decoded);
                handled.set(handled.get() + 1);
            }
        }
    });
    let start = Instant::now();
    for _ in 0..events() {
        let bytes = event.encode_to_vec();
        tx.send(bytes).await.expect("sending");
    }
    drop(tx);
    consumer.await.expect("the consumer");
    let elapsed = start.elapsed();
    assert_eq!(handled.get(), events());
    elapsed
}

fn per_second(elapsed: Duration) -> f64 {
    events() as f64 / elapsed.as_secs_f64()
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// The typed side with `tracing_subscriber::fmt` at INFO, writing into a sink, installed for
/// this thread (which runs the publisher, the consumer and the handler) while it runs.
async fn typed_logging<E: Event + prost::Message>(bus: &Bus, event: &E) -> Duration {
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .finish();
    let _installed = tracing::subscriber::set_default(subscriber);
    typed(bus, event).await
}

/// The three sides for one message: a round each to warm caches and the allocator, then rounds
/// interleaved; prints the medians and their ratios.
fn compare<E: Event + prost::Message + Default>(
    runtime: &tokio::runtime::Runtime,
    bus: &Bus,
    capacity: usize,
    name: &str,
    event: &E,
) {
    let local = tokio::task::LocalSet::new();
    let (mut typed_rates, mut logging_rates, mut raw_rates) = (Vec::new(), Vec::new(), Vec::new());
    local.block_on(runtime, async {
        typed(bus, event).await;
        typed_logging(bus, event).await;
        raw(event, capacity).await;
        for _ in 0..ROUNDS {
            typed_rates.push(per_second(typed(bus, event).await));
            logging_rates.push(per_second(typed_logging(bus, event).await));
            raw_rates.push(per_second(raw(event, capacity).await));
        }
    });
    let (typed, logging, raw) = (
        median(typed_rates),
        median(logging_rates),
        median(raw_rates),
    );
    println!();
    println!("{name}, {} bytes encoded", event.encoded_len());
    println!("  typed publish -> handler (MemoryBroker):  {typed:>12.0} events/s");
    println!("  the same, fmt subscriber at INFO:          {logging:>12.0} events/s");
    println!("  raw prost encode -> tokio mpsc -> decode:  {raw:>12.0} events/s");
    println!("  ratio {:.2}", typed / raw);
    println!(
        "  with the subscriber at INFO: ratio {:.2}, {:.3} of the typed side without it",
        logging / raw,
        logging / typed
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    // The broker as it comes (its default queue capacity and history); the raw channel gets the
    // same capacity as the broker's queue.
    let broker = MemoryBroker::new();
    let capacity = broker.limits().queue_capacity;
    let bus = Bus::new(broker).with_source("bench");
    println!(
        "in-process bus, {} events per round, median of {ROUNDS} rounds, one thread, \
         queue capacity {capacity}, tracing's static max level {}",
        events(),
        tracing::level_filters::STATIC_MAX_LEVEL
    );
    compare(
        &runtime,
        &bus,
        capacity,
        "events.order.created.v1 (two lines)",
        &order(),
    );
    compare(
        &runtime,
        &bus,
        capacity,
        "flat event of six scalar fields",
        &flat(),
    );
}
