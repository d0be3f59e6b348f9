//! How messages map to events: convention, options, field use, and the hooks for schema sets
//! that follow conventions of their own.

use std::path::Path;

use tidings_codegen::{Error, configure};

/// Writes `files` (name, content) under a fresh folder.
fn schemas(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    dir
}

fn topics(dir: &Path, builder: tidings_codegen::Builder) -> Vec<String> {
    let report = builder.check(dir).unwrap();
    assert!(!report.diagnostics.has_errors(), "{}", report.diagnostics);
    report.events.iter().map(|e| e.topic().to_owned()).collect()
}

#[test]
fn under_events_every_top_level_message_not_used_as_a_field_is_an_event() {
    let dir = schemas(&[(
        "order.proto",
        r#"syntax = "proto3";
        package events.order.v1;
        message LineItem { string sku = 1; }
        message OrderCreated { repeated LineItem lines = 1; Nested nested = 2; message Nested { string x = 1; } }
        message Shipped { string order_id = 1; }
        "#,
    )]);
    assert_eq!(
        topics(dir.path(), configure()),
        ["events.order.order_created.v1", "events.order.shipped.v1"]
    );
}

#[test]
fn outside_events_only_marked_messages_and_files_are_events() {
    let dir = schemas(&[
        (
            "billing.proto",
            r#"syntax = "proto3";
            package shop.billing.v2;
            import "tidings/options.proto";
            message Invoiced { option (tidings.event) = {}; string id = 1; }
            message Refunded { option (tidings.event) = { topic: "shop.billing.refund_issued.v2" }; string id = 1; }
            message Plain { string id = 1; }
            "#,
        ),
        (
            "audit.proto",
            r#"syntax = "proto3";
            package shop.audit.v1beta1;
            import "tidings/options.proto";
            option (tidings.file) = { events: true };
            message Entry { string who = 1; Detail detail = 2; }
            message Detail { string what = 1; }
            "#,
        ),
    ]);
    assert_eq!(
        topics(dir.path(), configure()),
        [
            "shop.audit.entry.v1beta1",
            "shop.billing.invoiced.v2",
            "shop.billing.refund_issued.v2"
        ]
    );
}

#[test]
fn a_marked_message_is_an_event_even_when_used_as_a_field() {
    let dir = schemas(&[(
        "a.proto",
        r#"syntax = "proto3";
        package events.stock.v1;
        import "tidings/options.proto";
        message Counted { option (tidings.event) = {}; string sku = 1; }
        message Audited { Counted counted = 1; }
        "#,
    )]);
    assert_eq!(
        topics(dir.path(), configure()),
        ["events.stock.counted.v1", "events.stock.audited.v1"]
    );
}

const CLOUDEVENTS: &str = r#"syntax = "proto3";
package acme.orders.v1;
import "acme/options.proto";
message OrderPlaced {
  option (acme.cloudevent_type) = "com.acme.orders.placed";
  string id = 1;
}
message OrderShipped {
  option (acme.meta) = { type: "com.acme.orders.shipped" };
  string id = 1;
}
message Address { string city = 1; }
"#;

const ACME_OPTIONS: &str = r#"syntax = "proto3";
package acme;
import "google/protobuf/descriptor.proto";
message Meta { string type = 1; }
extend google.protobuf.MessageOptions {
  string cloudevent_type = 50001;
  Meta meta = 50002;
}
"#;

/// Reads topics from `acme.cloudevent_type` (declared under `includes`), whose CloudEvents type
/// names carry no version: the naming function turns them into topics.
fn acme_types_to_topics(includes: &Path) -> tidings_codegen::Builder {
    configure()
        .include(includes)
        .topic_option("acme.cloudevent_type")
        .topic_fn(|m| {
            let declared = m.declared_topic()?;
            Some(format!(
                "events.{}.{}",
                declared.trim_start_matches("com.acme."),
                m.version()
            ))
        })
}

#[test]
fn topics_can_come_from_a_custom_option_mapped_by_a_naming_function() {
    let dir = schemas(&[("orders.proto", CLOUDEVENTS)]);
    let includes = schemas(&[("acme/options.proto", ACME_OPTIONS)]);
    let builder = acme_types_to_topics(includes.path());
    assert_eq!(topics(dir.path(), builder), ["events.orders.placed.v1"]);
}

#[test]
fn a_custom_option_may_be_a_field_of_a_message_option() {
    let dir = schemas(&[("orders.proto", CLOUDEVENTS)]);
    let includes = schemas(&[("acme/options.proto", ACME_OPTIONS)]);
    let builder = configure()
        .include(includes.path())
        .topic_option("acme.meta.type");
    let report = builder.check(dir.path()).unwrap();
    // Read as is, the type name is no topic: it is checked like any other.
    let messages: Vec<&str> = report.diagnostics.iter().map(|d| d.message()).collect();
    assert_eq!(
        messages,
        [
            "topic `com.acme.orders.shipped` of `acme.orders.v1.OrderShipped` breaks the topic rule: the last segment (byte 16) must be a version such as `v1` or `v2beta1`: a version starts with a lowercase `v`"
        ]
    );
    let at = report
        .diagnostics
        .iter()
        .next()
        .unwrap()
        .location()
        .unwrap();
    assert_eq!((at.line(), at.column()), (9, 49));
}

#[test]
fn an_unknown_custom_option_is_refused() {
    let dir = schemas(&[("orders.proto", CLOUDEVENTS)]);
    let includes = schemas(&[("acme/options.proto", ACME_OPTIONS)]);
    let err = configure()
        .include(includes.path())
        .topic_option("acme.nothing")
        .check(dir.path())
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownTopicOption { ref name } if name == "acme.nothing"),
        "{err}"
    );
}

#[test]
fn a_naming_function_can_name_every_message_or_none() {
    let dir = schemas(&[(
        "a.proto",
        r#"syntax = "proto3";
        package events.cart.v3;
        message ItemAdded { string sku = 1; }
        message Internal { string x = 1; }
        "#,
    )]);
    let builder = configure().topic_fn(|m| {
        (m.name() != "Internal").then(|| {
            format!(
                "shop.cart.{}.added.{}",
                m.name().to_lowercase(),
                m.version()
            )
        })
    });
    assert_eq!(
        topics(dir.path(), builder),
        ["shop.cart.itemadded.added.v3"]
    );

    let builder = configure().topic_fn(|m| m.topic().map(|t| t.replace("events.", "bad topic.")));
    let report = builder.check(dir.path()).unwrap();
    assert_eq!(report.diagnostics.error_count(), 2);
    let first = report.diagnostics.iter().next().unwrap();
    assert!(
        first
            .message()
            .starts_with("topic from the naming function `bad topic.cart.item_added.v3`"),
        "{first}"
    );
}

#[test]
fn imports_from_include_paths_get_types_but_never_events() {
    let dir = schemas(&[(
        "a.proto",
        r#"syntax = "proto3";
        package events.user.v1;
        import "common/v1/ids.proto";
        message Registered { common.v1.UserId id = 1; }
        "#,
    )]);
    let includes = schemas(&[(
        "common/v1/ids.proto",
        r#"syntax = "proto3"; package common.v1; message UserId { string value = 1; } message Unused { }"#,
    )]);
    let generated = configure()
        .include(includes.path())
        .generate(dir.path())
        .unwrap();
    let topics: Vec<&str> = generated.events().iter().map(|e| e.topic()).collect();
    assert_eq!(topics, ["events.user.registered.v1"]);
    let names: Vec<&str> = generated.files().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "common.v1.rs",
            "descriptors.bin",
            "events.user.v1.rs",
            "mod.rs"
        ]
    );
}

#[test]
fn a_copy_of_the_bundled_options_in_the_folder_is_not_a_schema() {
    let options = include_str!("../proto/tidings/options.proto");
    let dir = schemas(&[
        ("tidings/options.proto", options),
        (
            "a.proto",
            r#"syntax = "proto3"; package events.a.v1; import "tidings/options.proto";
            message B { option (tidings.event) = { topic: "events.a.bee.v1" }; string x = 1; }"#,
        ),
    ]);
    assert_eq!(topics(dir.path(), configure()), ["events.a.bee.v1"]);
}

#[test]
fn a_folder_without_schemas_is_a_usage_error() {
    let dir = schemas(&[("README.md", "no schemas here")]);
    assert!(matches!(
        configure().check(dir.path()),
        Err(Error::NoSchemas { .. })
    ));
    assert!(matches!(
        configure().check(dir.path().join("missing")),
        Err(Error::ReadDir { .. })
    ));
}

#[test]
fn the_runtime_path_can_be_renamed() {
    let dir = schemas(&[(
        "a.proto",
        "syntax = \"proto3\"; package events.a.v1; message Done { string id = 1; }",
    )]);
    let generated = configure()
        .runtime_path("::my_tidings")
        .generate(dir.path())
        .unwrap();
    let (_, code) = generated
        .files()
        .find(|(n, _)| *n == "events.a.v1.rs")
        .unwrap();
    let code = std::str::from_utf8(code).unwrap();
    assert!(code.contains("#[derive(::my_tidings::Event)]"));
    assert!(code.contains("crate = \"::my_tidings\""));
    assert!(!code.contains("::tidings::"), "{code}");
}

/// Each event of `report` as (topic, CloudEvents type).
fn topics_and_types(report: &tidings_codegen::Report) -> Vec<(&str, &str)> {
    report
        .events
        .iter()
        .map(|e| (e.topic(), e.event_type()))
        .collect()
}

/// An event named by its producer, and one whose type is its topic.
const STORAGE: &str = r#"syntax = "proto3";
package storage.object.v1;
import "tidings/options.proto";
message Finalized {
  option (tidings.event) = {
    topic: "storage.object.finalized.v1"
    type: "com.example.storage.object.v1.finalized"
  };
  string name = 1;
}
message Archived {
  option (tidings.event) = { topic: "storage.object.archived.v1" };
  string name = 1;
}
"#;

#[test]
fn an_event_can_travel_with_a_cloudevents_type_of_its_own() {
    let dir = schemas(&[
        ("storage.proto", STORAGE),
        (
            "deleted.proto",
            r#"syntax = "proto3";
            package storage.object.v1;
            import "tidings/options.proto";
            message Deleted {
              option (tidings.event) = { topic: "storage.object.deleted.v1" type: "bad\ttype" };
              string name = 1;
            }
            "#,
        ),
    ]);
    let report = configure().check(dir.path()).unwrap();
    let shown = report.diagnostics.to_string();
    assert!(
        shown.contains("the CloudEvents type \"bad\\ttype\" of `storage.object.v1.Deleted`"),
        "{shown}"
    );
    let types = topics_and_types(&report);
    assert_eq!(
        types,
        [
            (
                "storage.object.finalized.v1",
                "com.example.storage.object.v1.finalized"
            ),
            ("storage.object.archived.v1", "storage.object.archived.v1"),
        ]
    );
}

#[test]
fn a_custom_options_value_stays_the_type_when_a_naming_function_gives_the_topic() {
    let dir = schemas(&[("orders.proto", CLOUDEVENTS)]);
    let includes = schemas(&[("acme/options.proto", ACME_OPTIONS)]);
    let builder = acme_types_to_topics(includes.path());
    let report = builder.check(dir.path()).unwrap();
    assert!(!report.diagnostics.has_errors(), "{}", report.diagnostics);
    let types = topics_and_types(&report);
    assert_eq!(
        types,
        [("events.orders.placed.v1", "com.acme.orders.placed")]
    );
}

#[test]
fn the_generated_event_carries_its_type() {
    let dir = schemas(&[("storage.proto", STORAGE)]);
    let generated = configure().generate(dir.path()).unwrap();
    let code: String = generated
        .files()
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
        .collect();
    assert!(
        code.contains(
            r#"#[event(topic = "storage.object.finalized.v1", type = "com.example.storage.object.v1.finalized", schema = "storage.object.v1.Finalized""#
        ),
        "{code}"
    );
    assert!(
        code.contains(r#"#[event(topic = "storage.object.archived.v1", schema = "#),
        "an event whose type is its topic says nothing more: {code}"
    );

    // AsyncAPI keeps the topic as the channel and says the type the messages carry.
    let document: serde_json::Value =
        serde_json::from_str(&configure().asyncapi(dir.path(), "storage", "1").unwrap()).unwrap();
    let headers = &document["components"]["messages"]["storage.object.v1.Finalized"]["headers"];
    assert_eq!(
        headers["properties"]["type"]["const"],
        "com.example.storage.object.v1.finalized"
    );
    assert!(document["channels"]["storage.object.finalized.v1"].is_object());

    // The catalog page shows both.
    let page = configure().docs(dir.path(), "storage").unwrap();
    assert!(
        page.contains("<dt>Type</dt><dd><code>com.example.storage.object.v1.finalized</code></dd>"),
        "{page}"
    );
}

#[test]
fn option_files_and_shared_types_need_no_version_but_event_packages_do() {
    let dir = schemas(&[
        (
            "com/example/options.proto",
            r#"syntax = "proto3";
            package com.example.options;
            import "google/protobuf/descriptor.proto";
            extend google.protobuf.MessageOptions { string event_type = 50100; }
            "#,
        ),
        (
            "com/example/common.proto",
            r#"syntax = "proto3";
            package com.example.common;
            message Bucket { string name = 1; }
            "#,
        ),
        (
            "com/example/storage/v1/events.proto",
            r#"syntax = "proto3";
            package com.example.storage.v1;
            import "com/example/common.proto";
            import "tidings/options.proto";
            message ObjectFinalized {
              option (tidings.event) = { topic: "storage.object.finalized.v1" };
              com.example.common.Bucket bucket = 1;
            }
            "#,
        ),
    ]);
    assert_eq!(
        topics(dir.path(), configure()),
        ["storage.object.finalized.v1"]
    );
    assert!(configure().generate(dir.path()).is_ok());

    // A package that holds an event still needs its version.
    let unversioned = schemas(&[(
        "events.proto",
        r#"syntax = "proto3";
        package com.example.storage;
        import "tidings/options.proto";
        message ObjectDeleted {
          option (tidings.event) = { topic: "storage.object.deleted.v1" };
          string name = 1;
        }
        "#,
    )]);
    let report = configure().check(unversioned.path()).unwrap();
    assert!(
        report
            .diagnostics
            .to_string()
            .contains("package `com.example.storage` does not end in a version"),
        "{}",
        report.diagnostics
    );
}

/// Wrappers whose one field is the payload that travels, declared by option: two events share
/// one payload type, declared in a package of shared types.
const WRAPPERS: &str = r#"syntax = "proto3";
package com.example.storage.v1;
import "com/example/common.proto";
import "tidings/options.proto";
message ObjectFinalizedEvent {
  option (tidings.event) = {
    topic: "storage.object.finalized.v1"
    type: "com.example.storage.object.v1.finalized"
    payload: "data"
  };
  com.example.common.StorageObject data = 1;
}
message ObjectDeletedEvent {
  option (tidings.event) = { topic: "storage.object.deleted.v1" payload: "data" };
  com.example.common.StorageObject data = 1;
}
"#;

const SHARED: &str = r#"syntax = "proto3";
package com.example.common;
message StorageObject { string name = 1; int64 size = 2; }
"#;

#[test]
fn a_wrapper_names_the_payload_that_travels() {
    let dir = schemas(&[
        ("com/example/storage/v1/events.proto", WRAPPERS),
        ("com/example/common.proto", SHARED),
    ]);
    let report = configure().check(dir.path()).unwrap();
    assert!(!report.diagnostics.has_errors(), "{}", report.diagnostics);
    let payloads: Vec<_> = report
        .events
        .iter()
        .map(|e| (e.schema(), e.payload(), e.data_schema()))
        .collect();
    assert_eq!(
        payloads,
        [
            (
                "com.example.storage.v1.ObjectFinalizedEvent",
                Some("com.example.common.StorageObject"),
                "com.example.common.StorageObject"
            ),
            (
                "com.example.storage.v1.ObjectDeletedEvent",
                Some("com.example.common.StorageObject"),
                "com.example.common.StorageObject"
            ),
        ]
    );

    // The generated wrappers send the payload, and their handlers receive it; the payload's
    // JSON form is implemented once, in its own package, though two events carry it.
    let generated = configure().generate(dir.path()).unwrap();
    let file = |name: &str| {
        let (_, bytes) = generated
            .files()
            .find(|(path, _)| path.ends_with(name))
            .unwrap_or_else(|| panic!("no file {name}"));
        String::from_utf8(bytes.to_vec()).unwrap()
    };
    insta::assert_snapshot!(
        "wrapper_events.com.example.storage.v1.rs",
        file("com.example.storage.v1.rs")
    );
    insta::assert_snapshot!(
        "wrapper_payload.com.example.common.rs",
        file("com.example.common.rs")
    );

    // AsyncAPI describes the payload as what the messages carry; the catalog names it.
    let document: serde_json::Value =
        serde_json::from_str(&configure().asyncapi(dir.path(), "storage", "1").unwrap()).unwrap();
    let message =
        &document["components"]["messages"]["com.example.storage.v1.ObjectFinalizedEvent"];
    assert_eq!(
        message["payload"]["$ref"],
        "#/components/schemas/com.example.common.StorageObject"
    );
    assert_eq!(
        message["headers"]["properties"]["dataschema"]["const"],
        "proto:com.example.common.StorageObject"
    );
    let page = configure().docs(dir.path(), "storage").unwrap();
    assert!(
        page.contains("<dt>Payload</dt><dd><code>com.example.common.StorageObject</code></dd>"),
        "{page}"
    );
}

#[test]
fn a_payload_is_a_wrappers_only_field_and_a_message() {
    let cases = [
        (
            "message Missing { option (tidings.event) = { payload: \"data\" }; string name = 1; }",
            "`com.example.storage.v1.Missing` has no field `data` to carry its payload",
        ),
        (
            "message Scalar { option (tidings.event) = { payload: \"data\" }; string data = 1; }",
            "the payload field `data` of `com.example.storage.v1.Scalar` is not a single message",
        ),
        (
            "message Listed { option (tidings.event) = { payload: \"data\" }; repeated com.example.common.StorageObject data = 1; }",
            "the payload field `data` of `com.example.storage.v1.Listed` is not a single message",
        ),
        (
            "message Crowded { option (tidings.event) = { payload: \"data\" }; com.example.common.StorageObject data = 1; string note = 2; }",
            "`com.example.storage.v1.Crowded` wraps its payload `data` beside other fields, which would never travel",
        ),
    ];
    for (message, expected) in cases {
        let events = format!(
            "syntax = \"proto3\";\npackage com.example.storage.v1;\nimport \"com/example/common.proto\";\nimport \"tidings/options.proto\";\n{message}\n"
        );
        let dir = schemas(&[
            ("com/example/storage/v1/events.proto", &events),
            ("com/example/common.proto", SHARED),
        ]);
        let report = configure().check(dir.path()).unwrap();
        let shown = report.diagnostics.to_string();
        assert!(shown.contains(expected), "{shown}");
        assert!(
            shown.contains("events.proto:5:"),
            "pointed at the option: {shown}"
        );
        assert!(report.events.is_empty(), "{:?}", report.events);
    }
}

#[test]
fn a_naming_function_can_say_which_field_is_the_payload() {
    let dir = schemas(&[
        (
            "com/example/storage/v1/events.proto",
            r#"syntax = "proto3";
            package com.example.storage.v1;
            import "com/example/common.proto";
            message ObjectFinalized { com.example.common.StorageObject data = 1; }
            message ObjectCounted { int64 count = 1; }
            "#,
        ),
        ("com/example/common.proto", SHARED),
    ]);
    let report = configure()
        .topic_fn(|candidate| {
            Some(format!(
                "storage.{}.{}",
                candidate.default_topic().split('.').nth(3)?,
                candidate.version()
            ))
        })
        .payload_fn(|candidate| candidate.fields().eq(["data"]).then(|| "data".to_owned()))
        .check(dir.path())
        .unwrap();
    assert!(!report.diagnostics.has_errors(), "{}", report.diagnostics);
    let payloads: Vec<_> = report
        .events
        .iter()
        .map(|e| (e.topic(), e.payload()))
        .collect();
    assert_eq!(
        payloads,
        [
            (
                "storage.object_finalized.v1",
                Some("com.example.common.StorageObject")
            ),
            ("storage.object_counted.v1", None),
        ]
    );
}
