//! The contract an event type fulfils.

use tidings_contract::{is_event_type, validate_topic};

use crate::codec::Codec;
use crate::envelope::SCHEMA_PREFIX;

/// A type that travels as an event: a topic, a major version, a schema name and a codec.
///
/// Implemented by `#[derive(tidings::Event)]` on hand-written structs and by the code that
/// `tidings-codegen` generates from schemas; both check the topic at compile time. The constants
/// are usable in `const` context.
pub trait Event: Sized + Send + Sync + 'static {
    /// The topic, `events.order.created.v1`; its last segment is the version.
    const TOPIC: &'static str;
    /// The major version, the number in the topic's last segment. It follows from
    /// [`Event::TOPIC`]: leave it out. An implementation that sets it to anything else does not
    /// build once the event is published or subscribed (0 for a topic that breaks the rule,
    /// which the runtime refuses anyway).
    const VERSION: u32 = major_of(Self::TOPIC);
    /// The CloudEvents `type` the event travels with and subscribers match on: its topic unless
    /// the producer names its events its own way (`com.example.storage.object.v1.finalized`).
    /// The topic rule governs topics only; a type follows the CloudEvents spec's rules, a
    /// non-empty text of printable characters, which an implementation that breaks does not
    /// build once the event is published or subscribed.
    const TYPE: &'static str = Self::TOPIC;
    /// The full schema name, `events.order.v1.Created` for a protobuf message.
    const SCHEMA: &'static str;
    /// The CloudEvents `dataschema` every publish writes: `proto:` and [`Event::SCHEMA`],
    /// `proto:events.order.v1.Created`. The derive writes it as a literal, as Rust cannot join
    /// two constants of a generic type; an implementation whose value is anything else does not
    /// build once the event is published or subscribed.
    const DATA_SCHEMA: &'static str;
    /// How the event is written when published, and which content types it can be read from.
    type Codec: Codec<Self>;

    /// Fails the build of an implementation whose [`Event::VERSION`] is not its topic's.
    /// Evaluated by [`Topic::of`](crate::Topic::of), which every publish and subscribe goes
    /// through; not to be set.
    #[doc(hidden)]
    const VERSION_FOLLOWS_TOPIC: () = assert!(
        Self::VERSION == major_of(Self::TOPIC),
        "Event::VERSION differs from the version Event::TOPIC ends in; leave VERSION out: it \
         follows from TOPIC"
    );

    /// Fails the build of an implementation whose [`Event::DATA_SCHEMA`] is not `proto:` and
    /// its [`Event::SCHEMA`]. Evaluated with [`Event::VERSION_FOLLOWS_TOPIC`]; not to be set.
    #[doc(hidden)]
    const DATA_SCHEMA_FOLLOWS_SCHEMA: () = assert!(
        is_data_schema_of(Self::DATA_SCHEMA, Self::SCHEMA),
        "Event::DATA_SCHEMA is not \"proto:\" followed by Event::SCHEMA"
    );

    /// Fails the build of an implementation whose [`Event::TYPE`], set apart from its topic, is
    /// empty or holds a control character (a topic is checked by the topic rule). Evaluated
    /// with [`Event::VERSION_FOLLOWS_TOPIC`]; not to be set.
    #[doc(hidden)]
    const TYPE_IS_PRINTABLE: () = assert!(
        is_event_type(Self::TYPE) || same_text(Self::TYPE, Self::TOPIC),
        "Event::TYPE is empty or holds a control character; CloudEvents types are non-empty \
         printable text"
    );

    /// The partition key: events with the same key keep their order where the broker promises
    /// order per key. `None` by default; a publish option can set one as well.
    fn key(&self) -> Option<String> {
        None
    }
}

/// Whether `data_schema` is [`SCHEMA_PREFIX`] followed by `schema`; a `const fn`, as the check
/// runs at compile time.
const fn is_data_schema_of(data_schema: &str, schema: &str) -> bool {
    let (data_schema, schema, prefix) = (
        data_schema.as_bytes(),
        schema.as_bytes(),
        SCHEMA_PREFIX.as_bytes(),
    );
    if data_schema.len() != prefix.len() + schema.len() {
        return false;
    }
    let mut i = 0;
    while i < data_schema.len() {
        let expected = if i < prefix.len() {
            prefix[i]
        } else {
            schema[i - prefix.len()]
        };
        if data_schema[i] != expected {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `a` and `b` are the same text; a `const fn`.
const fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The major version `topic` ends in, or 0 when it breaks the topic rule.
const fn major_of(topic: &str) -> u32 {
    match validate_topic(topic) {
        Ok(version) => version.major,
        Err(_) => 0,
    }
}
