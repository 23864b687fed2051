//! Kill node: SIGKILL to one node's process group (or `docker kill`), as a crashed machine.
//! Heal restarts it — except a primary that was deposed by a failover, which is left down.

use crate::stack::topology::NodeId;
use crate::stack::{Stack, StackError};

pub(super) async fn start(stack: &Stack, node: &NodeId) -> Result<(), StackError> {
    stack.kill(node).await
}

pub(super) async fn heal(stack: &Stack, node: &NodeId) -> Result<Option<String>, StackError> {
    if stack.restart(node).await? {
        Ok(None)
    } else {
        Ok(Some(format!(
            "{node} left down: it was a primary and has been deposed by a failover"
        )))
    }
}
