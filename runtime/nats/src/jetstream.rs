//! JetStream mode: a stream per topic, pull consumers, acknowledgements.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{AckKind, stream};
use async_nats::{HeaderMap, Subject};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{NAME, Shared, binding};
use tidings_core::adapter::Backoff;
use tidings_core::adapter::Outage;
use tidings_core::adapter::lock;
use tidings_core::broker::{
    Acker, BrokerError, Confirmation, DeadLetter, Delivery, DeliveryStream, Message, Nack,
    Position, StartFrom, SubscribeRequest,
};
use tidings_core::envelope::attr;
use tidings_core::topic::Topic;

/// How long one pull request stays open on the server. Short, since a pull the server lost (a
/// restart) is only noticed once the client gives up on it, a few seconds after this.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// How long a message whose acker was dropped unsettled waits before it is delivered again. A
/// consumer that died usually leaves pull requests behind for an instant; a redelivery racing
/// them is not counted as an attempt by the server (seen on nats-server 2.9).
const REDELIVER_AFTER_DROP: Duration = Duration::from_millis(50);
/// How long an ephemeral consumer outlives a subscriber that vanished without closing.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(300);

/// The stream a topic is kept in.
#[derive(Clone, Debug)]
pub(super) struct StreamName {
    name: Arc<str>,
    /// Made by tidings for this topic alone, rather than someone's stream that captures it.
    own: bool,
}

impl StreamName {
    /// The stream's name on the server.
    pub(super) fn name(&self) -> &str {
        &self.name
    }
}

/// The known streams, to read (every publish) or to change (once per topic).
fn streams(shared: &Shared) -> RwLockReadGuard<'_, HashMap<String, StreamName>> {
    shared
        .streams
        .read()
        .unwrap_or_else(PoisonError::into_inner)
}

fn streams_mut(shared: &Shared) -> RwLockWriteGuard<'_, HashMap<String, StreamName>> {
    shared
        .streams
        .write()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The stream of `topic`, created or brought up to date with the settings the first time the
/// topic is used by this broker.
pub(super) async fn stream_for(shared: &Shared, topic: &str) -> Result<StreamName, BrokerError> {
    if let Some(known) = streams(shared).get(topic) {
        return Ok(known.clone());
    }
    // Boxed: the client's futures for making a stream take kilobytes, which every publish's
    // future would otherwise carry (and allocate) for a path taken once per topic.
    Box::pin(create_stream(shared, topic)).await
}

/// Makes or updates the stream of `topic`, or finds another stream that captures it.
async fn create_stream(shared: &Shared, topic: &str) -> Result<StreamName, BrokerError> {
    let name = format!("{}{}", shared.config.stream_prefix, topic.replace('.', "-"));
    let config = stream::Config {
        name: name.clone(),
        subjects: vec![topic.to_owned()],
        max_age: shared.config.max_age,
        duplicate_window: shared.config.duplicate_window,
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    };
    let found = match shared.js.create_or_update_stream(config).await {
        Ok(_) => StreamName {
            name: name.into(),
            own: true,
        },
        // Most likely another stream already captures the subject: read from that one.
        Err(create_error) => match shared.js.stream_by_subject(topic).await {
            Ok(other) if other != name => StreamName {
                name: other.into(),
                own: false,
            },
            _ => {
                return Err(shared.failure(
                    format_args!("create the stream {name} for {topic}"),
                    create_error,
                ));
            }
        },
    };
    streams_mut(shared).insert(topic.to_owned(), found.clone());
    Ok(found)
}

pub(super) async fn publish(
    shared: &Shared,
    topic: &Topic,
    message: Message,
) -> Result<Confirmation, BrokerError> {
    publish_as(shared, topic, message, None).await
}

/// Publishes `message`, deduplicated by `dedup_id` rather than its event id when given (a
/// replay of an event the stream may still remember).
pub(super) async fn publish_as(
    shared: &Shared,
    topic: &Topic,
    message: Message,
    dedup_id: Option<&str>,
) -> Result<Confirmation, BrokerError> {
    let headers = binding::headers(&message.envelope, &[]);
    let id = dedup_id.unwrap_or(&message.envelope.id);
    store(shared, topic.as_str(), headers, message.data, id).await
}

/// Publishes `data` with `headers` to the stream of `subject`, deduplicated by `id`, and waits
/// until the server stored it, or said it holds one of the same id already.
pub(super) async fn store(
    shared: &Shared,
    subject: &str,
    headers: HeaderMap,
    data: Bytes,
    id: &str,
) -> Result<Confirmation, BrokerError> {
    stream_for(shared, subject).await?;
    let publish = PublishMessage::build()
        .payload(data)
        .headers(headers)
        .message_id(id);
    // The client's publish future is most of a kilobyte. Boxed on its own (the message moved
    // straight into it), it keeps the future of every publish under the size where glibc's
    // allocator sweeps its free lists on each allocation, which was a fifth of the adapter's CPU
    // time per event.
    let send = Box::pin(shared.js.send_publish(subject.to_owned(), publish));
    let stored = match send.await {
        Ok(ack) => ack.await,
        Err(e) => Err(e),
    };
    stored
        .map(|ack| Confirmation {
            position: Some(Position::Sequence {
                stream: ack.stream,
                sequence: ack.sequence,
            }),
            duplicate: ack.duplicate,
        })
        .map_err(|e| {
            if e.kind() == PublishErrorKind::StreamNotFound {
                // Deleted behind our back: the next publish makes it again.
                streams_mut(shared).remove(subject);
            }
            shared.failure(format_args!("publish to {subject}"), e)
        })
}

pub(super) async fn subscribe(
    shared: Arc<Shared>,
    request: SubscribeRequest,
) -> Result<Box<dyn DeliveryStream>, BrokerError> {
    let invalid = |c: char| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\');
    if let Some(group) = &request.group
        && (group.is_empty() || group.contains(invalid))
    {
        return Err(shared.rejected(
            format_args!("subscribe to {} in group {group:?}", request.topic),
            "a group name is a consumer name: non-empty, without whitespace, `.`, `*`, `>`, \
             `/` or `\\`",
        ));
    }
    let prefetch = request.prefetch.max(1);
    // Only an ephemeral consumer is made again from a sequence; a group's durable consumer keeps
    // its own account (and another member may settle what this one nacked).
    let in_flight = Arc::new(InFlight {
        unsettled: request.group.is_none().then(Mutex::default),
        ..InFlight::default()
    });
    tokio::spawn(keep_in_progress(
        shared.clone(),
        Arc::downgrade(&in_flight),
        shared.config.ack_wait / 3,
    ));
    let mut source = Source {
        shared,
        request,
        prefetch,
        consumer: None,
        last_sequence: None,
        oldest_unsettled: None,
        outage: Outage::default(),
    };
    let consumer = source.open().await?;
    Ok(Box::new(Deliveries {
        permits: Arc::new(Semaphore::new(prefetch)),
        in_flight,
        source,
        consumer: Some(consumer),
        batch: None,
        backoff: Backoff::new(),
        closed: false,
    }))
}

/// The reply subjects of a subscription's unsettled deliveries, by a token of each; and, for a
/// plain subscription, the stream sequences of the messages it has not settled for good (handed
/// out, or nacked to come back), where a new ephemeral consumer has to start for none of them to
/// be skipped.
#[derive(Default)]
struct InFlight {
    next_token: std::sync::atomic::AtomicU64,
    replies: Mutex<HashMap<u64, Subject>>,
    unsettled: Option<Mutex<BTreeSet<u64>>>,
}

impl InFlight {
    fn insert(&self, reply: Subject) -> u64 {
        let token = self
            .next_token
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.replies).insert(token, reply);
        token
    }

    fn remove(&self, token: u64) -> Option<Subject> {
        lock(&self.replies).remove(&token)
    }

    /// The oldest message handed out and not settled for good.
    fn oldest_unsettled(&self) -> Option<u64> {
        lock(self.unsettled.as_ref()?).first().copied()
    }

    /// `sequence` was handed out.
    fn handed_out(&self, sequence: u64) {
        if let Some(unsettled) = &self.unsettled {
            lock(unsettled).insert(sequence);
        }
    }

    /// `sequence` was acked or terminated.
    fn settled(&self, sequence: u64) {
        if let Some(unsettled) = &self.unsettled {
            lock(unsettled).remove(&sequence);
        }
    }
}

/// Tells the server, every `every`, that the deliveries still in a handler's hands are being
/// worked on, so a handler may run longer than the ack wait while a consumer that died gets its
/// messages delivered again after one ack wait. Ends with the subscription and its deliveries.
async fn keep_in_progress(shared: Arc<Shared>, in_flight: Weak<InFlight>, every: Duration) {
    let every = every.max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let Some(in_flight) = in_flight.upgrade() else {
            return;
        };
        let replies: Vec<Subject> = lock(&in_flight.replies).values().cloned().collect();
        drop(in_flight);
        for reply in replies {
            if let Err(error) = shared.client.publish(reply, AckKind::Progress.into()).await {
                tracing::warn!(
                    messaging.system = crate::NAME,
                    error = %error,
                    "could not tell the server a message is still being handled; it may deliver it again after its ack wait",
                );
            }
        }
    }
}

/// Where a subscription's messages come from, kept to make the consumer again after it was
/// lost (a server restart forgets ephemeral consumers).
struct Source {
    shared: Arc<Shared>,
    request: SubscribeRequest,
    prefetch: usize,
    /// The stream and name of the consumer in use.
    consumer: Option<(StreamName, Arc<str>)>,
    /// The stream sequence of the last message handed out, after which a new ephemeral
    /// consumer starts again.
    last_sequence: Option<u64>,
    /// The oldest message not settled for good when the consumer was found gone, where a new
    /// ephemeral consumer starts instead when it is older: the server forgets a nacked message
    /// with the consumer that was to deliver it again.
    oldest_unsettled: Option<u64>,
    /// Whether receiving failed since the last message.
    outage: Outage,
}

impl Source {
    fn operation(&self) -> String {
        match &self.request.group {
            Some(group) => format!("subscribe to {} in group {group}", self.request.topic),
            None => format!("subscribe to {}", self.request.topic),
        }
    }

    /// The consumer to pull from: the one in use if the server still has it, or a new one.
    async fn open(&mut self) -> Result<PullConsumer, BrokerError> {
        if let Some(consumer) = self.existing().await {
            return Ok(consumer);
        }
        let topic = self.request.topic.as_str();
        let stream = stream_for(&self.shared, topic).await?;
        let resume = [
            self.oldest_unsettled,
            self.last_sequence.map(|last| last + 1),
        ]
        .into_iter()
        .flatten()
        .min();
        let deliver_policy = match (resume, self.request.start) {
            (Some(start_sequence), _) => DeliverPolicy::ByStartSequence { start_sequence },
            (None, StartFrom::New) => DeliverPolicy::New,
            (None, StartFrom::Oldest) => DeliverPolicy::All,
        };
        let config = &self.shared.config;
        let mut consumer_config = pull::Config {
            deliver_policy,
            ack_policy: AckPolicy::Explicit,
            ack_wait: config.ack_wait,
            max_deliver: config.max_deliver.map_or(-1, i64::from),
            filter_subject: topic.to_owned(),
            ..Default::default()
        };
        let handle = self
            .shared
            .js
            .get_stream_no_info(&*stream.name)
            .await
            .map_err(|e| self.shared.failure(self.operation(), e))?;
        let consumer: PullConsumer = match &self.request.group {
            Some(group) => {
                // A group keeps its place: an existing consumer is used as it is.
                consumer_config.deliver_policy = match self.request.start {
                    StartFrom::New => DeliverPolicy::New,
                    StartFrom::Oldest => DeliverPolicy::All,
                };
                let name = if stream.own {
                    group.clone()
                } else {
                    format!("{group}_{}", topic.replace('.', "-"))
                };
                consumer_config.durable_name = Some(name.clone());
                consumer_config.inactive_threshold = config.group_expiry.unwrap_or_default();
                handle.get_or_create_consumer(&name, consumer_config).await
            }
            None => {
                consumer_config.max_ack_pending = i64::try_from(self.prefetch).unwrap_or(i64::MAX);
                consumer_config.inactive_threshold = INACTIVE_THRESHOLD;
                handle.create_consumer(consumer_config).await
            }
        }
        .map_err(|e| self.shared.failure(self.operation(), e))?;
        self.consumer = Some((stream, Arc::from(consumer.cached_info().name.as_str())));
        Ok(consumer)
    }

    /// The consumer in use, if the server still has it.
    async fn existing(&self) -> Option<PullConsumer> {
        let (stream, name) = self.consumer.as_ref()?;
        let handle = self
            .shared
            .js
            .get_stream_no_info(&*stream.name)
            .await
            .ok()?;
        handle.get_consumer(name).await.ok()
    }

    /// Opens again until it works, waiting for the connection to come back.
    async fn reopen(&mut self) -> PullConsumer {
        let mut backoff = Backoff::new();
        loop {
            self.shared.connected().await;
            match self.open().await {
                Ok(consumer) => return consumer,
                Err(error) => self.failed("make the consumer again", &error),
            }
            backoff.wait().await;
        }
    }

    /// Reports a failure to receive, when it begins an outage: the subscription goes on trying.
    fn failed(&mut self, what: &str, error: &dyn std::fmt::Display) {
        if self.outage.failed() {
            tracing::warn!(
                messaging.system = crate::NAME,
                messaging.destination.name = self.request.topic.as_str(),
                messaging.consumer.group.name = self.request.group.as_deref(),
                error = %error,
                "cannot {what}; the subscription tries again after a backoff",
            );
        }
    }

    /// Reports that messages arrive again after an outage.
    fn recovered(&mut self) {
        if self.outage.recovered() {
            tracing::info!(
                messaging.system = crate::NAME,
                messaging.destination.name = self.request.topic.as_str(),
                messaging.consumer.group.name = self.request.group.as_deref(),
                "receiving again",
            );
        }
    }
}

struct Deliveries {
    source: Source,
    /// The consumer pulled from; `None` once it failed, to be found or made again.
    consumer: Option<PullConsumer>,
    /// The pull in progress. It asks for no more messages than there were free slots when it
    /// was made, so no message waits on this side, unseen by `keep_in_progress`, while handlers
    /// hold every slot past the ack wait: the server would hand it to another member meanwhile,
    /// and both would handle it.
    batch: Option<Pull>,
    /// One permit per delivery handed out and not yet settled, at most `prefetch`.
    permits: Arc<Semaphore>,
    in_flight: Arc<InFlight>,
    /// The wait after a pull that could not be made or failed before it brought anything, so a
    /// consumer that refuses every pull (a batch above its limit, too many waiting pulls) is not
    /// asked again in a busy loop; back to the shortest once a message arrives.
    backoff: Backoff,
    closed: bool,
}

/// One pull request and what has come of it.
struct Pull {
    messages: pull::Batch,
    made: tokio::time::Instant,
    delivered: bool,
}

#[async_trait]
impl DeliveryStream for Deliveries {
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        if self.closed {
            return None;
        }
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        loop {
            let Some(pull) = &mut self.batch else {
                // Boxed, so the rare path's futures do not weigh on every delivery's.
                self.batch = Some(Box::pin(self.pull()).await);
                continue;
            };
            match pull.messages.next().await {
                Some(Ok(message)) => {
                    pull.delivered = true;
                    self.backoff.reset();
                    self.source.recovered();
                    return Some(Ok(self.deliver(message, permit)));
                }
                // All it asked for came, or it expired (the server's clock for it started a
                // little later than ours): pull again.
                None if pull.delivered || pull.made.elapsed() >= PULL_EXPIRES / 2 => {
                    self.batch = None;
                }
                // It failed, or ended early with nothing (the consumer may be gone, or the
                // server restarted): the consumer is looked for, or made again, first.
                ended => {
                    if let Some(Err(error)) = ended {
                        self.source.failed("receive from the consumer", &error);
                    }
                    self.batch = None;
                    self.consumer = None;
                    Box::pin(self.backoff.wait()).await;
                }
            }
        }
    }

    async fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.batch = None;
        self.consumer = None;
        if let (None, Some((stream, name))) = (&self.source.request.group, &self.source.consumer) {
            // Whatever it still holds goes with it; nobody else reads it.
            let deleted = match self
                .source
                .shared
                .js
                .get_stream_no_info(&*stream.name)
                .await
            {
                Ok(handle) => handle
                    .delete_consumer(name)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            if let Err(error) = deleted {
                tracing::warn!(
                    messaging.system = crate::NAME,
                    messaging.destination.name = self.source.request.topic.as_str(),
                    error = %error,
                    "could not delete the consumer of a closed subscription; the server removes it once inactive",
                );
            }
        }
    }
}

impl Deliveries {
    /// A new pull for this delivery's slot and every other free one, from the consumer in use
    /// or, when it failed, one found or made again once the server can be reached.
    async fn pull(&mut self) -> Pull {
        loop {
            let consumer = match self.consumer.take() {
                Some(consumer) => consumer,
                None => {
                    self.source.oldest_unsettled = self.in_flight.oldest_unsettled();
                    self.source.reopen().await
                }
            };
            let wanted = 1 + self.permits.available_permits();
            let made = consumer
                .batch()
                .max_messages(wanted)
                .expires(PULL_EXPIRES)
                .messages()
                .await;
            match made {
                Ok(messages) => {
                    self.consumer = Some(consumer);
                    return Pull {
                        messages,
                        made: tokio::time::Instant::now(),
                        delivered: false,
                    };
                }
                Err(error) => self.source.failed("ask the consumer for messages", &error),
            }
            self.backoff.wait().await;
        }
    }

    fn deliver(
        &mut self,
        message: async_nats::jetstream::Message,
        permit: OwnedSemaphorePermit,
    ) -> Delivery {
        let (attempt, sequence) = message.info().map_or((1, 0), |info| {
            (
                u32::try_from(info.delivered).unwrap_or(u32::MAX).max(1),
                info.stream_sequence,
            )
        });
        self.source.last_sequence = Some(sequence);
        self.in_flight.handed_out(sequence);
        let mut message = message.message;
        let headers = message.headers.take();
        let read = binding::read(headers.as_ref(), message.payload.clone());
        let token = message.reply.map(|reply| self.in_flight.insert(reply));
        Delivery {
            message: read,
            attempt,
            acker: Box::new(JetStreamAcker {
                shared: self.source.shared.clone(),
                in_flight: self.in_flight.clone(),
                token,
                headers,
                payload: message.payload,
                sequence,
                consumer: self.source.consumer.as_ref().map(|(_, name)| name.clone()),
                _permit: permit,
            }),
        }
    }
}

struct JetStreamAcker {
    shared: Arc<Shared>,
    in_flight: Arc<InFlight>,
    /// `Some` until settled; dropped unsettled, the message is nacked for redelivery at once.
    token: Option<u64>,
    headers: Option<HeaderMap>,
    payload: Bytes,
    sequence: u64,
    /// The consumer it came through, which names its dead letter.
    consumer: Option<Arc<str>>,
    _permit: OwnedSemaphorePermit,
}

impl JetStreamAcker {
    async fn settle(&mut self, kind: AckKind) -> Result<(), BrokerError> {
        let Some(reply) = self
            .token
            .take()
            .and_then(|token| self.in_flight.remove(token))
        else {
            return Ok(());
        };
        // A nacked message comes back; an acked or terminated one is settled for good.
        let for_good = matches!(kind, AckKind::Ack | AckKind::Term);
        let client = &self.shared.client;
        if for_good && self.shared.config.confirm_acks {
            client
                .request(reply, kind.into())
                .await
                .map_err(|e| self.shared.failure("settle a delivery", e))?;
        } else {
            client
                .publish(reply, kind.into())
                .await
                .map_err(|e| self.shared.failure("settle a delivery", e))?;
        }
        if for_good {
            self.in_flight.settled(self.sequence);
        }
        Ok(())
    }
}

#[async_trait]
impl Acker for JetStreamAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), BrokerError> {
        self.settle(AckKind::Ack).await
    }

    async fn nack(mut self: Box<Self>, nack: Nack) -> Result<(), BrokerError> {
        let kind = match nack {
            Nack::Retry(delay) if delay.is_zero() => AckKind::Nak(None),
            Nack::Retry(delay) => AckKind::Nak(Some(delay)),
            Nack::Terminate => AckKind::Term,
        };
        self.settle(kind).await
    }

    async fn dead_letter(mut self: Box<Self>, letter: DeadLetter) -> Result<(), BrokerError> {
        let dead_letters = letter.destination(NAME)?;
        let mut headers = self.headers.take().unwrap_or_default();
        binding::add_attributes(&mut headers, &letter.attributes());
        // Named by the event, the consumer and the message's place in the stream: this
        // consumer dead-lettering this stored message again (its first try went unanswered) is
        // stored once, while another group's dead letter of it, or of the same event published
        // again (a replay), is stored too.
        let event = headers
            .get(format!("ce-{}", attr::ID).as_str())
            .map_or_else(|| letter.topic.to_string(), |id| id.as_str().to_owned());
        let consumer = self.consumer.as_deref().unwrap_or_default();
        let id = format!("{event}:{consumer}:{}", self.sequence);
        let payload = self.payload.clone();
        store(&self.shared, dead_letters.as_str(), headers, payload, &id).await?;
        self.settle(AckKind::Term).await
    }
}

impl Drop for JetStreamAcker {
    fn drop(&mut self) {
        if let Some(reply) = self
            .token
            .take()
            .and_then(|token| self.in_flight.remove(token))
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let client = self.shared.client.clone();
            runtime.spawn(async move {
                let nak = AckKind::Nak(Some(REDELIVER_AFTER_DROP));
                if let Err(error) = client.publish(reply, nak.into()).await {
                    tracing::warn!(
                        messaging.system = crate::NAME,
                        error = %error,
                        "could not hand back a delivery dropped unsettled; the server delivers it again after its ack wait",
                    );
                }
            });
        }
    }
}
