//! In-process bus: typed publish -> handler on the `MemoryBroker`, against its floor, raw prost
//! encode -> tokio mpsc -> decode of the same message, in the same run, on one thread.
//!
//! `cargo bench -p tidings --bench inproc` prints events/s for both and `ratio 0.NN`.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message as _;
use tidings::{Bus, Event, HandlerError, MemoryBroker, Protobuf, Received};
use tokio::sync::{Notify, mpsc};

/// A typical event: ids, an amount, a currency, a short note.
#[derive(Clone, PartialEq, prost::Message)]
struct OrderCreated {
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

impl Event for OrderCreated {
    const TOPIC: &'static str = "events.order.created.v1";
    const VERSION: u32 = 1;
    const SCHEMA: &'static str = "events.order.v1.Created";
    type Codec = Protobuf;
}

fn sample() -> OrderCreated {
    OrderCreated {
        order_id: "ord-000123456789".into(),
        customer_id: "cus-42".into(),
        amount_cents: 129_900,
        currency: "EUR".into(),
        items: 3,
        note: "leave at the door".into(),
    }
}

/// Events per round, and rounds per side.
const EVENTS: u64 = 200_000;
const ROUNDS: usize = 7;

async fn typed(bus: &Bus, event: &OrderCreated) -> Duration {
    let handled = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let handler = {
        let (handled, done) = (handled.clone(), done.clone());
        move |event: Received<OrderCreated>| {
            std::hint::black_box(&*event);
            if handled.fetch_add(1, Ordering::Relaxed) + 1 == EVENTS {
                done.notify_one();
            }
            std::future::ready(Ok::<(), HandlerError>(()))
        }
    };
    let sub = bus.subscribe(handler).await.expect("subscribing");
    let start = Instant::now();
    for _ in 0..EVENTS {
        bus.publish(event).await.expect("publishing");
    }
    done.notified().await;
    let elapsed = start.elapsed();
    sub.shutdown().await;
    elapsed
}

async fn raw(event: &OrderCreated, capacity: usize) -> Duration {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(capacity);
    let handled = Rc::new(Cell::new(0u64));
    let consumer = tokio::task::spawn_local({
        let handled = handled.clone();
        async move {
            while let Some(bytes) = rx.recv().await {
                let decoded = OrderCreated::decode(&bytes[..]).expect("decoding");
                std::hint::black_box(&decoded);
                handled.set(handled.get() + 1);
            }
        }
    });
    let start = Instant::now();
    for _ in 0..EVENTS {
        let bytes = event.encode_to_vec();
        tx.send(bytes).await.expect("sending");
    }
    drop(tx);
    consumer.await.expect("the consumer");
    let elapsed = start.elapsed();
    assert_eq!(handled.get(), EVENTS);
    elapsed
}

fn per_second(elapsed: Duration) -> f64 {
    EVENTS as f64 / elapsed.as_secs_f64()
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let local = tokio::task::LocalSet::new();
    // The broker as it comes (its default queue capacity and history); the raw channel gets the
    // same capacity as the broker's queue.
    let broker = MemoryBroker::new();
    let capacity = broker.limits().queue_capacity;
    let bus = Bus::new(broker).with_source("bench");
    let event = sample();
    let (mut typed_rates, mut raw_rates) = (Vec::new(), Vec::new());
    local.block_on(&runtime, async {
        // One round each to warm caches and the allocator, then rounds interleaved.
        typed(&bus, &event).await;
        raw(&event, capacity).await;
        for _ in 0..ROUNDS {
            typed_rates.push(per_second(typed(&bus, &event).await));
            raw_rates.push(per_second(raw(&event, capacity).await));
        }
    });
    let (typed, raw) = (median(typed_rates), median(raw_rates));
    println!(
        "in-process bus, {EVENTS} events per round, median of {ROUNDS} rounds, one thread, \
         queue capacity {capacity}"
    );
    println!("typed publish -> handler (MemoryBroker): {typed:>12.0} events/s");
    println!("raw prost encode -> tokio mpsc -> decode: {raw:>12.0} events/s");
    println!("ratio {:.2}", typed / raw);
}
