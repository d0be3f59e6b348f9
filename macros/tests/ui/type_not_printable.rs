use tidings::Event;

#[derive(Clone, PartialEq, prost::Message, Event)]
#[event(topic = "storage.object.finalized.v1", type = "com.example\tfinalized")]
pub struct Finalized {
    #[prost(string, tag = "1")]
    pub name: String,
}

fn main() {}
