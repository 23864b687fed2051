//! The personal-data plan: when each user writes its profile, when profiles are read, and
//! which users ask for erasure when — all from the experiment's seed (the same seed, the same
//! plan), beside the key-value plan (`crate::workload::plan`), whose users and homes it
//! shares.
//!
//! - **Profile writes**: every user writes its profile once, spread evenly over the first
//!   [`WRITE_SPREAD`] of the run (or the first quarter of a shorter one), in user order.
//! - **Profile reads**: open loop at `profile_reads_per_s` (Poisson), from just after the
//!   writes to the end, each by a uniformly chosen user — skipped when that user's erasure is
//!   already due (a user who asked to be forgotten does not come back).
//! - **Erasures**: at each `[[residency.erasures]]` time, `users` users of its home region,
//!   drawn without replacement (a seeded shuffle of that region's users), one after the other
//!   1 ms apart.
//!
//! Profile writes and reads go to the app of the region the user is in (travellers use the
//! other region's); an erasure goes to the user's home region's app (where its data is
//! governed).

use crate::experiment::Residency;
use crate::history::{Nanos, OpKind};
use crate::workload::plan::Plan;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// Personal-data operations' ids start here, far above any key-value operation's id (the
/// key-value plan is capped at a million operations).
pub const FIRST_ID: u64 = 1 << 40;

/// Every profile is written within this time from the start.
pub const WRITE_SPREAD: Duration = Duration::from_millis(500);

/// One planned personal-data operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalOp {
    /// Operation id (from [`FIRST_ID`]).
    pub id: u64,
    /// When, from the start of the workload.
    pub at_ns: Nanos,
    /// The user.
    pub user: u32,
    /// `ProfileWrite`, `ProfileRead` or `Erase`.
    pub kind: OpKind,
}

/// The personal-data plan of a run.
#[derive(Debug, Clone)]
pub struct PersonalPlan {
    /// Every operation, in time order.
    pub ops: Vec<PersonalOp>,
    /// The users asked to be erased, with when (in time order).
    pub erasures: Vec<(Nanos, u32)>,
}

impl PersonalPlan {
    /// The plan of `residency` for the users of `kv` over `duration`, from `seed`.
    pub fn new(residency: &Residency, kv: &Plan, duration: Duration, seed: u64) -> PersonalPlan {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7265_7369_6465_6e63);
        let end = duration.as_nanos() as u64;
        let spread = WRITE_SPREAD.min(duration / 4).as_nanos() as u64;
        let mut ops: Vec<(Nanos, u32, OpKind)> = (0..kv.users)
            .map(|u| {
                (
                    spread * u64::from(u) / u64::from(kv.users.max(1)),
                    u,
                    OpKind::ProfileWrite,
                )
            })
            .collect();

        // Erasures: a seeded shuffle of each home region's users, taken in order.
        let mut by_home: std::collections::BTreeMap<&str, Vec<u32>> = Default::default();
        for u in 0..kv.users {
            by_home.entry(kv.home(u)).or_default().push(u);
        }
        for users in by_home.values_mut() {
            users.shuffle(&mut rng);
        }
        let mut erasures = Vec::new();
        for e in &residency.erasures {
            let at = e.at.as_nanos() as u64;
            let home = if e.home == crate::stack::topology::PRIMARY_REGION {
                crate::stack::topology::PRIMARY_REGION
            } else {
                crate::stack::topology::STANDBY_REGION
            };
            let pool = by_home.entry(home).or_default();
            for k in 0..e.users {
                let Some(user) = pool.pop() else { break };
                erasures.push((at + u64::from(k) * 1_000_000, user));
            }
        }
        erasures.sort_unstable();
        let due: std::collections::BTreeMap<u32, Nanos> =
            erasures.iter().map(|&(at, u)| (u, at)).collect();
        for &(at, user) in &erasures {
            ops.push((at, user, OpKind::Erase));
        }

        // Reads: Poisson arrivals from just after the writes.
        if residency.profile_reads_per_s > 0.0 && kv.users > 0 {
            let mean_gap = 1e9 / residency.profile_reads_per_s;
            let mut t = (spread + 100_000_000) as f64;
            loop {
                let u: f64 = rng.random();
                t += -mean_gap * (1.0 - u).ln();
                if t >= end as f64 {
                    break;
                }
                let user = rng.random_range(0..kv.users);
                let at = t as u64;
                if due.get(&user).is_some_and(|&d| d <= at) {
                    continue;
                }
                ops.push((at, user, OpKind::ProfileRead));
            }
        }
        ops.sort_by_key(|&(at, user, kind)| (at, user, kind == OpKind::Erase));
        PersonalPlan {
            ops: ops
                .into_iter()
                .enumerate()
                .map(|(i, (at_ns, user, kind))| PersonalOp {
                    id: FIRST_ID + i as u64,
                    at_ns,
                    user,
                    kind,
                })
                .collect(),
            erasures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{PlannedErasure, Workload};

    fn workload(users: u32) -> Workload {
        Workload {
            users,
            rate_per_s: 100.0,
            read_fraction: 0.5,
            keys: 10,
            us_fraction: 0.5,
            homes: Vec::new(),
            op_timeout: Duration::from_secs(2),
            travel_fraction: 0.0,
            incr_fraction: 0.0,
            counters: 1,
        }
    }

    fn residency(erasures: Vec<PlannedErasure>) -> Residency {
        Residency {
            personal_tables: vec!["profiles".into()],
            allow: Default::default(),
            pinned: false,
            profile_reads_per_s: 50.0,
            poll: Duration::from_millis(50),
            erasures,
        }
    }

    #[test]
    fn every_user_writes_once_and_erased_users_read_no_more() {
        let w = workload(10);
        let d = Duration::from_secs(10);
        let kv = Plan::new(&w, d, 3);
        let r = residency(vec![
            PlannedErasure {
                at: Duration::from_secs(4),
                home: "eu".into(),
                users: 3,
            },
            PlannedErasure {
                at: Duration::from_secs(2),
                home: "us".into(),
                users: 1,
            },
        ]);
        let p = PersonalPlan::new(&r, &kv, d, 3);
        let writes: Vec<u32> = p
            .ops
            .iter()
            .filter(|o| o.kind == OpKind::ProfileWrite)
            .map(|o| o.user)
            .collect();
        assert_eq!(writes, (0..10).collect::<Vec<_>>());
        assert!(
            p.ops
                .iter()
                .filter(|o| o.kind == OpKind::ProfileWrite)
                .all(|o| o.at_ns < 500_000_000)
        );
        assert_eq!(p.erasures.len(), 4);
        assert_eq!(p.erasures[0].0, 2_000_000_000);
        assert_eq!(kv.home(p.erasures[0].1), "us");
        let eu: Vec<u32> = p.erasures[1..].iter().map(|e| e.1).collect();
        assert!(eu.iter().all(|&u| kv.home(u) == "eu"), "{eu:?}");
        let mut distinct = eu.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 3);
        assert_eq!(
            p.erasures[1..].iter().map(|e| e.0).collect::<Vec<_>>(),
            [4_000_000_000, 4_001_000_000, 4_002_000_000]
        );
        for &(at, user) in &p.erasures {
            assert!(
                !p.ops
                    .iter()
                    .any(|o| o.user == user && o.kind == OpKind::ProfileRead && o.at_ns >= at),
                "user {user} reads after its erasure"
            );
        }
        // About 50/s over 9.4 s.
        let reads = p
            .ops
            .iter()
            .filter(|o| o.kind == OpKind::ProfileRead)
            .count();
        assert!((300..=600).contains(&reads), "{reads}");
        assert!(p.ops.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
        assert!(p.ops.windows(2).all(|w| w[0].id + 1 == w[1].id));
        // The same seed, the same plan.
        assert_eq!(PersonalPlan::new(&r, &kv, d, 3).ops, p.ops);
        assert_ne!(PersonalPlan::new(&r, &kv, d, 4).ops, p.ops);
    }
}
