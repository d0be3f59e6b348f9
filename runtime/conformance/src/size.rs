//! The case on the size limit: a message above it is refused at publish, before anything
//! reaches the broker, and dead-lettered on receipt while the consumer goes on.

use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use tidings_core::broker::{DeliveryStream, Message};
use tidings_core::envelope::{attr, format_time};
use tidings_core::{Bus, Event, PublishError, StartFrom, Topic};

use super::probe::{Probe, SizeLimit, decode_probe, probe_message, run_id};
use super::support::{
    bus, collector, connect, must, next_delivery, next_of_run, subscribe_raw, take,
};
use super::{BrokerFactory, Outcome};

/// The limit the subscription of the case sets: small enough for every broker's server to
/// carry a message one byte over it.
const LIMIT: usize = 64 * 1024;

/// The shortest `time` attribute (`1970-01-01T00:00:00Z`): its fraction of a second is written
/// without trailing zeros, so a fresh envelope's `time` takes 0 to 10 bytes more.
const SHORTEST_TIME: usize = 20;

/// The most a fresh envelope's `time` takes beyond [`SHORTEST_TIME`]: a dot and nine digits.
const TIME_FRACTION: usize = 10;

/// Messages above the size limit: an event one byte over a bus's limit (the broker's by default,
/// or one set on the bus) is refused at publish with an error naming its size and the limit,
/// and nothing reaches the broker; a message one byte over a subscription's limit is
/// dead-lettered on receipt with a reason naming both, while a message exactly at the limit and
/// the event after it are handled.
pub async fn size_limit(factory: &impl BrokerFactory) -> Outcome {
    let patience = factory.patience();
    let run = run_id();
    let broker = connect(factory).await;
    let topic = must(Topic::of::<SizeLimit>(), "the topic");
    let dead_topic = must(topic.dead_letter(), "the dead-letter topic");
    let mut watch = subscribe_raw(&broker, &topic, None, StartFrom::New).await;
    let mut dead = subscribe_raw(&broker, &dead_topic, None, StartFrom::New).await;
    let default_bus = bus(broker.clone());
    assert_eq!(
        default_bus.max_message_size(),
        broker.max_message_size(),
        "a bus takes its limit from the broker unless told otherwise"
    );
    let limited = default_bus.clone().with_max_message_size(LIMIT);
    let (handler, mut inbox) = collector::<SizeLimit>(&run);
    let sub = must(
        default_bus.subscribe(handler).max_message_size(LIMIT).await,
        "subscribing",
    );

    // Every message of the run has the run as its key, so the broker keeps them in order.
    refused_at_publish(&default_bus, &topic, &run, 0).await;
    refused_at_publish(&limited, &topic, &run, 1).await;
    let at_limit = message_of(&run, 2, LIMIT);
    let over = message_of(&run, 3, LIMIT + 1);
    for message in [&at_limit, &over] {
        must(
            broker.publish(&topic, message.clone()).await,
            "publishing on the broker seam",
        );
    }
    must(
        limited.publish(&SizeLimit::new(&run, 4, &run)).await,
        "publishing an event within the limit",
    );

    let mut arrived = Vec::new();
    for _ in 0..3 {
        arrived.push(next_probe_of_run(&mut watch, &run, patience).await);
    }
    assert_eq!(
        arrived,
        [2, 3, 4],
        "the events refused at publish never reached the broker"
    );
    let handled = take(
        &mut inbox,
        2,
        patience,
        "size_limit: the events within the limit",
    )
    .await;
    assert_eq!(
        handled.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [2, 4],
        "the message at the limit and the event after the one over it are handled"
    );
    let (letter, _) = next_of_run(&mut dead, &run, patience, "size_limit: the dead letter").await;
    assert_eq!(
        letter.envelope.id, over.envelope.id,
        "the message over the limit is dead-lettered"
    );
    let reason = letter
        .envelope
        .extension(attr::DEAD_LETTER_REASON)
        .unwrap_or_default();
    for needle in [
        "too large",
        &format!("{} bytes", LIMIT + 1),
        &format!("limit of {LIMIT}"),
    ] {
        assert!(
            reason.contains(needle),
            "reason {reason:?} should name {needle:?}"
        );
    }
    assert_eq!(
        letter.envelope.extension(attr::DEAD_LETTER_ATTEMPTS),
        Some("1")
    );
    assert_eq!(letter.data, over.data, "the dead letter keeps the data");
    assert!(
        inbox.try_recv().is_err(),
        "the message over the limit reached the handler"
    );
    assert!(sub.is_running(), "the consumer stopped");
    sub.shutdown().await;
    Outcome::Passed
}

/// Publishes, through `bus`, probe `seq` of run `run` made one byte larger than the bus's limit
/// (up to [`TIME_FRACTION`] more, with the `time` of its fresh envelope), and checks that it is
/// refused with its size and the limit.
async fn refused_at_publish(bus: &Bus, topic: &Topic, run: &str, seq: u64) {
    let limit = bus.max_message_size();
    let unlimited = bus.clone().with_max_message_size(usize::MAX);
    let shortest = |event: &SizeLimit| {
        let (_, message) = must(unlimited.prepare(event), "preparing a probe");
        let time = message.envelope.time.map_or(0, |t| format_time(t).len());
        message.size() - time + SHORTEST_TIME
    };
    let event = padded(SizeLimit::new(run, seq, run), limit + 1, shortest);
    let error = match bus.publish(&event).await {
        Err(error) => error,
        Ok(receipt) => panic!(
            "an event one byte over the limit of {limit} was published: {}",
            receipt.id()
        ),
    };
    let PublishError::TooLarge {
        topic: refused,
        size,
        limit: named,
    } = &error
    else {
        panic!("an event one byte over the limit of {limit} failed otherwise: {error}");
    };
    assert_eq!(refused, topic);
    assert_eq!(*named, limit, "the error names the bus's limit");
    assert!(
        (limit + 1..=limit + 1 + TIME_FRACTION).contains(size),
        "the error names the event's size, {size} bytes, for a limit of {limit}"
    );
    let text = error.to_string();
    assert!(
        text.contains("above the limit") && text.contains("with_max_message_size"),
        "the error says what to do: {text}"
    );
}

/// A message of probe `seq` of run `run`, keyed by the run, of exactly `size` bytes.
fn message_of(run: &str, seq: u64, size: usize) -> Message {
    let mut envelope = (*probe_message::<SizeLimit>(run, seq).envelope).clone();
    envelope.partition_key = Some(run.to_owned());
    let attributes = envelope.size();
    let event = padded(SizeLimit::new(run, seq, ""), size, |event| {
        attributes + event.encoded_len()
    });
    let message = Message::new(envelope, Bytes::from(event.encode_to_vec()));
    assert_eq!(message.size(), size);
    message
}

/// `event` with as much padding as makes `measure` say it is `size` bytes.
fn padded<E: Probe>(mut event: E, size: usize, measure: impl Fn(&E) -> usize) -> E {
    // The padding's length prefix grows with it, so this takes a few turns.
    for _ in 0..8 {
        let now = measure(&event);
        if now == size {
            return event;
        }
        let padding = event.padding_mut();
        let len = (padding.len() + size)
            .checked_sub(now)
            .unwrap_or_else(|| panic!("a probe is larger than {size} bytes without padding"));
        padding.resize(len, b'.');
    }
    panic!("no padding makes a probe {size} bytes");
}

/// The number of the next probe of run `run` that `stream` delivers, whatever its attributes;
/// other runs' messages are skipped. Every delivery is acked.
async fn next_probe_of_run(
    stream: &mut Box<dyn DeliveryStream>,
    run: &str,
    patience: Duration,
) -> u64 {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let delivery = next_delivery(stream, left, "size_limit: what reached the broker").await;
        must(delivery.acker.ack().await, "acking a delivery");
        let probe = match &delivery.message {
            Ok(message) if message.envelope.event_type == SizeLimit::TOPIC => {
                decode_probe(&message.data)
            }
            _ => None,
        };
        if let Some((of_run, seq)) = probe
            && of_run == run
        {
            return seq;
        }
    }
}
