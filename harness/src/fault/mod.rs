//! Faults (the nemesis): one file per kind, each with a `start` and a `heal`. The experiment
//! says what ([`FaultSpec`]) and when; the schedule (`crate::schedule`) calls these.

mod clock_skew;
mod kill_node;
mod kill_region;
mod latency;
mod partition;
mod pause_node;

pub use clock_skew::faketime_offset;

use crate::experiment::{FaultSpec, LinkSelector};
use crate::stack::topology::{LinkPurpose, Role, link_name};
use crate::stack::{Stack, StackError, StackLink};

/// Starts a fault.
pub async fn start(spec: &FaultSpec, stack: &Stack) -> Result<(), StackError> {
    match spec {
        FaultSpec::Latency { links, rtt, jitter } => {
            latency::start(&select(stack, links), *rtt, *jitter).await
        }
        FaultSpec::Partition {
            links,
            mode,
            direction,
        } => partition::start(&select(stack, links), *mode, direction).await,
        FaultSpec::KillNode { node } => kill_node::start(stack, node).await,
        FaultSpec::KillRegion { region } => kill_region::start(stack, region).await,
        FaultSpec::PauseNode { node } => pause_node::start(stack, node).await,
        FaultSpec::ClockSkew { node, offset_ms } => {
            clock_skew::start(stack, node, *offset_ms).await
        }
    }
}

/// Undoes a fault. Returns a note when part of it could not be undone on purpose (e.g. a
/// deposed primary is not restarted).
pub async fn heal(spec: &FaultSpec, stack: &Stack) -> Result<Option<String>, StackError> {
    match spec {
        FaultSpec::Latency { links, .. } => {
            latency::heal(&select(stack, links)).await.map(|()| None)
        }
        FaultSpec::Partition { links, .. } => {
            partition::heal(&select(stack, links)).await.map(|()| None)
        }
        FaultSpec::KillNode { node } => kill_node::heal(stack, node).await,
        FaultSpec::KillRegion { region } => kill_region::heal(stack, region).await,
        FaultSpec::PauseNode { node } => pause_node::heal(stack, node).await.map(|()| None),
        FaultSpec::ClockSkew { node, .. } => clock_skew::heal(stack, node).await.map(|()| None),
    }
}

/// A one-line description, e.g. "partition replication (black hole, both ways)".
pub fn describe(spec: &FaultSpec) -> String {
    let links = |l: &LinkSelector| match l {
        LinkSelector::Named(n) => n.join(", "),
        LinkSelector::Between(a, b) => format!("{a}↔{b}"),
    };
    match spec {
        FaultSpec::Latency {
            links: l,
            rtt,
            jitter,
        } => {
            let j = if jitter.is_zero() {
                String::new()
            } else {
                format!(" ± {}", humantime::format_duration(*jitter))
            };
            format!(
                "latency +{}{j} RTT on {}",
                humantime::format_duration(*rtt),
                links(l)
            )
        }
        FaultSpec::Partition {
            links: l,
            mode,
            direction,
        } => format!(
            "partition {} ({}, {})",
            links(l),
            partition::mode_name(*mode),
            partition::direction_name(direction)
        ),
        FaultSpec::KillNode { node } => format!("kill node {node}"),
        FaultSpec::KillRegion { region } => format!("kill region {region}"),
        FaultSpec::PauseNode { node } => format!("pause node {node}"),
        FaultSpec::ClockSkew { node, offset_ms } => {
            format!("clock skew {} on {node}", faketime_offset(*offset_ms))
        }
    }
}

/// Whether the fault takes the current primary down or cuts the failover controller off
/// from it (the controller watches from the standby region through the monitor link).
pub fn hits_primary(spec: &FaultSpec, stack: &Stack) -> bool {
    let state = stack.routing.snapshot();
    let primary = &state.primary;
    match spec {
        FaultSpec::KillNode { node } => node.region == *primary && node.role == Role::Db,
        FaultSpec::KillRegion { region } => region == primary,
        FaultSpec::PauseNode { node } => node.region == *primary && node.role == Role::Db,
        FaultSpec::ClockSkew { .. } => false,
        FaultSpec::Latency { .. } => false,
        FaultSpec::Partition { links, .. } => {
            let standby = crate::stack::topology::other_region(primary);
            let monitor = link_name(standby, LinkPurpose::MonitorToDb, primary);
            select(stack, links).iter().any(|l| l.spec.name == monitor)
        }
    }
}

/// The stack's links a selector names (those that exist in this stack).
fn select<'a>(stack: &'a Stack, selector: &LinkSelector) -> Vec<&'a StackLink> {
    match selector {
        LinkSelector::Named(names) => names.iter().filter_map(|n| stack.link(n)).collect(),
        LinkSelector::Between(a, b) => stack
            .links()
            .filter(|l| {
                (l.spec.from == *a && l.spec.to == *b) || (l.spec.from == *b && l.spec.to == *a)
            })
            .collect(),
    }
}
