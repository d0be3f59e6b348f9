use tidings::{Bus, Event, Protobuf};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Captured {
    #[prost(string, tag = "1")]
    pub payment_id: String,
}

// Written by hand, with a VERSION the topic contradicts.
impl Event for Captured {
    const TOPIC: &'static str = "events.payment.captured.v2";
    const VERSION: u32 = 1;
    const SCHEMA: &'static str = "events.payment.v2.Captured";
    const DATA_SCHEMA: &'static str = "proto:events.payment.v2.Captured";
    type Codec = Protobuf;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let bus = Bus::memory();
    let _receipt = bus.publish(&Captured::default()).await;
}
