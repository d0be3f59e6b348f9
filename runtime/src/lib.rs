//! Typed, versioned events over real brokers.
//!
//! An event type has a topic (`events.order.created.v1`), a major version, a schema name and a
//! codec ([`Event`]). The runtime refuses a malformed topic before anything reaches a broker,
//! carries every event in a CloudEvents 1.0 [`Envelope`], and refuses, with a typed error and a
//! dead letter, a message of another version or schema instead of decoding it as the wrong type.
//!
//! This is the one crate a service names. It re-exports the seam and the typed layer
//! (`tidings-core`), the derive (feature `derive`, on by default) and, one feature each, the
//! broker adapters: `nats`, `rabbitmq`, `redis`, `mqtt` and `kafka`, found under [`broker`].
//! [`connect`] picks one from a URL (`nats://127.0.0.1:4222`, `memory://`...).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use tidings_core::*;

mod connect;
pub use connect::{ConnectError, connect};

#[cfg(feature = "derive")]
pub use tidings_macros::Event;

/// The transport seam, the in-process broker and the adapters enabled by features.
pub mod broker {
    pub use tidings_core::broker::*;

    /// The Kafka adapter (`tidings-kafka`).
    #[cfg(feature = "kafka")]
    pub use tidings_kafka as kafka;
    /// The MQTT 5 adapter (`tidings-mqtt`).
    #[cfg(feature = "mqtt")]
    pub use tidings_mqtt as mqtt;
    /// The NATS adapter (`tidings-nats`).
    #[cfg(feature = "nats")]
    pub use tidings_nats as nats;
    /// The RabbitMQ adapter (`tidings-rabbitmq`).
    #[cfg(feature = "rabbitmq")]
    pub use tidings_rabbitmq as rabbitmq;
    /// The Redis Streams adapter (`tidings-redis`).
    #[cfg(feature = "redis")]
    pub use tidings_redis as redis;
}
