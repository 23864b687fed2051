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
    /// Key number (the key is `k{n}`).
    pub key: u32,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Users whose home region is `us` are `0..us_users`; the rest live in `eu`.
    pub us_users: u32,
    /// Operations in time order.
    pub ops: Vec<PlannedOp>,
}

impl Plan {
    /// Draws the plan: open-loop arrivals (a Poisson process at `rate_per_s`, so gaps are
    /// exponential), a uniformly chosen user and key per operation, reads with probability
    /// `read_fraction`.
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
            let kind = if rng.random::<f64>() < w.read_fraction {
                OpKind::Read
            } else {
                OpKind::Write
            };
            ops.push(PlannedOp {
                id: ops.len() as u64 + 1,
                at_ns: t as Nanos,
                user: rng.random_range(0..w.users),
                kind,
                key: rng.random_range(0..w.keys),
            });
        }
        let us_users = ((w.users as f64) * w.us_fraction).round() as u32;
        Plan { us_users, ops }
    }

    /// A user's home region.
    pub fn home(&self, user: u32) -> &'static str {
        if user < self.us_users {
            PRIMARY_REGION
        } else {
            STANDBY_REGION
        }
    }
}

/// The key name for key number `n`.
pub fn key_name(n: u32) -> String {
    format!("k{n}")
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
    }
}
