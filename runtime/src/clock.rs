//! The wall clock that stamps events (`time` and the id's timestamp).
//!
//! Reading the system clock costs about 25 ns even where the kernel keeps time with the CPU's
//! time stamp counter, most of it the fence that orders the counter read; at a million events a
//! second that fence is a large share of a publish. Where the kernel's clock source is that
//! counter (so the kernel has found it constant-rate and in step across cores), each thread reads
//! the counter itself and scales it from an anchor: a system clock reading of its own, retaken
//! every ten milliseconds. The stamps follow the system clock's slews within microseconds and its
//! steps within those ten milliseconds. Anywhere else this is `SystemTime::now()`.

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
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::SystemTime;

    use super::unix_ns;

    /// How long a thread scales the counter from one system clock reading before it takes
    /// another. The error between readings is the rate's error times this: microseconds.
    const ANCHOR_PERIOD_NS: f64 = 10_000_000.0;

    /// The rate is measured over at least this much system time before the counter is used.
    const CALIBRATION_NS: u64 = 10_000_000;

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

    /// The first joint reading of the process, which every later one measures the rate against.
    static BASE: OnceLock<Option<(u64, u64)>> = OnceLock::new();
    /// Nanoseconds per counter tick as `f64` bits; 0 while not yet measured.
    static RATE: AtomicU64 = AtomicU64::new(0);

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

    /// Takes a new anchor for this thread, refining the rate over the span since the base.
    #[cold]
    fn reanchor() -> Option<u64> {
        let (base_counter, base_ns) = (*BASE.get_or_init(|| {
            let source = std::fs::read_to_string(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            )
            .ok()?;
            (source.trim() == "tsc").then(|| (counter(), unix_ns(SystemTime::now())))
        }))?;
        let (unix_ns, counter) = (unix_ns(SystemTime::now()), counter());
        let span_ns = unix_ns.saturating_sub(base_ns);
        let mut rate = f64::from_bits(RATE.load(Ordering::Relaxed));
        if span_ns >= CALIBRATION_NS && counter > base_counter {
            rate = span_ns as f64 / (counter - base_counter) as f64;
            RATE.store(rate.to_bits(), Ordering::Relaxed);
        }
        let span = if rate > 0.0 {
            (ANCHOR_PERIOD_NS / rate) as u64
        } else {
            0
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
