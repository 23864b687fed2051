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
//! A fault is one flat table of every key any kind may have ([`FaultEntry`]) rather than a
//! serde enum tagged by `kind`: an internally tagged enum buffers its content, which loses the
//! spans, turns an unknown kind into an opaque message, and cannot say "`region` is not a key
//! of a `partition` fault". Validation checks the keys against the kind instead.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::fmt;
use toml::Spanned;

/// A duration exactly as written, e.g. `"80ms"`, `"1.5s"`, `"2m"`, `"1h30m"` (humantime
/// syntax). Only strings are accepted: a bare number has no unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationText(pub String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a duration in quotes, such as "80ms", "1.5s" or "2m""#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_string()))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// A signed duration exactly as written, e.g. `"-500ms"` (behind), `"+1.5s"` or `"250ms"`
/// (ahead): an optional `+` or `-`, then humantime syntax. Only strings are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDurationText(pub String);

impl<'de> Deserialize<'de> for SignedDurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = SignedDurationText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a signed duration in quotes, such as "-500ms", "+1.5s" or "250ms""#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SignedDurationText, E> {
                Ok(SignedDurationText(v.to_string()))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

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
    /// `[slo]`: what the posture promises. Optional; each stated figure becomes a verdict line.
    pub slo: Option<SloSpec>,
}

/// `[network]`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// `rtt`: baseline round trip on every cross-region link, from the start. Default `"0ms"`.
    /// At most `workload.op_timeout` and the experiment's `duration` (longer is surely a
    /// slip: `"80mins"` for `"80ms"`).
    pub rtt: Option<Spanned<DurationText>>,
    /// `jitter`: ± this much on that round trip; at most `rtt`. Default `"0ms"`.
    pub jitter: Option<Spanned<DurationText>>,
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
}

/// One `[[faults]]` entry. Which keys are allowed depends on `kind`:
///
/// | kind          | keys besides `kind`, `at`, `heal_at`, `duration`        |
/// |---------------|---------------------------------------------------------|
/// | `latency`     | `links` or `between`, `rtt` (required), `jitter`         |
/// | `partition`   | `links` or `between`, `mode`, `direction`                |
/// | `kill_node`   | `node` (required)                                        |
/// | `kill_region` | `region` (required)                                      |
/// | `pause_node`  | `node` (required)                                        |
/// | `clock_skew`  | `node` (required, an app), `offset` (required)           |
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultEntry {
    /// `kind` (required): `latency`, `partition`, `kill_node`, `kill_region`, `pause_node` or
    /// `clock_skew`.
    pub kind: Option<Spanned<String>>,
    /// `at` (required): when the fault starts, as an offset from the start of the workload;
    /// before the experiment's `duration`.
    pub at: Option<Spanned<DurationText>>,
    /// `heal_at`: when it heals; after `at`, at most the experiment's `duration`. Absent (and
    /// no `duration`): the fault lasts to the end and is healed before the final reads.
    pub heal_at: Option<Spanned<DurationText>>,
    /// `duration`: how long it lasts (`heal_at = at + duration`); instead of `heal_at`.
    pub duration: Option<Spanned<DurationText>>,
    /// `region` (kill_region): the region whose every node is killed; it must have nodes in
    /// the posture (`single-region`: only `us`).
    pub region: Option<Spanned<String>>,
    /// `node` (kill_node, pause_node, clock_skew): a node id such as `us-db`, `eu-cache`,
    /// `eu-app`; it must exist in the posture. For `clock_skew` it must be an app (`us-app`,
    /// `eu-app`): only the apps' clocks are shifted.
    pub node: Option<Spanned<String>>,
    /// `links` (latency, partition): link names, e.g. `["replication", "eu-app-to-us-db"]`;
    /// each must exist in the posture.
    pub links: Option<Spanned<Vec<Spanned<String>>>>,
    /// `between` (latency, partition): two distinct regions, e.g. `["us", "eu"]`: every link
    /// between them that exists in the posture, both ways.
    pub between: Option<Spanned<Vec<Spanned<String>>>>,
    /// `mode` (partition): `black_hole` (bytes vanish, connections stall; default) or
    /// `refuse` (connections are closed and refused).
    pub mode: Option<Spanned<String>>,
    /// `direction` (partition): `both` (default), or one way such as `"us->eu"` (only bytes
    /// flowing from `us` to `eu` are dropped; black_hole only).
    pub direction: Option<Spanned<String>>,
    /// `rtt` (latency, required): added round trip, more than 0 and at most the experiment's
    /// `duration` (longer than `workload.op_timeout` is allowed: every crossing times out).
    pub rtt: Option<Spanned<DurationText>>,
    /// `jitter` (latency): ± this much on the added round trip; at most `rtt`. Default `"0ms"`.
    pub jitter: Option<Spanned<DurationText>>,
    /// `offset` (clock_skew, required): how far the app's wall clock is shifted, signed:
    /// `"-500ms"` puts it behind, `"+1.5s"` (or `"1.5s"`) ahead. Whole milliseconds, not 0,
    /// at most 1 hour either way. Monotonic time is left alone.
    pub offset: Option<Spanned<SignedDurationText>>,
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
}
