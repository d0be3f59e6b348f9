use tidings::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(topic = "events.order.created.v1", codec = "json")]
pub struct Created<T> {
    pub order_id: String,
    pub detail: T,
}

fn main() {}
