//! The RabbitMQ adapter.
//!
//! Every event is published, persistent and with publisher confirms, to one topic exchange
//! (`tidings` by default) with its topic as routing key. A group is a durable quorum queue named
//! `<topic>:<group>`, bound to the topic: it keeps the group's messages while no member runs,
//! survives a broker restart and counts deliveries (`x-delivery-count`). A plain subscriber gets
//! an exclusive, auto-delete queue of its own, which lives as long as its connection: fan-out
//! does not outlive a restart. The prefetch of a subscription is its `basic.qos`.
//!
//! A nack with a delay republishes the message through the `tidings.delay` headers exchange to
//! a queue whose messages expire after the delay (rounded up to a power of two milliseconds) and
//! are then dead-lettered back to the subscriber's queue, the attempt carried in a header; a
//! nack without delay requeues it. A dead letter is republished to `dlq.<topic>` with the reason,
//! attempt count and topic as attributes, then the original is acked; a durable queue named
//! `dlq.<topic>` keeps dead letters until someone reads them, and group queues also name it as
//! their dead-letter exchange route, so a [`RabbitConfig::delivery_limit`] ends there too. A tool
//! reads that queue with `basic.get`, holding each message unacked until it removes it (an ack)
//! or closes (the rest requeued in place): [`Broker::browse`].
//!
//! Request-reply uses direct reply-to ([`Broker::requester`], [`Broker::serve`]). A request is
//! published, transient and mandatory, to the direct exchange `<exchange>.rpc` with its topic as
//! routing key, `reply_to` set to `amq.rabbitmq.reply-to` (consumed by the requester's own
//! channel) and its event id as `correlation_id`, expiring with its deadline. The servers of a
//! group share a classic queue `rpc:<topic>:<group>` bound there, deleted with its last server (or
//! 10 s after a broker restart left it without one): a request nobody serves comes back
//! unroutable at once, and none waits for a server that is gone. A server answers through the
//! default exchange to the request's `reply_to`, the correlation id copied, then acks the request.
//!
//! Attributes travel by the CloudEvents AMQP binding, binary mode (`cloudEvents_` headers and
//! `content-type`). After the connection is lost, publishes and subscriptions connect again and
//! declare what they need again.

#![forbid(unsafe_code)]

// Public for the fuzz targets, which feed received properties to `binding::read`.
#[doc(hidden)]
pub mod binding;
mod browse;
mod config;
mod consume;
mod rpc;
mod topology;

/// The broker's own client, for what the adapter does not wrap (and for benchmarks against it).
pub use lapin;

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::{BasicProperties, Channel, Connect, Connection, ConnectionProperties};

pub use config::{
    CA_FILE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV, DEFAULT_URL, RabbitConfig, URL_ENV,
};

use tidings_core::adapter::lock;
use tidings_core::adapter::redact;
use tidings_core::broker::request::{RequestStream, Requester};
use tidings_core::broker::{
    Broker, BrokerError, Capabilities, Confirmation, DeliveryStream, Message, SubscribeRequest,
};
use tidings_core::topic::Topic;

const NAME: &str = "rabbitmq";

/// A connection to a RabbitMQ server. Clones share the connection.
#[derive(Clone)]
pub struct RabbitBroker {
    shared: Arc<Shared>,
}

struct Shared {
    config: RabbitConfig,
    /// The server address with any password hidden, for errors.
    address: String,
    live: tokio::sync::Mutex<Option<Live>>,
    /// Queues and exchanges declared by this broker, declared again only after a publish
    /// through them was returned unroutable.
    declared: Mutex<HashSet<String>>,
}

/// The connection in use and its publishing channel (in confirm mode).
#[derive(Clone)]
struct Live {
    connection: Arc<Connection>,
    publisher: Channel,
}

impl RabbitBroker {
    /// Connects to the server `config` names and declares the exchanges.
    pub async fn connect(config: RabbitConfig) -> Result<Self, BrokerError> {
        let address = redact(&config.url);
        let shared = Shared {
            config,
            address,
            live: tokio::sync::Mutex::new(None),
            declared: Mutex::default(),
        };
        shared.live().await?;
        Ok(RabbitBroker {
            shared: Arc::new(shared),
        })
    }

    /// Connects with [`RabbitConfig::from_env`].
    pub async fn from_env() -> Result<Self, BrokerError> {
        RabbitBroker::connect(RabbitConfig::from_env()).await
    }

    /// The settings this broker was made with.
    pub fn config(&self) -> &RabbitConfig {
        &self.shared.config
    }
}

impl fmt::Debug for RabbitBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitBroker")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The connection, made again when it was lost.
    async fn live(&self) -> Result<Live, BrokerError> {
        let mut live = self.live.lock().await;
        if let Some(current) = live.as_ref()
            && current.publisher.status().connected()
        {
            return Ok(current.clone());
        }
        // Boxed: opening a connection and a channel takes futures of kilobytes, which every
        // publish's future would otherwise carry (and allocate) for a path taken rarely.
        Box::pin(self.reconnect(&mut live)).await
    }

    /// Opens a publishing channel again, and the connection under it if that is gone too.
    async fn reconnect(&self, live: &mut Option<Live>) -> Result<Live, BrokerError> {
        if let Some(current) = live.as_ref()
            && current.connection.status().connected()
        {
            // The channel was closed by an error of its own; the connection is fine.
            let publisher = self.publisher(&current.connection).await?;
            let current = Live {
                connection: current.connection.clone(),
                publisher,
            };
            *live = Some(current.clone());
            return Ok(current);
        }
        let lost = live.is_some();
        if lost {
            tracing::warn!(
                messaging.system = NAME,
                server.address = self.address.as_str(),
                "connection lost; connecting again",
            );
        }
        let properties = ConnectionProperties::default().with_connection_name("tidings".into());
        let tls = self.tls()?;
        let runtime = lapin::runtime::default_runtime().map_err(|e| self.unreachable(e))?;
        let connection = tokio::time::timeout(
            self.config.connect_timeout,
            self.config
                .url
                .as_str()
                .connect_with_config(properties, tls, runtime),
        )
        .await
        .map_err(|_| {
            self.unreachable(format!(
                "no answer within {:?}",
                self.config.connect_timeout
            ))
        })?
        .map_err(|e| self.unreachable(e))?;
        let connection = Arc::new(connection);
        let publisher = self.publisher(&connection).await?;
        topology::declare_exchanges(&publisher, &self.config)
            .await
            .map_err(|e| self.failure("declare the exchanges", e))?;
        let current = Live {
            connection,
            publisher,
        };
        *live = Some(current.clone());
        if lost {
            tracing::info!(
                messaging.system = NAME,
                server.address = self.address.as_str(),
                "connection regained",
            );
        }
        Ok(current)
    }

    async fn publisher(&self, connection: &Connection) -> Result<Channel, BrokerError> {
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| self.failure("open a channel", e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| self.failure("turn on publisher confirms", e))?;
        Ok(channel)
    }

    /// Publishes and waits for the broker's confirmation. `Ok(false)`: the message was
    /// mandatory and no queue took it. The properties are made once the channel is ready, so
    /// that they go straight into the client's future rather than weigh on this one; properties
    /// AMQP cannot write fail the publish with [`BrokerError::Unwritable`].
    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        data: &[u8],
        properties: impl FnOnce() -> Result<BasicProperties, String>,
    ) -> Result<bool, BrokerError> {
        let operation = || format!("publish to {routing_key}");
        let live = self.live().await?;
        let properties = properties().map_err(|reason| BrokerError::Unwritable {
            broker: NAME,
            reason,
        })?;
        let options = BasicPublishOptions {
            mandatory,
            ..BasicPublishOptions::default()
        };
        // The client's publish future is over a kilobyte. Boxed on its own, it keeps the future
        // of every publish under the size where glibc's allocator sweeps its free lists on each
        // allocation.
        let send = Box::pin(live.publisher.basic_publish(
            exchange.into(),
            routing_key.into(),
            options,
            data,
            properties,
        ));
        let confirm = send.await.map_err(|e| self.failure(operation(), e))?;
        match confirm.await.map_err(|e| self.failure(operation(), e))? {
            lapin::Confirmation::Ack(None) | lapin::Confirmation::NotRequested => Ok(true),
            lapin::Confirmation::Ack(Some(_)) => Ok(false),
            lapin::Confirmation::Nack(_) => Err(self.rejected(
                operation(),
                "the broker could not take the message (a queue limit, or a disk or memory alarm)",
            )),
        }
    }

    /// Whether the queue or exchange `key` names was declared by this broker.
    fn is_declared(&self, key: &str) -> bool {
        lock(&self.declared).contains(key)
    }

    fn set_declared(&self, key: &str, declared: bool) {
        let mut set = lock(&self.declared);
        if declared {
            set.insert(key.to_owned());
        } else {
            set.remove(key);
        }
    }

    /// The TLS settings of the connection, from the configured files: what `amqps://` trusts
    /// besides the system's roots, and the client certificate.
    fn tls(&self) -> Result<OwnedTLSConfig, BrokerError> {
        let tls = &self.config.tls;
        if tls.is_empty() {
            return Ok(OwnedTLSConfig::default());
        }
        if !self.config.url.starts_with("amqps://") {
            return Err(self.unreachable(
                "TLS files are set but the address is not a TLS one; write it as amqps://",
            ));
        }
        let pem = tls.pem().map_err(|e| self.unreachable(e))?;
        let cert_chain = pem
            .ca
            .map(|ca| {
                String::from_utf8(ca).map_err(|e| self.unreachable(format!("the CA file: {e}")))
            })
            .transpose()?;
        Ok(OwnedTLSConfig {
            identity: pem
                .client
                .map(|(pem, key)| OwnedIdentity::PKCS8 { pem, key }),
            cert_chain,
        })
    }

    fn unreachable(&self, reason: impl fmt::Display) -> BrokerError {
        BrokerError::Unreachable {
            broker: NAME,
            address: self.address.clone(),
            reason: reason.to_string(),
        }
    }

    /// The server did not answer `operation` within `limit`: treated as a lost connection.
    fn unanswered(&self, operation: impl fmt::Display, limit: std::time::Duration) -> BrokerError {
        self.unreachable(format!("{operation}: no answer within {limit:?}"))
    }

    fn rejected(&self, operation: impl fmt::Display, reason: impl fmt::Display) -> BrokerError {
        BrokerError::Rejected {
            broker: NAME,
            operation: format!("{operation} (at {})", self.address),
            reason: reason.to_string(),
        }
    }

    /// An error for a failed `operation`: unreachable when it was the connection that failed,
    /// otherwise refused.
    fn failure(&self, operation: impl fmt::Display, error: lapin::Error) -> BrokerError {
        let connection_lost = error.is_io_error()
            || error.is_amqp_hard_error()
            || matches!(
                error.kind(),
                lapin::ErrorKind::InvalidConnectionState(_)
                    | lapin::ErrorKind::MissingHeartbeatError
            );
        if connection_lost {
            self.unreachable(format!("{operation}: {error}"))
        } else {
            self.rejected(operation, error)
        }
    }
}

#[async_trait]
impl Broker for RabbitBroker {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            durable: true,
            groups: true,
            nack_delay: true,
            redelivery: true,
            history: false,
            ordered_per_key: true,
            publish_dedup: false,
            no_responders: true,
            request_reply: true,
        }
    }

    fn max_message_size(&self) -> usize {
        self.shared.config.max_message_size
    }

    async fn publish(&self, topic: &Topic, message: Message) -> Result<Confirmation, BrokerError> {
        self.shared
            .publish(
                &self.shared.config.exchange,
                topic.as_str(),
                false,
                &message.data,
                || binding::properties(&message.envelope),
            )
            .await
            .map(|_| Confirmation::held())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        consume::subscribe(self.shared.clone(), request).await
    }

    /// A channel of the requester's own, consuming direct reply-to; a request nobody serves
    /// comes back unroutable, and fails at once.
    async fn requester(&self) -> Result<Box<dyn Requester>, BrokerError> {
        Ok(Box::new(
            rpc::RabbitRequester::start(self.shared.clone()).await?,
        ))
    }

    /// The group's queue for the topic on the rpc exchange, consumed with `prefetch` as its
    /// `basic.qos`.
    async fn serve(
        &self,
        topic: &Topic,
        group: &str,
        prefetch: usize,
    ) -> Result<Box<dyn RequestStream>, BrokerError> {
        rpc::serve(self.shared.clone(), topic, group, prefetch).await
    }

    /// The durable queue of a dead-letter topic, read with `basic.get`; an ack removes a
    /// message, and the rest go back in place when the read closes. Other topics have no
    /// queue that keeps what nobody reads: refused.
    async fn browse(&self, topic: &Topic) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        browse::browse(self.shared.clone(), topic).await
    }
}
