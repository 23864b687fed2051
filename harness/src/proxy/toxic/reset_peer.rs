//! `reset_peer`: as in Toxiproxy, the first data (or close) that arrives on the stream once the
//! toxic is in place is swallowed, and `timeout` ms later the connection is reset: both peers
//! see "connection reset by peer" (TCP RST). Unlike Toxiproxy, the reset is a real RST even on
//! connections opened before the toxic was added.

use super::{AttributeError, Attributes, MAX_MILLIS};
use std::time::Duration;

/// Attributes of the `reset_peer` toxic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResetPeer {
    /// Milliseconds before the reset; 0 resets at once.
    pub timeout: u64,
}

impl ResetPeer {
    /// Absent `timeout` is Toxiproxy's 0: reset at the first data.
    pub(super) fn from_attributes(a: &Attributes) -> Result<Self, AttributeError> {
        Ok(ResetPeer {
            timeout: a.int("timeout", "milliseconds", MAX_MILLIS)?,
        })
    }

    /// How long after the triggering data the connection is reset.
    pub fn reset_after(&self) -> Duration {
        Duration::from_millis(self.timeout)
    }
}
