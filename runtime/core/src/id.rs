//! Event ids: the [`EventId`] type, and the UUID v7 ids tidings makes, without a system call
//! per id.
//!
//! RFC 9562 v7 layout with its "fixed-length dedicated counter" method: 48 bits of Unix
//! milliseconds, then a 42-bit counter that starts at a random value each millisecond and counts
//! up within it, then 32 random bits. Ids made on one thread are strictly increasing; the
//! randomness comes from a per-thread generator seeded once from the operating system, because
//! asking the kernel for random bytes on every id costs more than the rest of a publish.

use std::borrow::Borrow;
use std::cell::Cell;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use uuid::Uuid;

/// The CloudEvents `id` of an event: any text, unique per source.
///
/// Reads as a `&str` (it derefs to one). Ids as long as a UUID's text are kept inline, so making
/// one for every published event allocates nothing.
#[derive(Clone)]
pub struct EventId(Repr);

/// Inline capacity: a UUID's 36 characters fit, and the type is no larger than with fewer.
const INLINE: usize = 38;

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl EventId {
    /// A new UUID v7 id, time-ordered.
    pub fn new() -> Self {
        Self::v7_at(crate::clock::now_unix_ns())
    }

    /// A UUID v7 id for an event that happens `unix_ns` nanoseconds after the Unix epoch.
    pub(crate) fn v7_at(unix_ns: u64) -> Self {
        let mut bytes = [0; INLINE];
        hyphenated(new_v7(unix_ns / 1_000_000), &mut bytes);
        EventId(Repr::Inline {
            len: uuid::fmt::Hyphenated::LENGTH as u8,
            bytes,
        })
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Only ever filled from a `str`, so this cannot fail; checking spares an `unsafe`
            // block for the price of a short ASCII scan.
            Repr::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)])
                .expect("an inline id holds the bytes of a str"),
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
        if text.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            EventId(Repr::Inline {
                len: text.len() as u8,
                bytes,
            })
        } else {
            EventId(Repr::Heap(text.into()))
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

const COUNTER_BITS: u32 = 42;
const COUNTER_LOW_BITS: u32 = 30;

#[derive(Clone, Copy)]
struct State {
    millis: u64,
    counter: u64,
    rng: u64,
    seeded: bool,
}

thread_local! {
    static STATE: Cell<State> = const {
        Cell::new(State {
            millis: 0,
            counter: 0,
            rng: 0,
            seeded: false,
        })
    };
}

/// SplitMix64: tiny, fast and well distributed; the seed is what makes ids unpredictable.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn seed() -> u64 {
    // One id from the uuid crate draws its random bits from the operating system.
    let random = Uuid::now_v7().as_u128();
    (random as u64) ^ ((random >> 64) as u64).rotate_left(17)
}

/// A new UUID v7 for an event that happens `unix_ms` milliseconds after the Unix epoch.
fn new_v7(unix_ms: u64) -> u128 {
    let mut state = STATE.get();
    if !state.seeded {
        state.rng = seed();
        state.seeded = true;
    }
    if unix_ms > state.millis {
        state.millis = unix_ms;
        // The top counter bit starts clear, leaving room to count up within the millisecond.
        state.counter = next_random(&mut state.rng) >> (64 - (COUNTER_BITS - 1));
    } else {
        // Same millisecond, or the clock went back: keep order by counting on.
        state.counter += 1;
        if state.counter >> COUNTER_BITS != 0 {
            state.millis += 1;
            state.counter = 0;
        }
    }
    let random = next_random(&mut state.rng) as u32;
    STATE.set(state);
    (u128::from(state.millis & 0xFFFF_FFFF_FFFF) << 80)
        | (0x7 << 76)
        | (u128::from(state.counter >> COUNTER_LOW_BITS) << 64)
        | (0b10 << 62)
        | (u128::from(state.counter & ((1 << COUNTER_LOW_BITS) - 1)) << 32)
        | u128::from(random)
}

/// Eight lower-case hex digits of `x`, most significant first: each nibble spread into a byte
/// of its own, then turned into its digit, all eight at once.
fn hex8(x: u32) -> [u8; 8] {
    let mut x = u64::from(x);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    // 0x01 in each byte whose nibble is 10 or more, which `a`..`f` start 0x27 past `9` + 1.
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (x + 0x3030_3030_3030_3030 + letters * 0x27).to_be_bytes()
}

/// The hyphenated lower-case text of a UUID, 8-4-4-4-12.
fn hyphenated(uuid: u128, out: &mut [u8; INLINE]) {
    let [a, b, c, d] = [96, 64, 32, 0].map(|shift| hex8((uuid >> shift) as u32));
    out[..8].copy_from_slice(&a);
    out[8] = b'-';
    out[9..13].copy_from_slice(&b[..4]);
    out[13] = b'-';
    out[14..18].copy_from_slice(&b[4..]);
    out[18] = b'-';
    out[19..23].copy_from_slice(&c[..4]);
    out[23] = b'-';
    out[24..28].copy_from_slice(&c[4..]);
    out[28..36].copy_from_slice(&d);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_rfc_variant_and_increase_on_a_thread() {
        let ids: Vec<Uuid> = (0..10_000)
            .map(|_| Uuid::parse_str(&EventId::new()).expect("a UUID"))
            .collect();
        for id in &ids {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        }
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids made on one thread increase"
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
    fn text_is_the_uuid_crate_s() {
        let mut rng = seed();
        for value in [0, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210]
            .into_iter()
            .chain((0..1000).map(|_| {
                u128::from(next_random(&mut rng)) << 64 | u128::from(next_random(&mut rng))
            }))
        {
            let mut ours = [0; INLINE];
            hyphenated(value, &mut ours);
            let theirs = Uuid::from_u128(value).hyphenated().to_string();
            assert_eq!(&ours[..36], theirs.as_bytes());
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
