//! Derived events travel through the in-process broker: published with the topic, schema and
//! codec the attributes chose, and received as the same value.

use tidings::{Bus, ContentType, Envelope, Event, Received, Subscription};
use tokio::sync::mpsc;

/// A protobuf message on the default codec, keyed by its order id.
#[derive(Clone, PartialEq, prost::Message, Event)]
#[event(topic = "events.order.created.v1")]
pub struct Created {
    #[prost(string, tag = "1")]
    #[event(key)]
    pub order_id: String,
    #[prost(uint64, tag = "2")]
    pub total_cents: u64,
    #[prost(string, repeated, tag = "3")]
    pub skus: Vec<String>,
}

/// A serde struct, JSON only, with an optional key and a schema of its own.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, Event)]
#[event(topic = "events.payment.captured.v2", codec = "json")]
#[event(schema = "billing.PaymentCaptured")]
pub struct PaymentCaptured {
    pub payment_id: String,
    pub amount_cents: u64,
    #[event(key)]
    pub account: Option<String>,
}

/// Subscribes `E` on `bus` and returns the subscription with the channel its events arrive on.
async fn collect<E: Event>(bus: &Bus) -> (Subscription, mpsc::UnboundedReceiver<Received<E>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let subscription = bus
        .subscribe(move |event: Received<E>| {
            let sent = tx.send(event).map_err(|_| "the test stopped listening");
            async move { sent }
        })
        .await
        .expect("subscribing to the in-process broker");
    (subscription, rx)
}

async fn next<E>(rx: &mut mpsc::UnboundedReceiver<Received<E>>) -> (E, Envelope) {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("the subscription delivers")
        .into_parts()
}

#[tokio::test]
async fn prost_struct_publishes_and_receives_as_protobuf() {
    let bus = Bus::memory();
    let (subscription, mut rx) = collect::<Created>(&bus).await;
    let sent = Created {
        order_id: "o-17".into(),
        total_cents: 4250,
        skus: vec!["a-1".into()],
    };

    bus.publish(&sent).await.expect("publish");

    let (received, envelope) = next(&mut rx).await;
    assert_eq!(received, sent);
    assert_eq!(envelope.event_type, "events.order.created.v1");
    assert_eq!(envelope.schema(), Some("events.order.v1.Created"));
    assert_eq!(envelope.content_type(), Some(ContentType::Protobuf));
    assert_eq!(envelope.partition_key.as_deref(), Some("o-17"));
    subscription.shutdown().await;
}

#[tokio::test]
async fn serde_struct_publishes_and_receives_as_json() {
    let bus = Bus::memory();
    let (subscription, mut rx) = collect::<PaymentCaptured>(&bus).await;
    let keyed = PaymentCaptured {
        payment_id: "p-1".into(),
        amount_cents: 990,
        account: Some("acct-9".into()),
    };
    let unkeyed = PaymentCaptured {
        payment_id: "p-2".into(),
        amount_cents: 5,
        account: None,
    };

    bus.publish(&keyed).await.expect("publish");
    bus.publish(&unkeyed).await.expect("publish");

    let (received, envelope) = next(&mut rx).await;
    assert_eq!(received, keyed);
    assert_eq!(envelope.event_type, "events.payment.captured.v2");
    assert_eq!(envelope.schema(), Some("billing.PaymentCaptured"));
    assert_eq!(envelope.content_type(), Some(ContentType::Json));
    assert_eq!(envelope.partition_key.as_deref(), Some("acct-9"));
    let (received, envelope) = next(&mut rx).await;
    assert_eq!(received, unkeyed);
    assert_eq!(envelope.partition_key, None);
    subscription.shutdown().await;
}

/// Two services declaring the same topic on structs of their own, named differently, one
/// writing JSON and the other reading protobuf first: the default schema name comes from the
/// topic, so they agree and the event goes through.
mod publisher {
    #[derive(
        Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, tidings::Event,
    )]
    #[event(topic = "events.stock.item_moved.v1", codec = "json+protobuf")]
    pub struct StockItemMoved {
        #[prost(string, tag = "1")]
        pub sku: String,
        #[prost(int32, tag = "2")]
        pub delta: i32,
    }
}

mod consumer {
    #[derive(
        Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, tidings::Event,
    )]
    #[event(topic = "events.stock.item_moved.v1", codec = "protobuf+json")]
    pub struct Moved {
        #[prost(string, tag = "1")]
        pub sku: String,
        #[prost(int32, tag = "2")]
        pub delta: i32,
    }
}

#[tokio::test]
async fn structs_declaring_the_same_topic_agree_on_the_schema() {
    assert_eq!(
        <publisher::StockItemMoved as Event>::SCHEMA,
        "events.stock.v1.ItemMoved"
    );
    assert_eq!(
        <consumer::Moved as Event>::SCHEMA,
        <publisher::StockItemMoved as Event>::SCHEMA
    );
    let bus = Bus::memory();
    let (subscription, mut rx) = collect::<consumer::Moved>(&bus).await;

    bus.publish(&publisher::StockItemMoved {
        sku: "a-1".into(),
        delta: -3,
    })
    .await
    .expect("publish");

    let (received, envelope) = next(&mut rx).await;
    assert_eq!(
        received,
        consumer::Moved {
            sku: "a-1".into(),
            delta: -3
        }
    );
    assert_eq!(envelope.content_type(), Some(ContentType::Json));
    subscription.shutdown().await;
}

/// The same topic under another schema name: a subscriber refuses the other schema's message
/// instead of decoding it, and goes on to the next.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, Event)]
#[event(topic = "events.payment.captured.v2", codec = "json")]
pub struct LegacyCaptured {
    pub payment_id: String,
    pub amount_cents: u64,
    pub account: Option<String>,
}

#[tokio::test]
async fn a_schema_override_keeps_types_apart() {
    assert_eq!(
        <LegacyCaptured as Event>::SCHEMA,
        "events.payment.v2.Captured"
    );
    let bus = Bus::memory();
    let (legacy_sub, mut legacy) = collect::<LegacyCaptured>(&bus).await;
    let (current_sub, mut current) = collect::<PaymentCaptured>(&bus).await;
    let first = PaymentCaptured {
        payment_id: "p-3".into(),
        amount_cents: 1,
        account: None,
    };
    let old = LegacyCaptured {
        payment_id: "p-4".into(),
        amount_cents: 2,
        account: None,
    };
    let last = PaymentCaptured {
        payment_id: "p-5".into(),
        amount_cents: 3,
        account: None,
    };

    bus.publish(&first).await.expect("publish");
    bus.publish(&old).await.expect("publish");
    bus.publish(&last).await.expect("publish");

    // Every subscriber gets only the events of its own schema: the others, on the same topic,
    // were refused although their JSON would have decoded.
    assert_eq!(next(&mut legacy).await.0, old);
    assert_eq!(next(&mut current).await.0, first);
    assert_eq!(next(&mut current).await.0, last);
    legacy_sub.shutdown().await;
    current_sub.shutdown().await;
}

/// Tuple and unit structs are events too; the key can be a tuple field.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, Event)]
#[event(topic = "events.user.renamed.v1", codec = "json")]
pub struct Renamed(#[event(key)] pub u64, pub String);

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, Event)]
#[event(topic = "events.clock.tick.v1", codec = "json")]
pub struct Tick;

#[tokio::test]
async fn tuple_and_unit_structs_travel() {
    assert_eq!(Renamed(42, "ada".into()).key().as_deref(), Some("42"));
    assert_eq!(Tick.key(), None);
    let bus = Bus::memory();
    let (renamed_sub, mut renamed) = collect::<Renamed>(&bus).await;
    let (tick_sub, mut ticks) = collect::<Tick>(&bus).await;

    bus.publish(&Renamed(42, "ada".into()))
        .await
        .expect("publish");
    bus.publish(&Tick).await.expect("publish");

    let (received, envelope) = next(&mut renamed).await;
    assert_eq!(received, Renamed(42, "ada".into()));
    assert_eq!(envelope.partition_key.as_deref(), Some("42"));
    assert_eq!(next(&mut ticks).await.0, Tick);
    renamed_sub.shutdown().await;
    tick_sub.shutdown().await;
}

/// The data a producer sends: the payload of the wrapper below.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct StorageObject {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint64, tag = "2")]
    pub size: u64,
}

/// An event that stands for its one field: only the field travels.
#[derive(Clone, PartialEq, prost::Message, Event)]
#[event(topic = "storage.object.finalized.v1", codec = "protobuf+json")]
#[event(
    type = "com.example.storage.object.v1.finalized",
    schema = "com.example.StorageObject"
)]
pub struct ObjectFinalized {
    #[prost(message, optional, tag = "1")]
    #[event(payload)]
    pub data: Option<StorageObject>,
}

/// The same event, declared by a service that sends the payload's shape itself.
#[derive(Clone, PartialEq, prost::Message, Event)]
#[event(topic = "storage.object.finalized.v1")]
#[event(
    type = "com.example.storage.object.v1.finalized",
    schema = "com.example.StorageObject"
)]
pub struct Finalized {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint64, tag = "2")]
    pub size: u64,
}

#[tokio::test]
async fn a_wrapper_sends_its_payload_alone_and_receives_it_wrapped() {
    let bus = Bus::memory();
    let (wrapped_sub, mut wrapped) = collect::<ObjectFinalized>(&bus).await;
    let (plain_sub, mut plain) = collect::<Finalized>(&bus).await;
    let object = StorageObject {
        name: "photo.jpg".into(),
        size: 1024,
    };

    bus.publish(&ObjectFinalized {
        data: Some(object.clone()),
    })
    .await
    .expect("publish");

    let (received, envelope) = next(&mut plain).await;
    assert_eq!(
        received,
        Finalized {
            name: "photo.jpg".into(),
            size: 1024
        },
        "the wire carries the payload, not a message around it"
    );
    assert_eq!(
        envelope.event_type,
        "com.example.storage.object.v1.finalized"
    );
    assert_eq!(envelope.schema(), Some("com.example.StorageObject"));
    let (received, _) = next(&mut wrapped).await;
    assert_eq!(tidings::Wrapper::into_payload(received), object);

    bus.publish(&Finalized {
        name: "b.png".into(),
        size: 7,
    })
    .await
    .expect("publish");
    let delivered = tokio::time::timeout(std::time::Duration::from_secs(10), wrapped.recv())
        .await
        .expect("an event within 10 s")
        .expect("the subscription delivers")
        .map(tidings::Wrapper::into_payload);
    assert_eq!(delivered.name, "b.png");
    assert_eq!(delivered.size, 7);
    next(&mut plain).await;
    wrapped_sub.shutdown().await;
    plain_sub.shutdown().await;
}
