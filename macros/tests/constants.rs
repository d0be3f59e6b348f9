//! The constants a derived event carries are usable in `const` context.

use tidings::Event;

#[derive(Clone, PartialEq, prost::Message, Event)]
#[event(topic = "events.order.shipped.v3beta1")]
pub struct Shipped {
    #[prost(string, tag = "1")]
    pub order_id: String,
}

const TOPIC: &str = <Shipped as Event>::TOPIC;
const VERSION: u32 = <Shipped as Event>::VERSION;
const SCHEMA: &str = <Shipped as Event>::SCHEMA;

// Places only a constant can go: an array length and a compile-time assertion.
const SLOTS: [u32; <Shipped as Event>::VERSION as usize] = [VERSION; 3];
const _: () = assert!(VERSION == 3 && TOPIC.len() == 28 && SCHEMA.len() == 28);

/// A `const fn` generic over the event type reads the constants too.
const fn topic_and_version<E: Event>() -> (&'static str, u32) {
    (E::TOPIC, E::VERSION)
}

const PAIR: (&str, u32) = topic_and_version::<Shipped>();

#[test]
fn constants_evaluate_at_compile_time() {
    assert_eq!(TOPIC, "events.order.shipped.v3beta1");
    assert_eq!(SCHEMA, "events.order.v3beta1.Shipped");
    assert_eq!(SLOTS, [3, 3, 3]);
    assert_eq!(PAIR, ("events.order.shipped.v3beta1", 3));
}

#[test]
fn constants_match_in_patterns() {
    let kind = |topic: &str| match topic {
        <Shipped as Event>::TOPIC => "shipped",
        _ => "other",
    };
    assert_eq!(kind("events.order.shipped.v3beta1"), "shipped");
    assert_eq!(kind("events.order.shipped.v2"), "other");
}
