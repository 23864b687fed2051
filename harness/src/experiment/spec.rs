//! What an experiment file says, before any checking: the raw side of the
//! `ExperimentSpec` → [`Experiment`](super::Experiment) seam.
//!
//! Every key of the file format is a field below, with its default and unit; `experiments/README.md`
//! is the same list for people who do not read Rust. Unknown keys are rejected (a misspelt key
//! silently taking its default is how a drill ends up testing something else).
//!
//! Values that need checking beyond their TOML type are kept as [`Spanned`], so that
//! validation can point at the line and column they were written on. Durations are kept as
//! text ([`DurationText`]) and parsed during validation, so a malformed one is reported in
//! file order together with every other semantic problem.
//!
//! A fault's keys are read twice. Here, with the whole file: the keys every kind has
//! ([`FaultEntry`]), and any other key only checked to be some kind's. Then, during
//! validation, by its kind's file under `crate::fault`, as that kind's own serde struct with
//! spans (its `Spec`). Not a serde enum tagged by `kind`: an internally tagged enum buffers
//! its content, which loses the spans, turns an unknown kind into an opaque message, and
//! cannot say "`region` is not a key of a `partition` fault".

use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::fmt;
use toml::Spanned;

pub use crate::fields::DurationText;

/// The whole file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// `name`: short name used in run ids, report folders and tables. Letters, digits, `-`,
    /// `_` and `.`. Default: the file name without `.toml`.
    pub name: Option<Spanned<String>>,
    /// `description`: what the experiment shows and what result to expect. Default: empty.
    pub description: Option<String>,
    /// `posture` (required): `single-region`, `active-passive-async`,
    /// `active-passive-semi-sync`, `active-passive-sync`, `active-active-partitioned`,
    /// `active-active-lww` or `active-active-crdt`.
    pub posture: Option<Spanned<String>>,
    /// `seed`: seed of the operation plan and of every random choice. Default: 1.
    pub seed: Option<u64>,
    /// `duration` (required): how long the workload runs; more than zero. Fault times must
    /// fall within it. `workload.rate_per_s × duration` is at most
    /// [`MAX_PLANNED_OPS`](super::MAX_PLANNED_OPS).
    pub duration: Option<Spanned<DurationText>>,
    /// `settle`: time given to the system after every fault is healed, before the final state
    /// is read. Default: `"3s"`.
    pub settle: Option<Spanned<DurationText>>,
    /// `regions`: the data regions, 2 to 5 names (a lower-case letter, then lower-case
    /// letters and digits), the first starting with the primary; in active-passive postures
    /// every other holds a standby, the second being the synchronous one (`semi-sync`,
    /// `sync`). Default `["us", "eu"]`. More than two: the built-in manager, single-region and
    /// active-passive postures only.
    pub regions: Option<Spanned<Vec<Spanned<String>>>>,
    /// `[network]`: the network between the regions. Optional.
    pub network: Option<NetworkSpec>,
    /// `[workload]`: the simulated users. Optional.
    pub workload: Option<WorkloadSpec>,
    /// `[cache]`: the per-region cache. Optional.
    pub cache: Option<CacheSpec>,
    /// `[failover]`: the failover controller. Optional.
    pub failover: Option<FailoverSpec>,
    /// `[[faults]]`: zero or more faults, in any order (the experiment lists them by `at`).
    #[serde(default)]
    pub faults: Vec<Spanned<FaultEntry>>,
    /// `[[operations]]`: zero or more planned operations (`rejoin`, `switchover`), in any
    /// order (the experiment lists them by `at`).
    #[serde(default)]
    pub operations: Vec<Spanned<OperationEntry>>,
    /// `[slo]`: what the posture promises. Optional; each stated figure becomes a verdict line.
    pub slo: Option<SloSpec>,
    /// `[residency]`: personal data in the workload, the policy it is checked against, and
    /// planned erasures. Optional; absent, the run has no personal data.
    pub residency: Option<Spanned<ResidencySpec>>,
}

/// `[residency]` (see `crate::residency`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResidencySpec {
    /// `personal_tables`: the app's tables that hold personal data, without a region suffix:
    /// any of `profiles`, `kv`, `writes`. Default `["profiles"]`. With `pinned`, they are left
    /// out of cross-region replication.
    pub personal_tables: Option<Spanned<Vec<Spanned<String>>>>,
    /// `allow`: a table of home region → regions where that region's users' personal data may
    /// be, e.g. `allow = { us = ["us"], eu = ["eu"] }`. Default: each region its own only.
    pub allow: Option<Spanned<AllowSpec>>,
    /// `pinned`: leave the personal tables out of logical replication (the compliant variant;
    /// `active-active-partitioned` only). Default false.
    pub pinned: Option<Spanned<bool>>,
    /// `profile_reads_per_s`: profile reads per second, all users together, ≥ 0. Default 20.
    pub profile_reads_per_s: Option<Spanned<f64>>,
    /// `poll`: how often the erasure probe looks for copies; more than 0, at most 1 s.
    /// Default `"50ms"`.
    pub poll: Option<Spanned<DurationText>>,
    /// `[[residency.erasures]]`: planned erasures.
    #[serde(default)]
    pub erasures: Vec<Spanned<ErasureSpec>>,
}

/// `[residency] allow`: home region → the regions, each spanned.
pub type AllowSpec = std::collections::BTreeMap<String, Spanned<Vec<Spanned<String>>>>;

/// `[[residency.erasures]]`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureSpec {
    /// `at` (required): when, from the start of the workload; before `duration`.
    pub at: Option<Spanned<DurationText>>,
    /// `home` (required): the home region of the users erased (`us` or `eu`).
    pub home: Option<Spanned<String>>,
    /// `users`: how many of that region's users (chosen by the seed, never one twice); at
    /// least 1. Default 1.
    pub users: Option<Spanned<u32>>,
}

/// One `[[operations]]` entry (see `crate::operation`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationEntry {
    /// `kind` (required): `rejoin` or `switchover`; active-passive postures only.
    pub kind: Option<Spanned<String>>,
    /// `at` (required): when it starts, from the start of the workload; before `duration`.
    /// An operation runs to its end before the schedule's next item.
    pub at: Option<Spanned<DurationText>>,
    /// `to` (switchover only): the region whose standby becomes the primary. Default `us`.
    pub to: Option<Spanned<String>>,
    /// `stop_writes` (switchover only): make the primary read-only before the switch, so no
    /// acknowledged write is lost. Default true.
    pub stop_writes: Option<Spanned<bool>>,
}

/// `[network]`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// `rtt`: baseline round trip on every cross-region link, from the start. Default `"0ms"`.
    /// At most `workload.op_timeout` and the experiment's `duration` (longer is surely a
    /// slip: `"80mins"` for `"80ms"`).
    pub rtt: Option<Spanned<DurationText>>,
    /// `jitter`: ± this much on every link's round trip; at most the smallest round trip.
    /// Default `"0ms"`.
    pub jitter: Option<Spanned<DurationText>>,
    /// `[network.pairs]`: the round trip of each pair of regions, keyed `"a-b"` (either
    /// order), e.g. `us-ap = "180ms"`; a pair not listed has `rtt`. A pair may name the
    /// witness (`us-witness`: the built-in controller's vantage point there).
    pub pairs: Option<Spanned<std::collections::BTreeMap<String, Spanned<DurationText>>>>,
    /// `[network.pair_jitter]`: the jitter of a pair of regions, keyed as `[network.pairs]`,
    /// e.g. `us-ap = "20ms"`, instead of `jitter`; at most that pair's round trip.
    pub pair_jitter: Option<Spanned<std::collections::BTreeMap<String, Spanned<DurationText>>>>,
}

/// `[workload]`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// `users`: number of simulated users; at least 1, at most
    /// [`MAX_USERS`](super::MAX_USERS). Default 40.
    pub users: Option<Spanned<u32>>,
    /// `rate_per_s`: operations per second, all users together (open loop); more than 0,
    /// integer or float. Default 200. `rate_per_s × duration` is at most
    /// [`MAX_PLANNED_OPS`](super::MAX_PLANNED_OPS).
    pub rate_per_s: Option<Spanned<f64>>,
    /// `read_fraction`: share of operations that are reads, in [0, 1]. Default 0.5.
    pub read_fraction: Option<Spanned<f64>>,
    /// `keys`: number of distinct keys; at least 1. Default 50.
    pub keys: Option<Spanned<u32>>,
    /// `us_fraction`: share of users whose home region is `us`, in [0, 1]. Default 0.5. In
    /// `single-region` the others still live in `eu` and cross a link to reach `us`.
    pub us_fraction: Option<Spanned<f64>>,
    /// `homes`: share of users whose home is each region, e.g. `{ us = 0.5, eu = 0.3, ap =
    /// 0.2 }`; every region named, shares summing to 1. Default: `us_fraction` with two
    /// regions, equal shares with more. Not with `us_fraction`.
    pub homes: Option<Spanned<std::collections::BTreeMap<String, Spanned<f64>>>>,
    /// `op_timeout`: a client gives up on an operation after this long (outcome unknown);
    /// more than 0. Default `"2s"`.
    pub op_timeout: Option<Spanned<DurationText>>,
    /// `travel_fraction`: share of users away from home, in [0, 1]: they call the other
    /// region's app (in `active-active-partitioned`, that app sends their writes home across
    /// the link). Default 0. More than 0 needs a second region (not `single-region`).
    pub travel_fraction: Option<Spanned<f64>>,
    /// `incr_fraction`: share of operations that increment a shared counter, in [0, 1]; the
    /// rest split into reads and writes by `read_fraction`. Default 0.
    pub incr_fraction: Option<Spanned<f64>>,
    /// `counters`: number of distinct shared counters; at least 1. Default 1.
    pub counters: Option<Spanned<u32>>,
}

/// `[cache]`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// `ttl`: time to live of a cached value. Default `"1s"`.
    pub ttl: Option<Spanned<DurationText>>,
    /// `mode`: how the other region's cache learns of a write. `ttl` (default): the writing
    /// region drops its own copy, the other region's expires with its TTL; `invalidate`: the
    /// writing region also sends an invalidation event across the link; `write-through`: the
    /// writing region puts the new value into both regions' caches. `invalidate` and
    /// `write-through` need a second region (not `single-region`).
    pub mode: Option<Spanned<String>>,
    /// `ttl_jitter`: each cached value lives `ttl ± ttl_jitter` (spreads expiries); at most
    /// `ttl`. Default `"0ms"`.
    pub ttl_jitter: Option<Spanned<DurationText>>,
    /// `single_flight`: concurrent misses of one key in one app share a single database
    /// read. Default false.
    pub single_flight: Option<bool>,
}

/// `[failover]`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverSpec {
    /// `mode`: `auto` or `manual`. Default `auto`, except in `single-region`, where there is
    /// nothing to fail over to: there it defaults to `manual` and `auto` is an error. In the
    /// active-passive postures `auto` promotes the replica and reroutes; in the active-active
    /// ones there is no promotion: `auto` moves a dead region's users to the other region.
    pub mode: Option<Spanned<String>>,
    /// `interval`: time between health checks (of the primary; in active-active, of each
    /// region); more than 0. Default `"500ms"`.
    pub interval: Option<Spanned<DurationText>>,
    /// `threshold`: consecutive failed checks that declare the primary region down; at least
    /// 1. Default 3.
    pub threshold: Option<Spanned<u32>>,
    /// `dns_ttl`: how long clients keep using a routing answer. Default `"1s"`.
    pub dns_ttl: Option<Spanned<DurationText>>,
    /// `fencing`: stop the old primary before promoting the replica. Default false. `true` is
    /// an error in the active-active postures: nothing is promoted, so nothing is fenced.
    pub fencing: Option<Spanned<bool>>,
    /// `watch_from`: where the built-in controller checks the primary from: regions other than
    /// the primary's, and `witness` (a location holding no data). The primary is declared
    /// down when a majority of them have each missed `threshold` checks in a row. Default:
    /// the second region only (one vantage point: a partition between it and the primary
    /// looks exactly like a lost primary).
    pub watch_from: Option<Spanned<Vec<Spanned<String>>>>,
    /// `wal_log_hints`: PostgreSQL's `wal_log_hints` on every database, what lets `pg_rewind`
    /// rewind a deposed primary (the clusters have no data checksums). Default true; false
    /// makes every `rejoin` fall back to re-cloning.
    pub wal_log_hints: Option<bool>,
    /// `manager`: `builtin` (regiondrill's own controller) or `patroni` (Patroni with etcd,
    /// HAProxy per region). Default `builtin`.
    pub manager: Option<Spanned<String>>,
    /// `[failover.patroni]`: Patroni's settings; only with `manager = "patroni"`.
    pub patroni: Option<Spanned<PatroniSpec>>,
    /// `[failover.pg_auto_failover]`: pg_auto_failover's settings; only with
    /// `manager = "pg_auto_failover"`.
    pub pg_auto_failover: Option<Spanned<PgAutoFailoverSpec>>,
}

/// `[failover.pg_auto_failover]`: pg_auto_failover's own settings under their own names (the
/// monitor's GUCs without their `pgautofailover.` prefix), in its units (milliseconds,
/// bytes), and where its monitor runs. Bounds are the GUCs' own (`pg_settings.min_val`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgAutoFailoverSpec {
    /// `health_check_period`: ms, at least 1. Default 5000.
    pub health_check_period: Option<Spanned<i64>>,
    /// `health_check_timeout`: ms, at least 1. Default 5000.
    pub health_check_timeout: Option<Spanned<i64>>,
    /// `health_check_max_retries`: 1–100. Default 2.
    pub health_check_max_retries: Option<Spanned<i64>>,
    /// `health_check_retry_delay`: ms, at least 1. Default 2000.
    pub health_check_retry_delay: Option<Spanned<i64>>,
    /// `node_considered_unhealthy_timeout`: ms, at least 1. Default 20000.
    pub node_considered_unhealthy_timeout: Option<Spanned<i64>>,
    /// `primary_demote_timeout`: ms, at least 1. Default 30000.
    pub primary_demote_timeout: Option<Spanned<i64>>,
    /// `promote_wal_log_threshold`: bytes, at least 1. Default 16777216.
    pub promote_wal_log_threshold: Option<Spanned<i64>>,
    /// `startup_grace_period`: ms, at least 1. Default 10000.
    pub startup_grace_period: Option<Spanned<i64>>,
    /// `number_sync_standbys`: the formation's; 0 with the one standby here. Default 0.
    pub number_sync_standbys: Option<Spanned<i64>>,
    /// `replication_quorum`: every node's. Default true.
    pub replication_quorum: Option<Spanned<bool>>,
    /// `candidate_priority`: every node's, 0–100. Default 50.
    pub candidate_priority: Option<Spanned<i64>>,
    /// `monitor`: where the monitor runs: `witness`, `us` or `eu`. Default `witness`.
    pub monitor: Option<Spanned<String>>,
    /// `witness_rtt`: round trip between each data region and the witness. Default: the
    /// network's `rtt`.
    pub witness_rtt: Option<Spanned<DurationText>>,
}

/// `[failover.patroni]`: Patroni's own settings under their own names, in Patroni's units
/// (whole seconds, bytes), and where its DCS runs.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatroniSpec {
    /// `ttl`: seconds, at least 20 (Patroni's minimum). Default 30.
    pub ttl: Option<Spanned<u32>>,
    /// `loop_wait`: seconds, at least 1. Default 10.
    pub loop_wait: Option<Spanned<u32>>,
    /// `retry_timeout`: seconds, at least 3. Default 10. `loop_wait + 2 × retry_timeout`
    /// must not exceed `ttl` (Patroni's rule).
    pub retry_timeout: Option<Spanned<u32>>,
    /// `maximum_lag_on_failover`: bytes. Default 1048576.
    pub maximum_lag_on_failover: Option<Spanned<u64>>,
    /// `synchronous_mode`. Default false.
    pub synchronous_mode: Option<Spanned<bool>>,
    /// `synchronous_mode_strict` (needs `synchronous_mode`). Default false.
    pub synchronous_mode_strict: Option<Spanned<bool>>,
    /// `use_pg_rewind`. Default false.
    pub use_pg_rewind: Option<Spanned<bool>>,
    /// `failsafe_mode`. Default false.
    pub failsafe_mode: Option<Spanned<bool>>,
    /// `dcs`: where etcd runs: `witness` (a location of its own), `us` or `eu`. Default
    /// `witness`.
    pub dcs: Option<Spanned<String>>,
    /// `witness_rtt`: round trip between each data region and the witness. Default: the
    /// network's `rtt`.
    pub witness_rtt: Option<Spanned<DurationText>>,
    /// `haproxy_inter`: HAProxy's `inter` (time between checks of Patroni's REST
    /// `/primary`). Default `"3s"` (Patroni's HAProxy template).
    pub haproxy_inter: Option<Spanned<DurationText>>,
    /// `haproxy_fall`: HAProxy's `fall`. Default 3.
    pub haproxy_fall: Option<Spanned<u32>>,
    /// `haproxy_rise`: HAProxy's `rise`. Default 2.
    pub haproxy_rise: Option<Spanned<u32>>,
}

pub use crate::fault::COMMON_FAULT_KEYS;

/// One `[[faults]]` entry, as the whole file is read: the keys every kind has. Any other key
/// must be a key of some kind (else it is refused here, as an unknown key: a typo), and its
/// value of the type that kind reads (the first kind in the registry that takes it). Whether
/// it is a key of this entry's kind, and its value, are checked by the kind's file during
/// validation, which reads the same table as its own serde struct, spans kept
/// (`crate::fault::Fault::Spec`).
#[derive(Debug, Clone, Default)]
pub struct FaultEntry {
    /// `kind` (required): one of [`crate::fault::KINDS`], e.g. `latency`, `partition`,
    /// `kill_node`, `kill_region`, `pause_node`, `clock_skew`.
    pub kind: Option<Spanned<String>>,
    /// `at` (required): when the fault starts, as an offset from the start of the workload;
    /// before the experiment's `duration`.
    pub at: Option<Spanned<DurationText>>,
    /// `heal_at`: when it heals; after `at`, at most the experiment's `duration`. Absent (and
    /// no `duration`): the fault lasts to the end and is healed before the final reads.
    pub heal_at: Option<Spanned<DurationText>>,
    /// `duration`: how long it lasts (`heal_at = at + duration`); instead of `heal_at`.
    pub duration: Option<Spanned<DurationText>>,
}

impl<'de> Deserialize<'de> for FaultEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// A key of the entry: one of the common keys, or some kind's.
        enum Key {
            Kind,
            At,
            HealAt,
            Duration,
            /// A key some kind takes (known to [`crate::fault::keys`]).
            OfAKind(&'static str),
        }
        struct KeySeed;
        impl<'de> de::DeserializeSeed<'de> for KeySeed {
            type Value = Key;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
                d.deserialize_identifier(self)
            }
        }
        impl Visitor<'_> for KeySeed {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key of a fault")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "kind" => Key::Kind,
                    "at" => Key::At,
                    "heal_at" => Key::HealAt,
                    "duration" => Key::Duration,
                    // Raised while the key is read, so that it is placed on the key.
                    other => match crate::fault::keys().iter().find(|k| **k == other) {
                        Some(key) => Key::OfAKind(key),
                        None => return Err(E::unknown_field(other, crate::fault::keys())),
                    },
                })
            }
        }
        struct Entry;
        impl<'de> Visitor<'de> for Entry {
            type Value = FaultEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("struct FaultEntry")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<FaultEntry, A::Error> {
                let mut entry = FaultEntry::default();
                while let Some(key) = map.next_key_seed(KeySeed)? {
                    match key {
                        Key::Kind => entry.kind = Some(map.next_value()?),
                        Key::At => entry.at = Some(map.next_value()?),
                        Key::HealAt => entry.heal_at = Some(map.next_value()?),
                        Key::Duration => entry.duration = Some(map.next_value()?),
                        // Its type checked now, in file order with every other value.
                        Key::OfAKind(key) => map.next_value_seed(crate::fault::KeyType(key))?,
                    }
                }
                Ok(entry)
            }
        }
        deserializer.deserialize_struct("FaultEntry", &COMMON_FAULT_KEYS, Entry)
    }
}

/// `[slo]`. Every key is optional; an absent one is not judged.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// `rto`: longest acceptable time from the failure to the first successful write by an
    /// affected user.
    pub rto: Option<Spanned<DurationText>>,
    /// `rpo`: longest acceptable span of acknowledged writes lost.
    pub rpo: Option<Spanned<DurationText>>,
    /// `max_stale_read_rate`: highest acceptable share of reads that were stale, in [0, 1].
    pub max_stale_read_rate: Option<Spanned<f64>>,
    /// `max_false_failovers`: most failovers acceptable while the primary was healthy in its
    /// own region, an integer ≥ 0 (absent: 0, judged only when a failover was false or
    /// failed).
    pub max_false_failovers: Option<Spanned<u32>>,
    /// `max_residency_violations`: most users whose personal data may be found at rest in a
    /// region their policy does not allow, an integer ≥ 0 (absent: 0 when `[residency]` is
    /// there). Needs `[residency]`.
    pub max_residency_violations: Option<Spanned<u32>>,
    /// `erasure_within`: longest acceptable erasure time (acknowledged → no copy anywhere).
    /// Needs `[residency]`.
    pub erasure_within: Option<Spanned<DurationText>>,
}
