//! An experiment document → [`Experiment`]: defaults filled in, durations parsed, names
//! checked against the posture's topology, fault times checked against the workload's
//! duration; each fault's own keys checked by its kind's file (`crate::fault`).
//!
//! The document is a parsed file, or a matrix cell assembled from the matrix's pieces: its
//! spans are wherever its values were written. Wrong types and unknown keys come first (the
//! whole document read as an [`ExperimentSpec`], then each fault's keys as its kind's spec);
//! then every other problem, collected with the span it concerns (see [`super::check`]): the
//! first in file order is reported.

use super::model::*;
use super::spec::*;
use crate::fault;
use crate::fields::{Checker, DurationText, FaultCheck, Invalid, Shape, show};
use crate::posture::Posture;
use crate::stack::topology::{self, MAX_REGIONS, PRIMARY_REGION, REGIONS, WITNESS_REGION};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

const CACHE_MODES: &str = "ttl, invalidate, write-through";

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

/// Validates the experiment document `doc`, read from `path`. On failure, the first problem
/// in file order; a missing top-level key is placed at the document's span.
pub(crate) fn validate(doc: Spanned<DeTable<'_>>, path: &Path) -> Result<Experiment, Invalid> {
    let root = doc.span();
    let table = doc.into_inner();
    let faults: Vec<Spanned<DeValue<'_>>> = match table.get("faults").map(Spanned::get_ref) {
        Some(DeValue::Array(a)) => a.iter().cloned().collect(),
        _ => Vec::new(),
    };
    let whole = Spanned::new(root.clone(), DeValue::Table(table));
    let spec =
        ExperimentSpec::deserialize(ValueDeserializer::from(whole)).map_err(Invalid::Type)?;
    let mut v = Validation {
        c: Checker::default(),
        root,
        faults,
        shape: Shape {
            regions: topology::default_regions(),
            witness: false,
        },
    };
    let experiment = v.experiment(&spec, path);
    v.c.finish(experiment)
}

struct Validation<'i> {
    c: Checker,
    /// The document's span: where a missing top-level key is reported.
    root: Range<usize>,
    /// The `[[faults]]` tables, as written, for their kinds' files.
    faults: Vec<Spanned<DeValue<'i>>>,
    /// The experiment's regions (the default pair until `regions` is read) and whether the
    /// witness watches, which fault names are checked against.
    shape: Shape,
}

impl Validation<'_> {
    fn experiment(&mut self, spec: &ExperimentSpec, path: &Path) -> Option<Experiment> {
        let name = self.name(spec, path);
        let posture = self.posture(spec);
        let seed = spec.seed.unwrap_or(1);
        let duration = match &spec.duration {
            None => {
                self.c.report(
                    self.root.clone(),
                    "duration",
                    "required: how long the workload runs, e.g. \"20s\"",
                );
                None
            }
            Some(d) => self
                .c
                .duration_or("duration", Some(d), Duration::ZERO, true)
                .and_then(|x| {
                    if x <= MAX_CLOCK {
                        return Some(x);
                    }
                    self.c.report(
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
        let settle = self.c.duration_or(
            "settle",
            spec.settle.as_ref(),
            Duration::from_secs(3),
            false,
        );
        let regions = self.regions(spec);
        if let Some(r) = &regions {
            self.shape.regions = r.clone();
        }
        let failover_spec = spec.failover.as_ref().cloned().unwrap_or_default();
        let watch_from = self.watch_from(&failover_spec, posture);
        if let Some(w) = &watch_from {
            self.shape.witness = w.iter().any(|r| r == WITNESS_REGION);
        }
        let network = self.network(spec.network.as_ref().cloned().unwrap_or_default());
        let workload = self.workload(spec.workload.as_ref().cloned().unwrap_or_default(), posture);
        let cache = self.cache(&spec.cache.as_ref().cloned().unwrap_or_default(), posture);
        let failover = self
            .failover(&failover_spec, posture, network.as_ref().map(|n| n.rtt))
            .zip(watch_from)
            .map(|(f, watch_from)| Failover { watch_from, ..f });
        if let Some(r) = &spec.regions {
            self.beyond_two_regions(spec, r);
        }
        let mut faults = Vec::new();
        for (i, entry) in spec.faults.iter().enumerate() {
            faults.push(self.fault(i, entry, posture, duration));
        }
        let mut operations = Vec::new();
        for (i, entry) in spec.operations.iter().enumerate() {
            operations.push(crate::operation::validate(
                &mut self.c,
                i,
                entry,
                posture,
                duration,
            ));
        }
        let slo = self.slo(&spec.slo.as_ref().cloned().unwrap_or_default());
        let residency = self.residency(spec, posture, duration, workload.as_ref());
        self.planned_ops(spec, duration, workload.as_ref());
        self.network_rtt(spec, network.as_ref(), workload.as_ref(), duration);

        let mut faults: Vec<ScheduledFault> = faults.into_iter().collect::<Option<_>>()?;
        faults.sort_by_key(|f| f.at);
        let mut operations: Vec<_> = operations.into_iter().collect::<Option<_>>()?;
        operations.sort_by_key(|o: &crate::operation::ScheduledOperation| o.at);
        Some(Experiment {
            name: name?,
            description: spec.description.clone().unwrap_or_default(),
            source: path.to_path_buf(),
            posture: posture?,
            seed,
            duration: duration?,
            settle: settle?,
            regions: regions?,
            network: network?,
            workload: workload?,
            cache: cache?,
            failover: failover?,
            faults,
            operations,
            slo: slo?,
            residency: residency?,
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
        self.c.report(
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
            self.c.report(
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
            self.c.report(
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
            self.c.report(
                self.root.clone(),
                "posture",
                format!("required: one of {valid}"),
            );
            return None;
        };
        let posture = Posture::parse(name.get_ref().trim());
        if posture.is_none() {
            self.c.report(
                name.span(),
                "posture",
                format!("unknown posture \"{}\"; one of {valid}", name.get_ref()),
            );
        }
        posture
    }

    fn network(&mut self, n: NetworkSpec) -> Option<Network> {
        let rtt = self
            .c
            .duration_or("network.rtt", n.rtt.as_ref(), Duration::ZERO, false);
        let pairs = self.pairs(n.pairs.as_ref());
        // The smallest round trip any link gets: a listed pair's, else `rtt`.
        let smallest = rtt.zip(pairs.as_ref()).map(|(rtt, pairs)| {
            self.every_pair()
                .iter()
                .map(|p| pairs.get(p).map_or(rtt, |r| r.0))
                .min()
                .unwrap_or(rtt)
        });
        let of = if n.pairs.is_some() {
            "smallest round trip"
        } else {
            "rtt"
        };
        let jitter = self
            .c
            .jitter("network.jitter", n.jitter.as_ref(), smallest, of);
        let pair_jitter = self.pair_jitter(n.pair_jitter.as_ref(), rtt, pairs.as_ref());
        Some(Network {
            rtt: rtt?,
            jitter: jitter?,
            pairs: pairs?,
            pair_jitter: pair_jitter?,
        })
    }

    /// Every pair of regions `"a-b"` in region order, the witness's last when it watches.
    fn every_pair(&self) -> Vec<String> {
        let r = &self.shape.regions;
        let mut v = Vec::new();
        for (i, a) in r.iter().enumerate() {
            for b in &r[i + 1..] {
                v.push(format!("{a}-{b}"));
            }
        }
        if self.shape.witness {
            v.extend(r.iter().map(|a| format!("{a}-{WITNESS_REGION}")));
        }
        v
    }

    /// `[network.pairs]`: each key a pair of the experiment's regions (either order, each
    /// pair once), each value a round trip.
    fn pairs(
        &mut self,
        pairs: Option<&Spanned<BTreeMap<String, Spanned<DurationText>>>>,
    ) -> Option<BTreeMap<String, RttText>> {
        self.pair_table("network.pairs", pairs, |c, _, field, value| {
            c.duration_or(field, Some(value), Duration::ZERO, true)
        })
    }

    /// `[network.pair_jitter]`: keyed as `[network.pairs]`, each value a jitter at most its
    /// pair's round trip (`pairs`' or `rtt`; not checked when those are invalid).
    fn pair_jitter(
        &mut self,
        table: Option<&Spanned<BTreeMap<String, Spanned<DurationText>>>>,
        rtt: Option<Duration>,
        pairs: Option<&BTreeMap<String, RttText>>,
    ) -> Option<BTreeMap<String, RttText>> {
        self.pair_table("network.pair_jitter", table, |c, pair, field, value| {
            let base = rtt
                .zip(pairs)
                .map(|(rtt, pairs)| pairs.get(pair).map_or(rtt, |r| r.0));
            c.jitter(field, Some(value), base, &format!("round trip of {pair}"))
        })
    }

    /// A table keyed by pairs of regions (`table_name.<key>`, either order, each pair once),
    /// each value checked by `check(checker, pair in region order, field, value)`, in the
    /// file's order. A key that is no pair of this experiment's regions, a pair given twice
    /// or a value refused is reported; then None.
    fn pair_table(
        &mut self,
        table_name: &str,
        table: Option<&Spanned<BTreeMap<String, Spanned<DurationText>>>>,
        mut check: impl FnMut(&mut Checker, &str, &str, &Spanned<DurationText>) -> Option<Duration>,
    ) -> Option<BTreeMap<String, RttText>> {
        let Some(table) = table else {
            return Some(BTreeMap::new());
        };
        let every = self.every_pair();
        let mut out = BTreeMap::new();
        let mut ok = true;
        let mut entries: Vec<_> = table.get_ref().iter().collect();
        entries.sort_by_key(|(_, v)| v.span().start);
        for (key, value) in entries {
            let field = format!("{table_name}.{key}");
            let canonical = key.split_once('-').and_then(|(a, b)| {
                let (ab, ba) = (format!("{a}-{b}"), format!("{b}-{a}"));
                every.iter().find(|p| **p == ab || **p == ba).cloned()
            });
            let Some(canonical) = canonical else {
                self.c.report(
                    value.span(),
                    &field,
                    format!(
                        "\"{key}\" is not a pair of this experiment's regions; pairs: {}",
                        every.join(", ")
                    ),
                );
                ok = false;
                continue;
            };
            if out.contains_key(&canonical) {
                self.c.report(
                    value.span(),
                    &field,
                    format!("the pair {canonical} is given twice"),
                );
                ok = false;
                continue;
            }
            match check(&mut self.c, &canonical, &field, value) {
                Some(d) => {
                    out.insert(canonical, RttText(d));
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `regions`: 2 to [`MAX_REGIONS`] distinct valid names (default `us`, `eu`).
    fn regions(&mut self, spec: &ExperimentSpec) -> Option<Vec<String>> {
        let Some(list) = &spec.regions else {
            return Some(topology::default_regions());
        };
        let names = list.get_ref();
        if !(2..=MAX_REGIONS).contains(&names.len()) {
            self.c.report(
                list.span(),
                "regions",
                format!(
                    "{} regions; name 2 to {MAX_REGIONS} (a single-region posture still has users \
                     in a second region)",
                    names.len()
                ),
            );
            return None;
        }
        let mut out: Vec<String> = Vec::new();
        let mut ok = true;
        for (i, n) in names.iter().enumerate() {
            let name = n.get_ref().trim();
            let field = format!("regions[{i}]");
            if !topology::valid_region_name(name) {
                self.c.report(
                    n.span(),
                    &field,
                    format!(
                        "\"{name}\" is not a usable region name: a lower-case letter, then \
                         lower-case letters or digits, at most 12 (it names nodes, links and \
                         tables); not \"{WITNESS_REGION}\""
                    ),
                );
                ok = false;
            } else if out.iter().any(|o| o == name) {
                self.c.report(
                    n.span(),
                    &field,
                    format!("region \"{name}\" is listed twice"),
                );
                ok = false;
            } else {
                out.push(name.to_string());
            }
        }
        ok.then_some(out)
    }

    /// Refuses what exists only between the default pair of regions when the experiment names
    /// its own: more than two regions, or two under other names.
    fn beyond_two_regions(
        &mut self,
        spec: &ExperimentSpec,
        regions: &Spanned<Vec<Spanned<String>>>,
    ) {
        let names: Vec<&str> = regions
            .get_ref()
            .iter()
            .map(|r| r.get_ref().trim())
            .collect();
        if names == topology::REGIONS {
            return;
        }
        let many = names.len() > 2;
        let what = if many {
            "more than two regions"
        } else {
            "regions other than us and eu"
        };
        let refuse = |c: &mut Checker, span: Range<usize>, field: &str, feature: String| {
            c.report(
                span,
                field,
                format!(
                    "{feature} runs between the default regions us and eu only, not with \
                     {what} (regions = [{}])",
                    names.join(", ")
                ),
            );
        };
        if let Some(f) = &spec.failover
            && let Some(m) = &f.manager
            && m.get_ref().trim() != "builtin"
        {
            refuse(
                &mut self.c,
                m.span(),
                "failover.manager",
                m.get_ref().trim().to_string(),
            );
        }
        if let Some(r) = &spec.residency {
            refuse(&mut self.c, r.span(), "residency", "[residency]".into());
        }
        if let Some(o) = spec.operations.first() {
            refuse(
                &mut self.c,
                o.span(),
                "operations[0]",
                "[[operations]]".into(),
            );
        }
        if many
            && let Some(c) = &spec.cache
            && let Some(m) = &c.mode
            && m.get_ref().trim() != "ttl"
        {
            refuse(
                &mut self.c,
                m.span(),
                "cache.mode",
                format!("cache mode \"{}\"", m.get_ref().trim()),
            );
        }
    }

    /// `failover.watch_from`: distinct regions other than the primary's, or the witness.
    fn watch_from(&mut self, f: &FailoverSpec, posture: Option<Posture>) -> Option<Vec<String>> {
        let Some(list) = &f.watch_from else {
            return Some(Vec::new());
        };
        if let Some(posture) = posture
            && (!posture.has_standby() || posture.is_active_active())
        {
            self.c.report(
                list.span(),
                "failover.watch_from",
                format!(
                    "{posture} has no primary for the built-in controller to watch from elsewhere"
                ),
            );
            return None;
        }
        if f.manager
            .as_ref()
            .is_some_and(|m| m.get_ref().trim() != "builtin")
        {
            self.c.report(
                list.span(),
                "failover.watch_from",
                "only the built-in controller has vantage points (a real manager watches as it \
                 is deployed)",
            );
            return None;
        }
        if list.get_ref().is_empty() {
            self.c.report(
                list.span(),
                "failover.watch_from",
                "empty: name at least one",
            );
            return None;
        }
        let primary = self.shape.regions[0].clone();
        let mut out: Vec<String> = Vec::new();
        let mut ok = true;
        for (i, r) in list.get_ref().iter().enumerate() {
            let name = r.get_ref().trim();
            let field = format!("failover.watch_from[{i}]");
            let known = name == WITNESS_REGION || self.shape.regions.iter().any(|x| x == name);
            let problem = if !known {
                Some(format!(
                    "unknown region \"{name}\"; one of {}, {WITNESS_REGION}",
                    self.shape.regions[1..].join(", ")
                ))
            } else if name == primary {
                Some(format!(
                    "{name} holds the primary: a vantage point watches it from elsewhere"
                ))
            } else if out.iter().any(|o| o == name) {
                Some(format!("\"{name}\" is listed twice"))
            } else {
                None
            };
            match problem {
                Some(p) => {
                    self.c.report(r.span(), &field, p);
                    ok = false;
                }
                None => out.push(name.to_string()),
            }
        }
        ok.then_some(out)
    }

    fn workload(&mut self, w: WorkloadSpec, posture: Option<Posture>) -> Option<Workload> {
        let mut users = self.c.at_least_one("workload.users", w.users.as_ref(), 40);
        if let (Some(n), Some(text)) = (users, &w.users)
            && n > MAX_USERS
        {
            self.c.report(
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
                    self.c
                        .report(r.span(), "workload.rate_per_s", "must be more than 0");
                    None
                }
            }
        };
        let read_fraction =
            self.c
                .fraction_or("workload.read_fraction", w.read_fraction.as_ref(), 0.5);
        let keys = self.c.at_least_one("workload.keys", w.keys.as_ref(), 50);
        let us_fraction = self
            .c
            .fraction_or("workload.us_fraction", w.us_fraction.as_ref(), 0.5);
        let op_timeout = self.c.duration_or(
            "workload.op_timeout",
            w.op_timeout.as_ref(),
            Duration::from_secs(2),
            true,
        );
        let mut travel_fraction =
            self.c
                .fraction_or("workload.travel_fraction", w.travel_fraction.as_ref(), 0.0);
        if let (Some(t), Some(x), Some(posture)) = (&w.travel_fraction, travel_fraction, posture)
            && x > 0.0
            && !posture.has_standby()
        {
            self.c.report(
                t.span(),
                "workload.travel_fraction",
                format!(
                    "travellers call the other region's app, and {posture} has only \
                     {PRIMARY_REGION}-app; use 0 or leave travel_fraction out"
                ),
            );
            travel_fraction = None;
        }
        let homes = self.homes(&w, us_fraction);
        let incr_fraction =
            self.c
                .fraction_or("workload.incr_fraction", w.incr_fraction.as_ref(), 0.0);
        let counters = self
            .c
            .at_least_one("workload.counters", w.counters.as_ref(), 1);
        Some(Workload {
            users: users?,
            rate_per_s: rate_per_s?,
            read_fraction: read_fraction?,
            keys: keys?,
            us_fraction: us_fraction?,
            homes: homes?,
            op_timeout: op_timeout?,
            travel_fraction: travel_fraction?,
            incr_fraction: incr_fraction?,
            counters: counters?,
        })
    }

    /// `workload.homes`: a share for every region, summing to 1 (not with `us_fraction`).
    /// Absent: with the default regions nothing (the plan splits by `us_fraction`); with two
    /// named regions `us_fraction` and the rest; with more, equal shares.
    fn homes(&mut self, w: &WorkloadSpec, us_fraction: Option<f64>) -> Option<Vec<(String, f64)>> {
        let regions = self.shape.regions.clone();
        let Some(homes) = &w.homes else {
            if let (Some(u), true) = (&w.us_fraction, regions.len() > 2) {
                self.c.report(
                    u.span(),
                    "workload.us_fraction",
                    format!(
                        "us_fraction splits users between two regions; with {} write homes = \
                         {{ {} = …, … }}",
                        regions.join(", "),
                        regions[0]
                    ),
                );
                return None;
            }
            return Some(if regions == REGIONS {
                Vec::new()
            } else if regions.len() == 2 {
                let f = us_fraction.unwrap_or(0.5);
                vec![(regions[0].clone(), f), (regions[1].clone(), 1.0 - f)]
            } else {
                let share = 1.0 / regions.len() as f64;
                regions.iter().map(|r| (r.clone(), share)).collect()
            });
        };
        if let Some(u) = &w.us_fraction {
            self.c.report(
                u.span(),
                "workload.us_fraction",
                "give either us_fraction or homes, not both",
            );
            return None;
        }
        let mut ok = true;
        let mut entries: Vec<_> = homes.get_ref().iter().collect();
        entries.sort_by_key(|(_, v)| v.span().start);
        for (region, share) in &entries {
            let field = format!("workload.homes.{region}");
            if !regions.contains(region) {
                self.c.report(
                    share.span(),
                    &field,
                    format!(
                        "unknown region \"{region}\"; regions: {}",
                        regions.join(", ")
                    ),
                );
                ok = false;
            } else if self.c.fraction_or(&field, Some(share), 0.0).is_none() {
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        let missing: Vec<&str> = regions
            .iter()
            .filter(|r| !homes.get_ref().contains_key(*r))
            .map(String::as_str)
            .collect();
        let sum: f64 = homes.get_ref().values().map(|v| *v.get_ref()).sum();
        if !missing.is_empty() || (sum - 1.0).abs() > 1e-6 {
            let why = if missing.is_empty() {
                format!("the shares add up to {sum}, not 1")
            } else {
                format!(
                    "no share for {} (write 0 for a region without users)",
                    missing.join(", ")
                )
            };
            self.c.report(homes.span(), "workload.homes", why);
            return None;
        }
        Some(
            regions
                .iter()
                .map(|r| (r.clone(), *homes.get_ref()[r].get_ref()))
                .collect(),
        )
    }

    fn cache(&mut self, c: &CacheSpec, posture: Option<Posture>) -> Option<Cache> {
        let ttl = self
            .c
            .duration_or("cache.ttl", c.ttl.as_ref(), Duration::from_secs(1), false);
        let mode = match &c.mode {
            None => Some(CacheMode::Ttl),
            Some(m) => match m.get_ref().trim() {
                "ttl" => Some(CacheMode::Ttl),
                name @ ("invalidate" | "write-through") => {
                    if let Some(posture) = posture
                        && !posture.has_standby()
                    {
                        self.c.report(
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
                    self.c.report(
                        m.span(),
                        "cache.mode",
                        format!("unknown cache mode \"{other}\"; one of {CACHE_MODES}"),
                    );
                    None
                }
            },
        };
        let ttl_jitter = self
            .c
            .jitter("cache.ttl_jitter", c.ttl_jitter.as_ref(), ttl, "ttl");
        Some(Cache {
            ttl: ttl?,
            mode: mode?,
            ttl_jitter: ttl_jitter?,
            single_flight: c.single_flight.unwrap_or(false),
        })
    }

    fn failover(
        &mut self,
        f: &FailoverSpec,
        posture: Option<Posture>,
        rtt: Option<Duration>,
    ) -> Option<Failover> {
        let standby = posture.map(Posture::has_standby);
        let mode = match &f.mode {
            // Nothing to fail over to in a single region: manual is the only honest default.
            None if standby == Some(false) => Some(FailoverMode::Manual),
            None => Some(FailoverMode::Auto),
            Some(m) => match m.get_ref().trim() {
                "auto" if standby == Some(false) => {
                    self.c.report(
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
                    self.c.report(
                        m.span(),
                        "failover.mode",
                        format!("unknown failover mode \"{other}\"; one of auto, manual"),
                    );
                    None
                }
            },
        };
        let interval = self.c.duration_or(
            "failover.interval",
            f.interval.as_ref(),
            Duration::from_millis(500),
            true,
        );
        let threshold = self
            .c
            .at_least_one("failover.threshold", f.threshold.as_ref(), 3);
        let dns_ttl = self.c.duration_or(
            "failover.dns_ttl",
            f.dns_ttl.as_ref(),
            Duration::from_secs(1),
            false,
        );
        let fencing = match &f.fencing {
            None => Some(false),
            Some(fencing) => match posture {
                Some(posture) if *fencing.get_ref() && posture.is_active_active() => {
                    self.c.report(
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
        let manager = self.manager(f, posture, rtt);
        Some(Failover {
            mode: mode?,
            interval: interval?,
            threshold: threshold?,
            dns_ttl: dns_ttl?,
            fencing: fencing?,
            wal_log_hints: f.wal_log_hints.unwrap_or(true),
            manager: manager?,
            watch_from: Vec::new(),
        })
    }

    /// `failover.manager` and, for Patroni, `[failover.patroni]`: Patroni's rules (ttl ≥ 20,
    /// `loop_wait + 2 × retry_timeout ≤ ttl`, strict only with synchronous mode) checked here,
    /// so a file Patroni would refuse or silently adjust is refused with its line.
    fn manager(
        &mut self,
        f: &FailoverSpec,
        posture: Option<Posture>,
        rtt: Option<Duration>,
    ) -> Option<Manager> {
        let name = f.manager.as_ref().map(|m| (m.span(), m.get_ref().trim()));
        match name {
            None | Some((_, "builtin")) => {
                if let Some(p) = &f.patroni {
                    self.c.report(
                        p.span(),
                        "failover.patroni",
                        "Patroni's settings need manager = \"patroni\" in [failover]",
                    );
                    return None;
                }
                if let Some(p) = &f.pg_auto_failover {
                    self.c.report(
                        p.span(),
                        "failover.pg_auto_failover",
                        "pg_auto_failover's settings need manager = \"pg_auto_failover\" in \
                         [failover]",
                    );
                    return None;
                }
                Some(Manager::Builtin)
            }
            Some((span, "pg_auto_failover")) => {
                // The monitor owns the commit mode (replication_quorum, number_sync_standbys)
                // and promotes by itself.
                if let Some(p) = posture
                    && p != Posture::ActivePassiveAsync
                {
                    self.c.report(
                        span.clone(),
                        "failover.manager",
                        format!(
                            "pg_auto_failover runs here with posture = \"active-passive-async\" \
                             (not {p}); its commit mode comes from replication_quorum and \
                             number_sync_standbys in [failover.pg_auto_failover]"
                        ),
                    );
                }
                self.not_the_builtins(
                    f,
                    "pg_auto_failover's are in [failover.pg_auto_failover] \
                     (health_check_period, node_considered_unhealthy_timeout, …)",
                );
                if let Some(p) = &f.patroni {
                    self.c.report(
                        p.span(),
                        "failover.patroni",
                        "Patroni's settings need manager = \"patroni\" in [failover]",
                    );
                }
                let spec = f
                    .pg_auto_failover
                    .as_ref()
                    .map(|p| p.get_ref().clone())
                    .unwrap_or_default();
                self.pg_auto_failover(&spec, rtt)
                    .map(Manager::PgAutoFailover)
            }
            Some((span, "patroni")) => {
                // Patroni owns the commit mode (synchronous_mode) and promotes by itself.
                if let Some(p) = posture
                    && p != Posture::ActivePassiveAsync
                {
                    self.c.report(
                        span.clone(),
                        "failover.manager",
                        format!(
                            "Patroni runs here with posture = \"active-passive-async\" (not \
                             {p}); ask for synchronous replication with synchronous_mode in \
                             [failover.patroni]"
                        ),
                    );
                }
                self.not_the_builtins(
                    f,
                    "Patroni's are in [failover.patroni] (ttl, loop_wait, retry_timeout, …)",
                );
                if let Some(p) = &f.pg_auto_failover {
                    self.c.report(
                        p.span(),
                        "failover.pg_auto_failover",
                        "pg_auto_failover's settings need manager = \"pg_auto_failover\" in \
                         [failover]",
                    );
                }
                let spec = f
                    .patroni
                    .as_ref()
                    .map(|p| p.get_ref().clone())
                    .unwrap_or_default();
                self.patroni(&spec, rtt).map(Manager::Patroni)
            }
            Some((span, other)) => {
                self.c.report(
                    span,
                    "failover.manager",
                    format!(
                        "unknown failover manager \"{other}\"; one of builtin, patroni, \
                         pg_auto_failover"
                    ),
                );
                None
            }
        }
    }

    /// Refuses the builtin controller's settings under a real manager (`theirs`: where that
    /// manager's own are).
    fn not_the_builtins(&mut self, f: &FailoverSpec, theirs: &str) {
        for (key, set) in [
            ("failover.mode", f.mode.as_ref().map(|v| v.span())),
            ("failover.interval", f.interval.as_ref().map(|v| v.span())),
            ("failover.threshold", f.threshold.as_ref().map(|v| v.span())),
            ("failover.fencing", f.fencing.as_ref().map(|v| v.span())),
        ] {
            if let Some(at) = set {
                self.c.report(
                    at,
                    key,
                    format!("a setting of the builtin controller; {theirs}"),
                );
            }
        }
    }

    /// `[failover.pg_auto_failover]`: each setting within its GUC's own bounds (as the
    /// installed extension's `pg_settings` gives them), `number_sync_standbys` as the monitor
    /// accepts it with one standby, and the monitor's place.
    fn pg_auto_failover(
        &mut self,
        p: &PgAutoFailoverSpec,
        rtt: Option<Duration>,
    ) -> Option<PgAutoFailover> {
        let within = |c: &mut Checker,
                      key: &str,
                      v: Option<&Spanned<i64>>,
                      (min, max): (i64, i64),
                      unit: &str,
                      default: i64| match v {
            None => Some(default),
            Some(x) if (min..=max).contains(x.get_ref()) => Some(*x.get_ref()),
            Some(x) => {
                c.report(
                    x.span(),
                    format!("failover.pg_auto_failover.{key}"),
                    format!(
                        "{} is outside pg_auto_failover's range for {key}: {min} to {max}{unit}",
                        x.get_ref()
                    ),
                );
                None
            }
        };
        const INT: (i64, i64) = (1, i32::MAX as i64);
        let ms = |c: &mut Checker, key: &str, v: Option<&Spanned<i64>>, default: i64| {
            within(c, key, v, INT, " ms", default).map(|v| v as u32)
        };
        let period = ms(
            &mut self.c,
            "health_check_period",
            p.health_check_period.as_ref(),
            5000,
        );
        let timeout = ms(
            &mut self.c,
            "health_check_timeout",
            p.health_check_timeout.as_ref(),
            5000,
        );
        let retries = within(
            &mut self.c,
            "health_check_max_retries",
            p.health_check_max_retries.as_ref(),
            (1, 100),
            "",
            2,
        );
        let delay = ms(
            &mut self.c,
            "health_check_retry_delay",
            p.health_check_retry_delay.as_ref(),
            2000,
        );
        let unhealthy = ms(
            &mut self.c,
            "node_considered_unhealthy_timeout",
            p.node_considered_unhealthy_timeout.as_ref(),
            20_000,
        );
        let demote = ms(
            &mut self.c,
            "primary_demote_timeout",
            p.primary_demote_timeout.as_ref(),
            30_000,
        );
        let threshold = within(
            &mut self.c,
            "promote_wal_log_threshold",
            p.promote_wal_log_threshold.as_ref(),
            INT,
            " bytes",
            16_777_216,
        );
        let grace = ms(
            &mut self.c,
            "startup_grace_period",
            p.startup_grace_period.as_ref(),
            10_000,
        );
        let sync = match &p.number_sync_standbys {
            None => Some(0),
            Some(n) if *n.get_ref() == 0 => Some(0),
            Some(n) => {
                self.c.report(
                    n.span(),
                    "failover.pg_auto_failover.number_sync_standbys",
                    format!(
                        "{} needs at least {} standbys in the replication quorum and this \
                         stack has one (the monitor refuses it); 0 is the only value here",
                        n.get_ref(),
                        n.get_ref().saturating_add(1)
                    ),
                );
                None
            }
        };
        let priority = within(
            &mut self.c,
            "candidate_priority",
            p.candidate_priority.as_ref(),
            (0, 100),
            "",
            50,
        );
        let region = self.placement(
            "failover.pg_auto_failover.monitor",
            "the monitor",
            p.monitor.as_ref(),
        );
        let witness_rtt = self.c.duration_or(
            "failover.pg_auto_failover.witness_rtt",
            p.witness_rtt.as_ref(),
            rtt.unwrap_or_default(),
            false,
        );
        Some(PgAutoFailover {
            health_check_period: period?,
            health_check_timeout: timeout?,
            health_check_max_retries: retries? as u32,
            health_check_retry_delay: delay?,
            node_considered_unhealthy_timeout: unhealthy?,
            primary_demote_timeout: demote?,
            promote_wal_log_threshold: threshold? as u64,
            startup_grace_period: grace?,
            number_sync_standbys: sync?,
            replication_quorum: p.replication_quorum.as_ref().is_none_or(|q| *q.get_ref()),
            candidate_priority: priority? as u32,
            monitor: Placement {
                region: region?,
                witness_rtt: witness_rtt?,
            },
        })
    }

    /// Where a manager's own state runs (`what`, at `key`): the witness by default.
    fn placement(&mut self, key: &str, what: &str, v: Option<&Spanned<String>>) -> Option<String> {
        match v {
            None => Some(WITNESS_REGION.to_string()),
            Some(d) => {
                let r = d.get_ref().trim();
                if r == WITNESS_REGION || REGIONS.contains(&r) {
                    Some(r.to_string())
                } else {
                    self.c.report(
                        d.span(),
                        key,
                        format!(
                            "unknown place \"{r}\" for {what}; one of {WITNESS_REGION}, {}",
                            REGIONS.join(", ")
                        ),
                    );
                    None
                }
            }
        }
    }

    fn patroni(&mut self, p: &PatroniSpec, rtt: Option<Duration>) -> Option<Patroni> {
        let at_least = |c: &mut Checker,
                        key: &str,
                        v: Option<&Spanned<u32>>,
                        min: u32,
                        default: u32| {
            match v {
                None => Some(default),
                Some(x) if *x.get_ref() >= min => Some(*x.get_ref()),
                Some(x) => {
                    c.report(
                        x.span(),
                        format!("failover.patroni.{key}"),
                        format!("{} is below Patroni's minimum {key} of {min}", x.get_ref()),
                    );
                    None
                }
            }
        };
        let ttl = at_least(&mut self.c, "ttl", p.ttl.as_ref(), 20, 30);
        let loop_wait = at_least(&mut self.c, "loop_wait", p.loop_wait.as_ref(), 1, 10);
        let retry_timeout = at_least(
            &mut self.c,
            "retry_timeout",
            p.retry_timeout.as_ref(),
            3,
            10,
        );
        // In u64: a fuzzed file once overflowed u32 here.
        if let (Some(t), Some(l), Some(r)) = (ttl, loop_wait, retry_timeout)
            && u64::from(l) + 2 * u64::from(r) > u64::from(t)
        {
            let span = [
                p.retry_timeout.as_ref(),
                p.loop_wait.as_ref(),
                p.ttl.as_ref(),
            ]
            .into_iter()
            .flatten()
            .map(|v| v.span())
            .next()
            .unwrap_or(self.root.clone());
            self.c.report(
                span,
                "failover.patroni.retry_timeout",
                format!(
                    "loop_wait + 2 × retry_timeout = {} s exceeds ttl = {t} s: Patroni would \
                     change these behind your back; lower them or raise ttl",
                    u64::from(l) + 2 * u64::from(r)
                ),
            );
        }
        let flag = |v: &Option<Spanned<bool>>| v.as_ref().is_some_and(|b| *b.get_ref());
        let synchronous_mode = flag(&p.synchronous_mode);
        if let Some(strict) = &p.synchronous_mode_strict
            && *strict.get_ref()
            && !synchronous_mode
        {
            self.c.report(
                strict.span(),
                "failover.patroni.synchronous_mode_strict",
                "only means something with synchronous_mode = true",
            );
        }
        let region = self.placement("failover.patroni.dcs", "etcd", p.dcs.as_ref());
        let witness_rtt = self.c.duration_or(
            "failover.patroni.witness_rtt",
            p.witness_rtt.as_ref(),
            rtt.unwrap_or_default(),
            false,
        );
        let inter = self.c.duration_or(
            "failover.patroni.haproxy_inter",
            p.haproxy_inter.as_ref(),
            Duration::from_secs(3),
            true,
        );
        let fall = self
            .c
            .at_least_one("failover.patroni.haproxy_fall", p.haproxy_fall.as_ref(), 3);
        let rise = self
            .c
            .at_least_one("failover.patroni.haproxy_rise", p.haproxy_rise.as_ref(), 2);
        Some(Patroni {
            ttl: ttl?,
            loop_wait: loop_wait?,
            retry_timeout: retry_timeout?,
            maximum_lag_on_failover: p
                .maximum_lag_on_failover
                .as_ref()
                .map_or(1_048_576, |v| *v.get_ref()),
            synchronous_mode,
            synchronous_mode_strict: flag(&p.synchronous_mode_strict),
            use_pg_rewind: flag(&p.use_pg_rewind),
            failsafe_mode: flag(&p.failsafe_mode),
            dcs: Placement {
                region: region?,
                witness_rtt: witness_rtt?,
            },
            haproxy: HaproxyChecks {
                inter: inter?,
                fall: fall?,
                rise: rise?,
            },
        })
    }

    fn slo(&mut self, s: &SloSpec) -> Option<Slo> {
        let rto = self.c.optional_duration("slo.rto", s.rto.as_ref());
        let rpo = self.c.optional_duration("slo.rpo", s.rpo.as_ref());
        let erasure_within = self
            .c
            .optional_duration("slo.erasure_within", s.erasure_within.as_ref());
        let max_stale_read_rate = match &s.max_stale_read_rate {
            None => Some(None),
            Some(v) => self
                .c
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
            max_residency_violations: s.max_residency_violations.as_ref().map(|v| *v.get_ref()),
            erasure_within: erasure_within?,
        })
    }

    /// `[residency]`, and the SLOs that need it.
    fn residency(
        &mut self,
        spec: &ExperimentSpec,
        posture: Option<Posture>,
        duration: Option<Duration>,
        workload: Option<&Workload>,
    ) -> Option<Option<Residency>> {
        let Some(section) = &spec.residency else {
            let slo = spec.slo.as_ref();
            for (key, span) in [
                (
                    "slo.max_residency_violations",
                    slo.and_then(|s| s.max_residency_violations.as_ref().map(|v| v.span())),
                ),
                (
                    "slo.erasure_within",
                    slo.and_then(|s| s.erasure_within.as_ref().map(|v| v.span())),
                ),
            ] {
                if let Some(span) = span {
                    self.c.report(
                        span,
                        key,
                        "needs a [residency] section: without personal data in the workload \
                         there is nothing to judge",
                    );
                }
            }
            return Some(None);
        };
        let r = section.get_ref();
        let mut ok = true;
        let personal_tables = match &r.personal_tables {
            None => vec!["profiles".to_string()],
            Some(list) => {
                if list.get_ref().is_empty() {
                    self.c.report(
                        list.span(),
                        "residency.personal_tables",
                        format!(
                            "empty: name at least one of {}",
                            crate::residency::APP_TABLES.join(", ")
                        ),
                    );
                    ok = false;
                }
                let mut tables = Vec::new();
                for t in list.get_ref() {
                    let name = t.get_ref().trim();
                    if crate::residency::APP_TABLES.contains(&name) {
                        if !tables.iter().any(|x: &String| x == name) {
                            tables.push(name.to_string());
                        }
                    } else {
                        self.c.report(
                            t.span(),
                            "residency.personal_tables",
                            format!(
                                "\"{name}\" is not one of the app's tables: {} (without a \
                                 region suffix)",
                                crate::residency::APP_TABLES.join(", ")
                            ),
                        );
                        ok = false;
                    }
                }
                tables
            }
        };
        let mut allow: std::collections::BTreeMap<String, Vec<String>> = REGIONS
            .iter()
            .map(|r| (r.to_string(), vec![r.to_string()]))
            .collect();
        if let Some(table) = &r.allow {
            for (home, regions) in table.get_ref() {
                if !REGIONS.contains(&home.as_str()) {
                    self.c.report(
                        table.span(),
                        format!("residency.allow.{home}"),
                        format!(
                            "unknown home region \"{home}\"; one of {}",
                            REGIONS.join(", ")
                        ),
                    );
                    ok = false;
                    continue;
                }
                let mut list = Vec::new();
                for region in regions.get_ref() {
                    let name = region.get_ref().trim();
                    if REGIONS.contains(&name) {
                        list.push(name.to_string());
                    } else {
                        self.c.report(
                            region.span(),
                            format!("residency.allow.{home}"),
                            format!("unknown region \"{name}\"; one of {}", REGIONS.join(", ")),
                        );
                        ok = false;
                    }
                }
                list.sort();
                list.dedup();
                allow.insert(home.clone(), list);
            }
        }
        let pinned = match &r.pinned {
            None => false,
            Some(p) => {
                let on = *p.get_ref();
                if on && posture.is_some_and(|p| p != Posture::ActiveActivePartitioned) {
                    self.c.report(
                        p.span(),
                        "residency.pinned",
                        format!(
                            "pinning leaves personal tables out of logical replication, which \
                             only active-active-partitioned has (not {}); set false or use \
                             posture = \"active-active-partitioned\"",
                            posture.map(|p| p.name()).unwrap_or_default()
                        ),
                    );
                    ok = false;
                }
                on
            }
        };
        let profile_reads_per_s = match &r.profile_reads_per_s {
            None => 20.0,
            Some(v) => {
                let x = *v.get_ref();
                if !(x.is_finite() && x >= 0.0) {
                    self.c.report(
                        v.span(),
                        "residency.profile_reads_per_s",
                        "must be 0 or more",
                    );
                    ok = false;
                }
                x
            }
        };
        let poll = self.c.duration_or(
            "residency.poll",
            r.poll.as_ref(),
            Duration::from_millis(50),
            true,
        );
        if let (Some(p), Some(text)) = (poll, &r.poll)
            && p > Duration::from_secs(1)
        {
            self.c.report(
                text.span(),
                "residency.poll",
                "at most 1s: the poll interval is the erasure time's resolution",
            );
            ok = false;
        }
        let us_users = workload.map(|w| ((w.users as f64) * w.us_fraction).round() as u32);
        // In u64: the fuzzer's `users = 4294967295` overflowed a u32 sum.
        let mut taken: std::collections::BTreeMap<String, u64> = Default::default();
        let mut erasures = Vec::new();
        for (i, e) in r.erasures.iter().enumerate() {
            let field = |k: &str| format!("residency.erasures[{i}].{k}");
            let entry = e.get_ref();
            let at = match &entry.at {
                None => {
                    self.c
                        .report(e.span(), field("at"), "required: when, e.g. \"5s\"");
                    None
                }
                Some(t) => self.c.parse_duration(&field("at"), t).and_then(|at| {
                    if duration.is_some_and(|d| at >= d) {
                        self.c.report(
                            t.span(),
                            field("at"),
                            format!(
                                "at {}, not before the end of the workload (duration = {})",
                                show(at),
                                show(duration.unwrap_or_default())
                            ),
                        );
                        None
                    } else {
                        Some(at)
                    }
                }),
            };
            let home = match &entry.home {
                None => {
                    self.c.report(
                        e.span(),
                        field("home"),
                        format!("required: one of {}", REGIONS.join(", ")),
                    );
                    None
                }
                Some(h) if REGIONS.contains(&h.get_ref().trim()) => {
                    Some(h.get_ref().trim().to_string())
                }
                Some(h) => {
                    self.c.report(
                        h.span(),
                        field("home"),
                        format!(
                            "unknown region \"{}\"; one of {}",
                            h.get_ref(),
                            REGIONS.join(", ")
                        ),
                    );
                    None
                }
            };
            let users = self
                .c
                .at_least_one(&field("users"), entry.users.as_ref(), 1);
            if let (Some(home), Some(users), Some(us_users), Some(w)) =
                (&home, users, us_users, workload)
            {
                let available = if home == PRIMARY_REGION {
                    us_users
                } else {
                    w.users - us_users
                };
                let so_far = taken.entry(home.clone()).or_default();
                *so_far += u64::from(users);
                if *so_far > u64::from(available) {
                    let span = entry.users.as_ref().map_or(e.span(), |u| u.span());
                    self.c.report(
                        span,
                        field("users"),
                        format!(
                            "{} erasures of {home} users in all, but {home} has {available} \
                             users (workload.users × its share); a user is erased once",
                            *so_far
                        ),
                    );
                    ok = false;
                }
            }
            match (at, home, users) {
                (Some(at), Some(home), Some(users)) => {
                    erasures.push(PlannedErasure { at, home, users })
                }
                _ => ok = false,
            }
        }
        erasures.sort_by_key(|e| e.at);
        if !ok {
            return None;
        }
        Some(Some(Residency {
            personal_tables,
            allow,
            pinned,
            profile_reads_per_s,
            poll: poll?,
            erasures,
        }))
    }

    /// Fault `i` (file order): the common keys here, its own keys by its kind's file.
    /// `posture` and `duration` are None when themselves invalid; the checks that need them
    /// are then skipped.
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
        let kinds = fault::KINDS.join(", ");
        let kind = match &f.kind {
            None => {
                self.c.report(
                    header.clone(),
                    p("kind"),
                    format!("required: one of {kinds}"),
                );
                None
            }
            Some(k) => {
                let kind = fault::KINDS
                    .iter()
                    .copied()
                    .find(|n| *n == k.get_ref().trim());
                if kind.is_none() {
                    self.c.report(
                        k.span(),
                        p("kind"),
                        format!("unknown fault kind \"{}\"; one of {kinds}", k.get_ref()),
                    );
                }
                kind
            }
        };
        let timing = self.timing(f, &header, &p, duration);
        let table = self.faults.get(i).cloned();
        let shape = self.shape.clone();
        let mut cx = FaultCheck::new(&mut self.c, i, header, posture, duration, shape);
        let fault = fault::validate(kind?, table?, &mut cx);
        let (at, heal_at) = timing?;
        Some(ScheduledFault {
            at,
            heal_at,
            fault: fault?,
        })
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
            self.c.report(
                header.clone(),
                p("at"),
                "required: when the fault starts, from the start of the workload, e.g. \"5s\"",
            );
            return None;
        };
        let at = self.c.parse_duration(&p("at"), at_text)?;
        if let Some(duration) = duration
            && at >= duration
        {
            self.c.report(
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
                self.c
                    .report(span, p(key), "give either heal_at or duration, not both");
                return None;
            }
            (None, None) => return Some((at, None)),
            (Some(h), None) => {
                let heal_at = self.c.parse_duration(&p("heal_at"), h)?;
                if heal_at <= at {
                    self.c.report(
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
                let length = self
                    .c
                    .duration_or(&p("duration"), Some(d), Duration::ZERO, true)?;
                let Some(heal_at) = at.checked_add(length) else {
                    // `at + duration` would overflow (and panic): far past any workload.
                    self.c.report(
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
            self.c.report(
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
}
