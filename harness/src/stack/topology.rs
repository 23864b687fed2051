//! Topology: regions, nodes, and the named cross-region links every inter-region byte goes
//! through. Pure data, shared by every backend.
//!
//! An experiment names its regions (2 to 5; `us` and `eu` by default), the first holding the
//! primary. Links are named for who connects to what, e.g. `eu-app-to-us-db`; a database's
//! replication connection to another region's is `ap-db-to-us-db` (WAL flows us → ap on it),
//! except for the default pair, whose names predate named regions: `replication` is the `eu`
//! database's connection to `us`, `replication-to-us` the `us` database's connection to `eu`
//! (active-active replication, and a deposed `us` primary rejoined as a standby of `eu`).

use serde::{Deserialize, Serialize};

/// The region that starts with the primary when an experiment does not name its regions.
pub const PRIMARY_REGION: &str = "us";
/// The standby region when an experiment does not name its regions.
pub const STANDBY_REGION: &str = "eu";
/// The link the `eu` database replicates through (from `us`).
pub const REPLICATION: &str = "replication";
/// The reverse replication link of the default pair: `us` → `eu` (active-active
/// replication; a rejoined `us` standby streaming from a promoted `eu`).
pub const REPLICATION_TO_US: &str = "replication-to-us";
/// The default regions, primary first.
pub const REGIONS: [&str; 2] = [PRIMARY_REGION, STANDBY_REGION];
/// The most regions an experiment may name.
pub const MAX_REGIONS: usize = 5;
/// A location that holds no data: a failover manager's own state (Patroni's etcd,
/// pg_auto_failover's monitor), or a vantage point of the built-in controller; reached from
/// every data region through its own links.
pub const WITNESS_REGION: &str = "witness";

/// The default regions, as owned names.
pub fn default_regions() -> Vec<String> {
    REGIONS.iter().map(|r| r.to_string()).collect()
}

/// Whether `name` can name a region: a lower-case letter, then lower-case letters and
/// digits (it is spliced into node ids, link names and the app's table names), and not the
/// witness's name.
pub fn valid_region_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name != WITNESS_REGION
        && name.len() <= 12
}

/// The other region of the default pair (`us` ↔ `eu`): the features that exist only between
/// the default regions use it (Patroni, pg_auto_failover, failback, residency, targets);
/// everything else takes the experiment's regions from the plan.
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

    /// Parses `us-db` style ids: a valid region name and a role of [`Role::ALL`] (whether
    /// the stack has that node is the caller's question).
    pub fn parse(s: &str) -> Option<NodeId> {
        let (region, role) = s.split_once('-')?;
        let role = Role::ALL.into_iter().find(|r| r.name() == role)?;
        valid_region_name(region).then(|| NodeId::new(region, role))
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.region, self.role.name())
    }
}

/// The regions that have nodes: every one named when the posture has more than one
/// database (a standby or a second primary), else the primary's alone.
pub fn regions_with_nodes(regions: &[String], has_standby: bool) -> &[String] {
    if has_standby { regions } else { &regions[..1] }
}

/// Every role of [`Role::ALL`] in each of `regions`.
pub fn nodes_in(regions: &[String]) -> Vec<NodeId> {
    regions
        .iter()
        .flat_map(|r| Role::ALL.map(|role| NodeId::new(r, role)))
        .collect()
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

/// Every link a stack over `regions` (data regions, the primary's first) can have, and the
/// witness's monitor links when `witness` (the built-in controller watches from there): for
/// every ordered pair of regions, a database's replication connection and every purpose
/// below. Links whose target does not exist in a posture are simply not created.
pub fn links(regions: &[String], witness: bool) -> Vec<LinkSpec> {
    let mut v = Vec::new();
    // Replication first, towards the primary's region first (the order lists show).
    for to in regions {
        for from in regions.iter().filter(|from| *from != to) {
            v.push(LinkSpec {
                name: link_name(from, LinkPurpose::Replication, to),
                from: from.clone(),
                to: to.clone(),
                target: NodeId::new(to, Role::Db),
            });
        }
    }
    for from in regions {
        for to in regions.iter().filter(|to| *to != from) {
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
                    from: from.clone(),
                    to: to.clone(),
                    target: NodeId::new(to, role),
                });
            }
        }
    }
    if witness {
        for to in regions {
            v.push(LinkSpec {
                name: link_name(WITNESS_REGION, LinkPurpose::MonitorToDb, to),
                from: WITNESS_REGION.into(),
                to: to.clone(),
                target: NodeId::new(to, Role::Db),
            });
        }
    }
    v
}

/// Every name a link can have in some stack over `regions`: [`links`] (with the witness's),
/// and the links of the real HA managers (`<region>-to-<region>-api`,
/// `<region>-to-<region or witness>-dcs`).
pub fn link_names(regions: &[String]) -> Vec<String> {
    let mut names: Vec<String> = links(regions, true).into_iter().map(|l| l.name).collect();
    for from in regions {
        for to in regions.iter().map(String::as_str).chain([WITNESS_REGION]) {
            if from == to {
                continue;
            }
            if to != WITNESS_REGION {
                names.push(link_name(from, LinkPurpose::ToApi, to));
            }
            names.push(link_name(from, LinkPurpose::ToDcs, to));
        }
    }
    names
}

/// Why `link` carries nothing in a stack of `nodes` (and a failover controller when
/// `controller`), or None when it exists there: it needs the node it reaches and whatever
/// connects — a database for a replication link, an app for `*-app-to-*`, the controller for
/// `*-monitor-*` (users live in every region whatever the posture).
pub fn why_absent(link: &LinkSpec, nodes: &[NodeId], controller: bool) -> Option<String> {
    if !nodes.contains(&link.target) {
        return Some(format!("there is no {}", link.target));
    }
    let is = |purpose| link.name == link_name(&link.from, purpose, &link.to);
    let from = |role| NodeId::new(&link.from, role);
    if is(LinkPurpose::Replication) && !nodes.contains(&from(Role::Db)) {
        return Some(format!("there is no {} to replicate", from(Role::Db)));
    }
    if is(LinkPurpose::MonitorToDb) && !controller {
        return Some("there is no failover controller".into());
    }
    if (is(LinkPurpose::AppToDb) || is(LinkPurpose::AppToCache))
        && !nodes.contains(&from(Role::App))
    {
        return Some(format!("there is no {}", from(Role::App)));
    }
    None
}

/// Name of the link `from` region uses to reach `to` for `purpose`.
pub fn link_name(from: &str, purpose: LinkPurpose, to: &str) -> String {
    match purpose {
        LinkPurpose::Replication => match (from, to) {
            (STANDBY_REGION, PRIMARY_REGION) => REPLICATION.into(),
            (PRIMARY_REGION, STANDBY_REGION) => REPLICATION_TO_US.into(),
            _ => format!("{from}-db-to-{to}-db"),
        },
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
    /// A database's replication connection to another region's (it streams that region's
    /// WAL).
    Replication,
    /// An app's connection to the other region's database.
    AppToDb,
    /// Users reaching the other region's app.
    UsersToApp,
    /// The failover controller's health checks of another region's database, from a
    /// vantage point in this region (or the witness).
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

    fn three() -> Vec<String> {
        ["us", "eu", "ap"].map(String::from).to_vec()
    }

    #[test]
    fn node_ids_round_trip() {
        for r in three() {
            for role in Role::ALL {
                let id = NodeId::new(&r, role);
                assert_eq!(NodeId::parse(&id.to_string()), Some(id));
            }
        }
        assert_eq!(NodeId::parse("Ap-db"), None);
        assert_eq!(NodeId::parse("us-disk"), None);
        assert_eq!(NodeId::parse("witness-db"), None);
    }

    #[test]
    fn the_default_pair_keeps_its_replication_names() {
        assert_eq!(link_name("eu", LinkPurpose::Replication, "us"), REPLICATION);
        assert_eq!(
            link_name("us", LinkPurpose::Replication, "eu"),
            REPLICATION_TO_US
        );
        assert_eq!(
            link_name("ap", LinkPurpose::Replication, "us"),
            "ap-db-to-us-db"
        );
    }

    #[test]
    fn link_names_are_unique_and_match_link_name() {
        for (regions, witness) in [(default_regions(), false), (three(), true)] {
            let all = links(&regions, witness);
            let mut names: Vec<_> = all.iter().map(|l| l.name.clone()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), all.len());
            let n = regions.len();
            // Five purposes per ordered pair, plus the witness's monitor links.
            assert_eq!(all.len(), 5 * n * (n - 1) + if witness { n } else { 0 });
            let every = link_names(&regions);
            for n in &names {
                assert!(every.contains(n), "{n}");
            }
        }
        let every = link_names(&three());
        for n in [
            "eu-to-us-api",
            "us-to-witness-dcs",
            "ap-app-to-us-db",
            "witness-monitor-to-us-db",
            "eu-db-to-ap-db",
        ] {
            assert!(every.contains(&n.to_string()), "{n}");
        }
    }
}
