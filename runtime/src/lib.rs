//! Typed, versioned events over real brokers.
//!
//! An event type has a topic (`events.order.created.v1`), a major version, a schema name and a
//! codec ([`Event`]). The runtime refuses a malformed topic before anything reaches a broker,
//! carries every event in a CloudEvents 1.0 [`Envelope`], and refuses, with a typed error and a
//! dead letter, a message of another version or schema instead of decoding it as the wrong type.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod broker;
pub mod codec;
pub mod envelope;
mod event;
pub mod topic;

pub use broker::{Broker, BrokerError, Capabilities, StartFrom};
pub use codec::{ContentType, Json, JsonOrProtobuf, Protobuf, ProtobufOrJson};
pub use envelope::Envelope;
pub use event::Event;
pub use topic::{Topic, TopicError};

#[cfg(feature = "derive")]
pub use tidings_macros::Event;

/// Re-exports used by code that `#[derive(Event)]` and the code generator emit; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use prost;
    pub use serde;
    pub use tidings_contract;
}
