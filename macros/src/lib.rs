//! `#[derive(Event)]`.
