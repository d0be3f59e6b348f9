//! Interop with a stack not written here: a Python service using nats-py and the protobuf
//! package reads an event tidings published on NATS JetStream, and publishes one, in CloudEvents
//! binary mode, that reaches a typed tidings handler.
//!
//! Ignored unless asked for (`--include-ignored`, as the test command passes). The Python packages
//! (`tests/interop/requirements.txt`) are installed from PyPI into a venv under `target/` on the
//! first run. The
//! Python side builds its message class from a FileDescriptorSet this test writes, so it needs
//! no protoc.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet};
use tidings::broker::nats::{NatsBroker, NatsConfig};
use tidings::{Bus, Event, HandlerError, Received};
use tidings_conformance::probe::run_id;
use tidings_tests::python::{interop_dir, output_of, python};

/// An order placed, as both sides know it.
#[derive(Clone, PartialEq, prost::Message)]
struct Placed {
    #[prost(string, tag = "1")]
    order_id: String,
    #[prost(int64, tag = "2")]
    amount_cents: i64,
    #[prost(string, tag = "3")]
    customer: String,
}

impl Event for Placed {
    const TOPIC: &'static str = "interop.order.placed.v1";
    const SCHEMA: &'static str = "interop.order.v1.Placed";
    const DATA_SCHEMA: &'static str = "proto:interop.order.v1.Placed";
    type Codec = tidings::Protobuf;
}

/// The schema of [`Placed`] as a serialized FileDescriptorSet.
fn descriptor_set() -> Vec<u8> {
    let field = |name: &str, number: i32, kind: Type| FieldDescriptorProto {
        name: Some(name.to_owned()),
        number: Some(number),
        label: Some(Label::Optional as i32),
        r#type: Some(kind as i32),
        json_name: None,
        ..Default::default()
    };
    let file = FileDescriptorProto {
        name: Some("interop/order/v1/placed.proto".to_owned()),
        package: Some("interop.order.v1".to_owned()),
        syntax: Some("proto3".to_owned()),
        message_type: vec![DescriptorProto {
            name: Some("Placed".to_owned()),
            field: vec![
                field("order_id", 1, Type::String),
                field("amount_cents", 2, Type::Int64),
                field("customer", 3, Type::String),
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    FileDescriptorSet { file: vec![file] }.encode_to_vec()
}

/// Writes the descriptor set where the Python side reads it.
fn descriptor_file(run: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/interop");
    std::fs::create_dir_all(&dir).expect("creating target/interop");
    let path = dir.join(format!("placed-{run}.binpb"));
    std::fs::write(&path, descriptor_set()).expect("writing the descriptor set");
    path
}

fn config() -> NatsConfig {
    NatsConfig::from_env().max_age(Duration::from_secs(3600))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
async fn python_reads_what_tidings_publishes() {
    let python = python();
    let run = run_id();
    let descriptors = descriptor_file(&run);
    let bus =
        Bus::new(NatsBroker::connect(config()).await.expect("connecting")).with_source("shop");
    let order = Placed {
        order_id: run.clone(),
        amount_cents: 4200,
        customer: "ada".to_owned(),
    };
    bus.publish_with(&order)
        .correlation_id(&run)
        .await
        .expect("publishing");

    let url = config().url().to_owned();
    let correlation = run.clone();
    let output = tokio::task::spawn_blocking(move || {
        output_of(
            Command::new(python)
                .current_dir(interop_dir())
                .arg("nats_consume.py")
                .args([url.as_str(), Placed::TOPIC])
                .arg(&descriptors)
                .args([Placed::SCHEMA, correlation.as_str()]),
        )
    })
    .await
    .expect("the consumer ran");
    let seen: serde_json::Value = serde_json::from_str(output.trim()).expect("one JSON object");
    let attributes = &seen["attributes"];
    assert_eq!(attributes["specversion"], "1.0");
    assert_eq!(attributes["type"], Placed::TOPIC);
    assert_eq!(attributes["source"], "shop");
    assert_eq!(attributes["correlationid"], run.as_str());
    assert_eq!(attributes["dataschema"], "proto:interop.order.v1.Placed");
    assert_eq!(seen["content_type"], "application/protobuf");
    // protobuf's JSON mapping: camelCase names, int64 as a string.
    assert_eq!(seen["data"]["orderId"], run.as_str());
    assert_eq!(seen["data"]["amountCents"], "4200");
    assert_eq!(seen["data"]["customer"], "ada");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
async fn a_typed_handler_reads_what_python_publishes() {
    let python = python();
    let run = run_id();
    let descriptors = descriptor_file(&run);
    let bus = Bus::new(NatsBroker::connect(config()).await.expect("connecting"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let subscription = {
        let run = run.clone();
        bus.subscribe(move |event: Received<Placed>| {
            if event.envelope().correlation_id.as_deref() == Some(run.as_str()) {
                let _ = tx.send(event);
            }
            std::future::ready(Ok::<(), HandlerError>(()))
        })
        .await
        .expect("subscribing")
    };

    let url = config().url().to_owned();
    let fields = format!(r#"{{"orderId": "{run}", "amountCents": "1999", "customer": "grace"}}"#);
    let correlation = run.clone();
    tokio::task::spawn_blocking(move || {
        output_of(
            Command::new(python)
                .current_dir(interop_dir())
                .arg("nats_produce.py")
                .args([url.as_str(), Placed::TOPIC])
                .arg(&descriptors)
                .args([Placed::SCHEMA, fields.as_str(), correlation.as_str()]),
        )
    })
    .await
    .expect("the producer ran");

    let received = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the event reached the handler within 10 s")
        .expect("the handler is running");
    assert_eq!(received.order_id, run);
    assert_eq!(received.amount_cents, 1999);
    assert_eq!(received.customer, "grace");
    assert_eq!(received.envelope().source.as_ref(), "python-producer");
    assert_eq!(received.attempt(), 1);
    subscription.shutdown().await;
}
