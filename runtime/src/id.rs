//! UUID v7 event ids, made without a system call per id.
//!
//! RFC 9562 v7 layout with its "fixed-length dedicated counter" method: 48 bits of Unix
//! milliseconds, then a 42-bit counter that starts at a random value each millisecond and counts
//! up within it, then 32 random bits. Ids made on one thread are strictly increasing; the
//! randomness comes from a per-thread generator seeded once from the operating system, because
//! asking the kernel for random bytes on every id costs more than the rest of a publish.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

const COUNTER_BITS: u32 = 42;
const COUNTER_LOW_BITS: u32 = 30;

struct State {
    millis: u64,
    counter: u64,
    rng: u64,
}

thread_local! {
    static STATE: Cell<Option<State>> = const { Cell::new(None) };
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

/// A new UUID v7 for an event that happens at `time`.
pub(crate) fn new_v7_at(time: SystemTime) -> Uuid {
    let now = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut state = STATE.take().unwrap_or_else(|| State {
        millis: 0,
        counter: 0,
        rng: seed(),
    });
    if now > state.millis {
        state.millis = now;
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
    let value = (u128::from(state.millis & 0xFFFF_FFFF_FFFF) << 80)
        | (0x7 << 76)
        | (u128::from(state.counter >> COUNTER_LOW_BITS) << 64)
        | (0b10 << 62)
        | (u128::from(state.counter & ((1 << COUNTER_LOW_BITS) - 1)) << 32)
        | u128::from(random);
    STATE.set(Some(state));
    Uuid::from_u128(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_rfc_variant_and_increase_on_a_thread() {
        let ids: Vec<Uuid> = (0..10_000).map(|_| new_v7_at(SystemTime::now())).collect();
        for id in &ids {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        }
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids made on one thread increase"
        );
        let (secs, _) = ids[0].get_timestamp().expect("a v7 timestamp").to_unix();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            secs <= now && now - secs < 60,
            "the timestamp is the current time"
        );
    }

    #[test]
    fn threads_make_different_ids() {
        let other = std::thread::spawn(|| {
            (0..100)
                .map(|_| new_v7_at(SystemTime::now()))
                .collect::<Vec<_>>()
        });
        let mine: Vec<Uuid> = (0..100).map(|_| new_v7_at(SystemTime::now())).collect();
        let theirs = other.join().unwrap();
        assert!(mine.iter().all(|id| !theirs.contains(id)));
    }
}
