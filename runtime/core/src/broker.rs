//! The transport seam: what every broker adapter implements.
//!
//! A broker moves [`Message`]s (an envelope and opaque bytes) to a [`Topic`], alone or in a
//! named group, and hands out [`Delivery`]s that are settled exactly once: acked, nacked (retry
//! after a delay, or terminate) or dead-lettered. Retries, timeouts, panics and decoding live in
//! the typed layer above; an adapter only speaks its broker's protocol.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::envelope::Envelope;
use crate::topic::Topic;

pub mod memory;
pub mod request;

use request::{RequestStream, Requester};

/// One message as a broker carries it.
///
/// Cloning is two reference counts: the envelope is shared, not copied, because a message is
/// handed from stage to stage (and to every subscriber of a fan-out) far more often than its
/// attributes change.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The CloudEvents attributes.
    pub envelope: Arc<Envelope>,
    /// The encoded event.
    pub data: Bytes,
}

impl Message {
    /// A message of `envelope` and `data`.
    pub fn new(envelope: Envelope, data: Bytes) -> Message {
        Message {
            envelope: Arc::new(envelope),
            data,
        }
    }

    /// The bytes the size limit counts: the data and every attribute's name and value (see
    /// [`Envelope::size`]), without a transport's prefixes or framing.
    #[inline]
    pub fn size(&self) -> usize {
        self.envelope.size() + self.data.len()
    }

    /// The attributes, to change: copied first if another clone of the message shares them.
    pub fn envelope_mut(&mut self) -> &mut Envelope {
        Arc::make_mut(&mut self.envelope)
    }
}

/// A message that arrived but could not be read as a CloudEvents message (missing attributes,
/// a structured document that does not parse...). It is kept whole so it can be dead-lettered.
#[derive(Clone, Debug, PartialEq)]
pub struct Malformed {
    /// Why it could not be read.
    pub reason: String,
    /// The transport headers as received.
    pub headers: Vec<(String, String)>,
    /// The payload as received.
    pub data: Bytes,
}

impl Malformed {
    /// The bytes the size limit counts, as for a [`Message::size`]: the data and every header's
    /// name and value as received.
    pub fn size(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        headers + self.data.len()
    }
}

/// Where a new subscription starts, on brokers that keep history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartFrom {
    /// Only messages published after the subscription exists.
    #[default]
    New,
    /// From the oldest message the broker still keeps.
    Oldest,
}

/// What a subscription asks of a broker.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscribeRequest {
    /// The topic to receive.
    pub topic: Topic,
    /// `None`: every subscriber gets every message (fan-out). `Some(name)`: one member of the
    /// group gets each message (competing consumers), and the group's place is kept.
    pub group: Option<String>,
    /// Where a new subscription starts.
    pub start: StartFrom,
    /// How many unsettled deliveries the broker may hand out at once.
    pub prefetch: usize,
}

/// How a delivery is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nack {
    /// Deliver it again after at least this delay.
    Retry(Duration),
    /// Never deliver it again (and do not dead-letter it).
    Terminate,
}

/// Why a message is moved to the dead-letter topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// What went wrong, for a person reading the dead-letter topic.
    pub reason: String,
    /// How many deliveries were tried.
    pub attempts: u32,
    /// The topic the message was published to.
    pub topic: Topic,
}

impl DeadLetter {
    /// The topic the message goes to, `dlq.<topic>`, or the error an adapter named `broker`
    /// returns when the original topic is too long to have one.
    pub fn destination(&self, broker: &'static str) -> Result<Topic, BrokerError> {
        self.topic.dead_letter().map_err(|e| BrokerError::Rejected {
            broker,
            operation: format!("dead-letter a message of {}", self.topic),
            reason: e.to_string(),
        })
    }

    /// The extension attributes a dead letter carries: `deadletterreason`,
    /// `deadletterattempts` and `deadlettertopic`.
    pub fn attributes(&self) -> [(&'static str, String); 3] {
        [
            (
                crate::envelope::attr::DEAD_LETTER_REASON,
                self.reason.clone(),
            ),
            (
                crate::envelope::attr::DEAD_LETTER_ATTEMPTS,
                self.attempts.to_string(),
            ),
            (
                crate::envelope::attr::DEAD_LETTER_TOPIC,
                self.topic.as_str().to_owned(),
            ),
        ]
    }

    /// The dead letter `envelope` describes, read back from the attributes
    /// [`attributes`](Self::attributes) writes: `None` when it carries no valid
    /// `deadlettertopic` (not a dead letter); a missing reason reads as empty, missing or
    /// unreadable attempts as 0.
    pub fn read(envelope: &Envelope) -> Option<DeadLetter> {
        use crate::envelope::attr;
        let topic = Topic::new(envelope.extension(attr::DEAD_LETTER_TOPIC)?.to_owned()).ok()?;
        Some(DeadLetter {
            reason: envelope
                .extension(attr::DEAD_LETTER_REASON)
                .unwrap_or_default()
                .to_owned(),
            attempts: envelope
                .extension(attr::DEAD_LETTER_ATTEMPTS)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            topic,
        })
    }

    /// Takes the dead-letter attributes out of `envelope`, leaving the attributes the message
    /// was published with (to publish it again on its topic).
    pub fn strip(envelope: &mut Envelope) {
        use crate::envelope::attr;
        envelope.extensions.retain(|(name, _)| {
            ![
                attr::DEAD_LETTER_REASON,
                attr::DEAD_LETTER_ATTEMPTS,
                attr::DEAD_LETTER_TOPIC,
            ]
            .contains(&name.as_str())
        });
    }
}

/// Settles one delivery. Each method consumes the acker: a delivery is settled once.
#[async_trait]
pub trait Acker: Send + Sync {
    /// The message was handled; the broker may forget it.
    async fn ack(self: Box<Self>) -> Result<(), BrokerError>;
    /// Acks without waiting, when the broker can (an in-process broker always can): `Some` with
    /// the result, after which the acker is only dropped; `None` means call [`Acker::ack`].
    /// The default is `None`.
    fn try_ack(&mut self) -> Option<Result<(), BrokerError>> {
        None
    }
    /// The message was not handled; see [`Nack`].
    async fn nack(self: Box<Self>, nack: Nack) -> Result<(), BrokerError>;
    /// Moves the message to `letter.topic.dead_letter()` with the reason, attempt count and
    /// original topic as extension attributes (`deadletterreason`, `deadletterattempts`,
    /// `deadlettertopic`), then settles it so it is not delivered again. When it fails, the
    /// message stays with the broker unsettled and is delivered again.
    async fn dead_letter(self: Box<Self>, letter: DeadLetter) -> Result<(), BrokerError>;
}

/// One message handed to a subscriber, to be settled through its acker.
pub struct Delivery {
    /// The message, or what arrived when it could not be read as one.
    pub message: Result<Message, Malformed>,
    /// 1 on first delivery, then counting redeliveries as far as the broker knows.
    pub attempt: u32,
    /// Settles this delivery.
    pub acker: Box<dyn Acker>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("message", &self.message)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// The deliveries of one subscription.
#[async_trait]
pub trait DeliveryStream: Send {
    /// The next delivery; `None` once the subscription is closed. An error is a transport
    /// failure the adapter could not recover from.
    async fn next(&mut self) -> Option<Result<Delivery, BrokerError>>;
    /// A delivery that is ready now, without waiting: lets a consumer skip making a future per
    /// message while messages are queued. `None` means call [`DeliveryStream::next`] (nothing
    /// ready, or the adapter does not say). The default is `None`.
    fn try_next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        None
    }
    /// Stops receiving. Deliveries already handed out can still be settled.
    async fn close(&mut self);
}

/// What a broker promises, so the typed layer and the conformance suite know what to expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Messages survive a broker restart.
    pub durable: bool,
    /// Named groups of competing consumers.
    pub groups: bool,
    /// A nack can ask for a redelivery after a delay (otherwise the typed layer waits).
    pub nack_delay: bool,
    /// A message not settled by a consumer that died is delivered again.
    pub redelivery: bool,
    /// A new subscription can start from the oldest kept message.
    pub history: bool,
    /// Messages with the same partition key are delivered in publish order to a consumer that
    /// takes one at a time. Members of a group share a key's messages in publish order only
    /// where the broker gives each key to one member (Kafka's partitions); a retry with a delay
    /// comes back after the messages behind it.
    pub ordered_per_key: bool,
    /// The broker drops a republished message with the same event id.
    pub publish_dedup: bool,
    /// A request to a topic nobody serves fails at once with
    /// [`RequestFailure::NoResponders`](request::RequestFailure::NoResponders), rather than
    /// when its deadline passes.
    pub no_responders: bool,
    /// Requests can be served ([`Broker::serve`] or, by default, a group subscription): the
    /// broker has request-reply of its own, or [`Capabilities::groups`].
    pub request_reply: bool,
}

/// What a broker said when it confirmed a publish.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Confirmation {
    /// Where the broker keeps the message, on brokers that say.
    pub position: Option<Position>,
    /// The broker recognised the event id and dropped this publish as a duplicate of one it
    /// holds (brokers with [`Capabilities::publish_dedup`]).
    pub duplicate: bool,
}

impl Confirmation {
    /// A confirmation that says nothing but that the broker holds the message.
    pub const fn held() -> Confirmation {
        Confirmation {
            position: None,
            duplicate: false,
        }
    }

    /// A confirmation of a message kept at `position`.
    pub const fn at(position: Position) -> Confirmation {
        Confirmation {
            position: Some(position),
            duplicate: false,
        }
    }
}

/// Where a broker keeps a published message, in its own terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// A sequence number in a stream (NATS JetStream).
    Sequence {
        /// The stream.
        stream: String,
        /// The message's sequence number in it.
        sequence: u64,
    },
    /// An offset in a partition (Kafka).
    Offset {
        /// The partition.
        partition: i32,
        /// The message's offset in it.
        offset: i64,
    },
    /// An entry id (Redis Streams).
    Entry(String),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Sequence { stream, sequence } => write!(f, "{stream} #{sequence}"),
            Position::Offset { partition, offset } => {
                write!(f, "partition {partition} offset {offset}")
            }
            Position::Entry(id) => write!(f, "entry {id}"),
        }
    }
}

/// A transport failure, naming the broker and its address (credentials redacted).
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker could not be reached.
    #[error(
        "cannot reach {broker} at {address}: {reason}; is it running, and is the address right?"
    )]
    Unreachable {
        /// Which broker (`nats`, `rabbitmq`...).
        broker: &'static str,
        /// Its address, with any password replaced by `***`.
        address: String,
        /// The client's message.
        reason: String,
    },
    /// The broker did not confirm within the time allowed.
    #[error(
        "{broker} did not confirm within {timeout:?}; check that the server is up and keeping \
         up, or allow more time"
    )]
    Timeout {
        /// Which broker.
        broker: &'static str,
        /// How long was waited.
        timeout: Duration,
    },
    /// The broker refused the operation.
    #[error("{broker} refused to {operation}: {reason}")]
    Rejected {
        /// Which broker.
        broker: &'static str,
        /// What was asked (`publish to events.order.created.v1`...).
        operation: String,
        /// The broker's message.
        reason: String,
    },
    /// The connection or subscription is closed.
    #[error("{broker} connection is closed; connect again to go on")]
    Closed {
        /// Which broker.
        broker: &'static str,
    },
    /// The broker is full and cannot take the message within the time allowed.
    #[error("{broker} is full: {reason}")]
    Full {
        /// Which broker.
        broker: &'static str,
        /// What is full.
        reason: String,
    },
    /// The message cannot be written in this broker's protocol (a field longer than the protocol
    /// allows): nothing was sent, and sending it again cannot succeed.
    #[error("{broker} cannot carry this message: {reason}")]
    Unwritable {
        /// Which broker.
        broker: &'static str,
        /// What does not fit, and what to do.
        reason: String,
    },
    /// This broker cannot do what was asked (see its [`Capabilities`]).
    #[error("{broker} does not support {what}")]
    Unsupported {
        /// Which broker.
        broker: &'static str,
        /// What it cannot do.
        what: &'static str,
    },
}

/// The transport seam. Implementations are cheap to share behind an `Arc`.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// A short name for messages and errors: `memory`, `nats`, `rabbitmq`...
    fn name(&self) -> &'static str;

    /// What this broker promises.
    fn capabilities(&self) -> Capabilities;

    /// The largest message, in the bytes [`Message::size`] counts, this connection is set up to
    /// carry: what a [`Bus`](crate::Bus) over it publishes and receives unless told otherwise.
    /// Adapters take it from their configuration and size their client's own limits from it
    /// ([`transport_ceiling`](crate::adapter::transport_ceiling)). The default is
    /// [`DEFAULT_MAX_MESSAGE_SIZE`](crate::DEFAULT_MAX_MESSAGE_SIZE).
    fn max_message_size(&self) -> usize {
        crate::size::DEFAULT_MAX_MESSAGE_SIZE
    }

    /// Publishes and returns once the broker confirmed it holds the message.
    async fn publish(&self, topic: &Topic, message: Message) -> Result<Confirmation, BrokerError>;

    /// Publishes without waiting, when the broker can confirm at once (an in-process broker
    /// with room): `Ok` with the result, or `Err` with the message back, meaning call
    /// [`Broker::publish`]. The default hands the message back.
    #[allow(clippy::result_large_err)] // The message goes back to the caller unchanged, by value.
    fn try_publish(
        &self,
        _topic: &Topic,
        message: Message,
    ) -> Result<Result<Confirmation, BrokerError>, Message> {
        Err(message)
    }

    /// Starts a subscription.
    async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Box<dyn DeliveryStream>, BrokerError>;

    /// What `topic` holds now, oldest first, for a tool that inspects a topic (the dead letters
    /// kept in `dlq.<topic>`) without joining a group or settling anything on a consumer's
    /// behalf. The stream ends after the last message the topic held when it was opened.
    /// Acking a delivery removes that message from the topic; a nack, or dropping the acker,
    /// leaves it where it is, so a tool that dies halfway loses nothing; a dead letter is
    /// refused.
    ///
    /// The default is [`BrokerError::Unsupported`], for brokers that keep nothing to read.
    async fn browse(&self, _topic: &Topic) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        Err(BrokerError::Unsupported {
            broker: self.name(),
            what: "reading a topic outside a subscription",
        })
    }

    /// Removes `topic` and every message it holds, for a topic made for one holder that is
    /// done with it: the reply topic of a request-reply client over publish and subscribe,
    /// removed once the client is dropped. Subscriptions to it receive nothing more.
    ///
    /// The default is [`BrokerError::Unsupported`], for brokers that keep nothing per topic or
    /// cannot remove one; such a reply topic then stays on the broker.
    async fn remove_topic(&self, _topic: &Topic) -> Result<(), BrokerError> {
        Err(BrokerError::Unsupported {
            broker: self.name(),
            what: "removing a topic",
        })
    }

    /// Makes a requester, in this broker's own way of request-reply.
    ///
    /// The default is [`BrokerError::Unsupported`]: the typed layer then carries requests over
    /// [`Broker::publish`] and [`Broker::subscribe`], with a reply topic per client.
    async fn requester(&self) -> Result<Box<dyn Requester>, BrokerError> {
        Err(BrokerError::Unsupported {
            broker: self.name(),
            what: "request-reply of its own",
        })
    }

    /// Takes the requests sent to `topic`, shared among the servers of `group` (each request
    /// goes to one of them), at most `prefetch` unanswered at once, in this broker's own way of
    /// request-reply.
    ///
    /// The default is [`BrokerError::Unsupported`]: the typed layer then takes requests through
    /// [`Broker::subscribe`] in the group, and answers on the reply topic each request names.
    async fn serve(
        &self,
        _topic: &Topic,
        _group: &str,
        _prefetch: usize,
    ) -> Result<Box<dyn RequestStream>, BrokerError> {
        Err(BrokerError::Unsupported {
            broker: self.name(),
            what: "request-reply of its own",
        })
    }

    /// Publishes again a message published before, keeping its event id (a dead letter
    /// replayed): a broker that drops a publish whose event id it saw recently
    /// ([`Capabilities::publish_dedup`]) is given `dedup_id` as this publish's dedup key
    /// instead, so that the replay is not taken for a duplicate of the original.
    ///
    /// The default is [`Broker::publish`], for brokers without publish dedup.
    async fn republish(
        &self,
        topic: &Topic,
        message: Message,
        _dedup_id: &str,
    ) -> Result<Confirmation, BrokerError> {
        self.publish(topic, message).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ContentType;

    #[test]
    fn a_dead_letter_reads_back_and_strips_to_the_published_attributes() {
        let topic = Topic::new("events.order.created.v1").expect("a topic");
        let mut envelope = Envelope::new(
            Arc::from("test"),
            topic.as_str().to_owned().into(),
            ContentType::Protobuf,
            None,
        );
        envelope.set_extension("tenant", "acme");
        let published = envelope.clone();
        let letter = DeadLetter {
            reason: "handler failed: boom".to_owned(),
            attempts: 3,
            topic,
        };
        for (name, value) in letter.attributes() {
            envelope.set_extension(name, value);
        }
        assert_eq!(DeadLetter::read(&envelope), Some(letter));
        DeadLetter::strip(&mut envelope);
        assert_eq!(envelope, published);
        assert_eq!(DeadLetter::read(&envelope), None);
    }
}
