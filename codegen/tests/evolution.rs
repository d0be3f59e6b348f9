//! The schema evolution guard: every breaking-change rule refuses its change with its rule id,
//! at the place in the new schema, and accepts the compatible twin of that change.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;
use tidings_codegen::{Breaking, Builder, Diagnostic, Diagnostics, LOCK_FILE, Lock, Severity};

const FILE: &str = "events/shop/v1/shop.proto";

/// The schema every case starts from: four events, a message and an enum they use, a oneof,
/// reservations and a service.
const BASE: &str = r#"syntax = "proto3";

package events.shop.v1;

import "tidings/options.proto";

enum Tier {
  TIER_UNSPECIFIED = 0;
  TIER_GOLD = 1;
  TIER_SILVER = 2;
}

message Item {
  string sku = 1;
  uint32 quantity = 2;
}

message Placed {
  string order_id = 1;
  int32 count = 2;
  repeated Item items = 3;
  Tier tier = 4;
  oneof payment {
    string card = 5;
    string iban = 6;
  }
  string note = 7;
  reserved 9;
  reserved "legacy";
}

message Refunded {
  string order_id = 1;
}

message Restocked {
  Item item = 1;
}

message Confirmed {
  string order_id = 1;
}

service Orders {
  rpc Confirm(Placed) returns (Confirmed);
}
"#;

/// One rule: a change it refuses and a compatible change it accepts, each an edit of [`BASE`].
struct Case {
    rule: &'static str,
    /// (text of BASE, replacement) making the breaking change.
    breaking: (&'static str, &'static str),
    /// Where the diagnostic points: the first occurrence of this text in the changed schema.
    at: &'static str,
    /// (text of BASE, replacement) making the compatible twin.
    compatible: (&'static str, &'static str),
}

const CASES: &[Case] = &[
    Case {
        rule: "FIELD_NO_DELETE_UNLESS_RESERVED",
        breaking: ("  string note = 7;\n", ""),
        at: "Placed {",
        compatible: (
            "  string note = 7;\n",
            "  reserved 7;\n  reserved \"note\";\n",
        ),
    },
    Case {
        // Renumbering is deleting the old number.
        rule: "FIELD_NO_DELETE_UNLESS_RESERVED",
        breaking: ("string note = 7;", "string note = 8;"),
        at: "string note = 8;",
        compatible: ("string note = 7;", "string note = 7;\n  string remark = 8;"),
    },
    Case {
        rule: "FIELD_SAME_NAME",
        breaking: (
            "  string order_id = 1;\n  int32",
            "  string id = 1;\n  int32",
        ),
        at: "id = 1;\n  int32",
        compatible: ("string note = 7;", "string note = 7;\n  string id = 8;"),
    },
    Case {
        rule: "FIELD_SAME_JSON_NAME",
        breaking: (
            "string note = 7;",
            "string note = 7 [json_name = \"remark\"];",
        ),
        at: "string note = 7",
        compatible: (
            "string note = 7;",
            "string note = 7 [json_name = \"note\"];",
        ),
    },
    Case {
        rule: "FIELD_WIRE_JSON_COMPATIBLE_TYPE",
        breaking: ("int32 count = 2;", "int64 count = 2;"),
        at: "int64 count",
        compatible: ("int32 count = 2;", "uint32 count = 2;"),
    },
    Case {
        // An enum is written by name in JSON, an integer by number.
        rule: "FIELD_WIRE_JSON_COMPATIBLE_TYPE",
        breaking: ("Tier tier = 4;", "int32 tier = 4;"),
        at: "int32 tier",
        compatible: ("Tier tier = 4;", "Tier tier = 4;\n  int32 tier_number = 8;"),
    },
    Case {
        // A type used by an event is held to the same rules.
        rule: "FIELD_WIRE_JSON_COMPATIBLE_TYPE",
        breaking: ("uint32 quantity = 2;", "string quantity = 2;"),
        at: "string quantity",
        compatible: ("uint32 quantity = 2;", "int32 quantity = 2;"),
    },
    Case {
        rule: "FIELD_SAME_LABEL",
        breaking: ("repeated Item items = 3;", "Item items = 3;"),
        at: "Item items = 3;",
        // Presence is not part of the binary or JSON form.
        compatible: ("string note = 7;", "optional string note = 7;"),
    },
    Case {
        rule: "FIELD_SAME_ONEOF",
        breaking: ("    string iban = 6;\n  }\n", "  }\n  string iban = 6;\n"),
        at: "string iban = 6;",
        compatible: (
            "    string iban = 6;\n",
            "    string iban = 6;\n    string wallet = 8;\n",
        ),
    },
    Case {
        // Into a oneof: setting another member of it now clears the field.
        rule: "FIELD_SAME_ONEOF",
        breaking: (
            "    string iban = 6;\n  }\n  string note = 7;\n",
            "    string iban = 6;\n    string note = 7;\n  }\n",
        ),
        at: "string note = 7;",
        compatible: (
            "    string iban = 6;\n  }\n",
            "    string iban = 6;\n    string voucher = 8;\n  }\n",
        ),
    },
    Case {
        rule: "ENUM_VALUE_NO_DELETE_UNLESS_RESERVED",
        breaking: ("  TIER_SILVER = 2;\n", ""),
        at: "Tier {",
        compatible: (
            "  TIER_SILVER = 2;\n",
            "  reserved 2;\n  reserved \"TIER_SILVER\";\n",
        ),
    },
    Case {
        rule: "ENUM_VALUE_SAME_NAME",
        breaking: ("TIER_GOLD = 1;", "TIER_GOLDEN = 1;"),
        at: "TIER_GOLDEN = 1;",
        // An alias keeps the old name readable.
        compatible: (
            "  TIER_GOLD = 1;\n",
            "  option allow_alias = true;\n  TIER_GOLD = 1;\n  TIER_GOLDEN = 1;\n",
        ),
    },
    Case {
        rule: "RESERVED_NO_DELETE",
        breaking: ("  reserved \"legacy\";\n", ""),
        at: "Placed {",
        compatible: ("  reserved 9;\n", "  reserved 9 to 12;\n"),
    },
    Case {
        rule: "EVENT_NO_DELETE",
        breaking: ("message Refunded {\n  string order_id = 1;\n}\n", ""),
        at: "package events.shop.v1;",
        // Declaring the topic it already had changes nothing.
        compatible: (
            "message Refunded {\n",
            "message Refunded {\n  option (tidings.event) = { topic: \"events.shop.refunded.v1\" };\n",
        ),
    },
    Case {
        // Renaming the message of an event renames its schema, which messages carry.
        rule: "EVENT_NO_DELETE",
        breaking: (
            "message Refunded {\n",
            "message MoneyReturned {\n  option (tidings.event) = { topic: \"events.shop.refunded.v1\" };\n",
        ),
        at: "events.shop.refunded.v1\"",
        compatible: (
            "message Refunded {",
            "message Shipped {\n  string order_id = 1;\n}\n\nmessage Refunded {",
        ),
    },
    Case {
        rule: "EVENT_SAME_TOPIC",
        breaking: (
            "message Refunded {\n",
            "message Refunded {\n  option (tidings.event) = { topic: \"events.shop.money_back.v1\" };\n",
        ),
        at: "events.shop.money_back.v1\"",
        compatible: (
            "message Refunded {\n  string order_id = 1;\n}\n",
            "message Refunded {\n  string order_id = 1;\n}\n\nmessage MoneyBack {\n  option (tidings.event) = { topic: \"events.shop.money_back.v1\" };\n  string order_id = 1;\n}\n",
        ),
    },
    Case {
        // Subscribers match on the type.
        rule: "EVENT_SAME_TYPE",
        breaking: (
            "message Refunded {\n",
            "message Refunded {\n  option (tidings.event) = { type: \"com.example.shop.v1.refunded\" };\n",
        ),
        at: "Refunded {",
        // Writing the type it already had, its topic, changes nothing.
        compatible: (
            "message Refunded {\n",
            "message Refunded {\n  option (tidings.event) = { type: \"events.shop.refunded.v1\" };\n",
        ),
    },
    Case {
        // The data would be the item alone, not the message around it.
        rule: "EVENT_SAME_PAYLOAD",
        breaking: (
            "message Restocked {\n",
            "message Restocked {\n  option (tidings.event) = { payload: \"item\" };\n",
        ),
        at: "Restocked {",
        compatible: (
            "message Restocked {\n",
            "message Restocked {\n  option (tidings.event) = { topic: \"events.shop.restocked.v1\" };\n",
        ),
    },
    Case {
        rule: "RPC_NO_DELETE",
        breaking: ("  rpc Confirm(Placed) returns (Confirmed);\n", ""),
        at: "Orders {",
        // Adding an rpc is compatible.
        compatible: (
            "  rpc Confirm(Placed) returns (Confirmed);\n",
            "  rpc Confirm(Placed) returns (Confirmed);\n  rpc Cancel(Placed) returns (Refunded);\n",
        ),
    },
    Case {
        rule: "RPC_SAME_REQUEST",
        breaking: ("rpc Confirm(Placed)", "rpc Confirm(Refunded)"),
        at: "Refunded) returns",
        // The same type, spelled in full.
        compatible: ("rpc Confirm(Placed)", "rpc Confirm(events.shop.v1.Placed)"),
    },
    Case {
        rule: "RPC_SAME_REPLY",
        breaking: ("returns (Confirmed);", "returns (Refunded);"),
        at: "Refunded);",
        compatible: (
            "returns (Confirmed);",
            "returns (.events.shop.v1.Confirmed);",
        ),
    },
    Case {
        rule: "RPC_SAME_TOPIC",
        breaking: (
            "returns (Confirmed);",
            "returns (Confirmed) {\n    option (tidings.rpc) = { topic: \"events.shop.confirmations.confirm.v1\" };\n  }",
        ),
        at: "events.shop.confirmations.confirm.v1\"",
        // Declaring the topic it already had changes nothing.
        compatible: (
            "returns (Confirmed);",
            "returns (Confirmed) {\n    option (tidings.rpc) = { topic: \"events.shop.orders.confirm.v1\" };\n  }",
        ),
    },
];

/// Every rule the guard has.
const RULES: &[&str] = &[
    "EVENT_NO_DELETE",
    "EVENT_SAME_TOPIC",
    "EVENT_SAME_TYPE",
    "EVENT_SAME_PAYLOAD",
    "FIELD_NO_DELETE_UNLESS_RESERVED",
    "FIELD_SAME_NAME",
    "FIELD_SAME_JSON_NAME",
    "FIELD_WIRE_JSON_COMPATIBLE_TYPE",
    "FIELD_SAME_LABEL",
    "FIELD_SAME_ONEOF",
    "ENUM_VALUE_NO_DELETE_UNLESS_RESERVED",
    "ENUM_VALUE_SAME_NAME",
    "RESERVED_NO_DELETE",
    "RPC_NO_DELETE",
    "RPC_SAME_REQUEST",
    "RPC_SAME_REPLY",
    "RPC_SAME_TOPIC",
];

fn edit(text: &str, (from, to): (&str, &str)) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "`{from}` must occur once in the schema"
    );
    text.replacen(from, to, 1)
}

fn write(dir: &Path, text: &str) {
    let path = dir.join(FILE);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Locks `before` in a fresh folder, then checks `after` against the lock.
fn check_against_lock(before: &str, after: &str, builder: Builder) -> (Diagnostics, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), before);
    let locked = tidings_codegen::configure().lock(dir.path()).unwrap();
    assert!(locked.lock.write(dir.path()).unwrap());
    write(dir.path(), after);
    let report = builder.check(dir.path()).unwrap();
    (report.diagnostics, dir)
}

fn errors(diagnostics: &Diagnostics) -> Vec<&Diagnostic> {
    diagnostics
        .iter()
        .filter(|d| d.severity() == Severity::Error)
        .collect()
}

/// The 1-based line and column of the first occurrence of `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` is not in the schema"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[test]
fn every_rule_refuses_its_breaking_change_and_accepts_its_compatible_twin() {
    let mut covered: Vec<&str> = Vec::new();
    for case in CASES {
        let broken = edit(BASE, case.breaking);
        let (diagnostics, dir) = check_against_lock(BASE, &broken, tidings_codegen::configure());
        let found = errors(&diagnostics);
        assert_eq!(
            found.len(),
            1,
            "{}: expected one error, got:\n{diagnostics}",
            case.rule
        );
        let d = found[0];
        assert!(
            d.message().ends_with(&format!("[{}]", case.rule)),
            "{}: wrong rule:\n{d}",
            case.rule
        );
        let at = d
            .location()
            .unwrap_or_else(|| panic!("{}: no location:\n{d}", case.rule));
        assert_eq!(
            Path::new(at.file()),
            dir.path().join(FILE),
            "{}:\n{d}",
            case.rule
        );
        assert_eq!(
            (at.line(), at.column()),
            position(&broken, case.at),
            "{}: wrong place:\n{d}",
            case.rule
        );
        assert!(
            d.to_string().contains("new major"),
            "{}: no advice:\n{d}",
            case.rule
        );

        let twin = edit(BASE, case.compatible);
        let (diagnostics, _) = check_against_lock(BASE, &twin, tidings_codegen::configure());
        assert!(
            !diagnostics.has_errors(),
            "{}: the compatible twin was refused:\n{diagnostics}",
            case.rule
        );
        covered.push(case.rule);
    }
    for rule in RULES {
        assert!(covered.contains(rule), "no case for {rule}");
    }
}

#[test]
fn breaking_changes_render_as_compiler_diagnostics() {
    let broken = edit(
        &edit(BASE, ("string note = 7;", "optional int64 note = 7;")),
        ("  TIER_SILVER = 2;\n", ""),
    );
    let (diagnostics, dir) = check_against_lock(BASE, &broken, tidings_codegen::configure());
    let text = diagnostics
        .to_string()
        .replace(&format!("{}/", dir.path().display()), "$DIR/");
    insta::assert_snapshot!(text);
}

#[test]
fn a_changed_rpc_request_renders_as_a_compiler_diagnostic() {
    let broken = edit(BASE, ("rpc Confirm(Placed)", "rpc Confirm(Refunded)"));
    let (diagnostics, dir) = check_against_lock(BASE, &broken, tidings_codegen::configure());
    let text = diagnostics
        .to_string()
        .replace(&format!("{}/", dir.path().display()), "$DIR/");
    insta::assert_snapshot!(text);
}

#[test]
fn additive_changes_pass_and_lock_records_them() {
    let grown = edit(
        &edit(
            BASE,
            ("string note = 7;", "string note = 7;\n  Item gift = 8;"),
        ),
        (
            "  TIER_SILVER = 2;\n",
            "  TIER_SILVER = 2;\n  TIER_BRONZE = 3;\n",
        ),
    );
    let (diagnostics, dir) = check_against_lock(BASE, &grown, tidings_codegen::configure());
    assert!(diagnostics.is_empty(), "{diagnostics}");

    let dir = dir.path();
    let locked = tidings_codegen::configure().lock(dir).unwrap();
    assert!(locked.lock.write(dir).unwrap(), "the lock did not change");
    let text = std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap();
    assert!(text.contains(r#""name": "gift""#), "{text}");
    assert!(text.contains(r#""name": "TIER_BRONZE""#), "{text}");
    // Writing the same lock again leaves the file alone.
    assert!(!locked.lock.write(dir).unwrap());
    assert_eq!(Lock::parse(&text).unwrap(), locked.lock);

    // Removing the new field again is now a breaking change.
    write(dir, BASE);
    let report = tidings_codegen::configure().check(dir).unwrap();
    assert_eq!(
        errors(&report.diagnostics).len(),
        2,
        "{}",
        report.diagnostics
    );
}

#[test]
fn warn_mode_reports_breaking_changes_as_warnings_and_still_generates() {
    let broken = edit(BASE, ("int32 count = 2;", "string count = 2;"));
    let (_, dir) = check_against_lock(BASE, &broken, tidings_codegen::configure());
    let dir = dir.path();
    let report = tidings_codegen::configure()
        .breaking(Breaking::Warn)
        .check(dir)
        .unwrap();
    assert!(!report.diagnostics.has_errors(), "{}", report.diagnostics);
    assert_eq!(
        report.diagnostics.warning_count(),
        1,
        "{}",
        report.diagnostics
    );
    let generated = tidings_codegen::configure()
        .breaking(Breaking::Warn)
        .generate(dir)
        .unwrap();
    assert!(
        generated
            .warnings()
            .iter()
            .any(|w| w.message().ends_with("[FIELD_WIRE_JSON_COMPATIBLE_TYPE]"))
    );
    // Failing is the default, for generating too.
    let error = tidings_codegen::configure().generate(dir).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("[FIELD_WIRE_JSON_COMPATIBLE_TYPE]"),
        "{error}"
    );
}

#[test]
fn a_damaged_lock_is_reported_where_it_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), BASE);
    std::fs::write(
        dir.path().join(LOCK_FILE),
        "{\n  \"tidings_lock\": 1,\n  \"events\": {\n    \"x\": {\"topic\": 3}\n  }\n}\n",
    )
    .unwrap();
    let report = tidings_codegen::configure().check(dir.path()).unwrap();
    let found = errors(&report.diagnostics);
    assert_eq!(found.len(), 1, "{}", report.diagnostics);
    let at = found[0].location().expect("a place in the lock");
    assert!(at.file().ends_with(LOCK_FILE), "{}", found[0]);
    assert_eq!(at.line(), 4, "{}", found[0]);
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

#[test]
fn against_a_git_revision_compares_with_the_schemas_committed_there() {
    let repo = tempfile::tempdir().unwrap();
    let schemas = repo.path().join("proto");
    write(&schemas, BASE);
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "schemas"]);

    write(
        &schemas,
        &edit(BASE, ("repeated Item items = 3;", "Item items = 3;")),
    );
    // No lock: nothing to compare with.
    let report = tidings_codegen::configure().check(&schemas).unwrap();
    assert!(!report.diagnostics.has_errors(), "{}", report.diagnostics);
    // Against the commit: the change is refused, and shown in the schema of the work tree.
    let report = tidings_codegen::configure()
        .against_revision("HEAD")
        .check(&schemas)
        .unwrap();
    let found = errors(&report.diagnostics);
    assert_eq!(found.len(), 1, "{}", report.diagnostics);
    assert!(
        found[0].message().ends_with("[FIELD_SAME_LABEL]"),
        "{}",
        found[0]
    );
    assert_eq!(
        Path::new(found[0].location().unwrap().file()),
        schemas.join(FILE)
    );
    // The same through the CLI's flag: `tidings-cli`'s tests.

    // A folder that did not exist at the revision has nothing to break.
    let other = repo.path().join("later");
    write(&other, BASE);
    let report = tidings_codegen::configure()
        .against_revision("HEAD")
        .check(&other)
        .unwrap();
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);

    let error = tidings_codegen::configure()
        .against_revision("no-such-branch")
        .check(&schemas)
        .unwrap_err();
    assert!(error.to_string().contains("no-such-branch"), "{error}");
}

#[test]
fn the_example_schemas_lock_is_up_to_date() {
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let locked = tidings_codegen::configure().lock(&schemas).unwrap();
    let committed = std::fs::read_to_string(schemas.join(LOCK_FILE)).unwrap();
    assert!(
        locked.lock.to_text() == committed,
        "schemas/{LOCK_FILE} does not record the schemas as they are: run `tidings lock schemas` and commit it"
    );
}
