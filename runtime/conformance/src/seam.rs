//! Driving a broker through the seam directly, below the typed layer, for adapter tests that
//! need to hold, nack or dead-letter deliveries one by one.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tidings_core::broker::{Delivery, DeliveryStream, Message};
use tidings_core::{ContentType, Envelope, Topic};

/// A topic of its own for one test run: `tests.{area}.{name}{nanoseconds}.v1`.
pub fn unique_topic(area: &str, name: &str) -> Topic {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_nanos();
    Topic::new(format!("tests.{area}.{name}{now}.v1")).expect("a valid topic")
}

/// A CloudEvents message on `topic` carrying `data`.
pub fn message(topic: &Topic, data: impl Into<Bytes>) -> Message {
    let envelope = Envelope::new(
        Arc::from("tests"),
        Cow::Owned(topic.to_string()),
        ContentType::Protobuf,
        None,
    );
    Message::new(envelope, data.into())
}

/// The next delivery of `stream`, failing the test after `patience` without one.
pub async fn next(stream: &mut Box<dyn DeliveryStream>, patience: Duration) -> Delivery {
    tokio::time::timeout(patience, stream.next())
        .await
        .unwrap_or_else(|_| panic!("no delivery within {patience:?}"))
        .expect("the stream is open")
        .expect("a delivery")
}

/// The first byte of a delivery's data, which these tests use as its number.
pub fn payload(delivery: &Delivery) -> u8 {
    delivery
        .message
        .as_ref()
        .expect("a CloudEvents message")
        .data[0]
}
