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
use crate::ha::Patroni;
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
    /// Patroni's deployment when it is the failover manager (then every database is a
    /// Patroni member, etcd runs where it says, and each region has a router).
    pub patroni: Option<Patroni>,
    /// Active-active: the app's tables (names without the region suffix, e.g. `profiles`)
    /// left out of the logical replication publications, so each region keeps its own
    /// (`[residency] pinned`). Empty: every region table is replicated.
    pub unpublished: Vec<String>,
    /// Count personal-data tokens in every link's bytes (built-in fault proxy only; see
    /// `crate::proxy::meter`).
    pub count_tokens: bool,
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
    /// A Patroni member named after its region, running its own PostgreSQL (it initialises
    /// or clones the cluster itself).
    Patroni(PatroniMember),
    /// A one-member etcd cluster (Patroni's DCS).
    Etcd,
    /// HAProxy sending PostgreSQL connections to whichever server's Patroni answers
    /// `/primary` with 200.
    Haproxy(RouterConfig),
}

/// One Patroni member, with every address as the other nodes reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct PatroniMember {
    /// Member name (its region).
    pub name: String,
    /// Where the other region reaches its PostgreSQL (Patroni's `postgresql.connect_address`:
    /// what a replica streams from, through the replication link).
    pub pg_connect: (String, u16),
    /// Where the other region reaches its REST API (`restapi.connect_address`).
    pub api_connect: (String, u16),
    /// Where it reaches etcd (directly in the same region, else through a link).
    pub dcs: (String, u16),
    /// Patroni's settings (the `bootstrap.dcs` section).
    pub settings: Patroni,
}

/// A region's HAProxy: its servers, and the checks of each.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterConfig {
    /// Every database, as this region reaches it.
    pub servers: Vec<RouterServer>,
    /// `inter`, `fall`, `rise`.
    pub checks: crate::ha::HaproxyChecks,
}

/// One database behind a router.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterServer {
    /// Server name (its region).
    pub name: String,
    /// Its PostgreSQL.
    pub db: (String, u16),
    /// Its Patroni REST API, which HAProxy checks.
    pub check: (String, u16),
}

impl RouterConfig {
    /// `haproxy.cfg` listening on `bind`, in the layout of Patroni's HAProxy template.
    pub fn render(&self, bind: &str) -> String {
        let c = &self.checks;
        let mut text = format!(
            "global\n    maxconn 400\n\ndefaults\n    mode tcp\n    timeout connect 2s\n    \
             timeout client 30m\n    timeout server 30m\n    timeout check 1s\n\n\
             listen postgres\n    bind {bind}\n    option httpchk OPTIONS /primary\n    \
             http-check expect status 200\n    default-server inter {}ms fall {} rise {} \
             on-marked-down shutdown-sessions\n",
            c.inter.as_millis(),
            c.fall,
            c.rise
        );
        for RouterServer {
            name,
            db: (h, p),
            check: (ah, ap),
        } in &self.servers
        {
            text.push_str(&format!(
                "    server {name} {h}:{p} maxconn 200 check addr {ah} port {ap}\n"
            ));
        }
        text
    }
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
    /// Started only once this node is ready (a Patroni replica after the first leader, so
    /// that the leader is the one the plan says).
    pub after: Option<NodeId>,
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
            patroni: None,
            unpublished: Vec::new(),
            count_tokens: false,
        }
    }

    /// The same stack with Patroni as its failover manager: every database a Patroni member,
    /// etcd where `patroni.dcs` says, a router per data region; plus the links they use —
    /// replication both ways (whoever leads, the other streams through a link: the plan of
    /// every two-database posture has both), each
    /// region's reach of the other's REST API, and of etcd when it is elsewhere.
    pub fn with_patroni(mut self, patroni: Patroni) -> StackPlan {
        use topology::{LinkPurpose, LinkSpec, link_name, other_region};
        let dcs = NodeId::new(&patroni.dcs.region, Role::Dcs);
        let data = self.regions.clone();
        for r in &data {
            self.nodes.push(NodeId::new(r, Role::Router));
        }
        self.nodes.push(dcs.clone());
        for r in &data {
            let o = other_region(r);
            self.links.push(LinkSpec {
                name: link_name(r, LinkPurpose::ToApi, o),
                from: r.clone(),
                to: o.to_string(),
                target: NodeId::new(o, Role::Api),
            });
            if *r != dcs.region {
                self.links.push(LinkSpec {
                    name: link_name(r, LinkPurpose::ToDcs, &dcs.region),
                    from: r.clone(),
                    to: dcs.region.clone(),
                    target: dcs.clone(),
                });
            }
        }
        self.patroni = Some(patroni);
        self
    }

    /// Every place reached through a link: the nodes, and each database's REST API.
    pub fn placed(&self) -> Vec<NodeId> {
        let mut v = self.nodes.clone();
        if self.patroni.is_some() {
            v.extend(self.regions.iter().map(|r| NodeId::new(r, Role::Api)));
        }
        v
    }

    /// The round trip and jitter of one link: the witness's own round trip on links to and
    /// from the witness, the regions' on every other.
    pub fn link_rtt(&self, link: &LinkSpec) -> (Duration, Duration) {
        match &self.patroni {
            Some(p)
                if link.to == topology::WITNESS_REGION || link.from == topology::WITNESS_REGION =>
            {
                (p.dcs.witness_rtt, Duration::ZERO)
            }
            _ => self.rtt,
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
                let mut after = None;
                let (program, ready) = match id.role {
                    Role::Db => match &self.patroni {
                        None => (self.postgres(id, wiring), Readiness::Sql),
                        Some(p) => {
                            if !self.primary_regions().contains(&id.region) {
                                after = Some(NodeId::new(&self.regions[0], Role::Db));
                            }
                            (Program::Patroni(self.member(id, p, wiring)), Readiness::Sql)
                        }
                    },
                    Role::Cache => (Program::Redis, Readiness::RedisPing),
                    Role::App => (
                        Program::App {
                            args: wiring.app_args(&id.region, routing, &self.tuning),
                        },
                        Readiness::Http(crate::app::HEALTH_PATH),
                    ),
                    Role::Dcs => (Program::Etcd, Readiness::Http("/health")),
                    Role::Router => (Program::Haproxy(self.router(id, wiring)), Readiness::Sql),
                    Role::Api => unreachable!("an API is placed, never started on its own"),
                };
                NodeSpec {
                    id: id.clone(),
                    program,
                    ready,
                    skewed: self.tuning.skewed.contains(id),
                    after,
                }
            })
            .collect()
    }

    /// Where `from` reaches `target`: directly in its own region, else through the link of
    /// `purpose` (a missing address is left empty; the backend then fails the start clearly).
    fn reach(
        &self,
        wiring: &Wiring,
        from: &str,
        target: &NodeId,
        purpose: topology::LinkPurpose,
    ) -> (String, u16) {
        if target.region == from {
            return wiring
                .endpoint(target)
                .map(|e| e.inside.clone())
                .unwrap_or_default();
        }
        wiring
            .link_inside(&topology::link_name(from, purpose, &target.region))
            .unwrap_or_default()
    }

    fn member(&self, id: &NodeId, p: &Patroni, wiring: &Wiring) -> PatroniMember {
        use topology::{LinkPurpose, REPLICATION, REPLICATION_TO_US, other_region};
        let other = other_region(&id.region);
        // The replication link carries the other region's stream from this database.
        let repl = if id.region == topology::PRIMARY_REGION {
            REPLICATION
        } else {
            REPLICATION_TO_US
        };
        PatroniMember {
            name: id.region.clone(),
            pg_connect: wiring.link_inside(repl).unwrap_or_default(),
            api_connect: wiring
                .link_inside(&topology::link_name(other, LinkPurpose::ToApi, &id.region))
                .unwrap_or_default(),
            dcs: self.reach(
                wiring,
                &id.region,
                &NodeId::new(&p.dcs.region, Role::Dcs),
                LinkPurpose::ToDcs,
            ),
            settings: p.clone(),
        }
    }

    fn router(&self, id: &NodeId, wiring: &Wiring) -> RouterConfig {
        use topology::LinkPurpose;
        let servers = self
            .regions
            .iter()
            .map(|r| RouterServer {
                name: r.clone(),
                db: self.reach(
                    wiring,
                    &id.region,
                    &NodeId::new(r, Role::Db),
                    LinkPurpose::AppToDb,
                ),
                check: self.reach(
                    wiring,
                    &id.region,
                    &NodeId::new(r, Role::Api),
                    LinkPurpose::ToApi,
                ),
            })
            .collect();
        RouterConfig {
            servers,
            checks: self.patroni.as_ref().map(|p| p.haproxy.clone()).unwrap_or(
                crate::ha::HaproxyChecks {
                    inter: Duration::from_secs(3),
                    fall: 3,
                    rise: 2,
                },
            ),
        }
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
