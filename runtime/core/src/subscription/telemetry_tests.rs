//! What the consumer reports through `tracing`: each failure the in-process broker (or a broker
//! wrapping it) can produce emits exactly its events, at their level, with the topic, group,
//! event id and reason; the happy path emits nothing at INFO or above, only its DEBUG spans.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Level, Subscriber};

use super::tests::Away;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::broker::{
    Acker, DeadLetter, Delivery, DeliveryStream, Malformed, Message, Nack, StartFrom,
    SubscribeRequest,
};
use crate::telemetry::kind;
use crate::{
    Broker, BrokerError, Bus, Confirmation, ContentType, Envelope, Event, HandlerError,
    MemoryBroker, Protobuf, Received, RetryPolicy, Topic,
};

#[derive(Clone, PartialEq, prost::Message)]
struct Step {
    #[prost(uint32, tag = "1")]
    n: u32,
}

impl Event for Step {
    const TOPIC: &'static str = "tests.telemetry.step.v1";
    const SCHEMA: &'static str = "tests.telemetry.v1.Step";
    const DATA_SCHEMA: &'static str = "proto:tests.telemetry.v1.Step";
    type Codec = Protobuf;
}

/// An event or a new span, as recorded.
#[derive(Clone, Debug)]
struct Record {
    level: Level,
    /// The span's name, or the event's message.
    name: String,
    fields: BTreeMap<String, String>,
}

impl Record {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// A layer that keeps every event and every new span.
#[derive(Clone, Default)]
struct Capture {
    events: Arc<Mutex<Vec<Record>>>,
    spans: Arc<Mutex<Vec<Record>>>,
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let name = fields.0.remove("message").unwrap_or_default();
        self.events.lock().unwrap().push(Record {
            level: *event.metadata().level(),
            name,
            fields: fields.0,
        });
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        self.spans.lock().unwrap().push(Record {
            level: *attrs.metadata().level(),
            name: attrs.metadata().name().to_owned(),
            fields: fields.0,
        });
    }
}

impl Capture {
    /// Installs the layer for this thread (the tests run on a current-thread runtime, so the
    /// consumer's task runs here too).
    fn install() -> (Capture, tracing::subscriber::DefaultGuard) {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
    }

    /// The events at INFO or above, as (level, error.type).
    fn loud(&self) -> Vec<Record> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.level <= Level::INFO)
            .cloned()
            .collect()
    }

    fn kinds(&self) -> Vec<(Level, String)> {
        self.loud()
            .iter()
            .map(|e| (e.level, e.field("error.type").unwrap_or("").to_owned()))
            .collect()
    }

    /// Waits until `count` events at INFO or above arrived (or 5 s passed), then a little more,
    /// so that one too many would show.
    async fn wait_for(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.loud().len() < count && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts the fields every consumer event carries.
fn assert_about(event: &Record, id: &str, group: Option<&str>) {
    assert_eq!(
        event.field("messaging.destination.name"),
        Some(Step::TOPIC),
        "{event:?}"
    );
    assert_eq!(event.field("messaging.message.id"), Some(id), "{event:?}");
    assert_eq!(
        event.field("messaging.consumer.group.name"),
        group,
        "{event:?}"
    );
    assert!(event.field("messaging.system").is_some(), "{event:?}");
}

fn tiny_backoffs(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(max_attempts)
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(2))
}

#[tokio::test]
async fn the_happy_path_emits_nothing_at_info_or_above_and_has_its_spans() {
    let (capture, _guard) = Capture::install();
    let bus = Bus::memory();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handler = move |event: Received<Step>| {
        let _ = tx.send(event.n);
        async {}
    };
    let sub = bus.subscribe(handler).group("billing").await.unwrap();
    let receipt = bus.publish(&Step { n: 1 }).await.unwrap();
    let handled = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert_eq!(handled.unwrap(), Some(1));
    sub.shutdown().await;

    assert!(capture.loud().is_empty(), "{:?}", capture.loud());
    let spans = capture.spans.lock().unwrap().clone();
    let id = receipt.id().as_str();
    let publish = spans.iter().find(|s| s.name == "publish").expect("a span");
    assert_eq!(publish.level, Level::DEBUG);
    assert_eq!(
        publish.field("otel.name"),
        Some("publish tests.telemetry.step.v1")
    );
    assert_eq!(publish.field("messaging.system"), Some("memory"));
    assert_eq!(publish.field("messaging.operation.type"), Some("publish"));
    assert_eq!(
        publish.field("messaging.destination.name"),
        Some(Step::TOPIC)
    );
    let process = spans.iter().find(|s| s.name == "process").expect("a span");
    assert_eq!(process.level, Level::DEBUG);
    assert_eq!(
        process.field("otel.name"),
        Some("process tests.telemetry.step.v1")
    );
    assert_eq!(process.field("messaging.operation.type"), Some("process"));
    assert_eq!(process.field("messaging.message.id"), Some(id));
    assert_eq!(
        process.field("messaging.consumer.group.name"),
        Some("billing")
    );
    assert_eq!(process.field("messaging.tidings.attempt"), Some("1"));
}

#[tokio::test]
async fn a_handler_error_is_a_warning_per_attempt_then_a_dead_letter() {
    let (capture, _guard) = Capture::install();
    let bus = Bus::memory();
    let handler = |_: Received<Step>| async { Err::<(), HandlerError>("bad sku".into()) };
    let sub = bus
        .subscribe(handler)
        .group("billing")
        .retry(tiny_backoffs(2))
        .await
        .unwrap();
    let receipt = bus.publish(&Step { n: 1 }).await.unwrap();
    capture.wait_for(3).await;
    sub.shutdown().await;

    assert_eq!(
        capture.kinds(),
        [
            (Level::WARN, kind::HANDLER_ERROR.to_owned()),
            (Level::WARN, kind::HANDLER_ERROR.to_owned()),
            (Level::WARN, kind::DEAD_LETTERED.to_owned()),
        ]
    );
    let events = capture.loud();
    for (event, attempt) in events[..2].iter().zip(["1", "2"]) {
        assert_about(event, receipt.id().as_str(), Some("billing"));
        assert_eq!(event.name, "handler failed");
        assert_eq!(event.field("reason"), Some("handler failed: bad sku"));
        assert_eq!(event.field("messaging.tidings.attempt"), Some(attempt));
    }
    let letter = &events[2];
    assert_about(letter, receipt.id().as_str(), Some("billing"));
    assert_eq!(letter.name, "dead-lettered");
    assert_eq!(letter.field("reason"), Some("handler failed: bad sku"));
    assert_eq!(letter.field("attempts"), Some("2"));
}

#[tokio::test]
async fn a_permanent_error_is_a_warning_and_a_dead_letter_after_one_attempt() {
    let (capture, _guard) = Capture::install();
    let bus = Bus::memory();
    let handler =
        |_: Received<Step>| async { Err::<(), HandlerError>(HandlerError::permanent("bad sku")) };
    let sub = bus
        .subscribe(handler)
        .retry(tiny_backoffs(5))
        .await
        .unwrap();
    let receipt = bus.publish(&Step { n: 1 }).await.unwrap();
    capture.wait_for(2).await;
    sub.shutdown().await;

    assert_eq!(
        capture.kinds(),
        [
            (Level::WARN, kind::HANDLER_ERROR.to_owned()),
            (Level::WARN, kind::DEAD_LETTERED.to_owned()),
        ]
    );
    let events = capture.loud();
    assert_about(&events[1], receipt.id().as_str(), None);
    assert_eq!(
        events[1].field("reason"),
        Some("handler refused the event for good: bad sku")
    );
    assert_eq!(events[1].field("attempts"), Some("1"));
}

#[tokio::test]
async fn a_panic_is_an_error() {
    let (capture, _guard) = Capture::install();
    let bus = Bus::memory();
    let handler = |event: Received<Step>| async move {
        assert!(
            event.attempt() > 1,
            "panicking on the first attempt on purpose"
        );
    };
    let sub = bus
        .subscribe(handler)
        .group("billing")
        .retry(tiny_backoffs(3))
        .await
        .unwrap();
    let receipt = bus.publish(&Step { n: 1 }).await.unwrap();
    capture.wait_for(1).await;
    sub.shutdown().await;

    assert_eq!(
        capture.kinds(),
        [(Level::ERROR, kind::HANDLER_PANIC.to_owned())]
    );
    let event = &capture.loud()[0];
    assert_about(event, receipt.id().as_str(), Some("billing"));
    assert_eq!(event.name, "handler panicked");
    assert_eq!(
        event.field("reason"),
        Some("handler panicked: panicking on the first attempt on purpose")
    );
    assert_eq!(event.field("messaging.tidings.attempt"), Some("1"));
}

#[tokio::test]
async fn a_timeout_is_a_warning() {
    let (capture, _guard) = Capture::install();
    let bus = Bus::memory();
    let handler = |event: Received<Step>| async move {
        if event.attempt() == 1 {
            std::future::pending::<()>().await;
        }
    };
    let sub = bus
        .subscribe(handler)
        .handler_timeout(Duration::from_millis(20))
        .retry(tiny_backoffs(3))
        .await
        .unwrap();
    let receipt = bus.publish(&Step { n: 1 }).await.unwrap();
    capture.wait_for(1).await;
    sub.shutdown().await;

    assert_eq!(
        capture.kinds(),
        [(Level::WARN, kind::HANDLER_TIMEOUT.to_owned())]
    );
    let event = &capture.loud()[0];
    assert_about(event, receipt.id().as_str(), None);
    assert_eq!(event.name, "handler timed out");
    assert_eq!(event.field("reason"), Some("handler timed out after 20ms"));
}

#[tokio::test]
async fn a_message_of_another_major_is_refused_and_dead_lettered() {
    let (capture, _guard) = Capture::install();
    let bus = Bus::memory();
    let handler = |_: Received<Step>| async {};
    let sub = bus.subscribe(handler).group("billing").await.unwrap();
    // A v2 message on the v1 topic, through the broker seam.
    let envelope = Envelope::new(
        Arc::from("tests"),
        Cow::Borrowed("tests.telemetry.step.v2"),
        ContentType::Protobuf,
        Some(Cow::Borrowed("proto:tests.telemetry.v2.Step")),
    );
    let id = envelope.id.as_str().to_owned();
    bus.broker()
        .publish(
            &Topic::of::<Step>().unwrap(),
            Message::new(envelope, Bytes::new()),
        )
        .await
        .unwrap();
    capture.wait_for(2).await;
    sub.shutdown().await;

    assert_eq!(
        capture.kinds(),
        [
            (Level::WARN, kind::REFUSED.to_owned()),
            (Level::WARN, kind::DEAD_LETTERED.to_owned()),
        ]
    );
    let events = capture.loud();
    for event in &events {
        assert_about(event, &id, Some("billing"));
        let reason = event.field("reason").unwrap();
        assert!(reason.starts_with("wrong major version"), "{reason}");
    }
    assert_eq!(events[1].field("attempts"), Some("1"));
}

#[tokio::test]
async fn a_message_above_the_limit_is_refused_and_dead_lettered_and_the_next_handled() {
    let (capture, _guard) = Capture::install();
    // The subscription takes the bus's limit.
    let bus = Bus::memory().with_max_message_size(300);
    let (tx, mut handled) = tokio::sync::mpsc::unbounded_channel();
    let handler = move |event: Received<Step>| {
        let tx = tx.clone();
        async move { tx.send(event.n).unwrap() }
    };
    let sub = bus.subscribe(handler).await.unwrap();
    // Messages of exactly `size` bytes, through the broker seam: the source makes up the rest.
    let sized = |n: u32, size: usize| {
        let data = Bytes::from(prost::Message::encode_to_vec(&Step { n }));
        let mut envelope = Envelope::new(
            Arc::from(""),
            Cow::Borrowed(Step::TOPIC),
            ContentType::Protobuf,
            Some(Cow::Borrowed("proto:tests.telemetry.v1.Step")),
        );
        envelope.source = Arc::from("s".repeat(size - envelope.size() - data.len()));
        let message = Message::new(envelope, data);
        assert_eq!(message.size(), size);
        message
    };
    let (at_limit, over, small) = (sized(1, 300), sized(2, 301), sized(3, 250));
    let id = over.envelope.id.as_str().to_owned();
    for message in [at_limit, over, small] {
        bus.broker()
            .publish(&Topic::of::<Step>().unwrap(), message)
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        let next = tokio::time::timeout(Duration::from_secs(5), handled.recv()).await;
        got.push(next.unwrap().unwrap());
    }
    assert_eq!(got, [1, 3], "the message over the limit is not handled");
    capture.wait_for(2).await;
    sub.shutdown().await;

    assert_eq!(
        capture.kinds(),
        [
            (Level::WARN, kind::REFUSED.to_owned()),
            (Level::WARN, kind::DEAD_LETTERED.to_owned()),
        ]
    );
    for event in &capture.loud() {
        assert_about(event, &id, None);
        assert_eq!(
            event.field("reason"),
            Some(
                "too large: 301 bytes of data and attributes, above this subscription's limit \
                 of 300; the publisher must send smaller events, or the subscription allow more \
                 (`max_message_size`)"
            )
        );
    }
}

/// Publishes `envelope` with `data` on `Step`'s topic through the broker seam, to a subscriber
/// of `Step` in a group, and returns what was reported at INFO or above.
async fn refusal_of(envelope: Envelope, data: &'static [u8]) -> Vec<Record> {
    let (capture, _guard) = Capture::install();
    let bus = Bus::memory();
    let handler = |_: Received<Step>| async {};
    let sub = bus.subscribe(handler).group("billing").await.unwrap();
    let id = envelope.id.as_str().to_owned();
    bus.broker()
        .publish(
            &Topic::of::<Step>().unwrap(),
            Message::new(envelope, Bytes::from_static(data)),
        )
        .await
        .unwrap();
    capture.wait_for(2).await;
    sub.shutdown().await;
    assert_eq!(
        capture.kinds(),
        [
            (Level::WARN, kind::REFUSED.to_owned()),
            (Level::WARN, kind::DEAD_LETTERED.to_owned()),
        ]
    );
    let events = capture.loud();
    for event in &events {
        assert_about(event, &id, Some("billing"));
    }
    events
}

#[tokio::test]
async fn another_event_another_schema_and_undecodable_data_are_refused_with_their_reason() {
    let step = |event_type: &'static str, schema: &'static str| {
        Envelope::new(
            Arc::from("tests"),
            Cow::Borrowed(event_type),
            ContentType::Protobuf,
            Some(Cow::Borrowed(schema)),
        )
    };
    let cases = [
        (
            step("tests.telemetry.other.v1", "proto:tests.telemetry.v1.Other"),
            &b""[..],
            "wrong event type: expected `tests.telemetry.step.v1`, got `tests.telemetry.other.v1`",
        ),
        (
            step(Step::TOPIC, "proto:tests.billing.v1.Invoice"),
            &b""[..],
            "wrong schema: expected dataschema `proto:tests.telemetry.v1.Step`, got \
             `proto:tests.billing.v1.Invoice`",
        ),
        (
            step(Step::TOPIC, "proto:tests.telemetry.v1.Step"),
            &b"\xff\xff"[..],
            "undecodable data: ",
        ),
    ];
    for (envelope, data, reason) in cases {
        let events = refusal_of(envelope, data).await;
        for event in &events {
            let said = event.field("reason").unwrap();
            assert!(
                said.starts_with(reason),
                "{said} does not start with {reason}"
            );
        }
        assert_eq!(events[0].field("messaging.tidings.attempt"), Some("1"));
        assert_eq!(events[1].field("attempts"), Some("1"));
    }
}

#[tokio::test]
async fn a_message_that_is_not_cloudevents_is_refused_without_an_event_id() {
    let (capture, _guard) = Capture::install();
    let broker = Flaky::default();
    broker.failures.garbled.store(1, Ordering::SeqCst);
    let bus = Bus::new(broker);
    let handler = |_: Received<Step>| async {};
    let sub = bus.subscribe(handler).group("billing").await.unwrap();
    bus.publish(&Step { n: 1 }).await.unwrap();
    capture.wait_for(2).await;
    sub.shutdown().await;

    assert_eq!(
        capture.kinds(),
        [
            (Level::WARN, kind::REFUSED.to_owned()),
            (Level::WARN, kind::DEAD_LETTERED.to_owned()),
        ]
    );
    for event in capture.loud() {
        assert_eq!(event.field("messaging.message.id"), None, "{event:?}");
        assert_eq!(
            event.field("reason"),
            Some(
                "malformed message: expected a CloudEvents 1.0 message of type \
                 `tests.telemetry.step.v1`, got: no `ce-specversion` header"
            )
        );
    }
}

/// Which settlements of a [`Flaky`] broker fail, and how many times each; and how many
/// deliveries arrive as something that is not CloudEvents.
#[derive(Default)]
struct Failures {
    acks: AtomicU32,
    nacks: AtomicU32,
    dead_letters: AtomicU32,
    garbled: AtomicU32,
}

/// A `MemoryBroker` whose ackers fail as many acks, nacks and dead letters as `failures` says.
#[derive(Clone, Default)]
struct Flaky {
    inner: MemoryBroker,
    failures: Arc<Failures>,
}

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

fn refused(operation: &str) -> BrokerError {
    BrokerError::Rejected {
        broker: "flaky",
        operation: operation.into(),
        reason: "the channel is closed".into(),
    }
}

struct FlakyAcker {
    inner: Box<dyn Acker>,
    failures: Arc<Failures>,
}

#[async_trait::async_trait]
impl Acker for FlakyAcker {
    async fn ack(self: Box<Self>) -> Result<(), BrokerError> {
        if take(&self.failures.acks) {
            // The inner acker is dropped unsettled: the broker delivers the message again.
            return Err(refused("ack"));
        }
        self.inner.ack().await
    }

    async fn nack(self: Box<Self>, nack: Nack) -> Result<(), BrokerError> {
        if take(&self.failures.nacks) {
            return Err(refused("nack"));
        }
        self.inner.nack(nack).await
    }

    async fn dead_letter(self: Box<Self>, letter: DeadLetter) -> Result<(), BrokerError> {
        if take(&self.failures.dead_letters) {
            return Err(refused("dead-letter"));
        }
        self.inner.dead_letter(letter).await
    }
}

struct FlakyStream {
    inner: Box<dyn DeliveryStream>,
    failures: Arc<Failures>,
}

impl FlakyStream {
    fn wrap(&self, delivery: Delivery) -> Delivery {
        let message = match delivery.message {
            Ok(message) if take(&self.failures.garbled) => Err(Malformed {
                reason: "no `ce-specversion` header".into(),
                headers: Vec::new(),
                data: message.data,
            }),
            message => message,
        };
        Delivery {
            message,
            acker: Box::new(FlakyAcker {
                inner: delivery.acker,
                failures: self.failures.clone(),
            }),
            ..delivery
        }
    }
}

#[async_trait::async_trait]
impl DeliveryStream for FlakyStream {
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        let next = self.inner.next().await;
        next.map(|r| r.map(|d| self.wrap(d)))
    }

    async fn close(&mut self) {
        self.inner.close().await;
    }
}

#[async_trait::async_trait]
impl Broker for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }

    fn capabilities(&self) -> crate::Capabilities {
        self.inner.capabilities()
    }

    async fn publish(&self, topic: &Topic, message: Message) -> Result<Confirmation, BrokerError> {
        self.inner.publish(topic, message).await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        Ok(Box::new(FlakyStream {
            inner: self.inner.subscribe(request).await?,
            failures: self.failures.clone(),
        }))
    }
}

#[tokio::test]
async fn a_failed_ack_is_an_error() {
    let (capture, _guard) = Capture::install();
    let broker = Flaky::default();
    broker.failures.acks.store(1, Ordering::SeqCst);
    let bus = Bus::new(broker);
    let calls = Arc::new(AtomicU32::new(0));
    let handler = {
        let calls = calls.clone();
        move |_: Received<Step>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {}
        }
    };
    let sub = bus.subscribe(handler).group("billing").await.unwrap();
    let receipt = bus.publish(&Step { n: 1 }).await.unwrap();
    capture.wait_for(1).await;
    sub.shutdown().await;

    assert_eq!(
        capture.kinds(),
        [(Level::ERROR, kind::ACK_FAILED.to_owned())]
    );
    let event = &capture.loud()[0];
    assert_about(event, receipt.id().as_str(), Some("billing"));
    assert_eq!(event.field("messaging.system"), Some("flaky"));
    assert_eq!(
        event.field("error"),
        Some("flaky refused to ack: the channel is closed")
    );
    // The broker delivered it again, as the event says it may.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failed_nack_is_an_error() {
    let (capture, _guard) = Capture::install();
    let broker = Flaky::default();
    broker.failures.nacks.store(1, Ordering::SeqCst);
    let bus = Bus::new(broker);
    let handler = |event: Received<Step>| async move {
        if event.attempt() == 1 {
            Err::<(), HandlerError>("not yet".into())
        } else {
            Ok(())
        }
    };
    let sub = bus
        .subscribe(handler)
        .retry(tiny_backoffs(3))
        .await
        .unwrap();
    let receipt = bus.publish(&Step { n: 1 }).await.unwrap();
    capture.wait_for(2).await;
    sub.shutdown().await;

    assert_eq!(
        capture.kinds(),
        [
            (Level::WARN, kind::HANDLER_ERROR.to_owned()),
            (Level::ERROR, kind::NACK_FAILED.to_owned()),
        ]
    );
    let event = &capture.loud()[1];
    assert_about(event, receipt.id().as_str(), None);
    assert_eq!(event.field("reason"), Some("handler failed: not yet"));
    assert_eq!(
        event.field("error"),
        Some("flaky refused to nack: the channel is closed")
    );
}

#[tokio::test]
async fn a_failed_dead_letter_is_an_error_and_the_message_comes_back_to_be_dead_lettered() {
    let (capture, _guard) = Capture::install();
    let broker = Flaky::default();
    broker.failures.dead_letters.store(1, Ordering::SeqCst);
    let bus = Bus::new(broker);
    let handler =
        |_: Received<Step>| async { Err::<(), HandlerError>(HandlerError::permanent("bad sku")) };
    let sub = bus
        .subscribe(handler)
        .group("billing")
        .retry(tiny_backoffs(1))
        .await
        .unwrap();
    let receipt = bus.publish(&Step { n: 1 }).await.unwrap();
    capture.wait_for(3).await;
    sub.shutdown().await;

    assert_eq!(
        capture.kinds(),
        [
            (Level::WARN, kind::HANDLER_ERROR.to_owned()),
            (Level::ERROR, kind::DEAD_LETTER_FAILED.to_owned()),
            (Level::WARN, kind::DEAD_LETTERED.to_owned()),
        ]
    );
    let events = capture.loud();
    let failed = &events[1];
    assert_about(failed, receipt.id().as_str(), Some("billing"));
    assert_eq!(
        failed.field("reason"),
        Some("handler refused the event for good: bad sku")
    );
    assert_eq!(failed.field("attempts"), Some("1"));
    assert_eq!(
        failed.field("error"),
        Some("flaky refused to dead-letter: the channel is closed")
    );
    // Back past the bound: dead-lettered without calling the handler again.
    let letter = &events[2];
    assert_about(letter, receipt.id().as_str(), Some("billing"));
    assert_eq!(letter.field("attempts"), Some("2"));
}

#[tokio::test]
async fn a_dedup_store_that_is_down_is_an_error_on_check_and_on_record() {
    let (capture, _guard) = Capture::install();
    let bus = Bus::memory();
    let handler = |_: Received<Step>| async {};
    let sub = bus
        .subscribe(handler)
        .group("billing")
        .dedup(Away)
        .await
        .unwrap();
    let receipt = bus.publish(&Step { n: 1 }).await.unwrap();
    capture.wait_for(2).await;
    sub.shutdown().await;

    assert_eq!(
        capture.kinds(),
        [
            (Level::ERROR, kind::DEDUP_CHECK_FAILED.to_owned()),
            (Level::ERROR, kind::DEDUP_RECORD_FAILED.to_owned()),
        ]
    );
    for event in capture.loud() {
        assert_about(&event, receipt.id().as_str(), Some("billing"));
        assert_eq!(
            event.field("error"),
            Some("dedup store failed: connection refused; check that the store is reachable")
        );
    }
}

/// A broker whose subscriptions end at once.
struct Ending;

struct EndingStream;

#[async_trait::async_trait]
impl DeliveryStream for EndingStream {
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        None
    }

    async fn close(&mut self) {}
}

#[async_trait::async_trait]
impl Broker for Ending {
    fn name(&self) -> &'static str {
        "ending"
    }

    fn capabilities(&self) -> crate::Capabilities {
        MemoryBroker::new().capabilities()
    }

    async fn publish(&self, _: &Topic, _: Message) -> Result<Confirmation, BrokerError> {
        Ok(Confirmation::held())
    }

    async fn subscribe(&self, _: SubscribeRequest) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        Ok(Box::new(EndingStream))
    }
}

#[tokio::test]
async fn a_subscription_the_broker_ends_is_an_error() {
    let (capture, _guard) = Capture::install();
    let bus = Bus::new(Ending);
    let handler = |_: Received<Step>| async {};
    let sub = bus.subscribe(handler).group("billing").await.unwrap();
    capture.wait_for(1).await;
    assert!(!sub.is_running());

    assert_eq!(
        capture.kinds(),
        [(Level::ERROR, kind::SUBSCRIPTION_ENDED.to_owned())]
    );
    let event = &capture.loud()[0];
    assert_eq!(event.field("messaging.destination.name"), Some(Step::TOPIC));
    assert_eq!(
        event.field("messaging.consumer.group.name"),
        Some("billing")
    );
    assert_eq!(
        event.field("error"),
        Some("ending connection is closed; connect again to go on")
    );
    sub.shutdown().await;
}

/// Unused subscribe options stay quiet: a subscription that starts and stops emits nothing.
#[tokio::test]
async fn starting_and_stopping_emits_nothing() {
    let (capture, _guard) = Capture::install();
    let bus = Bus::memory();
    let handler = |_: Received<Step>| async {};
    let sub = bus.subscribe(handler).start(StartFrom::New).await.unwrap();
    sub.shutdown().await;
    assert!(capture.loud().is_empty(), "{:?}", capture.loud());
}
