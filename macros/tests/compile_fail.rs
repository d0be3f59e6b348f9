//! Every misuse of `#[derive(Event)]` is a compile error at the place to fix, saying what to
//! write instead. The expected messages are pinned in `tests/ui/*.stderr`.

#[test]
fn misuse_is_a_compile_error() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
