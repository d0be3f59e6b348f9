//! Turns `TIDINGS_BROKERS` (a comma-separated list such as `nats,rabbitmq,redis,mqtt`) into
//! `tidings_broker = "..."` cfg flags, so the suite of a broker nobody asked for is compiled but
//! shown as ignored, with the reason, instead of failing on a missing server or passing unrun.

/// The brokers whose suites can be asked for.
const BROKERS: &[&str] = &["nats", "rabbitmq", "redis", "mqtt", "kafka"];

fn main() {
    println!("cargo::rerun-if-env-changed=TIDINGS_BROKERS");
    let values: Vec<String> = BROKERS.iter().map(|b| format!("\"{b}\"")).collect();
    println!(
        "cargo::rustc-check-cfg=cfg(tidings_broker, values({}))",
        values.join(", ")
    );
    let asked = std::env::var("TIDINGS_BROKERS").unwrap_or_default();
    for broker in asked.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        if BROKERS.contains(&broker) {
            println!("cargo::rustc-cfg=tidings_broker=\"{broker}\"");
        } else {
            println!(
                "cargo::warning=TIDINGS_BROKERS names `{broker}`, which has no suite; known: {}",
                BROKERS.join(", ")
            );
        }
    }
    generate_events();
}

#[path = "build/corpus.rs"]
mod corpus;

/// Generates the code the codegen tests include: the shop's schemas through the build-script
/// entry point exactly as a user's `build.rs` calls it (into `$OUT_DIR/tidings`), the JSON
/// mapping schemas of `proto/`, and a 100-file corpus written here.
fn generate_events() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("Cargo sets OUT_DIR"));
    // The generator's errors print as diagnostics with `Debug` too.
    tidings_codegen::configure()
        .compile("../schemas")
        .expect("the shop's schemas compile");
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
