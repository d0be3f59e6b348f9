//! An MQTT 5 PUBLISH as rumqttc hands it to the adapter: the Content Type property, the User
//! Properties (a name may repeat) and the payload, read by the binding the subscription calls.
//!
//! A line `:content-type: ...` sets the Content Type property; any other line is a User
//! Property.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};
use tidings_fuzz::{PROPERTY, header_block, text};

fuzz_target!(|input: &[u8]| {
    let (lines, payload) = header_block(input);
    let mut properties = PublishProperties::default();
    for (name, value) in lines {
        if name == b":content-type" {
            properties.content_type = Some(text(value));
        } else if name.first() != Some(&PROPERTY) {
            properties.user_properties.push((text(name), text(value)));
        }
    }
    let payload = Bytes::copy_from_slice(payload);
    let publish = Publish::new(
        "events/order/created/v1",
        QoS::AtLeastOnce,
        payload.clone(),
        Some(properties),
    );
    if let Err(malformed) = tidings_mqtt::binding::decode(&publish) {
        assert_eq!(malformed.data, payload);
    }
});
