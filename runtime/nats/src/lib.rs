//! The NATS adapter: JetStream for durable delivery, core NATS for fire-and-forget fan-out.
//!
//! In JetStream mode (the default) each topic is kept in a stream of its own, created or
//! updated when the topic is first used (`events.order.created.v1` in the stream
//! `events-order-created-v1`; a topic already captured by a stream someone else made is read
//! from that stream). A publish returns once the server stored the message, with the event id
//! as `Nats-Msg-Id` so a republished event inside the duplicate window is dropped. A group is a
//! durable pull consumer named after it; a plain subscriber gets an ephemeral pull consumer of
//! its own. A subscription pulls no more messages than it has free slots for (its prefetch, less
//! what its handlers hold), and keeps telling the server that those it holds are in progress: a
//! message fetched ahead and left waiting past the ack wait would be handed to another member of
//! the group as well. A nack with a delay is a `-NAK` with that delay, a terminate is `+TERM`,
//! and a dead letter is published to `dlq.<topic>` with the reason before the original is
//! terminated. A tool reads what a topic keeps (its dead letters) through an ephemeral consumer
//! that acknowledges nothing, and removes a message by its stream sequence
//! ([`Broker::browse`]); a replay keeps the event id but gives `Nats-Msg-Id` a value of its own
//! ([`Broker::republish`]), so the duplicate window of the original does not drop it.
//!
//! In core mode ([`NatsMode::Core`]) the server keeps nothing and confirms nothing but having
//! read a publish: a plain subscriber gets what is published while it is connected, a group is a
//! queue group (its members share the work, but nothing waits for a group with no member), and a
//! nacked delivery is handed again to the same subscription by this process, so it is lost if
//! the process dies. The broker declares so in its [`Capabilities`].
//!
//! Request-reply is core NATS request-reply in both modes ([`Broker::requester`],
//! [`Broker::serve`]): a request goes to the subject `_tidings.rpc.<topic>` with a reply inbox of
//! the client's, and is never stored (a topic starts with a lowercase letter, so no stream tidings
//! makes captures that subject; a stream of someone else's that did, `>` say, would answer each
//! request with its acknowledgement instead of the server). The servers of a group are a queue
//! group on that subject, and each answers by publishing to the request's reply subject. A request
//! nobody serves fails at once: the server says it has no responders.
//!
//! Attributes travel by the CloudEvents NATS binding, binary mode: `ce-` headers and
//! `content-type`. The client reconnects by itself after the server comes back; a subscription
//! whose consumer was lost recreates it where it left off.

#![forbid(unsafe_code)]

// Public for the fuzz targets, which feed received headers to `binding::read`.
#[doc(hidden)]
pub mod binding;
mod browse;
mod config;
mod core_nats;
mod jetstream;
mod rpc;

/// The broker's own client, for what the adapter does not wrap (and for benchmarks against it).
pub use async_nats;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use async_nats::connection::State;
use async_trait::async_trait;

pub use config::{
    CA_FILE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV, DEFAULT_URL, NatsConfig, NatsMode, URL_ENV,
};

use tidings_core::adapter::redact;
use tidings_core::broker::request::{RequestStream, Requester};
use tidings_core::broker::{
    Broker, BrokerError, Capabilities, Confirmation, DeliveryStream, Message, SubscribeRequest,
};
use tidings_core::topic::Topic;

const NAME: &str = "nats";

/// A connection to a NATS server. Clones share the connection.
#[derive(Clone)]
pub struct NatsBroker {
    shared: Arc<Shared>,
}

struct Shared {
    config: NatsConfig,
    /// The server address with any password hidden, for errors.
    address: String,
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    /// The stream each topic used so far is kept in.
    /// Read on every publish by every publishing task, written once per topic.
    streams: RwLock<HashMap<String, jetstream::StreamName>>,
}

impl NatsBroker {
    /// Connects to the server `config` names. In JetStream mode it also checks that the server
    /// has JetStream enabled.
    pub async fn connect(config: NatsConfig) -> Result<Self, BrokerError> {
        let address = redact(&config.url);
        let mut options = async_nats::ConnectOptions::new()
            .name("tidings")
            .connection_timeout(config.connect_timeout)
            .event_callback(connection_event(address.clone()));
        if !config.tls.is_empty() {
            let tls = config
                .tls
                .client_config()
                .map_err(|e| BrokerError::Unreachable {
                    broker: NAME,
                    address: address.clone(),
                    reason: e.to_string(),
                })?;
            options = options.tls_client_config(tls).require_tls(true);
        }
        let client =
            options
                .connect(config.url.as_str())
                .await
                .map_err(|e| BrokerError::Unreachable {
                    broker: NAME,
                    address: address.clone(),
                    reason: e.to_string(),
                })?;
        let js = async_nats::jetstream::new(client.clone());
        let shared = Shared {
            config,
            address,
            client,
            js,
            streams: RwLock::default(),
        };
        if shared.config.mode == NatsMode::JetStream {
            // Account info answers only where JetStream runs; its shape varies by server version,
            // so only whether it is an error counts.
            let answer = shared
                .client
                .request("$JS.API.INFO", bytes::Bytes::new())
                .await
                .map_err(|e| e.to_string())
                .and_then(|reply| {
                    match serde_json::from_slice::<serde_json::Value>(&reply.payload) {
                        Ok(info) if info.get("error").is_none() => Ok(()),
                        Ok(info) => Err(info["error"].to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                });
            answer.map_err(|e| {
                shared.rejected(
                    "use JetStream",
                    format!("{e}; start the server with JetStream enabled (`nats-server -js`)"),
                )
            })?;
        }
        Ok(NatsBroker {
            shared: Arc::new(shared),
        })
    }

    /// Connects with [`NatsConfig::from_env`].
    pub async fn from_env() -> Result<Self, BrokerError> {
        NatsBroker::connect(NatsConfig::from_env()).await
    }

    /// The settings this broker was made with.
    pub fn config(&self) -> &NatsConfig {
        &self.shared.config
    }
}

impl fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBroker")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// An error for a failed `operation`: the server is unreachable when the client is not
    /// connected, otherwise it refused.
    fn failure(&self, operation: impl fmt::Display, reason: impl fmt::Display) -> BrokerError {
        if self.client.connection_state() == State::Connected {
            self.rejected(operation, reason)
        } else {
            BrokerError::Unreachable {
                broker: NAME,
                address: self.address.clone(),
                reason: format!("{operation}: {reason}"),
            }
        }
    }

    fn rejected(&self, operation: impl fmt::Display, reason: impl fmt::Display) -> BrokerError {
        BrokerError::Rejected {
            broker: NAME,
            operation: format!("{operation} (at {})", self.address),
            reason: reason.to_string(),
        }
    }

    /// Waits until the client is connected again, or returns at once when it is.
    async fn connected(&self) {
        let mut delay = std::time::Duration::from_millis(20);
        while self.client.connection_state() != State::Connected {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_millis(500));
        }
    }
}

#[async_trait]
impl Broker for NatsBroker {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        match self.shared.config.mode {
            NatsMode::JetStream => Capabilities {
                durable: true,
                groups: true,
                nack_delay: true,
                redelivery: true,
                history: true,
                ordered_per_key: true,
                publish_dedup: true,
                no_responders: true,
                request_reply: true,
            },
            // Queue groups share the work, but keep no place while no member runs; a nack is
            // redelivered by this process, a message held by a consumer that died is lost.
            NatsMode::Core => Capabilities {
                durable: false,
                groups: false,
                nack_delay: true,
                redelivery: false,
                history: false,
                ordered_per_key: true,
                publish_dedup: false,
                no_responders: true,
                request_reply: true,
            },
        }
    }

    /// The smaller of [`NatsConfig::max_message_size`] and the server's `max_payload`.
    fn max_message_size(&self) -> usize {
        let server = self.shared.client.max_payload();
        match server {
            0 => self.shared.config.max_message_size,
            server => self.shared.config.max_message_size.min(server),
        }
    }

    async fn publish(&self, topic: &Topic, message: Message) -> Result<Confirmation, BrokerError> {
        match self.shared.config.mode {
            NatsMode::JetStream => jetstream::publish(&self.shared, topic, message).await,
            NatsMode::Core => core_nats::publish(&self.shared, topic, message)
                .await
                .map(|()| Confirmation::held()),
        }
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        match self.shared.config.mode {
            NatsMode::JetStream => jetstream::subscribe(self.shared.clone(), request).await,
            NatsMode::Core => core_nats::subscribe(self.shared.clone(), request).await,
        }
    }

    /// In JetStream mode, an ephemeral consumer that acknowledges nothing reads the topic's
    /// stream, and an ack deletes the message from the stream by its sequence. Core NATS keeps
    /// nothing to read.
    async fn browse(&self, topic: &Topic) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        match self.shared.config.mode {
            NatsMode::JetStream => browse::browse(self.shared.clone(), topic).await,
            NatsMode::Core => Err(BrokerError::Unsupported {
                broker: NAME,
                what: "reading a topic outside a subscription in core mode",
            }),
        }
    }

    /// Core NATS request-reply, in either mode: an inbox per request, and the server's word
    /// when nobody serves the topic.
    async fn requester(&self) -> Result<Box<dyn Requester>, BrokerError> {
        Ok(Box::new(rpc::NatsRequester {
            shared: self.shared.clone(),
        }))
    }

    /// A queue subscription in `group` on the topic's rpc subject, in either mode. Core NATS
    /// has no prefetch (the server pushes each member its share), so `prefetch` is unused: the
    /// typed server bounds how many requests it answers at once.
    async fn serve(
        &self,
        topic: &Topic,
        group: &str,
        _prefetch: usize,
    ) -> Result<Box<dyn RequestStream>, BrokerError> {
        rpc::serve(self.shared.clone(), topic, group).await
    }

    /// In JetStream mode, `dedup_id` goes as `Nats-Msg-Id` in place of the event id.
    async fn republish(
        &self,
        topic: &Topic,
        message: Message,
        dedup_id: &str,
    ) -> Result<Confirmation, BrokerError> {
        match self.shared.config.mode {
            NatsMode::JetStream => {
                jetstream::publish_as(&self.shared, topic, message, Some(dedup_id)).await
            }
            NatsMode::Core => self.publish(topic, message).await,
        }
    }
}

/// Reports what the client says of its connection: lost at WARN, regained at INFO, server and
/// client errors at ERROR (except the failed attempts to reconnect while it is lost); the first
/// connection, and the rest, at DEBUG.
fn connection_event(
    address: String,
) -> impl Fn(async_nats::Event) -> std::future::Ready<()> + Send + Sync + 'static {
    let lost = std::sync::atomic::AtomicBool::new(false);
    move |event| {
        use std::sync::atomic::Ordering;
        match &event {
            async_nats::Event::Disconnected => {
                lost.store(true, Ordering::Relaxed);
                tracing::warn!(
                    messaging.system = NAME,
                    server.address = address.as_str(),
                    "connection lost; the client reconnects by itself",
                );
            }
            async_nats::Event::Connected if lost.swap(false, Ordering::Relaxed) => {
                tracing::info!(
                    messaging.system = NAME,
                    server.address = address.as_str(),
                    "connection regained",
                );
            }
            // While the connection is down, each failed attempt to get it back says so again:
            // the loss was reported once, at WARN.
            async_nats::Event::ClientError(_) if lost.load(Ordering::Relaxed) => tracing::debug!(
                messaging.system = NAME,
                server.address = address.as_str(),
                error = %event,
                "reconnecting failed; the client tries again",
            ),
            async_nats::Event::ServerError(_) | async_nats::Event::ClientError(_) => {
                tracing::error!(
                    messaging.system = NAME,
                    server.address = address.as_str(),
                    error = %event,
                    "connection error",
                );
            }
            async_nats::Event::SlowConsumer(_) | async_nats::Event::LameDuckMode => {
                tracing::warn!(
                    messaging.system = NAME,
                    server.address = address.as_str(),
                    event = %event,
                    "connection event",
                );
            }
            _ => tracing::debug!(
                messaging.system = NAME,
                server.address = address.as_str(),
                event = %event,
                "connection event",
            ),
        }
        std::future::ready(())
    }
}
