#[derive(Clone, PartialEq, prost::Message, tidings::Event)]
#[event(topic = "storage.object.finalized.v1")]
pub struct Finalized {
    #[prost(message, optional, tag = "1")]
    #[event(payload, payload)]
    pub data: Option<Object>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Object {
    #[prost(string, tag = "1")]
    pub name: String,
}

fn main() {}
