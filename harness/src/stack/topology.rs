//! Topology: regions, nodes, and the named cross-region links every inter-region byte goes
//! through. Pure data, shared by every backend.
//!
//! Regions are `us` (home of the primary) and `eu` (the standby). Links are named for who
//! connects to what, e.g. `eu-app-to-us-db`; `replication` is the `eu` database's
//! replication connection to the `us` one (WAL flows us → eu on it), `replication-to-us` the
//! reverse one: the `us` database's connection to `eu` (active-active replication, and a
//! deposed `us` primary rejoined as a standby of `eu`).

use serde::{Deserialize, Serialize};

/// The region that starts with the primary.
pub const PRIMARY_REGION: &str = "us";
/// The standby region.
pub const STANDBY_REGION: &str = "eu";
/// The link the standby region's database replicates through (from the primary region).
pub const REPLICATION: &str = "replication";
/// The reverse replication link: `us` → `eu` (active-active replication; a rejoined `us`
/// standby streaming from a promoted `eu`).
pub const REPLICATION_TO_US: &str = "replication-to-us";
/// Both regions, primary first.
pub const REGIONS: [&str; 2] = [PRIMARY_REGION, STANDBY_REGION];
/// A location that holds no data, only a failover manager's own state (Patroni's etcd,
/// pg_auto_failover's monitor),
/// reached from every data region through its own links.
pub const WITNESS_REGION: &str = "witness";

/// The other region.
pub fn other_region(region: &str) -> &'static str {
    if region == PRIMARY_REGION {
        STANDBY_REGION
    } else {
        PRIMARY_REGION
    }
}

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// PostgreSQL (primary or replica).
    Db,
    /// Redis cache.
    Cache,
    /// The sample app.
    App,
    /// A failover manager's own state: Patroni's DCS (etcd), pg_auto_failover's monitor. Not
    /// in [`Role::ALL`]: only
    /// stacks with such a manager have it, in one region.
    Dcs,
    /// The region's database router (HAProxy on Patroni's REST checks), which the region's
    /// app writes through. Only in stacks with such a manager.
    Router,
    /// A database node's second port: Patroni's REST API. Placed like a node (so links can
    /// reach it) but started with the database node, never on its own.
    Api,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Db, Role::Cache, Role::App];

    /// Name used in node ids.
    pub fn name(self) -> &'static str {
        match self {
            Role::Db => "db",
            Role::Cache => "cache",
            Role::App => "app",
            Role::Dcs => "dcs",
            Role::Router => "router",
            Role::Api => "api",
        }
    }
}

/// A node: a role in a region, written `us-db`, `eu-cache`, `eu-app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId {
    /// Region.
    pub region: String,
    /// Role.
    pub role: Role,
}

impl NodeId {
    /// A node id.
    pub fn new(region: &str, role: Role) -> Self {
        NodeId {
            region: region.to_string(),
            role,
        }
    }

    /// Parses `us-db` style ids.
    pub fn parse(s: &str) -> Option<NodeId> {
        let (region, role) = s.split_once('-')?;
        let role = Role::ALL.into_iter().find(|r| r.name() == role)?;
        REGIONS.contains(&region).then(|| NodeId::new(region, role))
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.region, self.role.name())
    }
}

/// A cross-region link: one proxy, from the region that connects to the region it reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSpec {
    /// Proxy name, e.g. `eu-app-to-us-db`.
    pub name: String,
    /// Region of the connecting side.
    pub from: String,
    /// Region of the side connected to.
    pub to: String,
    /// The node connected to.
    pub target: NodeId,
}

/// Every link a two-region stack has. Links whose target does not exist in a posture are
/// simply not created by the backend.
pub fn links() -> Vec<LinkSpec> {
    let mut v = vec![
        LinkSpec {
            name: REPLICATION.into(),
            from: STANDBY_REGION.into(),
            to: PRIMARY_REGION.into(),
            target: NodeId::new(PRIMARY_REGION, Role::Db),
        },
        LinkSpec {
            name: REPLICATION_TO_US.into(),
            from: PRIMARY_REGION.into(),
            to: STANDBY_REGION.into(),
            target: NodeId::new(STANDBY_REGION, Role::Db),
        },
    ];
    for from in REGIONS {
        let to = other_region(from);
        for purpose in [
            LinkPurpose::AppToDb,
            LinkPurpose::UsersToApp,
            LinkPurpose::MonitorToDb,
            LinkPurpose::AppToCache,
        ] {
            let role = match purpose {
                LinkPurpose::UsersToApp => Role::App,
                LinkPurpose::AppToCache => Role::Cache,
                _ => Role::Db,
            };
            v.push(LinkSpec {
                name: link_name(from, purpose, to),
                from: from.into(),
                to: to.into(),
                target: NodeId::new(to, role),
            });
        }
    }
    v
}

/// Every name a link can have in some stack: [`links`], and the links of the real HA
/// managers (`<region>-to-<region>-api`, `<region>-to-<region or witness>-dcs`).
pub fn link_names() -> Vec<String> {
    let mut names: Vec<String> = links().into_iter().map(|l| l.name).collect();
    for from in REGIONS {
        for to in REGIONS.iter().chain([&WITNESS_REGION]) {
            if from == *to {
                continue;
            }
            if *to != WITNESS_REGION {
                names.push(link_name(from, LinkPurpose::ToApi, to));
            }
            names.push(link_name(from, LinkPurpose::ToDcs, to));
        }
    }
    names
}

/// Whether a posture uses a link: `replication-to-us` exists only when both regions have a
/// database (`two_regions`): active-active replication, or a deposed `us` primary rejoined as
/// a standby of `eu` (links whose target a posture lacks are never created either).
pub fn used_by(link: &LinkSpec, two_regions: bool) -> bool {
    link.name != REPLICATION_TO_US || two_regions
}

/// Name of the link `from` region uses to reach `target`.
pub fn link_name(from: &str, purpose: LinkPurpose, to: &str) -> String {
    match purpose {
        LinkPurpose::Replication => REPLICATION.into(),
        LinkPurpose::AppToDb => format!("{from}-app-to-{to}-db"),
        LinkPurpose::UsersToApp => format!("{from}-users-to-{to}-app"),
        LinkPurpose::MonitorToDb => format!("{from}-monitor-to-{to}-db"),
        LinkPurpose::AppToCache => format!("{from}-app-to-{to}-cache"),
        LinkPurpose::ToApi => format!("{from}-to-{to}-api"),
        LinkPurpose::ToDcs => format!("{from}-to-{to}-dcs"),
    }
}

/// What a link carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// The replica's replication connection.
    Replication,
    /// An app's connection to the other region's database.
    AppToDb,
    /// Users reaching the other region's app.
    UsersToApp,
    /// The failover controller's health checks of the other region's database.
    MonitorToDb,
    /// An app's connection to the other region's cache (invalidation events, write-through).
    AppToCache,
    /// A region's Patroni and HAProxy reaching another region's Patroni REST API.
    ToApi,
    /// A region's Patroni reaching the DCS in another region (or the witness); a region's
    /// pg_auto_failover keeper reaching the monitor.
    ToDcs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_round_trip() {
        for r in REGIONS {
            for role in Role::ALL {
                let id = NodeId::new(r, role);
                assert_eq!(NodeId::parse(&id.to_string()), Some(id));
            }
        }
        assert_eq!(NodeId::parse("ap-db"), None);
        assert_eq!(NodeId::parse("us-disk"), None);
    }

    #[test]
    fn link_names_are_unique_and_match_link_name() {
        let all = links();
        let mut names: Vec<_> = all.iter().map(|l| l.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert!(names.contains(&link_name("eu", LinkPurpose::AppToDb, "us")));
        assert!(names.contains(&link_name("us", LinkPurpose::UsersToApp, "eu")));
        assert!(names.contains(&link_name("eu", LinkPurpose::MonitorToDb, "us")));
        assert!(names.contains(&link_name("us", LinkPurpose::AppToCache, "eu")));
        let every = link_names();
        for n in &names {
            assert!(every.contains(n), "{n}");
        }
        for n in ["eu-to-us-api", "us-to-witness-dcs", "eu-to-us-dcs"] {
            assert!(every.contains(&n.to_string()), "{n}");
        }
    }
}
