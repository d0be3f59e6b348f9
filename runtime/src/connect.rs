//! A broker from a URL, its scheme picking the adapter: what a service reads from its
//! configuration (`--broker nats://127.0.0.1:4222`) to run the same code on any broker.

use std::sync::Arc;

use tidings_core::adapter::redact;
use tidings_core::broker::memory::MemoryBroker;
use tidings_core::broker::{Broker, BrokerError};
use url::Url;

/// The schemes [`connect`] knows, as shown in its errors.
const KNOWN_SCHEMES: &str =
    "nats://, amqp://, amqps://, redis://, rediss://, mqtt://, mqtts://, kafka://, memory://";

/// Why [`connect`] returned no broker. Every URL it shows has its password replaced by `***`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL's scheme names no broker tidings knows.
    #[error("unknown broker scheme `{scheme}` in {url}; use one of {KNOWN_SCHEMES}")]
    UnknownScheme {
        /// The scheme as written, without `://`.
        scheme: String,
        /// The URL, credentials redacted.
        url: String,
    },
    /// The scheme's adapter is a cargo feature this build of `tidings` leaves out.
    #[error(
        "{url} needs the {broker} adapter, which this build leaves out; enable its feature: \
         tidings = {{ features = [\"{feature}\"] }}"
    )]
    FeatureDisabled {
        /// The broker the scheme names (`NATS`, `Kafka`...).
        broker: &'static str,
        /// The cargo feature of `tidings` that brings its adapter.
        feature: &'static str,
        /// The URL, credentials redacted.
        url: String,
    },
    /// The text is not a broker URL.
    #[error("malformed broker URL {url}: {reason}")]
    Malformed {
        /// The text given, credentials redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The adapter could not connect (its messages redact credentials too).
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// The adapters a scheme can pick, each behind a cargo feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Adapter {
    Nats,
    Rabbit,
    Redis,
    Mqtt,
    Kafka,
}

impl Adapter {
    /// The broker's name for messages, and the cargo feature of `tidings` with its adapter.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Adapter::Nats => ("NATS", "nats"),
            Adapter::Rabbit => ("RabbitMQ", "rabbitmq"),
            Adapter::Redis => ("Redis", "redis"),
            Adapter::Mqtt => ("MQTT", "mqtt"),
            Adapter::Kafka => ("Kafka", "kafka"),
        }
    }

    /// The error for `url` when this build leaves the adapter out.
    fn left_out(self, url: &str) -> ConnectError {
        let (broker, feature) = self.names();
        ConnectError::FeatureDisabled {
            broker,
            feature,
            url: redact(url),
        }
    }
}

/// What a URL asks for.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// A new in-process broker.
    Memory,
    /// An adapter, and the address to give it: the URL as written, or Kafka's server list.
    Adapter(Adapter, String),
}

/// Connects to the broker `url` names, its scheme picking the adapter:
///
/// | scheme | broker | cargo feature of `tidings` |
/// |---|---|---|
/// | `memory://` | a new in-process [`MemoryBroker`], shared by whoever holds the result | |
/// | `nats://` | NATS JetStream | `nats` |
/// | `amqp://`, `amqps://` | RabbitMQ | `rabbitmq` |
/// | `redis://`, `rediss://` | Redis Streams | `redis` |
/// | `mqtt://`, `mqtts://` | MQTT 5 | `mqtt` |
/// | `kafka://host:port[,host:port...]` | Kafka, the bootstrap servers after the scheme | `kafka` |
///
/// The rest of the URL (credentials, port, virtual host, database) goes to the adapter as
/// written, with each adapter's default settings; build the adapter's config for more.
/// `amqps://`, `rediss://` and `mqtts://` connect over TLS, and NATS when its server asks for it
/// or a TLS file is named; the TLS files come from the adapter's environment variables
/// (`TIDINGS_REDIS_CA_FILE`, `TIDINGS_REDIS_CLIENT_CERT`, `TIDINGS_REDIS_CLIENT_KEY`, and the
/// same with `NATS`, `RABBITMQ` and `MQTT`), the system's root certificates being trusted when
/// no CA file is named.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tidings::ConnectError> {
/// let broker = tidings::connect("memory://").await?;
/// assert_eq!(broker.name(), "memory");
/// let bus = tidings::Bus::from_arc(broker);
/// # drop(bus);
/// # Ok(())
/// # }
/// ```
pub async fn connect(url: &str) -> Result<Arc<dyn Broker>, ConnectError> {
    match target(url)? {
        Target::Memory => Ok(Arc::new(MemoryBroker::new())),
        Target::Adapter(adapter, address) => open(adapter, url, &address).await,
    }
}

/// What `url` asks for, once it is checked to be a URL its adapter can take.
fn target(url: &str) -> Result<Target, ConnectError> {
    let malformed = |reason: String| ConnectError::Malformed {
        url: redact(url),
        reason,
    };
    // A Kafka URL holds a list of servers, which no URL grammar has room for: each server is
    // parsed as a URL of its own.
    if let Some(servers) = strip_scheme(url, "kafka") {
        let servers = kafka_servers(servers).map_err(malformed)?;
        return Ok(Target::Adapter(Adapter::Kafka, servers));
    }
    let parsed = Url::parse(url).map_err(|e| {
        malformed(match e {
            url::ParseError::RelativeUrlWithoutBase => {
                format!(
                    "it has no scheme; write it as nats://host:port (or one of {KNOWN_SCHEMES})"
                )
            }
            e => e.to_string(),
        })
    })?;
    let no_host = parsed.host_str().is_none_or(str::is_empty);
    let adapter = match parsed.scheme() {
        "memory" => {
            // Reserved, so that a name or settings can mean something later rather than
            // nothing now.
            if !no_host || !parsed.path().is_empty() || parsed.query().is_some() {
                return Err(malformed(
                    "memory:// takes nothing after the scheme".to_owned(),
                ));
            }
            return Ok(Target::Memory);
        }
        "nats" => Adapter::Nats,
        "amqp" | "amqps" => Adapter::Rabbit,
        "redis" | "rediss" => Adapter::Redis,
        "mqtt" | "mqtts" => Adapter::Mqtt,
        scheme => {
            return Err(ConnectError::UnknownScheme {
                scheme: scheme.to_owned(),
                url: redact(url),
            });
        }
    };
    if no_host {
        return Err(malformed(format!(
            "it names no host; write {}://host:port",
            parsed.scheme()
        )));
    }
    Ok(Target::Adapter(adapter, url.to_owned()))
}

/// What follows `scheme://` in `url`, the scheme in any case.
fn strip_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    let (head, rest) = url.split_once("://")?;
    head.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// The bootstrap servers of a `kafka://` URL, each checked as `host:port`, joined by commas.
fn kafka_servers(servers: &str) -> Result<String, String> {
    let mut checked = Vec::new();
    for server in servers.split(',').map(str::trim) {
        let candidate = format!("kafka://{server}");
        // As the server appears in messages: with any password hidden.
        let redacted = redact(&candidate);
        let shown = redacted.strip_prefix("kafka://").unwrap_or(&redacted);
        let parsed =
            Url::parse(&candidate).map_err(|e| format!("`{shown}` is not a host:port: {e}"))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(
                "Kafka credentials do not go in the URL; set them on KafkaConfig instead"
                    .to_owned(),
            );
        }
        let bare =
            parsed.path().is_empty() && parsed.query().is_none() && parsed.fragment().is_none();
        match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) if bare && !host.is_empty() => {
                checked.push(format!("{host}:{port}"));
            }
            _ => {
                return Err(format!(
                    "`{shown}` is not a host:port; write kafka://host:9092[,host:port...]"
                ));
            }
        }
    }
    Ok(checked.join(","))
}

/// Connects `adapter` to `address`; `url` is what was asked for, for messages.
// A build with no adapter at all has no use for `address`.
#[cfg_attr(
    not(any(
        feature = "nats",
        feature = "rabbitmq",
        feature = "redis",
        feature = "mqtt",
        feature = "kafka"
    )),
    allow(unused_variables)
)]
async fn open(adapter: Adapter, url: &str, address: &str) -> Result<Arc<dyn Broker>, ConnectError> {
    match adapter {
        #[cfg(feature = "nats")]
        Adapter::Nats => {
            use tidings_nats::{NatsBroker, NatsConfig};
            Ok(Arc::new(
                NatsBroker::connect(NatsConfig::new(address).tls_from_env()).await?,
            ))
        }
        #[cfg(feature = "rabbitmq")]
        Adapter::Rabbit => {
            use tidings_rabbitmq::{RabbitBroker, RabbitConfig};
            Ok(Arc::new(
                RabbitBroker::connect(RabbitConfig::new(address).tls_from_env()).await?,
            ))
        }
        #[cfg(feature = "redis")]
        Adapter::Redis => {
            use tidings_redis::{RedisBroker, RedisConfig};
            Ok(Arc::new(
                RedisBroker::connect(RedisConfig::new(address).tls_from_env()).await?,
            ))
        }
        #[cfg(feature = "mqtt")]
        Adapter::Mqtt => {
            use tidings_mqtt::{MqttBroker, MqttConfig};
            Ok(Arc::new(
                MqttBroker::connect(MqttConfig::new(address).tls_from_env()).await?,
            ))
        }
        #[cfg(feature = "kafka")]
        Adapter::Kafka => {
            use tidings_kafka::{KafkaBroker, KafkaConfig};
            Ok(Arc::new(
                KafkaBroker::connect(KafkaConfig::new(address)).await?,
            ))
        }
        // The adapters this build leaves out (none with every feature on).
        #[allow(unreachable_patterns)]
        left_out => Err(left_out.left_out(url)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(future)
    }

    /// The error `connect` returns for `url`; every case here fails before any connection, so
    /// no broker is needed.
    fn error(url: &str) -> ConnectError {
        match block_on(connect(url)) {
            Ok(broker) => panic!("{url} connected to {}", broker.name()),
            Err(e) => e,
        }
    }

    fn adapter(url: &str) -> Target {
        match target(url) {
            Ok(target) => target,
            Err(e) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn each_scheme_picks_its_adapter() {
        let as_written = [
            ("nats://127.0.0.1:4222", Adapter::Nats),
            ("NATS://127.0.0.1:4222", Adapter::Nats),
            ("amqp://guest:guest@127.0.0.1:5672/%2f", Adapter::Rabbit),
            ("amqps://rabbit.internal", Adapter::Rabbit),
            ("redis://127.0.0.1:6379/0", Adapter::Redis),
            ("rediss://:secret@redis.internal:6380", Adapter::Redis),
            ("mqtt://127.0.0.1:1883", Adapter::Mqtt),
            ("mqtts://broker.internal", Adapter::Mqtt),
        ];
        for (url, expected) in as_written {
            assert_eq!(adapter(url), Target::Adapter(expected, url.to_owned()));
        }
        assert_eq!(adapter("memory://"), Target::Memory);
        assert_eq!(
            adapter("kafka://127.0.0.1:9092"),
            Target::Adapter(Adapter::Kafka, "127.0.0.1:9092".to_owned())
        );
        assert_eq!(
            adapter("Kafka://k1:9092, k2:9093,[::1]:9094"),
            Target::Adapter(Adapter::Kafka, "k1:9092,k2:9093,[::1]:9094".to_owned())
        );
    }

    #[test]
    fn memory_is_a_new_broker_each_time() {
        let (a, b) = block_on(async {
            let a = connect("memory://").await.expect("memory:// needs nothing");
            let b = connect("memory://").await.expect("memory:// needs nothing");
            (a, b)
        });
        assert_eq!(a.name(), "memory");
        assert!(
            !Arc::ptr_eq(&a, &b),
            "each memory:// is a broker of its own"
        );
    }

    #[test]
    fn an_unknown_scheme_lists_the_known_ones() {
        let e = error("zmq://user:hunter2@127.0.0.1:5555");
        assert!(
            matches!(&e, ConnectError::UnknownScheme { scheme, .. } if scheme == "zmq"),
            "{e:?}"
        );
        let shown = e.to_string();
        for scheme in [
            "nats://",
            "amqp://",
            "redis://",
            "mqtt://",
            "kafka://",
            "memory://",
        ] {
            assert!(shown.contains(scheme), "{shown}");
        }
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("user:***@127.0.0.1:5555"), "{shown}");
    }

    #[test]
    fn malformed_urls_are_refused_with_the_reason_and_no_password() {
        for url in [
            "127.0.0.1:4222",
            "just words",
            "nats://",
            "nats://app:hunter2@127.0.0.1:99999",
            "amqp://app:hunter2@/vhost",
            "memory://somewhere",
            "memory:///path",
            "kafka://",
            "kafka://app:hunter2@k1:9092",
            "kafka://k1:9092,app:hunter2@k2",
            "kafka://k1:9092,",
            "kafka://k1",
            "kafka://k1:9092/topic",
        ] {
            let e = error(url);
            assert!(matches!(e, ConnectError::Malformed { .. }), "{url}: {e:?}");
            let shown = e.to_string();
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        let shown = error("nats://app:hunter2@127.0.0.1:99999").to_string();
        assert!(shown.contains("app:***@127.0.0.1:99999"), "{shown}");
        let shown = error("127.0.0.1:4222").to_string();
        assert!(shown.contains("no scheme"), "{shown}");
    }

    #[test]
    fn an_adapter_left_out_names_the_feature_to_enable() {
        let shown = Adapter::Nats
            .left_out("nats://app:hunter2@127.0.0.1:4222")
            .to_string();
        assert!(
            shown.contains(r#"tidings = { features = ["nats"] }"#),
            "{shown}"
        );
        assert!(shown.contains("app:***@127.0.0.1:4222"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    /// Through `connect` itself, for every adapter this build leaves out (all of them in a
    /// plain `cargo test -p tidings`).
    #[test]
    fn connect_refuses_an_adapter_left_out_of_the_build() {
        let cases = [
            ("nats://127.0.0.1:4222", "nats", cfg!(feature = "nats")),
            (
                "amqp://127.0.0.1:5672",
                "rabbitmq",
                cfg!(feature = "rabbitmq"),
            ),
            ("redis://127.0.0.1:6379", "redis", cfg!(feature = "redis")),
            ("mqtt://127.0.0.1:1883", "mqtt", cfg!(feature = "mqtt")),
            ("kafka://127.0.0.1:9092", "kafka", cfg!(feature = "kafka")),
        ];
        for (url, expected, built) in cases {
            if built {
                continue;
            }
            match error(url) {
                ConnectError::FeatureDisabled { feature, .. } => assert_eq!(feature, expected),
                e => panic!("{url}: {e:?}"),
            }
        }
    }
}
