//! Events from services built on the CloudEvents SDK for Python, which write a `type` of their
//! own naming and usually no `dataschema`: each way the SDK writes an event (binary mode with
//! and without `dataschema`, a structured JSON document, binary JSON) reaches a typed tidings
//! handler over NATS JetStream and Kafka, and one whose `dataschema` names another message is
//! dead-lettered with the reason. The other way round, the SDK's own readers parse what tidings
//! publishes, attributes and data intact.
//!
//! Ignored unless asked for (`--include-ignored`, as the test command passes), against the
//! servers of `TIDINGS_NATS_URL` and `TIDINGS_KAFKA_BROKERS`. The SDK, nats-py and kafka-python
//! are installed from PyPI into the interop venv under `target/` on the first run.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use tidings::broker::{Broker, SubscribeRequest};
use tidings::{Bus, Event, Received, StartFrom, Topic};
use tidings_conformance::probe::run_id;
use tidings_tests::python::{interop_dir, output_of, python};
use tokio::sync::mpsc;

/// An order placed, named the way its producer names its events.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, tidings::Event,
)]
#[event(
    topic = "interop.sdk.placed.v1",
    type = "com.example.shop.order.v1.placed",
    schema = "com.example.shop.v1.OrderPlaced",
    codec = "protobuf+json"
)]
#[serde(rename_all = "camelCase")]
struct OrderPlaced {
    #[prost(string, tag = "1")]
    order_id: String,
}

/// The cases that reach the handler, as `cloudevents_produce.py` names them.
const HANDLED: [&str; 4] = [
    "binary",
    "binary-no-schema",
    "structured-json",
    "binary-json",
];

/// How long an event may take to arrive.
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs a script of `tests/interop` with the venv's python, off the runtime's threads.
async fn script(args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        output_of(
            Command::new(python())
                .current_dir(interop_dir())
                .args(&args),
        )
    })
    .await
    .expect("the script ran")
}

/// Publishes every case from Python over `broker_kind` at `url`; checks that the four readable
/// ones reach the typed handler and that the wrong schema is dead-lettered with its reason.
async fn sdk_events_reach_a_typed_handler(broker: Arc<dyn Broker>, kind: &str, url: &str) {
    let run = run_id();
    let topic = Topic::of::<OrderPlaced>().expect("the topic");
    let dead = topic.dead_letter().expect("a dead-letter topic");
    let bus = Bus::from_arc(broker.clone());
    let (seen, mut handled) = mpsc::unbounded_channel();
    let subscription = {
        let mine = run.clone();
        bus.subscribe(move |event: Received<OrderPlaced>| {
            let seen = seen.clone();
            let run = mine.clone();
            async move {
                if event.order_id == run {
                    let case = event.envelope().subject.clone().unwrap_or_default();
                    seen.send(case).expect("the test waits for it");
                }
            }
        })
        .group(format!("sdk_{run}"))
        .start(StartFrom::Oldest)
        .await
        .expect("subscribing")
    };
    let mut dead_letters = broker
        .subscribe(SubscribeRequest {
            topic: dead.clone(),
            group: None,
            start: StartFrom::Oldest,
            prefetch: 16,
        })
        .await
        .expect("subscribing to the dead letters");

    let mut wrong_id = String::new();
    for case in HANDLED.iter().chain(["wrong-schema"].iter()) {
        let id = script(
            [
                "cloudevents_produce.py",
                kind,
                url,
                topic.as_str(),
                OrderPlaced::TYPE,
                OrderPlaced::SCHEMA,
                case,
                &run,
            ]
            .map(str::to_owned)
            .to_vec(),
        )
        .await;
        if *case == "wrong-schema" {
            wrong_id = id.trim().to_owned();
        }
    }

    let mut cases = Vec::new();
    while cases.len() < HANDLED.len() {
        match tokio::time::timeout(PATIENCE, handled.recv()).await {
            Ok(Some(case)) => cases.push(case),
            _ => panic!("handled only {cases:?} within {PATIENCE:?}"),
        }
    }
    cases.sort();
    let mut expected = HANDLED.map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(cases, expected, "each readable case handled once");

    let started = Instant::now();
    let mut others = Vec::new();
    let reason = loop {
        let left = PATIENCE.saturating_sub(started.elapsed());
        let delivery = tokio::time::timeout(left, dead_letters.next())
            .await
            .unwrap_or_else(|_| {
                panic!("no dead letter {wrong_id} within {PATIENCE:?}, only {others:?}")
            })
            .expect("the dead-letter stream is open")
            .expect("a dead letter");
        let letter = delivery.message.as_ref().ok().cloned();
        delivery.acker.ack().await.expect("acking a dead letter");
        match letter {
            Some(letter) if letter.envelope.id == wrong_id.as_str() => {
                break letter
                    .envelope
                    .extension("deadletterreason")
                    .expect("a reason")
                    .to_owned();
            }
            other => others.push(other.map(|l| l.envelope.id.to_string())),
        }
    };
    assert!(reason.contains("wrong schema"), "{reason}");
    assert!(
        reason.contains("proto:com.example.billing.v1.Invoice"),
        "{reason}"
    );
    dead_letters.close().await;
    subscription.shutdown().await;
}

/// Publishes an event with tidings and reads it back with the SDK's reader for `kind`.
async fn the_sdk_reads_what_tidings_publishes(broker: Arc<dyn Broker>, kind: &str, url: &str) {
    let run = run_id();
    #[derive(Clone, PartialEq, prost::Message, tidings::Event)]
    #[event(topic = "interop.sdk.read.v1", type = "com.example.shop.order.v1.read")]
    struct Read {
        #[prost(string, tag = "1")]
        order_id: String,
    }
    let topic = Topic::of::<Read>().expect("the topic");
    let bus = Bus::from_arc(broker).with_source("urn:tidings:shop");
    let event = Read {
        order_id: run.clone(),
    };
    let receipt = bus
        .publish_with(&event)
        .correlation_id(&run)
        .await
        .expect("publishing");
    let output = script(
        ["cloudevents_consume.py", kind, url, topic.as_str(), &run]
            .map(str::to_owned)
            .to_vec(),
    )
    .await;
    let seen: serde_json::Value = serde_json::from_str(output.trim()).expect("one JSON object");
    let attributes = &seen["attributes"];
    assert_eq!(attributes["specversion"], "1.0");
    assert_eq!(attributes["id"], receipt.id().as_str());
    assert_eq!(attributes["type"], "com.example.shop.order.v1.read");
    assert_eq!(attributes["source"], "urn:tidings:shop");
    assert_eq!(attributes["correlationid"], run.as_str());
    assert_eq!(attributes["dataschema"], "proto:interop.sdk.v1.Read");
    assert_eq!(attributes["datacontenttype"], "application/protobuf");
    assert_eq!(seen["data"], hex(&event.encode_to_vec()));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

mod nats {
    use super::*;
    use tidings::broker::nats::{NatsBroker, NatsConfig};

    async fn connect() -> (Arc<dyn Broker>, String) {
        let config = NatsConfig::from_env().max_age(Duration::from_secs(3600));
        let url = config.url().to_owned();
        (
            Arc::new(NatsBroker::connect(config).await.expect("connecting")),
            url,
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
    async fn sdk_events_reach_a_typed_handler() {
        let (broker, url) = connect().await;
        super::sdk_events_reach_a_typed_handler(broker, "nats", &url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
    async fn the_sdk_reads_what_tidings_publishes() {
        let (broker, url) = connect().await;
        super::the_sdk_reads_what_tidings_publishes(broker, "nats", &url).await;
    }
}

mod kafka {
    use super::*;
    use tidings::broker::kafka::{KafkaBroker, KafkaConfig};

    async fn connect() -> (Arc<dyn Broker>, String) {
        use tidings::broker::kafka::{BROKERS_ENV, DEFAULT_BROKERS};
        let brokers = std::env::var(BROKERS_ENV).unwrap_or_else(|_| DEFAULT_BROKERS.to_owned());
        let broker = KafkaBroker::connect(KafkaConfig::new(&brokers))
            .await
            .expect("connecting");
        (Arc::new(broker), brokers)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs Kafka at TIDINGS_KAFKA_BROKERS (default 127.0.0.1:9092; tests/run.sh starts tansu): run with --include-ignored, as the test command does"]
    async fn sdk_events_reach_a_typed_handler() {
        let (broker, brokers) = connect().await;
        super::sdk_events_reach_a_typed_handler(broker, "kafka", &brokers).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs Kafka at TIDINGS_KAFKA_BROKERS (default 127.0.0.1:9092; tests/run.sh starts tansu): run with --include-ignored, as the test command does"]
    async fn the_sdk_reads_what_tidings_publishes() {
        let (broker, brokers) = connect().await;
        super::the_sdk_reads_what_tidings_publishes(broker, "kafka", &brokers).await;
    }
}
