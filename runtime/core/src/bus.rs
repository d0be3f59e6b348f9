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
use crate::causation::{self, CausationChain, DEFAULT_MAX_CAUSATION_DEPTH};
use crate::codec::{Codec, CodecError};
use crate::deadline;
use crate::envelope::Envelope;
use crate::event::Event;
use crate::fallback::{Fallback, FallbackError};
use crate::id::EventId;
use crate::receipt::Receipt;
use crate::size;
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
    fallback: Option<Arc<dyn Fallback>>,
    max_message_size: usize,
    max_causation_depth: u32,
    metrics: bool,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("broker", &self.broker.name())
            .field("source", &self.source)
            .field("publish_timeout", &self.publish_timeout)
            .field("fallback", &self.fallback.is_some())
            .field("max_message_size", &self.max_message_size)
            .field("max_causation_depth", &self.max_causation_depth)
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
    /// The event's message is larger than the bus allows ([`Bus::max_message_size`]); nothing
    /// was sent.
    #[error(
        "cannot publish to {topic}: the event is {size} bytes of data and attributes, above the \
         limit of {limit}; send a smaller event (large content belongs in a store, the event \
         carrying a reference to it), or raise the limit with `Bus::with_max_message_size` on \
         publishers and subscribers alike"
    )]
    TooLarge {
        /// Where it was to be published.
        topic: Topic,
        /// Its size: the data and each attribute's name and value.
        size: usize,
        /// The bus's limit.
        limit: usize,
    },
    /// The event would be deeper in its causation chain ([`Publish::caused_by`]) than the bus
    /// allows ([`Bus::with_max_causation_depth`]), as in a publish loop; nothing was sent. A
    /// handler that returns this error, however wrapped, dead-letters its event at once.
    #[error(
        "cannot publish to {topic}: the event would have {depth} events before it in its \
         causation chain, more than the bound of {bound}; a handler that publishes to the topic \
         it consumes, or a cycle of services that publish to each other, never stops: break the \
         cycle, or raise the bound with `Bus::with_max_causation_depth` if the chain is meant \
         to be this long"
    )]
    CausationTooDeep {
        /// Where it was to be published.
        topic: Topic,
        /// How many events it would have had before it.
        depth: u32,
        /// The bus's bound.
        bound: u32,
        /// The correlation id and the event that caused the publish.
        #[source]
        chain: CausationChain,
    },
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
    /// The broker did not take the event and the bus's fallback could not store it either:
    /// the event is neither published nor stored.
    #[error("{publish}, and the fallback could not store the event ({store}); nothing was stored")]
    Fallback {
        /// Why the broker did not take it.
        publish: Box<PublishError>,
        /// Why the fallback did not store it.
        store: FallbackError,
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
    /// A bus over `broker`. The `source` attribute defaults to the binary's name, a publish
    /// waits up to [`DEFAULT_PUBLISH_TIMEOUT`] for confirmation, and messages are limited to the
    /// broker's [`max_message_size`](Broker::max_message_size).
    pub fn new(broker: impl Broker) -> Bus {
        Bus::from_arc(Arc::new(broker))
    }

    /// A bus over a broker already shared.
    pub fn from_arc(broker: Arc<dyn Broker>) -> Bus {
        Bus {
            max_message_size: broker.max_message_size(),
            broker,
            source: default_source(),
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
            fallback: None,
            max_causation_depth: DEFAULT_MAX_CAUSATION_DEPTH,
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

    /// Gives the bus a durable store for the publishes the broker refuses or does not confirm
    /// in time: such an event is stored there instead of the publish failing, the receipt says
    /// so ([`Receipt::is_deferred`]), a warning is emitted, and a relay publishes it later (the
    /// SQLite or PostgreSQL outbox of `tidings-sqlx`). Only when the store fails too does the
    /// publish fail, with [`PublishError::Fallback`].
    ///
    /// An event that went to the fallback is published after the events that follow it, so
    /// the order per partition key does not hold across a broker outage; its id does, so a
    /// publish that timed out but reached the broker is dropped as a duplicate where the broker
    /// or the consumer deduplicates.
    pub fn with_fallback(mut self, fallback: impl Fallback) -> Bus {
        self.fallback = Some(Arc::new(fallback));
        self
    }

    /// Sets the size limit: a publish of a larger message fails with
    /// [`PublishError::TooLarge`] before anything reaches the broker, and a subscription made
    /// through this bus dead-letters a larger message it receives (unless its own
    /// [`SubscribeOptions::max_message_size`](crate::SubscribeOptions::max_message_size) says
    /// otherwise). What counts is the data and each attribute's name and value
    /// ([`Message::size`]). The default is the broker's own
    /// ([`Broker::max_message_size`], [`DEFAULT_MAX_MESSAGE_SIZE`](crate::DEFAULT_MAX_MESSAGE_SIZE)
    /// unless its configuration says otherwise); a limit above what the broker's server takes
    /// leaves its server to refuse the message.
    pub fn with_max_message_size(mut self, limit: usize) -> Bus {
        self.max_message_size = limit;
        self
    }

    /// The size limit of what this bus publishes, and of what its subscriptions receive unless
    /// told otherwise.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Sets how many events may come before a published one in its causation chain (see
    /// [`Publish::caused_by`]), [`DEFAULT_MAX_CAUSATION_DEPTH`] by default: a publish deeper than
    /// that fails with [`PublishError::CausationTooDeep`] before anything reaches the broker,
    /// which ends a publish loop. Raise it for workflows that are meant to be longer; the bound
    /// counts across services, so each service's bus should allow it.
    pub fn with_max_causation_depth(mut self, bound: u32) -> Bus {
        self.max_causation_depth = bound;
        self
    }

    /// How many events may come before one this bus publishes in its causation chain.
    pub fn max_causation_depth(&self) -> u32 {
        self.max_causation_depth
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
            let message = self.message(&topic, event, PublishOptions::default())?;
            let id = message.envelope.id.clone();
            telemetry::record_id(&span, &id);
            let kept = self.keep_for_fallback(&message);
            match self.broker.try_publish(&topic, message) {
                Ok(confirmed) => Either::Left((id, confirmed, kept)),
                Err(message) => Either::Right((id, self.broker.publish(&topic, message), kept)),
            }
        };
        match publish {
            Either::Left((id, confirmed, kept)) => {
                drop(span);
                // Confirmed without waiting: count it against the task's budget like any
                // tokio resource, so a publishing loop lets other tasks run.
                tokio::task::consume_budget().await;
                match confirmed {
                    Ok(confirmed) => Ok(Receipt::new(id, confirmed)),
                    Err(e) => self.fall_back(&topic, id, kept, e.into()).await,
                }
            }
            Either::Right((id, publish, kept)) => {
                self.settle(&topic, id, publish, kept, self.publish_timeout)
                    .instrument(span)
                    .await
            }
        }
    }

    /// A copy of `message` for the fallback, when the bus has one: two reference counts.
    fn keep_for_fallback(&self, message: &Message) -> Option<Message> {
        self.fallback.as_ref().map(|_| message.clone())
    }

    /// Waits for the broker's confirmation of `publish`, the event `id`, and hands the message
    /// `kept` to the fallback if it fails.
    async fn settle(
        &self,
        topic: &Topic,
        id: EventId,
        publish: BrokerPublish<'_>,
        kept: Option<Message>,
        timeout: Duration,
    ) -> Result<Receipt, PublishError> {
        match confirm(topic, publish, timeout).await {
            Ok(confirmed) => Ok(Receipt::new(id, confirmed)),
            Err(e) => self.fall_back(topic, id, kept, e).await,
        }
    }

    /// Stores a message the broker did not take in the fallback, if there is one; otherwise,
    /// or if the fallback fails too, the publish fails.
    async fn fall_back(
        &self,
        topic: &Topic,
        id: EventId,
        kept: Option<Message>,
        error: PublishError,
    ) -> Result<Receipt, PublishError> {
        let (Some(fallback), Some(message)) = (&self.fallback, kept) else {
            return Err(error);
        };
        // A relay could never publish it either.
        if matches!(error, PublishError::Broker(BrokerError::Unwritable { .. })) {
            return Err(error);
        }
        match fallback.store(topic, &message).await {
            Ok(()) => {
                tracing::warn!(
                    messaging.destination.name = %topic,
                    messaging.message.id = %id,
                    error = %error,
                    "publish: the broker did not take the event; it is stored in the fallback for a relay to publish"
                );
                Ok(Receipt::deferred(id))
            }
            Err(store) => Err(PublishError::Fallback {
                publish: Box::new(error),
                store,
            }),
        }
    }

    /// Publishes `event` with options (partition key, subject, correlation, causation, trace,
    /// the event that caused it, timeout); await the returned builder.
    pub fn publish_with<'a, E: Event>(&'a self, event: &'a E) -> Publish<'a, E> {
        Publish {
            bus: self,
            event,
            options: PublishOptions::default(),
        }
    }

    /// What [`Bus::publish`] would send for `event`, without sending it: its checked topic and
    /// the message (a fresh envelope with this bus's source, and the encoded data), refused as
    /// [`Bus::publish`] would refuse it. For a transactional outbox, which stores it now and
    /// sends it later.
    /// [`Publish::prepare`] does the same with options, such as the event that caused it.
    pub fn prepare<E: Event>(&self, event: &E) -> Result<(Topic, Message), PublishError> {
        self.publish_with(event).prepare()
    }

    /// The message for `event` on `topic` (already checked), refused when deeper in its
    /// causation chain than the bound or above the size limit.
    pub(crate) fn message<E: Event>(
        &self,
        topic: &Topic,
        event: &E,
        options: PublishOptions<'_>,
    ) -> Result<Message, PublishError> {
        let causation_depth = match options.cause {
            Some(cause) => self.causation_depth(topic, cause)?,
            None => 0,
        };
        self.message_at(topic, event, options, causation_depth)
    }

    /// [`Bus::message`] at a causation depth already known, refused above the size limit.
    pub(crate) fn message_at<E: Event>(
        &self,
        topic: &Topic,
        event: &E,
        options: PublishOptions<'_>,
        causation_depth: u32,
    ) -> Result<Message, PublishError> {
        let envelope = self.envelope::<E>(options, causation_depth, || event.key());
        let data = E::Codec::to_bytes(event, E::SCHEMA)?;
        size::check(envelope.size() + data.len(), self.max_message_size).map_err(|too_large| {
            PublishError::TooLarge {
                topic: topic.clone(),
                size: too_large.size,
                limit: too_large.limit,
            }
        })?;
        let message = Message {
            envelope: Arc::new(envelope),
            data,
        };
        Ok(message)
    }

    /// The attributes of an event of type `E` at `causation_depth`, with `options` applied
    /// and `key` asked for the partition key when they set none.
    pub(crate) fn envelope<E: Event>(
        &self,
        options: PublishOptions<'_>,
        causation_depth: u32,
        key: impl FnOnce() -> Option<String>,
    ) -> Envelope {
        let cause = options.cause;
        let mut envelope = Envelope {
            partition_key: options.key.or_else(key),
            subject: options.subject,
            correlation_id: options
                .correlation_id
                .or_else(|| cause.map(|c| causation::correlation_of(c).to_owned())),
            causation_id: options
                .causation_id
                .or_else(|| cause.map(|c| c.id.to_string())),
            causation_depth,
            traceparent: options.traceparent,
            ..Envelope::new(
                self.source.clone(),
                Cow::Borrowed(E::TYPE),
                E::Codec::CONTENT_TYPE,
                Some(Cow::Borrowed(E::DATA_SCHEMA)),
            )
        };
        // The trace of the publish span, or of the caller's span when that one is off.
        #[cfg(feature = "otel")]
        telemetry::trace_context::inject(&mut envelope);
        // Neither set nor a span to carry: the trace the cause was in.
        if envelope.traceparent.is_none()
            && let Some(cause) = cause
        {
            envelope.traceparent.clone_from(&cause.traceparent);
            envelope.tracestate.clone_from(&cause.tracestate);
        }
        envelope
    }

    /// The depth of an event on `topic` caused by `cause`: one more than the cause's, refused
    /// above the bound.
    fn causation_depth(&self, topic: &Topic, cause: &Envelope) -> Result<u32, PublishError> {
        let depth = cause.causation_depth.saturating_add(1);
        if depth > self.max_causation_depth {
            return Err(PublishError::CausationTooDeep {
                topic: topic.clone(),
                depth,
                bound: self.max_causation_depth,
                chain: CausationChain::of(cause),
            });
        }
        Ok(depth)
    }
}

/// A broker's publish in flight.
type BrokerPublish<'a> =
    Pin<Box<dyn Future<Output = Result<Confirmation, BrokerError>> + Send + 'a>>;

/// Waits for the broker's confirmation of `publish`. Only the broker's (boxed) future and the
/// timer live across the wait, not the message, which keeps every publish's future small.
async fn confirm(
    topic: &Topic,
    mut publish: BrokerPublish<'_>,
    timeout: Duration,
) -> Result<Confirmation, PublishError> {
    match deadline::within(timeout, publish.as_mut()).await {
        Ok(confirmed) => Ok(confirmed?),
        Err(_) => Err(PublishError::Timeout {
            topic: topic.clone(),
            after: timeout,
        }),
    }
}

#[derive(Default)]
pub(crate) struct PublishOptions<'a> {
    key: Option<String>,
    subject: Option<String>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    traceparent: Option<String>,
    cause: Option<&'a Envelope>,
    timeout: Option<Duration>,
}

impl<'a> PublishOptions<'a> {
    /// No options but the event that caused this one, if any.
    pub(crate) fn caused_by(cause: Option<&'a Envelope>) -> Self {
        PublishOptions {
            cause,
            ..PublishOptions::default()
        }
    }
}

/// A publish with options; `.await` it to send.
#[must_use = "a publish does nothing until awaited"]
pub struct Publish<'a, E> {
    bus: &'a Bus,
    event: &'a E,
    options: PublishOptions<'a>,
}

impl<'a, E: Event> Publish<'a, E> {
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

    /// Publishes the event in reaction to `cause`, the event a handler received (its
    /// [`Received`](crate::Received), or an [`Envelope`]), continuing its chain: the event
    /// carries the cause's correlation id (the cause's own id when it carries none, as it
    /// started the conversation), the cause's id as its causation id, the cause's trace, and a
    /// `causationdepth` one more than the cause's.
    ///
    /// The trace is the one the options or the current span give, as for any publish, and the
    /// cause's `traceparent` and `tracestate` otherwise: with the feature `otel`, a handler's
    /// `process` span already continues the cause's trace, and the publish is its child. The
    /// other options win over what the cause gives, whatever the order they are set in.
    ///
    /// A publish that would be deeper than the bus's bound
    /// ([`Bus::with_max_causation_depth`]) fails with [`PublishError::CausationTooDeep`] before
    /// anything reaches the broker: a handler that publishes to the topic it consumes, or a
    /// cycle of services, stops there, and the handler that returns that error (with `?`)
    /// dead-letters its event at once, the chain in the reason.
    pub fn caused_by(mut self, cause: &'a (impl AsRef<Envelope> + ?Sized)) -> Self {
        self.options.cause = Some(cause.as_ref());
        self
    }

    /// How long to wait for the broker's confirmation (instead of the bus's default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// What awaiting this publish would send, without sending it: the checked topic and the
    /// message with every option applied, refused as the publish would refuse it (a causation
    /// chain too deep included). For a transactional outbox, which stores it now and sends it
    /// later; the timeout does not apply.
    pub fn prepare(self) -> Result<(Topic, Message), PublishError> {
        let topic = Topic::of::<E>()?;
        let message = self.bus.message(&topic, self.event, self.options)?;
        Ok((topic, message))
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
                    let message = bus.message(&topic, self.event, self.options)?;
                    let id = message.envelope.id.clone();
                    telemetry::record_id(&span, &id);
                    let kept = bus.keep_for_fallback(&message);
                    (id, bus.broker.publish(&topic, message), kept)
                };
                let (id, publish, kept) = publish;
                bus.settle(&topic, id, publish, kept, timeout)
                    .instrument(span)
                    .await
            }
            .await;
            bus.record::<E>(started, &published);
            published
        })
    }
}

#[cfg(test)]
mod tests;
