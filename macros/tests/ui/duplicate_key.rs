use tidings::Event;

#[derive(Clone, PartialEq, prost::Message, Event)]
#[event(topic = "events.order.created.v1")]
#[event(topic = "events.order.created.v2")]
pub struct Created {
    #[prost(string, tag = "1")]
    pub order_id: String,
}

fn main() {}
