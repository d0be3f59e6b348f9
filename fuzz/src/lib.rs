//! What the fuzz targets share: the shop's generated events, a hand-written JSON event, and the
//! reader of the header-block inputs the transport targets take.
//!
//! A transport target reads its input as a message would arrive: header lines, an empty line,
//! then the payload, like a NATS or HTTP message on the wire. Seeds are then plain text a person
//! can write, and libFuzzer's mutations of a line change one header.

#![forbid(unsafe_code)]

tidings::include_events!();

/// An event with the JSON codec, written by hand as a user would with the derive.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, tidings::Event)]
#[event(topic = "events.payment.refunded.v1", codec = "json")]
#[serde(rename_all = "camelCase")]
pub struct Refunded {
    /// Which payment.
    pub payment_id: String,
    /// Amount in minor units.
    pub minor_units: i64,
    /// Why, when said.
    #[serde(default)]
    pub reason: Option<String>,
    /// Free-form labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// One header line: its name and its value, as bytes.
pub type Line<'a> = (&'a [u8], &'a [u8]);

/// The prefix of a line that sets a property of the transport (a Kafka record's key, an MQTT or
/// AMQP content type) rather than a header, as `:authority` does in HTTP/2.
pub const PROPERTY: u8 = b':';

/// Splits `input` into header lines and the payload.
///
/// Lines end at `\n` (a `\r` before it is kept in the value, as a client would hand it over);
/// a line's name ends at the first `": "`, and a line without one is a name with an empty value.
/// The first empty line ends the headers; everything after it is the payload. An input without
/// an empty line is all headers and no payload.
pub fn header_block(input: &[u8]) -> (Vec<Line<'_>>, &[u8]) {
    let mut lines = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (line, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = after;
        if line.is_empty() {
            return (lines, rest);
        }
        match line.windows(2).position(|w| w == b": ") {
            Some(at) => lines.push((&line[..at], &line[at + 2..])),
            None => lines.push((line, &line[line.len()..])),
        }
    }
    (lines, rest)
}

/// Text as a client that hands over `String`s would have it.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_blocks_split_into_lines_and_payload() {
        let (lines, payload) = header_block(b"ce-id: 7\nce-type: a: b\nflag\n\nbody\n\nmore");
        assert_eq!(
            lines,
            vec![
                (&b"ce-id"[..], &b"7"[..]),
                (&b"ce-type"[..], &b"a: b"[..]),
                (&b"flag"[..], &b""[..]),
            ]
        );
        assert_eq!(payload, b"body\n\nmore");
        assert_eq!(
            header_block(b"x: 1"),
            (vec![(&b"x"[..], &b"1"[..])], &b""[..])
        );
    }
}
