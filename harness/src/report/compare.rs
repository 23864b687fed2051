//! `regiondrill compare BASELINE CURRENT`: two run or matrix folders (last night's and
//! tonight's), cell by cell — cells matched by experiment name —, and what regressed.
//!
//! # What is compared
//! Per cell: RTO observed (a failure never recovered from is worse than any figure), RPO
//! observed, lost writes, stale-read rate, replication lag p99 (postures with a standby),
//! write p99 of each home region, and the verdict. A figure regresses when it is worse than
//! the baseline's by more than its [`Threshold`] allows: `current − baseline > max(abs, rel ×
//! baseline)`. A verdict regresses when the baseline met its SLOs and the current missed one
//! or could not run. A figure measured in one run and not the other is said, not judged.
//! Improvements beyond the same thresholds are listed too. A cell whose settings differ
//! (its `experiment.json` less `source`) says which keys: a regression of a changed
//! experiment may be the change, not the system. Cells only on one side are listed.
//!
//! # Why these default thresholds
//! Two runs of the same cell with the same seed run the same operation plan and faults, yet
//! their figures differ: the failover controller's checks, the scheduler and the host's load
//! move every event by some milliseconds, and an async posture loses however many writes were
//! in flight at the kill. [`Thresholds::default`] is sized from that spread, measured here:
//! see the README, "Nightly at scale", for the figures and the method.

use super::cells::short_dur;
use super::markdown::escape;
use super::{MatrixIndex, ReportError, load_results};
use crate::run_folder::Results;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// How much worse than the baseline a figure may be before it is a regression: the larger of
/// `abs` (in the figure's unit: ms, writes, or a rate as a fraction) and `rel` × the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// Absolute allowance, in the figure's unit.
    pub abs: f64,
    /// Relative allowance, a fraction of the baseline.
    pub rel: f64,
}

impl Threshold {
    /// The allowance over `baseline`.
    pub fn allowance(&self, baseline: f64) -> f64 {
        self.abs.max(self.rel * baseline.abs())
    }
}

/// The figures compared, in the order they are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// `findings.failover.rto_ms` (never recovered: infinite).
    Rto,
    /// `findings.lost_writes.rpo_ms`.
    Rpo,
    /// `findings.lost_writes.count`.
    LostWrites,
    /// `findings.stale_reads.rate`.
    StaleReadRate,
    /// `findings.replication_lag.p99_ms`.
    LagP99,
    /// `findings.latency.<region>.write.p99_ms`, each home region.
    WriteP99,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 6] = [
        Metric::Rto,
        Metric::Rpo,
        Metric::LostWrites,
        Metric::StaleReadRate,
        Metric::LagP99,
        Metric::WriteP99,
    ];

    /// The name on the command line (`--threshold rto=1s`).
    pub fn key(self) -> &'static str {
        match self {
            Metric::Rto => "rto",
            Metric::Rpo => "rpo",
            Metric::LostWrites => "lost_writes",
            Metric::StaleReadRate => "stale_read_rate",
            Metric::LagP99 => "lag_p99",
            Metric::WriteP99 => "write_p99",
        }
    }

    pub(crate) fn title(self) -> &'static str {
        match self {
            Metric::Rto => "RTO",
            Metric::Rpo => "RPO",
            Metric::LostWrites => "lost writes",
            Metric::StaleReadRate => "stale-read rate",
            Metric::LagP99 => "replication lag p99",
            Metric::WriteP99 => "write p99",
        }
    }

    /// A value of this metric as text.
    pub(crate) fn show(self, v: f64) -> String {
        match self {
            Metric::LostWrites => format!("{v:.0}"),
            Metric::StaleReadRate => format!("{:.1}%", v * 100.0),
            _ if v.is_infinite() => "never".into(),
            _ => short_dur(Some(v)),
        }
    }

    /// An allowance of this metric as text (a rate's in points).
    fn show_allowance(self, v: f64) -> String {
        match self {
            Metric::StaleReadRate => format!("{:.1} pt", v * 100.0),
            _ => self.show(v),
        }
    }
}

/// The thresholds of every metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds(pub BTreeMap<Metric, Threshold>);

impl Default for Thresholds {
    /// The largest run-to-run spread (max − min over five runs of a cell: seeds 1, 2 and 3,
    /// and 1 and 2 again) measured for each figure in any cell of the shipped matrix's
    /// settings (four postures × its three scenarios, natively), rounded up; no relative
    /// part. Lag p99 also covers the integration test's reruns of a region loss (447 ms and
    /// 1.95 s). The README ("Nightly at scale") gives the figures and the method.
    fn default() -> Thresholds {
        let abs = |abs| Threshold { abs, rel: 0.0 };
        Thresholds(BTreeMap::from([
            (Metric::Rto, abs(650.0)),
            (Metric::Rpo, abs(1500.0)),
            (Metric::LostWrites, abs(30.0)),
            (Metric::StaleReadRate, abs(0.10)),
            (Metric::LagP99, abs(2000.0)),
            (Metric::WriteP99, abs(800.0)),
        ]))
    }
}

impl Thresholds {
    /// Sets one threshold from `metric=LIMIT`, where LIMIT is an absolute allowance (a
    /// duration such as `400ms` for rto, rpo, lag_p99 and write_p99; a count for
    /// lost_writes; a fraction such as `0.02` for stale_read_rate), a relative one (`30%`), or
    /// both, comma-separated (`20ms,30%`: the larger applies). A part left out is 0.
    pub fn set(&mut self, spec: &str) -> Result<(), String> {
        let (key, limit) = spec.split_once('=').ok_or_else(|| {
            format!("{spec:?}: a threshold is METRIC=LIMIT, e.g. rto=400ms or write_p99=20ms,30%")
        })?;
        let metric = Metric::ALL
            .into_iter()
            .find(|m| m.key() == key.trim())
            .ok_or_else(|| {
                format!(
                    "{spec:?}: unknown metric {key:?}; known: {}",
                    Metric::ALL.map(Metric::key).join(", ")
                )
            })?;
        let mut t = Threshold { abs: 0.0, rel: 0.0 };
        for part in limit.split(',').map(str::trim) {
            let bad = |why: &str| format!("{spec:?}: {part:?} {why}");
            if let Some(pct) = part.strip_suffix('%') {
                t.rel = pct
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| bad("is not a percentage ≥ 0"))?
                    / 100.0;
                continue;
            }
            t.abs = match metric {
                Metric::LostWrites => {
                    part.parse::<u64>()
                        .map_err(|_| bad("is not a number of writes"))? as f64
                }
                Metric::StaleReadRate => part
                    .parse::<f64>()
                    .ok()
                    .filter(|v| (0.0..=1.0).contains(v))
                    .ok_or_else(|| bad("is not a rate between 0 and 1 (or a percentage: 30%)"))?,
                _ => {
                    humantime::parse_duration(part)
                        .map_err(|_| bad("is not a duration such as 400ms"))?
                        .as_secs_f64()
                        * 1000.0
                }
            };
        }
        self.0.insert(metric, t);
        Ok(())
    }

    fn get(&self, m: Metric) -> Threshold {
        self.0[&m]
    }
}

/// One cell of one folder.
#[derive(Debug, Clone)]
pub(crate) enum Side {
    Ran(Box<Results>),
    CouldNotRun(String),
}

/// Reads the cells of a run or matrix folder, by experiment name, in folder order.
pub(crate) fn cells(dir: &Path) -> Result<Vec<(String, Side)>, ReportError> {
    if dir.join(super::MATRIX_INDEX).is_file() {
        let index = MatrixIndex::load(dir)?;
        Ok(index
            .runs
            .iter()
            .enumerate()
            .map(|(i, run)| {
                let side = match (&run.error, index.run_dir(dir, i)) {
                    (Some(e), _) => Side::CouldNotRun(e.clone()),
                    (None, Some(d)) => match load_results(&d) {
                        Ok(r) => Side::Ran(Box::new(r)),
                        Err(e) => Side::CouldNotRun(format!("its run folder: {e}")),
                    },
                    (None, None) => Side::CouldNotRun("no run folder".into()),
                };
                (run.experiment.clone(), side)
            })
            .collect())
    } else {
        let r = load_results(dir)?;
        Ok(vec![(r.experiment.name.clone(), Side::Ran(Box::new(r)))])
    }
}

/// The figures of one run: (metric, detail such as the region, value; None = not measured).
pub(crate) fn figures(r: &Results) -> Vec<(Metric, String, Option<f64>)> {
    let f = &r.findings;
    let rto = if f.failover.failure_at_ms.is_some() && !f.failover.recovered {
        Some(f64::INFINITY)
    } else {
        f.failover.rto_ms
    };
    let checked = f.lost_writes.checked;
    let mut out = vec![
        (Metric::Rto, String::new(), rto),
        (
            Metric::Rpo,
            String::new(),
            f.lost_writes.rpo_ms.filter(|_| checked),
        ),
        (
            Metric::LostWrites,
            String::new(),
            checked.then_some(f.lost_writes.count as f64),
        ),
        (Metric::StaleReadRate, String::new(), f.stale_reads.rate),
        (
            Metric::LagP99,
            String::new(),
            f.replication_lag
                .p99_ms
                .filter(|_| r.experiment.posture.has_standby()),
        ),
    ];
    for (region, l) in &f.latency {
        out.push((Metric::WriteP99, region.clone(), l.write.p99_ms));
    }
    out
}

/// Whether a change is for the worse or the better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Worse beyond the threshold.
    Regressed,
    /// Better beyond the threshold.
    Improved,
}

/// One figure that moved beyond its threshold, or a verdict that changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The cell (experiment name).
    pub cell: String,
    /// "RTO", "write p99 eu", "verdict".
    pub what: String,
    /// The baseline's value, as text.
    pub baseline: String,
    /// The current value, as text.
    pub current: String,
    /// The allowance it exceeded, as text ("" for a verdict).
    pub allowed: String,
    /// Worse or better.
    pub direction: Direction,
}

/// The comparison of two folders.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// Cells compared (on both sides).
    pub compared: usize,
    /// Figures and verdicts that moved beyond their thresholds, cell by cell.
    pub changes: Vec<Change>,
    /// Facts that are neither: settings that differ, figures measured on one side only.
    pub notes: Vec<String>,
    /// Cells only in the baseline.
    pub only_baseline: Vec<String>,
    /// Cells only in the current folder.
    pub only_current: Vec<String>,
}

impl Comparison {
    /// The regressions.
    pub fn regressions(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| c.direction == Direction::Regressed)
    }

    /// Whether anything regressed (the CLI exits 1).
    pub fn regressed(&self) -> bool {
        self.regressions().next().is_some()
    }
}

/// Compares two run or matrix folders.
pub fn compare(
    baseline: &Path,
    current: &Path,
    thresholds: &Thresholds,
) -> Result<Comparison, ReportError> {
    let base = cells(baseline)?;
    let cur = cells(current)?;
    let mut out = Comparison::default();
    for (name, b) in &base {
        let Some((_, c)) = cur.iter().find(|(n, _)| n == name) else {
            out.only_baseline.push(name.clone());
            continue;
        };
        out.compared += 1;
        compare_cell(name, b, c, thresholds, &mut out);
    }
    out.only_current = cur
        .iter()
        .filter(|(n, _)| !base.iter().any(|(b, _)| b == n))
        .map(|(n, _)| n.clone())
        .collect();
    Ok(out)
}

fn compare_cell(name: &str, b: &Side, c: &Side, thresholds: &Thresholds, out: &mut Comparison) {
    let change = |what: String, baseline: String, current: String, allowed, direction| Change {
        cell: name.to_string(),
        what,
        baseline,
        current,
        allowed,
        direction,
    };
    let (b, c) = match (b, c) {
        (Side::Ran(b), Side::Ran(c)) => (b, c),
        (Side::Ran(b), Side::CouldNotRun(e)) => {
            out.changes.push(change(
                "verdict".into(),
                verdict(b.slo.passed).into(),
                format!("could not run: {e}"),
                String::new(),
                Direction::Regressed,
            ));
            return;
        }
        (Side::CouldNotRun(_), Side::Ran(c)) => {
            out.notes.push(format!(
                "{name}: could not run in the baseline; now {}",
                verdict(c.slo.passed)
            ));
            return;
        }
        (Side::CouldNotRun(_), Side::CouldNotRun(e)) => {
            out.notes
                .push(format!("{name}: could not run, as in the baseline: {e}"));
            return;
        }
    };
    let differ = settings_diff(&b.experiment, &c.experiment);
    if !differ.is_empty() {
        out.notes
            .push(format!("{name}: settings differ: {}", differ.join("; ")));
    }
    if b.slo.passed != c.slo.passed {
        let missed: Vec<String> = c
            .slo
            .checks
            .iter()
            .filter(|k| !k.passed)
            .map(|k| format!("{} stated {}, observed {}", k.name, k.stated, k.observed))
            .collect();
        out.changes.push(change(
            "verdict".into(),
            verdict(b.slo.passed).into(),
            if missed.is_empty() {
                verdict(c.slo.passed).into()
            } else {
                format!("{} ({})", verdict(c.slo.passed), missed.join(", "))
            },
            String::new(),
            if c.slo.passed {
                Direction::Improved
            } else {
                Direction::Regressed
            },
        ));
    }
    let cf = figures(c);
    for (metric, detail, bv) in figures(b) {
        let what = if detail.is_empty() {
            metric.title().to_string()
        } else {
            format!("{} {detail}", metric.title())
        };
        let cv = cf
            .iter()
            .find(|(m, d, _)| *m == metric && *d == detail)
            .and_then(|(_, _, v)| *v);
        match (bv, cv) {
            (Some(bv), Some(cv)) => {
                let t = thresholds.get(metric);
                let allow = if bv.is_infinite() {
                    0.0
                } else {
                    t.allowance(bv)
                };
                let direction = if cv.is_infinite() && bv.is_infinite() {
                    None
                } else if cv.is_infinite() || cv - bv > allow {
                    Some(Direction::Regressed)
                } else if bv.is_infinite() || bv - cv > t.allowance(cv) {
                    Some(Direction::Improved)
                } else {
                    None
                };
                if let Some(direction) = direction {
                    let allowed = match direction {
                        Direction::Regressed => allow,
                        Direction::Improved => t.allowance(cv),
                    };
                    out.changes.push(change(
                        what,
                        metric.show(bv),
                        metric.show(cv),
                        format!("±{}", metric.show_allowance(allowed)),
                        direction,
                    ));
                }
            }
            (Some(bv), None) => out.notes.push(format!(
                "{name}: {what} {} in the baseline, not measured now",
                metric.show(bv)
            )),
            (None, Some(cv)) => out.notes.push(format!(
                "{name}: {what} not measured in the baseline, {} now",
                metric.show(cv)
            )),
            (None, None) => {}
        }
    }
}

fn verdict(passed: bool) -> &'static str {
    if passed { "pass" } else { "MISSED" }
}

/// The keys whose values differ between two experiments as run (less `source`): "network.rtt
/// 80ms → 160ms". At most eight, then how many more.
fn settings_diff(
    a: &crate::experiment::Experiment,
    b: &crate::experiment::Experiment,
) -> Vec<String> {
    fn walk(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value::{Array, Object};
        match (a, b) {
            (Object(x), Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    if path.is_empty() && k == "source" {
                        continue;
                    }
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    let null = serde_json::Value::Null;
                    walk(
                        &p,
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            (Array(x), Array(y)) if x.len() == y.len() => {
                for (i, (x, y)) in x.iter().zip(y).enumerate() {
                    walk(&format!("{path}[{i}]"), x, y, out);
                }
            }
            _ if a != b => out.push(format!("{path} {a} → {b}")),
            _ => {}
        }
    }
    let (a, b) = (
        serde_json::to_value(a).expect("serializable"),
        serde_json::to_value(b).expect("serializable"),
    );
    let mut out = Vec::new();
    walk("", &a, &b, &mut out);
    if out.len() > 8 {
        let more = out.len() - 8;
        out.truncate(8);
        out.push(format!("and {more} more"));
    }
    out
}

/// The comparison as plain text, for a terminal or a CI log.
pub fn text(c: &Comparison, baseline: &Path, current: &Path) -> String {
    let mut s = format!(
        "compared {} cell{} of {} (baseline) and {} (current): {}\n",
        c.compared,
        if c.compared == 1 { "" } else { "s" },
        baseline.display(),
        current.display(),
        headline(c)
    );
    for (title, dir) in [
        ("regressed", Direction::Regressed),
        ("improved", Direction::Improved),
    ] {
        let rows: Vec<&Change> = c.changes.iter().filter(|x| x.direction == dir).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{title}:");
        for x in rows {
            let _ = writeln!(
                s,
                "  {}: {} {} → {}{}",
                x.cell,
                x.what,
                x.baseline,
                x.current,
                if x.allowed.is_empty() {
                    String::new()
                } else {
                    format!(" (threshold {})", x.allowed)
                }
            );
        }
    }
    lists(c, &mut s, |t| format!("{t}:"), |l| format!("  {l}"));
    s
}

fn headline(c: &Comparison) -> String {
    let n = c.regressions().count();
    match n {
        0 => "no regression".into(),
        1 => "1 regression".into(),
        n => format!("{n} regressions"),
    }
}

fn lists(
    c: &Comparison,
    s: &mut String,
    heading: impl Fn(&str) -> String,
    item: impl Fn(&str) -> String,
) {
    for (title, items) in [
        ("notes", &c.notes),
        ("only in the baseline", &c.only_baseline),
        ("only in the current folder", &c.only_current),
    ] {
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{}", heading(title));
        for i in items {
            let _ = writeln!(s, "{}", item(i));
        }
    }
}

/// The comparison as GitHub-flavoured Markdown, for `$GITHUB_STEP_SUMMARY`.
pub fn markdown(c: &Comparison, baseline: &Path, current: &Path) -> String {
    let mut md = format!(
        "## regiondrill: compared with the baseline — {}\n\n{} cell{} of `{}` (baseline) and \
         `{}` (current).\n",
        headline(c),
        c.compared,
        if c.compared == 1 { "" } else { "s" },
        baseline.display().to_string().replace('`', "'"),
        current.display().to_string().replace('`', "'"),
    );
    for (title, dir, mark) in [
        ("Regressed", Direction::Regressed, "❌"),
        ("Improved", Direction::Improved, "✅"),
    ] {
        let rows: Vec<&Change> = c.changes.iter().filter(|x| x.direction == dir).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "\n### {mark} {title}\n\n| cell | figure | baseline | current | threshold |\n\
             |:--|:--|--:|--:|--:|"
        );
        for x in rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                escape(&x.cell),
                escape(&x.what),
                escape(&x.baseline),
                escape(&x.current),
                escape(&x.allowed)
            );
        }
    }
    lists(
        c,
        &mut md,
        |t| {
            let mut t = t.to_string();
            t[..1].make_ascii_uppercase();
            format!("### {t}\n")
        },
        |l| format!("- {}", escape(l)),
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_from_the_command_line() {
        let mut t = Thresholds::default();
        t.set("rto=400ms").unwrap();
        assert_eq!(
            t.get(Metric::Rto),
            Threshold {
                abs: 400.0,
                rel: 0.0
            }
        );
        t.set("write_p99=20ms,30%").unwrap();
        assert_eq!(
            t.get(Metric::WriteP99),
            Threshold {
                abs: 20.0,
                rel: 0.3
            }
        );
        t.set("lost_writes=5").unwrap();
        assert_eq!(t.get(Metric::LostWrites).abs, 5.0);
        t.set("stale_read_rate=0.02").unwrap();
        assert_eq!(t.get(Metric::StaleReadRate).abs, 0.02);
        for (bad, says) in [
            ("rto", "METRIC=LIMIT"),
            ("latency=1s", "unknown metric"),
            ("rto=fast", "not a duration"),
            ("lost_writes=1.5", "number of writes"),
            ("stale_read_rate=3", "between 0 and 1"),
            ("rpo=-5%", "percentage"),
        ] {
            let e = t.set(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn the_larger_allowance_applies() {
        let t = Threshold {
            abs: 20.0,
            rel: 0.3,
        };
        assert_eq!(t.allowance(10.0), 20.0);
        assert_eq!(t.allowance(100.0), 30.0);
    }
}
