//! Tests across crates, and the broker conformance suite every adapter runs.

pub mod conformance;
pub mod restart;
pub mod seam;
