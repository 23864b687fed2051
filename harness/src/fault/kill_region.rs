//! Kill region: every node of a region killed at once. Heal brings the region back: a DCS
//! placed there first, then the database (unless it is a deposed primary), cache, router, app.

use crate::stack::plan::StackPlan;
use super::{Fault, Running, Need};
use crate::fields::FaultCheck;
use crate::stack::topology::{NodeId, Role};
use crate::stack::{Stack, StackError};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// `kind = "kill_region"`: its keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `region` (required): the region whose every node is killed; it must have nodes in the
    /// posture (`single-region`: only `us`).
    region: Option<Spanned<String>>,
}

/// SIGKILLs every node of a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KillRegion {
    /// The region.
    pub region: String,
}

impl Fault for KillRegion {
    type Spec = Spec;

    fn validate(spec: Spec, cx: &mut FaultCheck<'_>) -> Option<KillRegion> {
        let region = cx.region(spec.region.as_ref())?;
        Some(KillRegion { region })
    }

    async fn start(&self, stack: &Stack) -> Result<Running, StackError> {
        let nodes: Vec<NodeId> = stack
            .nodes()
            .filter(|n| n.region == self.region)
            .cloned()
            .collect();
        stack.kill_all(&nodes).await?;
        Ok(Running::nothing())
    }

    async fn heal(&self, stack: &Stack) -> Result<Option<String>, StackError> {
        let mut note = None;
        for role in [Role::Dcs, Role::Db, Role::Cache, Role::Router, Role::App] {
            let node = NodeId::new(&self.region, role);
            if stack.has(&node) && !stack.restart(&node).await? {
                note = Some(format!(
                    "{node} left down: it was a primary and has been deposed by a failover"
                ));
            }
        }
        Ok(note)
    }

    fn describe(&self) -> String {
        format!("kill region {}", self.region)
    }

    fn hits_primary(&self, stack: &Stack) -> bool {
        self.region == stack.routing.snapshot().primary
    }

    fn needs(&self, plan: &StackPlan) -> Vec<Need> {
        let nodes = plan.nodes.iter().filter(|n| n.region == self.region);
        nodes
            .flat_map(|n| [Need::NodeOp(n.clone(), "kill"), Need::NodeOp(n.clone(), "restart")])
            .collect()
    }
}
