//! The Kafka adapter (feature `kafka`), over rdkafka (librdkafka).
//!
//! - **Topics**: one Kafka topic per tidings topic, of the same name; dead letters go to
//!   `dlq.<topic>`. A topic that does not exist is created through the admin API, with
//!   [`KafkaConfig::partitions`] partitions and [`KafkaConfig::replication`] replicas, the first
//!   time it is published to or subscribed to.
//! - **Wire format**: the CloudEvents Kafka binding in binary mode (see [`binding`]): `ce_`
//!   headers, `content-type`, and the `partitionkey` extension as the record key, so the events
//!   of one key go to one partition and keep their order.
//! - **Publishing** waits for the delivery report (`acks=all`, idempotent producer), at most
//!   [`KafkaConfig::timeout`].
//! - **Groups**: a tidings group is the Kafka consumer group of the same name. Offsets are
//!   committed only for settled deliveries and never past one still open, per partition (see
//!   [`offsets`]), every [`KafkaConfig::commit_interval`] and at once when partitions are
//!   revoked or the subscription closes; so a member that dies is replaced from the last
//!   commit, and what it held is delivered again.
//! - **Fan-out**: a plain subscriber is a consumer group of its own, named after the topic with
//!   a unique suffix, which commits nothing (nobody resumes it).
//! - **Start position**: where a new group starts is fixed when it subscribes, from the
//!   partitions' watermarks at that moment (the end for [`StartFrom::New`](tidings_core::StartFrom),
//!   the start for `Oldest`), and committed on its first assignment, so later members and
//!   restarts share it. A subscription returns once it has its first assignment.
//! - **Nack**: Kafka has no per-record nack. A nacked record is handed out again by the
//!   subscription itself after the delay, while its offset stays uncommitted: the partition
//!   keeps its place, the records behind it flow on, and if the process dies first the group
//!   delivers it again from the committed offset.
//! - **Attempts**: Kafka does not count deliveries, so each group also keeps, in a second
//!   consumer group `<group>.tidings-attempts`, how far records were handed out and how often
//!   the one at the committed offset was. A member taking over a partition counts a record
//!   handed out before as a later attempt, so a record that makes consumers crash reaches the
//!   retry bound like any failing one.
//! - **Dead letter**: the record, headers and key as received plus the `ce_deadletter*`
//!   headers, published to `dlq.<topic>` and confirmed before the offset is settled. A tool
//!   reads a topic outside any subscription, and removes what it read, through the offsets of
//!   a consumer group of the topic's own ([`Broker::browse`], see the `browse` module).
//! - **Rebalances**: partitions are revoked and assigned whole (the eager protocol). A
//!   delivery of a partition that was revoked meanwhile is settled locally but not committed:
//!   whoever holds the partition now delivers it again (at least once).
//!
//! Each subscription runs its consumer on a thread of its own, which keeps polling (so the
//! group's heartbeats and rebalances go on) and pauses fetching while deliveries pile up
//! unread.

#![forbid(unsafe_code)]

/// The broker's own client, for what the adapter does not wrap (and for benchmarks against it).
pub use rdkafka;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use tidings_core::DEFAULT_MAX_MESSAGE_SIZE;
use tidings_core::adapter::lock;
use tidings_core::adapter::{address_from_env, redact, transport_ceiling};
use tidings_core::broker::{
    Broker, BrokerError, Capabilities, Confirmation, DeliveryStream, Message, Position,
    SubscribeRequest,
};
use tidings_core::topic::Topic;

pub mod binding;
mod browse;
mod offsets;
mod subscription;

/// The environment variable read by [`KafkaConfig::from_env`]: a comma-separated list of
/// `host:port` bootstrap servers.
pub const BROKERS_ENV: &str = "TIDINGS_KAFKA_BROKERS";
/// The bootstrap servers used when none are given.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

const NAME: &str = "kafka";

/// How to reach Kafka, and how topics and consumers are set up.
#[derive(Clone)]
pub struct KafkaConfig {
    brokers: String,
    partitions: i32,
    replication: i32,
    timeout: Duration,
    session_timeout: Duration,
    commit_interval: Duration,
    linger: Duration,
    max_message_size: usize,
    settings: Vec<(String, String)>,
}

impl std::fmt::Debug for KafkaConfig {
    /// Shows the addresses redacted, and the names of extra settings without their values
    /// (they may hold credentials).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.address())
            .field("partitions", &self.partitions)
            .field("replication", &self.replication)
            .field("timeout", &self.timeout)
            .field("session_timeout", &self.session_timeout)
            .field("commit_interval", &self.commit_interval)
            .field("linger", &self.linger)
            .field("max_message_size", &self.max_message_size)
            .field(
                "settings",
                &self.settings.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl KafkaConfig {
    /// A configuration for the bootstrap servers `brokers` (`host:port[,host:port...]`).
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            partitions: 4,
            replication: 1,
            timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(10),
            commit_interval: Duration::from_millis(100),
            linger: Duration::from_millis(1),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            settings: Vec::new(),
        }
    }

    /// The servers from `TIDINGS_KAFKA_BROKERS`, or `127.0.0.1:9092`.
    pub fn from_env() -> Self {
        KafkaConfig::new(address_from_env(BROKERS_ENV, DEFAULT_BROKERS))
    }

    /// How many partitions a topic created by the adapter gets (4 by default). More
    /// partitions let more members of a group work at once; order holds per key either way.
    pub fn partitions(mut self, partitions: u16) -> Self {
        self.partitions = i32::from(partitions.max(1));
        self
    }

    /// How many replicas a topic created by the adapter gets (1 by default; raise it on a
    /// cluster of several brokers).
    pub fn replication(mut self, replicas: u16) -> Self {
        self.replication = i32::from(replicas.max(1));
        self
    }

    /// How long to wait for a delivery report, an admin operation or the first assignment
    /// of a subscription (10 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a group member may go silent before the group gives its partitions to
    /// others (10 s by default): it bounds how late a dead consumer's records are
    /// redelivered.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How often a group subscription commits what was settled (100 ms by default). A
    /// consumer that dies without a word redelivers at most this much more.
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How long the producer waits to batch records before sending (`linger.ms`, 1 ms by
    /// default). Longer batches more under load, at the cost of publish latency.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// The largest message, in the bytes tidings counts (data and attributes), that a bus over
    /// this broker publishes and receives unless told otherwise (default
    /// [`DEFAULT_MAX_MESSAGE_SIZE`], 1 MiB). The clients are set from it ([`transport_ceiling`]:
    /// twice the limit and 64 KiB): the producer refuses a larger record (`message.max.bytes`),
    /// and a consumer asks for no more per partition (`max.partition.fetch.bytes`), though
    /// librdkafka still takes a larger record rather than stop. The topic's `max.message.bytes`
    /// on the server (1 MB by default) bounds what is kept.
    pub fn max_message_size(mut self, limit: usize) -> Self {
        self.max_message_size = limit;
        self
    }

    /// Sets a librdkafka property on every client (`security.protocol`, `sasl.username`...).
    /// It overrides what the adapter sets, so use it with care.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }

    /// The bootstrap servers, with any password replaced by `***`.
    pub fn address(&self) -> String {
        self.brokers
            .split(',')
            .map(|server| redact(server.trim()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Connects; see [`KafkaBroker::connect`].
    pub async fn connect(self) -> Result<KafkaBroker, BrokerError> {
        KafkaBroker::connect(self).await
    }

    /// The client settings shared by producers, consumers and the admin client.
    fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("socket.keepalive.enable", "true")
            .set("client.id", "tidings")
            .set("message.max.bytes", self.record_limit());
        for (key, value) in &self.settings {
            config.set(key, value);
        }
        config
    }

    /// The largest record a client sends or asks for, from the size limit, within the range
    /// librdkafka takes.
    fn record_limit(&self) -> String {
        transport_ceiling(self.max_message_size)
            .clamp(1_000, 1_000_000_000)
            .to_string()
    }
}

impl Default for KafkaConfig {
    /// [`KafkaConfig::from_env`].
    fn default() -> Self {
        KafkaConfig::from_env()
    }
}

/// A [`Broker`] over Kafka. Cheap to clone; clones share one producer.
#[derive(Clone)]
pub struct KafkaBroker {
    inner: Arc<Inner>,
}

struct Inner {
    config: KafkaConfig,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// Topics known to exist, so each is created at most once per broker value.
    topics: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for KafkaBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBroker")
            .field("address", &self.inner.config.address())
            .finish_non_exhaustive()
    }
}

impl KafkaBroker {
    /// Makes the producer and admin client and checks that the cluster answers. Fails when
    /// no bootstrap server can be reached within [`KafkaConfig::timeout`].
    pub async fn connect(config: KafkaConfig) -> Result<Self, BrokerError> {
        let mut producer = config.client();
        producer
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", millis(config.linger))
            .set(
                "message.timeout.ms",
                millis(config.timeout.max(Duration::from_millis(1))),
            );
        for (key, value) in &config.settings {
            producer.set(key, value);
        }
        let producer: FutureProducer = producer.create().map_err(|e| unreachable(&config, &e))?;
        let admin = config
            .client()
            .create()
            .map_err(|e| unreachable(&config, &e))?;
        let inner = Arc::new(Inner {
            config,
            producer,
            admin,
            topics: Mutex::new(HashSet::new()),
        });
        let probe = inner.clone();
        tokio::task::spawn_blocking(move || {
            probe
                .producer
                .client()
                .fetch_metadata(None, probe.config.timeout)
                .map(drop)
        })
        .await
        .map_err(|e| BrokerError::Rejected {
            broker: NAME,
            operation: "connect".into(),
            reason: e.to_string(),
        })?
        .map_err(|e| unreachable(&inner.config, &e))?;
        Ok(KafkaBroker { inner })
    }

    /// Connects to the servers named by `TIDINGS_KAFKA_BROKERS`, or `127.0.0.1:9092`.
    pub async fn from_env() -> Result<Self, BrokerError> {
        KafkaBroker::connect(KafkaConfig::from_env()).await
    }

    /// The configuration this broker was connected with.
    pub fn config(&self) -> &KafkaConfig {
        &self.inner.config
    }
}

#[async_trait]
impl Broker for KafkaBroker {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // Kafka keeps its log on disk; a server configured to keep it in memory does not.
            durable: true,
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
        self.inner.ensure_topic(topic).await?;
        let headers = binding::headers(&message.envelope);
        let key = message.envelope.partition_key.as_deref();
        self.inner
            .send(topic, key.map(str::as_bytes), headers, &message.data)
            .await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        self.inner.ensure_topic(&request.topic).await?;
        subscription::start(self.inner.clone(), request).await
    }

    /// Reads the topic from the offsets of its group `<topic>.tidings-removed`, skipping what
    /// that group's commits say was removed; an ack commits the record as removed. See
    /// the `browse` module.
    async fn browse(&self, topic: &Topic) -> Result<Box<dyn DeliveryStream>, BrokerError> {
        browse::browse(self.inner.clone(), topic).await
    }

    // No `remove_topic`, so a client's reply topic stays: deleting a topic on tansu while a
    // librdkafka client of the process still knows it crashes librdkafka 2.12 as it reads the
    // deleted topic's metadata (a null topic name in `rd_kafka_metadata_cache_find`).
}

impl Inner {
    /// Creates `topic` unless it is known to exist.
    async fn ensure_topic(&self, topic: &Topic) -> Result<(), BrokerError> {
        if lock(&self.topics).contains(topic.as_str()) {
            return Ok(());
        }
        let new = NewTopic::new(
            topic.as_str(),
            self.config.partitions,
            TopicReplication::Fixed(self.config.replication),
        );
        let options = AdminOptions::new().operation_timeout(Some(self.config.timeout));
        let operation = || format!("create topic {topic}");
        let results = self
            .admin
            .create_topics([&new], &options)
            .await
            .map_err(|e| self.error(&e, operation))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(self.error(&KafkaError::AdminOp(code), operation)),
            }
        }
        lock(&self.topics).insert(topic.as_str().to_owned());
        Ok(())
    }

    /// Produces one record and waits for its delivery report.
    async fn send(
        &self,
        topic: &Topic,
        key: Option<&[u8]>,
        headers: rdkafka::message::OwnedHeaders,
        value: &[u8],
    ) -> Result<Confirmation, BrokerError> {
        let mut record = FutureRecord::<[u8], [u8]>::to(topic.as_str())
            .payload(value)
            .headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        match self
            .producer
            .send(record, Timeout::After(self.config.timeout))
            .await
        {
            Ok(delivery) => Ok(Confirmation::at(Position::Offset {
                partition: delivery.partition,
                offset: delivery.offset,
            })),
            Err((e, _)) => Err(self.error(&e, || format!("publish to {topic}"))),
        }
    }

    /// Maps a client error to the seam's: transport failures name the address, timeouts the
    /// time allowed, the broker's answers the operation.
    fn error(&self, e: &KafkaError, operation: impl FnOnce() -> String) -> BrokerError {
        use RDKafkaErrorCode as Code;
        match e.rdkafka_error_code() {
            Some(
                Code::MessageTimedOut
                | Code::OperationTimedOut
                | Code::RequestTimedOut
                | Code::TimedOutQueue,
            ) => BrokerError::Timeout {
                broker: NAME,
                timeout: self.config.timeout,
            },
            Some(
                Code::AllBrokersDown
                | Code::BrokerTransportFailure
                | Code::Resolve
                | Code::BrokerNotAvailable
                | Code::NetworkException,
            ) => unreachable(&self.config, e),
            Some(Code::QueueFull) => BrokerError::Full {
                broker: NAME,
                reason: "the producer's queue is full".into(),
            },
            _ => BrokerError::Rejected {
                broker: NAME,
                operation: operation(),
                reason: e.to_string(),
            },
        }
    }
}

fn unreachable(config: &KafkaConfig, e: &KafkaError) -> BrokerError {
    BrokerError::Unreachable {
        broker: NAME,
        address: config.address(),
        reason: e.to_string(),
    }
}

/// A duration as librdkafka's milliseconds setting.
fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_redacted_and_settings_hidden() {
        let config = KafkaConfig::new("127.0.0.1:9092, sasl://app:secret@kafka-2:9093")
            .set("sasl.password", "hunter2");
        assert_eq!(
            config.address(),
            "127.0.0.1:9092,sasl://app:***@kafka-2:9093"
        );
        let shown = format!("{config:?}");
        assert!(
            shown.contains("sasl.password")
                && !shown.contains("hunter2")
                && !shown.contains("secret"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_cluster_is_named_in_the_error() {
        // Nothing listens on port 1 of the loopback.
        let config = KafkaConfig::new("127.0.0.1:1").timeout(Duration::from_millis(500));
        let error = KafkaBroker::connect(config)
            .await
            .expect_err("nothing listens there");
        assert!(
            matches!(
                error,
                BrokerError::Unreachable {
                    broker: "kafka",
                    ..
                }
            ),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("127.0.0.1:1") && message.contains("is it running"),
            "{message}"
        );
    }
}
