//! The typed entry point: publish events and subscribe handlers over one broker.

use std::borrow::Cow;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::future::Either;
use tracing::Instrument;

use crate::broker::memory::MemoryBroker;
use crate::broker::{Broker, BrokerError, Confirmation, Message};
use crate::codec::{Codec, CodecError};
use crate::deadline;
use crate::envelope::Envelope;
use crate::event::Event;
use crate::id::EventId;
use crate::receipt::Receipt;
use crate::schema::data_schema;
use crate::telemetry;
use crate::topic::{Topic, TopicError};

/// How long a publish waits for the broker's confirmation unless told otherwise.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes events and subscribes handlers over one broker. Cheap to clone; clones share the
/// broker.
#[derive(Clone)]
pub struct Bus {
    broker: Arc<dyn Broker>,
    source: Arc<str>,
    publish_timeout: Duration,
    metrics: bool,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("broker", &self.broker.name())
            .field("source", &self.source)
            .field("publish_timeout", &self.publish_timeout)
            .field("metrics", &self.metrics)
            .finish()
    }
}

/// Why an event was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The event type's topic breaks the topic rule; nothing was sent.
    #[error("cannot publish: {0}")]
    Topic(#[from] TopicError),
    /// The event could not be encoded; nothing was sent.
    #[error("cannot publish: {0}")]
    Codec(#[from] CodecError),
    /// The broker refused or failed.
    #[error("cannot publish: {0}")]
    Broker(#[from] BrokerError),
    /// The broker did not confirm in time; the event may or may not have been taken.
    #[error(
        "no confirmation for {topic} within {after:?}; the event may or may not be published, \
         so publish again only if handlers are idempotent (see dedup), or raise the timeout"
    )]
    Timeout {
        /// Where it was published.
        topic: Topic,
        /// How long was waited.
        after: Duration,
    },
}

fn default_source() -> Arc<str> {
    static SOURCE: OnceLock<Arc<str>> = OnceLock::new();
    SOURCE
        .get_or_init(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "tidings".to_owned())
                .into()
        })
        .clone()
}

impl Bus {
    /// A bus over `broker`. The `source` attribute defaults to the binary's name and a publish
    /// waits up to [`DEFAULT_PUBLISH_TIMEOUT`] for confirmation.
    pub fn new(broker: impl Broker) -> Bus {
        Bus::from_arc(Arc::new(broker))
    }

    /// A bus over a broker already shared.
    pub fn from_arc(broker: Arc<dyn Broker>) -> Bus {
        Bus {
            broker,
            source: default_source(),
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
            metrics: false,
        }
    }

    /// A bus over a new [`MemoryBroker`] with its default bounds.
    pub fn memory() -> Bus {
        Bus::new(MemoryBroker::new())
    }

    /// Sets the CloudEvents `source` written on every published event (a URI-reference such as
    /// `/shop/orders` or the service name).
    pub fn with_source(mut self, source: impl Into<Arc<str>>) -> Bus {
        self.source = source.into();
        self
    }

    /// Sets how long a publish waits for the broker's confirmation.
    pub fn with_publish_timeout(mut self, timeout: Duration) -> Bus {
        self.publish_timeout = timeout;
        self
    }

    /// Records metrics of this bus's publishes and subscriptions (see
    /// [`telemetry::metrics`](crate::telemetry::metrics)) into the recorder of the [`metrics`]
    /// facade, which the application installs first (a Prometheus exporter, say). Off by
    /// default, as measuring durations reads the clock twice per message.
    pub fn with_metrics(mut self) -> Bus {
        telemetry::metrics::describe();
        self.metrics = true;
        self
    }

    /// Whether this bus records metrics.
    pub(crate) fn records_metrics(&self) -> bool {
        self.metrics
    }

    /// The broker underneath.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// Publishes `event` to its topic and waits for the broker's confirmation; the receipt
    /// carries the event's id.
    pub async fn publish<E: Event>(&self, event: &E) -> Result<Receipt, PublishError> {
        // Checked on every publish, before anything else: a topic that breaks the rule never
        // reaches a broker.
        let topic = Topic::of::<E>()?;
        let started = self.metrics.then(Instant::now);
        let published = self.publish_checked(topic, event).await;
        self.record::<E>(started, &published);
        published
    }

    /// Records the metrics of a publish begun at `started`, when this bus records them.
    fn record<E: Event>(
        &self,
        started: Option<Instant>,
        published: &Result<Receipt, PublishError>,
    ) {
        if let Some(started) = started {
            telemetry::metrics::published(self.broker.name(), E::TOPIC, started, published);
        }
    }

    /// [`Bus::publish`] once the topic is checked.
    async fn publish_checked<E: Event>(
        &self,
        topic: Topic,
        event: &E,
    ) -> Result<Receipt, PublishError> {
        let span = telemetry::publish_span(self.broker.name(), &topic);
        // In a block, so the message is not kept in this future's state across the wait.
        let publish = {
            let _in_span = span.enter();
            let message = self.message(event, PublishOptions::default())?;
            let id = message.envelope.id.clone();
            telemetry::record_id(&span, &id);
            match self.broker.try_publish(&topic, message) {
                Ok(confirmed) => {
                    Either::Left(confirmed.map(|confirmed| Receipt::new(id, confirmed)))
                }
                Err(message) => Either::Right((id, self.broker.publish(&topic, message))),
            }
        };
        match publish {
            Either::Left(confirmed) => {
                drop(span);
                // Confirmed without waiting: count it against the task's budget like any
                // tokio resource, so a publishing loop lets other tasks run.
                tokio::task::consume_budget().await;
                Ok(confirmed?)
            }
            Either::Right(publish) => {
                confirm(&topic, publish, self.publish_timeout)
                    .instrument(span)
                    .await
            }
        }
    }

    /// Publishes `event` with options (partition key, subject, correlation, causation, trace,
    /// timeout); await the returned builder.
    pub fn publish_with<'a, E: Event>(&'a self, event: &'a E) -> Publish<'a, E> {
        Publish {
            bus: self,
            event,
            options: PublishOptions::default(),
        }
    }

    /// What [`Bus::publish`] would send for `event`, without sending it: its checked topic and
    /// the message (a fresh envelope with this bus's source, and the encoded data). For a
    /// transactional outbox, which stores it now and sends it later.
    pub fn prepare<E: Event>(&self, event: &E) -> Result<(Topic, Message), PublishError> {
        let topic = Topic::of::<E>()?;
        Ok((topic, self.message(event, PublishOptions::default())?))
    }

    /// The message for `event`, its topic already checked.
    fn message<E: Event>(
        &self,
        event: &E,
        options: PublishOptions,
    ) -> Result<Message, PublishError> {
        let data = E::Codec::to_bytes(event, E::SCHEMA)?;
        #[cfg_attr(not(feature = "otel"), expect(unused_mut))]
        let mut envelope = Envelope {
            partition_key: options.key.or_else(|| event.key()),
            subject: options.subject,
            correlation_id: options.correlation_id,
            causation_id: options.causation_id,
            traceparent: options.traceparent,
            ..Envelope::new(
                self.source.clone(),
                Cow::Borrowed(E::TOPIC),
                E::Codec::CONTENT_TYPE,
                Some(data_schema::<E>()),
            )
        };
        // The trace of the publish span, or of the caller's span when that one is off.
        #[cfg(feature = "otel")]
        telemetry::trace_context::inject(&mut envelope);
        let message = Message {
            envelope: Arc::new(envelope),
            data,
        };
        Ok(message)
    }
}

/// A broker's publish in flight.
type BrokerPublish<'a> =
    Pin<Box<dyn Future<Output = Result<Confirmation, BrokerError>> + Send + 'a>>;

/// Waits for the broker's confirmation of `publish`, the event `id`. Only the broker's (boxed) future and the
/// timer live across the wait, not the message, which keeps every publish's future small.
async fn confirm(
    topic: &Topic,
    (id, mut publish): (EventId, BrokerPublish<'_>),
    timeout: Duration,
) -> Result<Receipt, PublishError> {
    match deadline::within(timeout, publish.as_mut()).await {
        Ok(confirmed) => Ok(Receipt::new(id, confirmed?)),
        Err(_) => Err(PublishError::Timeout {
            topic: topic.clone(),
            after: timeout,
        }),
    }
}

#[derive(Default)]
struct PublishOptions {
    key: Option<String>,
    subject: Option<String>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    traceparent: Option<String>,
    timeout: Option<Duration>,
}

/// A publish with options; `.await` it to send.
#[must_use = "a publish does nothing until awaited"]
pub struct Publish<'a, E> {
    bus: &'a Bus,
    event: &'a E,
    options: PublishOptions,
}

impl<E: Event> Publish<'_, E> {
    /// The partition key (overrides [`Event::key`]): events with one key keep their order where
    /// the broker promises order per key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.options.key = Some(key.into());
        self
    }

    /// The CloudEvents `subject`: what the event is about, within the source.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.options.subject = Some(subject.into());
        self
    }

    /// The id of the conversation this event belongs to.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.options.correlation_id = Some(id.into());
        self
    }

    /// The id of the event that caused this one.
    pub fn causation_id(mut self, id: impl Into<String>) -> Self {
        self.options.causation_id = Some(id.into());
        self
    }

    /// A W3C `traceparent` to carry the trace across the broker (with the feature `otel`, the
    /// current span's is written unless this sets one).
    pub fn traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.options.traceparent = Some(traceparent.into());
        self
    }

    /// How long to wait for the broker's confirmation (instead of the bus's default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }
}

impl<'a, E: Event> IntoFuture for Publish<'a, E> {
    type Output = Result<Receipt, PublishError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let timeout = self.options.timeout.unwrap_or(self.bus.publish_timeout);
            let topic = Topic::of::<E>()?;
            let bus = self.bus;
            let started = bus.metrics.then(Instant::now);
            let span = telemetry::publish_span(bus.broker.name(), &topic);
            let published = async {
                let publish = {
                    let _in_span = span.enter();
                    let message = bus.message(self.event, self.options)?;
                    let id = message.envelope.id.clone();
                    telemetry::record_id(&span, &id);
                    (id, bus.broker.publish(&topic, message))
                };
                confirm(&topic, publish, timeout).instrument(span).await
            }
            .await;
            bus.record::<E>(started, &published);
            published
        })
    }
}

#[cfg(test)]
mod tests;
