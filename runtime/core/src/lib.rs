//! The seam and the typed layer of tidings: events, codecs, the CloudEvents envelope, the
//! [`Broker`] trait every adapter implements, the in-process broker, and the typed [`Bus`].
//!
//! Services depend on the `tidings` crate, which re-exports all of this together with the
//! derive and, by feature, the broker adapters; adapter crates depend on this one.
//!
//! An event type has a topic (`events.order.created.v1`), a major version, a schema name and a
//! codec ([`Event`]). The runtime refuses a malformed topic before anything reaches a broker,
//! carries every event in a CloudEvents 1.0 [`Envelope`], and refuses, with a typed error and a
//! dead letter, a message of another version or schema instead of decoding it as the wrong type.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adapter;
pub mod broker;
mod bus;
mod causation;
pub mod codec;
mod deadline;
mod dedup;
pub mod envelope;
mod event;
mod fallback;
mod handler;
mod id;
mod include;
mod payload;
mod receipt;
mod receive;
mod retry;
mod rpc;
mod size;
mod subscription;
mod subscriptions;
pub mod telemetry;
pub mod topic;

pub use broker::memory::{MemoryBroker, MemoryLimits};
pub use broker::{Broker, BrokerError, Capabilities, Confirmation, Position, StartFrom};
pub use bus::{Bus, DEFAULT_PUBLISH_TIMEOUT, Publish, PublishError};
pub use causation::{CausationChain, DEFAULT_MAX_CAUSATION_DEPTH};
pub use codec::CodecError;
pub use codec::{ContentType, Json, JsonOrProtobuf, Protobuf, ProtobufOrJson};
pub use dedup::{
    DedupError, DedupStore, MAX_DEDUP_ID_LEN, MemoryDedup, check_dedup_id, group_scope,
};
pub use envelope::Envelope;
pub use event::Event;
pub use fallback::{Fallback, FallbackError};
pub use handler::{Handler, HandlerError, IntoHandlerResult, Received};
pub use id::EventId;
pub use payload::{Payload, Wrapper};
/// The protobuf well-known types (`Timestamp`, `Duration`, `Any`...) that generated events use.
pub use prost_types as well_known;
pub use receipt::Receipt;
pub use receive::{DataSchema, Refusal, decode, decode_with};
pub use retry::RetryPolicy;
pub use rpc::{
    Call, Client, DEFAULT_REQUEST_TIMEOUT, DEFAULT_SERVE_CONCURRENCY, RequestError, Responder, Rpc,
    Status,
};
pub use size::DEFAULT_MAX_MESSAGE_SIZE;
pub use subscription::{
    DEFAULT_HANDLER_TIMEOUT, SubscribeBuilder, SubscribeError, SubscribeOptions, Subscription,
};
pub use subscriptions::Subscriptions;
pub use topic::{Topic, TopicError};

/// Re-exports used by code that `#[derive(Event)]` and the code generator emit; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use prost;
    pub use prost_reflect;
    pub use serde;
    pub use tidings_contract;
}
