use tidings::Event;

#[derive(Event)]
#[event(topic = "events.order.changed.v1")]
pub union Changed {
    id: u64,
    code: u32,
}

fn main() {}
