use tidings::Event;

#[derive(Clone, PartialEq, prost::Message, Event)]
#[event(topic = "events.order.created.v1", version = 1)]
pub struct Created {
    #[prost(string, tag = "1")]
    pub order_id: String,
}

fn main() {}
