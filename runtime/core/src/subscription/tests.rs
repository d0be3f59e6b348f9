//! What the consumer does when the broker fails it: a dead letter that cannot be moved calls no
//! handler past the bound and makes no busy loop; a subscription the broker ends says why. And
//! when its handler fails before it has begun: a panic while making the handler's future is an
//! attempt that failed like any other. What a handler's result does: a permanent error is
//! dead-lettered after one attempt, an ordinary one after the retry bound, and `()` acks. And
//! that a set of [`Subscriptions`](crate::Subscriptions) shut down stops every one of them.

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
    const DATA_SCHEMA: &'static str = "proto:tests.consumer.v1.Step";
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
        ..MemoryLimits::default()
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
pub(super) struct Away;

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

/// A subscription on the broker seam to the dead letters of `E`.
async fn dead_letters_of<E: Event>(bus: &Bus) -> Box<dyn crate::broker::DeliveryStream> {
    bus.broker()
        .subscribe(SubscribeRequest {
            topic: Topic::of::<E>().unwrap().dead_letter().unwrap(),
            group: None,
            start: StartFrom::New,
            prefetch: 8,
        })
        .await
        .unwrap()
}

/// The next dead letter on `stream`, within 5 s.
async fn next_dead_letter(stream: &mut Box<dyn crate::broker::DeliveryStream>) -> Arc<Envelope> {
    let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    let delivery = next
        .expect("a dead letter within 5 s")
        .expect("the dead-letter subscription is open")
        .expect("no transport error");
    let envelope = delivery
        .message
        .as_ref()
        .expect("a readable dead letter")
        .envelope
        .clone();
    delivery.acker.ack().await.unwrap();
    envelope
}

fn dead_letter_attribute<'a>(envelope: &'a Envelope, name: &str) -> &'a str {
    envelope
        .extension(name)
        .unwrap_or_else(|| panic!("the dead letter has no `{name}`: {envelope:?}"))
}

/// Retries a handful of times, without waiting to speak of.
fn tiny_backoffs(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(max_attempts)
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(2))
}

/// A handler that reports each call's event and attempt, and fails every one with `error`.
fn failing_with(
    error: fn() -> HandlerError,
) -> (
    impl crate::Handler<Step>,
    tokio::sync::mpsc::UnboundedReceiver<(u32, u32)>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let handler = move |event: Received<Step>| {
        let _ = tx.send((event.n, event.attempt()));
        async move { Err::<(), HandlerError>(error()) }
    };
    (handler, rx)
}

#[tokio::test]
async fn a_permanent_error_is_dead_lettered_after_one_attempt_whatever_the_retry_bound() {
    let bus = Bus::memory();
    let mut dead = dead_letters_of::<Step>(&bus).await;
    let (handler, mut calls) = failing_with(|| HandlerError::permanent("bad sku"));
    let sub = bus
        .subscribe(handler)
        .retry(tiny_backoffs(5))
        .await
        .unwrap();
    let receipt = bus.publish(&Step { n: 1 }).await.unwrap();

    let letter = next_dead_letter(&mut dead).await;
    assert_eq!(letter.id, *receipt.id());
    let reason = dead_letter_attribute(&letter, crate::envelope::attr::DEAD_LETTER_REASON);
    assert!(reason.contains("bad sku"), "{reason}");
    assert_eq!(reason, "handler refused the event for good: bad sku");
    assert_eq!(
        dead_letter_attribute(&letter, crate::envelope::attr::DEAD_LETTER_ATTEMPTS),
        "1"
    );
    assert_eq!(
        dead_letter_attribute(&letter, crate::envelope::attr::DEAD_LETTER_TOPIC),
        Step::TOPIC
    );
    // The dead letter settled the event: every call the handler had is behind us.
    sub.shutdown().await;
    let mut seen = Vec::new();
    while let Ok(call) = calls.try_recv() {
        seen.push(call);
    }
    assert_eq!(seen, [(1, 1)], "one attempt, out of the 5 allowed");
}

#[tokio::test]
async fn an_ordinary_error_is_retried_up_to_the_bound_then_dead_lettered() {
    let bus = Bus::memory();
    let mut dead = dead_letters_of::<Step>(&bus).await;
    let (handler, mut calls) = failing_with(|| "bad sku".into());
    let sub = bus
        .subscribe(handler)
        .retry(tiny_backoffs(5))
        .await
        .unwrap();
    let receipt = bus.publish(&Step { n: 1 }).await.unwrap();

    let letter = next_dead_letter(&mut dead).await;
    assert_eq!(letter.id, *receipt.id());
    assert_eq!(
        dead_letter_attribute(&letter, crate::envelope::attr::DEAD_LETTER_REASON),
        "handler failed: bad sku"
    );
    assert_eq!(
        dead_letter_attribute(&letter, crate::envelope::attr::DEAD_LETTER_ATTEMPTS),
        "5"
    );
    sub.shutdown().await;
    let mut seen = Vec::new();
    while let Ok(call) = calls.try_recv() {
        seen.push(call);
    }
    assert_eq!(seen, [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5)]);
}

#[tokio::test]
async fn a_closure_handler_returning_unit_acks() {
    let bus = Bus::memory();
    let mut dead = dead_letters_of::<Step>(&bus).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // No `Ok`: the future's output is `()`.
    let handler = move |event: Received<Step>| {
        let _ = tx.send((event.n, event.attempt()));
        async {}
    };
    // Were `()` a failure, event 1 would come back at once as attempt 2 and then be
    // dead-lettered.
    let sub = bus
        .subscribe(handler)
        .retry(tiny_backoffs(2))
        .await
        .unwrap();
    for n in 1..=3 {
        bus.publish(&Step { n }).await.unwrap();
    }
    for n in 1..=3 {
        let next = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(
            next.expect("handled within 5 s"),
            Some((n, 1)),
            "each event once, in order, on its first attempt"
        );
    }
    // Absence checks, bounded: no redelivery, no dead letter.
    let again = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
    assert!(again.is_err(), "an event came back: {again:?}");
    let letter = tokio::time::timeout(Duration::from_millis(50), dead.next()).await;
    assert!(letter.is_err(), "an event was dead-lettered");
    sub.shutdown().await;
}

/// A `MemoryBroker` that counts the subscriptions open on it: opened, and not yet closed or
/// dropped.
#[derive(Clone, Default)]
struct Tracking {
    inner: MemoryBroker,
    open: Arc<std::sync::atomic::AtomicUsize>,
}

impl Tracking {
    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

struct TrackedStream {
    inner: Box<dyn crate::broker::DeliveryStream>,
    open: Arc<std::sync::atomic::AtomicUsize>,
    closed: bool,
}

impl TrackedStream {
    fn leave(&mut self) {
        if !std::mem::replace(&mut self.closed, true) {
            self.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        self.leave();
    }
}

#[async_trait::async_trait]
impl crate::broker::DeliveryStream for TrackedStream {
    async fn next(&mut self) -> Option<Result<crate::broker::Delivery, BrokerError>> {
        self.inner.next().await
    }

    fn try_next(&mut self) -> Option<Result<crate::broker::Delivery, BrokerError>> {
        self.inner.try_next()
    }

    async fn close(&mut self) {
        self.inner.close().await;
        self.leave();
    }
}

#[async_trait::async_trait]
impl Broker for Tracking {
    fn name(&self) -> &'static str {
        "tracking"
    }

    fn capabilities(&self) -> crate::Capabilities {
        self.inner.capabilities()
    }

    async fn publish(
        &self,
        topic: &Topic,
        message: Message,
    ) -> Result<crate::Confirmation, BrokerError> {
        self.inner.publish(topic, message).await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Box<dyn crate::broker::DeliveryStream>, BrokerError> {
        let inner = self.inner.subscribe(request).await?;
        self.open.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(TrackedStream {
            inner,
            open: self.open.clone(),
            closed: false,
        }))
    }
}

#[tokio::test]
async fn shutting_down_subscriptions_stops_every_one_of_them() {
    let broker = Tracking::default();
    let bus = Bus::new(broker.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut all = crate::Subscriptions::new();
    for which in 0..3 {
        let tx = tx.clone();
        let handler = move |event: Received<Step>| {
            let _ = tx.send((which, event.n));
            async {}
        };
        all.push(bus.subscribe(handler).await.unwrap());
    }
    // Only the handlers hold a sender now: the channel closes once all of them are gone.
    drop(tx);
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(crate::Subscription::is_running));
    assert!(all.iter().all(|sub| sub.topic().as_str() == Step::TOPIC));
    assert_eq!(broker.open(), 3, "three subscriptions on the broker");

    // All three run.
    bus.publish(&Step { n: 1 }).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let next = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        got.push(next.expect("handled within 5 s").expect("the handlers run"));
    }
    got.sort_unstable();
    assert_eq!(got, [(0, 1), (1, 1), (2, 1)]);

    all.shutdown().await;
    assert_eq!(broker.open(), 0, "every broker subscription is closed");
    bus.publish(&Step { n: 2 }).await.unwrap();
    // Every consumer ended and dropped its handler, and none had the event published after
    // the shutdown.
    let after = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert_eq!(
        after.expect("the handlers are dropped at once"),
        None,
        "no handler may run after the shutdown"
    );
}
