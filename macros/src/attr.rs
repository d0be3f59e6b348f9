//! Reading the `#[event(...)]` attributes into values with the spans they were written at.
//!
//! Only the syntax is checked here: which keys exist, that each is given once and that its value
//! has the right form. What the values mean (the topic rule, the schema name) is checked in
//! `validate`.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, LitStr, Path};

/// The keys `#[event(...)]` takes on a struct, in the order the errors list them.
const ITEM_KEYS: &str = "`topic`, `type`, `codec`, `schema` and `crate`";

/// The codec an event is written and read with, named by `codec = "..."`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codec {
    /// `protobuf`: writes and reads protobuf binary.
    Protobuf,
    /// `json`: writes and reads JSON.
    Json,
    /// `protobuf+json`: writes protobuf, reads both.
    ProtobufOrJson,
    /// `json+protobuf`: writes JSON, reads both.
    JsonOrProtobuf,
}

impl Codec {
    /// Every codec with the name `codec = "..."` gives it.
    const NAMED: [(&'static str, Codec); 4] = [
        ("protobuf", Codec::Protobuf),
        ("json", Codec::Json),
        ("protobuf+json", Codec::ProtobufOrJson),
        ("json+protobuf", Codec::JsonOrProtobuf),
    ];

    fn from_name(name: &str) -> Option<Codec> {
        Self::NAMED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, c)| c)
    }

    /// The name of the runtime's type implementing this codec.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Codec::Protobuf => "Protobuf",
            Codec::Json => "Json",
            Codec::ProtobufOrJson => "ProtobufOrJson",
            Codec::JsonOrProtobuf => "JsonOrProtobuf",
        }
    }
}

/// What the `#[event(...)]` attributes on the struct say. Every value keeps its span so that
/// later errors point at it.
#[derive(Default)]
pub(crate) struct ItemAttrs {
    /// `topic = "..."`.
    pub(crate) topic: Option<LitStr>,
    /// `type = "..."`: the CloudEvents type, when it is not the topic.
    pub(crate) event_type: Option<LitStr>,
    /// `codec = "..."`, with the span of its literal.
    pub(crate) codec: Option<(Codec, Span)>,
    /// `schema = "..."`.
    pub(crate) schema: Option<LitStr>,
    /// `crate = "..."`.
    pub(crate) krate: Option<Path>,
    /// An attribute could not be read to its end, so a key may be missing only for that reason.
    pub(crate) incomplete: bool,
}

/// Reads the `#[event(...)]` attributes of the struct. Errors go to `errors` so that one
/// expansion reports every misuse it can find.
pub(crate) fn item_attrs(attrs: &[Attribute], errors: &mut Vec<syn::Error>) -> ItemAttrs {
    let mut out = ItemAttrs::default();
    let (attrs, bare) = event_attrs(attrs, errors);
    out.incomplete = bare;
    for attr in attrs {
        let parsed = attr.parse_nested_meta(|meta| {
            let key = meta_key(&meta);
            match key.as_str() {
                "topic" => {
                    let lit = string_value(&meta, "topic", "\"events.order.created.v1\"")?;
                    set_once(&mut out.topic, lit, &meta, errors);
                }
                "type" => {
                    let lit =
                        string_value(&meta, "type", "\"com.example.storage.object.v1.finalized\"")?;
                    set_once(&mut out.event_type, lit, &meta, errors);
                }
                "codec" => {
                    let lit = string_value(&meta, "codec", "\"json\"")?;
                    match Codec::from_name(&lit.value()) {
                        Some(codec) => set_once(&mut out.codec, (codec, lit.span()), &meta, errors),
                        None => errors.push(syn::Error::new(
                            lit.span(),
                            format!(
                                "unknown codec `{}`; write one of `protobuf` (the default), \
                                 `json`, `protobuf+json` or `json+protobuf` (the first one \
                                 writes, every one listed reads)",
                                lit.value()
                            ),
                        )),
                    }
                }
                "schema" => {
                    let lit = string_value(&meta, "schema", "\"events.order.v1.Created\"")?;
                    set_once(&mut out.schema, lit, &meta, errors);
                }
                "crate" => {
                    let lit = string_value(&meta, "crate", "\"::my_reexport::tidings\"")?;
                    match lit.parse::<Path>() {
                        Ok(path) => set_once(&mut out.krate, path, &meta, errors),
                        Err(_) => errors.push(syn::Error::new(
                            lit.span(),
                            format!(
                                "`{}` is not a path; `crate` names the path the `tidings` crate \
                                 is reachable at, such as `crate = \"::my_reexport::tidings\"`",
                                lit.value()
                            ),
                        )),
                    }
                }
                "key" => {
                    return Err(meta.error(
                        "`key` goes on the field that holds the partition key, not on the \
                         struct: write `#[event(key)]` above that field",
                    ));
                }
                _ => {
                    return Err(meta.error(format!(
                        "unknown key `{key}` in `#[event(...)]`; on a struct it takes {ITEM_KEYS}"
                    )));
                }
            }
            Ok(())
        });
        if let Err(e) = parsed {
            out.incomplete = true;
            errors.push(e);
        }
    }
    out
}

/// What the `#[event(...)]` attributes of a field say: each marker with the span it was written
/// at.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    /// `#[event(key)]`: the field holds the partition key.
    pub(crate) key: Option<Span>,
    /// `#[event(payload)]`: the field is the data that travels.
    pub(crate) payload: Option<Span>,
}

/// Reads the `#[event(...)]` attributes of a field.
pub(crate) fn field_attrs(attrs: &[Attribute], errors: &mut Vec<syn::Error>) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in event_attrs(attrs, errors).0 {
        let parsed = attr.parse_nested_meta(|meta| {
            let name = meta_key(&meta);
            let slot = match name.as_str() {
                "key" => &mut out.key,
                "payload" => &mut out.payload,
                "topic" | "type" | "codec" | "schema" | "crate" => {
                    return Err(meta.error(format!(
                        "`{name}` goes on the struct, not on a field; a field takes only \
                         `#[event(key)]` or `#[event(payload)]`"
                    )));
                }
                _ => {
                    return Err(meta.error(format!(
                        "unknown key `{name}` in `#[event(...)]`; a field takes only \
                         `#[event(key)]` or `#[event(payload)]`"
                    )));
                }
            };
            if !(meta.input.is_empty() || meta.input.peek(syn::Token![,])) {
                return Err(
                    meta.error(format!("`{name}` takes no value: write `#[event({name})]`"))
                );
            }
            set_once(slot, meta.path.span(), &meta, errors);
            Ok(())
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    out
}

/// The `#[event(...)]` attributes among `attrs`, and whether there was a bare `#[event]` or
/// `#[event = ...]`, which is an error.
fn event_attrs<'a>(
    attrs: &'a [Attribute],
    errors: &mut Vec<syn::Error>,
) -> (Vec<&'a Attribute>, bool) {
    let mut ok = Vec::new();
    let mut bare = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("event")) {
        match attr.meta.require_list() {
            Ok(_) => ok.push(attr),
            Err(_) => {
                bare = true;
                errors.push(syn::Error::new_spanned(
                    attr,
                    "`event` takes its settings in parentheses: \
                     `#[event(topic = \"events.order.created.v1\")]`",
                ));
            }
        }
    }
    (ok, bare)
}

/// The key as written, such as `topic`; a path of several segments is shown whole.
fn meta_key(meta: &ParseNestedMeta<'_>) -> String {
    let segments: Vec<String> = meta
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    segments.join("::")
}

/// The string literal after `key =`, or an error showing the form expected.
fn string_value(meta: &ParseNestedMeta<'_>, key: &str, example: &str) -> syn::Result<LitStr> {
    let expected = || format!("`{key}` takes a string literal: `{key} = {example}`");
    let value = meta
        .value()
        .map_err(|e| syn::Error::new(e.span(), expected()))?;
    let expr: syn::Expr = value.parse()?;
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) => Ok(lit),
        other => Err(syn::Error::new_spanned(other, expected())),
    }
}

/// Stores `value` unless the key was already given, in which case the repetition is an error.
fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    meta: &ParseNestedMeta<'_>,
    errors: &mut Vec<syn::Error>,
) {
    if slot.is_some() {
        let key = meta_key(meta);
        errors.push(meta.error(format!(
            "`{key}` is given twice; keep one `{key}` in the `#[event(...)]` attributes"
        )));
    } else {
        *slot = Some(value);
    }
}
