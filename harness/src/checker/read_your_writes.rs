//! Read-your-writes: reads by a user that did not reflect that user's own acknowledged write.
//!
//! # Definition
//! Only `ok` reads are checked and only `ok` writes are evidence (as in [`super::stale_reads`]).
//! For an `ok` read by user `u` of key `k`, invoked at `t`:
//! - `W` is `u`'s `ok` write to `k` with the greatest `complete_ns < t`: the user's latest
//!   write to the key it had been told about when it read (ties on `complete_ns`: the one
//!   invoked last). When there is none, the read promises nothing and is not checked.
//! - The read is a **violation** when it returned nothing, or returned a write `X` that is an
//!   `ok` write to `k` acknowledged before `W` was invoked (`X.complete_ns < W.invoke_ns`):
//!   in real time `X` certainly came before `W`, so a database that had applied `W` could not
//!   return `X` (a later write would have replaced `W`, not brought `X` back).
//! - Never a violation: `W` itself; a write invoked before `W` completed (concurrent with `W`,
//!   the database may have ordered it after `W`); a write invoked after `W` completed; an
//!   `unknown` or `fail` write, or a write of another key (not evidence either way).
//!
//! "A write of `u` older than `W`" needs no rule of its own: an `ok` write of `u` that is not
//! concurrent with `W` was acknowledged before `W` was invoked, which the rule above covers;
//! one that overlapped `W` (users are open-loop, so a user's writes can overlap) may have
//! been applied after `W`, and an `unknown` one may have been applied at any time after it
//! was sent, so neither proves anything.
//!
//! Only `u`'s latest acknowledged write is checked, not each of its earlier ones: when a
//! user's writes do not overlap the latest write is the one every older value is older than;
//! when they do, a value older than an earlier write but not than `W` is missed, never
//! invented.
//!
//! - `reads_checked`: `ok` reads that had such a `W`; `count`: of which violations; `rate`:
//!   count / reads_checked (None: no read checked).
//! - `max_age_ms`: the largest `t − W.complete_ns` among violations: how long the user had
//!   been told its write was done when it read something older (None: no violation).
//! - `by_region`: the same by the reader's home region; a region appears when one of its
//!   users had a checked read. A travelling user is counted with its home region.

use super::rows::{FindingRow, RowContext, pct};
use super::{FastMap, OpsById, ms_between};
use crate::history::{History, Nanos, OpKind, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Read-your-writes findings (`read_your_writes.*` in results.json).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadYourWrites {
    /// `ok` reads whose user had an `ok` write to the key acknowledged before the read.
    pub reads_checked: usize,
    /// Of which did not reflect that write.
    pub count: usize,
    /// count / reads_checked (None: no read checked).
    pub rate: Option<f64>,
    /// Largest time from the user's write being acknowledged to the violating read (None: no
    /// violation).
    pub max_age_ms: Option<f64>,
    /// Per home region of the reader.
    pub by_region: BTreeMap<String, RywGroup>,
}

/// Read-your-writes within one home region.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RywGroup {
    /// Reads checked.
    pub reads_checked: usize,
    /// Of which violations.
    pub count: usize,
    /// count / reads_checked (None: no read checked).
    pub rate: Option<f64>,
}

fn rate(count: usize, of: usize) -> Option<f64> {
    (of > 0).then(|| count as f64 / of as f64)
}

/// A (user, key number) pair as one sortable word.
fn session(user: u32, key: u32) -> u64 {
    (user as u64) << 32 | key as u64
}

/// Finds reads that did not reflect their user's own acknowledged write.
pub fn check(history: &History) -> ReadYourWrites {
    // Keys are numbered once (those read and those written).
    let mut key_index: FastMap<&str, u32> = FastMap::default();
    // (session, complete_ns, invoke_ns) of every ok write and (session, invoke_ns, op index)
    // of every ok read, both sorted: one merge walk then finds each read's W (the last write
    // of its session acknowledged before it), touching memory in order — a binary search
    // per read over half a million writes is cache misses all the way down.
    let mut writes: Vec<(u64, Nanos, Nanos)> = Vec::new();
    let mut reads: Vec<(u64, Nanos, usize)> = Vec::new();
    for (i, op) in history.ops.iter().enumerate() {
        if !matches!(op.kind, OpKind::Read | OpKind::Write) || !op.outcome.is_ok() {
            continue;
        }
        let next = key_index.len() as u32;
        let s = session(op.user, *key_index.entry(op.key.as_str()).or_insert(next));
        match op.kind {
            OpKind::Write => writes.push((s, op.complete_ns, op.invoke_ns)),
            _ => reads.push((s, op.invoke_ns, i)),
        }
    }
    writes.sort_unstable();
    reads.sort_unstable();
    // The value a read returned is looked up by id only for reads that have a W.
    let by_id = OpsById::new(&history.ops);

    let (mut reads_checked, mut count) = (0, 0);
    let mut max_age: Option<f64> = None;
    let mut by_region: FastMap<&str, RywGroup> = FastMap::default();
    let mut next_write = 0;
    for &(s, t, i) in &reads {
        while next_write < writes.len() && (writes[next_write].0, writes[next_write].1) < (s, t) {
            next_write += 1;
        }
        let Some(&(ws, w_complete, w_invoke)) = next_write.checked_sub(1).map(|j| &writes[j])
        else {
            continue;
        };
        if ws != s {
            continue;
        }
        let op = &history.ops[i];
        let Outcome::Ok { write_id, .. } = &op.outcome else {
            continue;
        };
        let violation = match write_id {
            None => true,
            // An ok write of this key acknowledged before W was invoked.
            Some(x) => by_id.get(*x).is_some_and(|x| {
                x.kind == OpKind::Write
                    && x.outcome.is_ok()
                    && x.key == op.key
                    && x.complete_ns < w_invoke
            }),
        };
        reads_checked += 1;
        let group = by_region.entry(op.region.as_str()).or_default();
        group.reads_checked += 1;
        if violation {
            count += 1;
            group.count += 1;
            let age = ms_between(t, w_complete);
            max_age = Some(max_age.map_or(age, |m: f64| m.max(age)));
        }
    }
    ReadYourWrites {
        reads_checked,
        count,
        rate: rate(count, reads_checked),
        max_age_ms: max_age,
        by_region: by_region
            .into_iter()
            .map(|(region, mut g)| {
                g.rate = rate(g.count, g.reads_checked);
                (region.to_owned(), g)
            })
            .collect(),
    }
}

/// The violations row, when some read could be checked.
pub fn rows(ryw: &ReadYourWrites, _cx: &RowContext) -> Vec<FindingRow> {
    if ryw.reads_checked == 0 {
        return Vec::new();
    }
    vec![FindingRow::info(
        "read-your-writes violations",
        format!("{} ({} of {})", pct(ryw.rate), ryw.count, ryw.reads_checked),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    fn group(reads_checked: usize, count: usize) -> RywGroup {
        RywGroup {
            reads_checked,
            count,
            rate: rate(count, reads_checked),
        }
    }

    #[test]
    fn own_write_seen_or_not() {
        // User 1 (us) writes a: 1 [0, 10], then 2 [20, 30]. User 2 writes a: 3 [40, 50].
        // Reads by user 1:
        //   10 at 5 → no write of user 1 acked before 5: not checked.
        //   11 at 15 returns 1 → W = 1: fine.
        //   12 at 35 returns 1 → W = 2 (invoked 20); 1 acked at 10 < 20: violation, age 5.
        //   13 at 35 returns nothing → violation, age 5.
        //   14 at 60 returns 3 → user 2's write, invoked after W acked: fine.
        //   15 at 100 returns 1 → violation, age 70.
        // Read by user 2 (eu) 16 at 60 returns 2 → W = 3 (invoked 40); 2 acked at 30 < 40:
        // violation, age 10.
        // checked 6 (11..=16), violations 12, 13, 15, 16 → 4; max age 70.
        let h = history(
            vec![
                w(1, "a", 0, 10),
                w(2, "a", 20, 30),
                w(3, "a", 40, 50).user(2).region("eu"),
                r(10, "a", 5, 6, None),
                r(11, "a", 15, 16, Some(1)),
                r(12, "a", 35, 36, Some(1)),
                r(13, "a", 35, 36, None).cache(),
                r(14, "a", 60, 61, Some(3)),
                r(15, "a", 100, 101, Some(1)),
                r(16, "a", 60, 61, Some(2)).user(2).region("eu"),
            ],
            vec![],
        );
        assert_eq!(
            check(&h),
            ReadYourWrites {
                reads_checked: 6,
                count: 4,
                rate: Some(4.0 / 6.0),
                max_age_ms: Some(70.0),
                by_region: BTreeMap::from(
                    [("eu".into(), group(1, 1)), ("us".into(), group(5, 3)),]
                ),
            }
        );
    }

    #[test]
    fn concurrent_unknown_failed_and_foreign_values_are_not_violations() {
        // User 1's write 1 [100, 200]. Other users' writes to a: 2 [50, 150] (overlaps 1),
        // 3 [10, 20] (acked before 1 was invoked), 4 unknown, 5 failed; 6 is a write of b.
        // Reads by user 1 at 300 returning: 2 → concurrent with W: fine; 4, 5 → not
        // evidence; 6 → another key: fine; 3 → certainly older: violation (age 100).
        let h = history(
            vec![
                w(3, "a", 10, 20).user(2),
                w(2, "a", 50, 150).user(2),
                w(1, "a", 100, 200),
                w(4, "a", 0, 2000).user(2).unknown(),
                w(5, "a", 0, 5).user(2).fail(),
                w(6, "b", 0, 5).user(2),
                r(10, "a", 300, 301, Some(2)),
                r(11, "a", 300, 301, Some(4)),
                r(12, "a", 300, 301, Some(5)),
                r(13, "a", 300, 301, Some(6)),
                r(14, "a", 300, 301, Some(3)),
            ],
            vec![],
        );
        let f = check(&h);
        assert_eq!((f.reads_checked, f.count), (5, 1));
        assert_eq!(f.max_age_ms, Some(100.0));
    }

    #[test]
    fn the_latest_acknowledged_write_is_the_one_checked() {
        // User 1's writes to a overlap: 1 [0, 100] and 2 [10, 50] (2 acked first). A read at
        // 200 returning 2 is fine (the database may have applied 1 first). Returning 1 is
        // fine too: W = 1 (acked last), and 1 is W itself. Other user's write 3 [2, 5] was
        // acked before 2 was invoked but not before 1 was: returning it is not a violation
        // by this definition (only the latest acknowledged write is checked).
        // A read at 60 (W = 2, acked 50) returning 3 is a violation (5 < 10): age 10.
        // An unknown write of user 1 doesn't make a W: a read of c at 200 is not checked.
        let h = history(
            vec![
                w(1, "a", 0, 100),
                w(2, "a", 10, 50),
                w(3, "a", 2, 5).user(2),
                w(4, "c", 0, 20).unknown(),
                r(10, "a", 200, 201, Some(2)),
                r(11, "a", 200, 201, Some(1)),
                r(12, "a", 200, 201, Some(3)),
                r(13, "a", 60, 61, Some(3)),
                r(14, "c", 200, 201, None),
            ],
            vec![],
        );
        let f = check(&h);
        assert_eq!((f.reads_checked, f.count), (4, 1));
        assert_eq!(f.max_age_ms, Some(10.0));
    }

    #[test]
    fn acknowledged_at_the_instant_of_the_read_is_not_before_it() {
        // Write 2 acked at exactly 30; a read invoked at 30 returning 1 has W = 1: fine.
        let h = history(
            vec![
                w(1, "a", 0, 10),
                w(2, "a", 20, 30),
                r(3, "a", 30, 31, Some(1)),
            ],
            vec![],
        );
        let f = check(&h);
        assert_eq!((f.reads_checked, f.count), (1, 0));
        assert_eq!(f.rate, Some(0.0));
        assert_eq!(f.max_age_ms, None);
    }

    #[test]
    fn travelling_user_reading_the_other_regions_cache() {
        // A us user travelling in eu writes a (sent home, acked at 80), then reads a from
        // eu's cache, which still holds the old value 1: a violation counted under us.
        let h = history(
            vec![
                w(1, "a", 0, 10).user(7),
                w(2, "a", 20, 80).user(7).travelling("eu"),
                r(3, "a", 100, 101, Some(1))
                    .user(7)
                    .travelling("eu")
                    .cache(),
                r(4, "a", 100, 101, Some(1)).user(8).region("eu").cache(),
            ],
            vec![],
        );
        let f = check(&h);
        assert_eq!((f.reads_checked, f.count), (1, 1));
        assert_eq!(f.max_age_ms, Some(20.0));
        assert_eq!(f.by_region, BTreeMap::from([("us".into(), group(1, 1))]));
    }

    #[test]
    fn nothing_to_check() {
        let f = check(&history(
            vec![r(1, "a", 0, 1, None), w(2, "a", 5, 6).fail()],
            vec![],
        ));
        assert_eq!(f, ReadYourWrites::default());
    }

    /// The definition transcribed literally, in O(n²).
    fn brute_force(h: &History) -> (usize, usize, Option<f64>) {
        let (mut checked, mut count, mut max_age) = (0, 0, None::<f64>);
        let ok_write =
            |o: &&crate::history::Operation| o.kind == OpKind::Write && o.outcome.is_ok();
        for read in h.ops.iter().filter(|o| o.kind == OpKind::Read) {
            let Outcome::Ok { write_id, .. } = &read.outcome else {
                continue;
            };
            let t = read.invoke_ns;
            let latest = h
                .ops
                .iter()
                .filter(ok_write)
                .filter(|o| o.user == read.user && o.key == read.key && o.complete_ns < t)
                .max_by_key(|o| (o.complete_ns, o.invoke_ns));
            let Some(w) = latest else { continue };
            checked += 1;
            let older = match write_id {
                None => true,
                Some(x) => h
                    .ops
                    .iter()
                    .filter(ok_write)
                    .any(|o| o.id == *x && o.key == read.key && o.complete_ns < w.invoke_ns),
            };
            if older {
                count += 1;
                let age = ms_between(t, w.complete_ns);
                max_age = Some(max_age.map_or(age, |m| m.max(age)));
            }
        }
        (checked, count, max_age)
    }

    #[test]
    fn matches_brute_force_on_random_histories() {
        let mut violations = 0;
        for seed in 0..200 {
            let h = random_history(seed, 300, 4, 3);
            let f = check(&h);
            assert_eq!(
                (f.reads_checked, f.count, f.max_age_ms),
                brute_force(&h),
                "seed {seed}"
            );
            let by_region: usize = f.by_region.values().map(|g| g.count).sum();
            assert_eq!(by_region, f.count);
            violations += f.count;
        }
        // The histories do exercise violations.
        assert!(violations > 100, "{violations}");
    }
}
