//! Generates the code the codegen tests include.

fn main() {
    generate_events();
}

#[path = "build/corpus.rs"]
mod corpus;

/// Generates a schema set laid out as another stack lays it out (`foreign/`), into
/// `$OUT_DIR/foreign`: its option names each event's CloudEvents type with the version in the
/// middle and the event in camelCase (`com.example.storage.object.v1.metadataUpdated`); a
/// naming function turns that into a topic (`storage.object.metadata_updated.v1`), and each
/// event's message wraps, in its one field `data`, the payload that actually travels.
fn foreign_schemas(out: &std::path::Path) {
    use heck::ToSnakeCase;
    tidings_codegen::configure()
        .out_dir(out.join("foreign"))
        .topic_option("com.example.events.cloud_event_type")
        .topic_fn(|candidate| {
            let event_type = candidate.declared_topic()?;
            let mut words: Vec<&str> = event_type
                .strip_prefix("com.example.")?
                .split('.')
                .collect();
            let version = words.iter().position(|word| *word == candidate.version())?;
            let version = words.remove(version);
            let words: Vec<String> = words.iter().map(|word| word.to_snake_case()).collect();
            Some(format!("{}.{version}", words.join(".")))
        })
        .payload_fn(|candidate| candidate.fields().eq(["data"]).then(|| "data".to_owned()))
        .compile("foreign")
        .expect("the foreign schema set compiles");
}

/// Generates the code the codegen tests include: the shop's schemas through the build-script
/// entry point exactly as a user's `build.rs` calls it (into `$OUT_DIR/tidings`), and again with
/// each default of the handler methods (into `$OUT_DIR/ignore` and `$OUT_DIR/dead_letter`), the
/// JSON mapping schemas of `proto/`, and a 100-file corpus written here.
fn generate_events() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("Cargo sets OUT_DIR"));
    // The generator's errors print as diagnostics with `Debug` too.
    tidings_codegen::configure()
        .compile("../schemas")
        .expect("the shop's schemas compile");
    for (dir, default) in [
        ("ignore", tidings_codegen::HandlerDefault::Ignore),
        ("dead_letter", tidings_codegen::HandlerDefault::DeadLetter),
    ] {
        tidings_codegen::configure()
            .handler_defaults(default)
            .out_dir(out.join(dir))
            .compile("../schemas")
            .expect("the shop's schemas compile with handler defaults");
    }
    let mapping = tidings_codegen::configure().out_dir(out.join("mapping"));
    mapping
        .compile("proto")
        .expect("the mapping schemas compile");
    foreign_schemas(&out);
    // The corpus is written by this script, so its files are not watched: the script reruns
    // when it or the generator changes.
    let corpus = out.join("corpus-schemas");
    corpus::write(&corpus).expect("the corpus can be written");
    let generated = tidings_codegen::configure()
        .generate(&corpus)
        .expect("the corpus compiles");
    assert_eq!(generated.read_paths().len(), corpus::FILES);
    generated
        .write(&out.join("corpus"))
        .expect("the corpus code can be written");
}
