//! Every misuse of `#[derive(Event)]` is a compile error at the place to fix, saying what to
//! write instead. The expected messages are pinned in `tests/ui/*.stderr`.
//!
//! The cases that must build are built (not only checked) with them, which is what makes a
//! hand-written `VERSION` that contradicts the topic fail: that check runs when an event type is
//! used, as it is in `tests/ui/version_set_by_hand.rs`.

#[test]
fn misuse_is_a_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/pass/*.rs");
    cases.compile_fail("tests/ui/*.rs");
}
