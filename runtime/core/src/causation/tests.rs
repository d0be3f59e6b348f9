//! A publish caused by an event carries its correlation id, names it as its cause, continues
//! its trace and is one deeper; options set on the builder win. A publish past the bus's bound
//! is refused before the broker, and a handler that returns that refusal, however wrapped,
//! dead-letters its event at once: a handler that publishes to its own topic stops at the bound.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::broker::{DeliveryStream, StartFrom, SubscribeRequest};
use crate::envelope::attr;
use crate::handler::IntoHandlerResult;
use crate::{
    Bus, ContentType, DEFAULT_MAX_CAUSATION_DEPTH, Envelope, Event, Handler, HandlerError,
    Protobuf, PublishError, Received, RetryPolicy, Topic,
};

#[derive(Clone, PartialEq, prost::Message)]
struct Step {
    #[prost(uint32, tag = "1")]
    n: u32,
}

impl Event for Step {
    const TOPIC: &'static str = "tests.causation.step.v1";
    const SCHEMA: &'static str = "tests.causation.v1.Step";
    const DATA_SCHEMA: &'static str = "proto:tests.causation.v1.Step";
    type Codec = Protobuf;
}

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACESTATE: &str = "vendor=opaque";
const OTHER_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// An event from another service that starts a conversation: no correlation id, in a trace.
fn first_cause() -> Envelope {
    let mut cause = Envelope::new(
        Arc::from("upstream"),
        Cow::Borrowed("tests.causation.placed.v1"),
        ContentType::Protobuf,
        None,
    );
    cause.traceparent = Some(TRACEPARENT.into());
    cause.tracestate = Some(TRACESTATE.into());
    cause
}

/// An event `depth` events down the conversation `c-1`.
fn cause_at(depth: u32) -> Envelope {
    let mut cause = first_cause();
    cause.correlation_id = Some("c-1".into());
    cause.causation_id = Some("earlier".into());
    cause.causation_depth = depth;
    cause
}

/// A plain subscription on the broker seam to `topic`, roomy enough to take a whole loop.
async fn raw(bus: &Bus, topic: Topic) -> Box<dyn DeliveryStream> {
    let request = SubscribeRequest {
        topic,
        group: None,
        start: StartFrom::New,
        prefetch: 64,
    };
    bus.broker().subscribe(request).await.unwrap()
}

/// The envelope of the next message on `stream`, within 5 s, acked.
async fn next_envelope(stream: &mut Box<dyn DeliveryStream>) -> Arc<Envelope> {
    let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    let delivery = next
        .expect("a message within 5 s")
        .expect("the subscription is open")
        .expect("no transport error");
    let envelope = delivery.message.as_ref().unwrap().envelope.clone();
    delivery.acker.ack().await.unwrap();
    envelope
}

/// The envelopes of the messages `stream` holds now, acked.
async fn drain(stream: &mut Box<dyn DeliveryStream>) -> Vec<Arc<Envelope>> {
    let mut envelopes = Vec::new();
    while let Some(delivery) = stream.try_next() {
        let delivery = delivery.unwrap();
        envelopes.push(delivery.message.as_ref().unwrap().envelope.clone());
        delivery.acker.ack().await.unwrap();
    }
    envelopes
}

#[tokio::test]
async fn a_caused_publish_continues_the_chain_of_its_cause() {
    let bus = Bus::memory();
    let mut published = raw(&bus, Topic::of::<Step>().unwrap()).await;

    // The cause starts the conversation: its id becomes the correlation id.
    let cause = first_cause();
    let receipt = bus
        .publish_with(&Step { n: 1 })
        .caused_by(&cause)
        .await
        .unwrap();
    let got = next_envelope(&mut published).await;
    assert_eq!(got.id, *receipt.id());
    assert_eq!(got.correlation_id.as_deref(), Some(cause.id.as_str()));
    assert_eq!(got.causation_id.as_deref(), Some(cause.id.as_str()));
    assert_eq!(got.causation_depth, 1);
    assert_eq!(got.traceparent.as_deref(), Some(TRACEPARENT));
    assert_eq!(got.tracestate.as_deref(), Some(TRACESTATE));

    // Further down a conversation, as a handler receives it: its correlation id goes on.
    let received = Received::new(Step { n: 1 }, cause_at(4), 1);
    bus.publish_with(&Step { n: 2 })
        .caused_by(&received)
        .await
        .unwrap();
    let got = next_envelope(&mut published).await;
    assert_eq!(got.correlation_id.as_deref(), Some("c-1"));
    assert_eq!(
        got.causation_id.as_deref(),
        Some(received.envelope().id.as_str())
    );
    assert_eq!(got.causation_depth, 5);
    assert_eq!(got.traceparent.as_deref(), Some(TRACEPARENT));

    // A cause without a trace gives none; a message's shared envelope is a cause too.
    let mut untraced = cause_at(0);
    untraced.traceparent = None;
    untraced.tracestate = None;
    let shared = Arc::new(untraced);
    bus.publish_with(&Step { n: 3 })
        .caused_by(&shared)
        .await
        .unwrap();
    let got = next_envelope(&mut published).await;
    assert_eq!(got.causation_depth, 1);
    assert_eq!(
        (got.traceparent.as_deref(), got.tracestate.as_deref()),
        (None, None)
    );

    // A publish nothing caused is at depth 0, which is not written.
    bus.publish(&Step { n: 4 }).await.unwrap();
    let got = next_envelope(&mut published).await;
    assert_eq!(got.causation_depth, 0);
    assert_eq!(
        (got.correlation_id.as_deref(), got.causation_id.as_deref()),
        (None, None)
    );
    assert!(
        got.attributes()
            .iter()
            .all(|(name, _)| *name != attr::CAUSATION_DEPTH)
    );
}

#[tokio::test]
async fn options_set_on_the_builder_win_over_the_cause_whatever_their_order() {
    let bus = Bus::memory();
    let mut published = raw(&bus, Topic::of::<Step>().unwrap()).await;
    let cause = cause_at(4);

    bus.publish_with(&Step { n: 1 })
        .correlation_id("mine")
        .traceparent(OTHER_TRACEPARENT)
        .caused_by(&cause)
        .await
        .unwrap();
    let got = next_envelope(&mut published).await;
    assert_eq!(got.correlation_id.as_deref(), Some("mine"));
    assert_eq!(got.causation_id.as_deref(), Some(cause.id.as_str()));
    assert_eq!(got.traceparent.as_deref(), Some(OTHER_TRACEPARENT));
    assert_eq!(
        got.tracestate, None,
        "the cause's tracestate belongs to the cause's traceparent"
    );
    assert_eq!(got.causation_depth, 5, "the depth is the cause's, plus one");

    bus.publish_with(&Step { n: 2 })
        .caused_by(&cause)
        .causation_id("another")
        .await
        .unwrap();
    let got = next_envelope(&mut published).await;
    assert_eq!(got.correlation_id.as_deref(), Some("c-1"));
    assert_eq!(got.causation_id.as_deref(), Some("another"));
    assert_eq!(got.traceparent.as_deref(), Some(TRACEPARENT));
    assert_eq!(got.tracestate.as_deref(), Some(TRACESTATE));
}

#[tokio::test]
async fn a_publish_past_the_bound_is_refused_before_the_broker_naming_the_chain() {
    let bus = Bus::memory().with_max_causation_depth(3);
    assert_eq!(bus.max_causation_depth(), 3);
    assert_eq!(
        Bus::memory().max_causation_depth(),
        DEFAULT_MAX_CAUSATION_DEPTH
    );
    let topic = Topic::of::<Step>().unwrap();
    let mut published = raw(&bus, topic.clone()).await;

    let cause = cause_at(3);
    let refused = bus
        .publish_with(&Step { n: 1 })
        .caused_by(&cause)
        .await
        .unwrap_err();
    let PublishError::CausationTooDeep {
        topic: refused_topic,
        depth,
        bound,
        chain,
    } = &refused
    else {
        panic!("not refused as too deep: {refused:?}");
    };
    assert_eq!((refused_topic, *depth, *bound), (&topic, 4, 3));
    assert_eq!(
        (chain.correlation_id(), chain.event_id(), chain.event_type()),
        ("c-1", &cause.id, "tests.causation.placed.v1")
    );
    assert_eq!(
        refused.to_string(),
        "cannot publish to tests.causation.step.v1: the event would have 4 events before it in \
         its causation chain, more than the bound of 3; a handler that publishes to the topic it \
         consumes, or a cycle of services that publish to each other, never stops: break the \
         cycle, or raise the bound with `Bus::with_max_causation_depth` if the chain is meant to \
         be this long"
    );
    let source = std::error::Error::source(&refused).map(ToString::to_string);
    assert_eq!(
        source.as_deref(),
        Some(&*format!(
            "the chain: correlation id c-1, caused by event {} of type \
                 tests.causation.placed.v1",
            cause.id
        ))
    );

    // At the bound is allowed; the broker got that publish and not the refused one.
    let receipt = bus
        .publish_with(&Step { n: 2 })
        .caused_by(&cause_at(2))
        .await
        .unwrap();
    let got = next_envelope(&mut published).await;
    assert_eq!(got.id, *receipt.id());
    assert_eq!(got.causation_depth, 3);
    assert!(drain(&mut published).await.is_empty());
}

/// A publish refused as too deep, as a handler gets it.
async fn refusal() -> PublishError {
    let bus = Bus::memory().with_max_causation_depth(0);
    bus.publish_with(&Step { n: 1 })
        .caused_by(&first_cause())
        .await
        .unwrap_err()
}

/// A service's own error, with the publish's as its source.
#[derive(Debug, thiserror::Error)]
enum Wrapped {
    #[error("the next step could not be published")]
    Publish(#[from] PublishError),
}

/// A service's own error, passing the publish's through.
#[derive(Debug, thiserror::Error)]
enum Transparent {
    #[error(transparent)]
    Publish(#[from] PublishError),
}

#[tokio::test]
async fn a_handler_error_holding_a_refusal_too_deep_is_permanent_however_wrapped() {
    let direct = HandlerError::from(refusal().await);
    assert!(direct.is_permanent());
    let text = direct.to_string();
    assert!(
        text.starts_with(
            "cannot publish to tests.causation.step.v1: the event would have 1 events"
        ) && text.contains(": the chain: correlation id "),
        "{text}"
    );

    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(refusal().await);
    assert!(HandlerError::from(boxed).is_permanent(), "boxed");
    let anyhow = anyhow::Error::from(refusal().await);
    assert!(HandlerError::from(anyhow).is_permanent(), "anyhow");
    let context = anyhow::Error::from(refusal().await).context("publishing the next step");
    assert!(
        HandlerError::from(context).is_permanent(),
        "anyhow with context"
    );
    let wrapped = Wrapped::from(refusal().await);
    assert!(HandlerError::from(wrapped).is_permanent(), "a source");
    let transparent = Transparent::from(refusal().await);
    assert!(
        HandlerError::from(transparent).is_permanent(),
        "transparent"
    );
    let returned = Err::<(), _>(refusal().await).into_handler_result();
    assert!(returned.unwrap_err().is_permanent(), "a handler's result");

    // Any other failure is worth retrying.
    let timeout = PublishError::Timeout {
        topic: Topic::of::<Step>().unwrap(),
        after: Duration::from_secs(5),
    };
    assert!(!HandlerError::from(timeout).is_permanent());
    assert!(!HandlerError::from("bad sku").is_permanent());
    assert!(!HandlerError::from(anyhow::anyhow!("bad sku")).is_permanent());
}

/// What a looping handler saw of one call: the step, its causation depth and the attempt.
type Call = (u32, u32, u32);

/// A handler that publishes the next step of each it handles, caused by it, with `?` on the
/// publish's own error.
fn looping(bus: Bus) -> (impl Handler<Step>, mpsc::UnboundedReceiver<Call>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = move |step: Received<Step>| {
        let (bus, tx) = (bus.clone(), tx.clone());
        async move {
            let call = (step.n, step.envelope().causation_depth, step.attempt());
            tx.send(call).expect("the test is listening");
            bus.publish_with(&Step { n: step.n + 1 })
                .caused_by(&step)
                .await?;
            Ok::<(), PublishError>(())
        }
    };
    (handler, rx)
}

/// The same, returning `anyhow::Result`, as many services do.
fn looping_anyhow(bus: Bus) -> (impl Handler<Step>, mpsc::UnboundedReceiver<Call>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = move |step: Received<Step>| {
        let (bus, tx) = (bus.clone(), tx.clone());
        async move {
            let call = (step.n, step.envelope().causation_depth, step.attempt());
            tx.send(call)?;
            bus.publish_with(&Step { n: step.n + 1 })
                .caused_by(&step)
                .await?;
            anyhow::Ok(())
        }
    };
    (handler, rx)
}

/// Runs `handler` (one of the looping handlers) on `bus` from one first step, and checks that
/// it stopped at the bus's bound: exactly `bound + 1` events published, each caused by the one
/// before, each handled once, and the last dead-lettered at once with the chain in its reason.
async fn stops_at_the_bound(
    bus: &Bus,
    handler: impl Handler<Step>,
    mut calls: mpsc::UnboundedReceiver<Call>,
) {
    let bound = bus.max_causation_depth();
    let topic = Topic::of::<Step>().unwrap();
    let mut published = raw(bus, topic.clone()).await;
    let mut dead = raw(bus, topic.dead_letter().unwrap()).await;
    // Retries allowed, to show that none is made.
    let retries = RetryPolicy::default()
        .max_attempts(5)
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(2));
    let sub = bus.subscribe(handler).retry(retries).await.unwrap();

    let first = bus.publish(&Step { n: 0 }).await.unwrap();
    let letter = next_envelope(&mut dead).await;
    // Every call is over once the subscription has shut down.
    sub.shutdown().await;

    let chain = drain(&mut published).await;
    assert_eq!(chain.len(), bound as usize + 1, "events published");
    assert_eq!(chain[0].id, *first.id());
    for (depth, (event, before)) in chain.iter().skip(1).zip(&chain).enumerate() {
        let depth = depth as u32 + 1;
        assert_eq!(event.causation_depth, depth);
        assert_eq!(event.causation_id.as_deref(), Some(before.id.as_str()));
        assert_eq!(event.correlation_id.as_deref(), Some(first.id().as_str()));
    }
    let mut seen = Vec::new();
    while let Ok(call) = calls.try_recv() {
        seen.push(call);
    }
    let expected: Vec<Call> = (0..=bound).map(|n| (n, n, 1)).collect();
    assert_eq!(
        seen, expected,
        "each event handled once, on its first attempt"
    );

    let last = chain.last().unwrap();
    assert_eq!(letter.id, last.id, "the event whose handler was refused");
    assert_eq!(letter.causation_depth, bound);
    assert_eq!(letter.extension(attr::DEAD_LETTER_ATTEMPTS), Some("1"));
    let reason = letter.extension(attr::DEAD_LETTER_REASON).unwrap();
    let refused = format!(
        "handler refused the event for good: cannot publish to {topic}: the event would have {} \
         events before it in its causation chain, more than the bound of {bound}; ",
        bound + 1
    );
    let chain = format!(
        ": the chain: correlation id {}, caused by event {} of type {topic}",
        first.id(),
        last.id
    );
    assert!(
        reason.starts_with(&refused) && reason.ends_with(&chain),
        "{reason}"
    );
}

#[tokio::test]
async fn a_handler_that_publishes_its_own_topic_stops_at_the_bound() {
    let bus = Bus::memory().with_max_causation_depth(5);
    let (handler, calls) = looping(bus.clone());
    stops_at_the_bound(&bus, handler, calls).await;
}

#[tokio::test]
async fn a_handler_returning_anyhow_stops_at_the_default_bound() {
    let bus = Bus::memory();
    assert_eq!(bus.max_causation_depth(), 32);
    let (handler, calls) = looping_anyhow(bus.clone());
    stops_at_the_bound(&bus, handler, calls).await;
}
