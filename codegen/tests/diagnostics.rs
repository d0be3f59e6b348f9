//! Diagnostics for a folder of bad schemas: one of each mistake the generator must catch.

use tidings_codegen::{Error, Report, Severity, configure};

/// Relative, so the paths in the snapshot do not depend on where the repository is.
const BAD: &str = "tests/bad";

/// Each diagnostic of `report`, the check of `folder`: its severity, its file within the folder, its line and
/// its column.
fn places(report: &Report, folder: &str) -> Vec<(Severity, String, usize, usize)> {
    let prefix = format!("{folder}/");
    report
        .diagnostics
        .iter()
        .map(|d| {
            let at = d
                .location()
                .expect("every diagnostic here points into a file");
            let file = at.file().trim_start_matches(prefix.as_str()).to_owned();
            (d.severity(), file, at.line(), at.column())
        })
        .collect()
}

#[test]
fn bad_schemas_are_reported_with_file_line_column_and_source() {
    let report = configure().check(BAD).unwrap();
    insta::assert_snapshot!(report.diagnostics.to_string());
}

#[test]
fn each_mistake_is_found_where_it_is() {
    let report = configure().check(BAD).unwrap();
    let found = places(&report, BAD);
    let expected = [
        // protox's own errors come first: a syntax error, then an unknown import.
        (Severity::Error, "syntax_error.proto", 7, 3),
        (Severity::Error, "unknown_import.proto", 5, 1),
        // The same topic from two files, pointing at the second.
        (Severity::Error, "duplicate_b.proto", 9, 13),
        // An event option on a nested message, at the option.
        (Severity::Error, "nested_event.proto", 12, 5),
        // No package at all, at the `syntax` statement it would follow.
        (Severity::Error, "no_package.proto", 1, 1),
        // A package without a version suffix.
        (Severity::Error, "no_version.proto", 3, 1),
        // A topic whose version means the same major and stability as its package's but is
        // written otherwise, at the version.
        (Severity::Error, "point_release.proto", 9, 62),
        // Upper case in a topic option, at the offending letter.
        (Severity::Error, "upper_case.proto", 8, 45),
        // A wildcard in a topic, at the wildcard.
        (Severity::Error, "wildcard.proto", 8, 51),
        // A topic with another version than its package, at the version.
        (Severity::Error, "wrong_version.proto", 8, 59),
        // A message named like a generated item, a field and a message named by reserved
        // words, a message whose publisher method would be the publisher's constructor, an event
        // with no fields.
        (Severity::Error, "reserved.proto", 6, 9),
        (Severity::Warning, "reserved.proto", 13, 10),
        (Severity::Warning, "reserved.proto", 25, 9),
        (Severity::Error, "reserved.proto", 20, 9),
        (Severity::Warning, "reserved.proto", 17, 9),
        // A message name the topic convention does not give back.
        (Severity::Warning, "reserved.proto", 30, 9),
    ];
    let expected: Vec<(Severity, String, usize, usize)> = expected
        .iter()
        .map(|&(s, f, l, c)| (s, f.to_owned(), l, c))
        .collect();
    assert_eq!(found, expected);
    assert_eq!(report.diagnostics.error_count(), 12);
    assert_eq!(report.diagnostics.warning_count(), 4);
}

#[test]
fn generation_refuses_schemas_with_errors_and_says_why() {
    match configure().generate(BAD) {
        Err(Error::Schema(diagnostics)) => {
            assert_eq!(diagnostics.error_count(), 12);
            let text = format!("{:?}", Error::Schema(diagnostics));
            assert!(text.contains("tests/bad/wildcard.proto:8:51"), "{text}");
        }
        other => panic!("expected schema errors, got {other:?}"),
    }
}

#[test]
fn the_good_files_of_a_bad_folder_still_map_to_events() {
    let report = configure().check(BAD).unwrap();
    let topics: Vec<&str> = report.events.iter().map(|e| e.topic()).collect();
    assert_eq!(
        topics,
        [
            "events.refund.issued.v1",
            "events.support.handler.v1",
            "events.support.ticket_opened.v1",
            "events.support.pinged.v1",
            "events.support.new.v1",
            "events.support.self.v1",
            "events.support.http_request_sent.v1",
        ]
    );
}

/// Services with mistakes of every kind, apart from `BAD` so that its counts stay its own.
const BAD_SERVICES: &str = "tests/bad_services";

#[test]
fn bad_services_are_reported_with_file_line_column_and_source() {
    let report = configure().check(BAD_SERVICES).unwrap();
    insta::assert_snapshot!(report.diagnostics.to_string());
}

#[test]
fn each_service_mistake_is_found_where_it_is() {
    let report = configure().check(BAD_SERVICES).unwrap();
    let found = places(&report, BAD_SERVICES);
    let expected = [
        // A service without rpcs, at its name.
        (Severity::Warning, "names.proto", 25, 9),
        // A request that is a plain type, a reply from a package without a version, at each type.
        (Severity::Error, "not_an_event.proto", 17, 11),
        (Severity::Error, "not_an_event.proto", 17, 28),
        // Streaming either way, at the rpc.
        (Severity::Error, "streaming.proto", 14, 3),
        (Severity::Error, "streaming.proto", 15, 3),
        // A topic taken by an event, one taken by another rpc, one against the topic rule (at
        // the upper-case letter), one with another version (at the version).
        (Severity::Error, "topics.proto", 18, 38),
        (Severity::Error, "topics.proto", 23, 38),
        (Severity::Error, "topics.proto", 26, 52),
        (Severity::Error, "topics.proto", 29, 58),
        // A service in a package without a version, at its name.
        (Severity::Error, "unversioned.proto", 9, 9),
        // Names the generated items clash on, once the rpcs are mapped: two rpcs making one
        // operation type, a message named like a generated client, an rpc making the client's
        // `new`, two rpcs making one method.
        (Severity::Error, "names.proto", 20, 7),
        (Severity::Error, "names.proto", 16, 9),
        (Severity::Error, "names.proto", 17, 7),
        (Severity::Error, "names.proto", 20, 7),
    ];
    let expected: Vec<(Severity, String, usize, usize)> = expected
        .iter()
        .map(|&(s, f, l, c)| (s, f.to_owned(), l, c))
        .collect();
    assert_eq!(found, expected);
    // The rpcs whose only fault is the names of their generated items, and `Ledger.Book`, map.
    let rpcs: Vec<&str> = report.rpcs.iter().map(|r| r.name()).collect();
    assert_eq!(
        rpcs,
        [
            "events.names.v1.Pinger.New",
            "events.names.v1.Pinger.Send",
            "events.names.v1.Pinger.send",
            "events.ledger.v1.Ledger.Book",
        ]
    );
}
