//! A structured-mode CloudEvents JSON document, as every binding reads a message whose content
//! type is `application/cloudevents+json`.
//!
//! An envelope read from one must survive the binary round trip a dead letter or a relay makes:
//! its attributes, read back, give the same envelope.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::envelope::Envelope;

fuzz_target!(|document: &[u8]| {
    if let Ok((envelope, _data)) = Envelope::from_structured(document) {
        let back = Envelope::from_attributes(envelope.attributes());
        assert_eq!(back.as_ref(), Ok(&envelope));
    }
});
