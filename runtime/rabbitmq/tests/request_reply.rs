//! Request-reply on a real RabbitMQ server, where RabbitMQ differs from other brokers. What
//! every broker does (replies, deadlines, no responders, groups, statuses, refusals) is in the
//! conformance suite, which `conformance.rs` runs.
//!
//! Ignored unless asked for (`--include-ignored`, as the test command passes); the server is
//! `TIDINGS_RABBITMQ_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`). The group is unique
//! per run, so another run against the same server takes none of this run's messages.

use std::time::{Duration, Instant};

use tidings::{Broker, Bus, EventId, Received, RequestError, Rpc, Topic};
use tidings_rabbitmq::lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeleteOptions,
};
use tidings_rabbitmq::lapin::{BasicProperties, Connection, ConnectionProperties};
use tidings_rabbitmq::{RabbitBroker, RabbitConfig};

/// A request.
#[derive(Clone, PartialEq, prost::Message, tidings::Event)]
#[event(topic = "tests.rpc.ping.v1")]
struct Ping {
    #[prost(string, tag = "1")]
    text: String,
}

/// A reply.
#[derive(Clone, PartialEq, prost::Message, tidings::Event)]
#[event(topic = "tests.rpc.pong.v1")]
struct Pong {
    #[prost(string, tag = "1")]
    text: String,
}

/// Answers a `Ping` with a `Pong` of the same text.
struct Echo;

impl Rpc for Echo {
    type Request = Ping;
    type Reply = Pong;
    const TOPIC: &'static str = "tests.rpc.rabbitmq.echo.v1";
    const NAME: &'static str = "tests.rpc.v1.Rabbit.Echo";
}

/// A group of this run's own.
fn group() -> String {
    format!("g{}", EventId::new().replace('-', ""))
}

/// A request without `reply_to` (published, not requested) is acked and refused, and the
/// queue of the group does not keep it.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs RabbitMQ at TIDINGS_RABBITMQ_URL (default amqp://guest:guest@127.0.0.1:5672/%2f): run with --include-ignored, as the test command does"]
async fn a_request_without_reply_to_is_refused() {
    let config = RabbitConfig::from_env();
    let broker = RabbitBroker::connect(config.clone()).await.unwrap();
    let topic = Topic::new("tests.rpc.rabbitmq.unanswerable.v1").unwrap();
    let group = group();
    let mut requests = broker.serve(&topic, &group, 8).await.unwrap();

    let connection = Connection::connect(config.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    channel
        .basic_publish(
            "tidings.rpc".into(),
            topic.as_str().into(),
            BasicPublishOptions::default(),
            b"",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    let request = tokio::time::timeout(Duration::from_secs(5), requests.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(request.message.is_err(), "{:?}", request.message);
    let bus = Bus::new(broker);
    let (_, reply) = bus.prepare(&Pong::default()).unwrap();
    let error = request.replier.reply(reply).await.unwrap_err();
    assert!(error.to_string().contains("no `reply_to`"), "{error}");
    requests.close().await;
    connection.close(200, "done".into()).await.unwrap();
}

/// A server whose queue is deleted under it (the broker cancels its consumer) declares the
/// queue again and goes on serving, as a subscriber does after its channel was lost.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs RabbitMQ at TIDINGS_RABBITMQ_URL (default amqp://guest:guest@127.0.0.1:5672/%2f): run with --include-ignored, as the test command does"]
async fn a_server_whose_queue_is_deleted_serves_again() {
    let config = RabbitConfig::from_env();
    let bus = Bus::new(RabbitBroker::connect(config.clone()).await.unwrap());
    let group = group();
    let server = bus
        .serve::<Echo, _>(&group, |request: Received<Ping>| async move {
            Ok(Pong {
                text: request.text.clone(),
            })
        })
        .await
        .unwrap();
    let client = bus.client().await.unwrap();
    let ping = Ping {
        text: "before".into(),
    };
    assert_eq!(client.call::<Echo>(&ping).await.unwrap().text, "before");

    let connection = Connection::connect(config.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let queue = format!("rpc:{}:{group}", Echo::TOPIC);
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();

    // Nobody serves until the server has declared its queue again.
    let ping = Ping {
        text: "after".into(),
    };
    let started = Instant::now();
    let reply = loop {
        match client.call::<Echo>(&ping).await {
            Err(RequestError::NoResponders { .. })
                if started.elapsed() < Duration::from_secs(10) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other.unwrap(),
        }
    };
    assert_eq!(reply.text, "after");
    server.shutdown().await;
    connection.close(200, "done".into()).await.unwrap();
}
