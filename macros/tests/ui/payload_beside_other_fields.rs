#[derive(Clone, PartialEq, prost::Message, tidings::Event)]
#[event(topic = "storage.object.finalized.v1", codec = "protobuf")]
pub struct Finalized {
    #[prost(message, optional, tag = "1")]
    #[event(payload)]
    pub data: Option<Object>,
    #[prost(string, tag = "2")]
    pub note: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Object {
    #[prost(string, tag = "1")]
    pub name: String,
}

fn main() {}
