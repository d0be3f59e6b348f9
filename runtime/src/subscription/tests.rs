//! What the consumer does when a dead letter cannot be moved: no handler call past the bound,
//! and no busy loop.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::broker::{Message, StartFrom, SubscribeRequest};
use crate::{
    Broker, Bus, ContentType, Envelope, Event, HandlerError, MemoryBroker, MemoryLimits, Protobuf,
    Received, RetryPolicy, Topic,
};

#[derive(Clone, PartialEq, prost::Message)]
struct Step {
    #[prost(uint32, tag = "1")]
    n: u32,
}

impl Event for Step {
    const TOPIC: &'static str = "tests.consumer.step.v1";
    const VERSION: u32 = 1;
    const SCHEMA: &'static str = "tests.consumer.v1.Step";
    type Codec = Protobuf;
}

fn quick_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(max_attempts)
        .initial_backoff(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(50))
}

#[tokio::test]
async fn a_dead_letter_that_fails_neither_reruns_the_handler_nor_spins() {
    let broker = MemoryBroker::with_limits(MemoryLimits {
        queue_capacity: 1,
        history: 0,
        publish_wait: Duration::from_millis(10),
    });
    // A group of the dead-letter topic that nobody consumes any more, its queue full: every dead
    // letter of `Step` is refused.
    let dead_letters = Topic::of::<Step>().unwrap().dead_letter().unwrap();
    let request = SubscribeRequest {
        topic: dead_letters.clone(),
        group: Some("gone".into()),
        start: StartFrom::New,
        prefetch: 1,
    };
    drop(broker.subscribe(request).await.unwrap());
    let filler = Envelope::new(
        Arc::from("tests"),
        Cow::Borrowed("tests.filler.v1"),
        ContentType::Protobuf,
        None,
    );
    broker
        .publish(&dead_letters, Message::new(filler, Bytes::new()))
        .await
        .unwrap();

    let bus = Bus::new(broker);
    let calls = Arc::new(AtomicU32::new(0));
    let handler = {
        let calls = calls.clone();
        move |_: Received<Step>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), HandlerError>("always fails".into()) }
        }
    };
    let sub = bus
        .subscribe(handler)
        .retry(quick_retries(2))
        .await
        .unwrap();
    bus.publish(&Step { n: 7 }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the handler had its two attempts and no more"
    );
    assert!(sub.is_running(), "the consumer goes on");
    sub.shutdown().await;
}
