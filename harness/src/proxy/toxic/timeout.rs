//! `timeout`: no data gets through. With `timeout` > 0 the connection is closed once the
//! stream has been silent for `timeout` ms (each arriving chunk restarts the countdown, as in
//! Toxiproxy). With 0 it is a black hole: data is read and discarded and the connection stays
//! open until the toxic is removed — and then, as in Toxiproxy, connections that had the toxic
//! are closed, because their byte streams have holes in them. Clients reconnect, as they would
//! after a real partition outlived their TCP timeouts.

use super::{AttributeError, Attributes, MAX_MILLIS};
use std::time::Duration;

/// Attributes of the `timeout` toxic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeout {
    /// Milliseconds before the connection is closed; 0 = never (black hole).
    pub timeout: u64,
}

impl Timeout {
    /// Absent `timeout` is Toxiproxy's 0: a black hole.
    pub(super) fn from_attributes(a: &Attributes) -> Result<Self, AttributeError> {
        Ok(Timeout {
            timeout: a.int("timeout", "milliseconds", MAX_MILLIS)?,
        })
    }

    /// How long a silent stream stays open under the toxic.
    pub fn close_after(&self) -> Option<Duration> {
        (self.timeout > 0).then(|| Duration::from_millis(self.timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_a_black_hole_that_never_closes() {
        assert_eq!(Timeout { timeout: 0 }.close_after(), None);
        assert_eq!(
            Timeout { timeout: 250 }.close_after(),
            Some(Duration::from_millis(250))
        );
    }
}
