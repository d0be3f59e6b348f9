//! W3C trace context across the broker (feature `otel`): a publish writes the current span's
//! context into the CloudEvents distributed-tracing attributes `traceparent` and `tracestate`,
//! and the `process` span of the delivery is made a child of that context.
//!
//! The context comes from `tracing` spans through `tracing-opentelemetry`, so it only exists
//! where the application installed its `OpenTelemetryLayer`; without one nothing is written and
//! nothing is read. The format is always W3C Trace Context, whatever global propagator the
//! application set, as the CloudEvents extension prescribes it.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetrySpanExt, SetParentError};

use crate::envelope::{Envelope, attr};

/// Writes the context of the current span into `envelope`, unless it carries a `traceparent`
/// already (set by the publisher) or there is no sampled or unsampled span to carry.
pub(crate) fn inject(envelope: &mut Envelope) {
    if envelope.traceparent.is_some() {
        return;
    }
    let span = Span::current();
    if span.is_none() {
        return;
    }
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return;
    }
    TraceContextPropagator::new().inject_context(&context, &mut Writer(envelope));
}

/// The context a message's `traceparent` and `tracestate` carry; an empty context when it has
/// none or an invalid one.
pub(crate) fn extract(envelope: &Envelope) -> Context {
    TraceContextPropagator::new().extract(&Reader(envelope))
}

/// Makes `span` (just made, not yet entered) a child of the context `envelope` carries.
pub(crate) fn continue_trace(span: &Span, envelope: &Envelope) {
    if envelope.traceparent.is_none() {
        return;
    }
    match span.set_parent(extract(envelope)) {
        Ok(()) => {}
        // A subscriber without the OpenTelemetry layer keeps no trace to continue.
        Err(SetParentError::LayerNotFound | SetParentError::SpanDisabled) => {}
        Err(error @ SetParentError::AlreadyStarted) => tracing::debug!(
            error = %error,
            "the process span was started before its parent could be set; it starts a trace of its own",
        ),
    }
}

/// The envelope's tracing attributes, for the propagator to write.
struct Writer<'a>(&'a mut Envelope);

/// The envelope's tracing attributes, for the propagator to read.
struct Reader<'a>(&'a Envelope);

impl Injector for Writer<'_> {
    fn set(&mut self, key: &str, value: String) {
        match key {
            attr::TRACEPARENT => self.0.traceparent = Some(value),
            // The propagator writes an empty `tracestate` when there is none: leave it out.
            attr::TRACESTATE if value.is_empty() => {}
            attr::TRACESTATE => self.0.tracestate = Some(value),
            _ => self.0.set_extension(key, value),
        }
    }
}

impl Extractor for Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            attr::TRACEPARENT => self.0.traceparent.as_deref(),
            attr::TRACESTATE => self.0.tracestate.as_deref(),
            _ => self.0.extension(key),
        }
    }

    fn keys(&self) -> Vec<&str> {
        [
            self.0.traceparent.as_ref().map(|_| attr::TRACEPARENT),
            self.0.tracestate.as_ref().map(|_| attr::TRACESTATE),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}
