use tidings::Event;

#[derive(Clone, PartialEq, prost::Message, Event)]
#[event(topic = "events.order.created.v1")]
pub struct Created {
    #[prost(string, tag = "1")]
    #[event(key)]
    pub order_id: String,
    #[prost(string, tag = "2")]
    #[event(key)]
    pub customer_id: String,
}

fn main() {}
