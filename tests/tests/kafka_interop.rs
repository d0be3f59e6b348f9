//! Events published by tidings read by a consumer written elsewhere: Python's kafka-python
//! (`tests/kafka/read.py`), which must find the CloudEvents Kafka binding intact: `ce_`
//! headers, `content-type`, the partition key as the record key, the event as the value.
//!
//! Ignored unless asked for (`--include-ignored`, as the test command passes), against `TIDINGS_KAFKA_BROKERS` (or
//! 127.0.0.1:9092). kafka-python is installed from PyPI into the interop tests' virtual
//! environment under the target folder the first time (`tests/interop/requirements.txt`).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use prost::Message as _;
use tidings::broker::kafka::{KafkaBroker, KafkaConfig};
use tidings::envelope::parse_time;
use tidings::{Bus, Event, Protobuf};
use tidings_conformance::probe::run_id;
use tidings_tests::python::{output_of, python};

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const SOURCE: &str = "tidings-interop";

#[derive(Clone, PartialEq, prost::Message)]
struct PaymentCaptured {
    #[prost(string, tag = "1")]
    payment_id: String,
    #[prost(int64, tag = "2")]
    amount_cents: i64,
}

impl Event for PaymentCaptured {
    const TOPIC: &'static str = "kafka.interop.payment_captured.v1";
    const SCHEMA: &'static str = "shop.payments.v1.PaymentCaptured";
    const DATA_SCHEMA: &'static str = "proto:shop.payments.v1.PaymentCaptured";
    type Codec = Protobuf;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka-protocol server at TIDINGS_KAFKA_BROKERS (default 127.0.0.1:9092): run with --include-ignored, as the test command does"]
async fn kafka_python_reads_what_tidings_publishes() {
    let python = tokio::task::spawn_blocking(python)
        .await
        .expect("setting up kafka-python");
    let config = KafkaConfig::from_env();
    let bootstrap = std::env::var(tidings::broker::kafka::BROKERS_ENV)
        .unwrap_or_else(|_| tidings::broker::kafka::DEFAULT_BROKERS.to_owned());
    let bus = Bus::new(KafkaBroker::connect(config).await.expect("connecting")).with_source(SOURCE);
    let run = run_id();
    let events: Vec<PaymentCaptured> = (0..3)
        .map(|i| PaymentCaptured {
            payment_id: format!("pay-{i}"),
            amount_cents: 1000 + i,
        })
        .collect();
    for event in &events {
        let publish = bus
            .publish_with(event)
            .key(&event.payment_id)
            .subject(format!("payments/{}", event.payment_id))
            .correlation_id(&run)
            .traceparent(TRACEPARENT);
        publish.await.expect("publishing");
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("kafka/read.py");
    let group = format!("python_{run}");
    let output = tokio::task::spawn_blocking(move || {
        output_of(Command::new(python).arg("-I").arg(script).args([
            &bootstrap,
            PaymentCaptured::TOPIC,
            &group,
            &run,
            "3",
        ]))
    });
    let output = output.await.expect("running the Python consumer");
    let records: Vec<serde_json::Value> = output
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(records.len(), 3, "{output}");

    let mut ids = BTreeSet::new();
    for record in &records {
        let headers = &record["headers"];
        let header = |name: &str| {
            headers[name]
                .as_str()
                .unwrap_or_else(|| panic!("no header {name}: {record}"))
        };
        let key = record["key"].as_str().expect("a record key");
        let event = events
            .iter()
            .find(|e| e.payment_id == key)
            .expect("the key is the partition key");
        assert_eq!(
            record["value"].as_str(),
            Some(hex(&event.encode_to_vec()).as_str()),
            "the value is the event"
        );
        assert_eq!(header("ce_specversion"), "1.0");
        assert_eq!(header("ce_type"), PaymentCaptured::TOPIC);
        assert_eq!(header("ce_source"), SOURCE);
        assert_eq!(header("content-type"), "application/protobuf");
        assert_eq!(
            header("ce_dataschema"),
            "proto:shop.payments.v1.PaymentCaptured"
        );
        assert_eq!(header("ce_subject"), format!("payments/{key}"));
        assert_eq!(header("ce_traceparent"), TRACEPARENT);
        assert!(
            parse_time(header("ce_time")).is_ok(),
            "ce_time is RFC 3339: {}",
            header("ce_time")
        );
        let id = header("ce_id");
        assert!(
            id.len() == 36 && id.as_bytes()[14] == b'7',
            "ce_id is a UUID v7: {id}"
        );
        ids.insert(id.to_owned());
        assert!(
            headers.get("ce_datacontenttype").is_none(),
            "datacontenttype goes in content-type"
        );
        assert!(
            headers.get("ce_partitionkey").is_none(),
            "the partition key goes in the record key"
        );
    }
    assert_eq!(ids.len(), 3, "each event has its own id");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
