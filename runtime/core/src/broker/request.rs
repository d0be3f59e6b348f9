//! The transport seam of request-reply: a request that waits for one reply, and the requests a
//! server takes and answers.
//!
//! An adapter whose broker has request-reply of its own (NATS inboxes, RabbitMQ's direct
//! reply-to, the in-process broker) implements [`Broker::requester`](super::Broker::requester)
//! and [`Broker::serve`](super::Broker::serve) with it. One that does not leaves them to their
//! defaults, and the typed layer carries requests over the broker's publish and subscribe
//! instead: a reply topic per client, replies matched by the request's event id.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use super::{BrokerError, Malformed, Message};
use crate::topic::Topic;

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
pub enum RequestFailure {
    /// Nobody serves the topic: the broker knew at once (NATS).
    #[error("no server is listening on {topic}")]
    NoResponders {
        /// The request's topic.
        topic: Topic,
    },
    /// No reply came within the deadline; the request may or may not have been handled.
    #[error("no reply on {topic} within {after:?}")]
    Timeout {
        /// The request's topic.
        topic: Topic,
        /// How long was waited.
        after: Duration,
    },
    /// The broker failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// Sends requests and waits for their replies; made once per client by
/// [`Broker::requester`](super::Broker::requester) (it may hold a reply subscription).
#[async_trait]
pub trait Requester: Send + Sync {
    /// Sends `message` to whoever serves `topic` and returns the first reply, waiting at most
    /// `timeout` in all.
    async fn request(
        &self,
        topic: &Topic,
        message: Message,
        timeout: Duration,
    ) -> Result<Message, RequestFailure>;
}

/// Answers one request; consumed by the answer, so a request is answered once.
#[async_trait]
pub trait Replier: Send + Sync {
    /// Sends `message` to the requester. A request that cannot be answered (it names no
    /// address to answer) is settled by the adapter as it settles a refused message, and the
    /// error says so.
    async fn reply(self: Box<Self>, message: Message) -> Result<(), BrokerError>;
}

/// One request a server took, to be answered through its replier.
pub struct IncomingRequest {
    /// The request, or what arrived when it could not be read as a CloudEvents message.
    pub message: Result<Message, Malformed>,
    /// Answers it.
    pub replier: Box<dyn Replier>,
}

impl fmt::Debug for IncomingRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingRequest")
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

/// The requests of one server.
#[async_trait]
pub trait RequestStream: Send {
    /// The next request; `None` once the stream is closed. An error is a transport failure the
    /// adapter could not recover from.
    async fn next(&mut self) -> Option<Result<IncomingRequest, BrokerError>>;
    /// Stops taking requests. Requests already taken can still be answered.
    async fn close(&mut self);
}
