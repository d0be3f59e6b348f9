//! What the cases share: connecting, collecting what handlers receive, waiting with a bound.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tidings_core::broker::{Delivery, DeliveryStream, Message, SubscribeRequest};
use tidings_core::{
    Broker, Bus, Event, Handler, HandlerError, Received, RetryPolicy, StartFrom, Topic,
};
use tokio::sync::mpsc;

use super::BrokerFactory;
use super::probe::{Probe, SOURCE};

/// Unwraps or fails the case, saying what was being done.
pub fn must<T, E: Display>(result: Result<T, E>, doing: &str) -> T {
    result.unwrap_or_else(|e| panic!("{doing}: {e}"))
}

/// A connection to the broker under test.
pub async fn connect(factory: &impl BrokerFactory) -> Arc<dyn Broker> {
    must(
        factory.connect().await,
        "connecting to the broker under test",
    )
}

/// How long a publish of a case waits for the broker's confirmation: longer than the bus's
/// default, as a server under test on a busy machine (tansu on SQLite, say) may be slow to
/// confirm, and a case is about what arrives, not how fast.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// A typed bus over `broker`.
pub fn bus(broker: Arc<dyn Broker>) -> Bus {
    Bus::from_arc(broker)
        .with_source(SOURCE)
        .with_publish_timeout(PUBLISH_TIMEOUT)
}

/// Waits for `future` at most `patience`, failing the case with `what` otherwise.
pub async fn within<T>(patience: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(patience, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: nothing within {patience:?}"),
    }
}

/// Quick retries, so cases on failure stay short.
pub fn quick_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(attempts)
        .initial_backoff(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(100))
}

/// The dead-letter topic of `E`.
pub fn dead_letter_topic<E: Event>() -> Topic {
    must(
        Topic::new(E::TOPIC).and_then(|t| t.dead_letter()),
        "the dead-letter topic",
    )
}

/// Events a handler received, in arrival order.
pub type Inbox<E> = mpsc::UnboundedReceiver<Received<E>>;

/// Tells a case what one of its handlers saw. A case that no longer listens has ended (passed,
/// or failed with its own message), and its subscriptions may still be handling what was
/// published for it: what they see then is no longer the case's business.
pub(crate) fn tell<T>(case: &mpsc::UnboundedSender<T>, seen: T) {
    if case.send(seen).is_err() {
        tracing::trace!("conformance: a handler saw an event after its case ended");
    }
}

/// A handler that passes every event of its run to an inbox and acks other runs' events.
pub struct Collector<E> {
    run: Arc<str>,
    inbox: mpsc::UnboundedSender<Received<E>>,
}

impl<E> Clone for Collector<E> {
    fn clone(&self) -> Self {
        Collector {
            run: self.run.clone(),
            inbox: self.inbox.clone(),
        }
    }
}

impl<E: Probe> Handler<E> for Collector<E> {
    async fn handle(&self, event: Received<E>) -> Result<(), HandlerError> {
        if *event.run() == *self.run {
            tell(&self.inbox, event);
        }
        Ok(())
    }
}

/// A [`Collector`] for run `run`, and its inbox.
pub fn collector<E: Probe>(run: &str) -> (Collector<E>, Inbox<E>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Collector {
            run: Arc::from(run),
            inbox: tx,
        },
        rx,
    )
}

/// Receives exactly `n` events, failing the case after `patience` without them.
pub async fn take<T>(
    inbox: &mut mpsc::UnboundedReceiver<T>,
    n: usize,
    patience: Duration,
    what: &str,
) -> Vec<T> {
    let mut got = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + patience;
    while got.len() < n {
        match tokio::time::timeout_at(deadline, inbox.recv()).await {
            Ok(Some(item)) => got.push(item),
            Ok(None) => panic!("{what}: the handler went away after {} of {n}", got.len()),
            Err(_) => panic!("{what}: received {} of {n} within {patience:?}", got.len()),
        }
    }
    got
}

/// The sequence numbers of received probes, checking none came twice.
pub fn seqs<E: Probe>(received: &[Received<E>], what: &str) -> BTreeSet<u64> {
    let mut set = BTreeSet::new();
    for event in received {
        assert!(
            set.insert(event.seq()),
            "{what}: probe {} arrived twice",
            event.seq()
        );
    }
    set
}

/// Publishes probes `seqs` of run `run` one after the other, each confirmed.
pub async fn publish_range<E: Probe>(bus: &Bus, run: &str, seqs: impl IntoIterator<Item = u64>) {
    for seq in seqs {
        let event = E::new(run, seq, "");
        must(
            bus.publish_with(&event).correlation_id(run).await,
            "publishing a probe",
        );
    }
}

/// A raw subscription on the broker seam.
pub async fn subscribe_raw(
    broker: &Arc<dyn Broker>,
    topic: &Topic,
    group: Option<String>,
    start: StartFrom,
) -> Box<dyn DeliveryStream> {
    let request = SubscribeRequest {
        topic: topic.clone(),
        group,
        start,
        prefetch: 16,
    };
    must(
        broker.subscribe(request).await,
        "subscribing on the broker seam",
    )
}

/// The next delivery, failing the case on a closed stream, a transport error or no delivery.
pub async fn next_delivery(
    stream: &mut Box<dyn DeliveryStream>,
    patience: Duration,
    what: &str,
) -> Delivery {
    match within(patience, what, stream.next()).await {
        Some(Ok(delivery)) => delivery,
        Some(Err(e)) => panic!("{what}: the stream failed: {e}"),
        None => panic!("{what}: the stream ended"),
    }
}

/// The next readable message of `stream` whose correlation id is `run`, acked; others are acked
/// and skipped (they belong to other runs on a shared broker).
pub async fn next_of_run(
    stream: &mut Box<dyn DeliveryStream>,
    run: &str,
    patience: Duration,
    what: &str,
) -> (Message, u32) {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let delivery = next_delivery(stream, left, what).await;
        let Delivery {
            message,
            attempt,
            acker,
        } = delivery;
        must(acker.ack().await, "acking a delivery");
        if let Ok(message) = message
            && message.envelope.correlation_id.as_deref() == Some(run)
        {
            return (message, attempt);
        }
    }
}
