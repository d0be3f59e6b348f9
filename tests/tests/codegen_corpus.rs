//! The 100-file corpus the build script writes and generates (`build/corpus.rs`): shared types
//! importing each other, well-known types, nested messages and enums, maps and oneofs, imports
//! across packages. That this file compiles is the main check; the tests use the deepest types.

#[allow(clippy::all)]
mod corpus {
    include!(concat!(env!("OUT_DIR"), "/corpus/mod.rs"));
}

use std::time::Duration;

use corpus::corpus::common::{c2, c9};
use corpus::events::{e88, e89};
use prost::Message;
use tidings::codec::Codec;
use tidings::well_known::{self, Any, FieldMask, Struct, Timestamp};
use tidings::{Bus, ContentType, Event, Json, Received, SubscribeOptions};

fn happened() -> e89::v2::Happened {
    use e89::v2::happened::{Line, Source, line::Inner, line::inner::Kind};
    e89::v2::Happened {
        id: "h-89".to_owned(),
        at: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        took: Some(well_known::Duration {
            seconds: 0,
            nanos: 250_000_000,
        }),
        note: Some("wrapped".to_owned()),
        // JSON writes an `Any` with its fields, so its type must be among the schemas.
        attachment: Some(Any {
            type_url: "type.googleapis.com/corpus.common.c9.v1.Amount".to_owned(),
            value: c9::v1::Amount {
                currency: "JPY".to_owned(),
                minor_units: 5,
            }
            .encode_to_vec(),
        }),
        mask: Some(FieldMask {
            paths: vec!["id".to_owned(), "lines".to_owned()],
        }),
        lines: vec![Line {
            sku: "s".to_owned(),
            inner: Some(Inner {
                depth: 3,
                kind: Kind::A.into(),
            }),
        }],
        amounts: [(
            "total".to_owned(),
            c9::v1::Amount {
                currency: "EUR".to_owned(),
                minor_units: 10,
            },
        )]
        .into(),
        labels: [(-1, "minus one".to_owned())].into(),
        source: Some(Source::Window(c2::v1::Window {
            start: Some(Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            length: Some(well_known::Duration {
                seconds: 60,
                nanos: 0,
            }),
        })),
        priority: e89::v2::Priority::High.into(),
        previous_priority: e88::v1::Priority::Low.into(),
        tagged: Some(c9::v1::Tagged {
            tags: [("k".to_owned(), "v".to_owned())].into(),
            extra: Some(Struct {
                fields: [(
                    "n".to_owned(),
                    well_known::Value {
                        kind: Some(well_known::value::Kind::NumberValue(1.5)),
                    },
                )]
                .into(),
            }),
            tier: c9::v1::Tier::Gold.into(),
            previous: Some(corpus::corpus::common::c8::v1::Amount {
                currency: "USD".to_owned(),
                minor_units: -3,
            }),
        }),
        blob: vec![9; 4],
    }
}

#[test]
fn the_deepest_event_round_trips_through_both_codecs() {
    let event = happened();
    let bytes = event.encode_to_vec();
    assert_eq!(e89::v2::Happened::decode(bytes.as_slice()).unwrap(), event);
    let mut json = Vec::new();
    <Json as Codec<e89::v2::Happened>>::encode(&event, e89::v2::Happened::SCHEMA, &mut json)
        .unwrap();
    let text = String::from_utf8(json.clone()).unwrap();
    for part in [
        r#""labels":{"-1":"minus one"}"#,
        r#""took":"0.250s""#,
        r#""note":"wrapped""#,
        r#""attachment":{"@type":"type.googleapis.com/corpus.common.c9.v1.Amount","currency":"JPY","minorUnits":"5"}"#,
        r#""mask":"id,lines""#,
        r#""extra":{"n":1.5}"#,
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
    let back = <Json as Codec<e89::v2::Happened>>::decode(
        ContentType::Json,
        e89::v2::Happened::SCHEMA,
        &json,
    );
    assert_eq!(back.unwrap(), event);
}

#[test]
fn corpus_events_carry_their_package_version() {
    assert_eq!(e89::v2::Happened::TOPIC, "events.e89.happened.v2");
    assert_eq!(e89::v2::Happened::VERSION, 2);
    assert_eq!(e88::v1::Happened::TOPIC, "events.e88.happened.v1");
    assert_eq!(
        corpus::events::e0::v1::Happened::SCHEMA,
        "events.e0.v1.Happened"
    );
}

#[tokio::test]
async fn a_corpus_event_travels_through_its_generated_stubs() {
    struct Forward(tokio::sync::mpsc::UnboundedSender<e89::v2::Happened>);
    impl e89::v2::Handler for Forward {
        async fn happened(
            &self,
            e: Received<e89::v2::Happened>,
        ) -> Result<(), tidings::HandlerError> {
            self.0
                .send(e.into_inner())
                .map_err(|_| "the test stopped")?;
            Ok(())
        }
    }
    let bus = Bus::memory();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let subscriptions = e89::v2::subscribe(&bus, Forward(tx), SubscribeOptions::default())
        .await
        .unwrap();
    e89::v2::Publisher::new(bus.clone())
        .happened(&happened())
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, happened());
    for s in subscriptions {
        s.shutdown().await;
    }
}
