//! What a subscriber runs for each event.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use crate::causation;
use crate::envelope::Envelope;
use crate::event::Event;

/// Handles the events of one subscription.
///
/// Returning `Ok` acks the delivery; an error, a panic or a timeout counts as a failed attempt
/// (retried with backoff, then dead-lettered), and a [permanent](HandlerError::permanent) error
/// dead-letters the event at once. Any async closure `Fn(Received<E>) -> impl Future` whose
/// output is `()` or `Result<(), Err>` with `Err: Into<HandlerError>` is a handler (see
/// [`IntoHandlerResult`]); implement the trait on a type of your own to hold state.
pub trait Handler<E: Event>: Send + Sync + 'static {
    /// Handles one event.
    fn handle(&self, event: Received<E>) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

impl<E, F, Fut> Handler<E> for F
where
    E: Event,
    F: Fn(Received<E>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: IntoHandlerResult> + Send,
{
    fn handle(&self, event: Received<E>) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let fut = self(event);
        async move { fut.await.into_handler_result() }
    }
}

/// What a handler closure may return: `()` (the event was handled), or `Result<(), E>` for any
/// error type that converts into a [`HandlerError`] (every `std::error::Error`, `String`,
/// `&str`, `anyhow::Error`...).
pub trait IntoHandlerResult {
    /// The result the subscription acts on.
    fn into_handler_result(self) -> Result<(), HandlerError>;
}

impl IntoHandlerResult for () {
    fn into_handler_result(self) -> Result<(), HandlerError> {
        Ok(())
    }
}

impl<Err: Into<HandlerError>> IntoHandlerResult for Result<(), Err> {
    fn into_handler_result(self) -> Result<(), HandlerError> {
        self.map_err(Into::into)
    }
}

/// An event as a handler receives it: the decoded value, its envelope and the attempt number.
#[derive(Debug)]
pub struct Received<E> {
    event: E,
    envelope: Arc<Envelope>,
    attempt: u32,
}

impl<E> Received<E> {
    /// Wraps a decoded event. The runtime makes these (with the envelope the message shares);
    /// tests of a handler may too.
    pub fn new(event: E, envelope: impl Into<Arc<Envelope>>, attempt: u32) -> Self {
        Received {
            event,
            envelope: envelope.into(),
            attempt,
        }
    }

    /// The CloudEvents attributes the event arrived with (id, source, time, correlation...).
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The envelope as the message shares it.
    pub(crate) fn shared_envelope(&self) -> &Arc<Envelope> {
        &self.envelope
    }

    /// The W3C `traceparent` the event arrived with: the trace its publisher was in. With the
    /// feature `otel` and an OpenTelemetry layer installed, the handler already runs in a
    /// `process` span that continues it (see `Received::trace_context`, with the `otel` feature).
    pub fn trace_parent(&self) -> Option<&str> {
        self.envelope.traceparent.as_deref()
    }

    /// The OpenTelemetry context the event arrived with (from its `traceparent` and
    /// `tracestate`; empty when it carries none), to parent spans of the handler's own when the
    /// `process` span is filtered out.
    #[cfg(feature = "otel")]
    pub fn trace_context(&self) -> opentelemetry::Context {
        crate::telemetry::trace_context::extract(&self.envelope)
    }

    /// 1 on the first delivery, then counting redeliveries.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The event, dropping the envelope.
    pub fn into_inner(self) -> E {
        self.event
    }

    /// The same delivery with its event turned into another value, such as a wrapper's
    /// [payload](crate::Wrapper::into_payload).
    pub fn map<U>(self, f: impl FnOnce(E) -> U) -> Received<U> {
        Received {
            event: f(self.event),
            envelope: self.envelope,
            attempt: self.attempt,
        }
    }

    /// The event and its envelope.
    pub fn into_parts(self) -> (E, Envelope) {
        (self.event, Arc::unwrap_or_clone(self.envelope))
    }
}

/// For [`Publish::caused_by`](crate::Publish::caused_by): the envelope of the event that causes
/// a publish.
impl<E> AsRef<Envelope> for Received<E> {
    fn as_ref(&self) -> &Envelope {
        &self.envelope
    }
}

impl<E> Deref for Received<E> {
    type Target = E;
    fn deref(&self) -> &E {
        &self.event
    }
}

/// Why a handler failed: any error type converts into it with `?`, as a failure worth retrying.
/// [`HandlerError::permanent`] marks one that no retry can fix, as is any error whose chain of
/// sources holds a publish refused as too deep in its causation chain
/// ([`PublishError::CausationTooDeep`](crate::PublishError::CausationTooDeep)): a retry would be
/// refused the same way.
///
/// It does not implement [`Error`] itself, so that every error type can convert into it.
pub struct HandlerError {
    error: Box<dyn Error + Send + Sync>,
    permanent: bool,
}

impl HandlerError {
    /// A failure no retry can fix (an event that fails validation, say): the event is
    /// dead-lettered at once with this error as its reason, after one attempt.
    pub fn permanent(error: impl Into<Box<dyn Error + Send + Sync>>) -> HandlerError {
        HandlerError {
            error: error.into(),
            permanent: true,
        }
    }

    /// Whether this failure is [permanent](HandlerError::permanent).
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The error the handler returned.
    pub fn into_inner(self) -> Box<dyn Error + Send + Sync> {
        self.error
    }
}

impl<T: Into<Box<dyn Error + Send + Sync>>> From<T> for HandlerError {
    fn from(error: T) -> Self {
        let error = error.into();
        let permanent = causation::too_deep(&*error);
        HandlerError { error, permanent }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)?;
        let mut source = self.error.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("error", &self.error)
            .field("permanent", &self.permanent)
            .finish()
    }
}
