//! Snapshots of the expansion, formatted as a user would read it.

use quote::quote;

use crate::expand;

/// Expands `input` and formats the result.
fn expanded(input: proc_macro2::TokenStream) -> String {
    let file: syn::File = syn::parse2(expand(input)).expect("the expansion is a Rust file");
    prettyplease::unparse(&file)
}

#[test]
fn prost_struct_with_defaults() {
    insta::assert_snapshot!(expanded(quote! {
        #[derive(Clone, PartialEq, prost::Message)]
        #[event(topic = "events.order.created.v1")]
        pub struct Created {
            #[prost(string, tag = "1")]
            pub order_id: String,
        }
    }));
}

#[test]
fn serde_struct_with_every_setting() {
    insta::assert_snapshot!(expanded(quote! {
        #[derive(serde::Serialize, serde::Deserialize)]
        #[event(topic = "events.payment.captured.v2beta1", codec = "json+protobuf")]
        #[event(schema = "billing.Captured", crate = "::shop::tidings")]
        #[event(type = "com.example.billing.v2.captured")]
        pub struct Captured {
            #[event(key)]
            pub account: u64,
            pub amount_cents: u64,
        }
    }));
}

#[test]
fn tuple_struct_with_optional_key() {
    insta::assert_snapshot!(expanded(quote! {
        #[event(topic = "events.stock.item_moved.v3", codec = "protobuf+json")]
        struct ItemMoved(u32, #[event(key)] Option<String>);
    }));
}

#[test]
fn unit_struct() {
    insta::assert_snapshot!(expanded(quote! {
        #[event(topic = "events.clock.tick.v1")]
        struct Tick;
    }));
}

#[test]
fn misuse_expands_to_compile_errors_only() {
    let out = expand(quote! {
        #[event(topic = "events.Order.v1", codec = "xml")]
        enum Created { A }
    })
    .to_string();
    assert!(!out.contains("impl"), "{out}");
    assert_eq!(out.matches("compile_error").count(), 3, "{out}");
    assert!(out.contains("unknown codec `xml`"), "{out}");
    assert!(out.contains("not an enum"), "{out}");
    assert!(out.contains("upper-case `O` at byte 7"), "{out}");
}

#[test]
fn wrapper_of_the_payload_that_travels() {
    insta::assert_snapshot!(expanded(quote! {
        #[derive(Clone, PartialEq, prost::Message)]
        #[event(topic = "storage.object.finalized.v1", type = "com.example.storage.object.v1.finalized")]
        #[event(schema = "com.example.storage.v1.StorageObjectData", codec = "protobuf+json")]
        pub struct ObjectFinalizedEvent {
            #[prost(message, optional, tag = "1")]
            #[event(payload)]
            pub data: ::core::option::Option<StorageObjectData>,
        }
    }));
}

#[test]
fn tuple_wrapper_of_a_payload_that_is_always_set() {
    insta::assert_snapshot!(expanded(quote! {
        #[derive(serde::Serialize, serde::Deserialize)]
        #[event(topic = "events.audit.recorded.v1", codec = "json")]
        pub struct Recorded(#[event(payload)] Entry);
    }));
}
