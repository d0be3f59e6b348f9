//! Topic names, as the runtime checks every topic before it reaches a broker and the code
//! generator and the derive check the topics of schemas (`tidings_contract::validate_topic`,
//! `tidings::Topic`).
//!
//! A topic accepted must be what the rule says; an error must point inside the name, at a
//! character boundary, as the code generator's diagnostics slice the name there.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::topic::{MAX_TOPIC_LEN, Topic, parse_version, validate_topic};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    match validate_topic(name) {
        Ok(version) => {
            assert!(name.len() <= MAX_TOPIC_LEN);
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'_'
                    || b == b'.')
            );
            let segments: Vec<&str> = name.split('.').collect();
            assert!(segments.len() >= 3);
            for segment in &segments {
                assert!(
                    segment.starts_with(|c: char| c.is_ascii_lowercase()),
                    "{name}"
                );
            }
            let last = segments[segments.len() - 1];
            assert_eq!(parse_version(last), Ok(version));
            assert!(version.major >= 1);
            let topic = Topic::new(name.to_owned()).expect("the runtime accepts it too");
            assert_eq!(topic.major(), version.major);
            assert_eq!(topic.as_str(), name);
            match topic.dead_letter() {
                Ok(dlq) => assert_eq!(dlq.major(), version.major),
                Err(e) => assert!(name.len() + 4 > MAX_TOPIC_LEN, "{name}: {e}"),
            }
        }
        Err(error) => {
            if let Some(at) = error.offset() {
                assert!(
                    at <= name.len() && name.is_char_boundary(at),
                    "{name:?}: {error:?}"
                );
            }
            assert!(!error.to_string().is_empty());
            assert!(Topic::new(name.to_owned()).is_err());
        }
    }
});
