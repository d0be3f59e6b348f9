use tidings::{Bus, Event, Protobuf};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Captured {
    #[prost(string, tag = "1")]
    pub payment_id: String,
}

// Written by hand, without VERSION: it follows from the topic.
impl Event for Captured {
    const TOPIC: &'static str = "events.payment.captured.v2";
    const SCHEMA: &'static str = "events.payment.v2.Captured";
    const DATA_SCHEMA: &'static str = "proto:events.payment.v2.Captured";
    type Codec = Protobuf;
}

const _: () = assert!(Captured::VERSION == 2);

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let bus = Bus::memory();
    bus.publish(&Captured::default()).await.expect("published");
}
