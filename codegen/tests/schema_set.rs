//! The schema set the CLI's broker verbs read events by: from a folder, or from a compiled
//! descriptor set, the same events and messages.

use std::path::{Path, PathBuf};

const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas");
/// The folder of `tidings/options.proto`.
const OPTIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");

/// The `.proto` files under `dir`, as import names.
fn proto_files(dir: &Path, under: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path: PathBuf = entry.unwrap().path();
        if path.is_dir() {
            proto_files(&path, under, out);
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(
                path.strip_prefix(under)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
}

#[test]
fn a_descriptor_set_gives_the_events_and_messages_of_its_folder() {
    let from_folder = tidings_codegen::configure().schema_set(SCHEMAS).unwrap();
    assert_eq!(from_folder.events().len(), 10);
    let created = from_folder.message("events.order.created.v1").unwrap();
    assert_eq!(created.full_name(), "events.order.v1.Created");
    assert!(from_folder.message("events.order.placed.v1").is_none());

    // As `protoc --include_imports --descriptor_set_out` writes it, the options the schemas
    // import found where the generator keeps them.
    let mut files = Vec::new();
    proto_files(Path::new(SCHEMAS), Path::new(SCHEMAS), &mut files);
    let mut compiler = protox::Compiler::new([SCHEMAS, OPTIONS]).unwrap();
    compiler.include_imports(true);
    compiler.open_files(&files).unwrap();
    // Encoded by protox itself: `prost_types` would drop the custom options on the way.
    let bytes = compiler.encode_file_descriptor_set();

    let from_set = tidings_codegen::configure()
        .schema_set_from_descriptors(&bytes)
        .unwrap();
    let topics = |set: &tidings_codegen::SchemaSet| {
        let mut topics: Vec<(String, String)> = set
            .events()
            .iter()
            .map(|e| (e.topic().to_owned(), e.schema().to_owned()))
            .collect();
        topics.sort();
        topics
    };
    assert_eq!(topics(&from_set), topics(&from_folder));
    let rpcs = |set: &tidings_codegen::SchemaSet| {
        set.rpcs()
            .iter()
            .map(|r| (r.name().to_owned(), r.topic().to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(rpcs(&from_set), rpcs(&from_folder));
    assert_eq!(rpcs(&from_set).len(), 1);
    assert_eq!(
        from_set
            .message("events.order.created.v1")
            .unwrap()
            .full_name(),
        "events.order.v1.Created"
    );

    let refused = tidings_codegen::configure()
        .schema_set_from_descriptors(b"not a descriptor set")
        .unwrap_err();
    assert!(refused.to_string().contains("descriptor set"), "{refused}");
}
