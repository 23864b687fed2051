//! The operation plan: every operation the simulated users will issue, when, on which key,
//! decided up front from the experiment's seed. The same seed gives the same plan, byte for
//! byte, whatever the stack does.

use crate::experiment::Workload;
use crate::history::{Nanos, OpKind};
use crate::stack::topology::{PRIMARY_REGION, STANDBY_REGION};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One planned operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedOp {
    /// Operation id (1-based; a write's id is also its write id).
    pub id: u64,
    /// When to issue it, from the start of the workload.
    pub at_ns: Nanos,
    /// The user.
    pub user: u32,
    /// Read or write.
    pub kind: OpKind,
    /// Key number: `k{n}` (in partition-by-user `u{user}-k{n}`), or counter `c{n}`.
    pub key: u32,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Users whose home region is `us` are `0..us_users`; the rest live in `eu`.
    pub us_users: u32,
    /// Users away from home (they call the other region's app).
    pub travellers: std::collections::BTreeSet<u32>,
    /// Operations in time order.
    pub ops: Vec<PlannedOp>,
}

impl Plan {
    /// Draws the plan: open-loop arrivals (a Poisson process at `rate_per_s`, so gaps are
    /// exponential), a uniformly chosen user and key per operation; an increment of a shared
    /// counter with probability `incr_fraction`, else a read with probability
    /// `read_fraction`, else a write. The first `travel_fraction` of each region's users are
    /// away from home.
    pub fn new(w: &Workload, duration: Duration, seed: u64) -> Plan {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let end = duration.as_nanos() as f64;
        let mean_gap = 1e9 / w.rate_per_s;
        let mut t = 0.0f64;
        let mut ops = Vec::with_capacity((w.rate_per_s * duration.as_secs_f64()) as usize + 16);
        loop {
            let u: f64 = rng.random::<f64>();
            t += -mean_gap * (1.0 - u).ln();
            if t >= end {
                break;
            }
            let kind = if rng.random::<f64>() < w.incr_fraction {
                OpKind::Incr
            } else if rng.random::<f64>() < w.read_fraction {
                OpKind::Read
            } else {
                OpKind::Write
            };
            let user = rng.random_range(0..w.users);
            let key = if kind == OpKind::Incr {
                rng.random_range(0..w.counters)
            } else {
                rng.random_range(0..w.keys)
            };
            ops.push(PlannedOp {
                id: ops.len() as u64 + 1,
                at_ns: t as Nanos,
                user,
                kind,
                key,
            });
        }
        let us_users = ((w.users as f64) * w.us_fraction).round() as u32;
        let away = |from: u32, count: u32| {
            from..from + ((count as f64) * w.travel_fraction).round() as u32
        };
        let travellers = away(0, us_users)
            .chain(away(us_users, w.users - us_users))
            .collect();
        Plan {
            us_users,
            travellers,
            ops,
        }
    }

    /// A user's home region.
    pub fn home(&self, user: u32) -> &'static str {
        if user < self.us_users {
            PRIMARY_REGION
        } else {
            STANDBY_REGION
        }
    }

    /// Where a user is: the other region when travelling, else home.
    pub fn location(&self, user: u32) -> &'static str {
        let home = self.home(user);
        if self.travellers.contains(&user) {
            crate::stack::topology::other_region(home)
        } else {
            home
        }
    }

    /// The key an operation touches: counters are shared (`c{n}`); keys are shared (`k{n}`)
    /// or, when data is partitioned by user, the user's own (`u{user}-k{n}`).
    pub fn key(&self, op: &PlannedOp, per_user: bool) -> String {
        match op.kind {
            OpKind::Incr => format!("c{}", op.key),
            _ if per_user => format!("u{}-k{}", op.user, op.key),
            _ => format!("k{}", op.key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> Workload {
        Workload {
            users: 10,
            rate_per_s: 1000.0,
            read_fraction: 0.3,
            keys: 5,
            us_fraction: 0.4,
            op_timeout: Duration::from_secs(1),
            travel_fraction: 0.0,
            incr_fraction: 0.0,
            counters: 1,
        }
    }

    #[test]
    fn same_seed_same_plan_byte_for_byte() {
        let a = serde_json::to_vec(&Plan::new(&workload(), Duration::from_secs(2), 9)).unwrap();
        let b = serde_json::to_vec(&Plan::new(&workload(), Duration::from_secs(2), 9)).unwrap();
        assert_eq!(a, b);
        let c = serde_json::to_vec(&Plan::new(&workload(), Duration::from_secs(2), 10)).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn rate_mix_and_homes_match_the_settings() {
        let p = Plan::new(&workload(), Duration::from_secs(10), 1);
        let n = p.ops.len() as f64;
        assert!((n - 10_000.0).abs() < 400.0, "{n} ops for 1000/s over 10 s");
        let reads = p.ops.iter().filter(|o| o.kind == OpKind::Read).count() as f64;
        assert!((reads / n - 0.3).abs() < 0.02);
        assert!(p.ops.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
        assert!(
            p.ops
                .iter()
                .all(|o| o.at_ns < 10_000_000_000 && o.key < 5 && o.user < 10)
        );
        assert_eq!(p.us_users, 4);
        assert_eq!(p.home(3), "us");
        assert_eq!(p.home(4), "eu");
        assert!(p.travellers.is_empty());
        assert_eq!(p.location(4), "eu");
    }

    #[test]
    fn increments_travellers_and_keys() {
        let w = Workload {
            incr_fraction: 0.2,
            travel_fraction: 0.5,
            counters: 3,
            ..workload()
        };
        let p = Plan::new(&w, Duration::from_secs(5), 2);
        let n = p.ops.len() as f64;
        let incrs: Vec<_> = p.ops.iter().filter(|o| o.kind == OpKind::Incr).collect();
        assert!((incrs.len() as f64 / n - 0.2).abs() < 0.02);
        assert!(
            incrs
                .iter()
                .all(|o| o.key < 3 && p.key(o, true).starts_with('c'))
        );
        // 4 us users, 6 eu users: half of each away.
        assert_eq!(
            p.travellers.iter().copied().collect::<Vec<_>>(),
            vec![0, 1, 4, 5, 6]
        );
        assert_eq!(
            (p.location(0), p.location(2), p.location(4), p.location(9)),
            ("eu", "us", "us", "eu")
        );
        let write = p.ops.iter().find(|o| o.kind == OpKind::Write).unwrap();
        assert_eq!(
            p.key(write, true),
            format!("u{}-k{}", write.user, write.key)
        );
        assert_eq!(p.key(write, false), format!("k{}", write.key));
    }
}
