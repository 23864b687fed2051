//! The validated, ready-to-run form of an experiment: durations resolved, names checked,
//! defaults filled in. Built from the TOML by [`super::load`].

pub use crate::posture::CacheMode;
use crate::posture::Posture;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::fault::FaultSpec;
pub use crate::fault::partition::{CutDirection, PartitionMode};

/// An experiment, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Short name (used in run ids and tables).
    pub name: String,
    /// What it shows, one or two sentences.
    pub description: String,
    /// The file it came from.
    pub source: PathBuf,
    /// How the stack is wired.
    pub posture: Posture,
    /// Seed of the operation plan and of every random choice in the schedule.
    pub seed: u64,
    /// How long the workload runs.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Time given to the system after every fault is healed, before the final state is read
    /// (replicas catch up, caches expire).
    #[serde(with = "humantime_serde")]
    pub settle: Duration,
    /// The data regions, the one that starts with the primary first (`us`, `eu` by default).
    #[serde(
        default = "crate::stack::topology::default_regions",
        skip_serializing_if = "is_default_regions"
    )]
    pub regions: Vec<String>,
    /// The network between the regions.
    pub network: Network,
    /// The simulated users.
    pub workload: Workload,
    /// The per-region cache.
    pub cache: Cache,
    /// The failover controller (part of the system under test).
    pub failover: Failover,
    /// Faults, in schedule order.
    pub faults: Vec<ScheduledFault>,
    /// Planned operations (rejoin, switchover), in schedule order (`crate::operation`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<crate::operation::ScheduledOperation>,
    /// What the posture promises.
    pub slo: Slo,
    /// Personal data: where each user's may live, which tables hold it, its workload and
    /// planned erasures (`[residency]`; None: the run has no personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<Residency>,
    /// The scenario's name when a matrix generated this experiment (posture × scenario).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
}

impl Experiment {
    /// What the apps get from the experiment: its cache settings, the nodes its `clock_skew`
    /// faults name (started under libfaketime), and a request deadline slightly below the
    /// clients' timeout, so a client hears the app's own verdict (fail or unknown) rather than
    /// a bare timeout.
    pub fn app_tuning(&self) -> crate::app::AppTuning {
        let skewed = self
            .faults
            .iter()
            .filter_map(|f| f.fault.skewed_node().cloned())
            .collect();
        crate::app::AppTuning {
            cache_ttl: self.cache.ttl,
            cache_ttl_jitter: self.cache.ttl_jitter,
            cache_mode: self.cache.mode,
            single_flight: self.cache.single_flight,
            request_timeout: self
                .workload
                .op_timeout
                .mul_f64(0.8)
                .max(Duration::from_millis(50)),
            skewed,
            regions: self.regions.clone(),
        }
    }

    /// The plan of this experiment's stack.
    pub fn stack_plan(&self) -> crate::stack::plan::StackPlan {
        let mut plan = crate::stack::plan::StackPlan::new(
            self.posture,
            &self.regions,
            self.network.clone(),
            self.app_tuning(),
        )
        .watched_from(self.failover.watch_from.clone());
        plan.wal_log_hints = self.failover.wal_log_hints;
        if let Some(r) = &self.residency {
            plan.count_tokens = true;
            if r.pinned {
                plan.unpublished = r.personal_tables.clone();
            }
        }
        match &self.failover.manager {
            Manager::Builtin => plan,
            Manager::Patroni(p) => plan.with_patroni(p.clone()),
            Manager::PgAutoFailover(p) => plan.with_pg_auto_failover(p.clone()),
        }
    }
}

fn is_default_regions(regions: &[String]) -> bool {
    regions == crate::stack::topology::REGIONS
}

/// The network between the regions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Round trip between two regions on every link, from the start (e.g. 80 ms
    /// transatlantic), unless `pairs` gives their pair its own.
    #[serde(with = "humantime_serde")]
    pub rtt: Duration,
    /// Jitter on every link's round trip (± this much).
    #[serde(with = "humantime_serde")]
    pub jitter: Duration,
    /// The round trip of a pair of regions (the witness included), keyed `"a-b"` in the
    /// experiment's region order (the witness last).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pairs: BTreeMap<String, RttText>,
    /// The jitter of a pair of regions, instead of `jitter`, keyed as `pairs`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pair_jitter: BTreeMap<String, RttText>,
}

/// A pair's round trip, as humantime text in results.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RttText(#[serde(with = "humantime_serde")] pub Duration);

impl Network {
    /// The round trip between regions `a` and `b` (either order).
    pub fn rtt_between(&self, a: &str, b: &str) -> Duration {
        of_pair(&self.pairs, a, b).unwrap_or(self.rtt)
    }

    /// The jitter between regions `a` and `b` (either order).
    pub fn jitter_between(&self, a: &str, b: &str) -> Duration {
        of_pair(&self.pair_jitter, a, b).unwrap_or(self.jitter)
    }
}

/// The figure `table` gives the pair of `a` and `b`, keyed either way round.
fn of_pair(table: &BTreeMap<String, RttText>, a: &str, b: &str) -> Option<Duration> {
    table
        .get(&format!("{a}-{b}"))
        .or_else(|| table.get(&format!("{b}-{a}")))
        .map(|r| r.0)
}

/// The simulated users and what they do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Number of simulated users.
    pub users: u32,
    /// Operations per second, all users together, issued open-loop (on schedule, whether or
    /// not earlier operations have completed).
    pub rate_per_s: f64,
    /// Share of operations that are reads (the rest are writes).
    pub read_fraction: f64,
    /// Number of distinct keys.
    pub keys: u32,
    /// Share of users whose home region is the first region (the rest are in the second);
    /// with more than two regions, `homes` says it.
    pub us_fraction: f64,
    /// Share of users whose home is each region, in region order, summing to 1 (empty: the
    /// first two regions split by `us_fraction`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub homes: Vec<(String, f64)>,
    /// A client gives up on an operation after this long (the outcome is then `unknown`).
    #[serde(with = "humantime_serde")]
    pub op_timeout: Duration,
    /// Share of users away from home: they call the app of the next region in the
    /// experiment's order (the other one of two; in partition-by-user, that app sends their
    /// writes home across the link).
    #[serde(default)]
    pub travel_fraction: f64,
    /// Share of operations that increment a shared counter (the rest split into reads and
    /// writes by `read_fraction`).
    #[serde(default)]
    pub incr_fraction: f64,
    /// Number of shared counters.
    #[serde(default = "one")]
    pub counters: u32,
}

fn one() -> u32 {
    1
}

/// The per-region cache in front of the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cache {
    /// Time to live of a cached value.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// How the other region's cache learns of a write.
    #[serde(default)]
    pub mode: CacheMode,
    /// Each cached value lives `ttl ± ttl_jitter` (spreads expiries, against stampedes).
    #[serde(with = "humantime_serde", default)]
    pub ttl_jitter: Duration,
    /// Concurrent misses of one key in one app share a single database read.
    #[serde(default)]
    pub single_flight: bool,
}

/// Whether the failover controller acts by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailoverMode {
    /// Health checks, promotion and rerouting happen automatically.
    Auto,
    /// Nothing happens until someone acts (no failover within the run).
    Manual,
}

/// The failover controller's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failover {
    /// Automatic or manual.
    pub mode: FailoverMode,
    /// Time between health checks of the primary.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Consecutive failed checks that declare the primary region down.
    pub threshold: u32,
    /// How long clients may keep using a routing answer (DNS-like TTL).
    #[serde(with = "humantime_serde")]
    pub dns_ttl: Duration,
    /// Whether the old primary is fenced (stopped out of band) before the replica is promoted.
    pub fencing: bool,
    /// Which manager watches the primary and fails over (regiondrill's own by default).
    #[serde(default)]
    pub manager: Manager,
    /// Where the built-in controller checks the primary from (regions, or the witness);
    /// a majority of them must each miss `threshold` checks in a row. Empty: the second
    /// region only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch_from: Vec<String>,
    /// PostgreSQL's `wal_log_hints` on every database (what lets `pg_rewind` rewind a deposed
    /// primary); off, a `rejoin` can only re-clone.
    #[serde(default = "yes")]
    pub wal_log_hints: bool,
}

fn yes() -> bool {
    true
}

pub use crate::ha::{HaproxyChecks, Manager, Patroni, PgAutoFailover, Placement};

/// A fault and when it starts and heals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledFault {
    /// Offset from the start of the workload.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// Offset at which it heals; None: it lasts until the end (healed before final reads).
    #[serde(with = "humantime_serde", default)]
    pub heal_at: Option<Duration>,
    /// What it does (each kind has its own file under `fault/`).
    pub fault: FaultSpec,
}

pub use crate::fields::LinkSelector;

/// What the posture promises; each stated figure becomes a pass/fail line of the verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// Recovery time objective: longest acceptable time from the failure to the first
    /// successful write by an affected user.
    #[serde(with = "humantime_serde", default)]
    pub rto: Option<Duration>,
    /// Recovery point objective: longest acceptable span of acknowledged writes lost.
    #[serde(with = "humantime_serde", default)]
    pub rpo: Option<Duration>,
    /// Highest acceptable share of reads that were stale.
    #[serde(default)]
    pub max_stale_read_rate: Option<f64>,
    /// Most false failovers acceptable (None: not stated, and 0 is the limit; see
    /// `checker::slo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_false_failovers: Option<u32>,
    /// Most residency violations acceptable (users whose personal data was found at rest in a
    /// region its policy does not allow). None: not stated; with a `[residency]` policy the
    /// limit is then 0 (see `checker::slo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_residency_violations: Option<u32>,
    /// Longest acceptable erasure time (acknowledged erasure → no copy left anywhere); an
    /// erasure still pending at the end misses it.
    #[serde(
        with = "humantime_serde",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub erasure_within: Option<Duration>,
}

/// `[residency]`: personal data in the workload and the policy it is checked against (see
/// `crate::residency`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Residency {
    /// The app's tables that hold personal data (names without a region suffix: `profiles`,
    /// `kv`, `writes`). With `pinned`, these are not replicated to the other region.
    pub personal_tables: Vec<String>,
    /// Where each home region's users' personal data may be, at rest and in flight. Every
    /// region with users is a key; by default each maps to itself only.
    pub allow: std::collections::BTreeMap<String, Vec<String>>,
    /// The compliant variant of `active-active-partitioned`: the personal tables are left out
    /// of the logical replication publications, so they stay in their home region while the
    /// other tables still replicate.
    pub pinned: bool,
    /// Profile reads per second, all users together (open loop, uniform users; a user whose
    /// erasure was requested reads no more).
    pub profile_reads_per_s: f64,
    /// How often the erasure probe looks for copies of users whose erasure was requested.
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
    /// Planned erasures, in time order.
    pub erasures: Vec<PlannedErasure>,
}

/// `[[residency.erasures]]`: at `at`, `users` users of `home` (chosen by the seed, never
/// twice) ask for erasure (`DELETE /users/{id}` to their home region's app).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedErasure {
    /// Offset from the start of the workload.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// Home region of the users erased.
    pub home: String,
    /// How many.
    pub users: u32,
}
