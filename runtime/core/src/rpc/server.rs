//! The server side: take requests, hand them to a handler, answer with its reply or status.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;
use tracing::Instrument;

use super::{Rpc, Status, topic_of, topics};
use crate::broker::request::{IncomingRequest, RequestStream};
use crate::broker::{BrokerError, Malformed, Message};
use crate::bus::{Bus, PublishOptions};
use crate::envelope::Envelope;
use crate::handler::Received;
use crate::receive::{Refusal, check_size, decode};
use crate::subscription::{SubscribeError, Subscription, panic_message, stop_signal};
use crate::telemetry;
use crate::topic::Topic;

/// The stream's next request, or `None` once shutdown is asked for, with the stream itself so
/// that it can be used again or closed.
async fn next_request(
    mut stream: Box<dyn RequestStream>,
    stopped: watch::Receiver<bool>,
) -> (
    Box<dyn RequestStream>,
    Option<Option<Result<IncomingRequest, BrokerError>>>,
) {
    let next = tokio::select! {
        biased;
        () = stop_signal(stopped) => None,
        next = stream.next() => Some(next),
    };
    (stream, next)
}

/// How many requests one server handles at once; more wait with the broker.
pub const DEFAULT_SERVE_CONCURRENCY: usize = 64;

/// Answers the requests of operation `R`: the reply, or a [`Status`] the client receives as
/// [`RequestError::Status`](super::RequestError::Status).
///
/// Any async closure `Fn(Received<R::Request>) -> impl Future<Output = Result<R::Reply, Status>>`
/// is one; generated `serve_...` functions make one per operation of a service's server trait.
pub trait Responder<R: Rpc>: Send + Sync + 'static {
    /// The answer to `request`.
    fn respond(
        &self,
        request: Received<R::Request>,
    ) -> impl Future<Output = Result<R::Reply, Status>> + Send;
}

impl<R, F, Fut> Responder<R> for F
where
    R: Rpc,
    F: Fn(Received<R::Request>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R::Reply, Status>> + Send,
{
    fn respond(
        &self,
        request: Received<R::Request>,
    ) -> impl Future<Output = Result<R::Reply, Status>> + Send {
        self(request)
    }
}

impl Bus {
    /// Serves operation `R` with `responder`, in `group`: the servers of one group share the
    /// requests, each request going to one of them (generated `serve_...` functions name the
    /// group after the service). A request is refused before the responder sees it, answered
    /// with [`Status::INVALID_REQUEST`] and the reason, when it is not `R`'s request (another
    /// major, another schema, data that does not decode) or is larger than the bus allows; a
    /// responder that panics answers [`Status::INTERNAL`]. The server goes on either way.
    ///
    /// The returned handle stops the server: its shutdown waits for the requests in hand to be
    /// answered.
    pub async fn serve<R: Rpc, H: Responder<R>>(
        &self,
        group: &str,
        responder: H,
    ) -> Result<Subscription, SubscribeError> {
        let topic = topic_of::<R>()?;
        let broker = self.broker();
        if !broker.capabilities().request_reply {
            return Err(SubscribeError::Unsupported {
                broker: broker.name(),
                what: "serving requests",
            });
        }
        let concurrency = DEFAULT_SERVE_CONCURRENCY;
        let stream = match broker.serve(&topic, group, concurrency).await {
            Ok(stream) => stream,
            Err(BrokerError::Unsupported { .. }) => {
                topics::serve(broker.clone(), &topic, group, concurrency).await?
            }
            Err(error) => return Err(error.into()),
        };
        let (stop, stopped) = watch::channel(false);
        let ended = Arc::new(OnceLock::new());
        let server = Arc::new(Server::<R, H> {
            bus: self.clone(),
            topic: topic.clone(),
            group: group.to_owned(),
            responder,
            rpc: std::marker::PhantomData,
        });
        let task = tokio::spawn(server.run(stream, concurrency, stopped, ended.clone()));
        Ok(Subscription::new(topic, stop, task, ended))
    }
}

struct Server<R, H> {
    bus: Bus,
    topic: Topic,
    group: String,
    responder: H,
    rpc: std::marker::PhantomData<fn() -> R>,
}

impl<R: Rpc, H: Responder<R>> Server<R, H> {
    /// Takes requests until stopped, answering up to `concurrency` at once inside this task:
    /// no task per request, so a request and its answer cost no hand-over between threads.
    async fn run(
        self: Arc<Self>,
        stream: Box<dyn RequestStream>,
        concurrency: usize,
        stopped: watch::Receiver<bool>,
        ended: Arc<OnceLock<BrokerError>>,
    ) {
        let mut in_hand = FuturesUnordered::new();
        // The stream is either idle here or inside the wait for its next request. The wait is
        // kept across turns of the loop, never dropped halfway, so no request it took is lost
        // when an answer finishes first.
        let mut idle = Some(stream);
        let mut wait = None;
        loop {
            if in_hand.len() < concurrency
                && let Some(stream) = idle.take()
            {
                wait = Some(Box::pin(next_request(stream, stopped.clone())));
            }
            tokio::select! {
                biased;
                Some(()) = in_hand.next(), if !in_hand.is_empty() => {}
                (stream, next) = async { wait.as_mut().expect("a wait").await }, if wait.is_some() => {
                    wait = None;
                    idle = Some(stream);
                    match next {
                        Some(Some(Ok(request))) => in_hand.push(self.answer(request)),
                        Some(Some(Err(error))) => {
                            tracing::error!(
                                messaging.system = self.bus.broker().name(),
                                messaging.destination.name = self.topic.as_str(),
                                messaging.consumer.group.name = self.group.as_str(),
                                error = %error,
                                "serve: the broker ended the server's requests"
                            );
                            // Only this task sets it, once.
                            ended.get_or_init(|| error);
                            break;
                        }
                        Some(None) => {
                            ended.get_or_init(|| BrokerError::Closed {
                                broker: self.bus.broker().name(),
                            });
                            break;
                        }
                        // Shutdown.
                        None => break,
                    }
                }
            }
        }
        let mut stream = match wait {
            // The wait ends on the same stop signal.
            Some(wait) => wait.await.0,
            None => idle.expect("the stream is idle when no wait holds it"),
        };
        while in_hand.next().await.is_some() {}
        stream.close().await;
    }

    /// Handles one request and sends the answer.
    async fn answer(&self, request: IncomingRequest) {
        let IncomingRequest { message, replier } = request;
        let envelope = message.as_ref().ok().map(|m| m.envelope.clone());
        let span = telemetry::process_span(
            self.bus.broker().name(),
            &self.topic,
            Some(&self.group),
            envelope.as_deref(),
            1,
        );
        async {
            let answer = match self.read(&message) {
                Ok(request) => {
                    let envelope = envelope.clone().expect("a decoded request has attributes");
                    let received = Received::new(request, envelope, 1);
                    AssertUnwindSafe(self.responder.respond(received))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|panic| {
                            Err(Status::internal(format!(
                                "the handler panicked: {}",
                                panic_message(&*panic)
                            )))
                        })
                }
                Err(refusal) => {
                    tracing::warn!(
                        messaging.system = self.bus.broker().name(),
                        messaging.destination.name = self.topic.as_str(),
                        messaging.message.id = envelope.as_deref().map(|e| e.id.as_str()),
                        error.type = telemetry::kind::REFUSED,
                        reason = %refusal,
                        "serve: request refused"
                    );
                    Err(Status::invalid_request(refusal.to_string()))
                }
            };
            let reply = self.reply(envelope.as_deref(), answer);
            if let Err(error) = replier.reply(reply).await {
                tracing::warn!(
                    messaging.system = self.bus.broker().name(),
                    messaging.destination.name = self.topic.as_str(),
                    messaging.message.id = envelope.as_deref().map(|e| e.id.as_str()),
                    error = %error,
                    "serve: the answer could not be sent; the client's deadline will pass"
                );
            }
        }
        .instrument(span)
        .await;
    }

    /// The request in `message`, or why it is refused.
    fn read(&self, message: &Result<Message, Malformed>) -> Result<R::Request, Refusal> {
        check_size(message, self.bus.max_message_size())?;
        match message {
            Ok(message) => decode::<R::Request>(&message.envelope, &message.data),
            Err(malformed) => Err(Refusal::Malformed {
                expected: <R::Request as crate::Event>::TYPE,
                reason: malformed.reason.clone(),
            }),
        }
    }

    /// The reply carrying `answer` to the request of attributes `request` (none when it was
    /// malformed): the reply event, or a status. A reply that cannot be made (it does not
    /// encode, or is too large) is answered as the server's failure.
    fn reply(&self, request: Option<&Envelope>, answer: Result<R::Reply, Status>) -> Message {
        let options = || PublishOptions::caused_by(request);
        // A reply ends its chain rather than growing it: nothing handles it in turn, so it
        // keeps its request's depth, and a request within the bound is always answered.
        let depth = request.map_or(0, |request| request.causation_depth);
        let status = match answer {
            Ok(reply) => match self.bus.message_at(&self.topic, &reply, options(), depth) {
                Ok(message) => return message,
                Err(error) => Status::internal(format!("the reply could not be sent: {error}")),
            },
            Err(status) => status,
        };
        let mut envelope = self.bus.envelope::<R::Reply>(options(), depth, || None);
        status.write(&mut envelope);
        Message::new(envelope, bytes::Bytes::new())
    }
}
