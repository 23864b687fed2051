//! `slicer`: each chunk is cut into slices of about `average_size` bytes (± `size_variation`)
//! written `delay` µs apart — to exercise clients that assume one read returns one message.

use super::Attributes;
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
    pub(super) fn from_attributes(a: &Attributes) -> Result<Self, String> {
        let s = Slicer {
            average_size: a.required_u64("average_size", "bytes")?,
            size_variation: a.u64("size_variation")?,
            delay: a.u64("delay")?,
        };
        if s.average_size == 0 {
            return Err("attribute 'average_size' must be at least 1 byte".into());
        }
        if s.size_variation > s.average_size {
            return Err(format!(
                "attribute 'size_variation' ({}) must not exceed 'average_size' ({})",
                s.size_variation, s.average_size
            ));
        }
        Ok(s)
    }

    /// The size of the next slice of a chunk with `remaining` bytes left (at least 1).
    pub fn next_slice(&self, remaining: usize, rng: &mut impl Rng) -> usize {
        let v = self.size_variation as i64;
        let offset = if v > 0 { rng.random_range(-v..=v) } else { 0 };
        let size = (self.average_size as i64 + offset).max(1) as usize;
        size.min(remaining)
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
        let err = Slicer::from_attributes(&Attributes(m.as_object().unwrap())).unwrap_err();
        assert!(err.contains("average_size"), "{err}");
    }

    #[test]
    fn variation_above_average_is_refused() {
        let m = serde_json::json!({"average_size": 2, "size_variation": 5});
        let err = Slicer::from_attributes(&Attributes(m.as_object().unwrap())).unwrap_err();
        assert!(err.contains("size_variation"), "{err}");
    }
}
