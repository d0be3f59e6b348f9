//! `#[derive(Event)]`: the tidings event contract for hand-written structs, checked by the
//! compiler.
//!
//! Use it through the runtime, as `tidings::Event` (the `derive` feature, on by default). The
//! code generator emits the same derive on the types it generates, so a generated event and a
//! hand-written one get their implementation from one expansion.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod attr;
mod expand;
mod validate;

#[cfg(test)]
mod tests;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;

/// Implements `tidings::Event` for a struct: its topic, major version, schema name and codec,
/// with the topic checked at compile time by the same rule the runtime and the code generator
/// apply.
///
/// A protobuf message (the default codec):
///
/// ```
/// #[derive(Clone, PartialEq, prost::Message, tidings::Event)]
/// #[event(topic = "events.order.created.v1")]
/// pub struct Created {
///     #[prost(string, tag = "1")]
///     #[event(key)]
///     pub order_id: String,
///     #[prost(uint64, tag = "2")]
///     pub total_cents: u64,
/// }
///
/// use tidings::Event;
/// const TOPIC: &str = <Created as Event>::TOPIC;
/// assert_eq!(TOPIC, "events.order.created.v1");
/// assert_eq!(<Created as Event>::VERSION, 1);
/// assert_eq!(<Created as Event>::SCHEMA, "events.order.v1.Created");
/// let created = Created { order_id: "o-7".into(), total_cents: 1250 };
/// assert_eq!(created.key().as_deref(), Some("o-7"));
/// ```
///
/// A serde struct, written and read as JSON:
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize, tidings::Event)]
/// #[event(topic = "events.payment.captured.v2", codec = "json")]
/// pub struct PaymentCaptured {
///     pub payment_id: String,
///     pub amount_cents: u64,
/// }
/// assert_eq!(<PaymentCaptured as tidings::Event>::VERSION, 2);
/// assert_eq!(<PaymentCaptured as tidings::Event>::SCHEMA, "events.payment.v2.Captured");
/// ```
///
/// # Settings on the struct: `#[event(...)]`
///
/// They may be spread over several `#[event(...)]` attributes; each key is given at most once.
///
/// - `topic = "events.order.created.v1"` (required): the topic, checked against the topic rule
///   (lowercase segments `[a-z][a-z0-9_]*`, at least a domain, an event and a version, the last
///   segment a version such as `v1` or `v1beta1`, no wildcard, at most 249 bytes). `VERSION` is
///   the major number of its last segment.
/// - `type = "..."`: the CloudEvents `type` the event travels with and subscribers match on,
///   for events a producer names its own way (`com.example.storage.object.v1.finalized`). By
///   default it is the topic. It only has to be non-empty printable text, as CloudEvents asks.
/// - `codec = "..."`: how the event is written and which content types it reads. The first
///   codec named writes, every codec named reads:
///   `"protobuf"` (the default, as on the wire by design; needs `prost::Message`),
///   `"json"` (needs serde's `Serialize` and `Deserialize`),
///   `"protobuf+json"` and `"json+protobuf"` (need both). A serde struct therefore says
///   `codec = "json"`.
/// - `schema = "..."`: the schema name published in `dataschema` and checked by subscribers
///   when a message carries one. By
///   default it is the protobuf full name the naming convention gives the topic: the topic is
///   the package without its version, the message name in snake_case, then the version, so
///   `events.order.created.v1` gives `events.order.v1.Created` and
///   `events.order.order_created.v1` gives `events.order.v1.OrderCreated`. The default does not
///   depend on the struct's Rust name or module, so two services declaring the same topic agree
///   on the schema, and a hand-written struct matches a generated message named by the
///   convention. Set it when the message is named otherwise, or when snake_case loses part of
///   its name (`HTTPRequestSent` has topic segment `http_request_sent`, which gives back
///   `HttpRequestSent`; the code generator warns about such messages).
/// - `crate = "path"`: where the `tidings` crate is, for code that reaches it through a
///   re-export; `::tidings` by default.
///
/// # Setting on a field: `#[event(key)]`
///
/// Marks the field that holds the partition key (events with the same key keep their order where
/// the broker promises order per key). Its type must implement `Display`; a field written
/// `Option<T>` gives no key when it is `None`. At most one field is the key; without one, events
/// have no key unless the publisher sets one.
///
/// # Setting on a field: `#[event(payload)]`
///
/// Marks the struct's only field as the event's data: the struct stands for the event (its
/// topic, type and handler), while the wire carries the field's value alone, encoded with the
/// struct's codec. This is how a schema set that wraps each event's payload in a message of its
/// own (`ObjectFinalizedEvent { StorageObjectData data = 1; }`) reads what its producers send,
/// the payload without the wrapper. `schema` then names the payload's message. A field written
/// `Option<T>` is published as `T`'s default value when `None`; the derive implements
/// `tidings::Wrapper`, whose `into_payload` takes the value out.
///
/// ```
/// #[derive(Clone, PartialEq, prost::Message)]
/// pub struct StorageObjectData {
///     #[prost(string, tag = "1")]
///     pub name: String,
/// }
///
/// #[derive(Clone, PartialEq, prost::Message, tidings::Event)]
/// #[event(topic = "storage.object.finalized.v1", type = "com.example.storage.object.v1.finalized")]
/// #[event(schema = "com.example.storage.v1.StorageObjectData")]
/// pub struct ObjectFinalizedEvent {
///     #[prost(message, optional, tag = "1")]
///     #[event(payload)]
///     pub data: Option<StorageObjectData>,
/// }
/// ```
///
/// # What is refused
///
/// Each with a compile error at the offending place saying what to write instead: a missing or
/// malformed topic, an unknown or repeated key, an unknown codec, an empty schema, an enum or a
/// union (an event is one message: put the enum in a field of a struct), and a generic struct (an
/// event's topic and schema are constants, so they cannot vary with a type parameter). Named,
/// tuple and unit structs are all accepted; `#[event(key)]` works on a tuple field too. A
/// payload field beside other fields is refused too, as they would never travel.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    expand(input.into()).into()
}

/// The whole expansion on `proc_macro2` tokens, so that it runs outside the compiler in tests.
fn expand(input: TokenStream2) -> TokenStream2 {
    syn::parse2(input)
        .and_then(|input| validate::event(&input))
        .map_or_else(syn::Error::into_compile_error, |event| {
            expand::event_impl(&event)
        })
}
