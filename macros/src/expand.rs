//! Writing the `Event` implementation of a checked event.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{LitStr, Path, WhereClause};

use crate::validate::{Event, Key, PayloadField};

/// The `impl Event for ...` block. Every value is a literal, so the constants are usable in
/// `const` context.
pub(crate) fn event_impl(event: &Event) -> TokenStream {
    let Event {
        ident,
        where_clause,
        topic,
        event_type,
        schema,
        codec,
        krate,
        key,
        payload,
    } = event;
    let (codec, codec_span) = *codec;
    // Spanned at the `codec` literal (at the derive for the default) so that a struct the codec
    // cannot encode gets its error there.
    let codec_ident = Ident::new(codec.type_name(), codec_span);
    let mut codec_ty = respan(quote!(#krate::#codec_ident), codec_span);
    let wrapper_impl = payload.as_ref().map(|payload| {
        codec_ty = quote!(#krate::Payload<#codec_ty>);
        wrapper_impl(ident, where_clause.as_ref(), krate, payload)
    });
    let key_fn = key.as_ref().map(key_fn);
    let data_schema = LitStr::new(&format!("proto:{}", schema.value()), schema.span());
    let event_type = event_type
        .as_ref()
        .map(|event_type| quote!(const TYPE: &'static str = #event_type;));
    quote! {
        #[automatically_derived]
        impl #krate::Event for #ident #where_clause {
            const TOPIC: &'static str = #topic;
            #event_type
            const SCHEMA: &'static str = #schema;
            const DATA_SCHEMA: &'static str = #data_schema;
            type Codec = #codec_ty;
            #key_fn
        }
        #wrapper_impl
    }
}

/// `impl Wrapper`: the struct's one field is the event's data.
fn wrapper_impl(
    ident: &Ident,
    where_clause: Option<&WhereClause>,
    krate: &Path,
    payload: &PayloadField,
) -> TokenStream {
    let PayloadField {
        member,
        ty,
        optional,
    } = payload;
    let (get, take, wrap) = if *optional {
        (
            quote!(::core::option::Option::as_ref(&self.#member)),
            quote!(::core::option::Option::unwrap_or_default(self.#member)),
            quote!(::core::option::Option::Some(payload)),
        )
    } else {
        (
            quote!(::core::option::Option::Some(&self.#member)),
            quote!(self.#member),
            quote!(payload),
        )
    };
    quote! {
        #[automatically_derived]
        impl #krate::Wrapper for #ident #where_clause {
            type Payload = #ty;
            fn payload(&self) -> ::core::option::Option<&#ty> {
                #get
            }
            fn into_payload(self) -> #ty {
                #take
            }
            fn wrap(payload: #ty) -> Self {
                Self { #member: #wrap }
            }
        }
    }
}

/// `fn key` returning the marked field as a string; spanned at the field's type so that a type
/// without `Display` gets its error there.
fn key_fn(key: &Key) -> TokenStream {
    let Key {
        member,
        optional,
        ty_span,
    } = key;
    let value = if *optional {
        quote_spanned! {*ty_span=>
            ::core::option::Option::map(
                ::core::option::Option::as_ref(&self.#member),
                ::std::string::ToString::to_string,
            )
        }
    } else {
        quote_spanned! {*ty_span=>
            ::core::option::Option::Some(::std::string::ToString::to_string(&self.#member))
        }
    };
    quote! {
        fn key(&self) -> ::core::option::Option<::std::string::String> {
            #value
        }
    }
}

/// `tokens` with every token placed at `span`. A path carries no groups, so one level is enough.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            token.set_span(span);
            token
        })
        .collect()
}
