//! The Kafka adapter on a real Kafka-protocol server (`TIDINGS_KAFKA_BROKERS`, or
//! 127.0.0.1:9092; `tests/kafka/tansu.sh start` serves one): the conformance suite, and order per
//! key across the partitions of a topic shared by the members of a group.
//!
//! The restart case needs a server the test may stop: it runs in `kafka_restart.rs`, on a server
//! of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tidings_conformance::BrokerFactory;
use tidings_conformance::probe::run_id;
use tidings_core::{Broker, BrokerError, Event, HandlerError, Protobuf, Received, Topic};
use tidings_kafka::{KafkaBroker, KafkaConfig};
use tokio::sync::mpsc;

/// Connections to the server under test, each with a producer and consumers of its own.
struct Kafka;

fn config() -> KafkaConfig {
    // A short session, so a member that leaves without a word is replaced within the cases'
    // patience.
    KafkaConfig::from_env().session_timeout(Duration::from_secs(6))
}

impl BrokerFactory for Kafka {
    async fn connect(&self) -> Result<Arc<dyn Broker>, BrokerError> {
        Ok(Arc::new(KafkaBroker::connect(config()).await?))
    }

    fn patience(&self) -> Duration {
        // Joining a consumer group takes a rebalance, a few seconds each.
        Duration::from_secs(30)
    }

    async fn publish_foreign(&self, topic: &Topic, payload: Vec<u8>) -> Option<Result<(), String>> {
        use tidings_kafka::rdkafka::ClientConfig;
        use tidings_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
        // A record of the topic with a value and nothing else: no headers, no key.
        let producer: FutureProducer = match ClientConfig::new()
            .set("bootstrap.servers", config().address())
            .create()
        {
            Ok(producer) => producer,
            Err(e) => return Some(Err(e.to_string())),
        };
        let record = FutureRecord::<(), _>::to(topic.as_str()).payload(&payload);
        let sent = producer.send(record, Duration::from_secs(10)).await;
        Some(sent.map(|_| ()).map_err(|(e, _)| e.to_string()))
    }
}

tidings_conformance::conformance_tests!(
    Kafka,
    // Restarting the server runs alone, in kafka_restart.rs.
    not_promised [broker_restart],
    #[ignore = "needs a Kafka-protocol server at TIDINGS_KAFKA_BROKERS (default 127.0.0.1:9092): run with --include-ignored, as the test command does"]
);

/// An event keyed by its `key` field.
#[derive(Clone, PartialEq, prost::Message)]
struct Keyed {
    #[prost(string, tag = "1")]
    run: String,
    #[prost(string, tag = "2")]
    key: String,
    #[prost(uint64, tag = "3")]
    seq: u64,
}

impl Event for Keyed {
    const TOPIC: &'static str = "kafka.keyed.probe.v1";
    const SCHEMA: &'static str = "tidings.kafka.v1.Keyed";
    const DATA_SCHEMA: &'static str = "proto:tidings.kafka.v1.Keyed";
    type Codec = Protobuf;
    fn key(&self) -> Option<String> {
        Some(self.key.clone())
    }
}

/// Three members of a group share a topic of several partitions: each key is handled by one
/// member only, in publish order, and the keys are spread over more than one member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka-protocol server at TIDINGS_KAFKA_BROKERS (default 127.0.0.1:9092): run with --include-ignored, as the test command does"]
async fn order_per_key_across_partitions() {
    const KEYS: usize = 12;
    const EACH: u64 = 25;
    let run = run_id();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut members = Vec::new();
    for member in 0..3usize {
        let bus = tidings_core::Bus::new(
            KafkaBroker::connect(config().partitions(6))
                .await
                .expect("connecting"),
        );
        let (tx, mine) = (tx.clone(), run.clone());
        let handler = move |event: Received<Keyed>| {
            if event.run == mine {
                let _ = tx.send((member, event.key.clone(), event.seq));
            }
            std::future::ready(Ok::<(), HandlerError>(()))
        };
        let subscription = bus.subscribe(handler).group(format!("keys_{run}")).await;
        members.push(subscription.expect("joining the group"));
    }
    let publisher = tidings_core::Bus::new(
        KafkaBroker::connect(config().partitions(6))
            .await
            .expect("connecting"),
    );
    // Published in rounds, so the keys interleave.
    for seq in 0..EACH {
        for k in 0..KEYS {
            let event = Keyed {
                run: run.clone(),
                key: format!("customer-{k}"),
                seq,
            };
            publisher.publish(&event).await.expect("publishing");
        }
    }
    let total = KEYS * EACH as usize;
    let mut got = Vec::with_capacity(total);
    while got.len() < total {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(item)) => got.push(item),
            _ => panic!("received {} of {total}", got.len()),
        }
    }
    let mut by_key: BTreeMap<String, (BTreeSet<usize>, Vec<u64>)> = BTreeMap::new();
    for (member, key, seq) in got {
        let entry = by_key.entry(key).or_default();
        entry.0.insert(member);
        entry.1.push(seq);
    }
    assert_eq!(by_key.len(), KEYS);
    let mut used: BTreeSet<usize> = BTreeSet::new();
    for (key, (handled_by, seqs)) in &by_key {
        assert_eq!(
            handled_by.len(),
            1,
            "key {key} was handled by members {handled_by:?}"
        );
        assert_eq!(
            seqs,
            &(0..EACH).collect::<Vec<_>>(),
            "key {key} out of order"
        );
        used.extend(handled_by);
    }
    assert!(
        used.len() > 1,
        "all keys went to one member: the partitions are not shared"
    );
    for member in members {
        member.shutdown().await;
    }
}
