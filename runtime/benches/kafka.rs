//! Kafka: typed publish -> handler through the Kafka adapter, against raw rdkafka in the same run
//! with the same payload, key and CloudEvents headers, the same producer settings (`acks=all`,
//! idempotent, `linger.ms=1`, every publish awaiting its delivery report, 16 in flight) and the
//! same consumer settings (a new consumer group, one record handled at a time, offsets of handled
//! records committed every 100 ms).
//!
//! Needs a Kafka-protocol server (`tests/kafka/tansu.sh start` serves one on 127.0.0.1:9092;
//! `TIDINGS_KAFKA_BROKERS` names another), then
//! `cargo bench -p tidings --features kafka --bench kafka` prints events/s for both and
//! `ratio 0.NN`.

mod common;

use common::median;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message as _;
use tidings::broker::kafka::rdkafka::ClientConfig;
use tidings::broker::kafka::rdkafka::admin::{
    AdminClient, AdminOptions, NewTopic, TopicReplication,
};
use tidings::broker::kafka::rdkafka::client::DefaultClientContext;
use tidings::broker::kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use tidings::broker::kafka::rdkafka::message::{Header, Headers, Message as _, OwnedHeaders};
use tidings::broker::kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use tidings::broker::kafka::{KafkaBroker, KafkaConfig};
use tidings::{Bus, Event, HandlerError, Protobuf, Received};
use tokio::sync::Notify;

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
    const TOPIC: &'static str = "bench.kafka.order_created.v1";
    const SCHEMA: &'static str = "events.order.v1.Created";
    const DATA_SCHEMA: &'static str = "proto:events.order.v1.Created";
    type Codec = Protobuf;
    fn key(&self) -> Option<String> {
        Some(self.customer_id.clone())
    }
}

fn sample(n: u64) -> OrderCreated {
    OrderCreated {
        order_id: format!("ord-{n:012}"),
        customer_id: format!("cus-{}", n % 64),
        amount_cents: 129_900,
        currency: "EUR".into(),
        items: 3,
        note: "leave at the door".into(),
    }
}

const EVENTS: u64 = 2_000;
const IN_FLIGHT: u64 = 16;
const ROUNDS: usize = 5;
const PARTITIONS: i32 = 4;

/// Publishes `EVENTS` events from `IN_FLIGHT` tasks, each awaiting every confirmation.
async fn publish_all<F, Fut>(publish: F)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    common::spread(EVENTS, IN_FLIGHT, publish).await;
}

/// Counts handled events and wakes the round once all arrived.
#[derive(Default)]
struct Tally {
    handled: AtomicU64,
    done: Notify,
}

impl Tally {
    fn one(&self) {
        if self.handled.fetch_add(1, Ordering::Relaxed) + 1 == EVENTS {
            self.done.notify_one();
        }
    }
}

async fn typed(bus: &Bus, round: &str) -> Duration {
    let tally = Arc::new(Tally::default());
    let handler = {
        let tally = tally.clone();
        move |event: Received<OrderCreated>| {
            std::hint::black_box(&*event);
            tally.one();
            std::future::ready(Ok::<(), HandlerError>(()))
        }
    };
    let sub = bus
        .subscribe(handler)
        .group(format!("bench_typed_{round}"))
        .concurrency(1)
        .await;
    let sub = sub.expect("subscribing");
    let start = Instant::now();
    let publisher = bus.clone();
    publish_all(move |n| {
        let bus = publisher.clone();
        async move {
            bus.publish(&sample(n)).await.expect("publishing");
        }
    })
    .await;
    tally.done.notified().await;
    let elapsed = start.elapsed();
    sub.shutdown().await;
    elapsed
}

/// The headers a hand-written CloudEvents producer would send: the same names and sizes as
/// the adapter's, with a fresh id per event.
fn raw_headers() -> OwnedHeaders {
    let id = uuid::Uuid::now_v7().to_string();
    let pairs = [
        ("ce_specversion", "1.0"),
        ("ce_id", id.as_str()),
        ("ce_source", "bench"),
        ("ce_type", OrderCreated::TOPIC),
        ("ce_time", "2026-01-01T00:00:00.000000Z"),
        ("content-type", "application/protobuf"),
        ("ce_dataschema", "proto:events.order.v1.Created"),
    ];
    pairs.iter().fold(
        OwnedHeaders::new_with_capacity(pairs.len()),
        |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        },
    )
}

async fn raw(brokers: &str, admin: &AdminClient<DefaultClientContext>, round: &str) -> Duration {
    let topic = format!("bench.raw{round}.order_created.v1");
    let new = NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(1));
    admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .expect("creating the topic");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .create()
        .expect("a producer");
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bench_raw_{round}"))
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "100")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("a consumer");
    consumer.subscribe(&[&topic]).expect("subscribing");
    let tally = Arc::new(Tally::default());
    let consuming = tokio::spawn({
        let tally = tally.clone();
        async move {
            while tally.handled.load(Ordering::Relaxed) < EVENTS {
                let message = consumer.recv().await.expect("a record");
                let typed = message.headers().is_some_and(|h| {
                    h.iter().any(|h| {
                        h.key == "ce_type" && h.value == Some(OrderCreated::TOPIC.as_bytes())
                    })
                });
                let event =
                    OrderCreated::decode(message.payload().unwrap_or_default()).expect("decoding");
                std::hint::black_box((typed, &event));
                consumer
                    .store_offset_from_message(&message)
                    .expect("storing the offset");
                tally.one();
            }
        }
    });
    let start = Instant::now();
    let producer = Arc::new(producer);
    let topic = Arc::new(topic);
    publish_all(move |n| {
        let (producer, topic) = (producer.clone(), topic.clone());
        async move {
            let event = sample(n);
            let payload = event.encode_to_vec();
            let record = FutureRecord::to(&topic)
                .key(&event.customer_id)
                .payload(&payload)
                .headers(raw_headers());
            producer
                .send(record, Duration::from_secs(10))
                .await
                .expect("publishing");
        }
    })
    .await;
    consuming.await.expect("the consumer");
    start.elapsed()
}

fn per_second(elapsed: Duration) -> f64 {
    EVENTS as f64 / elapsed.as_secs_f64()
}

fn main() {
    let runtime = common::runtime();
    let config = KafkaConfig::from_env().partitions(PARTITIONS as u16);
    let brokers = std::env::var(tidings::broker::kafka::BROKERS_ENV)
        .unwrap_or_else(|_| tidings::broker::kafka::DEFAULT_BROKERS.to_owned());
    let run = tidings::EventId::new().replace('-', "");
    let (mut typed_rates, mut raw_rates) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        let bus = Bus::new(KafkaBroker::connect(config).await.expect("connecting"))
            .with_source("bench")
            .with_publish_timeout(Duration::from_secs(30));
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("an admin client");
        // Creates the typed topic and warms both paths.
        bus.publish(&sample(0)).await.expect("publishing");
        // The side that goes first alternates: the server slows down as its log grows.
        for round in 0..ROUNDS {
            let name = format!("{run}{round}");
            if round % 2 == 0 {
                typed_rates.push(per_second(typed(&bus, &name).await));
                raw_rates.push(per_second(raw(&brokers, &admin, &name).await));
            } else {
                raw_rates.push(per_second(raw(&brokers, &admin, &name).await));
                typed_rates.push(per_second(typed(&bus, &name).await));
            }
            eprintln!(
                "round {round}: typed {:.0} events/s, raw {:.0} events/s",
                typed_rates[round], raw_rates[round]
            );
        }
    });
    let (typed, raw) = (median(typed_rates), median(raw_rates));
    println!(
        "kafka ({brokers}), {EVENTS} events per round, {IN_FLIGHT} publishes in flight, \
         {PARTITIONS} partitions, median of {ROUNDS} rounds"
    );
    println!("typed publish -> handler (KafkaBroker, group): {typed:>9.0} events/s");
    println!("raw rdkafka produce -> consume (group):        {raw:>9.0} events/s");
    println!("ratio {:.2}", typed / raw);
}
