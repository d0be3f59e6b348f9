//! The events of a schema set together with the descriptors of their messages, for tools that
//! read and write events by schema at run time rather than through generated types.

use prost_reflect::{DescriptorPool, MessageDescriptor};

use crate::catalog::{EventInfo, RpcInfo};
use crate::diagnostic::Diagnostics;

/// The events of a schema set and the descriptors of every message they use; made by
/// [`Builder::schema_set`](crate::Builder::schema_set) or
/// [`Builder::schema_set_from_descriptors`](crate::Builder::schema_set_from_descriptors).
#[derive(Debug)]
pub struct SchemaSet {
    pub(crate) pool: DescriptorPool,
    pub(crate) events: Vec<EventInfo>,
    pub(crate) rpcs: Vec<RpcInfo>,
    pub(crate) warnings: Diagnostics,
}

impl SchemaSet {
    /// Every message, enum and file read, imports included.
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// The events, as `tidings list` prints them.
    pub fn events(&self) -> &[EventInfo] {
        &self.events
    }

    /// The request-reply operations of the schemas' services.
    pub fn rpcs(&self) -> &[RpcInfo] {
        &self.rpcs
    }

    /// The event on `topic`, if the schemas have one.
    pub fn event(&self, topic: &str) -> Option<&EventInfo> {
        self.events.iter().find(|e| e.topic() == topic)
    }

    /// The message of the event on `topic`.
    pub fn message(&self, topic: &str) -> Option<MessageDescriptor> {
        self.pool.get_message_by_name(self.event(topic)?.schema())
    }

    /// The warnings found reading the schemas.
    pub fn warnings(&self) -> &Diagnostics {
        &self.warnings
    }
}
