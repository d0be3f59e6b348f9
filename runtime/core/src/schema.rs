//! The `dataschema` value of an event type, `proto:` and its schema name.
//!
//! Every publish writes it, so it is made once per event type and shared as a `&'static str`
//! rather than formatted and copied per message.

use std::any::TypeId;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::adapter::lock;
use crate::envelope::SCHEMA_PREFIX;
use crate::event::Event;

/// One leaked string per distinct schema name, so memory stays bounded by the event types.
fn intern(schema: &'static str) -> &'static str {
    static VALUES: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
    let mut values = lock(VALUES.get_or_init(Mutex::default));
    values
        .entry(schema)
        .or_insert_with(|| Box::leak(format!("{SCHEMA_PREFIX}{schema}").into_boxed_str()))
}

thread_local! {
    // A handful of event types per program: a short list beats hashing.
    static KNOWN: RefCell<Vec<(TypeId, &'static str)>> = const { RefCell::new(Vec::new()) };
}

/// `proto:` and `E`'s schema name.
pub(crate) fn data_schema<E: Event>() -> Cow<'static, str> {
    let id = TypeId::of::<E>();
    let value = KNOWN.with_borrow_mut(|known| match known.iter().find(|(t, _)| *t == id) {
        Some((_, value)) => *value,
        None => {
            let value = intern(E::SCHEMA);
            known.push((id, value));
            value
        }
    });
    Cow::Borrowed(value)
}
