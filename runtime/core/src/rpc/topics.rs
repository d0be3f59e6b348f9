//! Request-reply over publish and subscribe, for brokers without their own (Kafka, Redis
//! Streams, MQTT): each client subscribes to a reply topic of its own, `tidings.reply.r<id>.v1`,
//! and names it in every request's `replyto` attribute; the servers of a group share the
//! requests through a group subscription and publish each reply there. A reply's
//! `causationid` is its request's id, which is how the client matches it to the request that
//! waits for it. Once the client is dropped its reply topic is removed
//! ([`Broker::remove_topic`]), where the broker can remove one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::task::JoinHandle;

use crate::adapter::PendingReplies;
use crate::broker::request::{IncomingRequest, Replier, RequestFailure, RequestStream, Requester};
use crate::broker::{
    Acker, Broker, BrokerError, DeadLetter, DeliveryStream, Message, StartFrom, SubscribeRequest,
};
use crate::envelope::attr;
use crate::topic::Topic;

/// How many replies a client's reply subscription may hold unsettled: they are settled as soon
/// as they are matched, so this only bounds a burst.
const REPLY_PREFETCH: usize = 256;

/// A client's requester: its reply topic, and the task that reads it.
pub(crate) struct TopicRequester {
    broker: Arc<dyn Broker>,
    reply_topic: Topic,
    /// The requests waiting for a reply, by request id.
    pending: PendingReplies<Message>,
    /// `None` once dropped.
    reader: Option<JoinHandle<()>>,
}

impl TopicRequester {
    /// Subscribes to a new reply topic and starts reading it.
    pub(crate) async fn start(broker: Arc<dyn Broker>) -> Result<TopicRequester, BrokerError> {
        let name = format!("tidings.reply.r{}.v1", uuid::Uuid::now_v7().simple());
        let reply_topic = Topic::new(name).map_err(|error| BrokerError::Rejected {
            broker: broker.name(),
            operation: "name a reply topic".to_owned(),
            reason: error.to_string(),
        })?;
        let replies = broker
            .subscribe(SubscribeRequest {
                topic: reply_topic.clone(),
                group: None,
                start: StartFrom::New,
                prefetch: REPLY_PREFETCH,
            })
            .await?;
        let pending = PendingReplies::new();
        let reader = tokio::spawn(read_replies(broker.name(), replies, pending.clone()));
        Ok(TopicRequester {
            broker,
            reply_topic,
            pending,
            reader: Some(reader),
        })
    }
}

impl Drop for TopicRequester {
    fn drop(&mut self) {
        let Some(reader) = self.reader.take() else {
            return;
        };
        // Dropping the reader's stream ends the reply subscription.
        reader.abort();
        let (broker, topic) = (self.broker.clone(), self.reply_topic.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(remove_reply_topic(broker, topic, reader))),
            Err(_) => tracing::warn!(
                messaging.system = broker.name(),
                messaging.destination.name = topic.as_str(),
                "request: a client dropped outside a tokio runtime cannot remove its reply topic; \
                 it stays on the broker",
            ),
        }
    }
}

/// Removes a dropped client's reply topic once its subscription has ended.
async fn remove_reply_topic(broker: Arc<dyn Broker>, topic: Topic, reader: JoinHandle<()>) {
    if let Err(error) = reader.await
        && !error.is_cancelled()
    {
        tracing::error!(
            messaging.system = broker.name(),
            messaging.destination.name = topic.as_str(),
            error = %error,
            "request: the reply reader panicked",
        );
    }
    match broker.remove_topic(&topic).await {
        Ok(()) => tracing::debug!(
            messaging.system = broker.name(),
            messaging.destination.name = topic.as_str(),
            "request: the reply topic of a dropped client is removed",
        ),
        Err(BrokerError::Unsupported { .. }) => tracing::debug!(
            messaging.system = broker.name(),
            messaging.destination.name = topic.as_str(),
            "request: the broker cannot remove topics; the reply topic of a dropped client stays",
        ),
        Err(error) => tracing::warn!(
            messaging.system = broker.name(),
            messaging.destination.name = topic.as_str(),
            error = %error,
            "request: cannot remove the reply topic of a dropped client; it stays on the broker",
        ),
    }
}

/// Hands each reply to the request waiting for it, and settles it.
async fn read_replies(
    broker: &'static str,
    mut replies: Box<dyn DeliveryStream>,
    pending: PendingReplies<Message>,
) {
    while let Some(next) = replies.next().await {
        let delivery = match next {
            Ok(delivery) => delivery,
            Err(error) => {
                tracing::error!(
                    messaging.system = broker,
                    error = %error,
                    "request: the reply subscription failed; requests waiting for a reply fail"
                );
                break;
            }
        };
        match delivery.message {
            Ok(reply) => {
                let answered = match reply.envelope.causation_id.clone() {
                    Some(request) => pending.answer(&request, reply),
                    None => Err(reply),
                };
                if let Err(reply) = answered {
                    tracing::debug!(
                        messaging.system = broker,
                        messaging.message.id = reply.envelope.id.as_str(),
                        "request: a reply nobody waits for (its deadline passed); dropped"
                    );
                }
            }
            Err(malformed) => tracing::warn!(
                messaging.system = broker,
                reason = malformed.reason.as_str(),
                "request: a reply that is no CloudEvents message; dropped"
            ),
        }
        if let Err(error) = delivery.acker.ack().await {
            tracing::warn!(
                messaging.system = broker,
                error = %error,
                "request: a reply could not be acked; the broker may deliver it again"
            );
        }
    }
    // The subscription is closed: no reply can reach the requests still waiting.
    pending.close_all();
}

#[async_trait]
impl Requester for TopicRequester {
    async fn request(
        &self,
        topic: &Topic,
        mut message: Message,
        timeout: Duration,
    ) -> Result<Message, RequestFailure> {
        message
            .envelope_mut()
            .set_extension(attr::REPLY_TO, self.reply_topic.as_str());
        // Waiting before it is sent, so that a reply coming at once finds it.
        let replied = self.pending.wait(message.envelope.id.to_string());
        let exchange = async {
            self.broker.publish(topic, message).await?;
            replied.await.ok_or(BrokerError::Closed {
                broker: self.broker.name(),
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(reply) => Ok(reply?),
            Err(_) => Err(RequestFailure::Timeout {
                topic: topic.clone(),
                after: timeout,
            }),
        }
    }
}

/// The requests of `topic` for the servers of `group`, through a group subscription.
pub(crate) async fn serve(
    broker: Arc<dyn Broker>,
    topic: &Topic,
    group: &str,
    prefetch: usize,
) -> Result<Box<dyn RequestStream>, BrokerError> {
    let deliveries = broker
        .subscribe(SubscribeRequest {
            topic: topic.clone(),
            group: Some(group.to_owned()),
            start: StartFrom::New,
            prefetch,
        })
        .await?;
    Ok(Box::new(TopicRequests {
        broker,
        topic: topic.clone(),
        deliveries,
    }))
}

struct TopicRequests {
    broker: Arc<dyn Broker>,
    topic: Topic,
    deliveries: Box<dyn DeliveryStream>,
}

#[async_trait]
impl RequestStream for TopicRequests {
    async fn next(&mut self) -> Option<Result<IncomingRequest, BrokerError>> {
        let delivery = match self.deliveries.next().await? {
            Ok(delivery) => delivery,
            Err(error) => return Some(Err(error)),
        };
        let reply_to = delivery
            .message
            .as_ref()
            .ok()
            .and_then(|message| message.envelope.extension(attr::REPLY_TO))
            .map(|name| Topic::new(name.to_owned()));
        Some(Ok(IncomingRequest {
            message: delivery.message,
            replier: Box::new(TopicReplier {
                broker: self.broker.clone(),
                topic: self.topic.clone(),
                reply_to,
                attempt: delivery.attempt,
                acker: delivery.acker,
            }),
        }))
    }

    async fn close(&mut self) {
        self.deliveries.close().await;
    }
}

/// Publishes a reply to the topic its request names, then acks the request.
struct TopicReplier {
    broker: Arc<dyn Broker>,
    topic: Topic,
    reply_to: Option<Result<Topic, crate::TopicError>>,
    attempt: u32,
    acker: Box<dyn Acker>,
}

#[async_trait]
impl Replier for TopicReplier {
    async fn reply(self: Box<Self>, message: Message) -> Result<(), BrokerError> {
        let reason = match self.reply_to {
            Some(Ok(reply_to)) => {
                self.broker.publish(&reply_to, message).await?;
                return self.acker.ack().await;
            }
            Some(Err(error)) => format!("its `replyto` attribute is no topic: {error}"),
            None => "it has no `replyto` attribute naming where to answer".to_owned(),
        };
        let reason = format!("a request that cannot be answered: {reason}");
        self.acker
            .dead_letter(DeadLetter {
                reason: reason.clone(),
                attempts: self.attempt,
                topic: self.topic,
            })
            .await?;
        Err(BrokerError::Rejected {
            broker: self.broker.name(),
            operation: "answer a request".to_owned(),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::{ContentType, Envelope, MemoryBroker};

    fn message() -> Message {
        let envelope = Envelope::new(
            "test".into(),
            Cow::Borrowed("events.inventory.reserve_stock.v1"),
            ContentType::Protobuf,
            None,
        );
        Message::new(envelope, bytes::Bytes::from_static(b"\x0a\x01x"))
    }

    /// A request that names no reply topic cannot be answered: its replier dead-letters it with
    /// the reason and says so, rather than dropping it.
    #[tokio::test]
    async fn a_request_without_a_reply_topic_is_dead_lettered() {
        let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new());
        let topic = Topic::new("events.inventory.stock.reserve.v1").expect("a topic");
        let mut dead = broker
            .subscribe(SubscribeRequest {
                topic: topic.dead_letter().expect("a dead-letter topic"),
                group: None,
                start: StartFrom::New,
                prefetch: 1,
            })
            .await
            .expect("subscribing to the dead letters");
        let mut requests = serve(broker.clone(), &topic, "servers", 1)
            .await
            .expect("serving");
        broker
            .publish(&topic, message())
            .await
            .expect("publishing a request");
        let request = requests
            .next()
            .await
            .expect("a request")
            .expect("no failure");
        let refused = request.replier.reply(message()).await;
        assert!(
            matches!(&refused, Err(BrokerError::Rejected { reason, .. }) if reason.contains("replyto")),
            "{refused:?}"
        );
        let letter = dead
            .next()
            .await
            .expect("a dead letter")
            .expect("no failure")
            .message
            .expect("a CloudEvents message");
        let letter = DeadLetter::read(&letter.envelope).expect("dead-letter attributes");
        assert_eq!(letter.topic, topic);
        assert!(letter.reason.contains("`replyto`"), "{}", letter.reason);
    }

    /// The in-process broker, with topics that can be removed: each removal is told on a
    /// channel.
    struct Removing {
        inner: MemoryBroker,
        removed: tokio::sync::mpsc::UnboundedSender<Topic>,
    }

    #[async_trait]
    impl Broker for Removing {
        fn name(&self) -> &'static str {
            "removing"
        }

        fn capabilities(&self) -> crate::Capabilities {
            self.inner.capabilities()
        }

        async fn publish(
            &self,
            topic: &Topic,
            message: Message,
        ) -> Result<crate::Confirmation, BrokerError> {
            self.inner.publish(topic, message).await
        }

        async fn subscribe(
            &self,
            request: SubscribeRequest,
        ) -> Result<Box<dyn DeliveryStream>, BrokerError> {
            self.inner.subscribe(request).await
        }

        async fn remove_topic(&self, topic: &Topic) -> Result<(), BrokerError> {
            self.removed.send(topic.clone()).expect("the test listens");
            Ok(())
        }
    }

    /// A dropped requester's reply topic is removed, and nothing else.
    #[tokio::test]
    async fn a_dropped_requester_removes_its_reply_topic() {
        let (removed, mut removals) = tokio::sync::mpsc::unbounded_channel();
        let broker: Arc<dyn Broker> = Arc::new(Removing {
            inner: MemoryBroker::new(),
            removed,
        });
        let requester = TopicRequester::start(broker.clone())
            .await
            .expect("a requester");
        let reply_topic = requester.reply_topic.clone();
        assert!(
            removals.try_recv().is_err(),
            "nothing is removed while it lives"
        );
        drop(requester);
        assert_eq!(removals.recv().await, Some(reply_topic));
        drop(broker);
        assert_eq!(removals.recv().await, None, "one topic is removed");
    }

    /// A reply is handed to the request that waits for it, matched by its causation id, and a
    /// reply nobody waits for (its deadline passed) is dropped without harm.
    #[tokio::test]
    async fn replies_find_their_requests_by_causation_id() {
        let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new());
        let requester = TopicRequester::start(broker.clone())
            .await
            .expect("a requester");
        let topic = Topic::new("events.inventory.stock.reserve.v1").expect("a topic");
        let mut requests = serve(broker.clone(), &topic, "servers", 4)
            .await
            .expect("serving");
        let stray = {
            let mut stray = message();
            stray.envelope_mut().causation_id = Some("nobody-waits-for-this".to_owned());
            stray
        };
        let server = tokio::spawn(async move {
            let request = requests
                .next()
                .await
                .expect("a request")
                .expect("no failure");
            let asked = request.message.as_ref().expect("a message").clone();
            let reply_to = asked
                .envelope
                .extension(attr::REPLY_TO)
                .expect("a reply topic")
                .to_owned();
            // A reply to no request first, on the same reply topic.
            broker
                .publish(&Topic::new(reply_to).expect("a topic"), stray)
                .await
                .expect("publishing a stray reply");
            let mut reply = message();
            reply.envelope_mut().causation_id = Some(asked.envelope.id.to_string());
            request.replier.reply(reply).await.expect("replying");
            asked.envelope.id.to_string()
        });
        let reply = requester
            .request(&topic, message(), Duration::from_secs(5))
            .await
            .expect("a reply");
        let asked = server.await.expect("the server");
        assert_eq!(reply.envelope.causation_id.as_deref(), Some(asked.as_str()));
    }
}
