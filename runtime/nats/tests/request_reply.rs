//! Request-reply on a real NATS server, where NATS differs from other brokers. What every
//! broker does (replies, deadlines, no responders, groups, statuses, refusals) is in the
//! conformance suite, which `conformance.rs` runs in both modes.
//!
//! Ignored unless asked for (`--include-ignored`, as the test command passes); the server is
//! `TIDINGS_NATS_URL` (default `nats://127.0.0.1:4222`). The group is unique per run, so
//! another run against the same server takes none of this run's messages.

use std::time::Duration;

use tidings::{Broker, Bus, EventId, Topic};
use tidings_nats::{NatsBroker, NatsConfig, NatsMode};

/// What the message published carries.
#[derive(Clone, PartialEq, prost::Message, tidings::Event)]
#[event(topic = "tests.rpc.ping.v1")]
struct Ping {
    #[prost(string, tag = "1")]
    text: String,
}

/// A message published, not requested, to an rpc subject has no reply subject: the server
/// refuses to answer it.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs NATS at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
async fn a_request_without_a_reply_subject_is_refused() {
    let config = NatsConfig::from_env().mode(NatsMode::Core);
    let broker = NatsBroker::connect(config.clone()).await.unwrap();
    let topic = Topic::new("tests.rpc.nats.core.unanswerable.v1").unwrap();
    let group = format!("g{}", EventId::new().replace('-', ""));
    let mut requests = broker.serve(&topic, &group, 8).await.unwrap();

    let bus = Bus::new(broker.clone());
    let (_, message) = bus.prepare(&Ping::default()).unwrap();
    let client = tidings_nats::async_nats::connect(config.url())
        .await
        .unwrap();
    let subject = format!("_tidings.rpc.{topic}");
    client.publish(subject, message.data.clone()).await.unwrap();
    client.flush().await.unwrap();

    let request = tokio::time::timeout(Duration::from_secs(5), requests.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let error = request.replier.reply(message).await.unwrap_err();
    assert!(error.to_string().contains("no reply subject"), "{error}");
    requests.close().await;
}
