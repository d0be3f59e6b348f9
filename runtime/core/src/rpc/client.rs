//! The client side: send a request, wait for its reply.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::{RequestError, Rpc, Status, topic_of, topics};
use crate::broker::BrokerError;
use crate::broker::request::{RequestFailure, Requester};
use crate::bus::{Bus, PublishError, PublishOptions};
use crate::envelope::Envelope;
use crate::receive::{Refusal, decode};
use crate::size;
use crate::telemetry;

/// How long a request waits for its reply unless told otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends requests over a bus and waits for their replies. Cheap to clone; clones share one
/// requester (on brokers without request-reply of their own, one reply subscription).
///
/// Generated service clients wrap one: `StockClient::new(bus.client().await?)`.
#[derive(Clone)]
pub struct Client {
    bus: Bus,
    requester: Arc<dyn Requester>,
    timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("broker", &self.bus.broker().name())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// A client for request-reply over this bus's broker: in the broker's own way where it has
    /// one (NATS inboxes, RabbitMQ's direct reply-to, the in-process broker), otherwise over
    /// publish and subscribe, with a reply topic of this client's own
    /// (`tidings.reply.r<id>.v1`) that it subscribes to now.
    pub async fn client(&self) -> Result<Client, BrokerError> {
        let requester: Arc<dyn Requester> = match self.broker().requester().await {
            Ok(requester) => Arc::from(requester),
            Err(BrokerError::Unsupported { .. }) => {
                Arc::new(topics::TopicRequester::start(self.broker().clone()).await?)
            }
            Err(error) => return Err(error),
        };
        Ok(Client {
            bus: self.clone(),
            requester,
            timeout: DEFAULT_REQUEST_TIMEOUT,
        })
    }
}

impl Client {
    /// Sets how long a request waits for its reply unless the call says otherwise.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// A request of operation `R`; await it for the reply. Generated clients call this from
    /// one method per operation.
    pub fn call<'a, R: Rpc>(&'a self, request: &'a R::Request) -> Call<'a, R> {
        Call {
            client: self,
            request,
            deadline: None,
            cause: None,
        }
    }
}

/// A request being made; `.await` it for the reply.
#[must_use = "a request does nothing until awaited"]
pub struct Call<'a, R: Rpc> {
    client: &'a Client,
    request: &'a R::Request,
    deadline: Option<Duration>,
    cause: Option<&'a Envelope>,
}

impl<'a, R: Rpc> Call<'a, R> {
    /// How long to wait for the reply, from now (instead of the client's default).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Makes the request in reaction to `cause`, the event a handler received, continuing its
    /// chain as [`Publish::caused_by`](crate::Publish::caused_by) does: correlation id,
    /// causation id, trace and depth, with the same bound.
    pub fn caused_by(mut self, cause: &'a (impl AsRef<Envelope> + ?Sized)) -> Self {
        self.cause = Some(cause.as_ref());
        self
    }
}

impl<'a, R: Rpc> IntoFuture for Call<'a, R> {
    type Output = Result<R::Reply, RequestError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let topic = topic_of::<R>().map_err(PublishError::from)?;
            let client = self.client;
            let timeout = self.deadline.unwrap_or(client.timeout);
            let span = telemetry::request_span(client.bus.broker().name(), &topic);
            let message = {
                let _in_span = span.enter();
                let options = PublishOptions::caused_by(self.cause);
                let message = client.bus.message(&topic, self.request, options)?;
                telemetry::record_id(&span, &message.envelope.id);
                message
            };
            let reply = client
                .requester
                .request(&topic, message, timeout)
                .instrument(span)
                .await?;
            let limit = client.bus.max_message_size();
            if let Err(too_large) = size::check(reply.size(), limit) {
                let refusal = Refusal::TooLarge {
                    size: too_large.size,
                    limit: too_large.limit,
                };
                return Err(RequestError::Reply { topic, refusal });
            }
            if let Some(status) = Status::read(&reply.envelope) {
                return Err(RequestError::Status(status));
            }
            decode::<R::Reply>(&reply.envelope, &reply.data)
                .map_err(|refusal| RequestError::Reply { topic, refusal })
        })
    }
}

impl From<RequestFailure> for RequestError {
    fn from(failure: RequestFailure) -> RequestError {
        match failure {
            RequestFailure::NoResponders { topic } => RequestError::NoResponders { topic },
            RequestFailure::Timeout { topic, after } => RequestError::Timeout { topic, after },
            RequestFailure::Broker(error) => RequestError::Broker(error),
        }
    }
}
