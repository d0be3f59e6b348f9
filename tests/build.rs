//! Generates the code the codegen tests include.

fn main() {
    generate_events();
}

#[path = "build/corpus.rs"]
mod corpus;

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
