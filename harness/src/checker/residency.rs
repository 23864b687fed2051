//! Residency: where users' personal data was found, against where their policy allows it.
//!
//! # Definitions
//! - **Personal data** of a user: its token (`crate::residency`), unique to the user and the
//!   run, carried in its profile's email and name.
//! - **Policy**: for each home region, the regions where its users' personal data may be
//!   (`[residency] allow`; by default its own region only). A user's home is the one the
//!   workload gave it.
//! - **At rest**: after the run, the scan (`final_state.residency`) found a user's token in a
//!   region's database (primary or replica: any table) or cache (any key). A **violation at
//!   rest** is a (region, place, user) where the region is not allowed for the user's home.
//! - **In flight** (when the fault proxy counted, `probes.in_flight`): tokens in the bytes a
//!   link carried from one region into another; a **violation in flight** is a user's token
//!   carried into a region its policy does not allow. Counted per link and direction, so a
//!   leak is attributed to the path that carried it (replication, an app reaching a remote
//!   database, cache invalidation, users reaching a remote app).
//! - **Violations** (`violations`, judged by `max_residency_violations`): the number of
//!   distinct users with a violation at rest or in flight.
//! - Places are aggregated by pattern: every run of digits in a table or key name becomes
//!   `*` (`profile:7` → `profile:*`), so a table row says how many users' data a place held.
//! - **Checked**: a scan was made (the experiment had `[residency]`). A store the scan could
//!   not read is listed (`unreadable`): nothing is claimed about it.

use super::rows::{FindingRow, RowContext};
use crate::history::{FinalState, History, OpKind, Probes};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The verdict check's name.
pub const CHECK: &str = "residency_violations";

/// Residency findings (`residency.*` in results.json).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Residency {
    /// Whether an at-rest scan was made.
    pub checked: bool,
    /// Distinct users with a violation, at rest or in flight.
    pub violations: usize,
    /// Distinct users with a violation at rest.
    pub at_rest_users: usize,
    /// Distinct users whose profile write was acknowledged.
    pub profiles_written: usize,
    /// Per region: whose data it holds, and what is not allowed there.
    pub by_region: BTreeMap<String, RegionHolds>,
    /// Stores the scan could not read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
    /// Tokens per link and direction (None: not counted).
    pub in_flight: Option<Vec<LinkLeaks>>,
    /// Distinct users with a violation in flight (None: not counted).
    pub in_flight_users: Option<usize>,
}

/// What one region holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionHolds {
    /// Distinct users whose data is here, by their home region.
    pub users_by_home: BTreeMap<String, usize>,
    /// Distinct users whose data is here against their policy.
    pub violating_users: usize,
    /// Per place (table or key pattern, as `db profiles` or `cache profile:*`): distinct users
    /// whose data is there against their policy.
    pub violations_by_place: BTreeMap<String, usize>,
}

/// Tokens one link carried in one direction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkLeaks {
    /// The link.
    pub link: String,
    /// From region.
    pub from: String,
    /// Into region.
    pub to: String,
    /// Tokens counted.
    pub tokens: u64,
    /// Distinct users whose tokens it carried.
    pub users: usize,
    /// Tokens of users not allowed in `to`.
    pub violating_tokens: u64,
    /// Distinct users not allowed in `to` whose tokens it carried.
    pub violating_users: usize,
}

/// What one region holds, while counting: users by home, and the users in violation.
type Held<'a> = (BTreeMap<&'a str, BTreeSet<u32>>, BTreeSet<u32>);

/// `name` with every run of digits replaced by `*`.
pub fn pattern(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_digits = false;
    for c in name.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('*');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// Judges the at-rest scan and the in-flight counts against the policy.
pub fn check(history: &History, probes: &Probes, final_state: Option<&FinalState>) -> Residency {
    let Some(scan) = final_state.and_then(|f| f.residency.as_ref()) else {
        return Residency::default();
    };
    let allowed = |user: u32, region: &str| -> bool {
        let Some(home) = scan.homes.get(&user) else {
            // A token of a user the workload did not have: nobody may hold it.
            return false;
        };
        match scan.allow.get(home) {
            Some(list) => list.iter().any(|r| r == region),
            None => home == region,
        }
    };
    let mut out = Residency {
        checked: true,
        unreadable: scan.unreadable.clone(),
        ..Residency::default()
    };
    out.profiles_written = history
        .ops
        .iter()
        .filter(|o| o.kind == OpKind::ProfileWrite && o.outcome.is_ok())
        .map(|o| o.user)
        .collect::<BTreeSet<_>>()
        .len();
    let mut violators: BTreeSet<u32> = BTreeSet::new();
    // region → (home → users, violating users)
    let mut held: BTreeMap<&str, Held> = BTreeMap::new();
    let mut places: BTreeMap<(&str, String), BTreeSet<u32>> = BTreeMap::new();
    for copy in &scan.found {
        let home = scan.homes.get(&copy.user).map_or("unknown", String::as_str);
        let entry = held.entry(copy.region.as_str()).or_default();
        entry.0.entry(home).or_default().insert(copy.user);
        if !allowed(copy.user, &copy.region) {
            entry.1.insert(copy.user);
            violators.insert(copy.user);
            places
                .entry((
                    copy.region.as_str(),
                    format!("{} {}", copy.store, pattern(&copy.place)),
                ))
                .or_default()
                .insert(copy.user);
        }
    }
    out.at_rest_users = violators.len();
    for (region, (homes, violating)) in held {
        out.by_region.insert(
            region.to_owned(),
            RegionHolds {
                users_by_home: homes
                    .into_iter()
                    .map(|(h, users)| (h.to_owned(), users.len()))
                    .collect(),
                violating_users: violating.len(),
                violations_by_place: places
                    .iter()
                    .filter(|((r, _), _)| *r == region)
                    .map(|((_, place), users)| (place.clone(), users.len()))
                    .collect(),
            },
        );
    }
    if let Some(links) = &probes.in_flight {
        let mut flight_violators = BTreeSet::new();
        let mut leaks = Vec::new();
        for l in links {
            let mut leak = LinkLeaks {
                link: l.link.clone(),
                from: l.from.clone(),
                to: l.to.clone(),
                ..LinkLeaks::default()
            };
            for (&user, &n) in &l.by_user {
                leak.tokens += n;
                leak.users += 1;
                if !allowed(user, &l.to) {
                    leak.violating_tokens += n;
                    leak.violating_users += 1;
                    flight_violators.insert(user);
                }
            }
            leaks.push(leak);
        }
        leaks.sort_by(|a, b| (&a.link, &a.from).cmp(&(&b.link, &b.from)));
        out.in_flight_users = Some(flight_violators.len());
        violators.extend(flight_violators);
        out.in_flight = Some(leaks);
    }
    out.violations = violators.len();
    out
}

/// The rows: the violations (judged), what each region holds, the leaks per link.
pub fn rows(r: &Residency, cx: &RowContext) -> Vec<FindingRow> {
    if !r.checked {
        return Vec::new();
    }
    let mut rows = vec![cx.judged(
        "residency violations (users)",
        format!(
            "{} ({} at rest{}; {} profiles written)",
            r.violations,
            r.at_rest_users,
            match r.in_flight_users {
                Some(n) => format!(", {n} in flight"),
                None => ", in flight not counted".into(),
            },
            r.profiles_written
        ),
        CHECK,
    )];
    for (region, holds) in &r.by_region {
        let homes: Vec<String> = holds
            .users_by_home
            .iter()
            .map(|(home, n)| format!("{home} {n}"))
            .collect();
        let mut observed = format!("users by home: {}", homes.join(", "));
        if holds.violating_users > 0 {
            let places: Vec<String> = holds
                .violations_by_place
                .iter()
                .map(|(p, n)| format!("{p} {n}"))
                .collect();
            observed.push_str(&format!(
                "; {} not allowed ({})",
                holds.violating_users,
                places.join(", ")
            ));
        }
        rows.push(FindingRow::sub(format!("{region} holds"), observed));
    }
    for leak in r.in_flight.iter().flatten().filter(|l| l.tokens > 0) {
        rows.push(FindingRow::sub(
            format!("in flight: {} ({} → {})", leak.link, leak.from, leak.to),
            format!(
                "{} tokens of {} users; {} of {} users not allowed in {}",
                leak.tokens, leak.users, leak.violating_tokens, leak.violating_users, leak.to
            ),
        ));
    }
    if !r.unreadable.is_empty() {
        rows.push(FindingRow::sub(
            "not scanned (unreadable)",
            r.unreadable.join("; "),
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::history::{AtRest, HeldCopy, LinkTokens};

    fn copy(region: &str, store: &str, place: &str, user: u32) -> HeldCopy {
        HeldCopy {
            region: region.into(),
            store: store.into(),
            place: place.into(),
            user,
            tokens: 2,
        }
    }

    /// Users 0, 1 live in us; 2, 3 in eu. Default policy: home only.
    fn scan(found: Vec<HeldCopy>) -> FinalState {
        FinalState {
            residency: Some(AtRest {
                allow: [
                    ("us".into(), vec!["us".into()]),
                    ("eu".into(), vec!["eu".into()]),
                ]
                .into(),
                homes: [(0, "us"), (1, "us"), (2, "eu"), (3, "eu")]
                    .into_iter()
                    .map(|(u, h)| (u, h.to_string()))
                    .collect(),
                scanned: vec!["us-db (primary)".into(), "eu-db (replica)".into()],
                unreadable: vec![],
                found,
            }),
            ..FinalState::default()
        }
    }

    #[test]
    fn pinned_data_has_no_violation() {
        let fs = scan(vec![
            copy("us", "db", "profiles_us", 0),
            copy("us", "db", "profiles_us", 1),
            copy("us", "cache", "profile:1", 1),
            copy("eu", "db", "profiles_eu", 2),
            copy("eu", "db", "profiles_eu", 3),
        ]);
        let r = check(&History::default(), &Probes::default(), Some(&fs));
        assert!(r.checked);
        assert_eq!((r.violations, r.at_rest_users), (0, 0));
        assert_eq!(
            r.by_region["us"].users_by_home,
            [("us".to_string(), 2)].into()
        );
        assert_eq!(r.by_region["eu"].violating_users, 0);
        assert_eq!(r.in_flight, None);
    }

    #[test]
    fn a_replicated_profile_table_violates_for_every_user_abroad() {
        // Active-passive: the us primary and the eu replica hold everyone; eu's cache holds
        // user 0 (a traveller) too.
        let mut found = Vec::new();
        for u in 0..4 {
            found.push(copy("us", "db", "profiles", u));
            found.push(copy("eu", "db", "profiles", u));
        }
        found.push(copy("eu", "cache", "profile:0", 0));
        found.push(copy("eu", "cache", "profile:3", 3));
        let fs = scan(found);
        let h = history(
            vec![
                w(1, "profile:0", 0, 5).user(0),
                w(2, "profile:2", 0, 5).user(2),
                w(3, "profile:3", 0, 5).user(3).fail(),
            ],
            vec![],
        );
        let mut h = h;
        for op in &mut h.ops {
            op.kind = OpKind::ProfileWrite;
        }
        let r = check(&h, &Probes::default(), Some(&fs));
        assert_eq!(r.profiles_written, 2);
        // us holds eu's 2 users, eu holds us's 2: 4 users in violation.
        assert_eq!(r.violations, 4);
        assert_eq!(r.by_region["us"].violating_users, 2);
        assert_eq!(
            r.by_region["us"].violations_by_place,
            [("db profiles".to_string(), 2)].into()
        );
        assert_eq!(r.by_region["eu"].violating_users, 2);
        assert_eq!(
            r.by_region["eu"].violations_by_place,
            [
                ("cache profile:*".to_string(), 1),
                ("db profiles".to_string(), 2)
            ]
            .into()
        );
        assert_eq!(
            r.by_region["eu"].users_by_home,
            [("eu".to_string(), 2), ("us".to_string(), 2)].into()
        );
    }

    #[test]
    fn a_policy_can_allow_a_region_and_unknown_users_always_violate() {
        let mut fs = scan(vec![
            copy("us", "db", "profiles", 2),
            copy("eu", "db", "kv", 9),
        ]);
        let at_rest = fs.residency.as_mut().unwrap();
        at_rest
            .allow
            .insert("eu".into(), vec!["eu".into(), "us".into()]);
        let r = check(&History::default(), &Probes::default(), Some(&fs));
        assert_eq!(r.violations, 1);
        assert_eq!(
            r.by_region["eu"].users_by_home,
            [("unknown".to_string(), 1)].into()
        );
    }

    #[test]
    fn in_flight_leaks_are_attributed_to_their_link_and_direction() {
        let fs = scan(vec![]);
        let probes = Probes {
            in_flight: Some(vec![
                LinkTokens {
                    link: "replication".into(),
                    from: "us".into(),
                    to: "eu".into(),
                    // user 0 (us) into eu: a leak; user 2 (eu) going home: allowed.
                    by_user: [(0, 3), (2, 5)].into(),
                },
                LinkTokens {
                    link: "eu-app-to-us-db".into(),
                    from: "eu".into(),
                    to: "us".into(),
                    by_user: [(2, 1), (3, 1)].into(),
                },
                LinkTokens {
                    link: "us-users-to-eu-app".into(),
                    from: "us".into(),
                    to: "eu".into(),
                    by_user: Default::default(),
                },
            ]),
            ..Probes::default()
        };
        let r = check(&History::default(), &probes, Some(&fs));
        assert_eq!(r.at_rest_users, 0);
        assert_eq!(r.in_flight_users, Some(3));
        assert_eq!(r.violations, 3);
        let flights = r.in_flight.as_ref().unwrap();
        let repl = flights.iter().find(|l| l.link == "replication").unwrap();
        assert_eq!(
            (
                repl.tokens,
                repl.users,
                repl.violating_tokens,
                repl.violating_users
            ),
            (8, 2, 3, 1)
        );
        let app = flights
            .iter()
            .find(|l| l.link == "eu-app-to-us-db")
            .unwrap();
        assert_eq!((app.violating_tokens, app.violating_users), (2, 2));
    }

    #[test]
    fn no_scan_is_not_checked_and_shows_nothing() {
        let r = check(&History::default(), &Probes::default(), None);
        assert!(!r.checked);
        assert_eq!(r.violations, 0);
        assert!(rows(&r, &cx()).is_empty());
    }

    #[test]
    fn digits_become_stars() {
        assert_eq!(pattern("profile:17"), "profile:*");
        assert_eq!(pattern("kv:u12-k3"), "kv:u*-k*");
        assert_eq!(pattern("profiles_eu"), "profiles_eu");
    }
}
