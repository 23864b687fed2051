//! A hybrid logical clock: the timestamps last-write-wins compares.
//!
//! A timestamp is a `u64`, `(wall-clock µs since the Unix epoch << 8) | logical counter`, so
//! timestamps order like wall-clock time when clocks agree, and still grow when the wall clock
//! stalls or steps back (the counter takes over; 256 ticks per microsecond before the counter
//! spills into the microsecond field, which is harmless: it only moves forward).
//! Microseconds, not milliseconds: two regions writing the same key within the same
//! millisecond would otherwise be ordered by their unrelated counters, not by time, and the
//! harness would rightly count a wrong winner even with perfectly agreeing clocks.
//! Stored in PostgreSQL `bigint`: the wall-clock part stays below 2^55 until the year 3111,
//! so the value stays below 2^63.
//!
//! - [`Hlc::tick`] (a local event, a write): `max(wall << 8, last + 1)`.
//! - [`Hlc::observe`] (receiving, i.e. reading a row written elsewhere): `last` is raised to
//!   the row's timestamp, so this region's next write orders after what it has seen.
//!
//! The wall clock is [`SystemTime::now`] and nothing else: the harness skews it with
//! libfaketime (`LD_PRELOAD`), and that skew is exactly what an LWW posture must be drilled
//! against. The clock is in memory only: a restarted app starts again from its wall clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bits of the logical counter.
const LOGICAL_BITS: u32 = 8;

/// The clock of one app instance, shared by all requests.
#[derive(Debug, Default)]
pub struct Hlc {
    /// The greatest timestamp issued or observed.
    last: AtomicU64,
}

impl Hlc {
    /// A clock that has issued nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new timestamp, greater than every one issued or observed before.
    pub fn tick(&self) -> u64 {
        self.tick_at(wall_us())
    }

    /// [`Hlc::tick`] with the wall clock reading `wall_us` (tests drive it by hand).
    fn tick_at(&self, wall_us: u64) -> u64 {
        let physical = wall_us << LOGICAL_BITS;
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            let next = physical.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next,
                Err(current) => last = current,
            }
        }
    }

    /// The receive rule: a timestamp read from a row (written here or in another region)
    /// raises the clock to it, if it is ahead.
    pub fn observe(&self, seen: u64) {
        self.last.fetch_max(seen, Ordering::AcqRel);
    }

    /// [`Hlc::observe`] for a `bigint` column (negative values, which the app never writes,
    /// are ignored).
    pub fn observe_i64(&self, seen: i64) {
        if let Ok(seen) = u64::try_from(seen) {
            self.observe(seen);
        }
    }
}

/// The wall clock, in microseconds since the Unix epoch (0 before it).
fn wall_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
        u64::try_from(d.as_micros()).unwrap_or(u64::MAX >> LOGICAL_BITS)
    })
}

/// A timestamp as a PostgreSQL `bigint` (always fits; see the module docs).
pub fn to_i64(hlc: u64) -> i64 {
    i64::try_from(hlc).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_follow_the_wall_clock_and_never_repeat() {
        let clock = Hlc::new();
        let a = clock.tick_at(1_000);
        assert_eq!(a, 1_000 << 8);
        // Same millisecond: the logical counter moves.
        let b = clock.tick_at(1_000);
        assert_eq!(b, (1_000 << 8) + 1);
        // The wall clock moves on: the counter resets.
        let c = clock.tick_at(1_001);
        assert_eq!(c, 1_001 << 8);
        assert!(a < b && b < c);
    }

    #[test]
    fn a_wall_clock_going_backwards_does_not_move_the_clock_back() {
        let clock = Hlc::new();
        let before = clock.tick_at(5_000);
        // The clock is stepped back two seconds (libfaketime, NTP).
        let after = clock.tick_at(3_000);
        assert_eq!(after, before + 1);
        assert_eq!(clock.tick_at(3_001), before + 2);
        // Once the wall clock passes the old reading again, it leads again.
        assert_eq!(clock.tick_at(5_001), 5_001 << 8);
    }

    #[test]
    fn observing_a_later_timestamp_orders_the_next_tick_after_it() {
        let clock = Hlc::new();
        clock.tick_at(1_000);
        // A row written by a region whose clock is 10 s ahead.
        let remote = (11_000 << 8) + 7;
        clock.observe(remote);
        let next = clock.tick_at(1_001);
        assert_eq!(next, remote + 1);
        // An older timestamp changes nothing.
        clock.observe(5);
        assert_eq!(clock.tick_at(1_002), remote + 2);
        clock.observe_i64(-1);
        assert_eq!(clock.tick_at(1_003), remote + 3);
    }

    #[test]
    fn concurrent_ticks_are_unique() {
        let clock = std::sync::Arc::new(Hlc::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let clock = clock.clone();
                std::thread::spawn(move || (0..10_000).map(|_| clock.tick()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn real_ticks_are_near_the_wall_clock() {
        let clock = Hlc::new();
        let t = clock.tick();
        let wall = wall_us();
        assert!((t >> LOGICAL_BITS) <= wall && wall - (t >> LOGICAL_BITS) < 1_000_000);
        assert!(i64::try_from(t).is_ok());
    }
}
