//! The wall clock that stamps events (`time` and the id's timestamp).
//!
//! Reading the system clock costs about 25 ns even where the kernel keeps time with the CPU's
//! time stamp counter, most of it the fence that orders the counter read; at a million events a
//! second that fence is a large share of a publish. Where the kernel's clock source is that
//! counter (so the kernel has found it constant-rate and in step across cores; looked at again
//! every second), each thread reads the counter itself and scales it from an anchor: a system
//! clock reading of its own, retaken every ten milliseconds, with the counter's rate measured
//! against the monotonic clock. The stamps follow the system clock's slews within microseconds
//! and its steps within those ten milliseconds. Anywhere else this is `SystemTime::now()`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The current wall-clock time, as nanoseconds since the Unix epoch.
pub(crate) fn now_unix_ns() -> u64 {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    if let Some(now) = tsc::now() {
        return now;
    }
    unix_ns(SystemTime::now())
}

/// Nanoseconds since the Unix epoch as a time.
pub(crate) fn time_of(unix_ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(unix_ns)
}

/// A time as nanoseconds since the Unix epoch (0 before it, saturating far after it).
fn unix_ns(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod tsc {
    use std::cell::Cell;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Instant, SystemTime};

    use super::unix_ns;

    /// How long a thread scales the counter from one system clock reading before it takes
    /// another. The error between readings is the rate's error times this: microseconds.
    const ANCHOR_PERIOD_NS: f64 = 10_000_000.0;

    /// The rate is measured over at least this much time before the counter is used.
    const CALIBRATION_NS: u128 = 10_000_000;

    /// How often the kernel's clock source is looked at again: it leaves the counter when it
    /// finds it unstable, and then so does this clock.
    const SOURCE_CHECK_NS: u64 = 1_000_000_000;

    /// Where the counter and the system clock were read together, and how this thread scales
    /// the counter from there.
    #[derive(Clone, Copy)]
    struct Anchor {
        counter: u64,
        unix_ns: u64,
        /// How many ticks past `counter` the anchor serves; 0 until the rate is known.
        span: u64,
        /// Nanoseconds per tick.
        rate: f64,
    }

    thread_local! {
        static ANCHOR: Cell<Anchor> = const {
            Cell::new(Anchor {
                counter: 0,
                unix_ns: 0,
                span: 0,
                rate: 0.0,
            })
        };
    }

    /// The first reading of the counter with the monotonic clock, which every later one
    /// measures the rate against. The monotonic clock is never stepped, so a step of the wall
    /// clock moves the stamps with it (at the next anchor) without skewing the rate.
    static BASE: OnceLock<Option<(u64, Instant)>> = OnceLock::new();
    /// Set once the kernel's clock source is no longer the counter.
    static LEFT: AtomicBool = AtomicBool::new(false);
    /// When the clock source is next looked at, in nanoseconds after the base.
    static NEXT_SOURCE_CHECK: AtomicU64 = AtomicU64::new(SOURCE_CHECK_NS);

    fn source_is_counter() -> bool {
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .is_ok_and(|source| source.trim() == "tsc")
    }

    /// `read` with the counter at the same moment: the middle of the tightest of three tries,
    /// so that a thread preempted between the two readings does not pair them wrongly.
    fn with_counter<T>(read: impl Fn() -> T) -> (u64, T) {
        let mut best: Option<(u64, u64, T)> = None;
        for _ in 0..3 {
            let before = counter();
            let value = read();
            let gap = counter().wrapping_sub(before);
            if best.as_ref().is_none_or(|(tightest, _, _)| gap < *tightest) {
                best = Some((gap, before.wrapping_add(gap / 2), value));
            }
        }
        let (_, at, value) = best.expect("three tries");
        (at, value)
    }

    fn counter() -> u64 {
        // SAFETY: `rdtsc` exists on every x86-64 processor and reads a register; it has no
        // memory effects and no precondition.
        #[allow(unsafe_code)]
        unsafe {
            std::arch::x86_64::_rdtsc()
        }
    }

    /// The time from the counter, or `None` where the counter is not the kernel's clock.
    pub(super) fn now() -> Option<u64> {
        let now = counter();
        let anchor = ANCHOR.get();
        // One comparison: past the anchor (a counter behind it wraps around) and within its span.
        let since = now.wrapping_sub(anchor.counter);
        if since < anchor.span {
            return Some(anchor.unix_ns + (since as f64 * anchor.rate) as u64);
        }
        reanchor()
    }

    /// Takes a new anchor for this thread, with the rate measured over the span since the base.
    #[cold]
    fn reanchor() -> Option<u64> {
        let (base_counter, base_instant) =
            (*BASE.get_or_init(|| source_is_counter().then(|| with_counter(Instant::now))))?;
        if LEFT.load(Ordering::Relaxed) {
            return None;
        }
        let (counter, (system, instant)) = with_counter(|| (SystemTime::now(), Instant::now()));
        let elapsed = instant.duration_since(base_instant).as_nanos();
        let since_base = u64::try_from(elapsed).unwrap_or(u64::MAX);
        if since_base >= NEXT_SOURCE_CHECK.load(Ordering::Relaxed) {
            NEXT_SOURCE_CHECK.store(
                since_base.saturating_add(SOURCE_CHECK_NS),
                Ordering::Relaxed,
            );
            if !source_is_counter() {
                LEFT.store(true, Ordering::Relaxed);
                return None;
            }
        }
        let unix_ns = unix_ns(system);
        let (rate, span) = if elapsed >= CALIBRATION_NS && counter > base_counter {
            let rate = elapsed as f64 / (counter - base_counter) as f64;
            (rate, (ANCHOR_PERIOD_NS / rate) as u64)
        } else {
            (0.0, 0)
        };
        ANCHOR.set(Anchor {
            counter,
            unix_ns,
            span,
            rate,
        });
        Some(unix_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_system_clock() {
        // Past calibration and across several anchors, every stamp lies within a millisecond of
        // the system clock read around it.
        let start = SystemTime::now();
        let mut worst = Duration::ZERO;
        while start.elapsed().unwrap_or_default() < Duration::from_millis(60) {
            let before = SystemTime::now();
            let stamp = time_of(now_unix_ns());
            let after = SystemTime::now();
            let off = if stamp < before {
                before.duration_since(stamp).unwrap()
            } else {
                stamp.duration_since(after).unwrap_or_default()
            };
            worst = worst.max(off);
        }
        assert!(
            worst < Duration::from_millis(1),
            "stamps stray {worst:?} from the system clock"
        );
    }

    #[test]
    fn threads_get_the_time_too() {
        let stamp = time_of(std::thread::spawn(now_unix_ns).join().unwrap());
        let off = SystemTime::now().duration_since(stamp).unwrap_or_default();
        assert!(off < Duration::from_secs(1), "{off:?}");
    }
}
