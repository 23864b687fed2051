//! What every format shows, as text cells: the finding rows of one run (the terminal
//! report's rows, also the Markdown and HTML findings tables) and the comparison row of one
//! experiment. The formats differ only in how they lay these out, so a number can never
//! read one way in the terminal and another in the HTML.
//!
//! The finding rows are written by the checkers themselves (each checker file's `rows`,
//! with [`FindingRow`] and the number formats from [`crate::checker::rows`], re-exported
//! here); nothing in `report/` knows one checker's rows from another's.

use super::Entry;
use crate::checker::rows::missed_precisely;
use crate::posture::Posture;
use crate::run_folder::Results;

use crate::checker::rows::RowContext;
pub use crate::checker::rows::{FindingRow, dur};

/// Milliseconds compactly, for the comparison table: "0s", "4.7ms", "329ms", "1.24s",
/// "12.4s"; "—" when not measured.
pub fn short_dur(ms: Option<f64>) -> String {
    match ms {
        None => "—".into(),
        Some(0.0) => "0s".into(),
        Some(v) if v.abs() >= 10_000.0 => format!("{:.1}s", v / 1000.0),
        Some(v) if v.abs() >= 1000.0 => format!("{:.2}s", v / 1000.0),
        Some(v) if v.abs() >= 10.0 => format!("{v:.0}ms"),
        Some(v) => format!("{v:.1}ms"),
    }
}

/// A rate compactly: "4.9%"; "—" when not measured.
pub(crate) fn short_pct(rate: Option<f64>) -> String {
    rate.map_or("—".into(), |r| format!("{:.1}%", r * 100.0))
}

/// A posture's short name for tables (`matrix::short_name`; an unknown name is kept as it
/// is).
pub fn short_posture(name: &str) -> &str {
    match Posture::parse(name) {
        Some(p) => crate::experiment::matrix::short_name(p),
        None => name,
    }
}

/// An SLO check's name for people: "RTO", "RPO", "stale-read rate".
pub(crate) fn slo_title(name: &str) -> String {
    match name {
        "rto" => "RTO".into(),
        "rpo" => "RPO".into(),
        "stale_read_rate" => "stale-read rate".into(),
        other => other.replace('_', " "),
    }
}

/// "SLOs met" / "SLO MISSED".
pub(crate) fn verdict_line(passed: bool) -> &'static str {
    if passed { "SLOs met" } else { "SLO MISSED" }
}

/// The rows of one run's findings: the same lines the terminal report shows. Each checker
/// writes its own rows ([`crate::checker::Findings::rows`]); this only supplies the context
/// they may need (the posture, the stored verdict).
pub(crate) fn finding_rows(r: &Results) -> Vec<FindingRow> {
    r.findings.rows(&RowContext {
        posture: r.experiment.posture,
        slo: &r.slo,
    })
}

/// What a reader must know before any figure of one run (a saturated host, a false or failed
/// failover, a failure nobody injected): every format shows these first.
pub(crate) fn alerts(r: &Results) -> Vec<String> {
    r.findings.alerts(&RowContext {
        posture: r.experiment.posture,
        slo: &r.slo,
    })
}

/// How an experiment of a comparison ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowVerdict {
    /// Every stated SLO met.
    Pass,
    /// Some stated SLO missed.
    Missed,
    /// The experiment could not run (or its run folder could not be read).
    CouldNotRun,
}

impl RowVerdict {
    /// "pass", "MISSED", "could not run".
    pub(crate) fn text(self) -> &'static str {
        match self {
            RowVerdict::Pass => "pass",
            RowVerdict::Missed => "MISSED",
            RowVerdict::CouldNotRun => "could not run",
        }
    }
}

/// One experiment's row of the comparison table, as text cells.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ComparisonRow {
    /// The scenario (matrix) or the experiment's name.
    pub experiment: String,
    /// The posture's short name.
    pub posture: String,
    /// The other cells, in column order (see [`columns`]); None when it could not run.
    pub metrics: Option<[String; 7]>,
    /// The experiment's regions, in its order: the write p99 cell's (empty when it could
    /// not run).
    pub regions: Vec<String>,
    /// The error, when it could not run.
    pub error: Option<String>,
    /// How it ended.
    pub verdict: RowVerdict,
    /// What its report says first ([`alerts`]); shown under the comparison.
    pub alerts: Vec<String>,
}

/// The comparison's metric columns (between posture and verdict): (one-line header, the
/// same on two lines for the terminal). The write p99 column names the regions its cells
/// list (see [`write_p99_regions`]).
pub(crate) fn columns(rows: &[ComparisonRow]) -> [(String, String); 7] {
    let regions = write_p99_regions(rows);
    let fixed = |one: &str, two: &str| (one.to_string(), two.to_string());
    [
        fixed("RTO obs/stated", "RTO\nobs/stated"),
        fixed("RPO obs/stated", "RPO\nobs/stated"),
        fixed("lost writes", "lost\nwrites"),
        fixed("stale-read rate", "stale\nreads"),
        fixed("replication lag p99", "lag\np99"),
        (
            format!("write p99 {regions}"),
            format!("write p99\n{regions}"),
        ),
        fixed("split-brain writes", "split\nbrain"),
    ]
}

/// The write p99 column's index among [`columns`].
pub(crate) const WRITE_P99_COLUMN: usize = 5;

/// The write p99 column's regions: e.g. `us/eu` when every experiment that ran has those
/// regions, in that order (the default regions when none ran); `per region` when they
/// differ (then [`write_p99_note`] says which experiment lists which).
fn write_p99_regions(rows: &[ComparisonRow]) -> String {
    match region_lists(rows).as_slice() {
        [(regions, _)] => regions.join("/"),
        [] => crate::stack::topology::default_regions().join("/"),
        _ => "per region".to_string(),
    }
}

/// The distinct region lists of the experiments that ran, each with those experiments, the
/// most common first.
fn region_lists(rows: &[ComparisonRow]) -> Vec<(&[String], Vec<&str>)> {
    let mut lists: Vec<(&[String], Vec<&str>)> = Vec::new();
    for r in rows.iter().filter(|r| r.metrics.is_some()) {
        match lists.iter_mut().find(|(l, _)| *l == r.regions.as_slice()) {
            Some((_, names)) => names.push(&r.experiment),
            None => lists.push((&r.regions, vec![&r.experiment])),
        }
    }
    lists.sort_by_key(|(_, names)| std::cmp::Reverse(names.len()));
    lists
}

/// When the experiments compared have different regions: which regions each write p99 cell
/// lists, e.g. `write p99 per region: us/eu; us/eu/ap for three-region-quorum-sync`.
pub(crate) fn write_p99_note(rows: &[ComparisonRow]) -> Option<String> {
    let lists = region_lists(rows);
    let [(most, _), rest @ ..] = lists.as_slice() else {
        return None;
    };
    if rest.is_empty() {
        return None;
    }
    let mut note = format!("write p99 per region: {}", most.join("/"));
    for (regions, names) in rest {
        note.push_str(&format!("; {} for {}", regions.join("/"), names.join(", ")));
    }
    Some(note)
}

/// The comparison row of one experiment.
pub(crate) fn comparison_row(entry: &Entry) -> ComparisonRow {
    match *entry {
        Entry::CouldNotRun {
            experiment,
            posture,
            scenario,
            error,
        } => ComparisonRow {
            experiment: scenario.unwrap_or(experiment).to_string(),
            posture: short_posture(posture).to_string(),
            metrics: None,
            regions: Vec::new(),
            error: Some(error.to_string()),
            verdict: RowVerdict::CouldNotRun,
            alerts: Vec::new(),
        },
        Entry::Ran(r) => {
            let f = &r.findings;
            let check = |n: &str| r.slo.checks.iter().find(|c| c.name == n);
            let stated = |n: &str| check(n).map_or("—".to_string(), |c| c.stated.clone());
            let rto = if f.failover.failure_at_ms.is_some() && !f.failover.recovered {
                "never".into()
            } else {
                missed_precisely(check("rto"), short_dur(f.failover.rto_ms))
            };
            let checked = f.lost_writes.checked;
            let rpo = if checked {
                missed_precisely(check("rpo"), short_dur(f.lost_writes.rpo_ms))
            } else {
                "?".into()
            };
            let write_p99 =
                |region: &str| short_dur(f.latency.get(region).and_then(|l| l.write.p99_ms));
            let metrics = [
                format!("{rto}/{}", stated("rto")),
                format!("{rpo}/{}", stated("rpo")),
                if checked {
                    f.lost_writes.count.to_string()
                } else {
                    "?".into()
                },
                missed_precisely(check("stale_read_rate"), short_pct(f.stale_reads.rate)),
                if r.experiment.posture.has_standby() {
                    short_dur(f.replication_lag.p99_ms)
                } else {
                    "—".into()
                },
                r.experiment
                    .regions
                    .iter()
                    .map(|region| write_p99(region))
                    .collect::<Vec<_>>()
                    .join("/"),
                if f.split_brain.checked {
                    f.split_brain.count.to_string()
                } else {
                    "—".into()
                },
            ];
            ComparisonRow {
                experiment: r
                    .experiment
                    .scenario
                    .clone()
                    .unwrap_or_else(|| r.experiment.name.clone()),
                posture: short_posture(r.experiment.posture.name()).to_string(),
                metrics: Some(metrics),
                regions: r.experiment.regions.clone(),
                error: None,
                verdict: if r.slo.passed {
                    RowVerdict::Pass
                } else {
                    RowVerdict::Missed
                },
                alerts: alerts(r),
            }
        }
    }
}

/// The alerts of a comparison's rows, one line each: "<experiment> (<posture>): <alert>".
pub(crate) fn comparison_alerts(rows: &[ComparisonRow]) -> Vec<String> {
    rows.iter()
        .flat_map(|r| {
            r.alerts
                .iter()
                .map(move |a| format!("{} ({}): {a}", r.experiment, r.posture))
        })
        .collect()
}

/// "21 experiments: 18 met their SLOs, 2 missed, 1 could not run".
pub(crate) fn tally(rows: &[ComparisonRow]) -> String {
    let n = |v: RowVerdict| rows.iter().filter(|r| r.verdict == v).count();
    let (pass, missed, error) = (
        n(RowVerdict::Pass),
        n(RowVerdict::Missed),
        n(RowVerdict::CouldNotRun),
    );
    let mut s = format!(
        "{} experiment{}: {pass} met {} SLOs, {missed} missed",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        if pass == 1 { "its" } else { "their" },
    );
    if error > 0 {
        s.push_str(&format!(", {error} could not run"));
    }
    s
}

/// Text for an XML attribute or element: the five markup characters as entities, and
/// characters XML 1.0 cannot hold (control characters other than tab and line breaks, such
/// as terminal colour codes in an error) dropped.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Each region's role in the posture and where the built-in controller watches from, for
/// experiments that name their own regions or vantage points (None for the default pair
/// watched from `eu`): "regions: us primary · eu sync standby · ap async standby · watched
/// from eu, ap, witness (down on 2 of 3)".
pub fn regions_line(e: &crate::experiment::Experiment) -> Option<String> {
    let default = e.regions == crate::stack::topology::REGIONS && e.failover.watch_from.is_empty();
    if default {
        return None;
    }
    let (first, rest) = (&e.regions[0], e.regions[1..].join(", "));
    let roles = match e.posture {
        Posture::SingleRegion => format!("{first} every node · {rest} users only"),
        p if p.is_active_active() => format!("{} primaries", e.regions.join(", ")),
        Posture::ActivePassiveQuorum => {
            format!("{first} primary · {rest} quorum standbys (ANY 1)")
        }
        Posture::ActivePassiveSync | Posture::ActivePassiveSemiSync => {
            let mut v = vec![
                format!("{first} primary"),
                format!("{} sync standby", e.regions[1]),
            ];
            if e.regions.len() > 2 {
                v.push(format!("{} async standby", e.regions[2..].join(", ")));
            }
            v.join(" · ")
        }
        _ => format!("{first} primary · {rest} async standby"),
    };
    let builtin = matches!(e.failover.manager, crate::ha::Manager::Builtin);
    let watched = if e.posture.has_standby() && builtin {
        let vantage = e.stack_plan().vantage_points();
        format!(
            " · watched from {} (down on {} of {})",
            vantage.join(", "),
            vantage.len() / 2 + 1,
            vantage.len()
        )
    } else {
        String::new()
    };
    Some(format!("regions: {roles}{watched}"))
}
