//! The MQTT 5 adapter (feature `mqtt`), tested against Mosquitto.
//!
//! - **Topics**: MQTT separates topic levels with `/`, so the dots of a topic become slashes:
//!   `events.order.created.v1` is published on `events/order/created/v1`, and its dead letters
//!   on `dlq/events/order/created/v1`. The topic rule allows no `+`, `#` or `/`, so a topic can
//!   never turn into a wildcard.
//! - **Wire format**: the CloudEvents MQTT binding in binary mode (see [`binding`]): attributes
//!   as User Properties, the content type in the Content Type property.
//! - **Delivery**: QoS 1, at least once. Publishing returns once the broker sent its PUBACK.
//!   Subscribers acknowledge by hand (the PUBACK is sent only when the delivery is acked), and
//!   each subscription has a connection of its own whose Receive Maximum is the prefetch, so
//!   the broker never has more unacknowledged messages out to it than that.
//! - **Groups**: a [`SubscribeRequest`] with a group becomes a shared subscription,
//!   `$share/<group>/<topic path>`, and the broker hands each message to one member. A group
//!   name may not contain `/`, `+` or `#`. A shared subscription exists only while a member is
//!   connected, though: what is published while no member runs, or what a member held when it
//!   left, is gone. That is less than a group promises (its place is kept), so
//!   [`Capabilities::groups`] is false and the typed layer refuses `.group(..)` on MQTT.
//!
//! What MQTT does not promise, as [`Capabilities`] says:
//! - **No nack.** A message can only be acknowledged. A nack with [`Nack::Retry`] keeps the
//!   message unacknowledged in the subscription and hands it out again after the delay; it is
//!   lost if the process stops first. [`Nack::Terminate`] acknowledges it.
//! - **No redelivery to another consumer.** Sessions start clean, so a subscriber that dies
//!   or loses its connection takes its unacknowledged messages with it, and misses what is
//!   published until it has reconnected and subscribed again (which it does by itself).
//! - **No history**: a subscription receives only what is published after it exists;
//!   [`StartFrom::Oldest`] is refused.
//! - **Not durable**: nothing is kept for a subscriber that is not connected.
//! - **Order**: a subscriber receives the messages of one publishing connection in the order
//!   they were published (MQTT's ordered topics), so the order per key holds for a subscriber
//!   handling one message at a time; a message handed out again after a nack comes after later
//!   ones.
//!
//! **TLS**: an `mqtts://` address (port 8883 by default) connects over TLS (rustls with the
//! `ring` provider), trusting the system's root certificates, or those of
//! [`MqttConfig::ca_file`]; a broker that asks for a client certificate
//! (`require_certificate true`) gets [`MqttConfig::client_cert`]. [`MqttConfig::from_env`]
//! reads both from [`CA_FILE_ENV`], [`CLIENT_CERT_ENV`] and [`CLIENT_KEY_ENV`].
//!
//! [`Nack::Retry`]: tidings_core::broker::Nack::Retry
//! [`Nack::Terminate`]: tidings_core::broker::Nack::Terminate
//! [`StartFrom::Oldest`]: tidings_core::StartFrom::Oldest

#![forbid(unsafe_code)]

/// The broker's own client, for what the adapter does not wrap (and for benchmarks against it).
pub use rumqttc;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rumqttc::v5::MqttOptions;
use rumqttc::{TlsConfiguration, Transport};

use tidings_core::adapter::{TlsFiles, address_from_env, redact, transport_ceiling};
use tidings_core::broker::{
    Broker, BrokerError, Capabilities, Confirmation, DeliveryStream, Message, SubscribeRequest,
};
use tidings_core::topic::Topic;
use tidings_core::{DEFAULT_MAX_MESSAGE_SIZE, EventId};

pub mod binding;
mod publisher;
mod subscription;

use publisher::Publisher;

/// The environment variable read by [`MqttConfig::from_env`] for the address (`mqtt://...`,
/// or `mqtts://...` for TLS).
pub const URL_ENV: &str = "TIDINGS_MQTT_URL";
/// Environment variable read by [`MqttConfig::from_env`]: a PEM file of root certificates
/// trusted for TLS, for brokers whose certificate the system does not trust.
pub const CA_FILE_ENV: &str = "TIDINGS_MQTT_CA_FILE";
/// Environment variable read by [`MqttConfig::from_env`]: a PEM file of the client certificate
/// presented to a broker that asks for one (with [`CLIENT_KEY_ENV`]).
pub const CLIENT_CERT_ENV: &str = "TIDINGS_MQTT_CLIENT_CERT";
/// Environment variable read by [`MqttConfig::from_env`]: the PEM file of the private key of
/// [`CLIENT_CERT_ENV`]'s certificate.
pub const CLIENT_KEY_ENV: &str = "TIDINGS_MQTT_CLIENT_KEY";
/// The address used when none is given.
pub const DEFAULT_URL: &str = "mqtt://127.0.0.1:1883";

const NAME: &str = "mqtt";
/// The largest packet MQTT allows.
const MAX_PACKET: u32 = 268_435_455;

/// How to reach the MQTT broker.
#[derive(Clone)]
pub struct MqttConfig {
    url: String,
    tls: TlsFiles,
    keep_alive: Duration,
    timeout: Duration,
    max_message_size: usize,
}

tidings_core::tls_settings!(
    MqttConfig,
    trust: "instead of the system's; needs an `mqtts://` address",
    verify: "a broker that asks for a client certificate; needs an `mqtts://` address"
);

impl std::fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConfig")
            .field("url", &redact(&self.url))
            .field("tls", &self.tls)
            .field("keep_alive", &self.keep_alive)
            .field("timeout", &self.timeout)
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

impl MqttConfig {
    /// A configuration for the broker at `url`: `mqtt://[user[:password]@]host[:port]` (or
    /// `tcp://`), port 1883 by default, or `mqtts://` (or `ssl://`) for TLS, port 8883 by
    /// default.
    pub fn new(url: impl Into<String>) -> Self {
        MqttConfig {
            url: url.into(),
            tls: TlsFiles::default(),
            keep_alive: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }

    /// Settings from the environment: the address from [`URL_ENV`] (default
    /// [`DEFAULT_URL`]), and the TLS files of [`MqttConfig::tls_from_env`].
    pub fn from_env() -> Self {
        MqttConfig::new(address_from_env(URL_ENV, DEFAULT_URL)).tls_from_env()
    }

    /// How often an idle connection is checked (at least 5 seconds, as the client requires).
    pub fn keep_alive(mut self, interval: Duration) -> Self {
        self.keep_alive = interval.max(Duration::from_secs(5));
        self
    }

    /// How long to wait for a connection (whole seconds, at least one).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest message, in the bytes tidings counts (data and attributes), that a bus over
    /// this broker publishes and receives unless told otherwise (default
    /// [`DEFAULT_MAX_MESSAGE_SIZE`], 1 MiB). Each connection tells the broker the largest
    /// packet it takes ([`MqttConfig::max_packet_size`], MQTT 5's Maximum Packet Size): the
    /// broker drops a larger message for this client rather than sending it, and the client
    /// refuses one all the same.
    pub fn max_message_size(mut self, limit: usize) -> Self {
        self.max_message_size = limit;
        self
    }

    /// The largest packet a connection takes: twice the message size limit and 64 KiB for the
    /// packet's framing and a dead letter's attributes ([`transport_ceiling`]), at most MQTT's
    /// own limit of 256 MiB. A message between the limit and this size reaches the
    /// subscription, which dead-letters it with the reason.
    pub fn max_packet_size(&self) -> u32 {
        u32::try_from(transport_ceiling(self.max_message_size))
            .map_or(MAX_PACKET, |size| size.min(MAX_PACKET))
    }

    /// The address, with any password replaced by `***`.
    pub fn address(&self) -> String {
        redact(&self.url)
    }

    /// Connects; see [`MqttBroker::connect`].
    pub async fn connect(self) -> Result<MqttBroker, BrokerError> {
        MqttBroker::connect(self).await
    }

    /// The address, parsed.
    fn target(&self) -> Result<Target, BrokerError> {
        Target::parse(&self.url).map_err(|reason| self.refused(reason))
    }

    /// How every connection to the broker travels: plain TCP, or TLS with the configured
    /// files, loaded once.
    fn transport(&self) -> Result<Transport, BrokerError> {
        if !self.target()?.tls {
            if !self.tls.is_empty() {
                return Err(self.refused(
                    "TLS files are set but the address is not a TLS one; write it as mqtts://"
                        .to_owned(),
                ));
            }
            return Ok(Transport::Tcp);
        }
        let config = self
            .tls
            .client_config()
            .map_err(|e| self.refused(e.to_string()))?;
        Ok(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(config),
        )))
    }

    fn refused(&self, reason: String) -> BrokerError {
        BrokerError::Unreachable {
            broker: NAME,
            address: self.address(),
            reason,
        }
    }

    /// Client options for a new clean-session connection named `client_id`, travelling by
    /// `transport` (from [`MqttConfig::transport`]).
    fn options(
        &self,
        client_id: String,
        transport: &Transport,
    ) -> Result<MqttOptions, BrokerError> {
        let target = self.target()?;
        let mut options = MqttOptions::new(client_id, target.host, target.port);
        options
            .set_transport(transport.clone())
            .set_clean_start(true)
            .set_keep_alive(self.keep_alive)
            .set_connection_timeout(self.timeout.as_secs().max(1))
            .set_max_packet_size(Some(self.max_packet_size()));
        if let Some((user, password)) = target.credentials {
            options.set_credentials(user, password);
        }
        Ok(options)
    }
}

impl Default for MqttConfig {
    /// [`MqttConfig::from_env`].
    fn default() -> Self {
        MqttConfig::from_env()
    }
}

/// Host, port, credentials and TLS of an `mqtt://` or `mqtts://` address.
#[derive(Debug, PartialEq)]
struct Target {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    tls: bool,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let (scheme, rest) = url.split_once("://").unwrap_or(("mqtt", url));
        let tls = match scheme {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(format!(
                    "unknown scheme `{other}`; use mqtt://host:port, or mqtts://host:port for TLS"
                ));
            }
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((user_info, host_port)) => {
                let (user, password) = user_info.split_once(':').unwrap_or((user_info, ""));
                (Some((user.to_owned(), password.to_owned())), host_port)
            }
            None => (None, authority),
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                let port = port
                    .parse()
                    .map_err(|_| format!("`{port}` is not a port number"))?;
                (host, port)
            }
            _ => (host_port, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("the address names no host".to_owned());
        }
        Ok(Target {
            host: host.to_owned(),
            port,
            credentials,
            tls,
        })
    }
}

/// A fresh client id: MQTT 5 brokers must accept 23 characters, and this is 23.
fn client_id(role: &str) -> String {
    let id: String = EventId::new().chars().filter(|c| *c != '-').collect();
    format!("td{role}{}", &id[id.len() - 18..])
}

/// The MQTT topic of a tidings topic: its dots become level separators.
pub fn topic_path(topic: &Topic) -> String {
    topic.as_str().replace('.', "/")
}

/// A [`Broker`] over MQTT 5. Cheap to clone; clones share one publishing connection.
#[derive(Clone)]
pub struct MqttBroker {
    inner: Arc<Inner>,
}

struct Inner {
    config: MqttConfig,
    transport: Transport,
    publisher: Publisher,
}

impl std::fmt::Debug for MqttBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttBroker")
            .field("address", &self.inner.config.address())
            .finish_non_exhaustive()
    }
}

impl MqttBroker {
    /// Connects the publishing connection; fails when the broker cannot be reached. Each
    /// subscription opens a connection of its own.
    pub async fn connect(config: MqttConfig) -> Result<Self, BrokerError> {
        let transport = config.transport()?;
        let publisher = Publisher::connect(&config, &transport).await?;
        Ok(MqttBroker {
            inner: Arc::new(Inner {
                config,
                transport,
                publisher,
            }),
        })
    }

    /// Connects to the broker named by `TIDINGS_MQTT_URL`, or `mqtt://127.0.0.1:1883`.
    pub async fn from_env() -> Result<Self, BrokerError> {
        MqttBroker::connect(MqttConfig::from_env()).await
    }

    /// The configuration this broker was connected with.
    pub fn config(&self) -> &MqttConfig {
        &self.inner.config
    }
}

#[async_trait]
impl Broker for MqttBroker {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            durable: false,
            // Shared subscriptions keep no place while no member runs; see the module docs.
            groups: false,
            nack_delay: false,
            redelivery: false,
            history: false,
            ordered_per_key: true,
            publish_dedup: false,
            no_responders: false,
            request_reply: false,
        }
    }

    fn max_message_size(&self) -> usize {
        self.inner.config.max_message_size
    }

    async fn publish(&self, topic: &Topic, message: Message) -> Result<Confirmation, BrokerError> {
        let properties = binding::properties(&message);
        self.inner
            .publisher
            .publish(&topic_path(topic), message.data, properties)
            .await
            .map(|()| Confirmation::held())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        subscription::start(self.inner.clone(), request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let config = MqttConfig::new("mqtt://app:s3cret@mqtt.internal:1883");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("app:***@mqtt.internal:1883"), "{shown}");
    }

    #[test]
    fn addresses_parse_with_credentials_and_defaults() {
        assert_eq!(
            Target::parse("mqtt://user:secret@broker.local:1884"),
            Ok(Target {
                host: "broker.local".into(),
                port: 1884,
                credentials: Some(("user".into(), "secret".into())),
                tls: false,
            })
        );
        assert_eq!(
            Target::parse("tcp://[::1]"),
            Ok(Target {
                host: "::1".into(),
                port: 1883,
                credentials: None,
                tls: false,
            })
        );
        assert_eq!(
            Target::parse("127.0.0.1:1883"),
            Ok(Target {
                host: "127.0.0.1".into(),
                port: 1883,
                credentials: None,
                tls: false,
            })
        );
        assert_eq!(
            Target::parse("mqtts://broker.local"),
            Ok(Target {
                host: "broker.local".into(),
                port: 8883,
                credentials: None,
                tls: true,
            })
        );
        assert!(
            Target::parse("ws://broker.local")
                .unwrap_err()
                .contains("mqtts://")
        );
        assert!(
            Target::parse("mqtt://host:port")
                .unwrap_err()
                .contains("port")
        );
    }

    #[test]
    fn topics_become_mqtt_levels_and_client_ids_fit_23_characters() {
        let topic = Topic::new("events.order.created.v1").unwrap();
        assert_eq!(topic_path(&topic), "events/order/created/v1");
        assert_eq!(
            topic_path(&topic.dead_letter().unwrap()),
            "dlq/events/order/created/v1"
        );
        let (a, b) = (client_id("sub"), client_id("sub"));
        assert_eq!(a.len(), 23);
        assert_ne!(a, b);
    }

    #[test]
    fn the_packet_size_follows_the_message_size_limit() {
        let config = MqttConfig::new("mqtt://127.0.0.1");
        assert_eq!(config.max_packet_size(), 2 * 1_048_576 + 65_536);
        let options = config
            .options("x".into(), &config.transport().unwrap())
            .unwrap();
        assert_eq!(options.max_packet_size(), Some(2 * 1_048_576 + 65_536));
        let small = MqttConfig::new("mqtt://127.0.0.1").max_message_size(1000);
        assert_eq!(small.max_packet_size(), 2000 + 65_536);
        let huge = MqttConfig::new("mqtt://127.0.0.1").max_message_size(usize::MAX);
        assert_eq!(huge.max_packet_size(), MAX_PACKET);
    }

    #[test]
    fn errors_redact_the_password() {
        let config = MqttConfig::new("mqtt://user:secret@broker.local:port");
        let error = config.transport().err().expect("refused").to_string();
        assert!(error.contains("user:***@broker.local"), "{error}");
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn tls_files_need_a_tls_address() {
        let config = MqttConfig::new("mqtt://user:secret@broker.local").ca_file("ca.pem");
        let error = config.transport().err().expect("refused").to_string();
        assert!(error.contains("mqtts://"), "{error}");
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn an_unreadable_ca_file_is_named() {
        let config = MqttConfig::new("mqtts://broker.local").ca_file("/nonexistent/ca.pem");
        let error = config.transport().err().expect("refused").to_string();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
