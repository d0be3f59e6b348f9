//! The conformance suite on a real RabbitMQ server.
//!
//! Ignored unless asked for (`--include-ignored`, as the test command passes); the server is `TIDINGS_RABBITMQ_URL` (default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`). The restart case runs alone in
//! `rabbitmq_restart.rs`, since restarting the server here would break the cases running beside
//! it.

use std::sync::Arc;

use tidings_conformance::BrokerFactory;
use tidings_core::{Broker, BrokerError, Topic};
use tidings_rabbitmq::{RabbitBroker, RabbitConfig};

/// Connections to the server under test, each a connection of its own.
struct Rabbit(RabbitConfig);

impl BrokerFactory for Rabbit {
    async fn connect(&self) -> Result<Arc<dyn Broker>, BrokerError> {
        Ok(Arc::new(RabbitBroker::connect(self.0.clone()).await?))
    }

    async fn publish_foreign(&self, topic: &Topic, payload: Vec<u8>) -> Option<Result<(), String>> {
        use tidings_rabbitmq::lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
        use tidings_rabbitmq::lapin::{BasicProperties, Connection, ConnectionProperties};
        // To the adapter's exchange (its default, `tidings`) with the topic as routing key, no
        // headers and no content type, confirmed.
        let publish = async {
            let connection = Connection::connect(self.0.url(), ConnectionProperties::default())
                .await
                .map_err(|e| e.to_string())?;
            let channel = connection
                .create_channel()
                .await
                .map_err(|e| e.to_string())?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            channel
                .basic_publish(
                    "tidings".into(),
                    topic.as_str().into(),
                    BasicPublishOptions::default(),
                    &payload,
                    BasicProperties::default(),
                )
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            connection
                .close(200, "done".into())
                .await
                .map_err(|e| e.to_string())
        };
        Some(publish.await)
    }
}

tidings_conformance::conformance_tests!(
    Rabbit(RabbitConfig::from_env().group_expiry(Some(std::time::Duration::from_secs(600)))),
    // Restarting the server runs alone, in rabbitmq_restart.rs.
    not_promised [start_from_oldest, broker_restart],
    #[ignore = "needs RabbitMQ at TIDINGS_RABBITMQ_URL (default amqp://127.0.0.1:5672): run with --include-ignored, as the test command does"]
);

/// Needs no server: nothing listens on port 1.
#[tokio::test]
async fn an_unreachable_server_is_named_without_its_password() {
    let config = RabbitConfig::new("amqp://app:s3cret@127.0.0.1:1/%2f")
        .connect_timeout(std::time::Duration::from_secs(2));
    let error = RabbitBroker::connect(config)
        .await
        .expect_err("nothing listens on port 1");
    let text = error.to_string();
    assert!(
        matches!(
            error,
            BrokerError::Unreachable {
                broker: "rabbitmq",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(text.contains("amqp://app:***@127.0.0.1:1/%2f"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

/// A message handed back (counted by the server's delivery count), then retried after a delay:
/// the copy published for the retry starts its own delivery history, so each attempt counts once.
#[tokio::test]
#[ignore = "needs RabbitMQ at TIDINGS_RABBITMQ_URL (default amqp://127.0.0.1:5672): run with --include-ignored, as the test command does"]
async fn a_delayed_retry_in_a_group_counts_each_attempt_once() {
    use std::time::Duration;

    use tidings_conformance::seam::{message, next, unique_topic};
    use tidings_core::StartFrom;
    use tidings_core::broker::{Nack, SubscribeRequest};

    let patience = Duration::from_secs(10);
    let config = RabbitConfig::from_env().group_expiry(Some(Duration::from_secs(60)));
    let broker = RabbitBroker::connect(config).await.unwrap();
    let topic = unique_topic("rabbit", "attempts");
    let request = SubscribeRequest {
        topic: topic.clone(),
        group: Some("workers".into()),
        start: StartFrom::New,
        prefetch: 1,
    };
    let mut stream = broker.subscribe(request).await.unwrap();
    broker
        .publish(&topic, message(&topic, &b"\x08\x01"[..]))
        .await
        .unwrap();

    let first = next(&mut stream, patience).await;
    assert_eq!(first.attempt, 1);
    drop(first);
    let second = next(&mut stream, patience).await;
    assert_eq!(second.attempt, 2, "the hand-back counted");
    second
        .acker
        .nack(Nack::Retry(Duration::from_millis(50)))
        .await
        .unwrap();
    let third = next(&mut stream, patience).await;
    assert_eq!(third.attempt, 3, "the retry counted once");
    third.acker.ack().await.unwrap();
    stream.close().await;
}

/// An attribute whose header name AMQP cannot write (over 255 bytes) fails the publish with a
/// reason and sends nothing; the connection goes on carrying the next message.
#[tokio::test]
#[ignore = "needs RabbitMQ at TIDINGS_RABBITMQ_URL (default amqp://127.0.0.1:5672): run with --include-ignored, as the test command does"]
async fn a_header_name_too_long_for_amqp_is_refused_and_the_next_message_goes() {
    use std::time::Duration;

    use tidings_conformance::seam::{message, next, unique_topic};
    use tidings_core::StartFrom;
    use tidings_core::broker::SubscribeRequest;

    let broker = RabbitBroker::connect(RabbitConfig::from_env())
        .await
        .unwrap();
    let topic = unique_topic("rabbit", "unwritable");
    let request = SubscribeRequest {
        topic: topic.clone(),
        group: None,
        start: StartFrom::New,
        prefetch: 1,
    };
    let mut stream = broker.subscribe(request).await.unwrap();

    let mut too_long = message(&topic, &b"\x08\x01"[..]);
    std::sync::Arc::make_mut(&mut too_long.envelope).set_extension("x".repeat(300), "v");
    let error = broker.publish(&topic, too_long).await.unwrap_err();
    assert!(
        matches!(
            error,
            BrokerError::Unwritable {
                broker: "rabbitmq",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("at most 255"), "{error}");

    let fits = message(&topic, &b"\x08\x02"[..]);
    let id = fits.envelope.id.clone();
    broker.publish(&topic, fits).await.unwrap();
    let delivery = next(&mut stream, Duration::from_secs(10)).await;
    let received = delivery.message.expect("a CloudEvent");
    assert_eq!(
        received.envelope.id, id,
        "only the message that fits arrived"
    );
    delivery.acker.ack().await.unwrap();
    stream.close().await;
}
