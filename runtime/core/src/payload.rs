//! Events whose data is one field of their type: a wrapper message around the payload that
//! actually travels.
//!
//! Some schema sets annotate a wrapper (`ObjectFinalizedEvent { StorageObjectData data = 1; }`)
//! with the event's CloudEvents type while the producer sends only the wrapped value as the
//! event's data. The wrapper gives the event its own Rust type (several events may share one
//! payload type); [`Payload`] makes the wire carry the payload alone, so what the producer sent
//! decodes, and what tidings publishes is what the producer would have sent.

use std::marker::PhantomData;

use bytes::Bytes;

use crate::codec::{Codec, CodecError, ContentType};

/// A type that stands for an event whose data is its one field, the payload.
///
/// `#[derive(Event)]` implements it for a struct whose only field is marked
/// `#[event(payload)]`, as the code generator marks a wrapper's field.
pub trait Wrapper: Sized {
    /// The type of the data that travels.
    type Payload;
    /// The payload; `None` when the field is an unset `Option`, published as the payload's
    /// default value, as protobuf would read an unset field.
    fn payload(&self) -> Option<&Self::Payload>;
    /// The payload, taken out of the wrapper; its default value when unset.
    fn into_payload(self) -> Self::Payload;
    /// The wrapper around `payload`.
    fn wrap(payload: Self::Payload) -> Self;
}

/// The codec of a [`Wrapper`] event: its payload written and read with the codec `C`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Payload<C>(PhantomData<C>);

impl<W, C> Codec<W> for Payload<C>
where
    W: Wrapper + Send + Sync + 'static,
    W::Payload: Default,
    C: Codec<W::Payload>,
{
    const CONTENT_TYPE: ContentType = C::CONTENT_TYPE;

    fn encode(value: &W, schema: &'static str, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        match value.payload() {
            Some(payload) => C::encode(payload, schema, buf),
            None => C::encode(&W::Payload::default(), schema, buf),
        }
    }

    fn to_bytes(value: &W, schema: &'static str) -> Result<Bytes, CodecError> {
        match value.payload() {
            Some(payload) => C::to_bytes(payload, schema),
            None => C::to_bytes(&W::Payload::default(), schema),
        }
    }

    fn decode(
        content_type: ContentType,
        schema: &'static str,
        data: &[u8],
    ) -> Result<W, CodecError> {
        C::decode(content_type, schema, data).map(W::wrap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Json, ProtobufOrJson};

    #[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
    struct Object {
        #[prost(string, tag = "1")]
        name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct Finalized {
        #[prost(message, optional, tag = "1")]
        data: Option<Object>,
    }

    impl Wrapper for Finalized {
        type Payload = Object;
        fn payload(&self) -> Option<&Object> {
            self.data.as_ref()
        }
        fn into_payload(self) -> Object {
            self.data.unwrap_or_default()
        }
        fn wrap(data: Object) -> Self {
            Finalized { data: Some(data) }
        }
    }

    fn object() -> Object {
        Object {
            name: "photo.jpg".into(),
        }
    }

    #[test]
    fn the_payload_alone_travels_not_the_wrapper() {
        let wrapped = Finalized {
            data: Some(object()),
        };
        let bytes = <Payload<ProtobufOrJson> as Codec<Finalized>>::to_bytes(&wrapped, "s").unwrap();
        assert_eq!(&bytes[..], prost::Message::encode_to_vec(&object()));
        let mut json = Vec::new();
        <Payload<Json> as Codec<Finalized>>::encode(&wrapped, "s", &mut json).unwrap();
        assert_eq!(json, br#"{"name":"photo.jpg"}"#);
    }

    #[test]
    fn what_a_producer_sends_as_the_payload_decodes_into_the_wrapper() {
        let read = <Payload<ProtobufOrJson> as Codec<Finalized>>::decode(
            ContentType::Json,
            "s",
            br#"{"name":"photo.jpg"}"#,
        )
        .unwrap();
        assert_eq!(read.into_payload(), object());
    }

    #[test]
    fn an_unset_payload_is_published_as_its_default() {
        let bytes =
            <Payload<ProtobufOrJson> as Codec<Finalized>>::to_bytes(&Finalized { data: None }, "s")
                .unwrap();
        assert!(bytes.is_empty(), "the default message encodes to nothing");
    }
}
