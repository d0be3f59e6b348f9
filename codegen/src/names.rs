//! Rust names for protobuf names, as prost-build spells them.

use heck::{ToSnakeCase, ToUpperCamelCase};

/// Words Rust reserves that a raw identifier (`r#type`) can still use.
const RAW_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do", "dyn",
    "else", "enum", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop",
    "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return", "static",
    "struct", "trait", "true", "try", "type", "typeof", "unsafe", "unsized", "use", "virtual",
    "where", "while", "yield",
];

/// Words Rust reserves that cannot be raw identifiers; prost-build appends `_` to them.
pub(crate) const SUFFIXED_KEYWORDS: &[&str] = &["self", "super", "extern", "crate", "Self"];

/// The struct prost-build generates for a message: `order_line` gives `OrderLine`.
pub(crate) fn type_name(message: &str) -> String {
    let name = message.to_upper_camel_case();
    if name == "Self" { name + "_" } else { name }
}

/// A snake_case identifier for a protobuf name, escaped where Rust reserves the word.
pub(crate) fn snake_ident(name: &str) -> String {
    let snake = name.to_snake_case();
    if RAW_KEYWORDS.contains(&snake.as_str()) {
        format!("r#{snake}")
    } else if SUFFIXED_KEYWORDS.contains(&snake.as_str()) {
        snake + "_"
    } else {
        snake
    }
}

/// The event segment of a default topic: the message name in snake_case.
pub(crate) fn topic_segment(message: &str) -> String {
    message.to_snake_case()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spells_names_as_prost_does() {
        assert_eq!(type_name("order_line"), "OrderLine");
        assert_eq!(type_name("Self"), "Self_");
        assert_eq!(snake_ident("OrderCreated"), "order_created");
        assert_eq!(snake_ident("Type"), "r#type");
        assert_eq!(snake_ident("Super"), "super_");
        assert_eq!(topic_segment("HTTPRequestSent"), "http_request_sent");
    }
}
