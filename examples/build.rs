//! Generates the shop's events from `../schemas` into `$OUT_DIR/tidings`.

fn main() -> Result<(), tidings_codegen::Error> {
    tidings_codegen::configure().compile("../schemas")
}
