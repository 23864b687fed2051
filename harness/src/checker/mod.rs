//! Checkers: pure functions of (history, probes, final state) → findings.
//!
//! A checker never talks to the stack, never reads a clock and never does I/O: give it the
//! same [`History`], [`Probes`] and [`FinalState`] and it returns the same [`Findings`], down
//! to the order of every list (ids are sorted, maps are `BTreeMap`s).
//!
//! # Layout
//! One file per measurement, each with its definition in its doc comment, its findings type,
//! its `check` function, its `rows` function (how the reports show its findings, see
//! [`rows`]) and its known-answer tests beside it; every checker is registered on one line of
//! the registry below (`checkers!`), which makes [`Findings`], [`check`],
//! [`Findings::rows`] and [`Findings::alerts`] (what every report says first) out of them:
//! - [`ops`]: how many operations, by outcome and kind.
//! - [`replication_lag`]: heartbeat commit on the primary → visible on the replica.
//! - [`replay_lag`]: PostgreSQL's own `replay_lag` and bytes behind, as sampled.
//! - [`lost_writes`]: acknowledged writes absent from the final state; RPO observed.
//! - [`failover`]: the failure, detect / promote / redirect, RTO observed, affected users.
//! - [`timelines`]: the failover bracketed by the writes' PostgreSQL timelines (an RTO
//!   cross-check).
//! - [`false_failovers`]: every failover episode, its cause, and the false ones — a primary
//!   declared down while it was healthy in its own region — with what they cost.
//! - [`unavailability`]: share of operations that failed, per region and phase.
//! - [`latency`]: latency of successful operations, per region and kind, and of writes per
//!   region and phase.
//! - [`stale_reads`]: reads that returned data older than what had been acknowledged.
//! - [`read_your_writes`]: reads that did not reflect the reader's own acknowledged write.
//! - [`lww`]: converged values that were not the latest write in real time; writes silently
//!   dropped by last-write-wins; regions that did not converge.
//! - [`split_brain`]: writes the old primary acknowledged after the new one was promoted.
//! - [`counters`]: acknowledged increments lost (or invented) in the final counter values.
//! - [`conflicts`]: keys committed by both regions; travelling users' write latency.
//! - [`residency`]: users' personal data found (at rest) or carried (in flight) in a region
//!   their policy does not allow.
//! - [`erasure`]: acknowledged erasure → no copy left in any region: times, copies left.
//! - [`failback`]: the planned operations after a failover — rejoin (rewind or re-clone,
//!   divergent writes cross-checked with the lost ones), switchover (downtime, writes lost) —
//!   and whether one primary with a caught-up standby was left.
//! - [`host`]: whether the one host emulating every region kept time (schedule lag, timer
//!   lag, CPU): a saturated run's timings measure the host, not the posture.
//! - [`slo`]: the verdict — findings against the experiment's stated RTO / RPO / stale rate /
//!   false failovers.
//! - [`verdict`]: the verdict's types (`slo.*` in results.json).
//! - [`rows`]: [`FindingRow`], the context a `rows` function gets, and the number formats.
//!
//! # Conventions
//! - Every time is in milliseconds as `f64`, converted from the history's nanoseconds at the
//!   end (differences are taken in nanoseconds first, so nothing is rounded twice).
//! - `Option` means "not measurable" and serializes as `null`; a checker never makes up a 0.
//! - Percentiles are nearest-rank on exact values ([`percentile`]); no histogram buckets.
//! - "Region" of an operation is its user's home region ([`Operation::region`]), not the
//!   region that happened to serve it: the question is what a region's users experienced.
//!
//! [`Operation::region`]: crate::history::Operation::region

pub mod conflicts;
pub mod counters;
pub mod erasure;
pub mod failback;
pub mod failover;
pub mod false_failovers;
pub mod host;
pub mod latency;
pub mod lost_writes;
pub mod lww;
pub mod ops;
pub mod read_your_writes;
pub mod replay_lag;
pub mod replication_lag;
pub mod residency;
pub mod rows;
pub mod slo;
pub mod split_brain;
pub mod stale_reads;
pub mod timelines;
pub mod unavailability;
pub mod verdict;

#[cfg(test)]
pub(crate) mod testkit;

use crate::history::{FinalState, History, Operation, Probes};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

pub use conflicts::Conflicts;
pub use counters::{CounterKey, Counters};
pub use failover::{FailoverFindings, failure_at};
pub use latency::{Latency, LatencySummary, RegionLatency};
pub use lost_writes::LostWrites;
pub use lww::Lww;
pub use ops::OpCounts;
pub use read_your_writes::{ReadYourWrites, RywGroup};
pub use replay_lag::ReplayLag;
pub use replication_lag::{LagPoint, ReplicationLag};
pub use rows::{FindingRow, RowContext};
pub use slo::verdict;
pub use split_brain::SplitBrain;
pub use stale_reads::{StaleGroup, StaleReads};
pub use unavailability::{Phase, PhaseCounts, Unavailability, phase_bounds};
pub use verdict::{SloCheck, Verdict};

/// Declares the registry (see [`Findings`]): for every line `name: Type = (inputs…);` a
/// field `name: Type` of [`Findings`] (with the line's attributes), a call
/// `name::check(inputs…)` in [`check`], and `name::rows` in [`Findings::rows`], all in
/// the order of the lines; [`CHECKERS`] lists the names. The first line names `check`'s
/// three parameters, which the lines pass on as their inputs.
macro_rules! checkers {
    (
        fn check($history:ident, $probes:ident, $final_state:ident);
        $( $(#[$attr:meta])* $name:ident: $ty:ty = ($($input:ident),*) $(+ $alerts:ident)?; )+
    ) => {
        /// Everything the checkers found in one run: one field per checker of the registry,
        /// each with a stable dotted name in `results.json` (`findings.<checker>.*`), e.g.
        /// `lost_writes.count`, `failover.rto_ms`, `replication_lag.p99_ms`,
        /// `unavailability.us.fault.rate`, `latency.eu.write.p99_ms`. What each field means
        /// is documented on its checker's module and type.
        ///
        /// The checkers added after the first results were written (`read_your_writes`,
        /// `lww`, `split_brain`, `counters`, `conflicts`, `false_failovers`) default when
        /// absent, so an older `results.json` still reads — as "not checked", never as a
        /// clean 0 that was measured.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Findings {
            $(
                #[doc = concat!("`findings.", stringify!($name), ".*`: see [`", stringify!($name), "`].")]
                $(#[$attr])*
                pub $name: $ty,
            )+
        }

        /// Runs every checker of the registry. `final_state` is `None` when it could not be
        /// read (then lost writes, LWW and counters are reported as not checked, never as
        /// zero).
        pub fn check(
            $history: &History,
            $probes: &Probes,
            $final_state: Option<&FinalState>,
        ) -> Findings {
            Findings {
                $( $name: $name::check($($input),*), )+
            }
        }

        impl Findings {
            /// The rows of the findings tables (terminal, Markdown, HTML): every checker's
            /// own rows (its `rows` function), in registry order.
            pub fn rows(&self, cx: &RowContext) -> Vec<FindingRow> {
                let mut rows = Vec::new();
                $( rows.extend($name::rows(&self.$name, cx)); )+
                rows
            }
        }

        impl Findings {
            /// What a reader must know before any figure (a saturated host, a false or failed
            /// failover, a failure nobody injected), in plain words: every checker's `alerts`,
            /// for those the registry marks `+ alerts`, in registry order. Every format shows
            /// these first.
            pub fn alerts(&self, cx: &RowContext) -> Vec<String> {
                let mut alerts = Vec::new();
                $( $( alerts.extend($name::$alerts(&self.$name, cx)); )? )+
                alerts
            }
        }

        /// The checkers' names (their `results.json` keys), in registry order.
        pub const CHECKERS: &[&str] = &[$(stringify!($name)),+];
    };
}

// The registry: one line per checker, in the order its rows appear in the reports (also
// the order of `findings.*` in results.json; the names are what readers rely on). A checker
// is a module `name` with `check(inputs…) -> Type` and
// `rows(&Type, &RowContext) -> Vec<FindingRow>`; its findings serialize as
// `findings.<name>`. A checker whose findings a reader must know before any figure also has
// `alerts(&Type, &RowContext) -> Vec<String>` and `+ alerts` after its inputs. Adding one: its file, its `pub mod` line above (kept out of the macro
// because `cargo fmt` does not see modules a macro declares), a line in Layout, and one
// line here with `#[serde(default)]`, so results written before it still read.
checkers! {
    fn check(history, probes, final_state);
    failover: FailoverFindings = (history) + alerts;
    #[serde(default)] timelines: timelines::Timelines = (history);
    #[serde(default)] false_failovers: false_failovers::FalseFailovers = (history, probes) + alerts;
    lost_writes: LostWrites = (history, final_state);
    stale_reads: StaleReads = (history);
    replication_lag: ReplicationLag = (probes);
    replay_lag: ReplayLag = (probes);
    #[serde(default)] read_your_writes: ReadYourWrites = (history);
    #[serde(default)] split_brain: SplitBrain = (history);
    #[serde(default)] failback: failback::Failback = (history, final_state) + alerts;
    #[serde(default)] lww: Lww = (history, final_state);
    #[serde(default)] counters: Counters = (history, final_state);
    #[serde(default)] conflicts: Conflicts = (history);
    #[serde(default)] residency: residency::Residency = (history, probes, final_state);
    #[serde(default)] erasure: erasure::Erasure = (history, probes, final_state);
    latency: latency::Latency = (history);
    unavailability: unavailability::Unavailability = (history);
    ops: OpCounts = (history);
    #[serde(default)] host: host::HostHealth = (history, probes) + alerts;
}

/// The `q`-quantile of `values` by the nearest-rank method, on exact values: with the `n`
/// values sorted ascending, the value at 1-based rank `ceil(q·n)` (clamped to `1..=n`), i.e.
/// at index `ceil(q·n) − 1`. It is always one of the values, never an interpolation:
/// p50 of `[1, 2]` is 1, p99 of 100 values is the 99th smallest, any quantile of one value
/// is that value. `None` when `values` is empty.
///
/// `q·n` is computed in floating point, so a product that lands within 1e-9 (relative) of
/// a whole number is taken as that number: `0.07 × 100` is 7.000000000000001 in `f64`, and
/// its rank must be 7, not 8.
///
/// Runs in O(n) with `select_nth_unstable_by` and reorders `values` (it does not sort them).
pub fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let index = nearest_rank_index(values.len(), q);
    let (_, v, _) = values.select_nth_unstable_by(index, f64::total_cmp);
    Some(*v)
}

/// The 0-based index of the nearest-rank `q`-quantile among `n` sorted values (`n > 0`).
fn nearest_rank_index(n: usize, q: f64) -> usize {
    let x = q * n as f64;
    let whole = x.round();
    let rank = if (x - whole).abs() <= 1e-9 * x.abs().max(1.0) {
        whole
    } else {
        x.ceil()
    };
    // `as usize` saturates: negative or NaN ranks become 0, then clamp to the first value.
    (rank as usize).clamp(1, n) - 1
}

/// p50, p99 and max of a set of values (all `None` when there are none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Quantiles {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// [`Quantiles`] of `values` (reorders them), each by [`percentile`].
pub(crate) fn quantiles(values: &mut [f64]) -> Quantiles {
    let max = values.iter().copied().max_by(f64::total_cmp);
    Quantiles {
        p50: percentile(values, 0.50),
        p99: percentile(values, 0.99),
        max,
    }
}

/// A `HashMap` with [`FastHasher`]: for the checkers' id and key lookups.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
/// A `HashSet` with [`FastHasher`].
pub(crate) type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

/// The multiply-rotate hash rustc uses (FxHash). Checkers hash a million ids and keys from the
/// harness's own history: SipHash's protection against chosen keys buys nothing here and costs
/// about a third of the stale-read checker's time.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().unwrap()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(n as u64);
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(n as u64);
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Operations found by id. The recorder numbers operations in invoke order, so the history's
/// ids are normally ascending and a binary search finds them without building anything;
/// otherwise (a hand-made or merged history) a hash map is built once.
pub(crate) enum OpsById<'a> {
    /// `ops` ascending by id.
    Sorted(&'a [Operation]),
    /// Id → operation.
    Map(FastMap<u64, &'a Operation>),
}

impl<'a> OpsById<'a> {
    pub(crate) fn new(ops: &'a [Operation]) -> OpsById<'a> {
        if ops.is_sorted_by(|a, b| a.id < b.id) {
            OpsById::Sorted(ops)
        } else {
            let mut map = FastMap::default();
            for op in ops {
                map.entry(op.id).or_insert(op);
            }
            OpsById::Map(map)
        }
    }

    /// The operation with this id (the first one, should ids repeat).
    pub(crate) fn get(&self, id: u64) -> Option<&'a Operation> {
        match self {
            OpsById::Sorted(ops) => ops
                .binary_search_by_key(&id, |op| op.id)
                .ok()
                .map(|i| &ops[i]),
            OpsById::Map(map) => map.get(&id).copied(),
        }
    }
}

/// `later − earlier` in milliseconds, signed, exact to the nanosecond before conversion.
pub(crate) fn ms_between(later: u64, earlier: u64) -> f64 {
    (later as i128 - earlier as i128) as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use crate::history::{EventKind, Heartbeat, ReplicationStat};

    #[test]
    fn nearest_rank_on_one_value_is_that_value() {
        for q in [0.0, 0.5, 0.99, 1.0] {
            assert_eq!(percentile(&mut [7.5], q), Some(7.5));
        }
    }

    #[test]
    fn nearest_rank_on_two_values() {
        // n = 2: p50 → rank ceil(1.0) = 1 → the smaller; p99 → ceil(1.98) = 2 → the larger.
        assert_eq!(percentile(&mut [20.0, 10.0], 0.5), Some(10.0));
        assert_eq!(percentile(&mut [20.0, 10.0], 0.99), Some(20.0));
        assert_eq!(percentile(&mut [20.0, 10.0], 0.51), Some(20.0));
        assert_eq!(percentile(&mut [20.0, 10.0], 0.0), Some(10.0));
        assert_eq!(percentile(&mut [20.0, 10.0], 1.0), Some(20.0));
    }

    #[test]
    fn nearest_rank_on_one_hundred_values() {
        // 1..=100 shuffled: p50 = rank 50 = 50, p99 = rank 99 = 99, p100 = 100, p1 = 1.
        let mut v: Vec<f64> = (1..=100).map(|i| ((i * 37) % 100 + 1) as f64).collect();
        assert_eq!(percentile(&mut v, 0.5), Some(50.0));
        assert_eq!(percentile(&mut v, 0.99), Some(99.0));
        assert_eq!(percentile(&mut v, 1.0), Some(100.0));
        assert_eq!(percentile(&mut v, 0.01), Some(1.0));
        // 0.07 × 100 = 7.000000000000001 in f64: still rank 7, not 8.
        assert_eq!(percentile(&mut v, 0.07), Some(7.0));
        // 0.995 × 100 = 99.5 → rank 100.
        assert_eq!(percentile(&mut v, 0.995), Some(100.0));
    }

    #[test]
    fn nearest_rank_on_nothing_is_none() {
        assert_eq!(percentile(&mut [], 0.5), None);
        let q = quantiles(&mut []);
        assert_eq!((q.p50, q.p99, q.max), (None, None, None));
    }

    #[test]
    fn quantiles_on_ten_values() {
        // 10 values 10, 20, …, 100: p50 → rank 5 = 50; p99 → rank ceil(9.9) = 10 = 100.
        let mut v: Vec<f64> = (1..=10).rev().map(|i| (i * 10) as f64).collect();
        let q = quantiles(&mut v);
        assert_eq!(
            (q.p50, q.p99, q.max),
            (Some(50.0), Some(100.0), Some(100.0))
        );
    }

    #[test]
    fn ops_by_id_sorted_or_not() {
        let sorted = history(
            vec![w(1, "a", 0, 1), w(5, "b", 0, 1), w(9, "c", 0, 1)],
            vec![],
        );
        let by_id = OpsById::new(&sorted.ops);
        assert!(matches!(by_id, OpsById::Sorted(_)));
        assert_eq!(by_id.get(5).map(|o| o.key.as_str()), Some("b"));
        assert!(by_id.get(4).is_none());
        let unsorted = history(
            vec![w(9, "c", 0, 1), w(1, "a", 0, 1), w(9, "d", 0, 1)],
            vec![],
        );
        let by_id = OpsById::new(&unsorted.ops);
        assert!(matches!(by_id, OpsById::Map(_)));
        assert_eq!(by_id.get(9).map(|o| o.key.as_str()), Some("c"));
        assert_eq!(by_id.get(1).map(|o| o.key.as_str()), Some("a"));
        assert!(by_id.get(2).is_none());
    }

    #[test]
    fn ms_between_is_signed_and_exact() {
        assert_eq!(ms_between(5_500_000, 1_000_000), 4.5);
        assert_eq!(ms_between(1_000_000, 5_500_000), -4.5);
    }

    #[test]
    fn findings_round_trip_with_dotted_names() {
        let history = history(
            vec![
                w(1, "a", 0, 10).region("us"),
                r(2, "a", 20, 25, Some(1)).region("eu"),
                w(3, "a", 110, 200).region("eu").unknown(),
            ],
            vec![
                fault(100, 0, true),
                ev(
                    150,
                    EventKind::PrimaryDeclaredDown {
                        region: "us".into(),
                    },
                ),
                heal(300, 0),
            ],
        );
        let probes = Probes {
            heartbeat_poll_ms: 10.0,
            heartbeats: vec![Heartbeat {
                seq: 1,
                committed_ns: 0,
                visible_ns: Some(3 * MS),
            }],
            replication: vec![ReplicationStat {
                at_ns: 0,
                connected: true,
                replay_lag_ms: Some(1.5),
                bytes_behind: Some(10),
            }],
            ..Probes::default()
        };
        let final_state = FinalState {
            residency: None,
            primaries: Vec::new(),
            standbys: Vec::new(),
            primary_region: Some("eu".into()),
            write_ids: vec![1],
            regions: Default::default(),
        };
        let f = check(&history, &probes, Some(&final_state));
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["lost_writes"]["count"], 0);
        assert_eq!(json["lost_writes"]["checked"], true);
        assert_eq!(json["replication_lag"]["p99_ms"], 3.0);
        assert_eq!(json["failover"]["failure_at_ms"], 100.0);
        assert_eq!(json["failover"]["detect_ms"], 50.0);
        assert_eq!(json["failover"]["rto_ms"], serde_json::Value::Null);
        assert_eq!(json["unavailability"]["us"]["before"]["rate"], 0.0);
        assert_eq!(json["unavailability"]["eu"]["fault"]["unknown"], 1);
        assert_eq!(json["latency"]["us"]["write"]["p50_ms"], 10.0);
        assert_eq!(json["stale_reads"]["by_source"]["db"]["reads"], 1);
        assert_eq!(json["ops"]["total"], 3);
        assert_eq!(json["read_your_writes"]["reads_checked"], 1);
        assert_eq!(json["read_your_writes"]["count"], 0);
        assert_eq!(json["lww"]["checked"], false);
        assert_eq!(json["split_brain"]["old_primary"], "us");
        assert_eq!(json["split_brain"]["checked"], false);
        assert_eq!(json["counters"]["checked"], false);
        assert_eq!(json["conflicts"]["home_writes"]["count"], 1);
        assert_eq!(json["latency"]["us"]["incr"]["count"], 0);
        assert_eq!(json["false_failovers"]["failovers"], 1);
        assert_eq!(json["false_failovers"]["not_measured"], 1);
        assert_eq!(
            json["false_failovers"]["episodes"][0]["causes"][0]["index"],
            0
        );
        let back: Findings = serde_json::from_value(json).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn active_active_findings_by_dotted_name() {
        // lww posture, eu's clock ahead: eu's write 1 [0, 10] beats us's write 2 [20, 30];
        // counters as LWW registers: 3 acked increments, final 2. User 1 reads a at 40 and
        // gets 1 although its own write 2 was acked at 30.
        let h = history(
            vec![
                w(1, "a", 0, 10).user(2).region("eu").committed_by("eu"),
                w(2, "a", 20, 30).committed_by("us"),
                inc(3, "c", 0, 5).committed_by("us"),
                inc(4, "c", 0, 5).region("eu").committed_by("eu"),
                inc(5, "c", 10, 15).committed_by("us"),
                r(6, "a", 40, 41, Some(1)).cache(),
            ],
            vec![],
        );
        let fs = testkit::final_regions(&[
            ("eu", &[("a", 1)], &[("c", 2)]),
            ("us", &[("a", 1)], &[("c", 2)]),
        ]);
        let json = serde_json::to_value(check(&h, &Probes::default(), Some(&fs))).unwrap();
        assert_eq!(json["read_your_writes"]["count"], 1);
        assert_eq!(json["read_your_writes"]["by_region"]["us"]["rate"], 1.0);
        assert_eq!(json["read_your_writes"]["max_age_ms"], 10.0);
        assert_eq!(json["lww"]["wrong_winners"], 1);
        assert_eq!(json["lww"]["dropped_ids"], serde_json::json!([2]));
        assert_eq!(json["counters"]["lost"], 1);
        assert_eq!(json["counters"]["by_key"]["c"]["final"], 2);
        assert_eq!(json["conflicts"]["conflicting_keys"], 1);
        assert_eq!(json["conflicts"]["keys"], serde_json::json!(["a"]));
        assert_eq!(json["split_brain"]["checked"], false);
        assert_eq!(json["latency"]["us"]["incr"]["count"], 2);
        assert_eq!(json["ops"]["increments"], 3);
    }

    #[test]
    fn results_written_before_the_active_active_checkers_still_read() {
        let f = check(&History::default(), &Probes::default(), None);
        let mut json = serde_json::to_value(&f).unwrap();
        let obj = json.as_object_mut().unwrap();
        for name in [
            "read_your_writes",
            "lww",
            "split_brain",
            "counters",
            "conflicts",
            "false_failovers",
        ] {
            assert!(obj.remove(name).is_some(), "{name}");
        }
        let back: Findings = serde_json::from_value(json).unwrap();
        assert!(!back.lww.checked && !back.counters.checked && !back.split_brain.checked);
        assert_eq!(back.read_your_writes.rate, None);
        assert_eq!(
            back.false_failovers,
            false_failovers::FalseFailovers::default()
        );
    }

    #[test]
    fn the_registry_names_every_field_in_row_order() {
        let (h, p) = (History::default(), Probes::default());
        let f = check(&h, &p, None);
        let json = serde_json::to_value(&f).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut names = CHECKERS.to_vec();
        keys.sort_unstable();
        names.sort_unstable();
        assert_eq!(keys, names);
        // Serialized in registry order.
        let text = serde_json::to_string(&f).unwrap();
        let at = |name: &str| text.find(&format!("\"{name}\":")).unwrap();
        assert!(CHECKERS.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
        assert_eq!(CHECKERS.len(), 19);
        assert_eq!(CHECKERS[..3], ["failover", "timelines", "false_failovers"]);
        assert_eq!(CHECKERS[CHECKERS.len() - 2..], ["ops", "host"]);
    }

    #[test]
    fn rows_come_from_every_checker_in_registry_order() {
        use crate::posture::Posture;
        // A declaration at 150 with no health samples: the false-failover rows follow the
        // RTO rows; ops are last.
        let h = history(
            vec![w(1, "a", 0, 10), w(2, "a", 160, 170).fail()],
            vec![
                fault(100, 0, true),
                ev(
                    150,
                    EventKind::PrimaryDeclaredDown {
                        region: "us".into(),
                    },
                ),
            ],
        );
        let f = check(&h, &Probes::default(), None);
        let slo = slo::verdict(&f, &crate::experiment::Slo::default());
        let rows = f.rows(&RowContext {
            posture: Posture::ActivePassiveAsync,
            slo: &slo,
        });
        let names: Vec<&str> = rows.iter().map(|r| r.finding.as_str()).collect();
        assert_eq!(
            names,
            [
                "RTO (every region writing again)",
                "by home region",
                "detect / promote / redirect",
                "read RTO",
                "failovers (false / failed)",
                "150 ms: us declared down",
                "RPO (acked writes lost)",
                "stale reads",
                "replication lag p50 / p99 / max",
                "PostgreSQL replay_lag p99, max behind",
                "us users: write / read p50, p99",
                "us users: failed ops",
                "operations ok / fail / unknown",
            ]
        );
        assert_eq!(
            rows[5].observed,
            "fault in effect: fault 0; primary health in us not measured"
        );
    }

    #[test]
    fn empty_run_has_no_made_up_numbers() {
        let f = check(&History::default(), &Probes::default(), None);
        assert_eq!(f.ops, OpCounts::default());
        assert_eq!(f.replication_lag.p50_ms, None);
        assert_eq!(f.replay_lag.max_ms, None);
        assert!(!f.lost_writes.checked);
        assert_eq!(f.lost_writes.rpo_ms, None);
        assert_eq!(f.failover.rto_ms, None);
        assert!(f.failover.recovered);
        assert!(f.unavailability.is_empty());
        assert!(f.latency.is_empty());
        assert_eq!(f.stale_reads.rate, None);
        assert_eq!(f.read_your_writes, ReadYourWrites::default());
        assert!(!f.lww.checked && !f.split_brain.checked && !f.counters.checked);
        assert!(!f.conflicts.checked);
        assert_eq!(f.counters.final_total, None);
        assert_eq!(
            f.false_failovers,
            false_failovers::FalseFailovers::default()
        );
    }
}
