//! The operation plan: every operation the simulated users will issue, when, on which key,
//! decided from the experiment's seed. The same seed gives the same plan, byte for byte,
//! whatever the stack does.
//!
//! The operations are drawn lazily, in time order ([`Plan::ops`]): a plan costs the same few
//! bytes whether the experiment lasts ten seconds or ten hours, so its size can never abort
//! a run that has already brought a stack up. (How many operations an experiment may plan
//! is capped at validation, [`crate::experiment::MAX_PLANNED_OPS`]: every one is recorded.)

use crate::experiment::Workload;
use crate::history::{Nanos, OpKind};
use crate::stack::topology::{PRIMARY_REGION, STANDBY_REGION};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::iter::FusedIterator;
use std::ops::Range;
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

/// The whole plan: who lives where, and the seeded recipe of the operations, which
/// [`Plan::ops`] draws on demand (never held in memory all at once).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Each region's users, in region order: consecutive ranges covering `0..users`.
    pub homes: Vec<(String, Range<u32>)>,
    /// Users away from home (they call the next region's app).
    pub travellers: std::collections::BTreeSet<u32>,
    /// Number of users: every operation's user is below it.
    pub users: u32,
    /// What the operations are drawn from.
    workload: Workload,
    /// Operations are issued in `[0, duration)`.
    duration: Duration,
    /// Seed of the operations' draw.
    seed: u64,
    /// The first operation's id (1 unless several plans run against one stack, as the
    /// calibration's steps do: write ids must not repeat).
    first_id: u64,
    /// Users who leave at a time (they asked for erasure): the workload issues none of their
    /// operations planned at or after it (the plan's draws are unchanged).
    pub departures: std::collections::BTreeMap<u32, Nanos>,
}

impl Plan {
    /// The plan of `w` over `duration` with `seed`: open-loop arrivals (a Poisson process at
    /// `rate_per_s`, so gaps are exponential), a uniformly chosen user and key per operation;
    /// an increment of a shared counter with probability `incr_fraction`, else a read with
    /// probability `read_fraction`, else a write (see [`Plan::ops`]). The first
    /// `travel_fraction` of each region's users are away from home.
    pub fn new(w: &Workload, duration: Duration, seed: u64) -> Plan {
        let shares = if w.homes.is_empty() {
            vec![
                (PRIMARY_REGION.to_string(), w.us_fraction),
                (STANDBY_REGION.to_string(), 1.0 - w.us_fraction),
            ]
        } else {
            w.homes.clone()
        };
        // Range ends at the rounded cumulative share (the last one at `users` exactly), so
        // two regions split as they always did: `round(users × us_fraction)` in the first.
        let mut homes = Vec::with_capacity(shares.len());
        let (mut start, mut cumulative) = (0u32, 0.0);
        for (i, (region, share)) in shares.iter().enumerate() {
            cumulative += share;
            let end = if i + 1 == shares.len() {
                w.users
            } else {
                (((w.users as f64) * cumulative).round() as u32).clamp(start, w.users)
            };
            homes.push((region.clone(), start..end));
            start = end;
        }
        let travellers = homes
            .iter()
            .flat_map(|(_, r)| {
                r.start..r.start + ((r.len() as f64) * w.travel_fraction).round() as u32
            })
            .collect();
        Plan {
            homes,
            travellers,
            users: w.users,
            workload: w.clone(),
            duration,
            seed,
            first_id: 1,
            departures: Default::default(),
        }
    }

    /// Whether `user` has left by `at_ns` (see [`Plan::departures`]).
    pub fn departed(&self, user: u32, at_ns: Nanos) -> bool {
        self.departures.get(&user).is_some_and(|&d| d <= at_ns)
    }

    /// The same plan with operation ids counted from `first_id`.
    pub fn with_first_id(mut self, first_id: u64) -> Plan {
        self.first_id = first_id;
        self
    }

    /// The operations in time order, drawn lazily from the seed: each call starts over and
    /// yields exactly the same sequence (the one the plan always had when it was drawn up
    /// front), so an operation can be issued as soon as it is drawn and forgotten.
    pub fn ops(&self) -> PlannedOps {
        let w = &self.workload;
        PlannedOps {
            rng: ChaCha8Rng::seed_from_u64(self.seed),
            t: 0.0,
            end: self.duration.as_nanos() as f64,
            mean_gap: 1e9 / w.rate_per_s,
            next_id: self.first_id,
            incr_fraction: w.incr_fraction,
            read_fraction: w.read_fraction,
            users: w.users,
            keys: w.keys,
            counters: w.counters,
            done: false,
        }
    }

    /// The plan drawn in full and written as JSON in the shape it had when it was held in
    /// memory (`us_users`, `travellers`, `ops`): for tests that compare plans byte for byte.
    #[cfg(test)]
    pub(crate) fn to_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Whole<'a> {
            us_users: u32,
            travellers: &'a std::collections::BTreeSet<u32>,
            ops: Vec<PlannedOp>,
        }
        serde_json::to_vec(&Whole {
            us_users: self.homes[0].1.end,
            travellers: &self.travellers,
            ops: self.ops().collect(),
        })
        .expect("plan json")
    }

    /// A user's home region.
    pub fn home(&self, user: u32) -> &str {
        let i = self.home_index(user);
        &self.homes[i].0
    }

    fn home_index(&self, user: u32) -> usize {
        self.homes
            .iter()
            .position(|(_, r)| r.contains(&user))
            .unwrap_or(self.homes.len() - 1)
    }

    /// Where a user is: when travelling, the next region after home (in the experiment's
    /// order, wrapping: the other one of two), else home.
    pub fn location(&self, user: u32) -> &str {
        let i = self.home_index(user);
        if self.travellers.contains(&user) {
            &self.homes[(i + 1) % self.homes.len()].0
        } else {
            &self.homes[i].0
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

/// The operations of a [`Plan`], in time order ([`Plan::ops`]). The random draws happen in a
/// fixed order per operation (gap, increment?, read?, user, key), which is what makes a seed
/// reproduce its plan byte for byte.
#[derive(Debug, Clone)]
pub struct PlannedOps {
    rng: ChaCha8Rng,
    /// Time of the last operation drawn, in ns (fractional: the gaps are summed unrounded).
    t: f64,
    end: f64,
    mean_gap: f64,
    next_id: u64,
    incr_fraction: f64,
    read_fraction: f64,
    users: u32,
    keys: u32,
    counters: u32,
    done: bool,
}

impl Iterator for PlannedOps {
    type Item = PlannedOp;

    fn next(&mut self) -> Option<PlannedOp> {
        if self.done {
            return None;
        }
        let rng = &mut self.rng;
        let u: f64 = rng.random::<f64>();
        self.t += -self.mean_gap * (1.0 - u).ln();
        // A NaN time (an infinite mean gap times a zero logarithm) ends the plan too, instead
        // of yielding operations forever: no NaN is ever `>= end`.
        if self.t.is_nan() || self.t >= self.end {
            self.done = true;
            return None;
        }
        let kind = if rng.random::<f64>() < self.incr_fraction {
            OpKind::Incr
        } else if rng.random::<f64>() < self.read_fraction {
            OpKind::Read
        } else {
            OpKind::Write
        };
        let user = rng.random_range(0..self.users);
        let key = if kind == OpKind::Incr {
            rng.random_range(0..self.counters)
        } else {
            rng.random_range(0..self.keys)
        };
        let id = self.next_id;
        self.next_id += 1;
        Some(PlannedOp {
            id,
            at_ns: self.t as Nanos,
            user,
            kind,
            key,
        })
    }
}

impl FusedIterator for PlannedOps {}

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
            homes: Vec::new(),
            op_timeout: Duration::from_secs(1),
            travel_fraction: 0.0,
            incr_fraction: 0.0,
            counters: 1,
        }
    }

    #[test]
    fn same_seed_same_plan_byte_for_byte() {
        let a = Plan::new(&workload(), Duration::from_secs(2), 9).to_json();
        let b = Plan::new(&workload(), Duration::from_secs(2), 9).to_json();
        assert_eq!(a, b);
        let c = Plan::new(&workload(), Duration::from_secs(2), 10).to_json();
        assert_ne!(a, c);
    }

    #[test]
    fn rate_mix_and_homes_match_the_settings() {
        let p = Plan::new(&workload(), Duration::from_secs(10), 1);
        let ops: Vec<PlannedOp> = p.ops().collect();
        let n = ops.len() as f64;
        assert!((n - 10_000.0).abs() < 400.0, "{n} ops for 1000/s over 10 s");
        let reads = ops.iter().filter(|o| o.kind == OpKind::Read).count() as f64;
        assert!((reads / n - 0.3).abs() < 0.02);
        assert!(ops.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
        assert!(
            ops.iter()
                .all(|o| o.at_ns < 10_000_000_000 && o.key < 5 && o.user < 10)
        );
        assert_eq!(
            p.homes[0],
            ("us".to_string(), 0..4),
            "us_fraction 0.4 of 10 users"
        );
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
        let ops: Vec<PlannedOp> = p.ops().collect();
        let n = ops.len() as f64;
        let incrs: Vec<_> = ops.iter().filter(|o| o.kind == OpKind::Incr).collect();
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
        let write = ops.iter().find(|o| o.kind == OpKind::Write).unwrap();
        assert_eq!(
            p.key(write, true),
            format!("u{}-k{}", write.user, write.key)
        );
        assert_eq!(p.key(write, false), format!("k{}", write.key));
    }

    /// The plan as it was drawn before it was made lazy, verbatim: every operation up front
    /// into a vector. The lazy sequence must be exactly this one.
    fn drawn_up_front(w: &Workload, duration: Duration, seed: u64) -> Vec<PlannedOp> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let end = duration.as_nanos() as f64;
        let mean_gap = 1e9 / w.rate_per_s;
        let mut t = 0.0f64;
        let mut ops = Vec::new();
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
        ops
    }

    #[test]
    fn lazy_ops_are_the_plan_drawn_up_front_for_every_seed() {
        let mixes = [
            workload(),
            Workload {
                incr_fraction: 0.2,
                travel_fraction: 0.5,
                counters: 3,
                ..workload()
            },
            Workload {
                users: 1,
                rate_per_s: 3.5,
                keys: 1,
                read_fraction: 1.0,
                ..workload()
            },
        ];
        for w in &mixes {
            for seed in [0, 1, 2, 9, 42, u64::MAX] {
                let up_front = drawn_up_front(w, Duration::from_secs(3), seed);
                let plan = Plan::new(w, Duration::from_secs(3), seed);
                assert!(!up_front.is_empty());
                assert_eq!(plan.ops().collect::<Vec<_>>(), up_front, "seed {seed}");
                // Every call starts over from the seed.
                assert_eq!(plan.ops().collect::<Vec<_>>(), up_front, "seed {seed}");
            }
        }
    }

    /// FNV-1a, to pin a whole plan's JSON in one number.
    fn fnv(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
        })
    }

    #[test]
    fn plans_are_the_same_bytes_as_before_they_were_lazy() {
        // Captured from the eager plan (before it was made lazy) with this workload over
        // 2 s: a change of the draws, of rand or of rand_chacha would change past runs' plans.
        let w = Workload {
            incr_fraction: 0.2,
            travel_fraction: 0.5,
            counters: 3,
            ..workload()
        };
        let captured = [
            (
                1,
                1997,
                0xd142_42c9_9a22_c722_u64,
                (514_977, 2, OpKind::Incr, 1),
            ),
            (
                9,
                1987,
                0xcd85_eed3_d0ea_af5e,
                (121_176, 6, OpKind::Write, 0),
            ),
            (
                42,
                2012,
                0xe3b3_3669_4443_ed2d,
                (1_145_377, 3, OpKind::Write, 3),
            ),
        ];
        for (seed, count, hash, (at_ns, user, kind, key)) in captured {
            let plan = Plan::new(&w, Duration::from_secs(2), seed);
            let first = plan.ops().next().unwrap();
            assert_eq!(
                first,
                PlannedOp {
                    id: 1,
                    at_ns,
                    user,
                    kind,
                    key
                }
            );
            assert_eq!(plan.ops().count(), count, "seed {seed}");
            assert_eq!(fnv(&plan.to_json()), hash, "seed {seed}");
        }
    }

    #[test]
    fn duration_10000h_plan_is_drawn_lazily_not_allocated_up_front() {
        // 200/s for 10000 h is 7.2 billion operations: drawn up front they aborted the run
        // (`memory allocation of 230400000512 bytes failed`) after the stack was up.
        let w = Workload {
            rate_per_s: 200.0,
            ..workload()
        };
        let plan = Plan::new(&w, Duration::from_secs(10_000 * 3600), 7);
        let head: Vec<PlannedOp> = plan.ops().take(10_000).collect();
        assert_eq!(head.len(), 10_000);
        assert!(head.iter().zip(1..).all(|(o, id)| o.id == id));
        assert!(head.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
        // 10 000 operations at 200/s take about 50 s.
        let last_s = head[9_999].at_ns as f64 / 1e9;
        assert!((last_s - 50.0).abs() < 5.0, "{last_s}");
        // The same prefix as a short plan with the same seed: the length does not change
        // the draws.
        let short = Plan::new(&w, Duration::from_secs(60), 7);
        assert_eq!(short.ops().take(10_000).collect::<Vec<_>>(), head);
    }

    #[test]
    fn an_infinite_mean_gap_ends_the_plan() {
        // The smallest positive rate: 1e9 / rate is infinite. Its product with a zero
        // logarithm is NaN, which must end the plan rather than yield operations forever.
        let w = Workload {
            rate_per_s: f64::from_bits(1),
            ..workload()
        };
        let plan = Plan::new(&w, Duration::from_secs(10), 1);
        assert_eq!(plan.ops().count(), 0);
        let mut ops = plan.ops();
        ops.t = f64::NAN;
        assert_eq!(ops.next(), None);
        assert_eq!(ops.next(), None);
    }
}
