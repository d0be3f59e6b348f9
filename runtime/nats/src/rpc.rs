//! Request-reply over core NATS, in either mode: a request goes to the rpc subject of its topic
//! with an inbox of the client's as its reply subject, and the servers of a group share the
//! requests as a queue group.
//!
//! Requests are never stored: the rpc subject of a topic is `_tidings.rpc.<topic>`. A topic
//! starts with a lowercase letter, so no stream tidings makes (which captures its topic's
//! subject alone, or `dlq.<topic>`) captures an rpc subject; a stream that did would answer
//! every request with its own acknowledgement, as if it were the server.

use std::sync::Arc;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::{Subject, Subscriber};
use async_trait::async_trait;
use futures_util::StreamExt;

use super::{NAME, Shared, binding, core_nats};
use tidings_core::broker::request::{
    IncomingRequest, Replier, RequestFailure, RequestStream, Requester,
};
use tidings_core::broker::{BrokerError, Message};
use tidings_core::topic::Topic;

/// What comes before a topic in its rpc subject.
const RPC_PREFIX: &str = "_tidings.rpc.";

/// The subject requests of `topic` travel on.
pub(super) fn subject(topic: &Topic) -> String {
    format!("{RPC_PREFIX}{topic}")
}

/// Sends requests with the client's own request-reply: an inbox per request, muxed on one
/// subscription of the client's.
pub(super) struct NatsRequester {
    pub(super) shared: Arc<Shared>,
}

#[async_trait]
impl Requester for NatsRequester {
    async fn request(
        &self,
        topic: &Topic,
        message: Message,
        timeout: Duration,
    ) -> Result<Message, RequestFailure> {
        let shared = &self.shared;
        let request = async_nats::Request::new()
            .headers(binding::headers(&message.envelope, &[]))
            .payload(message.data)
            .timeout(Some(timeout));
        let timed_out = || RequestFailure::Timeout {
            topic: topic.clone(),
            after: timeout,
        };
        // The client's timeout runs from when it sent the request; this one also bounds the
        // wait to hand it to the client while the connection is down.
        let sent =
            tokio::time::timeout(timeout, shared.client.send_request(subject(topic), request))
                .await
                .map_err(|_| timed_out())?;
        let operation = || format!("send a request on {topic}");
        let reply = match sent {
            Ok(reply) => reply,
            Err(error) => {
                return Err(match error.kind() {
                    RequestErrorKind::NoResponders => RequestFailure::NoResponders {
                        topic: topic.clone(),
                    },
                    RequestErrorKind::TimedOut => timed_out(),
                    RequestErrorKind::MaxPayloadExceeded => BrokerError::Unwritable {
                        broker: NAME,
                        reason: format!(
                            "the request on {topic} is larger than the server takes ({error}); \
                             make it smaller, or raise the server's `max_payload`"
                        ),
                    }
                    .into(),
                    RequestErrorKind::InvalidSubject => shared.rejected(operation(), error).into(),
                    RequestErrorKind::Other => shared.failure(operation(), error).into(),
                });
            }
        };
        binding::read(reply.headers.as_ref(), reply.payload).map_err(|malformed| {
            shared
                .rejected(
                    operation(),
                    format!(
                        "the reply is no CloudEvents message ({}); is something other than a \
                         tidings server answering {}?",
                        malformed.reason,
                        subject(topic)
                    ),
                )
                .into()
        })
    }
}

/// The requests of `topic` for the servers of `group`: a queue subscription on its rpc subject.
/// Core NATS has no prefetch: the server pushes each member its share, which waits in the
/// client's buffer until the typed server, which bounds how many it answers at once, takes it.
pub(super) async fn serve(
    shared: Arc<Shared>,
    topic: &Topic,
    group: &str,
) -> Result<Box<dyn RequestStream>, BrokerError> {
    let operation = || format!("serve {topic} in group {group:?}");
    if group.is_empty() || group.contains(char::is_whitespace) {
        return Err(shared.rejected(
            operation(),
            "a group name is a NATS queue group: non-empty, without whitespace",
        ));
    }
    let subscriber = shared
        .client
        .queue_subscribe(subject(topic), group.to_owned())
        .await
        .map_err(|e| shared.failure(operation(), e))?;
    Ok(Box::new(NatsRequests {
        shared,
        topic: topic.clone(),
        subscriber: Some(subscriber),
    }))
}

struct NatsRequests {
    shared: Arc<Shared>,
    topic: Topic,
    /// `None` once closed.
    subscriber: Option<Subscriber>,
}

#[async_trait]
impl RequestStream for NatsRequests {
    async fn next(&mut self) -> Option<Result<IncomingRequest, BrokerError>> {
        // The client subscribes again by itself after a reconnect; the stream ends only with
        // the client.
        let mut message = self.subscriber.as_mut()?.next().await?;
        let headers = message.headers.take();
        Some(Ok(IncomingRequest {
            message: binding::read(headers.as_ref(), message.payload),
            replier: Box::new(NatsReplier {
                shared: self.shared.clone(),
                topic: self.topic.clone(),
                reply: message.reply,
            }),
        }))
    }

    async fn close(&mut self) {
        if let Some(mut subscriber) = self.subscriber.take()
            && let Err(error) = subscriber.unsubscribe().await
        {
            tracing::warn!(
                messaging.system = NAME,
                messaging.destination.name = self.topic.as_str(),
                error = %error,
                "could not stop serving; the server drops the queue subscription with the connection",
            );
        }
    }
}

/// Publishes the reply to the request's reply subject. Core NATS keeps nothing, so there is
/// nothing to settle either way.
struct NatsReplier {
    shared: Arc<Shared>,
    topic: Topic,
    reply: Option<Subject>,
}

#[async_trait]
impl Replier for NatsReplier {
    async fn reply(self: Box<Self>, message: Message) -> Result<(), BrokerError> {
        let Some(reply) = self.reply else {
            return Err(self.shared.rejected(
                format_args!("answer a request on {}", self.topic),
                "the request names no reply subject (it was published, not requested), so \
                 there is nowhere to answer; it is dropped, and core NATS keeps nothing to settle",
            ));
        };
        let headers = binding::headers(&message.envelope, &[]);
        core_nats::send(&self.shared, reply.as_str(), headers, message.data).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_topic_is_an_rpc_subject() {
        let topic = Topic::new("events.inventory.stock.reserve.v1").unwrap();
        let rpc = subject(&topic);
        assert_eq!(rpc, "_tidings.rpc.events.inventory.stock.reserve.v1");
        assert!(Topic::new(rpc).is_err());
    }
}
