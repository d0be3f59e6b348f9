//! Events published in reaction to others: the chain they make (one correlation id, each event's
//! causation id naming the event before it, one trace, and a depth counting the events before
//! it), and the bound on that depth that stops a publish loop.

use std::error::Error;

use crate::envelope::Envelope;
use crate::id::EventId;

/// How many events may come before a published one in its causation chain unless the bus says
/// otherwise ([`Bus::with_max_causation_depth`](crate::Bus::with_max_causation_depth)).
pub const DEFAULT_MAX_CAUSATION_DEPTH: u32 = 32;

/// The chain a publish refused as too deep would have continued
/// ([`PublishError::CausationTooDeep`](crate::PublishError::CausationTooDeep), whose source it
/// is): the conversation, and the event that caused the publish.
///
/// A handler's error that holds one in its chain of sources is
/// [permanent](crate::HandlerError::is_permanent): the event is dead-lettered at once, as no
/// retry makes the chain shorter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the chain: correlation id {}, caused by event {} of type {}",
    .0.correlation_id,
    .0.event_id,
    .0.event_type
)]
pub struct CausationChain(Box<Chain>);

/// What a [`CausationChain`] holds, boxed to keep [`PublishError`](crate::PublishError) small.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Chain {
    correlation_id: String,
    event_id: EventId,
    event_type: String,
}

impl CausationChain {
    /// The chain that `cause` is the last event of.
    pub(crate) fn of(cause: &Envelope) -> CausationChain {
        CausationChain(Box::new(Chain {
            correlation_id: correlation_of(cause).to_owned(),
            event_id: cause.id.clone(),
            event_type: cause.event_type.clone().into_owned(),
        }))
    }

    /// The correlation id the chain carries.
    pub fn correlation_id(&self) -> &str {
        &self.0.correlation_id
    }

    /// The id of the event that caused the publish.
    pub fn event_id(&self) -> &EventId {
        &self.0.event_id
    }

    /// The CloudEvents `type` of the event that caused the publish.
    pub fn event_type(&self) -> &str {
        &self.0.event_type
    }
}

/// The correlation id of the chain `cause` belongs to: the one it carries, or its own id when it
/// carries none (it starts the chain).
pub(crate) fn correlation_of(cause: &Envelope) -> &str {
    cause.correlation_id.as_deref().unwrap_or(&cause.id)
}

/// Whether `error`, or one of its sources, is a publish refused as too deep in its causation
/// chain: the [`CausationChain`] it carries is looked for by type, so it is found however the
/// handler wrapped the publish's error (`?` into a boxed error, an `anyhow::Error`, an enum of
/// its own with the publish error as a source or `transparent`).
pub(crate) fn too_deep(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<CausationChain>() {
            return true;
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests;
