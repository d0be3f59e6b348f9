//! Per broker: typed publish and consume through tidings against the broker's raw Rust client,
//! same payload, same acknowledgement settings, in the same run.
//!
//! Every side publishes from 4 tasks, each publish awaiting the broker's confirmation
//! (JetStream publish ack with a message id; RabbitMQ publisher confirm, persistent message),
//! and consumes from one durable consumer (JetStream pull consumer; RabbitMQ quorum queue) with
//! a prefetch of 64, acking each message after decoding it. A round ends when every event was
//! handled. Every round runs every side, the one that goes first alternating; the ratio is the
//! median of the rounds' own ratios.
//!
//! The raw client runs twice: with the bare payload, and with the same CloudEvents attributes
//! tidings puts on the wire (binary mode headers: id, source, type, time, schema, content
//! type). The ratio against the second is tidings' own cost; the gap between the two raw
//! figures is the cost of the wire format.
//!
//! `cargo bench -p tidings --features nats,rabbitmq --bench brokers` against the servers of
//! `TIDINGS_NATS_URL` and `TIDINGS_RABBITMQ_URL` (loopback defaults) prints events/s for each
//! side and the ratios per broker.

mod common;

use common::median;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use prost::Message as _;
use std::borrow::Cow;
use tidings::broker::nats::async_nats;
use tidings::broker::nats::async_nats::jetstream::{self, consumer, stream};
use tidings::broker::nats::{NatsBroker, NatsConfig};
use tidings::broker::rabbitmq::lapin;
use tidings::broker::rabbitmq::lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use tidings::broker::rabbitmq::lapin::types::{AMQPValue, FieldTable};
use tidings::broker::rabbitmq::{RabbitBroker, RabbitConfig};

use tidings::broker::{Message as BrokerMessage, SubscribeRequest};
use tidings::{
    Broker, Bus, ContentType, Envelope, Event, HandlerError, Protobuf, Received, StartFrom, Topic,
};
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
    const TOPIC: &'static str = "bench.order.created.v1";
    const SCHEMA: &'static str = "bench.order.v1.Created";
    const DATA_SCHEMA: &'static str = "proto:bench.order.v1.Created";
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

/// Events per round: RabbitMQ's quorum queues sync to disk and go slower than JetStream.
const NATS_EVENTS: u64 = 10_000;
const RABBITMQ_EVENTS: u64 = 4_000;
const PUBLISHERS: u64 = 4;
const PREFETCH: usize = 64;
const ROUNDS: usize = 9;
/// Where the raw side publishes, beside the typed side's topic.
const RAW_SUBJECT: &str = "bench.raw.created.v1";
const RAW_EXCHANGE: &str = "tidings-bench-raw";

/// Counts handled events and wakes the round when all are in.
struct Tally {
    events: u64,
    handled: AtomicU64,
    done: Notify,
}

impl Tally {
    fn new(events: u64) -> Arc<Tally> {
        Arc::new(Tally {
            events,
            handled: AtomicU64::new(0),
            done: Notify::new(),
        })
    }

    fn one(&self) {
        if self.handled.fetch_add(1, Ordering::Relaxed) + 1 == self.events {
            self.done.notify_one();
        }
    }
}

/// How the raw client labels its messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Attributes {
    /// The payload alone.
    Bare,
    /// The CloudEvents attributes tidings sends, built per message.
    CloudEvents,
}

/// The CloudEvents attributes of one message, as a raw client would write them.
fn cloud_event_attributes() -> [(&'static str, String); 6] {
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a time");
    [
        ("specversion", "1.0".to_owned()),
        ("id", uuid::Uuid::now_v7().to_string()),
        ("source", "bench".to_owned()),
        ("type", RAW_SUBJECT.to_owned()),
        ("time", time),
        ("dataschema", "proto:bench.order.v1.Created".to_owned()),
    ]
}

/// Runs `publish(i)` for `events` events from [`PUBLISHERS`] tasks.
async fn publish_all<F, Fut>(events: u64, publish: F)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    common::spread(events, PUBLISHERS, publish).await;
}

/// Typed publish and group subscription over a broker; the time until all events were handled.
async fn typed(broker: Arc<dyn Broker>, group: &str, events: u64) -> Duration {
    let bus = Bus::from_arc(broker).with_source("bench");
    let tally = Tally::new(events);
    let handler = {
        let tally = tally.clone();
        move |event: Received<OrderCreated>| {
            std::hint::black_box(&*event);
            tally.one();
            std::future::ready(Ok::<(), HandlerError>(()))
        }
    };
    let subscription = bus
        .subscribe(handler)
        .group(group)
        .concurrency(PREFETCH)
        .await
        .expect("subscribing");
    let event = Arc::new(sample());
    let start = Instant::now();
    publish_all(events, move |_| {
        let (bus, event) = (bus.clone(), event.clone());
        async move {
            bus.publish(&*event).await.expect("publishing");
        }
    })
    .await;
    tally.done.notified().await;
    let elapsed = start.elapsed();
    subscription.shutdown().await;
    elapsed
}

/// The same through the broker seam alone, without the typed layer: a CloudEvents message built
/// per event, published and received through the adapter, decoded and acked in one loop.
async fn seam(broker: Arc<dyn Broker>, group: &str, events: u64) -> Duration {
    let topic = Topic::new(OrderCreated::TOPIC).expect("a valid topic");
    let request = SubscribeRequest {
        topic: topic.clone(),
        group: Some(group.to_owned()),
        start: StartFrom::New,
        prefetch: PREFETCH,
    };
    let mut deliveries = broker.subscribe(request).await.expect("subscribing");
    let tally = Tally::new(events);
    let reader = tokio::spawn({
        let tally = tally.clone();
        async move {
            while let Some(Ok(delivery)) = deliveries.next().await {
                let message = delivery.message.as_ref().expect("a CloudEvent");
                let decoded = OrderCreated::decode(&message.data[..]).expect("decoding");
                std::hint::black_box((&decoded, &message.envelope));
                delivery.acker.ack().await.expect("acking");
                tally.one();
            }
        }
    });
    let start = Instant::now();
    publish_all(events, move |_| {
        let (broker, topic) = (broker.clone(), topic.clone());
        async move {
            let envelope = Envelope::new(
                Arc::from("bench"),
                Cow::Borrowed(OrderCreated::TOPIC),
                ContentType::Protobuf,
                Some(Cow::Borrowed("proto:bench.order.v1.Created")),
            );
            let data = Bytes::from(sample().encode_to_vec());
            broker
                .publish(&topic, BrokerMessage::new(envelope, data))
                .await
                .expect("publishing");
        }
    })
    .await;
    tally.done.notified().await;
    let elapsed = start.elapsed();
    reader.abort();
    elapsed
}

async fn raw_nats(
    js: &jetstream::Context,
    consumer_name: &str,
    events: u64,
    attributes: Attributes,
) -> Duration {
    let stream = js
        .create_or_update_stream(stream::Config {
            name: RAW_SUBJECT.replace('.', "-"),
            subjects: vec![RAW_SUBJECT.to_owned()],
            max_age: Duration::from_secs(3600),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .expect("the raw stream");
    let consumer: consumer::PullConsumer = js
        .create_consumer_on_stream(
            consumer::pull::Config {
                durable_name: Some(consumer_name.to_owned()),
                deliver_policy: consumer::DeliverPolicy::New,
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            },
            stream.config.name.as_str(),
        )
        .await
        .expect("the raw consumer");
    let tally = Tally::new(events);
    let reader = tokio::spawn({
        let tally = tally.clone();
        async move {
            let mut messages = consumer
                .stream()
                .max_messages_per_batch(PREFETCH)
                .messages()
                .await
                .expect("pulling");
            while let Some(Ok(message)) = messages.next().await {
                let decoded = OrderCreated::decode(&message.payload[..]).expect("decoding");
                std::hint::black_box((
                    &decoded,
                    message.headers.as_ref().map(|h| h.get("ce-type")),
                ));
                message.ack().await.expect("acking");
                tally.one();
            }
        }
    });
    let js = js.clone();
    let prefix: Arc<str> = Arc::from(consumer_name);
    let start = Instant::now();
    publish_all(events, move |i| {
        let (js, prefix) = (js.clone(), prefix.clone());
        async move {
            let mut publish = jetstream::message::PublishMessage::build()
                .payload(Bytes::from(sample().encode_to_vec()))
                .message_id(format!("{prefix}-{i}"));
            if attributes == Attributes::CloudEvents {
                let mut headers = async_nats::HeaderMap::new();
                for (name, value) in cloud_event_attributes() {
                    headers.insert(format!("ce-{name}"), value);
                }
                headers.insert("content-type", "application/protobuf");
                publish = publish.headers(headers);
            }
            let ack = js
                .send_publish(RAW_SUBJECT, publish)
                .await
                .expect("publishing");
            ack.await.expect("the publish ack");
        }
    })
    .await;
    tally.done.notified().await;
    let elapsed = start.elapsed();
    reader.abort();
    elapsed
}

async fn raw_rabbit(
    connection: &lapin::Connection,
    queue: &str,
    events: u64,
    attributes: Attributes,
) -> Duration {
    let publisher = connection.create_channel().await.expect("a channel");
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    publisher
        .exchange_declare(
            RAW_EXCHANGE.into(),
            lapin::ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .expect("the raw exchange");
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    publisher
        .queue_declare(queue.into(), durable, arguments)
        .await
        .expect("the raw queue");
    publisher
        .queue_bind(
            queue.into(),
            RAW_EXCHANGE.into(),
            RAW_SUBJECT.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("binding");

    let consumer_channel = connection.create_channel().await.expect("a channel");
    consumer_channel
        .basic_qos(PREFETCH as u16, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = consumer_channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consuming");
    let tally = Tally::new(events);
    let reader = tokio::spawn({
        let tally = tally.clone();
        async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let decoded = OrderCreated::decode(&delivery.data[..]).expect("decoding");
                std::hint::black_box((&decoded, delivery.properties.headers()));
                delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await
                    .expect("acking");
                tally.one();
            }
        }
    });
    let start = Instant::now();
    publish_all(events, move |_| {
        let publisher = publisher.clone();
        async move {
            let mut properties = lapin::BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/protobuf".into());
            if attributes == Attributes::CloudEvents {
                let mut headers = FieldTable::default();
                for (name, value) in cloud_event_attributes() {
                    let value = AMQPValue::LongString(value.as_bytes().into());
                    headers.insert(format!("cloudEvents_{name}").into(), value);
                }
                properties = properties.with_headers(headers);
            }
            let confirm = publisher
                .basic_publish(
                    RAW_EXCHANGE.into(),
                    RAW_SUBJECT.into(),
                    BasicPublishOptions::default(),
                    &sample().encode_to_vec(),
                    properties,
                )
                .await
                .expect("publishing");
            assert!(
                confirm.await.expect("the confirm").is_ack(),
                "the broker refused a message"
            );
        }
    })
    .await;
    tally.done.notified().await;
    let elapsed = start.elapsed();
    reader.abort();
    elapsed
}

/// The CPU time this process used so far, user and system, from `/proc/self/stat` (in clock
/// ticks of 10 ms; a round lasts long enough for that to be fine).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("reading /proc/self/stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a stat line") + 2..]
        .split(' ')
        .collect();
    let ticks = |i: usize| fields[i].parse::<u64>().expect("a tick count");
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// One side's round: wall time and this process's CPU time.
#[derive(Clone, Copy)]
struct Sample {
    elapsed: Duration,
    cpu: Duration,
}

async fn measured(side: impl Future<Output = Duration>) -> Sample {
    let cpu = cpu_time();
    let elapsed = side.await;
    Sample {
        elapsed,
        cpu: cpu_time().saturating_sub(cpu),
    }
}

/// Median events per second, and median client CPU microseconds per event, over the rounds.
fn summary(events: u64, samples: &[Sample]) -> (f64, f64) {
    let rate = median(
        samples
            .iter()
            .map(|s| events as f64 / s.elapsed.as_secs_f64())
            .collect(),
    );
    let cpu = median(
        samples
            .iter()
            .map(|s| s.cpu.as_secs_f64() * 1e6 / events as f64)
            .collect(),
    );
    (rate, cpu)
}

/// The rounds of each side.
#[derive(Default)]
struct Rates {
    typed: Vec<Sample>,
    seam: Vec<Sample>,
    bare: Vec<Sample>,
    cloud_events: Vec<Sample>,
}

fn report(broker: &str, raw: &str, events: u64, rates: Rates) {
    let (typed, typed_cpu) = summary(events, &rates.typed);
    let (seam, seam_cpu) = summary(events, &rates.seam);
    let (bare, bare_cpu) = summary(events, &rates.bare);
    let (cloud_events, cloud_events_cpu) = summary(events, &rates.cloud_events);
    println!(
        "{broker}: {events} events per round, median of {ROUNDS} rounds (events/s; this \
         process's CPU per event, the server's not counted)"
    );
    println!(
        "  tidings typed publish + group consume:      {typed:>9.0} events/s {typed_cpu:>6.1} µs"
    );
    println!(
        "  tidings broker seam alone (no typed layer): {seam:>9.0} events/s {seam_cpu:>6.1} µs"
    );
    println!(
        "  {raw}, same CloudEvents headers: {cloud_events:>9.0} events/s \
         {cloud_events_cpu:>6.1} µs"
    );
    println!("  {raw}, bare payload:             {bare:>9.0} events/s {bare_cpu:>6.1} µs");
    println!(
        "  medians' ratio {:.2} against the same headers, {:.2} against the bare payload",
        typed / cloud_events,
        typed / bare
    );
    // Each round runs every side back to back, so a ratio taken within a round cancels what the
    // machine's load did between rounds; their median is the figure to go by.
    let ratio = |side: &[Sample], floor: &[Sample]| {
        median(
            side.iter()
                .zip(floor)
                .map(|(side, floor)| floor.elapsed.as_secs_f64() / side.elapsed.as_secs_f64())
                .collect(),
        )
    };
    println!(
        "  ratio {:.2} against the same headers, {:.2} against the bare payload (median of the \
         rounds' ratios; target >= 0.90)",
        ratio(&rates.typed, &rates.cloud_events),
        ratio(&rates.typed, &rates.bare)
    );
    println!(
        "  seam alone: ratio {:.2} against the same headers",
        ratio(&rates.seam, &rates.cloud_events)
    );
}

async fn nats(run: &str) {
    let config = NatsConfig::from_env().max_age(Duration::from_secs(3600));
    let client = async_nats::connect(config.url())
        .await
        .expect("connecting to NATS");
    let js = jetstream::new(client);
    let broker: Arc<dyn Broker> = Arc::new(
        NatsBroker::connect(config)
            .await
            .expect("connecting to NATS"),
    );
    let events = NATS_EVENTS;
    let mut rates = Rates::default();
    // The first round warms connections and streams up.
    for round in 0..=ROUNDS {
        let group = format!("bench_{run}_{round}");
        let (bare, headers) = (format!("{group}_bare"), format!("{group}_ce"));
        // Alternate who goes first, so a drift in the machine's load favours neither.
        let typed_first = round % 2 == 0;
        let mut typed_time = None;
        if typed_first {
            typed_time = Some(measured(typed(broker.clone(), &group, events)).await);
        }
        let bare_time = measured(raw_nats(&js, &bare, events, Attributes::Bare)).await;
        let headers_time = measured(raw_nats(&js, &headers, events, Attributes::CloudEvents)).await;
        let seam_group = format!("{group}_seam");
        let seam_time = measured(seam(broker.clone(), &seam_group, events)).await;
        if !typed_first {
            typed_time = Some(measured(typed(broker.clone(), &group, events)).await);
        }
        if round > 0 {
            rates.typed.push(typed_time.expect("the typed side ran"));
            rates.seam.push(seam_time);
            rates.bare.push(bare_time);
            rates.cloud_events.push(headers_time);
        }
        // The consumers of a round go, so that the next round does not find them pending.
        js.delete_consumer_from_stream(&group, "bench-order-created-v1")
            .await
            .expect("deleting the typed side's consumer");
        for consumer in [bare, headers] {
            js.delete_consumer_from_stream(&consumer, RAW_SUBJECT.replace('.', "-"))
                .await
                .expect("deleting a raw side's consumer");
        }
    }
    report("nats jetstream", "raw async-nats", events, rates);
}

async fn rabbitmq(run: &str) {
    let config = RabbitConfig::from_env();
    let connection =
        lapin::Connection::connect(config.url(), lapin::ConnectionProperties::default())
            .await
            .expect("connecting to RabbitMQ");
    let cleanup = connection.create_channel().await.expect("a channel");
    let broker: Arc<dyn Broker> = Arc::new(
        RabbitBroker::connect(config)
            .await
            .expect("connecting to RabbitMQ"),
    );
    let events = RABBITMQ_EVENTS;
    let mut rates = Rates::default();
    for round in 0..=ROUNDS {
        let group = format!("bench_{run}_{round}");
        let (bare, headers) = (format!("{group}_bare"), format!("{group}_ce"));
        let typed_first = round % 2 == 0;
        let mut typed_time = None;
        if typed_first {
            typed_time = Some(measured(typed(broker.clone(), &group, events)).await);
        }
        let bare_time = measured(raw_rabbit(&connection, &bare, events, Attributes::Bare)).await;
        let headers_time = measured(raw_rabbit(
            &connection,
            &headers,
            events,
            Attributes::CloudEvents,
        ))
        .await;
        let seam_group = format!("{group}_seam");
        let seam_time = measured(seam(broker.clone(), &seam_group, events)).await;
        if !typed_first {
            typed_time = Some(measured(typed(broker.clone(), &group, events)).await);
        }
        if round > 0 {
            rates.typed.push(typed_time.expect("the typed side ran"));
            rates.seam.push(seam_time);
            rates.bare.push(bare_time);
            rates.cloud_events.push(headers_time);
        }
        let typed_queues = [&group, &seam_group].map(|g| format!("{}:{g}", OrderCreated::TOPIC));
        for queue in typed_queues.into_iter().chain([bare, headers]) {
            cleanup
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .expect("deleting a round's queue");
        }
    }
    report("rabbitmq", "raw lapin", events, rates);
}

fn main() {
    let runtime = common::runtime();
    let run = tidings::EventId::new().replace('-', "");
    runtime.block_on(async {
        nats(&run).await;
        rabbitmq(&run).await;
    });
}
