//! Request-reply: an operation declared as an `rpc` of a protobuf `service`, typed like events.
//!
//! A request is an event of the operation's request type, sent on the operation's own topic
//! ([`Rpc::TOPIC`], under the topic rule) to whoever serves it; the reply is an event of its
//! reply type, caused by the request (its `causationid` is the request's id). Both travel as
//! CloudEvents and are checked like every event: a request of another major is refused, and
//! the client gets that refusal as a [`Status`].
//!
//! A [`Client`] sends requests ([`Client::call`]); [`Bus::serve`](crate::Bus::serve) answers
//! them with a handler that returns the reply or a [`Status`], the application's error, which
//! reaches the client typed ([`RequestError::Status`]).

use std::time::Duration;

use crate::broker::BrokerError;
use crate::bus::PublishError;
use crate::event::Event;
use crate::receive::Refusal;
use crate::topic::Topic;

mod client;
mod server;
mod status;
mod topics;

pub use client::{Call, Client, DEFAULT_REQUEST_TIMEOUT};
pub use server::{DEFAULT_SERVE_CONCURRENCY, Responder};
pub use status::Status;

/// One request-reply operation: the code generator implements it for each `rpc` of a
/// service, on a unit type named after the service and the operation (`StockReserve`).
pub trait Rpc: Send + Sync + 'static {
    /// What the client sends.
    type Request: Event;
    /// What the server answers.
    type Reply: Event;
    /// The topic requests travel on: the package without its version, the service, the
    /// operation, the version (`events.inventory.stock.reserve.v1`).
    const TOPIC: &'static str;
    /// The operation's full protobuf name, `events.inventory.v1.Stock.Reserve`.
    const NAME: &'static str;
}

/// The checked topic of operation `R`.
pub(crate) fn topic_of<R: Rpc>() -> Result<Topic, crate::TopicError> {
    Topic::new(R::TOPIC)
}

/// Why a request got no reply, or a reply that is no answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request could not be sent (its topic, its encoding, its size or its causation
    /// chain); nothing was sent.
    #[error("cannot send the request: {0}")]
    Publish(#[from] PublishError),
    /// Nobody serves the operation; the broker knew at once.
    #[error(
        "no server answers {topic}: start one (`serve_...` of the service), or check that client \
         and server use the same broker and major version"
    )]
    NoResponders {
        /// The operation's topic.
        topic: Topic,
    },
    /// No reply within the deadline: the request may or may not have been handled.
    #[error(
        "no reply on {topic} within {after:?}: the server may be down, slow or busy; call again \
         only if the operation is idempotent, or allow more time with `.deadline(..)`"
    )]
    Timeout {
        /// The operation's topic.
        topic: Topic,
        /// How long was waited.
        after: Duration,
    },
    /// The server answered with an error: the application's own (what its handler returned),
    /// or its refusal of the request (a request of another major, say, with
    /// [`Status::INVALID_REQUEST`]).
    #[error("the server answered {0}")]
    Status(Status),
    /// The reply is not the operation's reply type (another major, another schema, data that
    /// does not decode).
    #[error("the reply on {topic} is refused: {refusal}")]
    Reply {
        /// The operation's topic.
        topic: Topic,
        /// Why it was refused.
        #[source]
        refusal: Refusal,
    },
    /// The broker failed.
    #[error("the request failed: {0}")]
    Broker(#[from] BrokerError),
}

impl RequestError {
    /// The status the server answered with, if it answered with an error.
    pub fn status(&self) -> Option<&Status> {
        match self {
            RequestError::Status(status) => Some(status),
            _ => None,
        }
    }
}
