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
use crate::ha::{Patroni, PgAutoFailover};
use crate::posture::Posture;
use std::time::Duration;

/// How the stack is built, before any backend has placed it.
#[derive(Debug, Clone)]
pub struct StackPlan {
    /// How it is wired.
    pub posture: Posture,
    /// Regions with nodes, the initial primary's first.
    pub regions: Vec<String>,
    /// Every region the experiment names (users live in each, whether or not it has
    /// nodes), the initial primary's first.
    pub user_regions: Vec<String>,
    /// Where the built-in controller checks the primary from (see
    /// [`StackPlan::vantage_points`]).
    pub watch_from: Vec<String>,
    /// Every node.
    pub nodes: Vec<NodeId>,
    /// The cross-region links this posture uses (each one proxy on the fault proxy).
    pub links: Vec<LinkSpec>,
    /// What the apps get from the experiment, and which nodes run under libfaketime.
    pub tuning: AppTuning,
    /// The round trip between each pair of regions, and the jitter on every link.
    pub network: crate::experiment::Network,
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
    /// pg_auto_failover's deployment when it is the failover manager (then every database is
    /// a keeper's, the monitor runs where it says, and apps write through a libpq multi-host
    /// DSN).
    pub pg_auto_failover: Option<PgAutoFailover>,
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
    /// pg_auto_failover's monitor (`pg_autoctl create monitor --run`): a PostgreSQL with the
    /// `pgautofailover` extension holding the formation's state. Its own settings are GUCs,
    /// set once it answers (the recipe's set-up).
    PgAutoFailoverMonitor,
    /// A pg_auto_failover keeper (`pg_autoctl create postgres --run`) and the PostgreSQL it
    /// runs as its child.
    PgAutoFailoverKeeper(Keeper),
}

/// One pg_auto_failover keeper, with every address as the other nodes reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct Keeper {
    /// Node name (its region).
    pub name: String,
    /// The address it registers in the monitor (`--hostname`, and its PostgreSQL's port,
    /// which pg_auto_failover registers as is): pg_auto_failover has one address per node,
    /// which the other node streams from and the monitor health-checks. It is the
    /// replication link that carries the other region's stream from this database, on the
    /// port this database listens on (see [`StackPlan::registered_links`]).
    pub hostname: (String, u16),
    /// Where it reaches the monitor (directly in the same region, else through a link).
    pub monitor: (String, u16),
    /// The first keeper registers a copy of the empty cluster and becomes the primary; the
    /// other clones it (`pg_basebackup` through the first's registered address).
    pub first: bool,
    /// The deployment's settings (its `--candidate-priority`, `--replication-quorum`).
    pub settings: PgAutoFailover,
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
    /// `nameserver`: where servers named by host name are resolved while HAProxy runs (a
    /// container's servers may not exist yet when it starts: they start unresolved, as
    /// HAProxy's `init-addr none` allows); None when every server is an IP address.
    pub fn render(&self, bind: &str, nameserver: Option<&str>) -> String {
        let c = &self.checks;
        let (resolvers, resolve) = match nameserver {
            Some(ns) => (
                format!("resolvers stack\n    nameserver dns {ns}\n    hold valid 1s\n\n"),
                " resolvers stack resolve-prefer ipv4 init-addr libc,none",
            ),
            None => (String::new(), ""),
        };
        let mut text = format!(
            "global\n    maxconn 400\n\n{resolvers}defaults\n    mode tcp\n    timeout connect 2s\n    \
             timeout client 30m\n    timeout server 30m\n    timeout check 1s\n\n\
             listen postgres\n    bind {bind}\n    option httpchk OPTIONS /primary\n    \
             http-check expect status 200\n    default-server inter {}ms fall {} rise {} \
             on-marked-down shutdown-sessions{resolve}\n",
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
            // `addr` must resolve when the file is read; the check's host is the server's
            // own whenever both go through the same place (every backend places them so).
            let addr = if ah == h {
                String::new()
            } else {
                format!(" addr {ah}")
            };
            text.push_str(&format!(
                "    server {name} {h}:{p} maxconn 200 check{addr} port {ap}\n"
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
    /// pg_auto_failover's monitor answers with its extension installed (before that, a
    /// keeper's registration would fail).
    Monitor,
    /// etcd answers `/version` with its cluster's version decided: for a moment after it
    /// starts it says `"etcdcluster": "not_decided"`, and Patroni 3.0 exits at start on that.
    EtcdCluster,
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
    /// The plan of a stack in `posture` over `regions` (the primary's first; `network`: the
    /// round trip of each pair): every role in each region the posture has nodes in, and the
    /// links whose two ends exist.
    pub fn new(
        posture: Posture,
        regions: &[String],
        network: crate::experiment::Network,
        tuning: AppTuning,
    ) -> StackPlan {
        let with_nodes = topology::regions_with_nodes(regions, posture.has_standby()).to_vec();
        let nodes = topology::nodes_in(&with_nodes);
        let mut plan = StackPlan {
            posture,
            regions: with_nodes,
            user_regions: regions.to_vec(),
            watch_from: Vec::new(),
            nodes,
            links: Vec::new(),
            tuning,
            network,
            wal_log_hints: true,
            patroni: None,
            unpublished: Vec::new(),
            count_tokens: false,
            pg_auto_failover: None,
        };
        plan.relink();
        plan
    }

    /// The links of the plan's nodes: those whose two ends exist (the witness's monitor
    /// links only when it is a vantage point).
    fn relink(&mut self) {
        let controller = self.posture.has_standby();
        let witness = self.watches_from_witness();
        self.links = topology::links(&self.user_regions, witness)
            .into_iter()
            .filter(|l| topology::why_absent(l, &self.nodes, controller).is_none())
            .collect();
    }

    /// Where the built-in controller checks the primary from: `watch_from`, or by default the
    /// second region (one vantage point).
    pub fn vantage_points(&self) -> Vec<String> {
        if self.watch_from.is_empty() {
            self.regions.iter().skip(1).take(1).cloned().collect()
        } else {
            self.watch_from.clone()
        }
    }

    fn watches_from_witness(&self) -> bool {
        self.watch_from
            .iter()
            .any(|w| w == topology::WITNESS_REGION)
    }

    /// The same plan watched from `watch_from` (see [`StackPlan::vantage_points`]): the
    /// witness's monitor links exist only when it is one of them.
    pub fn watched_from(mut self, watch_from: Vec<String>) -> StackPlan {
        self.watch_from = watch_from;
        self.relink();
        self
    }

    /// The standby regions of an active-passive plan, in the experiment's order: every data
    /// region but the primary's.
    pub fn standby_regions(&self) -> Vec<String> {
        if self.posture.is_active_active() {
            return Vec::new();
        }
        self.regions.iter().skip(1).cloned().collect()
    }

    /// The same stack with pg_auto_failover as its failover manager: every database a
    /// keeper's, the monitor where `paf.monitor` says; plus each data region's link to the
    /// monitor when it is elsewhere. Replication both ways already has its links (every
    /// two-database plan has both), and the keepers register those links' addresses.
    pub fn with_pg_auto_failover(mut self, paf: PgAutoFailover) -> StackPlan {
        use topology::{LinkPurpose, LinkSpec, link_name};
        let monitor = NodeId::new(&paf.monitor.region, Role::Dcs);
        for r in self.regions.clone() {
            if r != monitor.region {
                self.links.push(LinkSpec {
                    name: link_name(&r, LinkPurpose::ToDcs, &monitor.region),
                    from: r.clone(),
                    to: monitor.region.clone(),
                    target: monitor.clone(),
                });
            }
        }
        self.nodes.push(monitor);
        self.pg_auto_failover = Some(paf);
        self
    }

    /// The links whose address a database registers as its own (pg_auto_failover's
    /// keepers), with that database: link and database must share a port, since
    /// pg_auto_failover registers the port PostgreSQL listens on. Natively the link listens on
    /// the database's port at another loopback address (127.0.0.2); on Docker the database
    /// listens in its container on the port the link has in the proxy's.
    pub fn registered_links(&self) -> Vec<(String, NodeId)> {
        if self.pg_auto_failover.is_none() {
            return Vec::new();
        }
        self.regions
            .iter()
            .map(|r| {
                (
                    Self::replication_link_of(r).to_string(),
                    NodeId::new(r, Role::Db),
                )
            })
            .collect()
    }

    /// The replication link that carries the other region's stream from `region`'s database.
    fn replication_link_of(region: &str) -> &'static str {
        if region == topology::PRIMARY_REGION {
            topology::REPLICATION
        } else {
            topology::REPLICATION_TO_US
        }
    }

    /// The round trip of the witness's links, when a manager placed its state there.
    fn witness_rtt(&self) -> Option<Duration> {
        match (&self.patroni, &self.pg_auto_failover) {
            (Some(p), _) => Some(p.dcs.witness_rtt),
            (_, Some(p)) => Some(p.monitor.witness_rtt),
            _ => None,
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

    /// The round trip and jitter of one link: a Patroni or pg_auto_failover witness's own
    /// round trip on links to and from it, else the round trip of the pair of regions it
    /// joins (`[network.pairs]`, else `[network] rtt`).
    pub fn link_rtt(&self, link: &LinkSpec) -> (Duration, Duration) {
        match self.witness_rtt() {
            Some(rtt)
                if link.to == topology::WITNESS_REGION || link.from == topology::WITNESS_REGION =>
            {
                (rtt, Duration::ZERO)
            }
            _ => (
                self.network.rtt_between(&link.from, &link.to),
                self.network.jitter_between(&link.from, &link.to),
            ),
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
                    Role::Db => match (&self.patroni, &self.pg_auto_failover) {
                        (Some(p), _) => {
                            // The first member once etcd's cluster is decided (Patroni exits
                            // at start on an undecided one), the others once it is a primary.
                            after = Some(if self.primary_regions().contains(&id.region) {
                                NodeId::new(&p.dcs.region, Role::Dcs)
                            } else {
                                NodeId::new(&self.regions[0], Role::Db)
                            });
                            (Program::Patroni(self.member(id, p, wiring)), Readiness::Sql)
                        }
                        (None, Some(p)) => {
                            // The monitor first, then the first keeper (which becomes the
                            // primary), then the other (which clones it).
                            let keeper = self.keeper(id, p, wiring);
                            after = Some(if keeper.first {
                                NodeId::new(&p.monitor.region, Role::Dcs)
                            } else {
                                NodeId::new(&self.regions[0], Role::Db)
                            });
                            (Program::PgAutoFailoverKeeper(keeper), Readiness::Sql)
                        }
                        (None, None) => (self.postgres(id, wiring), Readiness::Sql),
                    },
                    Role::Cache => (Program::Redis, Readiness::RedisPing),
                    Role::App => (
                        Program::App {
                            args: wiring.app_args(&id.region, routing, &self.tuning),
                        },
                        Readiness::Http(crate::app::HEALTH_PATH),
                    ),
                    Role::Dcs if self.pg_auto_failover.is_some() => {
                        (Program::PgAutoFailoverMonitor, Readiness::Monitor)
                    }
                    Role::Dcs => (Program::Etcd, Readiness::EtcdCluster),
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

    fn keeper(&self, id: &NodeId, p: &PgAutoFailover, wiring: &Wiring) -> Keeper {
        Keeper {
            name: id.region.clone(),
            hostname: wiring
                .link_inside(Self::replication_link_of(&id.region))
                .unwrap_or_default(),
            monitor: self.reach(
                wiring,
                &id.region,
                &NodeId::new(&p.monitor.region, Role::Dcs),
                topology::LinkPurpose::ToDcs,
            ),
            first: self.regions.first() == Some(&id.region),
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
    /// through its replication link, so its WAL stream crosses the link.
    fn postgres(&self, id: &NodeId, wiring: &Wiring) -> Program {
        let primary = self.primary_regions();
        let standby_of = if primary.contains(&id.region) {
            None
        } else {
            wiring.link_inside(&topology::link_name(
                &id.region,
                topology::LinkPurpose::Replication,
                &primary[0],
            ))
        };
        Program::Postgres {
            cluster_name: id.region.clone(),
            standby_of,
            wal_log_hints: self.wal_log_hints,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::routing::Routing;
    use crate::stack::wiring::{Endpoint, LinkPlacement, Placement};

    /// The plan of the shipped experiment `file`, its nodes placed as the native backend
    /// places them: node `i` on port 20000 + i (links are the caller's).
    fn nodes_placed(file: &str) -> (StackPlan, Placement) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../experiments")
            .join(file);
        let plan = crate::experiment::load(&path).unwrap().stack_plan();
        let mut placement = Placement::default();
        for (i, n) in plan.placed().iter().enumerate() {
            let port = 20_000 + i as u16;
            let inside = ("127.0.0.1".to_string(), port);
            placement.nodes.insert(n.clone(), Endpoint { port, inside });
        }
        (plan, placement)
    }

    /// The plan of the shipped pg_auto_failover region loss, placed as the native backend
    /// places it: node `i` on port 20000 + i, a registered link on its database's port at
    /// 127.0.0.2, every other link on a port of its own.
    fn placed_paf() -> (StackPlan, Wiring) {
        let (plan, mut placement) = nodes_placed("pg-auto-failover-region-loss.toml");
        let registered = plan.registered_links();
        for (i, l) in plan.links.iter().enumerate() {
            let (host, port) = match registered.iter().find(|(name, _)| *name == l.name) {
                Some((_, db)) => ("127.0.0.2", placement.nodes[db].port),
                None => ("127.0.0.1", 30_000 + i as u16),
            };
            let endpoint = Endpoint {
                port,
                inside: (host.to_string(), port),
            };
            let listen = format!("{host}:{port}");
            placement
                .links
                .insert(l.name.clone(), LinkPlacement { endpoint, listen });
        }
        let wiring = Wiring::new(plan.posture, placement).with_multi_host(true);
        (plan, wiring)
    }

    /// Patroni's first member starts once etcd's cluster version is decided (Patroni 3.0
    /// exits at start on `not_decided`: a long-tier run failed so), the other once the first
    /// is a primary.
    #[test]
    fn patroni_members_start_after_etcd_is_decided_and_the_first_leader() {
        let (plan, placement) = nodes_placed("patroni-region-loss.toml");
        let wiring = Wiring::new(plan.posture, placement);
        let specs = plan.specs(&wiring, &Routing::for_plan(&plan).snapshot());
        let spec = |id: &str| specs.iter().find(|s| s.id.to_string() == id).unwrap();
        let after = |id: &str| spec(id).after.as_ref().map(|n| n.to_string());
        assert_eq!(spec("witness-dcs").ready, Readiness::EtcdCluster);
        assert_eq!(after("witness-dcs"), None);
        assert_eq!(after("us-db").as_deref(), Some("witness-dcs"));
        assert_eq!(after("eu-db").as_deref(), Some("us-db"));
    }

    #[test]
    fn pg_auto_failover_keepers_register_their_replication_links_and_apps_use_libpq() {
        let (plan, wiring) = placed_paf();
        let routing = Routing::for_plan(&plan);
        let specs = plan.specs(&wiring, &routing.snapshot());
        let spec = |id: &str| specs.iter().find(|s| s.id.to_string() == id).unwrap();
        let port = |id: &str| wiring.endpoint(&NodeId::parse(id).unwrap()).unwrap().port;
        let monitor = spec("witness-dcs");
        assert_eq!(
            (&monitor.program, monitor.ready),
            (&Program::PgAutoFailoverMonitor, Readiness::Monitor)
        );
        // us registers the link eu streams from (`replication`), on us-db's own port; it
        // reaches the monitor through its witness link, and starts once the monitor is up.
        let Program::PgAutoFailoverKeeper(us) = &spec("us-db").program else {
            panic!("{:?}", spec("us-db").program)
        };
        assert_eq!(us.hostname, ("127.0.0.2".to_string(), port("us-db")));
        assert_eq!(
            Some(us.hostname.clone()),
            wiring.link_inside(topology::REPLICATION)
        );
        assert_eq!(
            Some(us.monitor.clone()),
            wiring.link_inside("us-to-witness-dcs")
        );
        assert!(us.first);
        assert_eq!(
            spec("us-db")
                .after
                .as_ref()
                .map(|n| n.to_string())
                .as_deref(),
            Some("witness-dcs")
        );
        let Program::PgAutoFailoverKeeper(eu) = &spec("eu-db").program else {
            panic!("{:?}", spec("eu-db").program)
        };
        assert_eq!(eu.hostname, ("127.0.0.2".to_string(), port("eu-db")));
        assert!(!eu.first);
        assert_eq!(
            spec("eu-db")
                .after
                .as_ref()
                .map(|n| n.to_string())
                .as_deref(),
            Some("us-db")
        );
        // eu's app: its own database directly, then us's through its app-to-db link; libpq
        // keeps the one that takes writes.
        let (write, read) = wiring.app_dsns("eu", &routing.snapshot()).unwrap();
        let via = wiring.link_inside("eu-app-to-us-db").unwrap();
        assert!(
            write.starts_with(&format!(
                "host=127.0.0.1,{} port={},{} ",
                via.0,
                port("eu-db"),
                via.1
            )) && write.ends_with("target_session_attrs=read-write"),
            "{write}"
        );
        assert_eq!(read, crate::postgres::dsn_at("127.0.0.1", port("eu-db")));
        // The witness keeps its own round trip.
        let to_witness = plan
            .links
            .iter()
            .find(|l| l.name == "eu-to-witness-dcs")
            .unwrap();
        assert_eq!(plan.link_rtt(to_witness).0, Duration::from_millis(40));
    }
}
