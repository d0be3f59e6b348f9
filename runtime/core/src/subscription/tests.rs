//! What the consumer does when the broker fails it: a dead letter that cannot be moved calls no
//! handler past the bound and makes no busy loop; a subscription the broker ends says why. And
//! when its handler fails before it has begun: a panic while making the handler's future is an
//! attempt that failed like any other.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::broker::{Message, StartFrom, SubscribeRequest};
use crate::{
    Broker, BrokerError, Bus, ContentType, Envelope, Event, HandlerError, MemoryBroker,
    MemoryLimits, Protobuf, Received, RetryPolicy, Topic,
};

#[derive(Clone, PartialEq, prost::Message)]
struct Step {
    #[prost(uint32, tag = "1")]
    n: u32,
}

impl Event for Step {
    const TOPIC: &'static str = "tests.consumer.step.v1";
    const SCHEMA: &'static str = "tests.consumer.v1.Step";
    type Codec = Protobuf;
}

/// Waits until `done` holds, or `limit` passed; the caller asserts what it expects either way.
async fn settle_within(limit: Duration, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn quick_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(max_attempts)
        .initial_backoff(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(50))
}

#[tokio::test]
async fn a_dead_letter_that_fails_neither_reruns_the_handler_nor_spins() {
    let broker = MemoryBroker::with_limits(MemoryLimits {
        queue_capacity: 1,
        history: 0,
        publish_wait: Duration::from_millis(10),
    });
    // A group of the dead-letter topic that nobody consumes any more, its queue full: every dead
    // letter of `Step` is refused.
    let dead_letters = Topic::of::<Step>().unwrap().dead_letter().unwrap();
    let request = SubscribeRequest {
        topic: dead_letters.clone(),
        group: Some("gone".into()),
        start: StartFrom::New,
        prefetch: 1,
    };
    drop(broker.subscribe(request).await.unwrap());
    let filler = Envelope::new(
        Arc::from("tests"),
        Cow::Borrowed("tests.filler.v1"),
        ContentType::Protobuf,
        None,
    );
    broker
        .publish(&dead_letters, Message::new(filler, Bytes::new()))
        .await
        .unwrap();

    let bus = Bus::new(broker);
    let calls = Arc::new(AtomicU32::new(0));
    let handler = {
        let calls = calls.clone();
        move |_: Received<Step>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), HandlerError>("always fails".into()) }
        }
    };
    let sub = bus
        .subscribe(handler)
        .retry(quick_retries(2))
        .await
        .unwrap();
    bus.publish(&Step { n: 7 }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the handler had its two attempts and no more"
    );
    assert!(sub.is_running(), "the consumer goes on");
    sub.shutdown().await;
}

/// A broker whose subscriptions fail on their first wait for a delivery.
struct Failing;

struct FailingStream;

#[async_trait::async_trait]
impl crate::broker::DeliveryStream for FailingStream {
    async fn next(&mut self) -> Option<Result<crate::broker::Delivery, BrokerError>> {
        Some(Err(BrokerError::Rejected {
            broker: "failing",
            operation: "fetch deliveries".into(),
            reason: "the consumer was deleted".into(),
        }))
    }

    async fn close(&mut self) {}
}

#[async_trait::async_trait]
impl Broker for Failing {
    fn name(&self) -> &'static str {
        "failing"
    }

    fn capabilities(&self) -> crate::Capabilities {
        MemoryBroker::new().capabilities()
    }

    async fn publish(&self, _: &Topic, _: Message) -> Result<crate::Confirmation, BrokerError> {
        Ok(crate::Confirmation::held())
    }

    async fn subscribe(
        &self,
        _: SubscribeRequest,
    ) -> Result<Box<dyn crate::broker::DeliveryStream>, BrokerError> {
        Ok(Box::new(FailingStream))
    }
}

#[tokio::test]
async fn a_subscription_the_broker_ends_says_why() {
    let bus = Bus::new(Failing);
    for concurrency in [1, 4] {
        let handler = |_: Received<Step>| async { Ok::<(), HandlerError>(()) };
        let sub = bus
            .subscribe(handler)
            .concurrency(concurrency)
            .await
            .unwrap();
        settle_within(Duration::from_secs(5), || !sub.is_running()).await;
        assert!(!sub.is_running(), "concurrency {concurrency}");
        let ended = sub.ended_by().map(ToString::to_string);
        assert_eq!(
            ended.as_deref(),
            Some("failing refused to fetch deliveries: the consumer was deleted"),
            "concurrency {concurrency}"
        );
    }
    // A shutdown that was asked for is no failure.
    let memory = Bus::memory();
    let handler = |_: Received<Step>| async { Ok::<(), HandlerError>(()) };
    let sub = memory.subscribe(handler).await.unwrap();
    assert!(sub.ended_by().is_none());
    sub.shutdown().await;
}

/// A dedup store that is never reachable.
struct Away;

#[async_trait::async_trait]
impl crate::DedupStore for Away {
    async fn seen(&self, _: &str, _: &str) -> Result<bool, crate::DedupError> {
        Err(crate::DedupError("connection refused".into()))
    }

    async fn record(&self, _: &str, _: &str) -> Result<(), crate::DedupError> {
        Err(crate::DedupError("connection refused".into()))
    }
}

#[tokio::test]
async fn events_are_handled_while_the_dedup_store_is_away() {
    let bus = Bus::memory();
    let dead_letters = Topic::of::<Step>().unwrap().dead_letter().unwrap();
    let mut dead = bus
        .broker()
        .subscribe(SubscribeRequest {
            topic: dead_letters,
            group: None,
            start: StartFrom::New,
            prefetch: 8,
        })
        .await
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let handler = {
        let calls = calls.clone();
        move |_: Received<Step>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<(), HandlerError>(()) }
        }
    };
    let sub = bus.subscribe(handler).dedup(Away).await.unwrap();
    for n in 0..3 {
        bus.publish(&Step { n }).await.unwrap();
    }
    settle_within(Duration::from_secs(5), || calls.load(Ordering::SeqCst) >= 3).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    sub.shutdown().await;
    assert!(dead.try_next().is_none(), "nothing was dead-lettered");
}

#[tokio::test]
async fn a_handler_that_panics_before_it_returns_a_future_is_retried_and_the_consumer_goes_on() {
    let bus = Bus::memory();
    let attempts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handler = {
        let attempts = attempts.clone();
        move |event: Received<Step>| {
            attempts.lock().unwrap().push((event.n, event.attempt()));
            // Before any future exists: the closure itself panics.
            assert!(
                !(event.n == 1 && event.attempt() == 1),
                "panicking on step 1 on purpose"
            );
            async { Ok::<(), HandlerError>(()) }
        }
    };
    let sub = bus
        .subscribe(handler)
        .retry(quick_retries(3))
        .await
        .unwrap();
    for n in 1..=2 {
        bus.publish(&Step { n }).await.unwrap();
    }
    settle_within(Duration::from_secs(5), || {
        attempts.lock().unwrap().len() >= 3
    })
    .await;
    sub.shutdown().await;
    let mut seen = attempts.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, [(1, 1), (1, 2), (2, 1)]);
}
