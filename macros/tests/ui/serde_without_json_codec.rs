use tidings::Event;

// A serde struct with the default codec, protobuf, which needs `prost::Message`.
#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(topic = "events.order.created.v1")]
pub struct Created {
    pub order_id: String,
}

fn main() {}
