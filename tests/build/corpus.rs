//! Writes a 100-file schema folder for the code generator: 10 packages of shared types that
//! import each other, and 90 event packages that import them, the well-known types and the
//! previous event package, with nested messages and enums, maps and oneofs.

use std::fmt::Write as _;
use std::path::Path;

/// Shared-type packages; the other files are event packages.
const COMMON: usize = 10;
/// Files in all.
pub const FILES: usize = 100;

fn common_name(k: usize) -> String {
    format!("corpus/common/c{k}/v1/types.proto")
}

fn common(k: usize) -> String {
    let mut s = String::from("syntax = \"proto3\";\n\n");
    let _ = writeln!(
        s,
        "// Shared types, set {k}.\npackage corpus.common.c{k}.v1;\n"
    );
    s.push_str(
        "import \"google/protobuf/duration.proto\";\nimport \"google/protobuf/struct.proto\";\n",
    );
    s.push_str("import \"google/protobuf/timestamp.proto\";\n");
    if k > 0 {
        let _ = writeln!(s, "import \"{}\";", common_name(k - 1));
    }
    s.push_str(
        "\n// An amount in minor units.\nmessage Amount {\n  string currency = 1;\n  int64 minor_units = 2;\n}\n\n\
         message Window {\n  google.protobuf.Timestamp start = 1;\n  google.protobuf.Duration length = 2;\n}\n\n\
         enum Tier {\n  TIER_UNSPECIFIED = 0;\n  TIER_GOLD = 1;\n}\n\n\
         message Tagged {\n  map<string, string> tags = 1;\n  google.protobuf.Struct extra = 2;\n  Tier tier = 3;\n",
    );
    if k > 0 {
        let _ = writeln!(s, "  corpus.common.c{}.v1.Amount previous = 4;", k - 1);
    }
    s.push_str("}\n");
    s
}

fn events_package(n: usize) -> String {
    format!("events.e{n}.v{}", 1 + n % 2)
}

fn events_name(n: usize) -> String {
    format!("events/e{n}/v{}/events.proto", 1 + n % 2)
}

fn events(n: usize) -> String {
    let (a, b) = (n % COMMON, (n + 3) % COMMON);
    let mut s = String::from("syntax = \"proto3\";\n\n");
    let _ = writeln!(s, "package {};\n", events_package(n));
    for wkt in [
        "any",
        "duration",
        "empty",
        "field_mask",
        "timestamp",
        "wrappers",
    ] {
        let _ = writeln!(s, "import \"google/protobuf/{wkt}.proto\";");
    }
    let _ = writeln!(s, "import \"{}\";", common_name(a));
    if b != a {
        let _ = writeln!(s, "import \"{}\";", common_name(b));
    }
    if n > 0 {
        let _ = writeln!(s, "import \"{}\";", events_name(n - 1));
    }
    s.push_str("\nenum Priority {\n  PRIORITY_UNSPECIFIED = 0;\n  PRIORITY_LOW = 1;\n  PRIORITY_HIGH = 2;\n}\n\n");
    let _ = writeln!(s, "// Something happened, number {n}.\nmessage Happened {{");
    s.push_str(
        "  message Line {\n    message Inner {\n      enum Kind {\n        KIND_UNSPECIFIED = 0;\n        KIND_A = 1;\n      }\n\
         \x20     int32 depth = 1;\n      Kind kind = 2;\n    }\n    string sku = 1;\n    Inner inner = 2;\n  }\n\
         \x20 string id = 1;\n  google.protobuf.Timestamp at = 2;\n  google.protobuf.Duration took = 3;\n\
         \x20 google.protobuf.StringValue note = 4;\n  google.protobuf.Any attachment = 5;\n\
         \x20 google.protobuf.FieldMask mask = 6;\n  repeated Line lines = 7;\n",
    );
    let _ = writeln!(
        s,
        "  map<string, corpus.common.c{a}.v1.Amount> amounts = 8;"
    );
    s.push_str("  map<int32, string> labels = 9;\n  oneof source {\n    string web = 10;\n    int64 api_key = 11;\n");
    let _ = writeln!(s, "    corpus.common.c{b}.v1.Window window = 12;");
    s.push_str("    google.protobuf.Empty nothing = 13;\n  }\n  Priority priority = 14;\n");
    if n > 0 {
        let _ = writeln!(
            s,
            "  {}.Priority previous_priority = 15;",
            events_package(n - 1)
        );
    }
    let _ = writeln!(
        s,
        "  corpus.common.c{a}.v1.Tagged tagged = 16;\n  bytes blob = 17;\n}}"
    );
    s
}

/// Writes the corpus under `dir`, leaving files that already hold the same text untouched.
pub fn write(dir: &Path) -> std::io::Result<()> {
    let files = (0..COMMON)
        .map(|k| (common_name(k), common(k)))
        .chain((0..FILES - COMMON).map(|n| (events_name(n), events(n))));
    for (name, text) in files {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
            continue;
        }
        std::fs::create_dir_all(path.parent().expect("a file name has a folder"))?;
        std::fs::write(path, text)?;
    }
    Ok(())
}
