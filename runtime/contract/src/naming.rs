//! The naming convention between a schema and its default topic, both ways.
//!
//! A message's default topic is its package without the version, the message name in
//! snake_case, then the version: message `Created` of package `events.order.v1` is on
//! `events.order.created.v1`. A hand-written event on that topic assumes the schema the other way
//! round, `events.order.v1.Created`. A message name that snake_case loses information from
//! (`HTTPRequestSent` becomes `http_request_sent`, which comes back as `HttpRequestSent`) does
//! not survive the round trip; the code generator warns about those.

/// The schema name the convention gives a valid topic: `events.order.created.v1` is message
/// `Created` of package `events.order.v1`, so `events.order.v1.Created`. `None` for a topic with
/// fewer than three segments.
pub fn default_schema(topic: &str) -> Option<String> {
    let (rest, version) = topic.rsplit_once('.')?;
    let (package, event) = rest.rsplit_once('.')?;
    Some(format!("{package}.{version}.{}", upper_camel(event)))
}

/// A snake_case topic segment in UpperCamelCase: each `_`-separated word capitalised, the
/// underscores dropped (`item2_moved` gives `Item2Moved`).
fn upper_camel(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for word in segment.split('_').filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::default_schema;

    #[test]
    fn default_schema_inverts_the_topic_convention() {
        for (topic, schema) in [
            ("events.order.created.v1", "events.order.v1.Created"),
            (
                "events.order.order_created.v2",
                "events.order.v2.OrderCreated",
            ),
            (
                "shop.billing.invoice_paid.v1beta1",
                "shop.billing.v1beta1.InvoicePaid",
            ),
            ("a.b.v3", "a.v3.B"),
            ("events.stock.item2_moved.v1", "events.stock.v1.Item2Moved"),
            (
                "events.web.http_request_sent.v1",
                "events.web.v1.HttpRequestSent",
            ),
        ] {
            assert_eq!(default_schema(topic).as_deref(), Some(schema), "{topic}");
        }
        assert_eq!(default_schema("events.v1"), None);
    }
}
