/// Support for the generated code: the schemas' descriptors, through which the events read and
/// write the canonical proto3 JSON mapping.
#[doc(hidden)]
#[allow(dead_code, missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]
pub mod __tidings {
    use {{ rt }}::__private::prost::Message;
    use {{ rt }}::__private::prost_reflect::{
        DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions,
    };
    use {{ rt }}::__private::serde::{Deserializer, Serializer, de, ser};

    static POOL: ::std::sync::OnceLock<::core::result::Result<DescriptorPool, ::std::string::String>> =
        ::std::sync::OnceLock::new();

    fn descriptor(name: &str) -> ::core::result::Result<MessageDescriptor, ::std::string::String> {
        let pool = POOL.get_or_init(|| {
            DescriptorPool::decode(include_bytes!("descriptors.bin").as_slice()).map_err(|e| e.to_string())
        });
        let pool = pool.as_ref().map_err(|e| format!("the generated descriptors do not decode: {e}"))?;
        pool.get_message_by_name(name).ok_or_else(|| format!("no descriptor for `{name}`"))
    }

    /// Writes `value`, the message `name`, in the canonical proto3 JSON mapping.
    pub fn serialize<T: Message, S: Serializer>(
        value: &T,
        name: &str,
        serializer: S,
    ) -> ::core::result::Result<S::Ok, S::Error> {
        let descriptor = descriptor(name).map_err(ser::Error::custom)?;
        let message = DynamicMessage::decode(descriptor, value.encode_to_vec().as_slice()).map_err(ser::Error::custom)?;
        message.serialize_with_options(serializer, &SerializeOptions::new())
    }

    /// Reads the message `name` from the canonical proto3 JSON mapping. Fields it does not know
    /// are skipped, as the protobuf encoding skips them, so what a newer minor version writes
    /// still reads.
    pub fn deserialize<'de, T: Message + Default, D: Deserializer<'de>>(
        name: &str,
        deserializer: D,
    ) -> ::core::result::Result<T, D::Error> {
        let descriptor = descriptor(name).map_err(de::Error::custom)?;
        let options = DeserializeOptions::new().deny_unknown_fields(false);
        let message = DynamicMessage::deserialize_with_options(descriptor, deserializer, &options)?;
        T::decode(message.encode_to_vec().as_slice()).map_err(de::Error::custom)
    }
}
