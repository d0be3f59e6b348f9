use tidings::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(topic = "events.order.created.v1", codec = "avro")]
pub struct Created {
    pub order_id: String,
}

fn main() {}
