//! The stack as a plan: from the experiment and its posture, once, which nodes run in which
//! region, what each runs (as data every backend turns into a process or a container), how
//! to tell it is ready (like testcontainers' `WaitFor`), and the cross-region links.
//!
//! Why every node can start at once: a standby is a copy of the same empty cluster as its
//! primary (the template cache natively, the image's pre-initialised cluster on Docker) with
//! `standby.signal`, so it needs nothing from the primary until it streams, and it retries
//! until the primary answers. Apps connect lazily. What does depend on readiness — the app's
//! schema on the primary, the commit mode once the standby streams, logical replication
//! between active-active primaries — is the posture's set-up ([`super::recipe`]), after
//! every node is ready.

use super::routing::RoutingState;
use super::topology::{self, LinkSpec, NodeId, Role};
use super::wiring::Wiring;
use crate::app::AppTuning;
use crate::posture::Posture;
use std::time::Duration;

/// How the stack is built, before any backend has placed it.
#[derive(Debug, Clone)]
pub struct StackPlan {
    /// How it is wired.
    pub posture: Posture,
    /// Regions with nodes, the initial primary's first.
    pub regions: Vec<String>,
    /// Every node.
    pub nodes: Vec<NodeId>,
    /// The cross-region links this posture uses (each one proxy on the fault proxy).
    pub links: Vec<LinkSpec>,
    /// What the apps get from the experiment, and which nodes run under libfaketime.
    pub tuning: AppTuning,
    /// The baseline round trip on every link, and its jitter.
    pub rtt: (Duration, Duration),
    /// PostgreSQL's `wal_log_hints` on every database: what lets `pg_rewind` rewind a deposed
    /// primary (the clusters have no data checksums). Off, a rejoin can only re-clone.
    pub wal_log_hints: bool,
}

/// What one node runs, with every address as the stack's own nodes see it.
#[derive(Debug, Clone, PartialEq)]
pub enum Program {
    /// A PostgreSQL server named `cluster_name` (its `application_name` when it streams).
    Postgres {
        /// `cluster_name`.
        cluster_name: String,
        /// A standby streaming from this (host, port) — the replication link — when set.
        standby_of: Option<(String, u16)>,
        /// `wal_log_hints` (on its command line, so an experiment can turn it off without a
        /// template or image of its own).
        wal_log_hints: bool,
    },
    /// A Redis cache without persistence (a killed cache comes back empty, as a real one).
    Redis,
    /// The app: `serve` with these arguments (all but where it listens, which each backend
    /// decides).
    App {
        /// Arguments after `serve --listen …`.
        args: Vec<String>,
    },
}

/// How the recipe tells a node is ready, checked from the harness on the node's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// `SELECT 1` answers.
    Sql,
    /// `PING` answers `PONG`.
    RedisPing,
    /// An HTTP `GET` of this path answers (any status: a degraded dependency is the app's
    /// business, not a start-up failure).
    Http(&'static str),
}

/// One node, ready to be started by a backend.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// Which node.
    pub id: NodeId,
    /// What it runs.
    pub program: Program,
    /// When it is ready.
    pub ready: Readiness,
    /// Started under libfaketime, its wall clock settable while it runs.
    pub skewed: bool,
}

impl StackPlan {
    /// The plan of a stack in `posture` (`rtt`: the links' baseline round trip and its
    /// jitter): every role in each region the posture has nodes in, and the links whose two
    /// ends exist.
    pub fn new(posture: Posture, rtt: (Duration, Duration), tuning: AppTuning) -> StackPlan {
        let regions: Vec<String> = if posture.has_standby() {
            topology::REGIONS.iter().map(|r| r.to_string()).collect()
        } else {
            vec![topology::PRIMARY_REGION.to_string()]
        };
        let nodes: Vec<NodeId> = regions
            .iter()
            .flat_map(|r| Role::ALL.map(|role| NodeId::new(r, role)))
            .collect();
        let links = topology::links()
            .into_iter()
            .filter(|l| nodes.contains(&l.target) && topology::used_by(l, posture.has_standby()))
            .collect();
        StackPlan {
            posture,
            regions,
            nodes,
            links,
            tuning,
            rtt,
            wal_log_hints: true,
        }
    }

    /// The regions whose database starts as a primary.
    pub fn primary_regions(&self) -> Vec<String> {
        if self.posture.is_active_active() {
            self.regions.clone()
        } else {
            self.regions.iter().take(1).cloned().collect()
        }
    }

    /// Every node's spec, with the addresses `wiring` gives and the apps pointed at the
    /// databases `routing` names.
    pub fn specs(&self, wiring: &Wiring, routing: &RoutingState) -> Vec<NodeSpec> {
        self.nodes
            .iter()
            .map(|id| {
                let (program, ready) = match id.role {
                    Role::Db => (self.postgres(id, wiring), Readiness::Sql),
                    Role::Cache => (Program::Redis, Readiness::RedisPing),
                    Role::App => (
                        Program::App {
                            args: wiring.app_args(&id.region, routing, &self.tuning),
                        },
                        Readiness::Http(crate::app::HEALTH_PATH),
                    ),
                };
                NodeSpec {
                    id: id.clone(),
                    program,
                    ready,
                    skewed: self.tuning.skewed.contains(id),
                }
            })
            .collect()
    }

    /// A region's database: a primary, or (active-passive) a standby of the primary region's
    /// through the replication link, so its WAL stream crosses the link.
    fn postgres(&self, id: &NodeId, wiring: &Wiring) -> Program {
        let primary = self.primary_regions();
        let standby_of = if primary.contains(&id.region) {
            None
        } else {
            wiring.link_inside(topology::REPLICATION)
        };
        Program::Postgres {
            cluster_name: id.region.clone(),
            standby_of,
            wal_log_hints: self.wal_log_hints,
        }
    }
}
