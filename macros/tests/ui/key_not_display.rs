use tidings::Event;

#[derive(Clone, PartialEq, prost::Message, Event)]
#[event(topic = "events.order.created.v1")]
pub struct Created {
    #[prost(bytes = "vec", tag = "1")]
    #[event(key)]
    pub order_id: Vec<u8>,
}

fn main() {}
