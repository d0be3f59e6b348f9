//! Subscribing a typed handler, and the consumer loop that runs it.
//!
//! The loop takes deliveries while fewer than `concurrency` are in flight, turns each into a
//! typed event or a refusal (dead-lettered at once), runs the handler under a timeout with its
//! panics caught, and settles the delivery: ack after success only, otherwise a retry with
//! backoff until the bound, then a dead letter naming the reason, attempts and topic.

use std::any::Any;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::Either;
use futures_util::stream::FuturesUnordered;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::broker::{
    Acker, BrokerError, DeadLetter, Delivery, DeliveryStream, Message, Nack, StartFrom,
    SubscribeRequest,
};
use crate::bus::Bus;
use crate::dedup::DedupStore;
use crate::envelope::Envelope;
use crate::event::Event;
use crate::handler::{Handler, HandlerError, Received};
use crate::receive::{self, DataSchema, Refusal};
use crate::retry::RetryPolicy;
use crate::telemetry::metrics::{ConsumerMetrics, Timed};
use crate::telemetry::{self, consumer_event, kind};
use crate::topic::{Topic, TopicError};

mod handling;
#[cfg(test)]
mod telemetry_tests;
#[cfg(test)]
mod tests;

/// A delivery being settled off the common path (boxed, so its state does not weigh on every
/// message).
type Settling<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// How long a handler may run on one message unless told otherwise.
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(30);

/// How a subscription consumes: group, start position, concurrency, retries, timeout, dedup,
/// size limit, whether `dataschema` is required.
#[derive(Clone)]
pub struct SubscribeOptions {
    group: Option<String>,
    start: StartFrom,
    concurrency: usize,
    retry: RetryPolicy,
    handler_timeout: Duration,
    dedup: Option<Arc<dyn DedupStore>>,
    max_message_size: Option<usize>,
    data_schema: DataSchema,
}

impl Default for SubscribeOptions {
    /// No group (every plain subscriber gets every event), new events only, one at a time (in
    /// delivery order; see [`SubscribeOptions::concurrency`] for retries),
    /// [`RetryPolicy::default`], [`DEFAULT_HANDLER_TIMEOUT`], no dedup, the bus's size limit,
    /// `dataschema` optional.
    fn default() -> Self {
        SubscribeOptions {
            group: None,
            start: StartFrom::New,
            concurrency: 1,
            retry: RetryPolicy::default(),
            handler_timeout: DEFAULT_HANDLER_TIMEOUT,
            dedup: None,
            max_message_size: None,
            data_schema: DataSchema::Optional,
        }
    }
}

impl std::fmt::Debug for SubscribeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscribeOptions")
            .field("group", &self.group)
            .field("start", &self.start)
            .field("concurrency", &self.concurrency)
            .field("retry", &self.retry)
            .field("handler_timeout", &self.handler_timeout)
            .field("dedup", &self.dedup.is_some())
            .field("max_message_size", &self.max_message_size)
            .field("data_schema", &self.data_schema)
            .finish()
    }
}

impl SubscribeOptions {
    /// Joins the named group: one member of the group gets each event, and the group keeps its
    /// place while no member runs (on brokers that keep it).
    pub fn group(mut self, name: impl Into<String>) -> Self {
        self.group = Some(name.into());
        self
    }

    /// Where a new subscription starts; [`StartFrom::Oldest`] needs a broker that keeps history.
    pub fn start(mut self, start: StartFrom) -> Self {
        self.start = start;
        self
    }

    /// How many events are handled at once (at least 1); also the broker's prefetch. At 1, events
    /// are handled in the order the broker delivers them, except that a failed event waits out
    /// its backoff with the broker where the broker can delay a redelivery, and comes back after
    /// the events behind it. Above 1, events of one key may also be handled out of order.
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self
    }

    /// The retry bound and backoff.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How long the handler may run on one event before the attempt counts as failed.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// Skips events whose id `store` saw handled before (acked without calling the handler).
    /// When the store cannot answer, the event is handled anyway: a duplicate is the lesser harm
    /// next to holding back or dead-lettering events while the store is away.
    ///
    /// Ids are remembered per consumer: a group shares them among its members and across their
    /// restarts; a subscription without a group has ids of its own, so other subscribers of the
    /// topic sharing the store still get every event.
    pub fn dedup(mut self, store: impl DedupStore) -> Self {
        self.dedup = Some(Arc::new(store));
        self
    }

    /// The largest message handled (the bus's [`Bus::max_message_size`] unless set): a larger
    /// one is refused before it is decoded and dead-lettered with its size and the limit, and
    /// the consumer goes on. What counts is the data and each attribute's name and value
    /// ([`Message::size`]); for a message that is no CloudEvent, each header's.
    pub fn max_message_size(mut self, limit: usize) -> Self {
        self.max_message_size = Some(limit);
        self
    }

    /// Refuses, and dead-letters, a message without `dataschema`. By default one is read when
    /// its `type` and content type say it is the event, as CloudEvents producers outside
    /// tidings seldom write `dataschema`; one that names another message is refused either way.
    pub fn require_data_schema(mut self) -> Self {
        self.data_schema = DataSchema::Required;
        self
    }
}

/// Why a subscription did not start.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The event type's topic breaks the topic rule; nothing was asked of the broker.
    #[error("cannot subscribe: {0}")]
    Topic(#[from] TopicError),
    /// The broker refused or failed.
    #[error("cannot subscribe: {0}")]
    Broker(#[from] BrokerError),
    /// The topic is too long to have a dead-letter topic (`dlq.` and the topic), so a message
    /// that cannot be handled would have nowhere to go; nothing was asked of the broker.
    #[error(
        "cannot subscribe: its dead-letter topic breaks the topic rule: {0}; shorten the topic \
         by at least 4 bytes to leave room for the `dlq.` prefix"
    )]
    DeadLetterTopic(TopicError),
    /// The options ask for something this broker does not do.
    #[error(
        "cannot subscribe: {broker} does not support {what}; drop that option or use another broker"
    )]
    Unsupported {
        /// Which broker.
        broker: &'static str,
        /// What it does not do.
        what: &'static str,
    },
}

/// A running subscription. Dropping it stops taking new events (those in flight finish in the
/// background); [`Subscription::shutdown`] also waits for them.
#[must_use = "dropping a Subscription stops it; keep it while events should be handled"]
#[derive(Debug)]
pub struct Subscription {
    topic: Topic,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    ended: Arc<OnceLock<BrokerError>>,
}

impl Subscription {
    /// The handle of a consumer `task` on `topic`, stopped through `stop`, which records in
    /// `ended` why it stopped on its own.
    pub(crate) fn new(
        topic: Topic,
        stop: watch::Sender<bool>,
        task: JoinHandle<()>,
        ended: Arc<OnceLock<BrokerError>>,
    ) -> Subscription {
        Subscription {
            topic,
            stop,
            task,
            ended,
        }
    }

    /// Stops taking new events, waits for those in flight to be handled and settled, then closes
    /// the broker subscription.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        // The consumer task only ends by returning; a panic inside a handler is caught there.
        if let Err(error) = self.task.await {
            tracing::error!(
                messaging.destination.name = self.topic.as_str(),
                error = %error,
                "the consumer task failed",
            );
        }
    }

    /// The subscribed topic.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// Whether the consumer still runs; it stops on shutdown or when the broker ends the
    /// subscription (a closed connection the adapter could not recover).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Why the consumer stopped on its own: the transport error its adapter could not recover
    /// from, or [`BrokerError::Closed`] when the broker ended the subscription. `None` while it
    /// runs, and after a shutdown that was asked for.
    pub fn ended_by(&self) -> Option<&BrokerError> {
        self.ended.get()
    }
}

/// A subscription being set up; `.await` it to start.
#[must_use = "a subscription does nothing until awaited"]
pub struct SubscribeBuilder<E, H> {
    bus: Bus,
    handler: H,
    options: SubscribeOptions,
    event: PhantomData<fn() -> E>,
}

impl<E: Event, H: Handler<E>> SubscribeBuilder<E, H> {
    /// See [`SubscribeOptions::group`].
    pub fn group(mut self, name: impl Into<String>) -> Self {
        self.options = self.options.group(name);
        self
    }

    /// See [`SubscribeOptions::start`].
    pub fn start(mut self, start: StartFrom) -> Self {
        self.options = self.options.start(start);
        self
    }

    /// See [`SubscribeOptions::concurrency`].
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.options = self.options.concurrency(limit);
        self
    }

    /// See [`SubscribeOptions::retry`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.options = self.options.retry(policy);
        self
    }

    /// See [`SubscribeOptions::handler_timeout`].
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.options = self.options.handler_timeout(timeout);
        self
    }

    /// See [`SubscribeOptions::dedup`].
    pub fn dedup(mut self, store: impl DedupStore) -> Self {
        self.options = self.options.dedup(store);
        self
    }

    /// See [`SubscribeOptions::max_message_size`].
    pub fn max_message_size(mut self, limit: usize) -> Self {
        self.options = self.options.max_message_size(limit);
        self
    }

    /// See [`SubscribeOptions::require_data_schema`].
    pub fn require_data_schema(mut self) -> Self {
        self.options = self.options.require_data_schema();
        self
    }

    /// Replaces every option at once.
    pub fn options(mut self, options: SubscribeOptions) -> Self {
        self.options = options;
        self
    }
}

impl<E: Event, H: Handler<E>> IntoFuture for SubscribeBuilder<E, H> {
    type Output = Result<Subscription, SubscribeError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.bus.subscribe_with(self.handler, self.options).await })
    }
}

impl Bus {
    /// Subscribes `handler` to `E`'s topic; set options on the builder, then `.await` it.
    pub fn subscribe<E: Event, H: Handler<E>>(&self, handler: H) -> SubscribeBuilder<E, H> {
        SubscribeBuilder {
            bus: self.clone(),
            handler,
            options: SubscribeOptions::default(),
            event: PhantomData,
        }
    }

    /// Subscribes `handler` to `E`'s topic with `options`, and starts consuming.
    pub async fn subscribe_with<E: Event, H: Handler<E>>(
        &self,
        handler: H,
        options: SubscribeOptions,
    ) -> Result<Subscription, SubscribeError> {
        let topic = Topic::of::<E>()?;
        topic
            .dead_letter()
            .map_err(SubscribeError::DeadLetterTopic)?;
        let broker = self.broker();
        let capabilities = broker.capabilities();
        let unsupported = |what| SubscribeError::Unsupported {
            broker: broker.name(),
            what,
        };
        if options.group.is_some() && !capabilities.groups {
            return Err(unsupported("consumer groups"));
        }
        if options.start == StartFrom::Oldest && !capabilities.history {
            return Err(unsupported("starting from the oldest message"));
        }
        let stream = broker
            .subscribe(SubscribeRequest {
                topic: topic.clone(),
                group: options.group.clone(),
                start: options.start,
                prefetch: options.concurrency,
            })
            .await?;
        // Dedup is per consumer: a group is one, wherever and whenever its members run; a plain
        // subscription is one of its own, as every plain subscriber gets every event.
        let scope = match &options.group {
            Some(group) => crate::dedup::group_scope(topic.as_str(), group),
            None => format!("{topic}~{}", crate::id::EventId::new()),
        };
        let (stop, stopped) = watch::channel(false);
        let ended = Arc::new(OnceLock::new());
        let consumer = Consumer {
            broker: broker.name(),
            group: options.group.clone(),
            ended: ended.clone(),
            handler,
            topic: topic.clone(),
            scope,
            retry: options.retry,
            handler_timeout: options.handler_timeout,
            dedup: options.dedup,
            max_message_size: options.max_message_size.unwrap_or(self.max_message_size()),
            data_schema: options.data_schema,
            broker_delays: capabilities.nack_delay,
            metrics: self
                .records_metrics()
                .then(|| ConsumerMetrics::new(broker.name(), &topic, options.group.as_deref())),
            stopped,
            event: PhantomData,
        };
        let task = tokio::spawn(consumer.run(stream, options.concurrency));
        Ok(Subscription::new(topic, stop, task, ended))
    }
}

struct Consumer<E, H> {
    /// The broker's name, for the error of a subscription it ended.
    broker: &'static str,
    /// The group it consumes in, if any.
    group: Option<String>,
    /// Why the consumer stopped, when it stopped on its own.
    ended: Arc<OnceLock<BrokerError>>,
    handler: H,
    topic: Topic,
    scope: String,
    retry: RetryPolicy,
    handler_timeout: Duration,
    dedup: Option<Arc<dyn DedupStore>>,
    /// Larger messages are refused before they are decoded.
    max_message_size: usize,
    /// Whether a message without `dataschema` is refused.
    data_schema: DataSchema,
    /// A retry is a nack with the backoff as its delay; otherwise the backoff is waited here.
    broker_delays: bool,
    /// The subscription's metrics, when its bus records them.
    metrics: Option<ConsumerMetrics>,
    stopped: watch::Receiver<bool>,
    event: PhantomData<fn() -> E>,
}

/// The stream's next delivery, or `None` once shutdown is asked for, with the stream itself so
/// that it can be used again or closed.
async fn next_delivery(
    mut stream: Box<dyn DeliveryStream>,
    stopped: watch::Receiver<bool>,
) -> (
    Box<dyn DeliveryStream>,
    Option<Option<Result<Delivery, BrokerError>>>,
) {
    let next = tokio::select! {
        biased;
        _ = stop_signal(stopped) => None,
        next = stream.next() => Some(next),
    };
    (stream, next)
}

/// Resolves once shutdown is asked for, or the [`Subscription`] is dropped.
pub(crate) async fn stop_signal(mut stopped: watch::Receiver<bool>) {
    if stopped.wait_for(|stop| *stop).await.is_err() {
        tracing::debug!("a subscription's handle was dropped without a shutdown; it stops");
    }
}

impl<E: Event, H: Handler<E>> Consumer<E, H> {
    async fn run(self, mut stream: Box<dyn DeliveryStream>, concurrency: usize) {
        let stop = stop_signal(self.stopped.clone());
        tokio::pin!(stop);
        if concurrency == 1 {
            // One at a time: no set of futures to keep, and order is kept.
            loop {
                // The value only ever turns to "stop", and an error means the handle is gone.
                if !matches!(self.stopped.has_changed(), Ok(false)) {
                    break;
                }
                // What is queued already is taken without making a future for it.
                let ready = stream.try_next();
                let delivery = match ready {
                    Some(ready) => Some(ready),
                    None => tokio::select! {
                        biased;
                        _ = &mut stop => break,
                        next = stream.next() => next,
                    },
                };
                match delivery {
                    Some(Ok(delivery)) => self.process(delivery).await,
                    ended => {
                        self.end(ended.and_then(Result::err));
                        break;
                    }
                }
                // Taking ready messages never waits, so count them against the task's budget
                // like any tokio resource, or a busy topic would keep other tasks from running.
                tokio::task::consume_budget().await;
            }
        } else {
            stream = self.run_concurrently(stream, concurrency, stop).await;
        }
        stream.close().await;
    }

    /// Up to `concurrency` deliveries at once, until `stop`; gives the stream back to be closed.
    async fn run_concurrently(
        &self,
        stream: Box<dyn DeliveryStream>,
        concurrency: usize,
        mut stop: Pin<&mut impl Future<Output = ()>>,
    ) -> Box<dyn DeliveryStream> {
        let mut in_flight = FuturesUnordered::new();
        // The stream is either here, idle, or inside the wait for its next delivery. The wait is
        // kept across turns of the loop rather than made again each time a handler finishes
        // first, which would cost an allocation and a turn through the adapter's flow control.
        let mut idle = Some(stream);
        let mut wait = None;
        loop {
            if let Some(stream) = idle.as_mut()
                && in_flight.len() < concurrency
            {
                match stream.try_next() {
                    Some(Ok(delivery)) => {
                        in_flight.push(self.process(delivery));
                        tokio::task::consume_budget().await;
                        continue;
                    }
                    Some(Err(error)) => {
                        self.end(Some(error));
                        break;
                    }
                    None => {
                        let stream = idle.take().expect("an idle stream");
                        wait = Some(Box::pin(next_delivery(stream, self.stopped.clone())));
                    }
                }
            }
            tokio::select! {
                biased;
                _ = &mut stop => break,
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                (stream, next) = async { wait.as_mut().expect("a wait").await }, if wait.is_some() => {
                    wait = None;
                    idle = Some(stream);
                    match next {
                        Some(Some(Ok(delivery))) => in_flight.push(self.process(delivery)),
                        Some(ended) => {
                            self.end(ended.and_then(Result::err));
                            break;
                        }
                        // Shutdown.
                        None => break,
                    }
                }
            }
            tokio::task::consume_budget().await;
        }
        let stream = match wait {
            // The wait ends on the same stop signal; a delivery it took at that moment goes
            // back to the broker as its acker is dropped.
            Some(wait) => wait.await.0,
            None => idle.expect("the stream is idle when no wait holds it"),
        };
        while in_flight.next().await.is_some() {}
        stream
    }

    /// Records why the subscription ended on its own: `error`, or the broker closing it.
    fn end(&self, error: Option<BrokerError>) {
        let error = error.unwrap_or(BrokerError::Closed {
            broker: self.broker,
        });
        consumer_event!(
            ERROR,
            self,
            None,
            kind::SUBSCRIPTION_ENDED,
            error = %error,
            "subscription ended by the broker; no more events are handled on it",
        );
        // Set once: the consumer ends here.
        self.ended.get_or_init(|| error);
    }

    /// Handles one delivery, in its `process` span. The synchronous part (decoding) runs here,
    /// so the future made per message stays small.
    fn process(&self, delivery: Delivery) -> impl Future<Output = ()> + Send + '_ {
        let Delivery {
            message,
            attempt,
            acker,
        } = delivery;
        let attempt = attempt.max(1);
        let span = telemetry::process_span(
            self.broker,
            &self.topic,
            self.group.as_deref(),
            message.as_ref().ok().map(|m| &*m.envelope),
            attempt,
        );
        let timer = self.metrics.as_ref().map(ConsumerMetrics::start);
        let work = {
            let _in_span = span.enter();
            self.start(message, attempt, acker)
        };
        Timed::new(work.instrument(span), timer)
    }

    /// Decodes a delivery and starts handling it, or settles it at once.
    fn start(
        &self,
        message: Result<Message, crate::broker::Malformed>,
        attempt: u32,
        acker: Box<dyn Acker>,
    ) -> Either<
        handling::Handling<'_, E, H, impl Future<Output = Result<(), HandlerError>> + Send + '_>,
        Settling<'_>,
    > {
        let decoded = match (
            receive::check_size(&message, self.max_message_size),
            message,
        ) {
            (Err(refusal), message) => Err((refusal, message.ok().map(|m| m.envelope))),
            (Ok(()), Ok(Message { envelope, data })) => {
                match receive::decode_with::<E>(&envelope, &data, self.data_schema) {
                    Ok(event) => Ok((event, envelope)),
                    Err(refusal) => Err((refusal, Some(envelope))),
                }
            }
            (Ok(()), Err(malformed)) => Err((receive::malformed::<E>(&malformed), None)),
        };
        let received = match decoded {
            Ok((event, envelope)) => Received::new(event, envelope, attempt),
            // Rare paths are boxed, so their state does not weigh on every message.
            Err((refusal, envelope)) => {
                let refuse: Settling<'_> = Box::pin(self.refuse(acker, refusal, attempt, envelope));
                return Either::Right(refuse);
            }
        };
        if attempt > self.retry.max_attempts {
            // Back after its last attempt: its consumer stopped before settling it, or its dead
            // letter did not go through. The handler had its attempts.
            let reason = format!(
                "attempt {attempt} is past the bound of {} attempts",
                self.retry.max_attempts
            );
            let envelope = Some(received.shared_envelope().clone());
            let kind = kind::REDELIVERED_PAST_BOUND;
            return Either::Right(Box::pin(
                self.dead_letter(acker, kind, reason, attempt, envelope),
            ));
        }
        match &self.dedup {
            None => Either::Left(self.handling(received, acker, false)),
            Some(store) => Either::Right(Box::pin(self.handle_once(store, received, acker))),
        }
    }

    /// Handles `received` unless `store` saw its id handled before.
    async fn handle_once(
        &self,
        store: &Arc<dyn DedupStore>,
        received: Received<E>,
        acker: Box<dyn Acker>,
    ) {
        match store.seen(&self.scope, &received.envelope().id).await {
            Ok(true) => self.ack(acker, received.envelope()).await,
            Ok(false) => self.handling(received, acker, true).await,
            // A store that cannot answer is no reason to hold back or dead-letter the event: it
            // is handled, at the risk of a duplicate, as it would be without dedup.
            Err(error) => {
                consumer_event!(
                    ERROR,
                    self,
                    Some(received.envelope()),
                    kind::DEDUP_CHECK_FAILED,
                    error = %error,
                    "dedup store cannot answer; the event is handled anyway and may be a duplicate",
                );
                self.handling(received, acker, true).await
            }
        }
    }

    /// Records the id of a handled event, then acks.
    async fn record_and_ack(&self, envelope: Arc<Envelope>, acker: Box<dyn Acker>) {
        if let Some(store) = &self.dedup
            && let Err(error) = store.record(&self.scope, &envelope.id).await
        {
            // Handled already: a store failure here only risks a later duplicate.
            consumer_event!(
                ERROR,
                self,
                Some(&*envelope),
                kind::DEDUP_RECORD_FAILED,
                error = %error,
                "dedup store cannot record a handled event; a redelivery of it would be handled again",
            );
        }
        self.ack(acker, &envelope).await;
    }

    /// Acks; a failure is reported, as the broker may deliver the message again.
    async fn ack(&self, acker: Box<dyn Acker>, envelope: &Envelope) {
        if let Err(error) = acker.ack().await {
            self.ack_failed(envelope, &error);
        }
    }

    /// Reports an ack the broker did not take.
    pub(super) fn ack_failed(&self, envelope: &Envelope, error: &BrokerError) {
        consumer_event!(
            ERROR,
            self,
            Some(envelope),
            kind::ACK_FAILED,
            error = %error,
            "ack failed; the event was handled, and the broker may deliver it again",
        );
    }

    /// A message that is not an `E`: no retry can fix it, so it goes to the dead letters now.
    async fn refuse(
        &self,
        acker: Box<dyn Acker>,
        refusal: Refusal,
        attempt: u32,
        envelope: Option<Arc<Envelope>>,
    ) {
        let reason = refusal.to_string();
        consumer_event!(
            WARN,
            self,
            envelope.as_deref(),
            kind::REFUSED,
            reason = reason.as_str(),
            messaging.tidings.attempt = attempt,
            "refused a message that is not the subscribed event; it is dead-lettered",
        );
        self.dead_letter(acker, kind::REFUSED, reason, attempt, envelope)
            .await;
    }

    /// A failed attempt, of `kind`: retried after a backoff, or dead-lettered once the bound is
    /// reached.
    pub(super) async fn fail(
        &self,
        acker: Box<dyn Acker>,
        kind: &'static str,
        reason: String,
        attempt: u32,
        envelope: Arc<Envelope>,
    ) {
        if self.retry.exhausted(attempt) {
            return self
                .dead_letter(acker, kind, reason, attempt, Some(envelope))
                .await;
        }
        if let Some(metrics) = &self.metrics {
            metrics.retried();
        }
        let delay = self.retry.jittered_delay_after(attempt);
        let nacked = if self.broker_delays {
            acker.nack(Nack::Retry(delay)).await
        } else {
            // The broker redelivers at once, so the wait happens here; a shutdown cuts it short
            // and the message goes back without waiting.
            self.pause(delay).await;
            acker.nack(Nack::Retry(Duration::ZERO)).await
        };
        if let Err(error) = nacked {
            consumer_event!(
                ERROR,
                self,
                Some(&*envelope),
                kind::NACK_FAILED,
                error = %error,
                reason = reason.as_str(),
                messaging.tidings.attempt = attempt,
                "nack failed; the retry waits for the broker to notice the delivery was abandoned",
            );
        }
    }

    /// Moves the message to its dead-letter topic, for a failure of `kind`.
    pub(super) async fn dead_letter(
        &self,
        acker: Box<dyn Acker>,
        kind: &'static str,
        reason: String,
        attempts: u32,
        envelope: Option<Arc<Envelope>>,
    ) {
        let letter = DeadLetter {
            reason,
            attempts,
            topic: self.topic.clone(),
        };
        // Kept for the event: the letter itself goes to the broker.
        let reason = letter.reason.clone();
        // `dead_letter` consumes the acker; when it fails the broker still holds the message
        // unsettled and redelivers it once the acker is gone, past the bound, which sends it
        // straight back here. Waiting first keeps a dead-letter topic that refuses messages (full,
        // unreachable) from turning that into a busy loop.
        match acker.dead_letter(letter).await {
            Ok(()) => {
                consumer_event!(
                    WARN,
                    self,
                    envelope.as_deref(),
                    kind::DEAD_LETTERED,
                    reason = reason.as_str(),
                    attempts,
                    "dead-lettered",
                );
                if let Some(metrics) = &self.metrics {
                    metrics.dead_lettered(kind);
                }
            }
            Err(error) => {
                consumer_event!(
                    ERROR,
                    self,
                    envelope.as_deref(),
                    kind::DEAD_LETTER_FAILED,
                    error = %error,
                    reason = reason.as_str(),
                    attempts,
                    "dead letter failed; the broker keeps the message and delivers it again",
                );
                self.pause(self.retry.delay_after(attempts)).await;
            }
        }
    }

    /// Waits `delay`, or less if shutdown is asked for meanwhile.
    async fn pause(&self, delay: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop_signal(self.stopped.clone()) => {}
        }
    }
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string panic payload")
}
