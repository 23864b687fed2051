//! `slow_close`: when the source closes, the close reaches the other side `delay` ms later.

use super::Attributes;
use std::time::Duration;

/// Attributes of the `slow_close` toxic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlowClose {
    /// Delay of the close in milliseconds.
    pub delay: u64,
}

impl SlowClose {
    pub(super) fn from_attributes(a: &Attributes) -> Result<Self, String> {
        Ok(SlowClose {
            delay: a.required_u64("delay", "milliseconds")?,
        })
    }

    /// How long the close is held back.
    pub fn close_delay(&self) -> Duration {
        Duration::from_millis(self.delay)
    }
}
