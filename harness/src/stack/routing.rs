//! Routing: which database is the primary, and which region's app serves each region's
//! users — the stack's "DNS". The failover controller changes it; clients read it and keep an
//! answer for the DNS TTL before they ask again.

use crate::posture::Posture;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

/// A snapshot of the routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingState {
    /// Region of the current primary database.
    pub primary: String,
    /// For each user region, the region whose app serves those users.
    pub serving: BTreeMap<String, String>,
    /// Regions whose database was a primary and has been superseded (never restarted as a
    /// primary: rejoining it is a manual operation).
    pub deposed: BTreeSet<String>,
    /// Bumped on every change.
    pub version: u64,
}

/// The shared routing table.
#[derive(Debug)]
pub struct Routing {
    state: RwLock<RoutingState>,
}

impl Routing {
    /// The initial table over `regions` (the primary's first): the primary in the first;
    /// in single-region every user is served by it, otherwise each region's users by their
    /// own region's app.
    pub fn new(posture: Posture, regions: &[String]) -> Routing {
        let primary = regions[0].clone();
        let serving = regions
            .iter()
            .map(|r| {
                let by = if posture.has_standby() { r } else { &primary };
                (r.clone(), by.clone())
            })
            .collect();
        Routing {
            state: RwLock::new(RoutingState {
                primary,
                serving,
                deposed: BTreeSet::new(),
                version: 0,
            }),
        }
    }

    /// The initial table of `plan`'s stack.
    pub fn for_plan(plan: &crate::stack::plan::StackPlan) -> Routing {
        Routing::new(plan.posture, &plan.user_regions)
    }

    /// The current table.
    pub fn snapshot(&self) -> RoutingState {
        self.state.read().expect("routing lock").clone()
    }

    /// The region whose app serves `user_region`'s users now.
    pub fn serving(&self, user_region: &str) -> String {
        let s = self.state.read().expect("routing lock");
        s.serving
            .get(user_region)
            .cloned()
            .unwrap_or_else(|| s.primary.clone())
    }

    /// Makes `to` the primary without deposing the old one: a real HA manager (Patroni)
    /// brings the old primary back as a replica of the new one by itself, so a healed region's
    /// database is restarted. Users the old primary's region served are served by `to`.
    pub fn follow(&self, to: &str) {
        self.fail_over(to);
        let mut s = self.state.write().expect("routing lock");
        s.deposed.clear();
        s.version += 1;
    }

    /// Makes `to` the primary: the old primary's region is deposed and every user it served
    /// is now served by `to`.
    pub fn fail_over(&self, to: &str) {
        let mut s = self.state.write().expect("routing lock");
        let old = std::mem::replace(&mut s.primary, to.to_string());
        if old != to {
            s.deposed.insert(old.clone());
        }
        s.deposed.remove(to);
        for serving in s.serving.values_mut() {
            if *serving == old {
                *serving = to.to_string();
            }
        }
        s.version += 1;
    }
}

impl Routing {
    /// Marks `region`'s database as deposed (a failover away from it has begun): it is never
    /// restarted as a primary.
    pub fn depose(&self, region: &str) {
        let mut s = self.state.write().expect("routing lock");
        if s.deposed.insert(region.to_string()) {
            s.version += 1;
        }
    }

    /// `region`'s database is a standby of the primary again (rejoined): its app reads from
    /// it again, and it may be restarted like any node.
    pub fn rejoin(&self, region: &str) {
        let mut s = self.state.write().expect("routing lock");
        if s.deposed.remove(region) {
            s.version += 1;
        }
    }

    /// Active-active: every user `from` served is now served by `to`; no database changes
    /// role (each region has its own primary).
    pub fn evacuate(&self, from: &str, to: &str) {
        let mut s = self.state.write().expect("routing lock");
        for serving in s.serving.values_mut() {
            if *serving == from {
                *serving = to.to_string();
            }
        }
        s.version += 1;
    }
}

impl Default for Routing {
    fn default() -> Self {
        Routing::new(
            Posture::ActivePassiveAsync,
            &crate::stack::topology::default_regions(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::topology::{STANDBY_REGION, default_regions};

    #[test]
    fn failover_moves_users_and_deposes_the_old_primary() {
        let r = Routing::new(Posture::ActivePassiveAsync, &default_regions());
        assert_eq!(r.serving("eu"), "eu");
        r.fail_over(STANDBY_REGION);
        let s = r.snapshot();
        assert_eq!(s.primary, "eu");
        assert_eq!(s.serving["us"], "eu");
        assert!(s.deposed.contains("us"));
        assert_eq!(s.version, 1);
    }

    #[test]
    fn evacuation_moves_users_without_deposing_anyone() {
        let r = Routing::new(Posture::ActiveActiveLww, &default_regions());
        r.evacuate("us", "eu");
        let s = r.snapshot();
        assert_eq!(
            (s.serving["us"].as_str(), s.serving["eu"].as_str()),
            ("eu", "eu")
        );
        assert!(s.deposed.is_empty());
        assert_eq!(s.primary, "us");
    }

    #[test]
    fn single_region_serves_everyone_from_us() {
        let r = Routing::new(Posture::SingleRegion, &default_regions());
        assert_eq!(r.serving("eu"), "us");
    }
}
