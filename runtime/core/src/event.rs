//! The contract an event type fulfils.

use crate::codec::Codec;

/// A type that travels as an event: a topic, a major version, a schema name and a codec.
///
/// Implemented by `#[derive(tidings::Event)]` on hand-written structs and by the code that
/// `tidings-codegen` generates from schemas; both check the topic at compile time. The constants
/// are usable in `const` context.
pub trait Event: Sized + Send + Sync + 'static {
    /// The topic, `events.order.created.v1`; its last segment is the version.
    const TOPIC: &'static str;
    /// The major version, the number in the topic's last segment.
    const VERSION: u32;
    /// The full schema name, `events.order.v1.Created` for a protobuf message.
    const SCHEMA: &'static str;
    /// How the event is written when published, and which content types it can be read from.
    type Codec: Codec<Self>;

    /// The partition key: events with the same key keep their order where the broker promises
    /// order per key. `None` by default; a publish option can set one as well.
    fn key(&self) -> Option<String> {
        None
    }
}
