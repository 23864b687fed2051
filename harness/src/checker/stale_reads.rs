//! Stale reads: reads that returned data older than what had been acknowledged before them.
//!
//! # Definition
//! Only `ok` reads are checked (`reads` counts all of them, including reads of keys never
//! written, which are trivially fresh). Only `ok` writes are evidence: a write whose outcome
//! is `fail` or `unknown` was never acknowledged, so no client was promised it.
//!
//! Let a read of key `k` be invoked at `t` and return write `r` (or nothing). Write `w`
//! **supersedes** `r` when `w` is an `ok` write to `k` that was invoked after `r` was
//! acknowledged (`w.invoke_ns > r.complete_ns`): in real time `w` came strictly after `r`, so
//! any correct database orders it after `r`. "Nothing" is superseded by every `ok` write.
//!
//! The read is **stale** when some write superseding `r` had been acknowledged before the
//! read was invoked (`w.complete_ns < t`): the client could have known of newer data and did
//! not get it. Its **age** is `t − ` the acknowledgement time of the first such write (in ack
//! order): how long newer data had been acknowledged when the read was invoked.
//!
//! Reads that are never stale:
//! - reads of a key with no `ok` write acknowledged before `t` (nothing was promised yet);
//! - reads returning a write that is not an `ok` write to `k` — an `unknown` or `fail` write,
//!   or one still in flight (acknowledged after `t`). Those may well be the newest value.
//!
//! # Why real-time precedence, not ack order
//! The simpler rule "stale when `r` was acknowledged strictly before `w*`, the newest write
//! acknowledged before `t`" gives the same answer whenever writes to a key do not overlap, but
//! flags correct reads when they do: if `A` is invoked at 0 and acked at 10, and `B` invoked
//! at 1 and acked at 5, the database may well have applied `A` then `B`, so a read at 20
//! returning `B` saw the newest value, yet `B` was acked before `A`. The harness only knows
//! the real-time order, so it only calls a read stale when real time proves it. This rule
//! flags a subset of what the ack-order rule flags: it never reports a stale read that is not
//! one, at the price of missing staleness hidden inside overlapping writes.
//!
//! Grouped by the reader's home region (`by_region`) and by where the answer came from
//! (`by_source`: `cache` or `db`; a read that does not say is counted in neither group).
//!
//! # Erasure
//! An acknowledged erasure (`DELETE /users/{id}`, see [`super::erasure`]) removes the user's
//! writes on purpose, so an older value (or nothing) is then the right answer. Reads of a key
//! invoked after the acknowledged erasure of any user who wrote it are not judged: they are
//! counted apart (`after_erasure`), in neither `reads` nor `count`.

use super::rows::{FindingRow, RowContext, dur, pct};
use super::{FastMap, ms_between, quantiles};
use crate::history::{History, Nanos, OpKind, Outcome, Source};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Stale-read findings (`stale_reads.*` in results.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaleReads {
    /// `ok` reads checked.
    pub reads: usize,
    /// Of which stale.
    pub count: usize,
    /// count / reads (None: no read).
    pub rate: Option<f64>,
    /// Largest staleness age (None: no stale read).
    pub max_age_ms: Option<f64>,
    /// Median staleness age, nearest rank (None: no stale read).
    pub p50_age_ms: Option<f64>,
    /// 99th percentile staleness age, nearest rank (None: no stale read).
    pub p99_age_ms: Option<f64>,
    /// Per home region of the reader.
    pub by_region: BTreeMap<String, StaleGroup>,
    /// Per source of the answer: `cache` or `db`.
    pub by_source: BTreeMap<String, StaleGroup>,
    /// Reads not judged because a writer of their key had been erased (see the module docs).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub after_erasure: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Stale reads within one group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StaleGroup {
    /// `ok` reads in the group.
    pub reads: usize,
    /// Of which stale.
    pub count: usize,
    /// count / reads (None: no read).
    pub rate: Option<f64>,
}

impl StaleGroup {
    fn add(&mut self, stale: bool) {
        self.reads += 1;
        self.count += stale as usize;
    }

    fn finish(mut self) -> StaleGroup {
        self.rate = rate(self.count, self.reads);
        self
    }
}

fn rate(count: usize, reads: usize) -> Option<f64> {
    (reads > 0).then(|| count as f64 / reads as f64)
}

/// The acknowledged writes of one key, in ack order.
#[derive(Default)]
struct KeyWrites {
    /// (complete_ns, invoke_ns, id) of `ok` writes; sorted by complete_ns (then id).
    writes: Vec<(Nanos, Nanos, u64)>,
    /// `prefix_max_invoke[i]` = the latest invoke_ns among `writes[..=i]`: non-decreasing, so
    /// the first write invoked after a given time is found by binary search.
    prefix_max_invoke: Vec<Nanos>,
}

impl KeyWrites {
    /// If a read invoked at `t` that returned a value acknowledged at `returned_ack` (None:
    /// nothing) is stale, the acknowledgement time of the first write that proves it.
    fn superseded_at(&self, t: Nanos, returned_ack: Option<Nanos>) -> Option<Nanos> {
        // Writes acknowledged before the read was invoked: writes[..acked].
        let acked = self
            .writes
            .partition_point(|&(complete, _, _)| complete < t);
        let first = match returned_ack {
            None => 0,
            Some(ack) => self.prefix_max_invoke.partition_point(|&inv| inv <= ack),
        };
        (first < acked).then(|| self.writes[first].0)
    }
}

/// Finds stale reads.
pub fn check(history: &History) -> StaleReads {
    // Keys are numbered once; writes are found by id (a write id is its operation id).
    let mut key_index: FastMap<&str, usize> = FastMap::default();
    let mut keys: Vec<KeyWrites> = Vec::new();
    // User → when its erasure was acknowledged; key number → the earliest such time among
    // the key's writers.
    let erased: FastMap<u32, Nanos> = history
        .ops
        .iter()
        .filter(|o| o.kind == OpKind::Erase && o.outcome.is_ok())
        .map(|o| (o.user, o.complete_ns))
        .collect();
    let mut key_erased: FastMap<usize, Nanos> = FastMap::default();
    // ok write id → (key number, complete_ns).
    let mut ok_writes: FastMap<u64, (usize, Nanos)> = FastMap::default();
    for op in &history.ops {
        if op.kind != OpKind::Write || !op.outcome.is_ok() {
            continue;
        }
        let k = *key_index.entry(op.key.as_str()).or_insert_with(|| {
            keys.push(KeyWrites::default());
            keys.len() - 1
        });
        keys[k].writes.push((op.complete_ns, op.invoke_ns, op.id));
        ok_writes.insert(op.id, (k, op.complete_ns));
        if let Some(&at) = erased.get(&op.user) {
            let e = key_erased.entry(k).or_insert(at);
            *e = (*e).min(at);
        }
    }
    for kw in &mut keys {
        kw.writes
            .sort_unstable_by_key(|&(complete, _, id)| (complete, id));
        let mut latest = 0;
        kw.prefix_max_invoke = kw
            .writes
            .iter()
            .map(|&(_, invoke, _)| {
                latest = latest.max(invoke);
                latest
            })
            .collect();
    }

    let mut ages = Vec::new();
    let (mut reads, mut count, mut after_erasure) = (0, 0, 0);
    let mut by_region: FastMap<&str, StaleGroup> = FastMap::default();
    let (mut cache, mut db) = (StaleGroup::default(), StaleGroup::default());
    for op in &history.ops {
        let Outcome::Ok {
            write_id, source, ..
        } = &op.outcome
        else {
            continue;
        };
        if op.kind != OpKind::Read {
            continue;
        }
        let t = op.invoke_ns;
        if key_index
            .get(op.key.as_str())
            .and_then(|k| key_erased.get(k))
            .is_some_and(|&at| at <= t)
        {
            after_erasure += 1;
            continue;
        }
        let superseded = key_index.get(op.key.as_str()).and_then(|&k| {
            let returned_ack = match write_id {
                None => None,
                Some(id) => match ok_writes.get(id) {
                    Some(&(wk, ack)) if wk == k => Some(ack),
                    // Not an acknowledged write of this key: never stale.
                    _ => return None,
                },
            };
            keys[k].superseded_at(t, returned_ack)
        });
        let stale = superseded.is_some();
        if let Some(ack) = superseded {
            count += 1;
            ages.push(ms_between(t, ack));
        }
        reads += 1;
        by_region.entry(op.region.as_str()).or_default().add(stale);
        match source {
            Some(Source::Cache) => cache.add(stale),
            Some(Source::Db) => db.add(stale),
            None => {}
        }
    }
    let q = quantiles(&mut ages);
    let mut by_source = BTreeMap::new();
    for (name, group) in [("cache", cache), ("db", db)] {
        if group.reads > 0 {
            by_source.insert(name.to_owned(), group.finish());
        }
    }
    StaleReads {
        reads,
        count,
        rate: rate(count, reads),
        max_age_ms: q.max,
        p50_age_ms: q.p50,
        p99_age_ms: q.p99,
        by_region: by_region
            .into_iter()
            .map(|(region, g)| (region.to_owned(), g.finish()))
            .collect(),
        by_source,
        after_erasure,
    }
}

/// The stale-read row, judged by the `stale_read_rate` check.
pub fn rows(s: &StaleReads, cx: &RowContext) -> Vec<FindingRow> {
    vec![cx.judged(
        "stale reads",
        format!(
            "{} ({} of {}), max age {}",
            cx.shown("stale_read_rate", pct(s.rate)),
            s.count,
            s.reads,
            dur(s.max_age_ms)
        ),
        "stale_read_rate",
    )]
}

#[cfg(test)]
mod erasure_tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn reads_after_a_writers_erasure_are_not_judged() {
        // User 2 writes a (2) over user 1's (1), then is erased (acked at 50): a read of a at
        // 60 returning 1 (or nothing) is right, not stale. A read at 40, before the erasure,
        // returning 1 is stale.
        let mut erase = w(9, "profile:2", 45, 50).user(2);
        erase.0.kind = OpKind::Erase;
        let h = history(
            vec![
                w(1, "a", 0, 10),
                w(2, "a", 20, 30).user(2),
                r(3, "a", 40, 41, Some(1)),
                erase,
                r(4, "a", 60, 61, Some(1)),
                r(5, "a", 62, 63, None),
            ],
            vec![],
        );
        let s = check(&h);
        assert_eq!((s.reads, s.count, s.after_erasure), (1, 1, 2));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    fn group(reads: usize, count: usize) -> StaleGroup {
        StaleGroup {
            reads,
            count,
            rate: rate(count, reads),
        }
    }

    #[test]
    fn fresh_and_stale_reads_with_ages() {
        // Key a: write 1 [0, 10], write 2 [20, 30], write 3 [40, 50] (sequential).
        // Read 10 at 35 returns 2 → newest acked before 35 is 2 → fresh.
        // Read 11 at 35 returns 1 → 2 (invoked 20 > 10) acked at 30 < 35 → stale, age 5.
        // Read 12 at 60 returns 1 → first superseding write is 2 (acked 30) → age 30.
        // Read 13 at 60 returns nothing → first ok write acked 10 → stale, age 50.
        // Read 14 at 5 returns nothing → nothing acked before 5 → fresh.
        // Read 15 at 60 returns 3 → fresh.
        // Ages 5, 30, 50: p50 rank 2 → 30; p99 rank 3 → 50; max 50.
        let h = history(
            vec![
                w(1, "a", 0, 10),
                w(2, "a", 20, 30),
                w(3, "a", 40, 50),
                r(10, "a", 35, 36, Some(2)),
                r(11, "a", 35, 36, Some(1)),
                r(12, "a", 60, 61, Some(1)).region("eu"),
                r(13, "a", 60, 61, None).region("eu").cache(),
                r(14, "a", 5, 6, None),
                r(15, "a", 60, 61, Some(3)).region("eu").cache(),
            ],
            vec![],
        );
        let s = check(&h);
        assert_eq!(s.reads, 6);
        assert_eq!(s.count, 3);
        assert_eq!(s.rate, Some(0.5));
        assert_eq!(s.p50_age_ms, Some(30.0));
        assert_eq!(s.p99_age_ms, Some(50.0));
        assert_eq!(s.max_age_ms, Some(50.0));
        // us: reads 10, 11, 14 → 1 stale; eu: 12, 13, 15 → 2 stale.
        assert_eq!(
            s.by_region,
            BTreeMap::from([("eu".into(), group(3, 2)), ("us".into(), group(3, 1))])
        );
        // cache: 13, 15 → 1 stale; db: 10, 11, 12, 14 → 2 stale.
        assert_eq!(
            s.by_source,
            BTreeMap::from([("cache".into(), group(2, 1)), ("db".into(), group(4, 2))])
        );
    }

    #[test]
    fn stale_via_cache() {
        // eu's cache holds write 1 after write 2 was acked at 120; eu reads from the cache at
        // 500 and 900 and gets 1 → both stale, ages 380 and 780. A db read at 900 gets 2.
        let h = history(
            vec![
                w(1, "k", 0, 100),
                r(2, "k", 105, 106, Some(1)).region("eu").cache(),
                w(3, "k", 110, 120),
                r(4, "k", 500, 501, Some(1)).region("eu").cache(),
                r(5, "k", 900, 901, Some(1)).region("eu").cache(),
                r(6, "k", 900, 950, Some(3)).region("eu"),
            ],
            vec![],
        );
        let s = check(&h);
        assert_eq!((s.reads, s.count), (4, 2));
        assert_eq!(s.max_age_ms, Some(780.0));
        assert_eq!(s.p50_age_ms, Some(380.0));
        assert_eq!(s.by_source["cache"], group(3, 2));
        assert_eq!(s.by_source["db"], group(1, 0));
    }

    #[test]
    fn read_of_a_key_never_written() {
        let h = history(vec![w(1, "a", 0, 10), r(2, "never", 50, 51, None)], vec![]);
        let s = check(&h);
        assert_eq!((s.reads, s.count, s.rate), (1, 0, Some(0.0)));
        assert_eq!(
            (s.p50_age_ms, s.p99_age_ms, s.max_age_ms),
            (None, None, None)
        );
    }

    #[test]
    fn newer_than_acked_in_flight_write_is_not_stale() {
        // Write 1 acked at 10; write 2 invoked at 20, acked at 100 (in flight at 50).
        // A read at 50 returning 2 saw a newer value than anything acked: fresh.
        // A read at 50 returning unknown write 3 or a failed write 4: fresh (not evidence).
        let h = history(
            vec![
                w(1, "a", 0, 10),
                w(2, "a", 20, 100),
                w(3, "a", 30, 2030).unknown(),
                w(4, "a", 31, 32).fail(),
                r(5, "a", 50, 51, Some(2)),
                r(6, "a", 50, 51, Some(3)),
                r(7, "a", 50, 51, Some(4)),
            ],
            vec![],
        );
        let s = check(&h);
        assert_eq!((s.reads, s.count), (3, 0));
    }

    #[test]
    fn unknown_write_older_than_an_acked_one_is_not_evidence_either_way() {
        // Unknown write 1 [0, 2000 timeout]; ok write 2 acked at 50; a read at 100 returning 1
        // is not counted stale (1 may have been applied after 2). A read returning nothing
        // at 100 is stale (2 was acked at 50): age 50.
        let h = history(
            vec![
                w(1, "a", 0, 2000).unknown(),
                w(2, "a", 40, 50),
                r(3, "a", 100, 101, Some(1)),
                r(4, "a", 100, 101, None),
            ],
            vec![],
        );
        let s = check(&h);
        assert_eq!((s.reads, s.count), (2, 1));
        assert_eq!(s.max_age_ms, Some(50.0));
    }

    #[test]
    fn overlapping_writes_prove_nothing() {
        // A = 1 invoked 0, acked 10; B = 2 invoked 1, acked 5: they overlap, so either may be
        // the newest. Reads at 20 returning either are fresh. Write 3 [30, 40] comes after
        // both: a read at 50 returning 1 or 2 is stale, age 10.
        let h = history(
            vec![
                w(1, "a", 0, 10),
                w(2, "a", 1, 5),
                r(10, "a", 20, 21, Some(1)),
                r(11, "a", 20, 21, Some(2)),
                w(3, "a", 30, 40),
                r(12, "a", 50, 51, Some(1)),
                r(13, "a", 50, 51, Some(2)),
            ],
            vec![],
        );
        let s = check(&h);
        assert_eq!((s.reads, s.count), (4, 2));
        assert_eq!((s.p50_age_ms, s.max_age_ms), (Some(10.0), Some(10.0)));
    }

    #[test]
    fn age_counts_from_the_first_write_that_proves_staleness() {
        // Write 1 [0, 10]; write 2 [5, 50] overlaps 1; write 3 [20, 30] starts after 1 acked.
        // Read at 100 returning 1: superseding writes are those invoked after 10 → only 3
        // (acked 30) → age 70. Write 2 was invoked before 1 was acked: it proves nothing.
        let h = history(
            vec![
                w(1, "a", 0, 10),
                w(2, "a", 5, 50),
                w(3, "a", 20, 30),
                r(4, "a", 100, 101, Some(1)),
            ],
            vec![],
        );
        assert_eq!(check(&h).max_age_ms, Some(70.0));
    }

    #[test]
    fn acknowledged_at_the_same_instant_as_the_read_is_not_before_it() {
        // Write 2 acked at exactly 30; a read invoked at 30 returning 1 is fresh.
        let h = history(
            vec![
                w(1, "a", 0, 10),
                w(2, "a", 20, 30),
                r(3, "a", 30, 31, Some(1)),
            ],
            vec![],
        );
        assert_eq!(check(&h).count, 0);
    }

    #[test]
    fn returned_write_of_another_key_is_not_counted() {
        let h = history(
            vec![
                w(1, "a", 0, 10),
                w(2, "b", 0, 10),
                r(3, "a", 30, 31, Some(2)),
            ],
            vec![],
        );
        assert_eq!(check(&h).count, 0);
    }

    #[test]
    fn no_reads() {
        let s = check(&history(
            vec![w(1, "a", 0, 10), r(2, "a", 20, 30, None).fail()],
            vec![],
        ));
        assert_eq!((s.reads, s.count, s.rate), (0, 0, None));
        assert!(s.by_region.is_empty() && s.by_source.is_empty());
    }
}
