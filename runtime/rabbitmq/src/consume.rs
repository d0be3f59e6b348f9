//! Subscriptions: a consumer on a group's queue or a queue of the subscriber's own, and the
//! settling of what it delivers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Consumer};

use super::topology::{self, ATTEMPT_HEADER, DELAY_HEADER};
use super::{NAME, Shared, binding};
use tidings_core::adapter::Backoff;
use tidings_core::broker::{
    Acker, BrokerError, DeadLetter, Delivery, DeliveryStream, Nack, SubscribeRequest,
};
use tidings_core::topic::Topic;

pub(super) async fn subscribe(
    shared: Arc<Shared>,
    request: SubscribeRequest,
) -> Result<Box<dyn DeliveryStream>, BrokerError> {
    let queue = match request.group {
        Some(group) => Queue::Group(group),
        None => Queue::FanOut,
    };
    let consumer = Consuming::start(Source {
        shared,
        topic: request.topic,
        queue,
        prefetch: request.prefetch,
    })
    .await?;
    Ok(Box::new(RabbitDeliveries(consumer)))
}

/// The queue a consumer takes its messages from, declared each time it consumes.
pub(super) enum Queue {
    /// A plain subscriber's own, bound to the topic.
    FanOut,
    /// The one the subscribers of this group share, bound to the topic.
    Group(String),
    /// The one the servers of this group share, bound to the topic on the rpc exchange.
    Requests(String),
}

/// What a consumer consumes from, kept to consume again after the connection was lost.
pub(super) struct Source {
    pub(super) shared: Arc<Shared>,
    pub(super) topic: Topic,
    pub(super) queue: Queue,
    /// As asked; the channel's prefetch is this, within what AMQP can say.
    pub(super) prefetch: usize,
}

/// A consumer on its channel.
struct Open {
    channel: Channel,
    consumer: Consumer,
    queue: Arc<str>,
}

impl Source {
    fn operation(&self) -> String {
        let topic = &self.topic;
        match &self.queue {
            Queue::FanOut => format!("subscribe to {topic}"),
            Queue::Group(group) => format!("subscribe to {topic} in group {group}"),
            Queue::Requests(group) => format!("serve {topic} in group {group}"),
        }
    }

    /// Opens a channel and starts consuming on it, within the operation timeout: a server that
    /// is still starting can take the connection and then leave a request unanswered, which
    /// would otherwise stall the consumer for good.
    async fn open(&self) -> Result<Open, BrokerError> {
        let shared = &self.shared;
        let operation = self.operation();
        let failure = |e| shared.failure(&operation, e);
        let live = shared.live().await?;
        let channel = bounded(shared, &operation, async {
            live.connection.create_channel().await.map_err(failure)
        })
        .await?;
        let consumed = bounded(shared, &operation, self.consume(&channel)).await;
        if consumed.is_err() {
            abandon(channel);
        }
        consumed
    }

    /// Sets the prefetch, declares the queue and starts a consumer on `channel`.
    async fn consume(&self, channel: &Channel) -> Result<Open, BrokerError> {
        let shared = &self.shared;
        let failure = |e| shared.failure(self.operation(), e);
        let prefetch = u16::try_from(self.prefetch).unwrap_or(u16::MAX).max(1);
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(failure)?;
        let config = &shared.config;
        let topic = &self.topic;
        let queue = match &self.queue {
            Queue::FanOut => topology::declare_fan_out(channel, config, topic).await,
            Queue::Group(group) => topology::declare_group(channel, config, topic, group).await,
            Queue::Requests(group) => topology::declare_rpc(channel, config, topic, group).await,
        }
        .map_err(failure)?;
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(failure)?;
        Ok(Open {
            channel: channel.clone(),
            consumer,
            queue: queue.into(),
        })
    }

    /// Opens again until it works, connecting again as needed.
    async fn reopen(&self) -> Open {
        let mut backoff = Backoff::new();
        loop {
            match self.open().await {
                Ok(open) => {
                    tracing::info!(
                        messaging.system = crate::NAME,
                        messaging.destination.name = self.topic.as_str(),
                        server.address = self.shared.address.as_str(),
                        "{}: consuming again",
                        self.operation(),
                    );
                    return open;
                }
                Err(error) => tracing::warn!(
                    messaging.system = crate::NAME,
                    messaging.destination.name = self.topic.as_str(),
                    error = %error,
                    "{}: cannot consume yet; trying again after a backoff",
                    self.operation(),
                ),
            }
            backoff.wait().await;
        }
    }
}

/// A consumer that consumes again, on a new channel, whenever its channel or connection was
/// lost, until it is closed: what it held unsettled went back to the queue with the channel (or
/// with the queue, when that went with its last consumer).
pub(super) struct Consuming {
    source: Source,
    /// `None` while it consumes again.
    open: Option<Open>,
    closed: bool,
}

/// A message a consumer took, and the channel and queue it came from.
pub(super) struct Consumed {
    pub(super) delivery: lapin::message::Delivery,
    /// Settles the message: it stays open until then.
    pub(super) channel: Channel,
    pub(super) queue: Arc<str>,
}

impl Consuming {
    /// Starts consuming from `source`; fails if it cannot at first.
    pub(super) async fn start(source: Source) -> Result<Consuming, BrokerError> {
        let open = source.open().await?;
        Ok(Consuming {
            source,
            open: Some(open),
            closed: false,
        })
    }

    /// What it consumes.
    pub(super) fn source(&self) -> &Source {
        &self.source
    }

    /// The next message; `None` once closed.
    pub(super) async fn next(&mut self) -> Option<Consumed> {
        loop {
            if self.closed {
                return None;
            }
            if let Some(open) = &mut self.open
                && let Some(Ok(delivery)) = watch(open).await
            {
                return Some(Consumed {
                    delivery,
                    channel: open.channel.clone(),
                    queue: open.queue.clone(),
                });
            }
            if self.open.take().is_some() {
                tracing::warn!(
                    messaging.system = crate::NAME,
                    messaging.destination.name = self.source.topic.as_str(),
                    server.address = self.source.shared.address.as_str(),
                    "{}: channel lost; consuming again once it is back",
                    self.source.operation(),
                );
            }
            // Boxed, so the rare path's futures do not weigh on every message's.
            self.open = Some(Box::pin(self.source.reopen()).await);
        }
    }

    /// Stops consuming, and gives back what it prefetched; what it handed out can still be
    /// settled.
    pub(super) async fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        if let Some(mut open) = self.open.take() {
            cancel(&mut open, &self.source.topic).await;
        }
    }
}

struct RabbitDeliveries(Consuming);

#[async_trait]
impl DeliveryStream for RabbitDeliveries {
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        let consumed = self.0.next().await?;
        Some(Ok(deliver(&self.0.source().shared, consumed)))
    }

    async fn close(&mut self) {
        self.0.close().await;
    }
}

/// Stops the consumer of `open` (consuming `topic`) and gives back what it prefetched. The
/// channel stays open while deliveries handed out are settled.
async fn cancel(open: &mut Open, topic: &Topic) {
    let tag = open.consumer.tag();
    if let Err(error) = open
        .channel
        .basic_cancel(tag, BasicCancelOptions::default())
        .await
    {
        tracing::warn!(
            messaging.system = crate::NAME,
            messaging.destination.name = topic.as_str(),
            error = %error,
            "could not cancel the consumer of a closed subscription; the server drops it with its channel",
        );
    }
    // Prefetched messages nobody will see go back to the queue now.
    while let Some(Some(Ok(delivery))) = open.consumer.next().now_or_never() {
        if let Err(error) = delivery.acker.nack(REQUEUE).await {
            tracing::warn!(
                messaging.system = crate::NAME,
                messaging.destination.name = topic.as_str(),
                error = %error,
                "could not give back a prefetched message; the server requeues it when the channel closes",
            );
        }
    }
}

/// How often an idle consumer checks that its channel is still open.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The consumer's next delivery, or `None` once its channel is no longer open: a consumer is
/// not always woken when the connection under it is lost, and would then wait for good.
async fn watch(open: &mut Open) -> Option<lapin::Result<lapin::message::Delivery>> {
    loop {
        match tokio::time::timeout(WATCH_INTERVAL, open.consumer.next()).await {
            Ok(next) => return next,
            Err(_) if open.channel.status().connected() => continue,
            Err(_) => return None,
        }
    }
}

/// Closes a channel this subscription gave up on, without waiting: messages the server may
/// already have handed to it go back to the queue.
pub(super) fn abandon(channel: Channel) {
    tokio::spawn(async move {
        if let Err(error) = channel.close(200, "abandoned".into()).await {
            // Closed already, most likely: what it held went back to the queue then.
            tracing::debug!(
                messaging.system = crate::NAME,
                error = %error,
                "could not close an abandoned channel",
            );
        }
    });
}

fn deliver(shared: &Arc<Shared>, consumed: Consumed) -> Delivery {
    let Consumed {
        delivery,
        channel,
        queue,
    } = consumed;
    let headers = delivery.properties.headers().as_ref();
    let header = |name: &str| {
        headers
            .and_then(|h| h.inner().get(name))
            .and_then(binding::count)
    };
    // Attempts before this queue got it (a delayed retry), then deliveries by this queue.
    let before = header(ATTEMPT_HEADER).unwrap_or(1);
    let redeliveries = header("x-delivery-count").unwrap_or(u64::from(delivery.redelivered));
    let attempt = u32::try_from(before + redeliveries).unwrap_or(u32::MAX);
    let data = Bytes::from(delivery.data);
    Delivery {
        message: binding::read(&delivery.properties, data.clone()),
        attempt,
        acker: Box::new(RabbitAcker {
            shared: shared.clone(),
            unsettled: Unsettled::new(channel, delivery.acker, "delivery"),
            queue,
            properties: delivery.properties,
            data,
            attempt,
        }),
    }
}

/// A message taken from a queue and not settled yet. It keeps the channel that delivered it
/// open, since the message is settled on that channel, and dropped unsettled, it gives the
/// message back to the queue at once.
pub(super) struct Unsettled {
    channel: Channel,
    /// `Some` until settled.
    acker: Option<lapin::Acker>,
    /// What the message is to its consumer (`delivery`, `request`), in what is logged.
    what: &'static str,
}

impl Unsettled {
    pub(super) fn new(channel: Channel, acker: lapin::Acker, what: &'static str) -> Unsettled {
        Unsettled {
            channel,
            acker: Some(acker),
            what,
        }
    }

    /// The channel that delivered it.
    pub(super) fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Acks it, unless it is settled already.
    pub(super) async fn ack(&mut self, shared: &Shared) -> Result<(), BrokerError> {
        let Some(acker) = self.acker.take() else {
            return Ok(());
        };
        acker
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(|e| shared.failure(format_args!("ack a {}", self.what), e))
    }

    /// Gives it back to the queue, unless it is settled already.
    async fn requeue(&mut self, shared: &Shared) -> Result<(), BrokerError> {
        let Some(acker) = self.acker.take() else {
            return Ok(());
        };
        acker
            .nack(REQUEUE)
            .await
            .map(drop)
            .map_err(|e| shared.failure(format_args!("nack a {}", self.what), e))
    }
}

/// Back to the queue.
const REQUEUE: BasicNackOptions = BasicNackOptions {
    requeue: true,
    multiple: false,
};

impl Drop for Unsettled {
    fn drop(&mut self) {
        if let Some(acker) = self.acker.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let channel = self.channel.clone();
            let what = self.what;
            runtime.spawn(async move {
                if let Err(error) = acker.nack(REQUEUE).await {
                    tracing::warn!(
                        messaging.system = crate::NAME,
                        error = %error,
                        "could not give back a {what} dropped unsettled; the server requeues it when its channel closes",
                    );
                }
                drop(channel);
            });
        }
    }
}

struct RabbitAcker {
    shared: Arc<Shared>,
    unsettled: Unsettled,
    /// The queue it came from, where a delayed retry goes back to.
    queue: Arc<str>,
    properties: BasicProperties,
    data: Bytes,
    attempt: u32,
}

impl RabbitAcker {
    async fn ack(&mut self) -> Result<(), BrokerError> {
        self.unsettled.ack(&self.shared).await
    }

    /// Publishes a copy of the message, mandatory, declaring its route first when this broker
    /// has not yet, and once more if it was returned unroutable (the route was deleted).
    async fn republish(
        &self,
        route: Route<'_>,
        properties: BasicProperties,
    ) -> Result<(), BrokerError> {
        let config = &self.shared.config;
        let (name, exchange, routing_key) = match &route {
            Route::Delay(millis) => (
                topology::delay_queue(config, *millis),
                topology::delay_exchange(config),
                self.queue.to_string(),
            ),
            Route::DeadLetters(topic) => (
                topic.as_str().to_owned(),
                config.exchange.clone(),
                topic.as_str().to_owned(),
            ),
        };
        for _ in 0..2 {
            if !self.shared.is_declared(&name) {
                let declared = match &route {
                    Route::Delay(millis) => {
                        topology::declare_delay(self.unsettled.channel(), config, *millis).await
                    }
                    Route::DeadLetters(topic) => {
                        topology::declare_dead_letters(self.unsettled.channel(), config, topic)
                            .await
                    }
                };
                declared.map_err(|e| self.shared.failure(format_args!("declare {name}"), e))?;
                self.shared.set_declared(&name, true);
            }
            let routed = self
                .shared
                .publish(&exchange, &routing_key, true, &self.data, || {
                    Ok(properties.clone())
                })
                .await?;
            if routed {
                return Ok(());
            }
            self.shared.set_declared(&name, false);
        }
        Err(self.shared.rejected(
            format_args!("publish to {name}"),
            "no queue took the message even after declaring it",
        ))
    }
}

/// Where a copy of a delivery is republished.
enum Route<'a> {
    /// Through the delay queue of this many milliseconds, back to the delivery's queue.
    Delay(u64),
    /// To the dead-letter topic.
    DeadLetters(&'a Topic),
}

#[async_trait]
impl Acker for RabbitAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), BrokerError> {
        let shared = self.shared.clone();
        bounded(&shared, "ack a delivery", RabbitAcker::ack(&mut self)).await
    }

    async fn nack(self: Box<Self>, nack: Nack) -> Result<(), BrokerError> {
        let shared = self.shared.clone();
        bounded(&shared, "nack a delivery", self.settle_nack(nack)).await
    }

    async fn dead_letter(self: Box<Self>, letter: DeadLetter) -> Result<(), BrokerError> {
        let shared = self.shared.clone();
        let settle = self.settle_dead_letter(letter);
        bounded(&shared, "dead-letter a delivery", settle).await
    }
}

/// Runs `work` within the operation timeout; running out of it is an unanswered `operation`.
pub(super) async fn bounded<T>(
    shared: &Shared,
    operation: &str,
    work: impl Future<Output = Result<T, BrokerError>>,
) -> Result<T, BrokerError> {
    let limit = shared.config.operation_timeout;
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or_else(|_| Err(shared.unanswered(operation, limit)))
}

/// Settling, each bounded by the operation timeout in [`Acker`]: a delivery whose settling goes
/// unanswered stays unsettled, and the server hands it out again once the channel is gone.
impl RabbitAcker {
    async fn settle_nack(mut self: Box<Self>, nack: Nack) -> Result<(), BrokerError> {
        match nack {
            // Dropped without a dead letter: acked, so the queue's dead-letter route is not
            // taken either.
            Nack::Terminate => RabbitAcker::ack(&mut self).await,
            Nack::Retry(delay) if delay.is_zero() => self.unsettled.requeue(&self.shared).await,
            Nack::Retry(delay) => {
                let millis = topology::delay_bucket(delay);
                let mut headers = self.headers_to_republish();
                let number =
                    |n: u64| AMQPValue::LongString(LongString::from(n.to_string().as_bytes()));
                headers.insert(ShortString::from(DELAY_HEADER), number(millis));
                headers.insert(
                    ShortString::from(ATTEMPT_HEADER),
                    number(u64::from(self.attempt) + 1),
                );
                let properties = self.properties.clone().with_headers(headers);
                self.republish(Route::Delay(millis), properties).await?;
                RabbitAcker::ack(&mut self).await
            }
        }
    }

    /// The headers of this delivery without those that describe its delivery (the server's
    /// count and history of deliveries, the retry's delay and attempt): a copy published again
    /// starts a delivery history of its own, so a stale count would be read on top of the
    /// attempt it carries.
    fn headers_to_republish(&self) -> FieldTable {
        let kept = self
            .properties
            .headers()
            .iter()
            .flat_map(FieldTable::inner)
            .filter(|(name, _)| {
                let name = name.as_str();
                !(name == "x-delivery-count"
                    || name == "x-death"
                    || name.starts_with("x-first-death-")
                    || name.starts_with("x-last-death-")
                    || name == DELAY_HEADER
                    || name == ATTEMPT_HEADER)
            })
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect::<std::collections::BTreeMap<_, _>>();
        FieldTable::from(kept)
    }

    async fn settle_dead_letter(
        mut self: Box<Self>,
        letter: DeadLetter,
    ) -> Result<(), BrokerError> {
        let dead_letters = letter.destination(NAME)?;
        let properties = self
            .properties
            .clone()
            .with_headers(self.headers_to_republish());
        let properties = binding::add_attributes(properties, &letter.attributes());
        self.republish(Route::DeadLetters(&dead_letters), properties)
            .await?;
        RabbitAcker::ack(&mut self).await
    }
}
