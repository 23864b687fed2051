//! `latency`: every chunk is delivered `latency` ± `jitter` milliseconds after it arrived.

use super::{AttributeError, Attributes, MAX_MILLIS};
use rand::Rng;
use std::time::Duration;

/// Attributes of the `latency` toxic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    /// Added delay in milliseconds.
    pub latency: u64,
    /// Uniform jitter in milliseconds, added or subtracted per chunk.
    pub jitter: u64,
}

impl Latency {
    /// Absent attributes are Toxiproxy's 0; each at most [`MAX_MILLIS`].
    pub(super) fn from_attributes(a: &Attributes) -> Result<Self, AttributeError> {
        Ok(Latency {
            latency: a.int("latency", "milliseconds", MAX_MILLIS)?,
            jitter: a.int("jitter", "milliseconds", MAX_MILLIS)?,
        })
    }

    /// The delay for one chunk, measured from when the proxy read it. With jitter it is drawn
    /// uniformly from `[latency - jitter, latency + jitter]`, clamped at zero. Chunks never
    /// overtake each other: the pump delivers in order, so a short draw waits for the chunk
    /// before it, as TCP would.
    pub fn delay(&self, rng: &mut impl Rng) -> Duration {
        let base = self.latency as i128 * 1000;
        let jitter = self.jitter as i128 * 1000;
        let offset = if jitter > 0 {
            rng.random_range(-jitter..=jitter)
        } else {
            0
        };
        Duration::from_micros((base + offset).max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn fixed_latency_without_jitter() {
        let mut rng = StdRng::seed_from_u64(1);
        let t = Latency {
            latency: 40,
            jitter: 0,
        };
        assert_eq!(t.delay(&mut rng), Duration::from_millis(40));
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let mut rng = StdRng::seed_from_u64(7);
        let t = Latency {
            latency: 40,
            jitter: 10,
        };
        let draws: Vec<_> = (0..1000).map(|_| t.delay(&mut rng)).collect();
        assert!(
            draws
                .iter()
                .all(|d| *d >= Duration::from_millis(30) && *d <= Duration::from_millis(50))
        );
        assert!(draws.iter().any(|d| *d < Duration::from_millis(35)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(45)));
    }

    #[test]
    fn jitter_larger_than_latency_never_goes_negative() {
        let mut rng = StdRng::seed_from_u64(3);
        let t = Latency {
            latency: 1,
            jitter: 50,
        };
        assert!((0..1000).all(|_| t.delay(&mut rng) <= Duration::from_millis(51)));
    }
}
