//! How to reach a RabbitMQ server and how to lay out exchanges and queues on it.

use std::fmt;
use std::time::Duration;

use tidings_core::DEFAULT_MAX_MESSAGE_SIZE;
use tidings_core::adapter::{TlsFiles, address_from_env, redact};

/// The address used when none is given: a server on this machine, default user and vhost.
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Environment variable read by [`RabbitConfig::from_env`] for the server address
/// (`amqp://user:password@host:5672/vhost`, or `amqps://...` for TLS).
pub const URL_ENV: &str = "TIDINGS_RABBITMQ_URL";

/// Environment variable read by [`RabbitConfig::from_env`]: a PEM file of root certificates
/// trusted for TLS (`amqps://`) besides the system's, for servers whose certificate the system
/// does not trust.
pub const CA_FILE_ENV: &str = "TIDINGS_RABBITMQ_CA_FILE";

/// Environment variable read by [`RabbitConfig::from_env`]: a PEM file with the client
/// certificate chain presented to a server that verifies peers; needs [`CLIENT_KEY_ENV`].
pub const CLIENT_CERT_ENV: &str = "TIDINGS_RABBITMQ_CLIENT_CERT";

/// Environment variable read by [`RabbitConfig::from_env`]: the PEM private key of
/// [`CLIENT_CERT_ENV`]'s certificate.
pub const CLIENT_KEY_ENV: &str = "TIDINGS_RABBITMQ_CLIENT_KEY";

/// Settings of a [`RabbitBroker`](super::RabbitBroker).
#[derive(Clone)]
pub struct RabbitConfig {
    pub(super) url: String,
    pub(super) tls: TlsFiles,
    pub(super) exchange: String,
    pub(super) delivery_limit: Option<u32>,
    pub(super) group_expiry: Option<Duration>,
    pub(super) connect_timeout: Duration,
    pub(super) operation_timeout: Duration,
    pub(super) max_message_size: usize,
}

impl Default for RabbitConfig {
    fn default() -> Self {
        RabbitConfig::new(DEFAULT_URL)
    }
}

impl RabbitConfig {
    /// Settings for the server at `url`, with the defaults of each setting.
    pub fn new(url: impl Into<String>) -> Self {
        RabbitConfig {
            url: url.into(),
            tls: TlsFiles::default(),
            exchange: "tidings".to_owned(),
            delivery_limit: None,
            group_expiry: None,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(10),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }

    /// Settings from the environment: the address from [`URL_ENV`] (default
    /// [`DEFAULT_URL`]), and the TLS files of [`RabbitConfig::tls_from_env`].
    pub fn from_env() -> Self {
        RabbitConfig::new(address_from_env(URL_ENV, DEFAULT_URL)).tls_from_env()
    }

    /// The server address as given, credentials included.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The topic exchange every event is published to, routed by its topic (default
    /// `tidings`). Delayed retries go through `<exchange>.delay`, requests (request-reply)
    /// through `<exchange>.rpc`.
    pub fn exchange(mut self, name: impl Into<String>) -> Self {
        self.exchange = name.into();
        self
    }

    /// How many times a group's queue delivers a message before RabbitMQ moves it to the
    /// dead-letter topic itself (default: no limit, the typed layer dead-letters after its
    /// retry bound). A safety net for consumers that crash on a message before they can settle
    /// it. Applies to group queues when they are first declared: once a queue exists, RabbitMQ
    /// refuses a subscription to it with another value (`PRECONDITION_FAILED`) until the queue
    /// is deleted.
    pub fn delivery_limit(mut self, limit: Option<u32>) -> Self {
        self.delivery_limit = limit;
        self
    }

    /// How long a group's queue, and what waits in it, is kept while no member runs (default:
    /// for good; RabbitMQ's `x-expires`). Applies when the queue is first declared: once it
    /// exists, RabbitMQ refuses a subscription to it with another value (`PRECONDITION_FAILED`)
    /// until the queue is deleted.
    pub fn group_expiry(mut self, expiry: Option<Duration>) -> Self {
        self.group_expiry = expiry;
        self
    }

    /// How long connecting may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a subscription's channel operation (opening the channel, declaring its queue,
    /// starting the consumer, settling a delivery) may take before the subscription gives up
    /// on that channel and consumes again on a new one (default 10 s). A server that is
    /// restarting can accept a connection and then leave such a request unanswered.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// The largest message, in the bytes tidings counts (data and attributes), that a bus over
    /// this broker publishes and receives unless told otherwise (default
    /// [`DEFAULT_MAX_MESSAGE_SIZE`], 1 MiB). The client, lapin, has no limit of its own on what
    /// it receives; the server's own `max_message_size` bounds what it takes.
    pub fn max_message_size(mut self, limit: usize) -> Self {
        self.max_message_size = limit;
        self
    }
}

tidings_core::tls_settings!(
    RabbitConfig,
    trust: "besides the system's; needs an `amqps://` address",
    verify: "a server that verifies peers (`ssl_options.verify = verify_peer`); needs an `amqps://` address"
);

impl fmt::Debug for RabbitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitConfig")
            .field("url", &redact(&self.url))
            .field("tls", &self.tls)
            .field("exchange", &self.exchange)
            .field("delivery_limit", &self.delivery_limit)
            .field("group_expiry", &self.group_expiry)
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let shown = format!(
            "{:?}",
            RabbitConfig::new("amqp://app:s3cret@mq.internal:5672/%2f")
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("amqp://app:***@mq.internal:5672/%2f"),
            "{shown}"
        );
    }
}
