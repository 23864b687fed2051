//! Where everything of a stack is reached — decided by the backend before anything starts
//! ([`Placement`]) — and the addresses that follow from it: within a region a node is reached
//! directly, across regions through a link (a proxy on the fault proxy). The harness reaches
//! every node and link on `127.0.0.1`; the stack's own nodes reach each other "inside" (the
//! same address natively, a container's name on its region's network on Docker).

use super::routing::RoutingState;
use super::topology::{LinkPurpose, NodeId, Role, link_name};
use crate::app::AppTuning;
use crate::posture::CacheMode;
use crate::posture::Posture;
use std::collections::BTreeMap;

/// Where a node is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Port on 127.0.0.1 where the harness reaches it.
    pub port: u16,
    /// (host, port) where the stack's other nodes reach it: `127.0.0.1` natively, the
    /// container's name on its region's network on Docker.
    pub inside: (String, u16),
}

/// Where a link's proxy listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPlacement {
    /// Where the harness and the nodes reach it.
    pub endpoint: Endpoint,
    /// The address the proxy binds (its `listen`), as the fault proxy sees it.
    pub listen: String,
}

/// Where every node and link of a stack is reached: the backend's answer to a plan.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// Every node.
    pub nodes: BTreeMap<NodeId, Endpoint>,
    /// Every link, by name.
    pub links: BTreeMap<String, LinkPlacement>,
}

/// A placement read for a posture: the addresses apps, probes and managers use.
#[derive(Debug, Clone)]
pub struct Wiring {
    posture: Posture,
    placement: Placement,
    /// Apps write through a libpq multi-host DSN naming every database, and libpq finds the
    /// primary (`target_session_attrs=read-write`): how pg_auto_failover's users deploy it.
    multi_host: bool,
    /// Where the harness reaches what a target (a stack someone else runs) names, instead of
    /// `127.0.0.1:port`: a database's DSN, a cache's or an app's URL, a link's `host:port`.
    external: ExternalAddresses,
}

/// The addresses of a stack someone else runs, as its target file gives them.
#[derive(Debug, Clone, Default)]
pub struct ExternalAddresses {
    /// A database's DSN, a cache's `redis://` URL, an app's base URL.
    pub nodes: BTreeMap<NodeId, String>,
    /// Where the harness reaches a link's proxy (users' links), by link name.
    pub links: BTreeMap<String, (String, u16)>,
    /// The DSN a region's users write through (database-only mode), by region.
    pub write_dbs: BTreeMap<String, String>,
}

impl Wiring {
    /// The addresses of `placement` in `posture`.
    pub fn new(posture: Posture, placement: Placement) -> Wiring {
        Wiring {
            posture,
            placement,
            multi_host: false,
            external: ExternalAddresses::default(),
        }
    }

    /// The wiring of a stack someone else runs: every address is the target's.
    pub fn external(posture: Posture, addresses: ExternalAddresses) -> Wiring {
        Wiring {
            external: addresses,
            ..Wiring::new(posture, Placement::default())
        }
    }

    /// The same wiring, with apps writing through a multi-host DSN when `on`.
    pub fn with_multi_host(mut self, on: bool) -> Wiring {
        self.multi_host = on;
        self
    }

    /// The multi-host DSN `from`'s app writes through: its own region's database directly,
    /// then every other through the app-to-db link, `target_session_attrs=read-write`.
    pub fn multi_host_dsn(&self, from: &str) -> Option<String> {
        let mut hosts = vec![self.endpoint(&NodeId::new(from, Role::Db))?.inside.clone()];
        for r in self.regions_with(Role::Db).filter(|r| *r != from) {
            hosts.push(self.link_inside(&link_name(from, LinkPurpose::AppToDb, r))?);
        }
        Some(crate::postgres::multi_host_dsn(&hosts))
    }

    /// The regions with a node of `role`, in name order.
    fn regions_with(&self, role: Role) -> impl Iterator<Item = &str> {
        self.placement
            .nodes
            .keys()
            .filter(move |n| n.role == role)
            .map(|n| n.region.as_str())
    }

    /// Where a node is reached.
    pub fn endpoint(&self, node: &NodeId) -> Option<&Endpoint> {
        self.placement.nodes.get(node)
    }

    /// Every node and where it is reached.
    pub fn endpoints(&self) -> &BTreeMap<NodeId, Endpoint> {
        &self.placement.nodes
    }

    /// Where a link is reached.
    pub fn link(&self, name: &str) -> Option<&LinkPlacement> {
        self.placement.links.get(name)
    }

    /// A link's address as the stack's nodes reach it.
    pub fn link_inside(&self, name: &str) -> Option<(String, u16)> {
        self.link(name).map(|l| l.endpoint.inside.clone())
    }

    /// The DSN the harness uses to reach a region's database directly (in its region).
    pub fn harness_db_dsn(&self, region: &str) -> Option<String> {
        let node = NodeId::new(region, Role::Db);
        if let Some(dsn) = self.external.nodes.get(&node) {
            return Some(dsn.clone());
        }
        self.endpoint(&node).map(|e| crate::postgres::dsn(e.port))
    }

    /// The DSN `region`'s users write through in database-only mode, when the target names
    /// one (an HA endpoint that follows the primary).
    pub fn users_write_dsn(&self, region: &str) -> Option<String> {
        self.external.write_dbs.get(region).cloned()
    }

    /// The URL the harness uses to reach a region's cache directly.
    pub fn harness_cache_url(&self, region: &str) -> Option<String> {
        let node = NodeId::new(region, Role::Cache);
        if let Some(url) = self.external.nodes.get(&node) {
            return Some(url.clone());
        }
        self.endpoint(&node)
            .map(|e| format!("redis://127.0.0.1:{}", e.port))
    }

    /// The DSN of a node's database as the stack's nodes reach it, directly.
    pub fn inside_db_dsn(&self, region: &str) -> Option<String> {
        let (host, port) = &self.endpoint(&NodeId::new(region, Role::Db))?.inside;
        Some(crate::postgres::dsn_at(host, *port))
    }

    /// URL the harness uses to reach `serving`'s app on behalf of a user in `user_region`:
    /// directly within a region, through the users link across regions.
    pub fn app_url_for(&self, user_region: &str, serving: &str) -> Option<String> {
        let app = NodeId::new(serving, Role::App);
        if let Some(direct) = self.external.nodes.get(&app) {
            // A target's users reach another region's app through the users' link when the
            // target names where it is reached, else directly (over the real network).
            let link = link_name(user_region, LinkPurpose::UsersToApp, serving);
            return Some(match self.external.links.get(&link) {
                Some((host, port)) if user_region != serving => format!("http://{host}:{port}"),
                _ => direct.clone(),
            });
        }
        let port = if user_region == serving {
            self.endpoint(&NodeId::new(serving, Role::App))?.port
        } else {
            let link = link_name(user_region, LinkPurpose::UsersToApp, serving);
            self.link(&link)?.endpoint.port
        };
        Some(format!("http://127.0.0.1:{port}"))
    }

    /// The database `from`'s app uses to reach `to`'s: its own directly, another region's
    /// through the app-to-db link.
    fn app_db_dsn(&self, from: &str, to: &str) -> Option<String> {
        if from == to {
            return self.inside_db_dsn(to);
        }
        let (host, port) = self.link_inside(&link_name(from, LinkPurpose::AppToDb, to))?;
        Some(crate::postgres::dsn_at(&host, port))
    }

    /// The databases an app in `region` uses under `routing`: writes to the primary (through
    /// the app-to-db link when remote; in active-active its own region's); reads from its own
    /// region's database unless that one was deposed or does not exist (then the primary).
    pub fn app_dsns(&self, region: &str, routing: &RoutingState) -> Option<(String, String)> {
        let router = self.endpoint(&NodeId::new(region, Role::Router));
        let write = if let Some(router) = router {
            // A real HA manager's stack: writes go to the region's router, which finds the
            // primary by itself (the routing table is not consulted).
            crate::postgres::dsn_at(&router.inside.0, router.inside.1)
        } else if self.multi_host {
            self.multi_host_dsn(region)?
        } else if self.posture.is_active_active() {
            self.inside_db_dsn(region)?
        } else {
            self.app_db_dsn(region, &routing.primary)?
        };
        let own = self.endpoint(&NodeId::new(region, Role::Db)).is_some();
        let read = if own && !routing.deposed.contains(region) {
            self.inside_db_dsn(region)?
        } else {
            write.clone()
        };
        Some((write, read))
    }

    /// A Redis URL: the region's own cache, or another region's through a link.
    fn redis_url(&self, node: &NodeId, via: Option<&str>) -> Option<String> {
        let (host, port) = match via {
            Some(link) => self.link_inside(link)?,
            None => self.endpoint(node)?.inside.clone(),
        };
        Some(format!("redis://{host}:{port}"))
    }

    /// The arguments of `regiondrill-app serve` for `region`'s app, all but `--listen`
    /// (addresses as the stack's nodes see them, so every backend uses the same list).
    /// Empty only for a region without an app.
    pub fn app_args(&self, region: &str, routing: &RoutingState, t: &AppTuning) -> Vec<String> {
        self.try_app_args(region, routing, t).unwrap_or_default()
    }

    fn try_app_args(
        &self,
        region: &str,
        routing: &RoutingState,
        t: &AppTuning,
    ) -> Option<Vec<String>> {
        let (write, read) = self.app_dsns(region, routing)?;
        let mut args = crate::app::ServeArgs {
            region: region.to_string(),
            posture: self.posture.app_mode().to_string(),
            write_db: write,
            read_db: read,
            redis: self.redis_url(&NodeId::new(region, Role::Cache), None)?,
            remote_redis: None,
            home_dbs: Vec::new(),
        };
        // The other region's cache (cache modes other than `ttl` exist between two regions).
        let others: Vec<&str> = self
            .regions_with(Role::Cache)
            .filter(|r| *r != region)
            .collect();
        if let (true, [other]) = (t.cache_mode != CacheMode::Ttl, others.as_slice()) {
            let link = link_name(region, LinkPurpose::AppToCache, other);
            args.remote_redis =
                Some(self.redis_url(&NodeId::new(other, Role::Cache), Some(&link))?);
        }
        if self.posture == Posture::ActiveActivePartitioned {
            for r in self.regions_with(Role::Db) {
                args.home_dbs
                    .push((r.to_string(), self.app_db_dsn(region, r)?));
            }
        }
        Some(args.to_args(t))
    }
}
