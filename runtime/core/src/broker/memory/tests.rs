//! What the in-process broker does beyond the conformance suite: bounded memory with
//! backpressure, a bounded history, prefetch, delayed redelivery, what a closed subscriber keeps.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{MemoryBroker, MemoryLimits};
use crate::broker::{
    Broker, BrokerError, Delivery, DeliveryStream, Message, Nack, StartFrom, SubscribeRequest,
};
use crate::{Confirmation, ContentType, Envelope, Topic};

fn topic() -> Topic {
    Topic::new("tests.memory.probe.v1").unwrap()
}

fn message(n: u8) -> Message {
    let envelope = Envelope::new(
        Arc::from("tests"),
        Cow::Borrowed("tests.memory.probe.v1"),
        ContentType::Protobuf,
        None,
    );
    Message::new(envelope, Bytes::from(vec![n]))
}

async fn subscribe(
    broker: &MemoryBroker,
    group: Option<&str>,
    start: StartFrom,
    prefetch: usize,
) -> Box<dyn DeliveryStream> {
    let request = SubscribeRequest {
        topic: topic(),
        group: group.map(str::to_owned),
        start,
        prefetch,
    };
    broker.subscribe(request).await.unwrap()
}

fn payload(delivery: &Delivery) -> u8 {
    delivery.message.as_ref().unwrap().data[0]
}

/// Payloads of every delivery ready now, each acked (an acker dropped unsettled would put its
/// message back).
fn drain(stream: &mut Box<dyn DeliveryStream>) -> Vec<u8> {
    std::iter::from_fn(|| stream.try_next())
        .map(|delivery| {
            let mut delivery = delivery.unwrap();
            delivery.acker.try_ack().unwrap().unwrap();
            payload(&delivery)
        })
        .collect()
}

fn limits(queue_capacity: usize, history: usize) -> MemoryLimits {
    MemoryLimits {
        queue_capacity,
        history,
        publish_wait: Duration::from_millis(50),
        ..MemoryLimits::default()
    }
}

/// A broker whose one subscriber's queue holds one message and is full with message 1; a
/// publish waits up to 30 s for room.
async fn full_queue() -> (MemoryBroker, Box<dyn DeliveryStream>) {
    let broker = MemoryBroker::with_limits(MemoryLimits {
        publish_wait: Duration::from_secs(30),
        ..limits(1, 0)
    });
    let stream = subscribe(&broker, None, StartFrom::New, 8).await;
    broker.publish(&topic(), message(1)).await.unwrap();
    (broker, stream)
}

/// Publishes message `n` in a task of its own.
fn publish_in_background(
    broker: &MemoryBroker,
    n: u8,
) -> tokio::task::JoinHandle<Result<Confirmation, BrokerError>> {
    let broker = broker.clone();
    tokio::spawn(async move { broker.publish(&topic(), message(n)).await })
}

#[tokio::test]
async fn a_full_queue_makes_publish_wait_then_fail() {
    let broker = MemoryBroker::with_limits(limits(2, 0));
    let mut stream = subscribe(&broker, None, StartFrom::New, 8).await;
    broker.publish(&topic(), message(1)).await.unwrap();
    broker.publish(&topic(), message(2)).await.unwrap();
    let full = broker.publish(&topic(), message(3)).await;
    assert!(
        matches!(
            full,
            Err(BrokerError::Full {
                broker: "memory",
                ..
            })
        ),
        "{full:?}"
    );
    let text = full.unwrap_err().to_string();
    assert!(
        text.contains("queue_capacity"),
        "says what to raise: {text}"
    );

    // The refused message was not queued: the subscriber sees 1, 2 and then 4.
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(payload(&first), 1);
    broker.publish(&topic(), message(4)).await.unwrap();
    first.acker.ack().await.unwrap();
    assert_eq!(drain(&mut stream), [2, 4]);
}

#[tokio::test]
async fn a_waiting_publish_goes_through_when_room_frees() {
    let (broker, mut stream) = full_queue().await;
    let waiting = publish_in_background(&broker, 2);
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(payload(&first), 1);
    waiting
        .await
        .unwrap()
        .expect("the publish waited for room, then went through");
    assert_eq!(payload(&stream.next().await.unwrap().unwrap()), 2);
}

#[tokio::test]
async fn a_slow_subscriber_does_not_hold_a_topic_without_subscribers() {
    // With nobody subscribed, publishing never waits: only the bounded history keeps messages.
    let broker = MemoryBroker::with_limits(limits(1, 2));
    for n in 0..10 {
        broker.publish(&topic(), message(n)).await.unwrap();
    }
    let mut stream = subscribe(&broker, None, StartFrom::Oldest, 8).await;
    assert_eq!(drain(&mut stream), [8, 9], "history keeps the last two");
}

#[tokio::test]
async fn history_is_a_bounded_ring_and_new_starts_after_it() {
    let broker = MemoryBroker::with_limits(limits(16, 3));
    for n in 0..5 {
        broker.publish(&topic(), message(n)).await.unwrap();
    }
    let mut oldest = subscribe(&broker, None, StartFrom::Oldest, 16).await;
    let mut new = subscribe(&broker, None, StartFrom::New, 16).await;
    broker.publish(&topic(), message(5)).await.unwrap();
    assert_eq!(drain(&mut oldest), [2, 3, 4, 5]);
    assert_eq!(drain(&mut new), [5]);
    assert!(
        !MemoryBroker::with_limits(limits(1, 0))
            .capabilities()
            .history
    );
}

#[tokio::test]
async fn prefetch_bounds_unsettled_deliveries() {
    let broker = MemoryBroker::new();
    let mut stream = subscribe(&broker, None, StartFrom::New, 2).await;
    for n in 0..3 {
        broker.publish(&topic(), message(n)).await.unwrap();
    }
    let first = stream.try_next().unwrap().unwrap();
    let _second = stream.try_next().unwrap().unwrap();
    assert!(
        stream.try_next().is_none(),
        "a third while two are unsettled"
    );
    first.acker.ack().await.unwrap();
    let mut third = stream.try_next().unwrap().unwrap();
    assert_eq!(payload(&third), 2);
    third.acker.try_ack().unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_nack_with_a_delay_comes_back_after_it() {
    let broker = MemoryBroker::new();
    let mut stream = subscribe(&broker, None, StartFrom::New, 8).await;
    broker.publish(&topic(), message(7)).await.unwrap();
    let delivery = stream.next().await.unwrap().unwrap();
    delivery
        .acker
        .nack(Nack::Retry(Duration::from_secs(10)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert!(stream.try_next().is_none(), "redelivered before its delay");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = stream
        .try_next()
        .expect("redelivered after its delay")
        .unwrap();
    assert_eq!((payload(&again), again.attempt), (7, 2));
}

#[tokio::test]
async fn a_plain_subscriber_that_leaves_stops_receiving_and_a_group_keeps_its_place() {
    let broker = MemoryBroker::new();
    let mut plain = subscribe(&broker, None, StartFrom::New, 8).await;
    let grouped = subscribe(&broker, Some("keepers"), StartFrom::New, 8).await;
    plain.close().await;
    drop(grouped);
    broker.publish(&topic(), message(1)).await.unwrap();
    assert!(plain.try_next().is_none(), "a closed stream yields nothing");
    assert!(plain.next().await.is_none());
    let mut rejoined = subscribe(&broker, Some("keepers"), StartFrom::New, 8).await;
    assert_eq!(drain(&mut rejoined), [1]);
}

#[tokio::test]
async fn a_failed_dead_letter_leaves_the_message_to_come_back() {
    // A 246-byte topic is valid, but `dlq.` makes it 250 bytes, which is not.
    let long = Topic::new(format!("tests.{}.v1", "a".repeat(237))).unwrap();
    assert_eq!(long.as_str().len(), 246);
    let broker = MemoryBroker::new();
    let request = SubscribeRequest {
        topic: long.clone(),
        group: None,
        start: StartFrom::New,
        prefetch: 8,
    };
    let mut stream = broker.subscribe(request).await.unwrap();
    broker.publish(&long, message(3)).await.unwrap();
    let delivery = stream.next().await.unwrap().unwrap();
    let letter = crate::broker::DeadLetter {
        reason: "r".into(),
        attempts: 1,
        topic: long.clone(),
    };
    let failed = delivery.acker.dead_letter(letter).await;
    assert!(
        matches!(failed, Err(BrokerError::Rejected { .. })),
        "{failed:?}"
    );
    let again = stream.try_next().expect("the message came back").unwrap();
    assert_eq!((payload(&again), again.attempt), (3, 2));
}

#[tokio::test]
async fn messages_a_consumer_gives_back_together_keep_their_order() {
    let broker = MemoryBroker::new();
    let mut dying = subscribe(&broker, Some("workers"), StartFrom::New, 8).await;
    for n in 1..=4 {
        broker.publish(&topic(), message(n)).await.unwrap();
    }
    // Three handed out, then the consumer dies holding them; the fourth still waits.
    let held: Vec<Delivery> = (0..3).map(|_| dying.try_next().unwrap().unwrap()).collect();
    assert_eq!(held.iter().map(payload).collect::<Vec<_>>(), [1, 2, 3]);
    drop(held);
    drop(dying);
    let mut survivor = subscribe(&broker, Some("workers"), StartFrom::New, 8).await;
    assert_eq!(drain(&mut survivor), [1, 2, 3, 4]);
}

#[tokio::test]
async fn a_waiting_publish_goes_through_when_the_full_subscriber_leaves() {
    let (broker, stream) = full_queue().await;
    let waiting = publish_in_background(&broker, 2);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiting.is_finished(), "the publish waits for room");
    drop(stream);
    let done = tokio::time::timeout(Duration::from_secs(5), waiting).await;
    done.expect("the publish stopped waiting once the queue was gone")
        .unwrap()
        .expect("and went through");
}

#[tokio::test]
async fn a_publish_given_up_while_waiting_is_no_longer_counted() {
    let (broker, mut stream) = full_queue().await;
    let waited = tokio::time::timeout(
        Duration::from_millis(20),
        broker.publish(&topic(), message(2)),
    )
    .await;
    assert!(waited.is_err(), "the publish was waiting when given up");
    let waiting = {
        let mut topics = crate::adapter::lock(&broker.inner.topics);
        let queue = &topics.state(&topic()).subscribers[0];
        crate::adapter::lock(&queue.state).waiting_publishers
    };
    assert_eq!(
        waiting, 0,
        "a publish that no longer waits is still counted"
    );
    assert_eq!(
        drain(&mut stream),
        [1],
        "the given-up message was never queued"
    );
}

#[tokio::test]
async fn a_topic_is_one_whether_its_name_is_static_or_made_at_run_time() {
    let broker = MemoryBroker::new();
    let mut stream = subscribe(&broker, None, StartFrom::New, 16).await;
    let other = Topic::new("tests.memory.other.v1").unwrap();
    let made = Topic::new(String::from("tests.memory.probe.v1")).unwrap();
    let mut other_stream = broker
        .subscribe(SubscribeRequest {
            topic: other.clone(),
            group: None,
            start: StartFrom::New,
            prefetch: 16,
        })
        .await
        .unwrap();
    // Static, another static, made at run time, static again: each lands on its own topic.
    for (n, to) in [(1, topic()), (2, other.clone()), (3, made), (4, topic())] {
        broker.publish(&to, message(n)).await.unwrap();
    }
    assert_eq!(drain(&mut stream), [1, 3, 4]);
    assert_eq!(drain(&mut other_stream), [2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_consumers_are_each_woken_by_a_publish_or_a_settlement() {
    // Two members of a group wait on an empty queue; a third stream waits for room under its
    // prefetch of 1. Each wait has to end: two publishes wake both members, and acking the
    // delivery the third holds (from another task) gives it room again.
    let broker = MemoryBroker::new();
    let mut members = Vec::new();
    for _ in 0..2 {
        let mut member = subscribe(&broker, Some("g"), StartFrom::New, 1).await;
        members.push(tokio::spawn(async move {
            let delivery = member.next().await.unwrap().unwrap();
            let got = payload(&delivery);
            delivery.acker.ack().await.unwrap();
            got
        }));
    }
    let mut full = subscribe(&broker, None, StartFrom::New, 1).await;
    for round in 0..50u8 {
        if round == 0 {
            // Let both members reach their wait before anything is published.
            tokio::time::sleep(Duration::from_millis(20)).await;
            broker.publish(&topic(), message(1)).await.unwrap();
            broker.publish(&topic(), message(2)).await.unwrap();
        } else {
            broker.publish(&topic(), message(round)).await.unwrap();
        }
        let first = full.next().await.unwrap().unwrap();
        let acker = first.acker;
        // The next call waits for room until the other task acks.
        let settle = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            acker.ack().await.unwrap();
        });
        broker.publish(&topic(), message(round)).await.unwrap();
        let second = tokio::time::timeout(Duration::from_secs(5), full.next())
            .await
            .expect("woken when room was made")
            .unwrap()
            .unwrap();
        settle.await.unwrap();
        second.acker.ack().await.unwrap();
    }
    let mut got = Vec::new();
    for member in members {
        got.push(
            tokio::time::timeout(Duration::from_secs(5), member)
                .await
                .expect("each member is woken")
                .unwrap(),
        );
    }
    got.sort_unstable();
    assert_eq!(got, [1, 2]);
}
