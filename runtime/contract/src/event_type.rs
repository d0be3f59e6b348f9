//! The rule for a CloudEvents `type` set apart from the topic.

/// Whether `text` can be a CloudEvents `type`: non-empty, with no control character (the spec
/// asks for a non-empty string of printable characters). The topic rule governs topics; a type
/// of a producer's own naming (`com.example.storage.object.v1.finalized`) only has to pass this.
pub const fn is_event_type(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        // The bytes of multi-byte characters are all 0x80 or above, so C0 controls and DEL are
        // single bytes; C1 controls (U+0080 to U+009F) are 0xC2 then 0x80 to 0x9F.
        let byte = bytes[i];
        if byte < 0x20 || byte == 0x7f {
            return false;
        }
        if byte == 0xc2 && i + 1 < bytes.len() && bytes[i + 1] < 0xa0 {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_non_empty_printable_text() {
        assert!(is_event_type("com.example.storage.object.v1.finalized"));
        assert!(is_event_type("événement créé ¡sí!"));
        assert!(!is_event_type(""));
        assert!(!is_event_type("a\nb"));
        assert!(!is_event_type("a\u{7f}"));
        assert!(!is_event_type("a\u{85}"));
    }
}
