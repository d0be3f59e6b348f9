//! Request-reply with RabbitMQ's direct reply-to.
//!
//! A requester consumes the pseudo-queue `amq.rabbitmq.reply-to` on a channel of its own, in
//! no-ack mode, and publishes its requests on that channel (in confirm mode) to the rpc
//! exchange, routed by topic, mandatory, with `reply_to` naming the pseudo-queue and the event id
//! as `correlation_id`; a reply is handed to the request waiting for its correlation id. A
//! request no queue takes comes back unroutable, which is the broker saying nobody serves the
//! topic. A server consumes the queue of its group with the prefetch asked, and answers through
//! the default exchange to the request's `reply_to`, the correlation id copied, before acking
//! the request.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use lapin::Channel;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{FieldTable, ShortString};
use tokio::task::JoinHandle;

use super::consume::{self, Consumed, Consuming, Queue, Source, Unsettled};
use super::{NAME, Shared, binding, topology};
use tidings_core::adapter::PendingReplies;
use tidings_core::broker::request::{
    IncomingRequest, Replier, RequestFailure, RequestStream, Requester,
};
use tidings_core::broker::{BrokerError, Malformed, Message};
use tidings_core::topic::Topic;

/// The pseudo-queue of direct reply-to: consumed, it delivers the replies to what this channel
/// published; named in `reply_to`, the server turns it into the channel's own address.
const REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// Requests and replies are worth nothing after a broker restart: not written to disk.
const TRANSIENT: u8 = 1;
/// The longest correlation id: a short string.
const SHORT_STRING_MAX: usize = u8::MAX as usize;

/// A reply as it arrived, for the request of its correlation id.
type Reply = Result<Message, Malformed>;
/// The requests waiting for a reply on one channel, by correlation id.
type Pending = PendingReplies<Reply>;

/// Sends requests on a channel of its own, made again after it was lost.
pub(super) struct RabbitRequester {
    shared: Arc<Shared>,
    current: tokio::sync::Mutex<Option<ReplyChannel>>,
}

/// A channel consuming its direct reply-to pseudo-queue, and the task that reads the replies.
struct ReplyChannel {
    channel: Channel,
    pending: Pending,
    reader: JoinHandle<()>,
}

impl Drop for ReplyChannel {
    fn drop(&mut self) {
        // The reader holds the consumer; ending it lets the channel close.
        self.reader.abort();
    }
}

impl RabbitRequester {
    /// A requester with its reply channel open.
    pub(super) async fn start(shared: Arc<Shared>) -> Result<RabbitRequester, BrokerError> {
        let requester = RabbitRequester {
            shared,
            current: tokio::sync::Mutex::default(),
        };
        requester.channel().await?;
        Ok(requester)
    }

    /// The reply channel and its waiting requests, opened again when it was lost: the requests
    /// that waited on the lost one fail as it ends.
    async fn channel(&self) -> Result<(Channel, Pending), BrokerError> {
        let mut current = self.current.lock().await;
        if let Some(open) = current.as_ref()
            && open.channel.status().connected()
        {
            return Ok((open.channel.clone(), open.pending.clone()));
        }
        let shared = &self.shared;
        let operation = "open a channel for replies";
        let opened = consume::bounded(shared, operation, Box::pin(self.open())).await?;
        let handles = (opened.channel.clone(), opened.pending.clone());
        *current = Some(opened);
        Ok(handles)
    }

    async fn open(&self) -> Result<ReplyChannel, BrokerError> {
        let shared = &self.shared;
        let live = shared.live().await?;
        let failure = |e| shared.failure("consume replies from amq.rabbitmq.reply-to", e);
        let channel = live.connection.create_channel().await.map_err(failure)?;
        let consumed = async {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(failure)?;
            // Direct reply-to delivers in no-ack mode only.
            let no_ack = BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            };
            channel
                .basic_consume(REPLY_TO.into(), "".into(), no_ack, FieldTable::default())
                .await
                .map_err(failure)
        }
        .await;
        let consumer = match consumed {
            Ok(consumer) => consumer,
            Err(error) => {
                consume::abandon(channel);
                return Err(error);
            }
        };
        let pending = Pending::default();
        let reader = tokio::spawn(read_replies(consumer, pending.clone()));
        Ok(ReplyChannel {
            channel,
            pending,
            reader,
        })
    }

    /// Publishes `message` as a request on the reply channel and waits for its reply.
    async fn exchange(
        &self,
        topic: &Topic,
        message: Message,
        timeout: Duration,
    ) -> Result<Message, RequestFailure> {
        let shared = &self.shared;
        let id = message.envelope.id.to_string();
        if id.len() > SHORT_STRING_MAX {
            return Err(BrokerError::Unwritable {
                broker: NAME,
                reason: format!(
                    "the request's event id is {} bytes long, and an AMQP correlation id at most \
                     {SHORT_STRING_MAX}; leave the id to tidings, or shorten it",
                    id.len()
                ),
            }
            .into());
        }
        let (channel, pending) = self.channel().await?;
        // Waiting before it is sent, so that a reply coming at once finds it.
        let replied = pending.wait(id.as_str());
        let properties = binding::properties(&message.envelope)
            .map_err(|reason| BrokerError::Unwritable {
                broker: NAME,
                reason,
            })?
            .with_delivery_mode(TRANSIENT)
            .with_reply_to(REPLY_TO.into())
            .with_correlation_id(id.into())
            // A request nobody took before its deadline is dropped by the queue, not handled
            // late.
            .with_expiration(expiration(timeout).into());
        let operation = || format!("send a request on {topic}");
        let mandatory = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirm = channel
            .basic_publish(
                topology::rpc_exchange(&shared.config).into(),
                topic.as_str().into(),
                mandatory,
                &message.data,
                properties,
            )
            .await
            .map_err(|e| shared.failure(operation(), e))?;
        match confirm.await.map_err(|e| shared.failure(operation(), e))? {
            lapin::Confirmation::Ack(None) | lapin::Confirmation::NotRequested => {}
            // Unroutable: no group has a queue for the topic, so nobody serves it.
            lapin::Confirmation::Ack(Some(_)) => {
                return Err(RequestFailure::NoResponders {
                    topic: topic.clone(),
                });
            }
            lapin::Confirmation::Nack(_) => {
                return Err(shared
                    .rejected(
                        operation(),
                        "the broker could not take the request (a queue limit, or a disk or \
                         memory alarm)",
                    )
                    .into());
            }
        }
        match replied.await {
            Some(Ok(reply)) => Ok(reply),
            Some(Err(malformed)) => Err(shared
                .rejected(
                    operation(),
                    format!(
                        "the reply is no CloudEvents message ({}); is something other than a \
                         tidings server serving {topic}?",
                        malformed.reason
                    ),
                )
                .into()),
            None => Err(shared
                .unreachable(format!(
                    "{}: the channel waiting for the reply was lost",
                    operation()
                ))
                .into()),
        }
    }
}

/// A deadline as a message expiration: milliseconds, in text, at least one (zero would drop a
/// request no server is waiting for at that very instant), at most the largest the broker takes.
fn expiration(timeout: Duration) -> String {
    let millis = timeout
        .as_nanos()
        .div_ceil(1_000_000)
        .clamp(1, u128::from(u32::MAX));
    millis.to_string()
}

impl Drop for RabbitRequester {
    fn drop(&mut self) {
        // Its channel is of no use to anyone else; without a runtime to close it on, it closes
        // with the connection.
        if let Some(open) = self.current.get_mut().take()
            && open.channel.status().connected()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            consume::abandon(open.channel.clone());
        }
    }
}

#[async_trait]
impl Requester for RabbitRequester {
    async fn request(
        &self,
        topic: &Topic,
        message: Message,
        timeout: Duration,
    ) -> Result<Message, RequestFailure> {
        tokio::time::timeout(timeout, self.exchange(topic, message, timeout))
            .await
            .unwrap_or_else(|_| {
                Err(RequestFailure::Timeout {
                    topic: topic.clone(),
                    after: timeout,
                })
            })
    }
}

/// Hands each reply to the request waiting for its correlation id.
async fn read_replies(mut consumer: lapin::Consumer, pending: Pending) {
    while let Some(next) = consumer.next().await {
        let delivery = match next {
            Ok(delivery) => delivery,
            Err(error) => {
                tracing::warn!(
                    messaging.system = NAME,
                    error = %error,
                    "request: the reply channel failed; requests waiting on it fail, the next ones open another",
                );
                break;
            }
        };
        let Some(id) = delivery.properties.correlation_id().clone() else {
            tracing::debug!(
                messaging.system = NAME,
                "request: a reply without a correlation id; dropped"
            );
            continue;
        };
        let reply = binding::read(&delivery.properties, Bytes::from(delivery.data));
        if pending.answer(id.as_str(), reply).is_err() {
            tracing::debug!(
                messaging.system = NAME,
                "request: a reply nobody waits for (its deadline passed); dropped"
            );
        }
    }
    // The channel is gone: no reply can reach the requests still waiting.
    pending.close_all();
}

/// The requests of `topic` for the servers of `group`, from the group's queue.
pub(super) async fn serve(
    shared: Arc<Shared>,
    topic: &Topic,
    group: &str,
    prefetch: usize,
) -> Result<Box<dyn RequestStream>, BrokerError> {
    let consumer = Consuming::start(Source {
        shared,
        topic: topic.clone(),
        queue: Queue::Requests(group.to_owned()),
        prefetch,
    })
    .await?;
    Ok(Box::new(RabbitRequests(consumer)))
}

struct RabbitRequests(Consuming);

#[async_trait]
impl RequestStream for RabbitRequests {
    async fn next(&mut self) -> Option<Result<IncomingRequest, BrokerError>> {
        let Consumed {
            delivery, channel, ..
        } = self.0.next().await?;
        let source = self.0.source();
        let properties = delivery.properties;
        let message = binding::read(&properties, Bytes::from(delivery.data));
        Some(Ok(IncomingRequest {
            message,
            replier: Box::new(RabbitReplier {
                shared: source.shared.clone(),
                topic: source.topic.clone(),
                unsettled: Unsettled::new(channel, delivery.acker, "request"),
                reply_to: properties.reply_to().clone(),
                correlation_id: properties.correlation_id().clone(),
            }),
        }))
    }

    async fn close(&mut self) {
        self.0.close().await;
    }
}

/// Publishes the reply to the request's `reply_to`, then acks the request.
struct RabbitReplier {
    shared: Arc<Shared>,
    topic: Topic,
    /// Dropped unanswered, the request goes back to the queue.
    unsettled: Unsettled,
    reply_to: Option<ShortString>,
    correlation_id: Option<ShortString>,
}

impl RabbitReplier {
    /// Acks the request: it was answered, or it cannot be.
    async fn ack(&mut self) -> Result<(), BrokerError> {
        let ack = self.unsettled.ack(&self.shared);
        consume::bounded(&self.shared, "ack a request", ack).await
    }
}

#[async_trait]
impl Replier for RabbitReplier {
    async fn reply(mut self: Box<Self>, message: Message) -> Result<(), BrokerError> {
        let Some(reply_to) = self.reply_to.take() else {
            // Nothing can answer it, ever: dropped rather than handed to another server.
            self.ack().await?;
            return Err(self.shared.rejected(
                format_args!("answer a request on {}", self.topic),
                "the request has no `reply_to` property naming where to answer (it was \
                 published, not requested); it is acked and dropped",
            ));
        };
        let correlation_id = self.correlation_id.take();
        let properties = || {
            let properties = binding::properties(&message.envelope)?.with_delivery_mode(TRANSIENT);
            Ok(match correlation_id {
                Some(id) => properties.with_correlation_id(id),
                None => properties,
            })
        };
        // Not mandatory: a reply to direct reply-to is not routed to a queue, and would come back
        // as unroutable though it was delivered.
        let published = self
            .shared
            .publish("", reply_to.as_str(), false, &message.data, properties)
            .await;
        // Acked even when the reply could not be sent: the request was handled, and handling it
        // again for a requester that gets no answer either way does more harm than good.
        let acked = self.ack().await;
        published.map(drop)?;
        acked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_expires_in_whole_milliseconds_rounded_up() {
        assert_eq!(expiration(Duration::from_millis(200)), "200");
        assert_eq!(expiration(Duration::from_micros(200_001)), "201");
        assert_eq!(expiration(Duration::ZERO), "1");
        assert_eq!(expiration(Duration::MAX), u32::MAX.to_string());
    }
}
