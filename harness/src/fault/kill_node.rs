//! Kill node: SIGKILL to one node's process group (or `docker kill`), as a crashed machine.
//! Heal restarts it — except a primary that was deposed by a failover, which is left down.

use crate::stack::plan::StackPlan;
use super::{Fault, Running, Need};
use crate::fields::FaultCheck;
use crate::stack::topology::{NodeId, Role};
use crate::stack::{Stack, StackError};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// `kind = "kill_node"`: its keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `node` (required): a node id such as `us-db`, `eu-cache`, `eu-app`; it must exist in
    /// the posture.
    node: Option<Spanned<String>>,
}

/// SIGKILLs one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KillNode {
    /// The node.
    pub node: NodeId,
}

impl Fault for KillNode {
    type Spec = Spec;

    fn validate(spec: Spec, cx: &mut FaultCheck<'_>) -> Option<KillNode> {
        let node = cx.node(spec.node.as_ref())?;
        Some(KillNode { node })
    }

    async fn start(&self, stack: &Stack) -> Result<Running, StackError> {
        stack.kill(&self.node).await?;
        Ok(Running::nothing())
    }

    async fn heal(&self, stack: &Stack) -> Result<Option<String>, StackError> {
        if stack.restart(&self.node).await? {
            Ok(None)
        } else {
            Ok(Some(format!(
                "{} left down: it was a primary and has been deposed by a failover",
                self.node
            )))
        }
    }

    fn describe(&self) -> String {
        format!("kill node {}", self.node)
    }

    fn hits_primary(&self, stack: &Stack) -> bool {
        self.node.region == stack.routing.snapshot().primary && self.node.role == Role::Db
    }

    fn needs(&self, _plan: &StackPlan) -> Vec<Need> {
        vec![
            Need::NodeOp(self.node.clone(), "kill"),
            Need::NodeOp(self.node.clone(), "restart"),
        ]
    }
}
