//! Invalid topics are refused by `Bus::publish` and `Bus::subscribe` before anything reaches a
//! broker: a broker that records every call must see none; so are events above the size limit.
//! And a publish's receipt names the id the subscriber receives.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::broker::{DeliveryStream, Message, SubscribeRequest};
use crate::topic::VersionError;
use crate::{
    Broker, BrokerError, Bus, Capabilities, Confirmation, DEFAULT_MAX_MESSAGE_SIZE, Event,
    HandlerError, MemoryBroker, MemoryLimits, Protobuf, PublishError, Received, SubscribeError,
    Topic, TopicError,
};

/// A `MemoryBroker` that counts the calls it gets.
#[derive(Clone, Default)]
struct Recording {
    inner: MemoryBroker,
    calls: Arc<AtomicUsize>,
}

impl Recording {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn record(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Broker for Recording {
    fn name(&self) -> &'static str {
        "recording"
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn publish(&self, topic: &Topic, message: Message) -> Result<Confirmation, BrokerError> {
        self.record();
        self.inner.publish(topic, message).await
    }

    fn try_publish(
        &self,
        topic: &Topic,
        message: Message,
    ) -> Result<Result<Confirmation, BrokerError>, Message> {
        self.record();
        self.inner.try_publish(topic, message)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        self.record();
        self.inner.subscribe(request).await
    }
}

/// A topic of `N` bytes: `events.`, letters, `.v1`.
const fn long_topic<const N: usize>() -> [u8; N] {
    let mut bytes = [b'a'; N];
    let (head, tail) = (b"events.", b".v1");
    let mut i = 0;
    while i < head.len() {
        bytes[i] = head[i];
        i += 1;
    }
    let mut i = 0;
    while i < tail.len() {
        bytes[N - tail.len() + i] = tail[i];
        i += 1;
    }
    bytes
}

const fn ascii(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => panic!("ASCII"),
    }
}

/// 250 bytes, one over the limit.
const LONG: &str = ascii(&const { long_topic::<250>() });
/// 246 bytes: valid, but `dlq.` and it make 250.
const NO_ROOM: &str = ascii(&const { long_topic::<246>() });

/// One event type per topic under test: the topic is a constant of the type.
macro_rules! events {
    ($($name:ident = $topic:expr;)*) => {$(
        #[derive(Clone, PartialEq, prost::Message)]
        struct $name {
            #[prost(string, tag = "1")]
            note: String,
        }

        impl Event for $name {
            const TOPIC: &'static str = $topic;
            const SCHEMA: &'static str = "tests.v1.Probe";
            const DATA_SCHEMA: &'static str = "proto:tests.v1.Probe";
            type Codec = Protobuf;
        }
    )*};
}

events! {
    Upper = "events.Order.created.v1";
    Star = "events.order.*.v1";
    Gt = "events.order.>.v1";
    Hash = "events.order.#.v1";
    Plus = "events.order.+.v1";
    Empty = "events..created.v1";
    NoVersion = "events.order.created";
    V0 = "events.order.created.v0";
    UpperV = "events.order.created.V1";
    Bare = "events.order.created.1";
    Space = "events.order created.v1";
    Tab = "events.order.created\t.v1";
    TooLong = LONG;
    NoRoomForDeadLetters = NO_ROOM;
    Valid = "events.order.created.v1";
}

async fn refused<E: Event + Default>(bus: &Bus) -> TopicError {
    let published = bus.publish(&E::default()).await;
    let Err(PublishError::Topic(publish_error)) = published else {
        panic!(
            "{:?}: publish was not refused for its topic: {published:?}",
            E::TOPIC
        );
    };
    let with_options = bus
        .publish_with(&E::default())
        .key("k")
        .correlation_id("c")
        .await;
    assert!(matches!(with_options, Err(PublishError::Topic(e)) if e == publish_error));
    let handler = |_: Received<E>| async { Ok::<(), HandlerError>(()) };
    let subscribed = bus.subscribe(handler).await;
    let Err(SubscribeError::Topic(subscribe_error)) = subscribed else {
        panic!("{:?}: subscribe was not refused for its topic", E::TOPIC);
    };
    assert_eq!(subscribe_error, publish_error, "{:?}", E::TOPIC);
    publish_error
}

#[tokio::test]
async fn invalid_topics_never_reach_the_broker() {
    let broker = Recording::default();
    let bus = Bus::new(broker.clone());
    let table = [
        (
            "upper case",
            refused::<Upper>(&bus).await,
            TopicError::UpperCase { at: 7, ch: 'O' },
        ),
        (
            "wildcard *",
            refused::<Star>(&bus).await,
            TopicError::Wildcard { at: 13, ch: '*' },
        ),
        (
            "wildcard >",
            refused::<Gt>(&bus).await,
            TopicError::Wildcard { at: 13, ch: '>' },
        ),
        (
            "wildcard #",
            refused::<Hash>(&bus).await,
            TopicError::Wildcard { at: 13, ch: '#' },
        ),
        (
            "wildcard +",
            refused::<Plus>(&bus).await,
            TopicError::Wildcard { at: 13, ch: '+' },
        ),
        (
            "empty segment",
            refused::<Empty>(&bus).await,
            TopicError::EmptySegment { at: 7 },
        ),
        (
            "missing version",
            refused::<NoVersion>(&bus).await,
            TopicError::BadVersion {
                at: 13,
                reason: VersionError::MissingV,
            },
        ),
        (
            "version v0",
            refused::<V0>(&bus).await,
            TopicError::BadVersion {
                at: 21,
                reason: VersionError::ZeroMajor,
            },
        ),
        (
            "version V1",
            refused::<UpperV>(&bus).await,
            TopicError::UpperCase { at: 21, ch: 'V' },
        ),
        (
            "version 1",
            refused::<Bare>(&bus).await,
            TopicError::SegmentStart { at: 21 },
        ),
        (
            "space",
            refused::<Space>(&bus).await,
            TopicError::Whitespace { at: 12 },
        ),
        (
            "tab",
            refused::<Tab>(&bus).await,
            TopicError::Whitespace { at: 20 },
        ),
        (
            "250 bytes",
            refused::<TooLong>(&bus).await,
            TopicError::TooLong { len: 250 },
        ),
    ];
    for (case, got, expected) in table {
        assert_eq!(got, expected, "{case}");
    }
    assert_eq!(broker.calls(), 0, "an invalid topic reached the broker");

    // The same bus and broker carry a valid topic, so the count above can move.
    bus.publish(&Valid::default())
        .await
        .expect("a valid topic is published");
    assert!(broker.calls() > 0);
}

#[tokio::test]
async fn a_refusal_says_where_and_what_to_fix() {
    let bus = Bus::new(Recording::default());
    let error = bus.publish(&Upper::default()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot publish: upper-case `O` at byte 7; topics are lowercase (write `o`)"
    );
}

#[tokio::test]
async fn a_topic_without_room_for_its_dead_letter_topic_is_refused_at_subscribe() {
    let broker = Recording::default();
    let bus = Bus::new(broker.clone());
    let handler = |_: Received<NoRoomForDeadLetters>| async { Ok::<(), HandlerError>(()) };
    let refused = bus.subscribe(handler).await.unwrap_err();
    assert!(
        matches!(
            refused,
            SubscribeError::DeadLetterTopic(TopicError::TooLong { len: 250 })
        ),
        "{refused:?}"
    );
    assert_eq!(
        refused.to_string(),
        "cannot subscribe: its dead-letter topic breaks the topic rule: the topic is 250 bytes \
         long; at most 249 bytes are allowed (Kafka's limit); shorten the topic by at least 4 \
         bytes to leave room for the `dlq.` prefix"
    );
    assert_eq!(broker.calls(), 0, "nothing was asked of the broker");
    // Publishing it is fine: nothing is dead-lettered on that side.
    bus.publish(&NoRoomForDeadLetters::default()).await.unwrap();
}

/// A `MemoryBroker` that cannot confirm without waiting: every publish goes through
/// `Broker::publish` and the bus's wait for the confirmation, not the `try_publish` shortcut.
#[derive(Clone, Default)]
struct WaitsToConfirm(MemoryBroker);

#[async_trait]
impl Broker for WaitsToConfirm {
    fn name(&self) -> &'static str {
        "waits-to-confirm"
    }

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }

    async fn publish(&self, topic: &Topic, message: Message) -> Result<Confirmation, BrokerError> {
        self.0.publish(topic, message).await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        self.0.subscribe(request).await
    }
}

/// Publishes one event plainly and one with a key, and checks that each receipt names the id the
/// handler receives and says nothing the in-process broker does not say.
async fn receipts_name_the_received_ids(bus: Bus) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // A handler that returns `()`.
    let handler = move |event: Received<Valid>| {
        let tx = tx.clone();
        async move {
            let (event, envelope) = event.into_parts();
            let _ = tx.send((event.note, envelope));
        }
    };
    let sub = bus.subscribe(handler).await.unwrap();
    let plain = bus
        .publish(&Valid {
            note: "plain".into(),
        })
        .await
        .unwrap();
    let keyed = bus
        .publish_with(&Valid {
            note: "keyed".into(),
        })
        .key("order-7")
        .await
        .unwrap();
    assert_ne!(plain.id(), keyed.id(), "each publish has an id of its own");

    let mut received = std::collections::BTreeMap::new();
    while received.len() < 2 {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
        let (note, envelope) = next
            .expect("both events are received within 5 s")
            .expect("the handler is running");
        assert!(
            received.insert(note, envelope).is_none(),
            "an event was received twice"
        );
    }
    sub.shutdown().await;

    let plain_envelope = &received["plain"];
    assert_eq!(plain.id(), &plain_envelope.id);
    assert_eq!(plain_envelope.partition_key, None);
    let keyed_envelope = &received["keyed"];
    assert_eq!(keyed.id(), &keyed_envelope.id);
    assert_eq!(keyed_envelope.partition_key.as_deref(), Some("order-7"));
    for receipt in [&plain, &keyed] {
        assert_eq!(
            receipt.position(),
            None,
            "the in-process broker has no positions"
        );
        assert!(
            !receipt.duplicate(),
            "the in-process broker drops no duplicates"
        );
    }
}

#[tokio::test]
async fn a_receipt_names_the_id_the_handler_receives() {
    receipts_name_the_received_ids(Bus::memory()).await;
}

#[tokio::test]
async fn a_receipt_names_the_id_the_handler_receives_when_the_broker_confirms_later() {
    let broker = WaitsToConfirm::default();
    // The shortcut is not taken: the receipt comes from the wait for the confirmation.
    let message = Message::new(
        crate::Envelope::new(
            std::sync::Arc::from("tests"),
            std::borrow::Cow::Borrowed(Valid::TOPIC),
            crate::ContentType::Protobuf,
            None,
        ),
        bytes::Bytes::new(),
    );
    assert!(
        broker
            .try_publish(&Topic::of::<Valid>().unwrap(), message)
            .is_err()
    );
    receipts_name_the_received_ids(Bus::new(broker)).await;
}

/// The size `bus` gives the message of `event`, give or take the 10 bytes the `time` of a fresh
/// envelope may take more or less.
fn prepared_size(bus: &Bus, event: &Valid) -> usize {
    let unlimited = bus.clone().with_max_message_size(usize::MAX);
    unlimited.prepare(event).unwrap().1.size()
}

#[tokio::test]
async fn an_event_above_the_limit_never_reaches_the_broker() {
    let broker = Recording::default();
    let bus = Bus::new(broker.clone());
    assert_eq!(bus.max_message_size(), DEFAULT_MAX_MESSAGE_SIZE);
    let event = Valid {
        note: "x".repeat(DEFAULT_MAX_MESSAGE_SIZE),
    };
    let expected = prepared_size(&bus, &event);
    // The key is an attribute too.
    let keyed = expected + "partitionkey".len() + "k".len();
    let refusals = [
        (bus.publish(&event).await.map(drop), expected),
        (bus.publish_with(&event).key("k").await.map(drop), keyed),
        (bus.prepare(&event).map(drop), expected),
    ];
    for (refused, expected) in refusals {
        let Err(PublishError::TooLarge { topic, size, limit }) = refused else {
            panic!("not refused as too large: {refused:?}");
        };
        assert_eq!(topic.as_str(), Valid::TOPIC);
        assert_eq!(limit, DEFAULT_MAX_MESSAGE_SIZE);
        assert!(
            size.abs_diff(expected) <= 10,
            "{size} bytes, not about {expected}"
        );
    }
    assert_eq!(broker.calls(), 0, "nothing reached the broker");

    // A bus that allows it publishes it.
    let larger = bus.with_max_message_size(2 * DEFAULT_MAX_MESSAGE_SIZE);
    assert_eq!(larger.max_message_size(), 2 * DEFAULT_MAX_MESSAGE_SIZE);
    larger.publish(&event).await.unwrap();
    assert_eq!(broker.calls(), 1);
}

#[tokio::test]
async fn the_bus_takes_its_limit_from_the_broker() {
    assert_eq!(Bus::memory().max_message_size(), DEFAULT_MAX_MESSAGE_SIZE);
    let broker = MemoryBroker::with_limits(MemoryLimits {
        max_message_size: 300,
        ..MemoryLimits::default()
    });
    let bus = Bus::new(broker);
    assert_eq!(bus.max_message_size(), 300);
    let small = Valid {
        note: String::new(),
    };
    let padding = 300 - prepared_size(&bus, &small) - 30;
    bus.publish(&Valid {
        note: "x".repeat(padding),
    })
    .await
    .unwrap();
    let refused = bus
        .publish(&Valid {
            note: "x".repeat(padding + 60),
        })
        .await
        .unwrap_err();
    let PublishError::TooLarge { size, .. } = &refused else {
        panic!("not refused as too large: {refused}");
    };
    assert_eq!(
        refused.to_string(),
        format!(
            "cannot publish to {}: the event is {size} bytes of data and attributes, above the \
             limit of 300; send a smaller event (large content belongs in a store, the event \
             carrying a reference to it), or raise the limit with `Bus::with_max_message_size` \
             on publishers and subscribers alike",
            Valid::TOPIC,
        )
    );
}
