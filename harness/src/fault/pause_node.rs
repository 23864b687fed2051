//! Pause node: the node's processes are frozen (SIGSTOP to the whole tree, or `docker
//! pause`), so its connections stay open but nothing answers — the grey failure a stalled VM
//! or a long GC pause looks like. Heal resumes it.

use crate::stack::plan::StackPlan;
use super::{Fault, Running, Need};
use crate::fields::FaultCheck;
use crate::stack::topology::{NodeId, Role};
use crate::stack::{Stack, StackError};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// `kind = "pause_node"`: its keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `node` (required): a node id such as `us-db`; it must exist in the posture.
    node: Option<Spanned<String>>,
}

/// Freezes one node (SIGSTOP / `docker pause`): connections stay open and time out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PauseNode {
    /// The node.
    pub node: NodeId,
}

impl Fault for PauseNode {
    type Spec = Spec;

    fn validate(spec: Spec, cx: &mut FaultCheck<'_>) -> Option<PauseNode> {
        let node = cx.node(spec.node.as_ref())?;
        Some(PauseNode { node })
    }

    async fn start(&self, stack: &Stack) -> Result<Running, StackError> {
        stack.pause(&self.node, true).await?;
        Ok(Running::nothing())
    }

    async fn heal(&self, stack: &Stack) -> Result<Option<String>, StackError> {
        stack.pause(&self.node, false).await?;
        Ok(None)
    }

    fn describe(&self) -> String {
        format!("pause node {}", self.node)
    }

    fn hits_primary(&self, stack: &Stack) -> bool {
        self.node.region == stack.routing.snapshot().primary && self.node.role == Role::Db
    }

    fn needs(&self, _plan: &StackPlan) -> Vec<Need> {
        vec![
            Need::NodeOp(self.node.clone(), "pause"),
            Need::NodeOp(self.node.clone(), "resume"),
        ]
    }
}
