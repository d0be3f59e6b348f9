//! The AsyncAPI document of the example schemas: pinned, and valid for the official AsyncAPI
//! parser (`@asyncapi/parser`, installed with npm on first use into the target folder).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// The parser version the document is validated with.
const PARSER: &str = "@asyncapi/parser@3.6.3";

/// Parses a document with the official parser and prints its diagnostics and what it read.
const VALIDATE: &str = r#"
const { Parser } = require(process.argv[2] + "/node_modules/@asyncapi/parser");
const fs = require("fs");
(async () => {
  const { document, diagnostics } = await new Parser().parse(fs.readFileSync(process.argv[3], "utf8"));
  const channels = document ? document.channels().all().map((c) => ({
    address: c.address(),
    messages: c.messages().all().map((m) => ({
      name: m.name(),
      payload: Object.keys(m.payload().properties() || {}).sort(),
      headers: Object.keys(m.headers().properties() || {}).sort(),
    })),
    actions: c.operations().all().map((o) => o.action()).sort(),
    replies: c.operations().all().map((o) => o.reply() ? {
      action: o.action(),
      location: o.reply().address() ? o.reply().address().location() : null,
      messages: o.reply().messages().all().map((m) => m.name()),
    } : null).filter((r) => r).sort((a, b) => a.action.localeCompare(b.action)),
  })) : null;
  const found = diagnostics.map((d) => ({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
  console.log(JSON.stringify({ diagnostics: found, channels }));
})().catch((e) => { console.error(e); process.exit(2); });
"#;

fn schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

fn document() -> String {
    tidings_codegen::configure()
        .asyncapi(schemas(), "Shop events", "1.0.0")
        .expect("the example schemas describe")
}

/// The folder holding `node_modules/@asyncapi/parser`, installing it when missing.
fn parser() -> &'static Path {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("asyncapi");
        if !dir
            .join("node_modules/@asyncapi/parser/package.json")
            .is_file()
        {
            std::fs::create_dir_all(&dir).unwrap();
            let out = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .arg(PARSER)
                .output()
                .expect("npm runs: install Node.js 20 and npm");
            assert!(
                out.status.success(),
                "npm could not install {PARSER}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        dir
    })
}

/// What the official parser says about `document`.
fn validate(document: &str) -> Value {
    let work = tempfile::tempdir().unwrap();
    let script = work.path().join("validate.cjs");
    let file = work.path().join("asyncapi.json");
    std::fs::write(&script, VALIDATE).unwrap();
    std::fs::write(&file, document).unwrap();
    let out = Command::new("node")
        .arg(&script)
        .arg(parser())
        .arg(&file)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "the parser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

/// Diagnostics of severity error (0) or warning (1).
fn problems(result: &Value) -> Vec<&Value> {
    result["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"].as_u64().is_some_and(|s| s <= 1))
        .collect()
}

#[test]
fn the_document_of_the_example_schemas_is_pinned() {
    insta::assert_snapshot!(document());
}

#[test]
fn the_official_parser_reads_the_document_without_errors_or_warnings() {
    let result = validate(&document());
    let problems = problems(&result);
    assert!(problems.is_empty(), "the parser reports: {problems:#?}");

    let report = tidings_codegen::configure().check(schemas()).unwrap();
    let channels = result["channels"].as_array().expect("a parsed document");
    // A channel per event, and two per rpc: its requests, and its replies.
    assert_eq!(channels.len(), report.events.len() + 2 * report.rpcs.len());
    for event in &report.events {
        let channel = channels
            .iter()
            .find(|c| c["address"] == event.topic())
            .unwrap_or_else(|| panic!("no channel for {}", event.topic()));
        assert_eq!(channel["actions"], serde_json::json!(["receive", "send"]));
        let messages = channel["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 1, "{channel}");
        assert_eq!(messages[0]["name"], event.schema());
        for header in [
            "id",
            "source",
            "specversion",
            "type",
            "dataschema",
            "traceparent",
        ] {
            assert!(
                messages[0]["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|h| h == header),
                "{channel}"
            );
        }
    }
    // An rpc's channel carries its request, and both of its operations name the reply.
    assert!(!report.rpcs.is_empty());
    for rpc in &report.rpcs {
        let channel = channels
            .iter()
            .find(|c| c["address"] == rpc.topic())
            .unwrap_or_else(|| panic!("no channel for {}", rpc.topic()));
        assert_eq!(channel["actions"], serde_json::json!(["receive", "send"]));
        assert_eq!(channel["messages"][0]["name"], rpc.request());
        let reply = serde_json::json!({
            "location": "$message.header#/replyto",
            "messages": [rpc.reply()],
        });
        for (i, action) in ["receive", "send"].into_iter().enumerate() {
            let mut expected = reply.clone();
            expected["action"] = action.into();
            assert_eq!(channel["replies"][i], expected, "{channel}");
        }
        // The replies' channel has no address of its own.
        assert!(
            channels
                .iter()
                .any(|c| c["address"].is_null() && c["messages"][0]["name"] == rpc.reply()),
            "no reply channel for {}",
            rpc.name()
        );
    }
    // Payloads go by JSON names.
    let created = channels
        .iter()
        .find(|c| c["address"] == "events.order.created.v1")
        .unwrap();
    assert_eq!(
        created["messages"][0]["payload"],
        serde_json::json!([
            "channel",
            "customerId",
            "lines",
            "orderId",
            "placedAt",
            "total"
        ])
    );
}

#[test]
fn the_parser_check_catches_an_invalid_document() {
    let mut broken: Value = serde_json::from_str(&document()).unwrap();
    let operation = broken["operations"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap();
    // AsyncAPI 2 wording, which 3.0 does not accept.
    operation["action"] = Value::String("publish".to_owned());
    let result = validate(&serde_json::to_string(&broken).unwrap());
    assert!(
        result["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["severity"] == 0),
        "an invalid action went unnoticed: {result}"
    );
}
