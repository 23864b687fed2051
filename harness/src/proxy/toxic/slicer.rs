//! `slicer`: each chunk is cut into slices of about `average_size` bytes (± `size_variation`)
//! written `delay` µs apart — to exercise clients that assume one read returns one message.

use super::{AttributeError, Attributes, MAX_COUNT, MAX_MICROS};
use rand::Rng;
use std::time::Duration;

/// Attributes of the `slicer` toxic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Slicer {
    /// Mean slice size in bytes.
    pub average_size: u64,
    /// Maximum deviation from the mean, in bytes.
    pub size_variation: u64,
    /// Pause between slices in microseconds.
    pub delay: u64,
}

impl Slicer {
    /// `average_size` is required and at least 1: Toxiproxy's default of 0 makes its slicer
    /// recurse without end on the first byte. `size_variation` and `delay` default to 0.
    pub(super) fn from_attributes(a: &Attributes) -> Result<Self, AttributeError> {
        let s = Slicer {
            average_size: a.required_int(
                "average_size",
                "bytes",
                MAX_COUNT,
                "bytes; Toxiproxy's default of 0 never finishes slicing",
            )?,
            size_variation: a.int("size_variation", "bytes", MAX_COUNT)?,
            delay: a.int("delay", "microseconds", MAX_MICROS)?,
        };
        if s.average_size == 0 {
            return Err(AttributeError::Invalid {
                attribute: "average_size",
                reason: "must be at least 1 byte".into(),
            });
        }
        if s.size_variation > s.average_size {
            return Err(AttributeError::Invalid {
                attribute: "size_variation",
                reason: format!(
                    "({}) must not exceed 'average_size' ({})",
                    s.size_variation, s.average_size
                ),
            });
        }
        Ok(s)
    }

    /// The size of the next slice of a chunk with `remaining` bytes left (at least 1).
    pub fn next_slice(&self, remaining: usize, rng: &mut impl Rng) -> usize {
        // Both are at most i64::MAX, so their sum needs i128.
        let v = self.size_variation as i128;
        let offset = if v > 0 { rng.random_range(-v..=v) } else { 0 };
        let size = (self.average_size as i128 + offset).max(1);
        size.min(remaining as i128) as usize
    }

    /// Pause between two slices.
    pub fn gap(&self) -> Duration {
        Duration::from_micros(self.delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn slices_cover_the_chunk_within_bounds() {
        let mut rng = StdRng::seed_from_u64(9);
        let s = Slicer {
            average_size: 10,
            size_variation: 4,
            delay: 0,
        };
        let mut left = 1000usize;
        while left > 0 {
            let n = s.next_slice(left, &mut rng);
            assert!((1..=14).contains(&n) && n <= left);
            assert!(n >= 6 || n == left);
            left -= n;
        }
    }

    #[test]
    fn zero_average_is_refused() {
        let m = serde_json::json!({"average_size": 0});
        let err = Slicer::from_attributes(&Attributes(m.as_object().unwrap()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("average_size"), "{err}");
    }

    #[test]
    fn variation_above_average_is_refused() {
        let m = serde_json::json!({"average_size": 2, "size_variation": 5});
        let err = Slicer::from_attributes(&Attributes(m.as_object().unwrap()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("size_variation"), "{err}");
    }
}
