//! The conformance suite on a real NATS server, in JetStream mode and in core mode.
//!
//! Ignored unless asked for (`--include-ignored`, as the test command passes); the server is `TIDINGS_NATS_URL` (default
//! `nats://127.0.0.1:4222`). The restart case runs alone in `nats_restart.rs`, since restarting
//! the server here would break the cases running beside it.

use std::sync::Arc;
use std::time::Duration;

use tidings_conformance::BrokerFactory;
use tidings_core::{Broker, BrokerError, Topic};
use tidings_nats::{NatsBroker, NatsConfig, NatsMode};

/// Connections to the server under test, each a client of its own.
struct Nats(NatsConfig);

impl Nats {
    fn new(mode: NatsMode) -> Self {
        // Test topics and groups are unique per run: they need not outlive it by much.
        Nats(
            NatsConfig::from_env()
                .mode(mode)
                .max_age(Duration::from_secs(3600))
                .ack_wait(Duration::from_secs(2))
                .group_expiry(Some(Duration::from_secs(600))),
        )
    }
}

impl BrokerFactory for Nats {
    async fn connect(&self) -> Result<Arc<dyn Broker>, BrokerError> {
        Ok(Arc::new(NatsBroker::connect(self.0.clone()).await?))
    }

    async fn publish_foreign(&self, topic: &Topic, payload: Vec<u8>) -> Option<Result<(), String>> {
        // A plain NATS publish on the topic's subject, no headers: the JetStream stream the
        // subscription made captures it as well.
        let publish = async {
            let client = tidings_nats::async_nats::connect(self.0.url())
                .await
                .map_err(|e| e.to_string())?;
            client
                .publish(topic.as_str().to_owned(), payload.into())
                .await
                .map_err(|e| e.to_string())?;
            client.flush().await.map_err(|e| e.to_string())
        };
        Some(publish.await)
    }
}

mod jetstream {
    use super::*;

    tidings_conformance::conformance_tests!(
        Nats::new(NatsMode::JetStream),
        // Restarting the server runs alone, in nats_restart.rs.
        not_promised [broker_restart],
        #[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
    );
}

mod core {
    use super::*;

    tidings_conformance::conformance_tests!(
        Nats::new(NatsMode::Core),
        not_promised [
            groups,
            start_from_oldest,
            redelivery_after_consumer_dies,
            close_and_resubscribe,
            broker_restart,
        ],
        #[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
    );
}

/// Needs no server: nothing listens on port 1.
#[tokio::test]
async fn an_unreachable_server_is_named_without_its_password() {
    let config =
        NatsConfig::new("nats://app:s3cret@127.0.0.1:1").connect_timeout(Duration::from_secs(2));
    let error = NatsBroker::connect(config)
        .await
        .expect_err("nothing listens on port 1");
    let text = error.to_string();
    assert!(
        matches!(error, BrokerError::Unreachable { broker: "nats", .. }),
        "{error:?}"
    );
    assert!(text.contains("nats://app:***@127.0.0.1:1"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

/// Two groups dead-letter the same stored message: each dead letter is kept, where naming them
/// by the event id alone made JetStream drop the second as a duplicate.
#[tokio::test]
#[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
async fn each_group_dead_letters_a_message_of_its_own() {
    use tidings_conformance::seam::{message, next, unique_topic};
    use tidings_core::StartFrom;
    use tidings_core::broker::{DeadLetter, SubscribeRequest};

    let patience = Duration::from_secs(10);
    let broker = NatsBroker::connect(Nats::new(NatsMode::JetStream).0)
        .await
        .unwrap();
    let topic = unique_topic("nats", "deadletters");
    let request = |group: &str, topic: &tidings_core::Topic, start| SubscribeRequest {
        topic: topic.clone(),
        group: Some(group.to_owned()),
        start,
        prefetch: 1,
    };
    let mut billing = broker
        .subscribe(request("billing", &topic, StartFrom::New))
        .await
        .unwrap();
    let mut shipping = broker
        .subscribe(request("shipping", &topic, StartFrom::New))
        .await
        .unwrap();
    broker
        .publish(&topic, message(&topic, &b"\x08\x01"[..]))
        .await
        .unwrap();
    for (stream, group) in [(&mut billing, "billing"), (&mut shipping, "shipping")] {
        let delivery = next(stream, patience).await;
        let letter = DeadLetter {
            reason: format!("{group} could not handle it"),
            attempts: delivery.attempt,
            topic: topic.clone(),
        };
        delivery.acker.dead_letter(letter).await.unwrap();
    }
    let dead_letters = topic.dead_letter().unwrap();
    let mut reader = broker
        .subscribe(request("reader", &dead_letters, StartFrom::Oldest))
        .await
        .unwrap();
    let mut reasons = Vec::new();
    for _ in 0..2 {
        let delivery = next(&mut reader, patience).await;
        let message = delivery.message.as_ref().expect("a CloudEvents message");
        reasons.push(
            message
                .envelope
                .extension("deadletterreason")
                .expect("a reason")
                .to_owned(),
        );
        delivery.acker.ack().await.unwrap();
    }
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "billing could not handle it",
            "shipping could not handle it"
        ]
    );
    for mut stream in [billing, shipping, reader] {
        stream.close().await;
    }
}

/// What a test's thread logs, as text: a `tracing` subscriber for that thread (a
/// current-thread runtime runs the subscription's tasks there too) writing into a buffer.
#[derive(Clone, Default)]
struct Log(Arc<std::sync::Mutex<Vec<u8>>>);

impl Log {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let log = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || log.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The server forgets a plain subscriber's consumer (as a restart does) while a message it had
/// nacked waits to come back: the consumer made again starts early enough to deliver it, and
/// the subscription says it lost the consumer and when it receives again.
#[tokio::test]
#[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
async fn a_lost_consumer_is_made_again_without_skipping_what_was_not_settled() {
    use std::collections::BTreeSet;

    use futures_util::StreamExt;
    use tidings_conformance::seam::{message, next, payload, unique_topic};
    use tidings_core::StartFrom;
    use tidings_core::broker::{Nack, SubscribeRequest};

    let log = Log::default();
    let _logging = log.install();
    let patience = Duration::from_secs(30);
    let config = Nats::new(NatsMode::JetStream).0;
    let url = config.url().to_owned();
    let broker = NatsBroker::connect(config).await.unwrap();
    let topic = unique_topic("nats", "lost");
    let request = SubscribeRequest {
        topic: topic.clone(),
        group: None,
        start: StartFrom::New,
        prefetch: 8,
    };
    let mut stream = broker.subscribe(request).await.unwrap();
    for n in 1..=5u8 {
        broker
            .publish(&topic, message(&topic, vec![n]))
            .await
            .unwrap();
    }
    for _ in 1..=5 {
        let delivery = next(&mut stream, patience).await;
        if payload(&delivery) == 1 {
            // Long enough that only a consumer made again can bring it back in this test.
            let later = Nack::Retry(Duration::from_secs(300));
            delivery.acker.nack(later).await.unwrap();
        } else {
            delivery.acker.ack().await.unwrap();
        }
    }

    let client = tidings_nats::async_nats::connect(&url).await.unwrap();
    let js = tidings_nats::async_nats::jetstream::new(client);
    let name = js.stream_by_subject(topic.as_str()).await.unwrap();
    let handle = js.get_stream(&name).await.unwrap();
    let consumers: Vec<String> = handle
        .consumer_names()
        .filter_map(|name| async move { name.ok() })
        .collect()
        .await;
    assert!(!consumers.is_empty(), "the subscription has a consumer");
    for consumer in consumers {
        handle.delete_consumer(&consumer).await.unwrap();
    }
    broker
        .publish(&topic, message(&topic, vec![6]))
        .await
        .unwrap();

    let mut seen = BTreeSet::new();
    while !(seen.contains(&1) && seen.contains(&6)) {
        let delivery = next(&mut stream, patience).await;
        seen.insert(payload(&delivery));
        delivery.acker.ack().await.unwrap();
    }
    stream.close().await;
    let log = log.text();
    let lost = log
        .lines()
        .position(|line| line.contains("WARN") && line.contains("cannot "))
        .unwrap_or_else(|| panic!("the lost consumer is reported:\n{log}"));
    assert!(
        log.lines().nth(lost).unwrap().contains(topic.as_str()),
        "the report names the topic:\n{log}"
    );
    assert!(
        log.lines()
            .skip(lost + 1)
            .any(|line| line.contains("INFO") && line.contains("receiving again")),
        "the subscription says when it receives again:\n{log}"
    );
}

/// A group member busy past the ack wait holds no messages beyond the ones it handles: a message
/// it had fetched ahead and left waiting would be handed to another member after the ack wait,
/// and then handled by both.
#[tokio::test]
#[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
async fn a_busy_group_member_holds_back_nothing_another_member_handles() {
    use tidings_conformance::seam::{message, next, payload, unique_topic};
    use tidings_core::StartFrom;
    use tidings_core::broker::{DeliveryStream, SubscribeRequest};

    let patience = Duration::from_secs(10);
    let ack_wait = Duration::from_secs(1);
    let config = Nats::new(NatsMode::JetStream).0.ack_wait(ack_wait);
    let broker = NatsBroker::connect(config).await.unwrap();
    let topic = unique_topic("nats", "busy");
    let request = SubscribeRequest {
        topic: topic.clone(),
        group: Some("busy".to_owned()),
        start: StartFrom::New,
        prefetch: 2,
    };
    let mut busy = broker.subscribe(request.clone()).await.unwrap();
    for n in 1..=6u8 {
        broker
            .publish(&topic, message(&topic, vec![n]))
            .await
            .unwrap();
    }
    let held = [
        next(&mut busy, patience).await,
        next(&mut busy, patience).await,
    ];
    // Time for a member that fetches ahead to have done so before the other member joins.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let other = tokio::spawn({
        let broker = broker.clone();
        async move {
            let mut stream = broker.subscribe(request).await.unwrap();
            let handled = drain(&mut stream, ack_wait * 4).await;
            stream.close().await;
            handled
        }
    });
    // Busy for well over the ack wait; the deliveries in hand are kept in progress.
    tokio::time::sleep(ack_wait * 5 / 2).await;
    let mut handled = Vec::new();
    for delivery in held {
        handled.push(payload(&delivery));
        delivery.acker.ack().await.unwrap();
    }
    handled.extend(drain(&mut busy, ack_wait * 2).await);
    busy.close().await;
    handled.extend(other.await.unwrap());

    handled.sort_unstable();
    assert_eq!(
        handled,
        [1, 2, 3, 4, 5, 6],
        "each message handled once, by one member"
    );

    /// Acks what comes until nothing has for `quiet`, and says what it was.
    async fn drain(stream: &mut Box<dyn DeliveryStream>, quiet: Duration) -> Vec<u8> {
        let mut handled = Vec::new();
        while let Ok(Some(delivery)) = tokio::time::timeout(quiet, stream.next()).await {
            let delivery = delivery.unwrap();
            handled.push(payload(&delivery));
            delivery.acker.ack().await.unwrap();
        }
        handled
    }
}
