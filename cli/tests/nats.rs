//! The broker verbs against NATS JetStream (`TIDINGS_NATS_URL`, by default
//! `nats://127.0.0.1:4222`). Ignored by a plain `cargo test`; with `--include-ignored`, as the
//! test command runs them, a server that cannot be reached fails them.

mod support;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tidings::broker::nats::{DEFAULT_URL, URL_ENV};
use tidings::broker::{DeadLetter, Message};
use tidings::{Broker, Bus, ContentType, Envelope, Event, Topic};

use support::*;

fn url() -> String {
    tidings::adapter::address_from_env(URL_ENV, DEFAULT_URL)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored"]
async fn dead_letters_are_listed_then_replayed_once_each() {
    dead_letters_listed_and_replayed::<NatsDlq>(&url()).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored"]
async fn tail_prints_a_typed_event_as_canonical_json() {
    insta::assert_snapshot!(tail_prints_a_typed_event::<NatsTail>(&url()).await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored"]
async fn published_json_reaches_a_typed_handler_and_a_bad_field_is_named() {
    publish_reaches_a_typed_handler::<NatsPublish>(&url()).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored"]
async fn a_replay_killed_halfway_then_run_again_loses_nothing() {
    replay_killed_halfway_loses_nothing::<NatsKill>(&url()).await;
}

/// JetStream drops a publish whose `Nats-Msg-Id` it saw inside its duplicate window (two
/// minutes by default): republished with its event id as the dedup id, a dead letter is
/// dropped; replayed, it is handled.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored"]
async fn a_replay_inside_the_duplicate_window_is_handled_not_dropped() {
    let url = url();
    let broker: Arc<dyn Broker> = connect(&url).await;
    purge_dead_letters::<NatsWindow>(&broker).await;
    let flaky = Flaky::new();
    let (bus, subscription) = subscribe_flaky::<NatsWindow>(&url, &flaky, 1).await;
    let receipt = bus.publish(&NatsWindow::new("o-window", 1)).await.unwrap();
    eventually("the event dead-lettered", || async {
        dead_letter_count::<NatsWindow>(&broker).await == 1
    })
    .await;
    flaky.fixed.store(true, Ordering::SeqCst);

    // The same message published again as it was: the stream takes it for a duplicate.
    let dlq = Topic::of::<NatsWindow>().unwrap().dead_letter().unwrap();
    let mut letters = broker.browse(&dlq).await.unwrap();
    let mut letter = letters.next().await.unwrap().unwrap().message.unwrap();
    letters.close().await;
    assert_eq!(letter.envelope.id, receipt.id().as_str());
    DeadLetter::strip(letter.envelope_mut());
    let again = broker
        .publish(&Topic::of::<NatsWindow>().unwrap(), letter)
        .await
        .unwrap();
    assert!(again.duplicate, "inside the window, the same id is dropped");

    let out = tidings(
        &url,
        &[
            "dlq",
            "replay",
            NatsWindow::TOPIC,
            "--id",
            receipt.id().as_str(),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    eventually("the replayed event handled", || async {
        flaky.handled().get("o-window") == Some(&1)
    })
    .await;
    assert_eq!(dead_letter_count::<NatsWindow>(&broker).await, 0);
    subscription.shutdown().await;
}

/// A message whose data does not decode by the schema is printed with the reason and its
/// bytes, not dropped, and the tail goes on to the next.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored"]
async fn tail_shows_a_message_that_does_not_decode_with_its_reason() {
    let url = url();
    let broker = connect(&url).await;
    let topic = NatsGarbage::TOPIC;
    let mut tail = command(&[
        "tail",
        topic,
        "--format",
        "json",
        "--count",
        "2",
        "--schemas",
        SCHEMAS,
        "--broker",
        &url,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("tail starts");
    wait_for_line(&mut tail, "tailing").await;
    let envelope = Envelope::new(
        Arc::from("cli-tests"),
        topic.into(),
        ContentType::Protobuf,
        Some(format!("proto:{}", NatsGarbage::SCHEMA).into()),
    );
    // Field 2 (`quantity`, a varint) written as a length-delimited field.
    let garbage = Message::new(envelope, Bytes::from_static(&[0x12, 0x01, 0x00]));
    broker
        .publish(&Topic::of::<NatsGarbage>().unwrap(), garbage)
        .await
        .unwrap();
    Bus::from_arc(broker)
        .publish(&NatsGarbage::new("o-after", 1))
        .await
        .unwrap();
    let out = tail.wait_with_output().await.expect("tail ends");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let error = lines[0]["error"].as_str().expect("a reason");
    assert!(error.starts_with("undecodable protobuf data"), "{error}");
    assert_eq!(lines[0]["data_base64"], "EgEA");
    assert_eq!(lines[1]["data"]["orderId"], "o-after");
}

/// A password, in the URL or in the environment, appears in no output of any verb.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222), RabbitMQ and Redis on their default ports: run with --include-ignored"]
async fn credentials_appear_in_no_output() {
    const SECRET: &str = "s3cr3t-Pa55";
    let topic = NatsPublish::TOPIC;
    let urls = [
        // Nothing listens there.
        format!("nats://tidings:{SECRET}@127.0.0.1:1"),
        // A wrong password.
        format!("amqp://guest:{SECRET}@127.0.0.1:5672/%2f"),
        // Malformed.
        format!("nats://tidings:{SECRET}@127.0.0.1:99999"),
        format!("frob://tidings:{SECRET}@127.0.0.1:1"),
    ];
    let verbs: [&[&str]; 4] = [
        &["publish", topic, "--data", r#"{"orderId": "o"}"#],
        &["dlq", "list", topic],
        &["dlq", "replay", topic, "--all"],
        &["tail", topic, "--count", "1"],
    ];
    for url in &urls {
        for verb in verbs {
            let out = tidings(url, verb).await;
            let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert_ne!(out.status.code(), Some(0), "{verb:?} on {url}: {shown}");
            assert!(!shown.contains(SECRET), "{verb:?}: {shown}");
            assert!(shown.contains("***"), "{verb:?} names the broker: {shown}");
        }
    }
    // From the environment: refused by RabbitMQ; taken by a Redis that requires no password.
    for url in ["amqp://guest@127.0.0.1:5672/%2f", "redis://127.0.0.1:6379"] {
        let mut args = vec!["dlq", "list", topic];
        args.extend(["--schemas", SCHEMAS, "--broker", url]);
        let out = command(&args)
            .env("TIDINGS_BROKER_PASSWORD", SECRET)
            .output()
            .await
            .unwrap();
        let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!shown.contains(SECRET), "{shown}");
    }
}
