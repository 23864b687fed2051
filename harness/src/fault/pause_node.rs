//! Pause node: the node's processes are frozen (SIGSTOP to the whole tree, or `docker
//! pause`), so its connections stay open but nothing answers — the grey failure a stalled VM
//! or a long GC pause looks like. Heal resumes it.

use crate::stack::topology::NodeId;
use crate::stack::{Stack, StackError};

pub(super) async fn start(stack: &Stack, node: &NodeId) -> Result<(), StackError> {
    stack.pause(node, true).await
}

pub(super) async fn heal(stack: &Stack, node: &NodeId) -> Result<(), StackError> {
    stack.pause(node, false).await
}
