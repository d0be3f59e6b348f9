//! Generates the shop's events from the repository's `schemas/` into `$OUT_DIR/tidings`, as the
//! examples do: the benchmark sends their `events.order.v1.Created`.

fn main() -> Result<(), tidings_codegen::Error> {
    tidings_codegen::configure().compile("../../schemas")
}
