//! Event ids: the [`EventId`] type, and the UUID v7 ids tidings makes.
//!
//! Ids are made by the `uuid` crate as [`Uuid::now_v7`] makes them, [`Uuid::new_v7`] over a
//! process-wide [`ContextV7`] behind a mutex, but from the clock reading that also stamps the
//! envelope's `time`, so the two agree and a publish reads the clock once. RFC 9562's
//! "fixed-length dedicated counter" method: 48 bits of Unix milliseconds, a 42-bit counter that
//! uuid reseeds with 41 random bits each millisecond and counts up within it (so ids made in one
//! process increase), then 32 random bits drawn for every id. With uuid's `fast-rng`
//! feature the random bits come from `rand::random`, that is `rand`'s `ThreadRng`: ChaCha12,
//! seeded from the operating system and reseeded after every 64 KiB of output, a cryptographically
//! secure generator, so one id does not tell what the next one's random bits will be. (Without
//! `fast-rng`, uuid would ask the kernel through `getrandom` for every id.) The text is written by
//! uuid's own encoder into the id's inline buffer.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use arrayvec::ArrayString;
use uuid::{ContextV7, Timestamp, Uuid};

/// The counter of every id tidings makes, uuid's own v7 context as [`Uuid::now_v7`] keeps one:
/// ids made in this process increase, whatever the thread, and a clock that steps back does not
/// break their order.
static CONTEXT: Mutex<ContextV7> = Mutex::new(ContextV7::new());

/// The CloudEvents `id` of an event: any text, unique per source.
///
/// Reads as a `&str` (it derefs to one). Ids as long as a UUID's text are kept inline, so making
/// one for every published event allocates nothing.
#[derive(Clone)]
pub struct EventId(Repr);

/// Inline capacity: a UUID's 36 characters fit, and the type is no larger than with fewer.
const INLINE: usize = 38;

// `ArrayString` reads back as a `str` without checking its bytes again: the id is read on every
// size check and every header written, where a UTF-8 check cost about 180 instructions.
#[derive(Clone)]
enum Repr {
    Inline(ArrayString<INLINE>),
    Heap(Box<str>),
}

impl EventId {
    /// A new UUID v7 id, time-ordered.
    pub fn new() -> Self {
        Self::v7_at(SystemTime::now())
    }

    /// A UUID v7 id for an event that happens at `time`: what [`Uuid::now_v7`] makes, from a
    /// clock reading the caller already has (an envelope's `time`).
    pub(crate) fn v7_at(time: SystemTime) -> Self {
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let uuid = Uuid::new_v7(Timestamp::from_unix(
            &CONTEXT,
            since_epoch.as_secs(),
            since_epoch.subsec_nanos(),
        ));
        let mut buffer = Uuid::encode_buffer();
        let text = uuid.hyphenated().encode_lower(&mut buffer);
        EventId::from(&*text)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(text) => text,
            Repr::Heap(text) => text,
        }
    }
}

impl Default for EventId {
    /// A new UUID v7 id.
    fn default() -> Self {
        Self::new()
    }
}

impl From<&str> for EventId {
    fn from(text: &str) -> Self {
        match ArrayString::from(text) {
            Ok(inline) => EventId(Repr::Inline(inline)),
            Err(_) => EventId(Repr::Heap(text.into())),
        }
    }
}

impl From<String> for EventId {
    fn from(text: String) -> Self {
        if text.len() <= INLINE {
            EventId::from(text.as_str())
        } else {
            EventId(Repr::Heap(text.into_boxed_str()))
        }
    }
}

impl From<&String> for EventId {
    fn from(text: &String) -> Self {
        EventId::from(text.as_str())
    }
}

impl From<EventId> for String {
    fn from(id: EventId) -> Self {
        id.as_str().to_owned()
    }
}

impl Deref for EventId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for EventId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for EventId {
    fn as_ref(&self) -> &[u8] {
        self.as_str().as_bytes()
    }
}

impl Borrow<str> for EventId {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for EventId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for EventId {}

impl PartialOrd for EventId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EventId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for EventId {
    // As `str` hashes, which `Borrow<str>` requires.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for EventId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for EventId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for EventId {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<EventId> for str {
    fn eq(&self, other: &EventId) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<EventId> for &str {
    fn eq(&self, other: &EventId) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<EventId> for String {
    fn eq(&self, other: &EventId) -> bool {
        self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn burst(n: usize) -> Vec<Uuid> {
        (0..n)
            .map(|_| Uuid::parse_str(&EventId::new()).expect("a UUID"))
            .collect()
    }

    #[test]
    fn ids_are_unique_increasing_v7_of_the_rfc_variant() {
        let ids = burst(10_000);
        for id in &ids {
            assert_eq!(id.get_version_num(), 7);
            // RFC 9562 keeps RFC 4122's variant bits, `10`.
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(id.as_bytes()[8] >> 6, 0b10);
        }
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids made in a burst increase, and so are unique"
        );
        let (secs, _) = ids[0].get_timestamp().expect("a v7 timestamp").to_unix();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            secs <= now && now - secs < 60,
            "the timestamp is the current time"
        );
    }

    #[test]
    fn ids_made_in_a_row_share_no_random_tail() {
        // The 62 bits after the variant: the low 30 bits of uuid's counter, then 32 bits drawn
        // afresh for every id. Two ids of one millisecond differ in the counter; the drawn bits
        // match by chance once in 2^32 pairs, and never all of 100 pairs.
        const TAIL: u128 = (1 << 62) - 1;
        const DRAWN: u128 = (1 << 32) - 1;
        let ids = burst(101);
        let mut same_drawn = 0;
        for pair in ids.windows(2) {
            let (a, b) = (pair[0].as_u128(), pair[1].as_u128());
            assert_ne!(a & TAIL, b & TAIL, "{} then {}", pair[0], pair[1]);
            same_drawn += usize::from(a & DRAWN == b & DRAWN);
        }
        assert!(
            same_drawn < 2,
            "{same_drawn} of 100 pairs drew the same bits"
        );
    }

    #[test]
    fn text_is_the_uuid_crate_s() {
        for _ in 0..1000 {
            let id = EventId::new();
            let uuid = Uuid::parse_str(&id).expect("a UUID");
            assert_eq!(id.as_str(), uuid.hyphenated().to_string());
        }
    }

    #[test]
    fn ids_read_as_their_text_short_or_long() {
        let made = EventId::new();
        assert_eq!(made.len(), 36);
        assert_eq!(Uuid::parse_str(&made).unwrap().get_version_num(), 7);
        for text in [
            "",
            "7",
            "x".repeat(INLINE).as_str(),
            "y".repeat(INLINE + 1).as_str(),
        ] {
            let id = EventId::from(text);
            assert_eq!(id, text);
            assert_eq!(id.as_str(), text);
            assert_eq!(String::from(id.clone()), text);
            assert_eq!(EventId::from(text.to_owned()), id);
            assert_eq!(format!("{id}"), text);
            assert_eq!(format!("{id:?}"), format!("{text:?}"));
        }
        let set: std::collections::HashSet<EventId> = ["a".into(), "b".into()].into();
        assert!(set.contains("a") && !set.contains("c"), "looked up by str");
        let (a, b) = (EventId::from("a"), EventId::from("b"));
        assert!(a < b && b.cmp(&a) == std::cmp::Ordering::Greater);
    }

    #[test]
    fn threads_make_different_ids() {
        let other = std::thread::spawn(|| (0..100).map(|_| EventId::new()).collect::<Vec<_>>());
        let mine: Vec<EventId> = (0..100).map(|_| EventId::new()).collect();
        let theirs = other.join().unwrap();
        assert!(mine.iter().all(|id| !theirs.contains(id)));
    }
}
