//! A schema set laid out as another stack lays it out (`tests/foreign`): its own option names
//! each event's CloudEvents type (version in the middle, camelCase), an options file and shared
//! types sit in packages without a version, and each event's message wraps the payload that
//! travels in its one field, `data`. The generated code types the events by their wrappers,
//! sends and reads the payload alone, and hands handlers the payload type; over NATS, a
//! structured-mode CloudEvent written by hand as that producer writes it reaches the handler.

#[allow(clippy::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/foreign/mod.rs"));
}

use std::time::Duration;

use generated::com::example::storage::v1::{
    self as storage, ObjectFinalizedEvent, ObjectMetadataUpdatedEvent, StorageObjectData,
};
use generated::com::example::r#type::Checksum;
use tidings::{Bus, Event, HandlerError, Received, SubscribeOptions};
use tokio::sync::mpsc;

/// How long an event may take to arrive.
const PATIENCE: Duration = Duration::from_secs(30);

#[test]
fn the_producers_types_stay_the_types_and_the_topics_follow_the_rule() {
    assert_eq!(
        ObjectFinalizedEvent::TYPE,
        "com.example.storage.object.v1.finalized"
    );
    assert_eq!(ObjectFinalizedEvent::TOPIC, "storage.object.finalized.v1");
    assert_eq!(
        ObjectMetadataUpdatedEvent::TYPE,
        "com.example.storage.object.v1.metadataUpdated"
    );
    assert_eq!(
        ObjectMetadataUpdatedEvent::TOPIC,
        "storage.object.metadata_updated.v1"
    );
    // What travels is the payload, so `dataschema` names it.
    assert_eq!(
        ObjectFinalizedEvent::SCHEMA,
        "com.example.storage.v1.StorageObjectData"
    );
    assert_eq!(
        ObjectMetadataUpdatedEvent::DATA_SCHEMA,
        "proto:com.example.storage.v1.StorageObjectData"
    );
}

fn object(name: &str) -> StorageObjectData {
    StorageObjectData {
        bucket: "photos".into(),
        name: name.into(),
        size: 5_000_000_000,
        time_created: Some(tidings::well_known::Timestamp {
            seconds: 1_714_979_289,
            nanos: 0,
        }),
        metadata: [("owner".to_owned(), "ana".to_owned())].into(),
        checksums: vec![Checksum {
            algorithm: "crc32c".into(),
            value: "yZRlqg==".into(),
        }],
    }
}

/// A service's handler: it receives the payloads, by event.
struct Storage {
    seen: mpsc::UnboundedSender<(&'static str, Received<StorageObjectData>)>,
}

impl storage::Handler for Storage {
    async fn object_finalized_event(
        &self,
        event: Received<StorageObjectData>,
    ) -> Result<(), HandlerError> {
        self.seen
            .send(("finalized", event))
            .map_err(|_| HandlerError::from("the test stopped listening"))
    }

    async fn object_metadata_updated_event(
        &self,
        event: Received<StorageObjectData>,
    ) -> Result<(), HandlerError> {
        self.seen
            .send(("metadata updated", event))
            .map_err(|_| HandlerError::from("the test stopped listening"))
    }
}

async fn next(
    rx: &mut mpsc::UnboundedReceiver<(&'static str, Received<StorageObjectData>)>,
) -> (&'static str, Received<StorageObjectData>) {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("an event in time")
        .expect("the subscriptions deliver")
}

#[tokio::test]
async fn the_handler_receives_the_payload_of_each_event() {
    let bus = Bus::memory();
    let (seen, mut rx) = mpsc::unbounded_channel();
    let subscriptions = storage::subscribe(&bus, Storage { seen }, SubscribeOptions::default())
        .await
        .expect("subscribing");
    let publisher = storage::Publisher::new(bus.clone());

    publisher
        .object_metadata_updated_event(&ObjectMetadataUpdatedEvent {
            data: Some(object("cat.jpg")),
        })
        .await
        .expect("publishing");

    let (which, received) = next(&mut rx).await;
    assert_eq!(which, "metadata updated");
    assert_eq!(
        received.envelope().event_type,
        "com.example.storage.object.v1.metadataUpdated"
    );
    assert_eq!(received.into_inner(), object("cat.jpg"));
    subscriptions.shutdown().await;
}

#[cfg(feature = "nats")]
mod nats {
    use super::*;
    use tidings::broker::nats::async_nats::{self, HeaderMap};
    use tidings::broker::nats::{NatsBroker, NatsConfig};
    use tidings::{StartFrom, Topic};
    use tidings_conformance::probe::run_id;

    /// A structured-mode CloudEvent as the storage service writes it: its attributes and, as
    /// `data`, the object in the canonical proto3 JSON mapping (camelCase names, 64-bit integers
    /// as strings, `Timestamp` in RFC 3339). No `dataschema`, as such producers rarely write one.
    fn finalized_document(id: &str, name: &str) -> String {
        serde_json::json!({
            "specversion": "1.0",
            "type": "com.example.storage.object.v1.finalized",
            "source": "//storage.example.com/projects/_/buckets/photos",
            "subject": format!("objects/{name}"),
            "id": id,
            "time": "2024-05-06T07:08:10Z",
            "datacontenttype": "application/json",
            "data": {
                "bucket": "photos",
                "name": name,
                "size": "5000000000",
                "timeCreated": "2024-05-06T07:08:09Z",
                "metadata": { "owner": "ana" },
                "checksums": [{ "algorithm": "crc32c", "value": "yZRlqg==" }],
            },
        })
        .to_string()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
    async fn a_structured_cloudevent_written_by_hand_reaches_the_handler_as_its_payload() {
        let run = run_id();
        let config = NatsConfig::from_env().max_age(Duration::from_secs(3600));
        let url = config.url().to_owned();
        let bus = Bus::new(NatsBroker::connect(config).await.expect("connecting"));
        let (seen, mut rx) = mpsc::unbounded_channel();
        let subscriptions = storage::subscribe(
            &bus,
            Storage { seen },
            SubscribeOptions::default()
                .group(format!("foreign_{run}"))
                .start(StartFrom::Oldest),
        )
        .await
        .expect("subscribing");

        let client = async_nats::connect(&url)
            .await
            .expect("a plain NATS client");
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/cloudevents+json");
        let name = format!("{run}.jpg");
        let id = format!("storage-{run}");
        let topic = Topic::of::<ObjectFinalizedEvent>().expect("the topic");
        async_nats::jetstream::new(client)
            .publish_with_headers(
                topic.as_str().to_owned(),
                headers,
                finalized_document(&id, &name).into(),
            )
            .await
            .expect("publishing")
            .await
            .expect("JetStream stored it");

        // Earlier runs' events stay in the stream; this run's is the one with its name.
        let received = loop {
            let (which, received) = next(&mut rx).await;
            if received.name == name {
                assert_eq!(which, "finalized");
                break received;
            }
        };
        assert_eq!(received.envelope().id, id.as_str());
        assert_eq!(
            &*received.envelope().source,
            "//storage.example.com/projects/_/buckets/photos"
        );
        assert_eq!(
            received.envelope().subject.as_deref(),
            Some(format!("objects/{name}").as_str())
        );
        assert_eq!(received.envelope().schema(), None);
        assert_eq!(received.into_inner(), object(&name));
        subscriptions.shutdown().await;
    }
}
