//! Checking that the item and its attributes make an event: a concrete struct, a topic that
//! follows the topic rule, a schema name, at most one key field.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, LitStr, Member, Path, Type, WhereClause};
use tidings_contract::{TopicError, VersionError, validate_topic};

use crate::attr::{self, Codec, ItemAttrs};

/// An event ready to expand: every value checked.
pub(crate) struct Event {
    /// The struct's name.
    pub(crate) ident: Ident,
    /// A where clause the struct carries (it has no generic parameters).
    pub(crate) where_clause: Option<WhereClause>,
    /// The topic literal, as written.
    pub(crate) topic: LitStr,
    /// The CloudEvents type, when set apart from the topic.
    pub(crate) event_type: Option<LitStr>,
    /// The schema name: given, or derived from the topic.
    pub(crate) schema: LitStr,
    /// The codec and where it was chosen (the literal, or the derive for the default).
    pub(crate) codec: (Codec, Span),
    /// The path of the runtime crate.
    pub(crate) krate: Path,
    /// The field holding the partition key.
    pub(crate) key: Option<Key>,
    /// The field whose value is the event's data, when the struct wraps it.
    pub(crate) payload: Option<PayloadField>,
}

/// The field marked `#[event(key)]`.
pub(crate) struct Key {
    /// How the field is reached from `self`.
    pub(crate) member: Member,
    /// The field's type is written `Option<...>`: no key when it is `None`.
    pub(crate) optional: bool,
    /// Where the field's type is, for errors about it.
    pub(crate) ty_span: Span,
}

/// The field marked `#[event(payload)]`: the struct's only field.
pub(crate) struct PayloadField {
    /// How the field is reached from `self`.
    pub(crate) member: Member,
    /// The payload's type: the field's, or `T` of a field written `Option<T>`.
    pub(crate) ty: Type,
    /// The field's type is written `Option<...>`.
    pub(crate) optional: bool,
}

/// Checks `input` and its attributes, returning every error found at once.
pub(crate) fn event(input: &DeriveInput) -> syn::Result<Event> {
    let mut errors = Vec::new();
    let attrs = attr::item_attrs(&input.attrs, &mut errors);
    let (key, payload) = match &input.data {
        Data::Struct(data) => marked_fields(&data.fields, &mut errors),
        Data::Enum(data) => {
            errors.push(syn::Error::new(
                data.enum_token.span,
                "`#[derive(Event)]` goes on a struct, not an enum: an event is one message, a \
                 protobuf message or a serde struct; put the enum in a field of a struct and \
                 derive `Event` on that struct",
            ));
            (None, None)
        }
        Data::Union(data) => {
            errors.push(syn::Error::new(
                data.union_token.span,
                "`#[derive(Event)]` goes on a struct, not a union: an event is a protobuf \
                 message or a serde struct",
            ));
            (None, None)
        }
    };
    if !input.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &input.generics.params,
            "an event type cannot be generic: its topic and schema are constants, the same for \
             every instantiation; derive `Event` on a concrete struct, for instance one with a \
             field of the generic type instantiated",
        ));
    }
    let topic = checked_topic(input, &attrs, &mut errors);
    let event_type = match attrs.event_type {
        Some(event_type) if !tidings_contract::is_event_type(&event_type.value()) => {
            errors.push(syn::Error::new(
                event_type.span(),
                "a CloudEvents type is non-empty printable text, with no control character; \
                 write it as the producer sends it, such as \
                 `type = \"com.example.storage.object.v1.finalized\"`, or remove `type` for the \
                 topic",
            ));
            None
        }
        event_type => event_type,
    };
    let schema = match (&topic, attrs.schema) {
        (_, Some(schema)) if schema.value().is_empty() => {
            errors.push(syn::Error::new(
                schema.span(),
                "the schema name is empty; name the message, such as \
                 `schema = \"events.order.v1.Created\"`, or remove `schema` to derive it from \
                 the topic",
            ));
            None
        }
        (_, Some(schema)) => Some(schema),
        (Some(topic), None) => {
            // The topic passed the topic rule, so it has the three segments a schema needs.
            let schema = tidings_contract::default_schema(&topic.value()).unwrap_or_default();
            Some(LitStr::new(&schema, topic.span()))
        }
        (None, None) => None,
    };
    if let Some(error) = errors.into_iter().reduce(|mut all, e| {
        all.combine(e);
        all
    }) {
        return Err(error);
    }
    // No error means a topic and a schema were found.
    let (Some(topic), Some(schema)) = (topic, schema) else {
        unreachable!("a missing topic or schema is reported as an error above")
    };
    Ok(Event {
        ident: input.ident.clone(),
        where_clause: input.generics.where_clause.clone(),
        topic,
        event_type,
        schema,
        codec: attrs.codec.unwrap_or((Codec::Protobuf, Span::call_site())),
        krate: attrs.krate.unwrap_or_else(|| syn::parse_quote!(::tidings)),
        key,
        payload,
    })
}

/// The topic literal, checked with the one topic rule (the major version follows from it where
/// the trait is defined).
fn checked_topic(
    input: &DeriveInput,
    attrs: &ItemAttrs,
    errors: &mut Vec<syn::Error>,
) -> Option<LitStr> {
    let Some(topic) = &attrs.topic else {
        // An attribute that failed to parse may have held the topic: its error says enough.
        if attrs.incomplete {
            return None;
        }
        errors.push(syn::Error::new(
            input.ident.span(),
            format!(
                "`{}` has no topic; add `#[event(topic = \"events.<domain>.<event>.v1\")]`, \
                 such as `#[event(topic = \"events.order.created.v1\")]`",
                input.ident
            ),
        ));
        return None;
    };
    match validate_topic(&topic.value()) {
        Ok(_) => Some(topic.clone()),
        Err(e) => {
            let value = topic.value();
            let mut message = format!("invalid topic `{}`: {e}", value.escape_debug());
            if let TopicError::BadVersion {
                reason: VersionError::MissingV,
                ..
            } = e
            {
                // The last segment is a name, not a version: the version was left out.
                let with_version = format!("{value}.v1");
                if validate_topic(&with_version).is_ok() {
                    message += &format!("; to add the version, write `{with_version}`");
                }
            }
            errors.push(syn::Error::new(topic.span(), message));
            None
        }
    }
}

/// The fields marked `#[event(key)]` and `#[event(payload)]`, if any; a second of either is an
/// error, and so is a payload field beside other fields, which would never travel.
fn marked_fields(
    fields: &Fields,
    errors: &mut Vec<syn::Error>,
) -> (Option<Key>, Option<PayloadField>) {
    let mut key: Option<Key> = None;
    let mut payload: Option<PayloadField> = None;
    for (index, field) in fields.iter().enumerate() {
        let marks = attr::field_attrs(&field.attrs, errors);
        let member = || match &field.ident {
            Some(ident) => Member::Named(ident.clone()),
            None => Member::Unnamed(index.into()),
        };
        if let Some(span) = marks.key {
            if key.is_some() {
                errors.push(syn::Error::new(
                    span,
                    "only one field can hold the partition key; remove `#[event(key)]` from all \
                     fields but one",
                ));
            } else {
                key = Some(Key {
                    member: member(),
                    optional: is_option(&field.ty),
                    ty_span: field.ty.span(),
                });
            }
        }
        if let Some(span) = marks.payload {
            if fields.len() > 1 {
                errors.push(syn::Error::new(
                    span,
                    "a payload field travels alone, so the struct's other fields would never \
                     reach the wire; keep the payload as the struct's only field, or remove \
                     `#[event(payload)]` to send the whole struct",
                ));
            } else {
                let optional = option_inner(&field.ty);
                payload = Some(PayloadField {
                    member: member(),
                    ty: optional.unwrap_or(&field.ty).clone(),
                    optional: optional.is_some(),
                });
            }
        }
    }
    (key, payload)
}

/// Whether `ty` is written `Option<T>` (under any path). Type aliases cannot be seen through.
fn is_option(ty: &Type) -> bool {
    option_inner(ty).is_some()
}

/// `T` when `ty` is written `Option<T>` (under any path).
fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args)
            if last.ident == "Option" && args.args.len() == 1 =>
        {
            match &args.args[0] {
                syn::GenericArgument::Type(inner) => Some(inner),
                _ => None,
            }
        }
        _ => None,
    }
}
