//! The `tracing` spans and events of the typed layer, named by the OpenTelemetry messaging
//! semantic conventions.
//!
//! Spans, at DEBUG level so that a service logging at INFO pays nothing for them:
//! - `publish` (`otel.name` = `publish <topic>`, `otel.kind` = `producer`), one per publish;
//! - `process` (`otel.name` = `process <topic>`, `otel.kind` = `consumer`), one per handling
//!   attempt of a delivery, around decoding, the handler and the settling of the delivery.
//!
//! Their fields: `messaging.system` (the broker's [`name`](crate::Broker::name)),
//! `messaging.destination.name` (the topic), `messaging.operation.type` (`publish` or
//! `process`), `messaging.message.id` (the event id), `messaging.consumer.group.name` (only in a
//! group) and `messaging.tidings.attempt` (1 on the first delivery; the conventions name no
//! attribute for it, so it sits under tidings' own namespace).
//!
//! Events, at WARN or ERROR, only when something went wrong; each carries the same
//! `messaging.*` fields as the span, an `error.type` naming the kind of failure, and a `reason`
//! or `error`. The happy path emits nothing at INFO or above.
//!
//! Metrics ([`metrics`]) on a bus that records them, and, with the feature `otel`, the W3C
//! trace context carried in the CloudEvents `traceparent` and `tracestate` attributes: the
//! `process` span of a delivery is a child of the span that published it.

use tracing::Span;
use tracing::field::Empty;

use crate::envelope::Envelope;
use crate::id::EventId;
use crate::topic::Topic;

pub mod metrics;
#[cfg(feature = "otel")]
pub(crate) mod trace_context;

/// The attribute that counts the deliveries of a message.
pub const ATTEMPT: &str = "messaging.tidings.attempt";

/// `error.type` values of the events, one per kind of failure, and of the dead-letter metric,
/// which counts dead letters by the kind of failure that sent them there.
pub mod kind {
    /// A message that is not the subscribed event (another type or major, another schema, not
    /// CloudEvents, undecodable).
    pub const REFUSED: &str = "refused";
    /// The handler returned an error.
    pub const HANDLER_ERROR: &str = "handler_error";
    /// The handler panicked.
    pub const HANDLER_PANIC: &str = "handler_panic";
    /// The handler ran past its timeout.
    pub const HANDLER_TIMEOUT: &str = "handler_timeout";
    /// A message was moved to its dead-letter topic.
    pub const DEAD_LETTERED: &str = "dead_lettered";
    /// The broker did not take a dead letter.
    pub const DEAD_LETTER_FAILED: &str = "dead_letter_failed";
    /// The broker did not take an ack.
    pub const ACK_FAILED: &str = "ack_failed";
    /// The broker did not take a nack.
    pub const NACK_FAILED: &str = "nack_failed";
    /// The dedup store could not say whether an event was handled.
    pub const DEDUP_CHECK_FAILED: &str = "dedup_check_failed";
    /// The dedup store could not record a handled event.
    pub const DEDUP_RECORD_FAILED: &str = "dedup_record_failed";
    /// The broker ended a subscription.
    pub const SUBSCRIPTION_ENDED: &str = "subscription_ended";
    /// A message delivered again after its last attempt (its consumer stopped before settling
    /// it, or its dead letter failed): the reason it is dead-lettered without another attempt.
    pub const REDELIVERED_PAST_BOUND: &str = "redelivered_past_bound";
}

/// Whether DEBUG spans can be enabled at all: two comparisons, so that the hot path does not
/// call into the span's (out-of-line) making when no subscriber wants them.
#[inline]
fn spans_enabled() -> bool {
    use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
    tracing::Level::DEBUG <= STATIC_MAX_LEVEL && tracing::Level::DEBUG <= LevelFilter::current()
}

/// The span of one publish; its event id is recorded with [`record_id`] once known.
#[inline]
pub(crate) fn publish_span(system: &'static str, topic: &Topic) -> Span {
    if spans_enabled() {
        make_publish_span(system, topic)
    } else {
        Span::none()
    }
}

#[inline(never)]
fn make_publish_span(system: &'static str, topic: &Topic) -> Span {
    // Field values are only computed when the span is enabled.
    tracing::debug_span!(
        "publish",
        otel.name = format!("publish {topic}"),
        otel.kind = "producer",
        messaging.system = system,
        messaging.destination.name = topic.as_str(),
        messaging.operation.type = "publish",
        messaging.message.id = Empty,
    )
}

/// The span of one request, from its send to its reply; its event id is recorded with
/// [`record_id`] once known.
#[inline]
pub(crate) fn request_span(system: &'static str, topic: &Topic) -> Span {
    if spans_enabled() {
        make_request_span(system, topic)
    } else {
        Span::none()
    }
}

#[inline(never)]
fn make_request_span(system: &'static str, topic: &Topic) -> Span {
    tracing::debug_span!(
        "send",
        otel.name = format!("send {topic}"),
        otel.kind = "client",
        messaging.system = system,
        messaging.destination.name = topic.as_str(),
        messaging.operation.type = "send",
        messaging.message.id = Empty,
    )
}

/// The span of one handling attempt.
#[inline]
pub(crate) fn process_span(
    system: &'static str,
    topic: &Topic,
    group: Option<&str>,
    envelope: Option<&Envelope>,
    attempt: u32,
) -> Span {
    if spans_enabled() {
        make_process_span(system, topic, group, envelope, attempt)
    } else {
        Span::none()
    }
}

#[inline(never)]
fn make_process_span(
    system: &'static str,
    topic: &Topic,
    group: Option<&str>,
    envelope: Option<&Envelope>,
    attempt: u32,
) -> Span {
    let span = tracing::debug_span!(
        "process",
        otel.name = format!("process {topic}"),
        otel.kind = "consumer",
        messaging.system = system,
        messaging.destination.name = topic.as_str(),
        messaging.operation.type = "process",
        messaging.message.id = envelope.map(|e| e.id.as_str()),
        messaging.consumer.group.name = group,
        messaging.tidings.attempt = attempt,
    );
    #[cfg(feature = "otel")]
    if let Some(envelope) = envelope {
        trace_context::continue_trace(&span, envelope);
    }
    span
}

/// Records the event id on a publish span (nothing when the span is disabled).
#[inline]
pub(crate) fn record_id(span: &Span, id: &EventId) {
    if !span.is_disabled() {
        span.record("messaging.message.id", id.as_str());
    }
}

/// An event about one delivery of a consumer: `consumer_event!(WARN, consumer, envelope,
/// kind, fields..., "message")`, with the consumer's `messaging.*` fields.
macro_rules! consumer_event {
    ($level:ident, $consumer:expr, $envelope:expr, $kind:expr, $($rest:tt)+) => {
        tracing::event!(
            tracing::Level::$level,
            messaging.system = $consumer.broker,
            messaging.destination.name = $consumer.topic.as_str(),
            messaging.consumer.group.name = $consumer.group.as_deref(),
            messaging.message.id = $envelope.map(|e: &$crate::envelope::Envelope| e.id.as_str()),
            error.type = $kind,
            $($rest)+
        )
    };
}

pub(crate) use consumer_event;
