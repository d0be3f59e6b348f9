//! The Redis Streams adapter (feature `redis`).
//!
//! - **Topics**: one stream per topic, the stream's key being the topic name
//!   (`events.order.created.v1`); dead letters go to the stream `dlq.<topic>`. Publishing is an
//!   `XADD` trimmed with `MAXLEN ~` ([`RedisConfig::max_len`], one million entries by default),
//!   confirmed once Redis answers with the entry id.
//! - **Wire format**: CloudEvents binary mode in the entry's fields, `ce_<attribute>` for each
//!   attribute, `content-type` and `data` (see [`fields`]).
//! - **Groups**: a consumer group per tidings group (`XGROUP CREATE ... MKSTREAM`, from `$` or
//!   `0` by [`StartFrom`](tidings_core::StartFrom); an existing group keeps its place), read with
//!   `XREADGROUP` and settled with `XACK`. Each subscription is a consumer of its own.
//! - **Fan-out**: a plain subscriber reads with `XREAD` from an id it keeps (the last entry when
//!   it subscribed, or the stream's start), so it leaves nothing behind in Redis.
//! - **Redelivery**: an entry read in a group stays pending until acked. Entries pending longer
//!   than [`RedisConfig::claim_idle`] (a consumer died, or dropped them) are claimed by a live
//!   member: `XPENDING ... IDLE` lists them with their delivery count, which gives the attempt,
//!   and `XCLAIM` takes them over (`XAUTOCLAIM` would not say how often they were delivered).
//!   A member keeps the entries its handlers still work on from looking idle (`XCLAIM` to
//!   itself with `JUSTID`, which counts no delivery, at least twice per claim idle time), so a
//!   handler may run longer than the claim idle time without another member taking its entry
//!   over.
//! - **Nack with delay**: the entry is not acked; the subscription claims it back for itself
//!   once the delay has passed, with `XCLAIM` and a minimum idle time equal to the delay, so an
//!   entry another member took over meanwhile is not delivered twice. If the process dies
//!   first, the entry is still pending and is reclaimed like any abandoned one. A fan-out
//!   subscriber, which has no pending list, hands the message out again itself after the delay.
//! - **Dead letter**: `XADD` to `dlq.<topic>` with the entry's fields and the reason, then
//!   `XACK`, in one `MULTI`/`EXEC` transaction. A tool reads a stream outside any group with
//!   `XRANGE` and removes an entry with `XDEL` ([`Broker::browse`]).
//! - **Order**: a stream keeps publish order. A plain subscriber, or a group with one member,
//!   handling one entry at a time gets the entries of a key in that order; members of a group
//!   share entries without regard to their key, and a redelivered entry comes after later ones.
//! - **Durability**: Redis keeps streams across a restart only with its append-only file on;
//!   the adapter asks the server (`CONFIG GET appendonly`) and says so in
//!   [`Capabilities::durable`].
//!
//! Connections reconnect by themselves ([`redis::aio::ConnectionManager`]); a subscription
//! retries its reads with a backoff while Redis is away, and recreates its group if Redis came
//! back without it.
//!
//! **TLS**: a `rediss://` address connects over TLS (rustls with the `ring` provider), trusting
//! the system's root certificates, or those of [`RedisConfig::ca_file`]; a server that asks
//! for a client certificate gets [`RedisConfig::client_cert`]. [`RedisConfig::from_env`] reads
//! both from [`CA_FILE_ENV`], [`CLIENT_CERT_ENV`] and [`CLIENT_KEY_ENV`].

#![forbid(unsafe_code)]

pub use dedup::{DEFAULT_DEDUP_TTL, RedisDedup};

/// The broker's own client, for what the adapter does not wrap (and for benchmarks against it).
pub use redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    Client, ClientTlsConfig, ConnectionAddr, IntoConnectionInfo, RedisError, TlsCertificates,
};

use tidings_core::DEFAULT_MAX_MESSAGE_SIZE;
use tidings_core::adapter::{TlsFiles, address_from_env, ensure_tls_provider, redact};
use tidings_core::broker::{
    Broker, BrokerError, Capabilities, Confirmation, DeliveryStream, Message, Position,
    SubscribeRequest,
};
use tidings_core::topic::Topic;

mod browse;
mod dedup;
mod entries;
pub mod fields;
mod subscription;

/// The environment variable read by [`RedisConfig::from_env`] for the address
/// (`redis://...`, or `rediss://...` for TLS).
pub const URL_ENV: &str = "TIDINGS_REDIS_URL";
/// Environment variable read by [`RedisConfig::from_env`]: a PEM file of root certificates
/// trusted for TLS, for servers whose certificate the system does not trust.
pub const CA_FILE_ENV: &str = "TIDINGS_REDIS_CA_FILE";
/// Environment variable read by [`RedisConfig::from_env`]: a PEM file of the client
/// certificate presented to a server that asks for one (with [`CLIENT_KEY_ENV`]).
pub const CLIENT_CERT_ENV: &str = "TIDINGS_REDIS_CLIENT_CERT";
/// Environment variable read by [`RedisConfig::from_env`]: the PEM file of the private key of
/// [`CLIENT_CERT_ENV`]'s certificate.
pub const CLIENT_KEY_ENV: &str = "TIDINGS_REDIS_CLIENT_KEY";
/// The address used when none is given.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

const NAME: &str = "redis";

/// How to reach Redis and how streams are kept.
#[derive(Clone)]
pub struct RedisConfig {
    url: String,
    tls: TlsFiles,
    max_len: Option<usize>,
    claim_idle: Duration,
    timeout: Duration,
    max_message_size: usize,
}

tidings_core::tls_settings!(
    RedisConfig,
    trust: "instead of the system's; needs a `rediss://` address",
    verify: "a server that asks for a client certificate (`tls-auth-clients yes`); needs a `rediss://` address"
);

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact(&self.url))
            .field("tls", &self.tls)
            .field("max_len", &self.max_len)
            .field("claim_idle", &self.claim_idle)
            .field("timeout", &self.timeout)
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

impl RedisConfig {
    /// A configuration for the server at `url` (`redis://[user:password@]host:port[/db]`, or
    /// `rediss://` for TLS).
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            tls: TlsFiles::default(),
            max_len: Some(1_000_000),
            claim_idle: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }

    /// Settings from the environment: the address from [`URL_ENV`] (default
    /// [`DEFAULT_URL`]), and the TLS files of [`RedisConfig::tls_from_env`].
    pub fn from_env() -> Self {
        RedisConfig::new(address_from_env(URL_ENV, DEFAULT_URL)).tls_from_env()
    }

    /// Trims each stream to about this many entries on publish (`XADD MAXLEN ~`), or never
    /// with `None`. Entries trimmed away are gone, acked or not.
    pub fn max_len(mut self, entries: Option<usize>) -> Self {
        self.max_len = entries;
        self
    }

    /// How long an entry may stay pending with a group member before another member (or the
    /// same subscription, if it dropped it) takes it over. It bounds how late a dead
    /// consumer's entries are redelivered; keep it above the longest handler run and retry
    /// delay, or a slow entry is delivered twice.
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.claim_idle = idle.max(Duration::from_millis(1));
        self
    }

    /// How long to wait for a connection or a command's answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest message, in the bytes tidings counts (data and attributes), that a bus over
    /// this broker publishes and receives unless told otherwise (default
    /// [`DEFAULT_MAX_MESSAGE_SIZE`], 1 MiB). The client, redis-rs, has no limit of its own on
    /// what it reads; a read takes at most the subscription's prefetch of entries (`COUNT`),
    /// and the server's `proto-max-bulk-len` bounds each field.
    pub fn max_message_size(mut self, limit: usize) -> Self {
        self.max_message_size = limit;
        self
    }

    /// The address, with any password replaced by `***`.
    pub fn address(&self) -> String {
        redact(&self.url)
    }

    /// The address as given, password included: for the server's own client.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connects; see [`RedisBroker::connect`].
    pub async fn connect(self) -> Result<RedisBroker, BrokerError> {
        RedisBroker::connect(self).await
    }
}

impl Default for RedisConfig {
    /// [`RedisConfig::from_env`].
    fn default() -> Self {
        RedisConfig::from_env()
    }
}

/// A [`Broker`] over Redis Streams. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct RedisBroker {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    commands: ConnectionManager,
    config: RedisConfig,
    durable: bool,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("address", &self.inner.config.address())
            .field("durable", &self.inner.durable)
            .finish_non_exhaustive()
    }
}

impl RedisBroker {
    /// Connects to Redis, and asks it whether it persists writes (for
    /// [`Capabilities::durable`]). Fails when the server cannot be reached, or, over TLS, when
    /// its certificate is not trusted or it refuses the client's.
    pub async fn connect(config: RedisConfig) -> Result<Self, BrokerError> {
        let client = client(&config)?;
        let mut commands = connection(&client, &config, config.timeout)
            .await
            .map_err(|e| unreachable(&config, &e))?;
        let appendonly: Result<Vec<String>, RedisError> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .query_async(&mut commands)
            .await;
        let durable = match appendonly {
            Ok(appendonly) => appendonly.get(1).is_some_and(|v| v == "yes"),
            // The first command is where a server that turned the connection down (a TLS
            // server refusing the client's certificate) shows it.
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                return Err(classify(&config, &e, || {
                    "read its configuration".to_owned()
                }));
            }
            // Managed servers may refuse CONFIG; then nothing is promised.
            Err(e) => {
                tracing::debug!(
                    messaging.system = NAME,
                    error = %e,
                    "the server does not tell whether it persists (CONFIG GET appendonly); \
                     durability is not promised",
                );
                false
            }
        };
        Ok(RedisBroker {
            inner: Arc::new(Inner {
                client,
                commands,
                config,
                durable,
            }),
        })
    }

    /// Connects to the server named by `TIDINGS_REDIS_URL`, or `redis://127.0.0.1:6379`.
    pub async fn from_env() -> Result<Self, BrokerError> {
        RedisBroker::connect(RedisConfig::from_env()).await
    }

    /// The configuration this broker was connected with.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            durable: self.inner.durable,
            groups: true,
            nack_delay: true,
            redelivery: true,
            history: true,
            ordered_per_key: true,
            publish_dedup: false,
            no_responders: false,
            request_reply: true,
        }
    }

    fn max_message_size(&self) -> usize {
        self.inner.config.max_message_size
    }

    async fn publish(&self, topic: &Topic, message: Message) -> Result<Confirmation, BrokerError> {
        let fields = fields::encode(&message);
        let mut commands = self.inner.commands.clone();
        let entry: String = xadd(topic.as_str(), self.inner.config.max_len, &fields)
            .query_async(&mut commands)
            .await
            .map_err(|e| self.inner.error(&e, || format!("publish to {topic}")))?;
        Ok(Confirmation::at(Position::Entry(entry)))
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        subscription::start(self.inner.clone(), request).await
    }

    /// `DEL` of the topic's stream, with its groups and entries.
    async fn remove_topic(&self, topic: &Topic) -> Result<(), BrokerError> {
        let mut commands = self.inner.commands.clone();
        redis::cmd("DEL")
            .arg(topic.as_str())
            .query_async::<i64>(&mut commands)
            .await
            .map(drop)
            .map_err(|e| self.inner.error(&e, || format!("remove {topic}")))
    }

    /// `XRANGE` up to the last entry when the read began; an ack is an `XDEL`.
    async fn browse(&self, topic: &Topic) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        browse::browse(self.inner.clone(), topic).await
    }
}

impl Inner {
    /// A broker error for a failed command.
    fn error(&self, e: &RedisError, operation: impl FnOnce() -> String) -> BrokerError {
        classify(&self.config, e, operation)
    }
}

/// Maps a client error to the seam's: transport failures name the address, server answers
/// name the operation.
fn classify(
    config: &RedisConfig,
    e: &RedisError,
    operation: impl FnOnce() -> String,
) -> BrokerError {
    if e.is_timeout() {
        BrokerError::Timeout {
            broker: NAME,
            timeout: config.timeout,
        }
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        unreachable(config, e)
    } else {
        BrokerError::Rejected {
            broker: NAME,
            operation: operation(),
            reason: e.to_string(),
        }
    }
}

fn unreachable(config: &RedisConfig, e: &RedisError) -> BrokerError {
    BrokerError::Unreachable {
        broker: NAME,
        address: config.address(),
        reason: e.to_string(),
    }
}

/// The client for `config`'s address, with its TLS files for a `rediss://` one.
fn client(config: &RedisConfig) -> Result<Client, BrokerError> {
    let refused = |reason: String| BrokerError::Unreachable {
        broker: NAME,
        address: config.address(),
        reason,
    };
    let info = config
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| refused(format!("not a Redis address: {e}")))?;
    if !matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
        if !config.tls.is_empty() {
            return Err(refused(
                "TLS files are set but the address is not a TLS one; write it as rediss://"
                    .to_owned(),
            ));
        }
        return Client::open(info).map_err(|e| refused(e.to_string()));
    }
    // The redis crate builds its rustls configuration from the process-wide provider.
    ensure_tls_provider();
    let pem = config.tls.pem().map_err(|e| refused(e.to_string()))?;
    let certificates = TlsCertificates {
        client_tls: pem.client.map(|(client_cert, client_key)| ClientTlsConfig {
            client_cert,
            client_key,
        }),
        root_cert: pem.ca,
    };
    Client::build_with_tls(info, certificates).map_err(|e| refused(e.to_string()))
}

/// A connection that reconnects by itself; `response` bounds how long a command may take.
async fn connection(
    client: &Client,
    config: &RedisConfig,
    response: Duration,
) -> Result<ConnectionManager, RedisError> {
    let settings = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.timeout))
        .set_response_timeout(Some(response))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_with_config(client.clone(), settings).await
}

/// `XADD key [MAXLEN ~ n] * field value...`
fn xadd(key: &str, max_len: Option<usize>, fields: &fields::Fields) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key);
    if let Some(n) = max_len {
        cmd.arg("MAXLEN").arg("~").arg(n);
    }
    cmd.arg("*");
    for (field, value) in fields {
        cmd.arg(field.as_str()).arg(&value[..]);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let config = RedisConfig::new("redis://app:s3cret@redis.internal:6379/2");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("app:***@redis.internal:6379/2"), "{shown}");
    }

    #[test]
    fn tls_files_need_a_tls_address() {
        let config = RedisConfig::new("redis://:s3cret@redis.internal:6379").ca_file("ca.pem");
        let shown = client(&config).expect_err("refused").to_string();
        assert!(shown.contains("rediss://"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn an_unreadable_ca_file_is_named() {
        let config = RedisConfig::new("rediss://redis.internal").ca_file("/nonexistent/ca.pem");
        let shown = client(&config).expect_err("refused").to_string();
        assert!(shown.contains("/nonexistent/ca.pem"), "{shown}");
    }
}
