use tidings::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(topic = "events.order.changed.v1", codec = "json")]
pub enum Changed {
    Created { order_id: String },
    Cancelled { order_id: String },
}

fn main() {}
