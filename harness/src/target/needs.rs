//! What an experiment asks of a target, and what the target cannot do: checked before
//! anything runs, so a drill never starts that would stop half-way for want of a command.

use super::Target;
use crate::experiment::Experiment;
use crate::fault::{self, Need};

/// Every reason `target` cannot run `exp` (empty: it can), one line each, naming the fault
/// or section and what the target lacks (the target file is the caller's to name).
pub fn refusals(target: &Target, exp: &Experiment) -> Vec<String> {
    let plan = &crate::stack::external::plan_for(exp.stack_plan(), target);
    let mut out = Vec::new();
    for (i, f) in exp.faults.iter().enumerate() {
        let what = format!("faults[{i}] ({})", fault::describe(&f.fault));
        for need in fault::needs(&f.fault, plan) {
            if let Some(lack) = lacks(target, &need) {
                out.push(format!("{what}: {lack}"));
            }
        }
    }
    for (i, op) in exp.operations.iter().enumerate() {
        out.push(format!(
            "operations[{i}] ({}): operations rewrite a stack's databases (rewind, re-clone, \
             switchover) and run only on a stack regiondrill brought up",
            op.operation.describe()
        ));
    }
    if exp.residency.is_some() {
        out.push(
            "[residency]: residency drills count personal data on regiondrill's own fault \
             proxy, which a target does not have"
                .to_string(),
        );
    }
    if exp.regions != crate::stack::topology::REGIONS {
        out.push(format!(
            "regions = [{}]: a target names the regions us and eu (its file's regions.us and \
             regions.eu)",
            exp.regions.join(", ")
        ));
    }
    if target.db_regions().is_empty() {
        out.push(
            "no region has a database (regions.<region>.db): lost writes, the final state and \
             failover cannot be measured"
                .to_string(),
        );
    }
    if !target.has_app() && exp.posture.is_active_active() {
        out.push(
            "no app: database-only mode drives single-writer postures only (the active-active \
             postures' merging is the app's)"
                .to_string(),
        );
    }
    out
}

/// What the target lacks for `need`, if anything.
fn lacks(target: &Target, need: &Need) -> Option<String> {
    match need {
        Need::Link(name) if target.toxiproxy.is_none() => Some(format!(
            "no [toxiproxy] api, so link `{name}` cannot be faulted"
        )),
        Need::Link(name) => (!target.links.contains_key(name)).then(|| {
            format!("no Toxiproxy proxy for link `{name}` (add [links.\"{name}\"] proxy = \"…\")")
        }),
        Need::NodeOp(node, op) => {
            let has = target.nodes.get(node).and_then(|o| o.command(op)).is_some();
            (!has).then(|| format!("no `{op}` command for {node} ([nodes.{node}] {op} = \"…\")"))
        }
        Need::Clock(node) => Some(format!(
            "cannot shift {node}'s clock: clock skew needs libfaketime in a node regiondrill \
             started"
        )),
    }
}
