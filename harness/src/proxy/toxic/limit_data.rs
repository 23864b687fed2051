//! `limit_data`: the connection is closed once `bytes` bytes have passed on the stream.

use super::{AttributeError, Attributes, MAX_COUNT};

/// Attributes of the `limit_data` toxic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LimitData {
    /// Bytes allowed through before the connection is closed.
    pub bytes: u64,
}

impl LimitData {
    /// Absent `bytes` is Toxiproxy's 0: the connection closes at its first data.
    pub(super) fn from_attributes(a: &Attributes) -> Result<Self, AttributeError> {
        Ok(LimitData {
            bytes: a.int("bytes", "bytes", MAX_COUNT)?,
        })
    }

    /// How many of `len` bytes may still pass after `passed` bytes went through, and whether the
    /// connection must close once they have.
    pub fn allow(&self, passed: u64, len: usize) -> (usize, bool) {
        let left = self.bytes.saturating_sub(passed);
        if (len as u64) < left {
            (len, false)
        } else {
            (left as usize, true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_exactly_at_the_limit() {
        let t = LimitData { bytes: 10 };
        assert_eq!(t.allow(0, 4), (4, false));
        assert_eq!(t.allow(4, 6), (6, true));
        assert_eq!(t.allow(4, 100), (6, true));
        assert_eq!(t.allow(10, 1), (0, true));
    }
}
