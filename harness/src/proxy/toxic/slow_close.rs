//! `slow_close`: when the source closes, the close reaches the other side `delay` ms later.

use super::{AttributeError, Attributes, MAX_MILLIS};
use std::time::Duration;

/// Attributes of the `slow_close` toxic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlowClose {
    /// Delay of the close in milliseconds.
    pub delay: u64,
}

impl SlowClose {
    /// Absent `delay` is Toxiproxy's 0.
    pub(super) fn from_attributes(a: &Attributes) -> Result<Self, AttributeError> {
        Ok(SlowClose {
            delay: a.int("delay", "milliseconds", MAX_MILLIS)?,
        })
    }

    /// How long the close is held back.
    pub fn close_delay(&self) -> Duration {
        Duration::from_millis(self.delay)
    }
}
