//! CloudEvents attributes as every binary-mode binding hands them over once the transport's
//! prefix is stripped: (name, value) pairs, a name possibly repeated or in any case. Each line
//! is one attribute.
//!
//! An envelope read from them must survive the binary round trip a dead letter or a relay
//! makes: its attributes, read back, give the same envelope.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::envelope::Envelope;
use tidings_fuzz::{header_block, text};

fuzz_target!(|input: &[u8]| {
    let (lines, _) = header_block(input);
    let pairs = lines
        .into_iter()
        .map(|(name, value)| (text(name), text(value)));
    if let Ok(envelope) = Envelope::from_attributes(pairs) {
        let back = Envelope::from_attributes(envelope.attributes());
        assert_eq!(back.as_ref(), Ok(&envelope));
    }
});
