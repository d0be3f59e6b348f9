//! Generates the shop's events from `../schemas`, as a service's build script would, so the
//! decode targets read exactly what generated code reads.

fn main() -> Result<(), tidings_codegen::Error> {
    tidings_codegen::configure().compile("../schemas")
}
