//! Kill region: every node of a region killed at once. Heal brings the region back: database
//! first (unless it is a deposed primary), then cache, then app.

use crate::stack::topology::{NodeId, Role};
use crate::stack::{Stack, StackError};

pub(super) async fn start(stack: &Stack, region: &str) -> Result<(), StackError> {
    let nodes: Vec<NodeId> = stack
        .nodes()
        .filter(|n| n.region == region)
        .cloned()
        .collect();
    stack.kill_all(&nodes).await
}

pub(super) async fn heal(stack: &Stack, region: &str) -> Result<Option<String>, StackError> {
    let mut note = None;
    for role in [Role::Db, Role::Cache, Role::App] {
        let node = NodeId::new(region, role);
        if stack.has(&node) && !stack.restart(&node).await? {
            note = Some(format!(
                "{node} left down: it was a primary and has been deposed by a failover"
            ));
        }
    }
    Ok(note)
}
