use tidings::{Bus, Event, Received};

// Named the way its producer names its events; the topic still follows the topic rule.
#[derive(Clone, PartialEq, prost::Message, Event)]
#[event(topic = "storage.object.finalized.v1", type = "com.example.storage.object.v1.finalized")]
pub struct Finalized {
    #[prost(string, tag = "1")]
    pub name: String,
}

const _: () = assert!(Finalized::VERSION == 1);

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let bus = Bus::memory();
    let (seen, mut handled) = tokio::sync::mpsc::unbounded_channel();
    let subscription = bus
        .subscribe(move |event: Received<Finalized>| {
            let seen = seen.clone();
            async move {
                assert_eq!(
                    event.envelope().event_type,
                    "com.example.storage.object.v1.finalized"
                );
                seen.send(event.name.clone()).expect("the test waits");
            }
        })
        .await
        .expect("subscribed");
    bus.publish(&Finalized {
        name: "photo.jpg".into(),
    })
    .await
    .expect("published");
    assert_eq!(handled.recv().await.as_deref(), Some("photo.jpg"));
    subscription.shutdown().await;
}
