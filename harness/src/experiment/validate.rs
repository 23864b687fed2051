//! `ExperimentSpec` → [`Experiment`]: defaults filled in, durations parsed, names checked
//! against the posture's topology, fault times checked against the workload's duration.
//!
//! Every problem found is collected with the span it concerns; the first in file order is
//! reported. A value that is itself wrong is left out of the checks that depend on it (an
//! unknown posture does not also make every link "absent"), so the report names the cause,
//! not a consequence.

use super::model::*;
use super::spec::*;
use crate::posture::Posture;
use crate::stack::topology::{
    LinkPurpose, LinkSpec, NodeId, PRIMARY_REGION, REGIONS, Role, link_name, links, used_by,
};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

/// A problem: where, which field, what.
pub(crate) struct Problem {
    /// Byte range in the file (0..0 for a missing top-level key).
    pub span: Range<usize>,
    /// Dotted field path.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

const DURATION_EXAMPLE: &str = r#"write e.g. "80ms", "1.5s" or "2m""#;
const FAULT_KINDS: &str = "latency, partition, kill_node, kill_region, pause_node, clock_skew";
const CACHE_MODES: &str = "ttl, invalidate, write-through";
/// The largest clock skew, either way.
const MAX_SKEW: Duration = Duration::from_secs(3600);
const COMMON_FAULT_KEYS: [&str; 4] = ["kind", "at", "heal_at", "duration"];
/// `workload.rate_per_s` when the file leaves it out.
const DEFAULT_RATE_PER_S: f64 = 200.0;

/// The most operations an experiment may plan: `workload.rate_per_s` × `duration`, 1 000 000
/// (83 minutes at the default 200/s).
///
/// Why: the plan itself is drawn lazily and costs nothing, but every operation issued is
/// recorded in memory until the run ends and is checked. Measured (a counting allocator over
/// 200 000 recorded operations of the usual shape): ≈ 300 bytes per recorded operation while
/// the run goes on (a 208-byte `Operation` with its key, region and outcome strings, and the
/// recorder's spare capacity), and ≈ 1.1 kB per operation at the peak when it ends (the
/// recorder's copy, the finished history, and its JSON lines being written). A million
/// operations is ≈ 300 MB during the run and ≈ 1.1 GB at its end: what a CI runner (7 GB,
/// shared with the stack under test) can hold. A plan larger than this is refused before
/// anything is brought up, rather than aborting the run halfway.
pub const MAX_PLANNED_OPS: u64 = 1_000_000;

/// The most simulated users, `workload.users`: 1 000 000.
///
/// Why: the workload keeps a routing answer per user (and the plan its travellers), so the
/// users are held in memory whether or not they ever issue an operation (≈ 60 MB at this cap);
/// `users = 4294967295` would abort the run trying to allocate hundreds of gigabytes. More
/// users than [`MAX_PLANNED_OPS`] could not all issue an operation anyway.
pub const MAX_USERS: u32 = 1_000_000;

/// The longest duration the harness's clock can stamp: `u64` nanoseconds, ≈ 584 years.
const MAX_CLOCK: Duration = Duration::from_nanos(u64::MAX);

/// Validates `spec`, read from `path`. On failure, the first problem in file order.
pub(crate) fn validate(spec: &ExperimentSpec, path: &Path) -> Result<Experiment, Problem> {
    let mut c = Checker::default();
    let experiment = c.experiment(spec, path);
    // A stable sort: for problems at the same place, the first found (the root cause).
    c.problems.sort_by_key(|p| p.span.start);
    match (c.problems.into_iter().next(), experiment) {
        (Some(problem), _) => Err(problem),
        (None, Some(experiment)) => Ok(experiment),
        (None, None) => unreachable!("every missing value is reported as a problem"),
    }
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn report(&mut self, span: Range<usize>, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            span,
            field: field.into(),
            message: message.into(),
        });
    }

    /// Parses a duration; None (reported) when malformed.
    fn parse_duration(&mut self, field: &str, text: &Spanned<DurationText>) -> Option<Duration> {
        let raw = &text.get_ref().0;
        match humantime::parse_duration(raw.trim()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.report(
                    text.span(),
                    field,
                    format!("invalid duration \"{raw}\" ({e}); {DURATION_EXAMPLE}"),
                );
                None
            }
        }
    }

    /// An optional duration with a default; `positive` rejects zero.
    fn duration_or(
        &mut self,
        field: &str,
        text: Option<&Spanned<DurationText>>,
        default: Duration,
        positive: bool,
    ) -> Option<Duration> {
        let Some(text) = text else {
            return Some(default);
        };
        let d = self.parse_duration(field, text)?;
        if positive && d.is_zero() {
            self.report(text.span(), field, "must be more than 0");
            return None;
        }
        Some(d)
    }

    /// An optional duration without a default (`Some(None)` when absent).
    fn optional_duration(
        &mut self,
        field: &str,
        text: Option<&Spanned<DurationText>>,
    ) -> Option<Option<Duration>> {
        match text {
            None => Some(None),
            Some(text) => self.parse_duration(field, text).map(Some),
        }
    }

    fn fraction_or(&mut self, field: &str, v: Option<&Spanned<f64>>, default: f64) -> Option<f64> {
        let Some(v) = v else {
            return Some(default);
        };
        let x = *v.get_ref();
        if !(0.0..=1.0).contains(&x) {
            self.report(v.span(), field, format!("{x} is not in [0, 1]"));
            return None;
        }
        Some(x)
    }

    fn at_least_one(&mut self, field: &str, v: Option<&Spanned<u32>>, default: u32) -> Option<u32> {
        let Some(v) = v else {
            return Some(default);
        };
        if *v.get_ref() == 0 {
            self.report(v.span(), field, "must be at least 1");
            return None;
        }
        Some(*v.get_ref())
    }

    /// A jitter (default 0) must not exceed the duration it varies, `base` (named `of`).
    fn jitter(
        &mut self,
        field: &str,
        text: Option<&Spanned<DurationText>>,
        base: Option<Duration>,
        of: &str,
    ) -> Option<Duration> {
        let jitter = self.duration_or(field, text, Duration::ZERO, false)?;
        if let (Some(text), Some(base)) = (text, base)
            && jitter > base
        {
            self.report(
                text.span(),
                field,
                format!("{} is more than the {of} ({})", show(jitter), show(base)),
            );
            return None;
        }
        Some(jitter)
    }

    fn experiment(&mut self, spec: &ExperimentSpec, path: &Path) -> Option<Experiment> {
        let name = self.name(spec, path);
        let posture = self.posture(spec);
        let seed = spec.seed.unwrap_or(1);
        let duration = match &spec.duration {
            None => {
                self.report(
                    0..0,
                    "duration",
                    "required: how long the workload runs, e.g. \"20s\"",
                );
                None
            }
            Some(d) => self
                .duration_or("duration", Some(d), Duration::ZERO, true)
                .and_then(|x| {
                    if x <= MAX_CLOCK {
                        return Some(x);
                    }
                    self.report(
                        d.span(),
                        "duration",
                        format!(
                            "\"{}\" is longer than the harness's clock can count (u64 \
                             nanoseconds: about 584 years)",
                            d.get_ref().0
                        ),
                    );
                    None
                }),
        };
        let settle = self.duration_or(
            "settle",
            spec.settle.as_ref(),
            Duration::from_secs(3),
            false,
        );
        let network = self.network(spec.network.as_ref().cloned().unwrap_or_default());
        let workload = self.workload(spec.workload.as_ref().cloned().unwrap_or_default(), posture);
        let cache = self.cache(&spec.cache.as_ref().cloned().unwrap_or_default(), posture);
        let failover = self.failover(
            &spec.failover.as_ref().cloned().unwrap_or_default(),
            posture,
        );
        let mut faults = Vec::new();
        for (i, entry) in spec.faults.iter().enumerate() {
            faults.push(self.fault(i, entry, posture, duration));
        }
        let slo = self.slo(&spec.slo.as_ref().cloned().unwrap_or_default());
        self.planned_ops(spec, duration, workload.as_ref());
        self.network_rtt(spec, network.as_ref(), workload.as_ref(), duration);

        let mut faults: Vec<ScheduledFault> = faults.into_iter().collect::<Option<_>>()?;
        faults.sort_by_key(|f| f.at);
        Some(Experiment {
            name: name?,
            description: spec.description.clone().unwrap_or_default(),
            source: path.to_path_buf(),
            posture: posture?,
            seed,
            duration: duration?,
            settle: settle?,
            network: network?,
            workload: workload?,
            cache: cache?,
            failover: failover?,
            faults,
            slo: slo?,
            scenario: None,
        })
    }

    /// `workload.rate_per_s` × `duration` must stay within [`MAX_PLANNED_OPS`]. The problem
    /// is put on the rate when the file sets one and the default rate would fit the duration,
    /// else on the duration; the message names both.
    fn planned_ops(
        &mut self,
        spec: &ExperimentSpec,
        duration: Option<Duration>,
        workload: Option<&Workload>,
    ) {
        let (Some(duration), Some(w), Some(duration_text)) =
            (duration, workload, spec.duration.as_ref())
        else {
            return;
        };
        let planned = w.rate_per_s * duration.as_secs_f64();
        if planned <= MAX_PLANNED_OPS as f64 {
            return;
        }
        let rate_text = spec.workload.as_ref().and_then(|w| w.rate_per_s.as_ref());
        let default_rate_fits =
            DEFAULT_RATE_PER_S * duration.as_secs_f64() <= MAX_PLANNED_OPS as f64;
        let (span, field) = match rate_text {
            Some(r) if default_rate_fits => (r.span(), "workload.rate_per_s"),
            _ => (duration_text.span(), "duration"),
        };
        let rate = match rate_text {
            Some(_) => format!("{}/s (workload.rate_per_s)", w.rate_per_s),
            None => format!("{}/s (workload.rate_per_s, by default)", w.rate_per_s),
        };
        let planned = if planned < 1e15 {
            format!("{planned:.0}")
        } else {
            format!("{planned:.1e}")
        };
        self.report(
            span,
            field,
            format!(
                "duration = \"{}\" at {rate} plans about {planned} operations, more than \
                 the {MAX_PLANNED_OPS} an experiment may plan (every operation is recorded \
                 in memory); shorten the duration or lower the rate",
                duration_text.get_ref().0
            ),
        );
    }

    /// A baseline round trip longer than the operation timeout (every cross-region
    /// operation would time out) or than the whole workload (no round trip would complete)
    /// is surely a mistake (`"80mins"` for `"80ms"`).
    fn network_rtt(
        &mut self,
        spec: &ExperimentSpec,
        network: Option<&Network>,
        workload: Option<&Workload>,
        duration: Option<Duration>,
    ) {
        let Some(text) = spec.network.as_ref().and_then(|n| n.rtt.as_ref()) else {
            return;
        };
        let Some(rtt) = network.map(|n| n.rtt) else {
            return;
        };
        let mut longer = Vec::new();
        if let Some(w) = workload
            && rtt > w.op_timeout
        {
            let set = spec
                .workload
                .as_ref()
                .is_some_and(|w| w.op_timeout.is_some());
            longer.push(format!(
                "workload.op_timeout ({}{}): every operation that crosses regions would time out",
                show(w.op_timeout),
                if set { "" } else { " by default" }
            ));
        }
        if let Some(d) = duration
            && rtt > d
        {
            longer.push(format!(
                "the experiment's duration ({}): no round trip between the regions would \
                 complete within the run",
                show(d)
            ));
        }
        if !longer.is_empty() {
            self.report(
                text.span(),
                "network.rtt",
                format!(
                    "\"{}\" ({}) is longer than {}; did you mean milliseconds (\"80ms\")?",
                    text.get_ref().0,
                    show(rtt),
                    longer.join(", and longer than ")
                ),
            );
        }
    }

    fn name(&mut self, spec: &ExperimentSpec, path: &Path) -> Option<String> {
        let Some(name) = &spec.name else {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            return Some(stem.unwrap_or_else(|| "experiment".to_string()));
        };
        let n = name.get_ref();
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if n.is_empty() || !n.chars().all(ok) {
            self.report(
                name.span(),
                "name",
                format!(
                    "\"{n}\" is not a usable name: use letters, digits, '-', '_' or '.' \
                     (it names run folders)"
                ),
            );
            return None;
        }
        Some(n.clone())
    }

    fn posture(&mut self, spec: &ExperimentSpec) -> Option<Posture> {
        let valid = Posture::ALL
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ");
        let Some(name) = &spec.posture else {
            self.report(0..0, "posture", format!("required: one of {valid}"));
            return None;
        };
        let posture = Posture::parse(name.get_ref().trim());
        if posture.is_none() {
            self.report(
                name.span(),
                "posture",
                format!("unknown posture \"{}\"; one of {valid}", name.get_ref()),
            );
        }
        posture
    }

    fn network(&mut self, n: NetworkSpec) -> Option<Network> {
        let rtt = self.duration_or("network.rtt", n.rtt.as_ref(), Duration::ZERO, false);
        let jitter = self.jitter("network.jitter", n.jitter.as_ref(), rtt, "rtt");
        Some(Network {
            rtt: rtt?,
            jitter: jitter?,
        })
    }

    fn workload(&mut self, w: WorkloadSpec, posture: Option<Posture>) -> Option<Workload> {
        let mut users = self.at_least_one("workload.users", w.users.as_ref(), 40);
        if let (Some(n), Some(text)) = (users, &w.users)
            && n > MAX_USERS
        {
            self.report(
                text.span(),
                "workload.users",
                format!(
                    "{n} users is more than the {MAX_USERS} the harness can simulate (each \
                     holds a routing answer in memory for the whole run)"
                ),
            );
            users = None;
        }
        let rate_per_s = match &w.rate_per_s {
            None => Some(DEFAULT_RATE_PER_S),
            Some(r) => {
                let x = *r.get_ref();
                if x.is_finite() && x > 0.0 {
                    Some(x)
                } else {
                    self.report(r.span(), "workload.rate_per_s", "must be more than 0");
                    None
                }
            }
        };
        let read_fraction =
            self.fraction_or("workload.read_fraction", w.read_fraction.as_ref(), 0.5);
        let keys = self.at_least_one("workload.keys", w.keys.as_ref(), 50);
        let us_fraction = self.fraction_or("workload.us_fraction", w.us_fraction.as_ref(), 0.5);
        let op_timeout = self.duration_or(
            "workload.op_timeout",
            w.op_timeout.as_ref(),
            Duration::from_secs(2),
            true,
        );
        let mut travel_fraction =
            self.fraction_or("workload.travel_fraction", w.travel_fraction.as_ref(), 0.0);
        if let (Some(t), Some(x), Some(posture)) = (&w.travel_fraction, travel_fraction, posture)
            && x > 0.0
            && !posture.has_standby()
        {
            self.report(
                t.span(),
                "workload.travel_fraction",
                format!(
                    "travellers call the other region's app, and {posture} has only \
                     {PRIMARY_REGION}-app; use 0 or leave travel_fraction out"
                ),
            );
            travel_fraction = None;
        }
        let incr_fraction =
            self.fraction_or("workload.incr_fraction", w.incr_fraction.as_ref(), 0.0);
        let counters = self.at_least_one("workload.counters", w.counters.as_ref(), 1);
        Some(Workload {
            users: users?,
            rate_per_s: rate_per_s?,
            read_fraction: read_fraction?,
            keys: keys?,
            us_fraction: us_fraction?,
            op_timeout: op_timeout?,
            travel_fraction: travel_fraction?,
            incr_fraction: incr_fraction?,
            counters: counters?,
        })
    }

    fn cache(&mut self, c: &CacheSpec, posture: Option<Posture>) -> Option<Cache> {
        let ttl = self.duration_or("cache.ttl", c.ttl.as_ref(), Duration::from_secs(1), false);
        let mode = match &c.mode {
            None => Some(CacheMode::Ttl),
            Some(m) => match m.get_ref().trim() {
                "ttl" => Some(CacheMode::Ttl),
                name @ ("invalidate" | "write-through") => {
                    if let Some(posture) = posture
                        && !posture.has_standby()
                    {
                        self.report(
                            m.span(),
                            "cache.mode",
                            format!(
                                "{name} reaches the other region's cache, and {posture} has \
                                 only {PRIMARY_REGION}-cache; use \"ttl\" or leave mode out"
                            ),
                        );
                        None
                    } else if name == "invalidate" {
                        Some(CacheMode::Invalidate)
                    } else {
                        Some(CacheMode::WriteThrough)
                    }
                }
                other => {
                    self.report(
                        m.span(),
                        "cache.mode",
                        format!("unknown cache mode \"{other}\"; one of {CACHE_MODES}"),
                    );
                    None
                }
            },
        };
        let ttl_jitter = self.jitter("cache.ttl_jitter", c.ttl_jitter.as_ref(), ttl, "ttl");
        Some(Cache {
            ttl: ttl?,
            mode: mode?,
            ttl_jitter: ttl_jitter?,
            single_flight: c.single_flight.unwrap_or(false),
        })
    }

    fn failover(&mut self, f: &FailoverSpec, posture: Option<Posture>) -> Option<Failover> {
        let standby = posture.map(Posture::has_standby);
        let mode = match &f.mode {
            // Nothing to fail over to in a single region: manual is the only honest default.
            None if standby == Some(false) => Some(FailoverMode::Manual),
            None => Some(FailoverMode::Auto),
            Some(m) => match m.get_ref().trim() {
                "auto" if standby == Some(false) => {
                    self.report(
                        m.span(),
                        "failover.mode",
                        "single-region has no standby to fail over to; \
                         use \"manual\" or leave mode out",
                    );
                    None
                }
                "auto" => Some(FailoverMode::Auto),
                "manual" => Some(FailoverMode::Manual),
                other => {
                    self.report(
                        m.span(),
                        "failover.mode",
                        format!("unknown failover mode \"{other}\"; one of auto, manual"),
                    );
                    None
                }
            },
        };
        let interval = self.duration_or(
            "failover.interval",
            f.interval.as_ref(),
            Duration::from_millis(500),
            true,
        );
        let threshold = self.at_least_one("failover.threshold", f.threshold.as_ref(), 3);
        let dns_ttl = self.duration_or(
            "failover.dns_ttl",
            f.dns_ttl.as_ref(),
            Duration::from_secs(1),
            false,
        );
        let fencing = match &f.fencing {
            None => Some(false),
            Some(fencing) => match posture {
                Some(posture) if *fencing.get_ref() && posture.is_active_active() => {
                    self.report(
                        fencing.span(),
                        "failover.fencing",
                        format!(
                            "{posture} has nothing to fence: both regions run a primary and \
                             failover promotes nothing (it moves users); set false or leave \
                             fencing out"
                        ),
                    );
                    None
                }
                _ => Some(*fencing.get_ref()),
            },
        };
        Some(Failover {
            mode: mode?,
            interval: interval?,
            threshold: threshold?,
            dns_ttl: dns_ttl?,
            fencing: fencing?,
        })
    }

    fn slo(&mut self, s: &SloSpec) -> Option<Slo> {
        let rto = self.optional_duration("slo.rto", s.rto.as_ref());
        let rpo = self.optional_duration("slo.rpo", s.rpo.as_ref());
        let max_stale_read_rate = match &s.max_stale_read_rate {
            None => Some(None),
            Some(v) => self
                .fraction_or("slo.max_stale_read_rate", Some(v), 0.0)
                .map(Some),
        };
        Some(Slo {
            rto: rto?,
            rpo: rpo?,
            max_stale_read_rate: max_stale_read_rate?,
            // An integer ≥ 0 by its type: a negative or fractional value is refused while
            // the file is read, with its line and column.
            max_false_failovers: s.max_false_failovers.as_ref().map(|v| *v.get_ref()),
        })
    }

    /// Fault `i` (file order). `posture` and `duration` are None when themselves invalid;
    /// the checks that need them are then skipped.
    fn fault(
        &mut self,
        i: usize,
        entry: &Spanned<FaultEntry>,
        posture: Option<Posture>,
        duration: Option<Duration>,
    ) -> Option<ScheduledFault> {
        let f = entry.get_ref();
        let header = entry.span();
        let p = |key: &str| format!("faults[{i}].{key}");

        let kind = match &f.kind {
            None => {
                self.report(
                    header.clone(),
                    p("kind"),
                    format!("required: one of {FAULT_KINDS}"),
                );
                None
            }
            Some(k) => {
                let kind = Kind::parse(k.get_ref().trim());
                if kind.is_none() {
                    self.report(
                        k.span(),
                        p("kind"),
                        format!(
                            "unknown fault kind \"{}\"; one of {FAULT_KINDS}",
                            k.get_ref()
                        ),
                    );
                }
                kind
            }
        };
        if let Some(kind) = kind {
            self.keys_of(kind, f, &p);
        }

        let timing = self.timing(f, &header, &p, duration);
        let fault = match kind? {
            Kind::Latency => {
                let links = self.link_selector(f, &header, &p, posture);
                let rtt = match &f.rtt {
                    None => {
                        self.report(
                            header.clone(),
                            p("rtt"),
                            "required: the added round trip, e.g. \"80ms\"",
                        );
                        None
                    }
                    Some(t) => self
                        .duration_or(&p("rtt"), Some(t), Duration::ZERO, true)
                        .and_then(|rtt| match duration {
                            // Longer than the operation timeout is a legitimate drill (every
                            // crossing times out); longer than the run, a typo.
                            Some(d) if rtt > d => {
                                self.report(
                                    t.span(),
                                    p("rtt"),
                                    format!(
                                        "\"{}\" ({}) is longer than the experiment's duration \
                                         ({}): no round trip through these links would \
                                         complete within the run; did you mean milliseconds \
                                         (\"80ms\")?",
                                        t.get_ref().0,
                                        show(rtt),
                                        show(d)
                                    ),
                                );
                                None
                            }
                            _ => Some(rtt),
                        }),
                };
                let jitter = self.jitter(&p("jitter"), f.jitter.as_ref(), rtt, "rtt");
                FaultSpec::Latency {
                    links: links?,
                    rtt: rtt?,
                    jitter: jitter?,
                }
            }
            Kind::Partition => {
                let links = self.link_selector(f, &header, &p, posture);
                let mode = match &f.mode {
                    None => Some(PartitionMode::BlackHole),
                    Some(m) => match m.get_ref().trim() {
                        "black_hole" => Some(PartitionMode::BlackHole),
                        "refuse" => Some(PartitionMode::Refuse),
                        other => {
                            self.report(
                                m.span(),
                                p("mode"),
                                format!(
                                    "unknown partition mode \"{other}\"; one of black_hole, refuse"
                                ),
                            );
                            None
                        }
                    },
                };
                let direction = self.direction(f, &p, links.as_ref(), mode);
                FaultSpec::Partition {
                    links: links?,
                    mode: mode?,
                    direction: direction?,
                }
            }
            Kind::KillNode => FaultSpec::KillNode {
                node: self.node(f, &header, &p, posture)?,
            },
            Kind::KillRegion => FaultSpec::KillRegion {
                region: self.region(f, &header, &p, posture)?,
            },
            Kind::PauseNode => FaultSpec::PauseNode {
                node: self.node(f, &header, &p, posture)?,
            },
            Kind::ClockSkew => {
                let node = self.app_node(f, &header, &p, posture);
                let offset_ms = self.offset(f, &header, &p);
                FaultSpec::ClockSkew {
                    node: node?,
                    offset_ms: offset_ms?,
                }
            }
        };
        let (at, heal_at) = timing?;
        Some(ScheduledFault { at, heal_at, fault })
    }

    /// Reports every key present that `kind` does not take.
    fn keys_of(&mut self, kind: Kind, f: &FaultEntry, p: &impl Fn(&str) -> String) {
        let present: [(&str, Option<Range<usize>>); 9] = [
            ("region", f.region.as_ref().map(Spanned::span)),
            ("node", f.node.as_ref().map(Spanned::span)),
            ("links", f.links.as_ref().map(Spanned::span)),
            ("between", f.between.as_ref().map(Spanned::span)),
            ("mode", f.mode.as_ref().map(Spanned::span)),
            ("direction", f.direction.as_ref().map(Spanned::span)),
            ("rtt", f.rtt.as_ref().map(Spanned::span)),
            ("jitter", f.jitter.as_ref().map(Spanned::span)),
            ("offset", f.offset.as_ref().map(Spanned::span)),
        ];
        let own = kind.keys();
        for (key, span) in present {
            if let Some(span) = span
                && !own.contains(&key)
            {
                let keys = COMMON_FAULT_KEYS
                    .iter()
                    .chain(own)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ");
                self.report(
                    span,
                    p(key),
                    format!("not a key of a {} fault (its keys: {keys})", kind.name()),
                );
            }
        }
    }

    /// `at`, and `heal_at` from `heal_at` or `duration`. None when `at` is unusable (its
    /// problem is reported); a bad heal time is reported and also makes the fault None.
    fn timing(
        &mut self,
        f: &FaultEntry,
        header: &Range<usize>,
        p: &impl Fn(&str) -> String,
        duration: Option<Duration>,
    ) -> Option<(Duration, Option<Duration>)> {
        let Some(at_text) = &f.at else {
            self.report(
                header.clone(),
                p("at"),
                "required: when the fault starts, from the start of the workload, e.g. \"5s\"",
            );
            return None;
        };
        let at = self.parse_duration(&p("at"), at_text)?;
        if let Some(duration) = duration
            && at >= duration
        {
            self.report(
                at_text.span(),
                p("at"),
                format!(
                    "starts at {}, not before the end of the workload (duration = {})",
                    show(at),
                    show(duration)
                ),
            );
            return None;
        }

        let heal_at = match (&f.heal_at, &f.duration) {
            (Some(h), Some(d)) => {
                let (key, span) = if d.span().start > h.span().start {
                    ("duration", d.span())
                } else {
                    ("heal_at", h.span())
                };
                self.report(span, p(key), "give either heal_at or duration, not both");
                return None;
            }
            (None, None) => return Some((at, None)),
            (Some(h), None) => {
                let heal_at = self.parse_duration(&p("heal_at"), h)?;
                if heal_at <= at {
                    self.report(
                        h.span(),
                        p("heal_at"),
                        format!(
                            "heals at {}, not after it starts (at = {})",
                            show(heal_at),
                            show(at)
                        ),
                    );
                    return None;
                }
                (heal_at, "heal_at", h.span())
            }
            (None, Some(d)) => {
                let length = self.duration_or(&p("duration"), Some(d), Duration::ZERO, true)?;
                let Some(heal_at) = at.checked_add(length) else {
                    // `at + duration` would overflow (and panic): far past any workload.
                    self.report(
                        d.span(),
                        p("duration"),
                        format!(
                            "\"{}\" from at = {} heals past the end of the time the harness \
                             can count; leave heal_at and duration out to let the fault last \
                             to the end",
                            d.get_ref().0,
                            show(at)
                        ),
                    );
                    return None;
                };
                (heal_at, "duration", d.span())
            }
        };
        let (heal_at, key, span) = heal_at;
        if let Some(duration) = duration
            && heal_at > duration
        {
            self.report(
                span,
                p(key),
                format!(
                    "heals at {}, after the end of the workload (duration = {}); leave heal_at \
                     and duration out to let the fault last to the end",
                    show(heal_at),
                    show(duration)
                ),
            );
            return None;
        }
        Some((at, Some(heal_at)))
    }

    /// `links` or `between`.
    fn link_selector(
        &mut self,
        f: &FaultEntry,
        header: &Range<usize>,
        p: &impl Fn(&str) -> String,
        posture: Option<Posture>,
    ) -> Option<LinkSelector> {
        match (&f.links, &f.between) {
            (Some(l), Some(b)) => {
                let (key, span) = if b.span().start > l.span().start {
                    ("between", b.span())
                } else {
                    ("links", l.span())
                };
                self.report(span, p(key), "give either links or between, not both");
                None
            }
            (None, None) => {
                self.report(
                    header.clone(),
                    p("links"),
                    "required: links = [link names] or between = [\"us\", \"eu\"]",
                );
                None
            }
            (Some(names), None) => self.named_links(names, p, posture),
            (None, Some(between)) => self.between(between, p, posture),
        }
    }

    fn named_links(
        &mut self,
        names: &Spanned<Vec<Spanned<String>>>,
        p: &impl Fn(&str) -> String,
        posture: Option<Posture>,
    ) -> Option<LinkSelector> {
        if names.get_ref().is_empty() {
            self.report(names.span(), p("links"), "empty: name at least one link");
            return None;
        }
        let all = links();
        let mut out = Vec::new();
        let mut ok = true;
        for (j, name) in names.get_ref().iter().enumerate() {
            let field = p(&format!("links[{j}]"));
            let n = name.get_ref().trim();
            let Some(link) = all.iter().find(|l| l.name == n) else {
                let known = match posture {
                    Some(posture) => format!("links in {posture}: {}", link_names(posture)),
                    None => format!(
                        "links: {}",
                        all.iter()
                            .map(|l| l.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                self.report(name.span(), field, format!("unknown link \"{n}\"; {known}"));
                ok = false;
                continue;
            };
            if let Some(posture) = posture
                && let Some(why) = absent(posture, link)
            {
                self.report(
                    name.span(),
                    field,
                    format!(
                        "link \"{n}\" does not exist in {posture} ({why}); links in {posture}: {}",
                        link_names(posture)
                    ),
                );
                ok = false;
                continue;
            }
            if out.iter().any(|o| o == n) {
                self.report(name.span(), field, format!("link \"{n}\" is listed twice"));
                ok = false;
                continue;
            }
            out.push(n.to_string());
        }
        ok.then_some(LinkSelector::Named(out))
    }

    fn between(
        &mut self,
        between: &Spanned<Vec<Spanned<String>>>,
        p: &impl Fn(&str) -> String,
        posture: Option<Posture>,
    ) -> Option<LinkSelector> {
        let [a, b] = between.get_ref().as_slice() else {
            self.report(
                between.span(),
                p("between"),
                "needs exactly two regions, e.g. [\"us\", \"eu\"]",
            );
            return None;
        };
        let mut ok = true;
        for (j, r) in [a, b].into_iter().enumerate() {
            if !REGIONS.contains(&r.get_ref().trim()) {
                self.report(
                    r.span(),
                    p(&format!("between[{j}]")),
                    format!(
                        "unknown region \"{}\"; regions: {}",
                        r.get_ref(),
                        REGIONS.join(", ")
                    ),
                );
                ok = false;
            }
        }
        let (a, b) = (a.get_ref().trim(), b.get_ref().trim());
        if ok && a == b {
            self.report(between.span(), p("between"), "needs two different regions");
            return None;
        }
        if ok
            && let Some(posture) = posture
            && !links()
                .iter()
                .any(|l| joins(l, a, b) && absent(posture, l).is_none())
        {
            self.report(
                between.span(),
                p("between"),
                format!("no link between {a} and {b} exists in {posture}"),
            );
            return None;
        }
        ok.then(|| LinkSelector::Between(a.to_string(), b.to_string()))
    }

    /// `direction` of a partition: `both` or `from->to` (black_hole only).
    fn direction(
        &mut self,
        f: &FaultEntry,
        p: &impl Fn(&str) -> String,
        links_sel: Option<&LinkSelector>,
        mode: Option<PartitionMode>,
    ) -> Option<CutDirection> {
        let Some(d) = &f.direction else {
            return Some(CutDirection::Both);
        };
        let text = d.get_ref().trim();
        if text == "both" {
            return Some(CutDirection::Both);
        }
        let parsed = text
            .split_once("->")
            .map(|(from, to)| (from.trim(), to.trim()))
            .filter(|(from, to)| REGIONS.contains(from) && REGIONS.contains(to) && from != to);
        let Some((from, to)) = parsed else {
            self.report(
                d.span(),
                p("direction"),
                format!("\"{text}\" is not a direction; write \"both\", \"us->eu\" or \"eu->us\""),
            );
            return None;
        };
        if mode == Some(PartitionMode::Refuse) {
            self.report(
                d.span(),
                p("direction"),
                "a one-way cut needs mode = \"black_hole\" (a refused connection fails both ways)",
            );
            return None;
        }
        // The cut must be along the selected links: its two ends are the regions they join.
        let stray = match links_sel {
            Some(LinkSelector::Between(a, b)) => {
                (!joins_regions(a, b, from, to)).then(|| format!("between = [{a}, {b}]"))
            }
            Some(LinkSelector::Named(names)) => links()
                .into_iter()
                .find(|l| names.contains(&l.name) && !joins(l, from, to))
                .map(|l| format!("link \"{}\" joins {} and {}", l.name, l.from, l.to)),
            None => None,
        };
        if let Some(stray) = stray {
            self.report(
                d.span(),
                p("direction"),
                format!("{from}->{to} does not run along the selected links ({stray})"),
            );
            return None;
        }
        Some(CutDirection::OneWay {
            from: from.to_string(),
            to: to.to_string(),
        })
    }

    fn node(
        &mut self,
        f: &FaultEntry,
        header: &Range<usize>,
        p: &impl Fn(&str) -> String,
        posture: Option<Posture>,
    ) -> Option<NodeId> {
        let Some(n) = &f.node else {
            self.report(
                header.clone(),
                p("node"),
                "required: a node id such as \"us-db\"",
            );
            return None;
        };
        let listing = |posture: Option<Posture>| match posture {
            Some(posture) => format!("nodes in {posture}: {}", node_names(posture)),
            None => format!("nodes: {}", node_names(Posture::ActivePassiveAsync)),
        };
        let Some(node) = NodeId::parse(n.get_ref().trim()) else {
            self.report(
                n.span(),
                p("node"),
                format!("unknown node \"{}\"; {}", n.get_ref(), listing(posture)),
            );
            return None;
        };
        if let Some(posture) = posture
            && !nodes(posture).contains(&node)
        {
            self.report(
                n.span(),
                p("node"),
                format!(
                    "node \"{node}\" does not exist in {posture}; {}",
                    listing(Some(posture))
                ),
            );
            return None;
        }
        Some(node)
    }

    /// `node` of a clock skew: an app that exists in the posture.
    fn app_node(
        &mut self,
        f: &FaultEntry,
        header: &Range<usize>,
        p: &impl Fn(&str) -> String,
        posture: Option<Posture>,
    ) -> Option<NodeId> {
        let Some(n) = &f.node else {
            self.report(
                header.clone(),
                p("node"),
                "required: the app whose clock is shifted, such as \"us-app\"",
            );
            return None;
        };
        let apps = |posture: Option<Posture>| {
            nodes(posture.unwrap_or(Posture::ActivePassiveAsync))
                .into_iter()
                .filter(|n| n.role == Role::App)
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let listing = |posture: Option<Posture>| match posture {
            Some(posture) => format!("apps in {posture}: {}", apps(Some(posture))),
            None => format!("apps: {}", apps(None)),
        };
        let text = n.get_ref().trim();
        let Some(node) = NodeId::parse(text) else {
            self.report(
                n.span(),
                p("node"),
                format!(
                    "unknown node \"{}\"; clock skew applies to apps ({})",
                    n.get_ref(),
                    listing(posture)
                ),
            );
            return None;
        };
        if node.role != Role::App {
            self.report(
                n.span(),
                p("node"),
                format!(
                    "\"{node}\" is not an app; clock skew applies to apps ({})",
                    listing(posture)
                ),
            );
            return None;
        }
        if let Some(posture) = posture
            && !nodes(posture).contains(&node)
        {
            self.report(
                n.span(),
                p("node"),
                format!(
                    "node \"{node}\" does not exist in {posture}; clock skew applies to apps \
                     ({})",
                    listing(Some(posture))
                ),
            );
            return None;
        }
        Some(node)
    }

    /// `offset` of a clock skew: a signed duration, whole milliseconds, non-zero, within
    /// ±[`MAX_SKEW`].
    fn offset(
        &mut self,
        f: &FaultEntry,
        header: &Range<usize>,
        p: &impl Fn(&str) -> String,
    ) -> Option<i64> {
        let field = p("offset");
        let Some(o) = &f.offset else {
            self.report(
                header.clone(),
                field,
                "required: how far the app's clock is shifted, e.g. \"-500ms\" (behind) or \
                 \"+1.5s\" (ahead)",
            );
            return None;
        };
        let raw = o.get_ref().0.as_str();
        let text = raw.trim();
        let (negative, magnitude) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let example = r#"write e.g. "-500ms", "+1.5s" or "250ms""#;
        let d = match humantime::parse_duration(magnitude.trim()) {
            Ok(d) => d,
            Err(e) => {
                self.report(
                    o.span(),
                    field,
                    format!("invalid offset \"{raw}\" ({e}); {example}"),
                );
                return None;
            }
        };
        if d.is_zero() {
            self.report(
                o.span(),
                field,
                "must not be 0 (that is no skew); e.g. \"-500ms\" (behind) or \"+1.5s\" (ahead)",
            );
            return None;
        }
        if d > MAX_SKEW {
            self.report(
                o.span(),
                field,
                format!(
                    "{}{} is more than {} away; a clock skew is at most {} either way",
                    if negative { "-" } else { "+" },
                    show(d),
                    show(MAX_SKEW),
                    show(MAX_SKEW)
                ),
            );
            return None;
        }
        if d.subsec_nanos() % 1_000_000 != 0 {
            self.report(
                o.span(),
                field,
                format!("\"{raw}\" is not a whole number of milliseconds"),
            );
            return None;
        }
        let ms = d.as_millis() as i64;
        Some(if negative { -ms } else { ms })
    }

    fn region(
        &mut self,
        f: &FaultEntry,
        header: &Range<usize>,
        p: &impl Fn(&str) -> String,
        posture: Option<Posture>,
    ) -> Option<String> {
        let Some(r) = &f.region else {
            self.report(
                header.clone(),
                p("region"),
                "required: a region such as \"us\"",
            );
            return None;
        };
        let region = r.get_ref().trim();
        if !REGIONS.contains(&region) {
            self.report(
                r.span(),
                p("region"),
                format!(
                    "unknown region \"{region}\"; regions: {}",
                    REGIONS.join(", ")
                ),
            );
            return None;
        }
        if let Some(posture) = posture
            && !nodes(posture).iter().any(|n| n.region == region)
        {
            let with_nodes = regions(posture).join(", ");
            self.report(
                r.span(),
                p("region"),
                format!("region \"{region}\" has no nodes in {posture}; regions with nodes: {with_nodes}"),
            );
            return None;
        }
        Some(region.to_string())
    }
}

/// The fault kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Latency,
    Partition,
    KillNode,
    KillRegion,
    PauseNode,
    ClockSkew,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "latency" => Kind::Latency,
            "partition" => Kind::Partition,
            "kill_node" => Kind::KillNode,
            "kill_region" => Kind::KillRegion,
            "pause_node" => Kind::PauseNode,
            "clock_skew" => Kind::ClockSkew,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Latency => "latency",
            Kind::Partition => "partition",
            Kind::KillNode => "kill_node",
            Kind::KillRegion => "kill_region",
            Kind::PauseNode => "pause_node",
            Kind::ClockSkew => "clock_skew",
        }
    }

    /// Keys this kind takes besides [`COMMON_FAULT_KEYS`].
    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Latency => &["links", "between", "rtt", "jitter"],
            Kind::Partition => &["links", "between", "mode", "direction"],
            Kind::KillNode => &["node"],
            Kind::KillRegion => &["region"],
            Kind::PauseNode => &["node"],
            Kind::ClockSkew => &["node", "offset"],
        }
    }
}

/// Every node the posture runs: all roles in `us`, and in `eu` too when there is a standby.
pub(crate) fn nodes(posture: Posture) -> Vec<NodeId> {
    regions(posture)
        .into_iter()
        .flat_map(|r| Role::ALL.map(|role| NodeId::new(r, role)))
        .collect()
}

/// Regions that have nodes in the posture.
fn regions(posture: Posture) -> Vec<&'static str> {
    REGIONS
        .into_iter()
        .filter(|r| *r == PRIMARY_REGION || posture.has_standby())
        .collect()
}

/// Why `link` carries nothing in `posture`, or None when it exists there. A link exists when
/// the posture uses it at all (`replication-to-us`: only active-active, see [`used_by`]) and
/// both its ends exist: the node it reaches, and whatever connects (the replica for
/// `replication`, the failover controller for `*-monitor-*`, the app for `*-app-to-*`; users
/// live in both regions whatever the posture).
fn absent(posture: Posture, link: &LinkSpec) -> Option<String> {
    if !used_by(link, posture.is_active_active()) {
        return Some(
            "it exists only in the active-active postures, where both regions run a primary".into(),
        );
    }
    let nodes = nodes(posture);
    if !nodes.contains(&link.target) {
        return Some(format!("there is no {}", link.target));
    }
    let is = |purpose| link.name == link_name(&link.from, purpose, &link.to);
    if is(LinkPurpose::Replication) && !posture.has_standby() {
        return Some("there is no replica".into());
    }
    if is(LinkPurpose::MonitorToDb) && !posture.has_standby() {
        return Some("there is no failover controller".into());
    }
    let app = NodeId::new(&link.from, Role::App);
    if (is(LinkPurpose::AppToDb) || is(LinkPurpose::AppToCache)) && !nodes.contains(&app) {
        return Some(format!("there is no {app}"));
    }
    None
}

fn link_names(posture: Posture) -> String {
    links()
        .iter()
        .filter(|l| absent(posture, l).is_none())
        .map(|l| l.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn node_names(posture: Posture) -> String {
    nodes(posture)
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `link` runs between regions `a` and `b` (either way).
fn joins(link: &LinkSpec, a: &str, b: &str) -> bool {
    joins_regions(&link.from, &link.to, a, b)
}

fn joins_regions(x: &str, y: &str, a: &str, b: &str) -> bool {
    (x == a && y == b) || (x == b && y == a)
}

/// A duration as people write it: "5s", "1.5s", "80ms".
fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
