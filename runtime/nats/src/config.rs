//! How to reach a NATS server and what to ask of JetStream, from code or the environment.

use std::fmt;
use std::time::Duration;

use tidings_core::DEFAULT_MAX_MESSAGE_SIZE;
use tidings_core::adapter::{TlsFiles, address_from_env, redact};

/// The address used when none is given: a server on this machine.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// Environment variable read by [`NatsConfig::from_env`] for the server address
/// (`nats://user:password@host:4222`, `nats://token@host:4222`, or `tls://host:4222`).
pub const URL_ENV: &str = "TIDINGS_NATS_URL";

/// Environment variable read by [`NatsConfig::from_env`]: a PEM file of root certificates
/// trusted for TLS instead of the system's, for servers whose certificate the system does not
/// trust.
pub const CA_FILE_ENV: &str = "TIDINGS_NATS_CA_FILE";

/// Environment variable read by [`NatsConfig::from_env`]: a PEM file with the client
/// certificate chain presented to a server that verifies clients; needs [`CLIENT_KEY_ENV`].
pub const CLIENT_CERT_ENV: &str = "TIDINGS_NATS_CLIENT_CERT";

/// Environment variable read by [`NatsConfig::from_env`]: the PEM private key of
/// [`CLIENT_CERT_ENV`]'s certificate.
pub const CLIENT_KEY_ENV: &str = "TIDINGS_NATS_CLIENT_KEY";

/// How messages travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NatsMode {
    /// JetStream: every topic is kept in a stream, publishes are confirmed by the server,
    /// deliveries are acknowledged and come back when they are not. The default.
    #[default]
    JetStream,
    /// Core NATS, fire and forget: the server keeps nothing, a subscriber gets what is published
    /// while it is connected, groups are queue groups, and a nacked delivery is handed again by
    /// this process only.
    Core,
}

/// Settings of a [`NatsBroker`](super::NatsBroker).
#[derive(Clone)]
pub struct NatsConfig {
    pub(super) url: String,
    pub(super) tls: TlsFiles,
    pub(super) mode: NatsMode,
    pub(super) stream_prefix: String,
    pub(super) max_age: Duration,
    pub(super) duplicate_window: Duration,
    pub(super) ack_wait: Duration,
    pub(super) max_deliver: Option<u32>,
    pub(super) group_expiry: Option<Duration>,
    pub(super) connect_timeout: Duration,
    pub(super) max_message_size: usize,
    pub(super) confirm_acks: bool,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig::new(DEFAULT_URL)
    }
}

impl NatsConfig {
    /// Settings for the server at `url`, JetStream mode, with the defaults of each setting.
    pub fn new(url: impl Into<String>) -> Self {
        NatsConfig {
            url: url.into(),
            tls: TlsFiles::default(),
            mode: NatsMode::JetStream,
            stream_prefix: String::new(),
            max_age: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: Duration::from_secs(120),
            ack_wait: Duration::from_secs(10),
            max_deliver: None,
            group_expiry: None,
            connect_timeout: Duration::from_secs(5),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            confirm_acks: false,
        }
    }

    /// Settings from the environment: the address from [`URL_ENV`] (default
    /// [`DEFAULT_URL`]), and the TLS files of [`NatsConfig::tls_from_env`].
    pub fn from_env() -> Self {
        NatsConfig::new(address_from_env(URL_ENV, DEFAULT_URL)).tls_from_env()
    }

    /// The server address as given, credentials included.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// JetStream (the default) or core NATS.
    pub fn mode(mut self, mode: NatsMode) -> Self {
        self.mode = mode;
        self
    }

    /// Prepended to the name of each stream tidings creates (default: none). Each topic gets
    /// its own stream, named after it with `-` for `.`: `events-order-created-v1`.
    pub fn stream_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.stream_prefix = prefix.into();
        self
    }

    /// How long a stream keeps messages (default 7 days).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// How long the server remembers event ids to drop a republished event (default 2 min).
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// How long the server waits for a sign from a subscriber before it delivers a message again
    /// (default 10 s). While a handler works on a delivery the adapter says so every third of
    /// this wait, so a handler may take longer; a message held by a consumer that died is
    /// delivered again after one wait.
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// How many times the server delivers a message before it gives up on it (default: no
    /// limit, the typed layer dead-letters after its retry bound). A safety net for consumers
    /// that crash on a message before they can settle it.
    pub fn max_deliver(mut self, max_deliver: Option<u32>) -> Self {
        self.max_deliver = max_deliver;
        self
    }

    /// How long a group's durable consumer, and so its place in the stream, is kept while no
    /// member runs (default: for good). Applies when the group is first created.
    pub fn group_expiry(mut self, expiry: Option<Duration>) -> Self {
        self.group_expiry = expiry;
        self
    }

    /// How long connecting may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The largest message, in the bytes tidings counts (data and attributes), that a bus over
    /// this broker publishes and receives unless told otherwise (default
    /// [`DEFAULT_MAX_MESSAGE_SIZE`], 1 MiB). The server's own `max_payload` (1 MiB unless its
    /// configuration says otherwise, headers and their framing included) applies as well: the
    /// broker reports the smaller of the two, and the server refuses a message above its own.
    pub fn max_message_size(mut self, limit: usize) -> Self {
        self.max_message_size = limit;
        self
    }

    /// Whether an ack (and the settling of a dead letter) waits for the server to confirm it
    /// (JetStream's double ack; default off). Off, an ack is sent like any message: one made
    /// while the connection is down waits in the client and goes out once it is back, and an
    /// ack the server never gets is only seen when the message comes again. On, each ack costs
    /// a round trip, and one the server does not confirm within the client's request timeout
    /// fails, which the subscription reports (`error.type = ack_failed`).
    pub fn confirm_acks(mut self, confirm: bool) -> Self {
        self.confirm_acks = confirm;
        self
    }
}

tidings_core::tls_settings!(
    NatsConfig,
    trust: "instead of the system's; any TLS file makes the connection require TLS, whatever the address's scheme",
    verify: "a server that verifies clients (`verify: true` in its `tls` block)"
);

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &redact(&self.url))
            .field("tls", &self.tls)
            .field("mode", &self.mode)
            .field("stream_prefix", &self.stream_prefix)
            .field("max_age", &self.max_age)
            .field("duplicate_window", &self.duplicate_window)
            .field("ack_wait", &self.ack_wait)
            .field("max_deliver", &self.max_deliver)
            .field("group_expiry", &self.group_expiry)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("confirm_acks", &self.confirm_acks)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let config = NatsConfig::new("nats://app:s3cret@nats.internal:4222");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("app:***@nats.internal:4222"), "{shown}");
    }
}
