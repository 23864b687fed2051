//! `bandwidth`: the stream is paced to at most `rate` KB/s (1 KB = 1000 bytes, as Toxiproxy).

use super::{AttributeError, Attributes, MAX_COUNT};
use std::time::Duration;

/// Attributes of the `bandwidth` toxic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bandwidth {
    /// Rate limit in KB/s (1000 bytes per KB). 0 lets nothing through.
    pub rate: u64,
}

impl Bandwidth {
    /// Absent `rate` is Toxiproxy's 0 (nothing passes). At most [`Bandwidth::MAX_RATE`].
    pub(super) fn from_attributes(a: &Attributes) -> Result<Self, AttributeError> {
        Ok(Bandwidth {
            rate: a.int("rate", "KB/s", Self::MAX_RATE)?,
        })
    }

    /// The largest rate: its bytes per second (× 1000) still fit Toxiproxy's int64.
    pub const MAX_RATE: u64 = MAX_COUNT / 1000;

    /// Bytes per second.
    pub fn bytes_per_s(&self) -> u64 {
        self.rate.saturating_mul(1000)
    }

    /// How long `bytes` take at this rate; `None` when the rate is 0 (nothing passes).
    pub fn transmit_time(&self, bytes: usize) -> Option<Duration> {
        let bps = self.bytes_per_s();
        (bps > 0).then(|| Duration::from_secs_f64(bytes as f64 / bps as f64))
    }

    /// The largest piece worth writing at once: about 10 ms of data, so the pacing stays smooth
    /// and a toxic change is noticed quickly, but never less than one byte.
    pub fn piece_size(&self) -> usize {
        ((self.bytes_per_s() / 100) as usize).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_in_kilobytes_of_1000_bytes() {
        let t = Bandwidth { rate: 100 };
        assert_eq!(t.transmit_time(100_000), Some(Duration::from_secs(1)));
        assert_eq!(t.piece_size(), 1000);
    }

    #[test]
    fn zero_rate_passes_nothing() {
        assert_eq!(Bandwidth { rate: 0 }.transmit_time(1), None);
    }
}
