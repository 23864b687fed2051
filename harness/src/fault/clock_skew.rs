//! Clock skew: shifts an app's wall clock by an offset, without its cooperation, while it
//! runs: the app is started under libfaketime (`LD_PRELOAD`) reading its offset from a file
//! on every clock read, and the fault rewrites that file (inside the container on Docker).
//! Monotonic time is not faked (`FAKETIME_DONT_FAKE_MONOTONIC=1`), so timers and timeouts
//! keep working. Heal sets the offset back to zero.

use crate::stack::topology::NodeId;
use crate::stack::{Stack, StackError};

pub(super) async fn start(stack: &Stack, node: &NodeId, offset_ms: i64) -> Result<(), StackError> {
    stack.set_clock_offset(node, offset_ms).await
}

pub(super) async fn heal(stack: &Stack, node: &NodeId) -> Result<(), StackError> {
    stack.set_clock_offset(node, 0).await
}

/// libfaketime's spelling of an offset: seconds with a sign and a decimal point (`+0.500`;
/// `+500ms` would mean 500 minutes, and a decimal comma is silently ignored).
pub fn faketime_offset(offset_ms: i64) -> String {
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let abs = offset_ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_signed_seconds_with_a_point() {
        assert_eq!(faketime_offset(500), "+0.500");
        assert_eq!(faketime_offset(-2250), "-2.250");
        assert_eq!(faketime_offset(0), "+0.000");
    }
}
