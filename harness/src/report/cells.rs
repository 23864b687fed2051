//! What every format shows, as text cells: the finding rows of one run (the terminal
//! report's rows, also the Markdown and HTML findings tables) and the comparison row of one
//! experiment. The formats differ only in how they lay these out, so a number can never
//! read one way in the terminal and another in the HTML.

use super::Entry;
use crate::checker::Phase;
use crate::posture::Posture;
use crate::run_folder::Results;

/// One line of a run's findings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FindingRow {
    /// What was measured, e.g. "RTO (every region writing again)".
    pub finding: String,
    /// A detail of the row above it (shown indented).
    pub sub: bool,
    /// What the run showed.
    pub observed: String,
    /// What the experiment's SLO states ("" when it states nothing about this).
    pub stated: String,
    /// Pass (true) or missed (false) when an SLO is stated.
    pub passed: Option<bool>,
}

impl FindingRow {
    fn info(finding: impl Into<String>, observed: String) -> FindingRow {
        FindingRow {
            finding: finding.into(),
            sub: false,
            observed,
            stated: String::new(),
            passed: None,
        }
    }

    fn sub(finding: impl Into<String>, observed: String) -> FindingRow {
        FindingRow {
            sub: true,
            ..FindingRow::info(finding, observed)
        }
    }
}

/// The value shown for a finding with an SLO: rounded for reading, but when the SLO was
/// missed the check's own precise figure, so 6,004 ms against "6s" never reads "6.00 s".
fn missed_precisely(check: Option<&crate::checker::slo::SloCheck>, rounded: String) -> String {
    match check {
        Some(c) if !c.passed => c.observed.clone(),
        _ => rounded,
    }
}

/// Milliseconds as "850 ms" or "4.21 s"; "—" when not measured.
pub fn dur(ms: Option<f64>) -> String {
    match ms {
        None => "—".into(),
        Some(v) if v.abs() >= 1000.0 => format!("{:.2} s", v / 1000.0),
        Some(v) if v.abs() >= 10.0 => format!("{v:.0} ms"),
        Some(v) => format!("{v:.1} ms"),
    }
}

/// A rate as "4.9 %"; "—" when not measured.
pub(crate) fn pct(rate: Option<f64>) -> String {
    rate.map_or("—".into(), |r| format!("{:.1} %", r * 100.0))
}

/// Milliseconds compactly, for the comparison table: "0s", "4.7ms", "329ms", "1.24s",
/// "12.4s"; "—" when not measured.
pub(crate) fn short_dur(ms: Option<f64>) -> String {
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

pub(crate) fn bytes(b: u64) -> String {
    match b {
        0..1024 => format!("{b} B"),
        1024..1_048_576 => format!("{:.1} KiB", b as f64 / 1024.0),
        _ => format!("{:.1} MiB", b as f64 / 1_048_576.0),
    }
}

pub(crate) fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Before => "before",
        Phase::Fault => "fault",
        Phase::After => "after",
    }
}

/// A posture's short name for tables: single, ap-async, ap-semi, ap-sync, aa-part, aa-lww,
/// aa-crdt (an unknown name is kept as it is).
pub fn short_posture(name: &str) -> &str {
    match Posture::parse(name) {
        Some(Posture::SingleRegion) => "single",
        Some(Posture::ActivePassiveAsync) => "ap-async",
        Some(Posture::ActivePassiveSemiSync) => "ap-semi",
        Some(Posture::ActivePassiveSync) => "ap-sync",
        Some(Posture::ActiveActivePartitioned) => "aa-part",
        Some(Posture::ActiveActiveLww) => "aa-lww",
        Some(Posture::ActiveActiveCrdt) => "aa-crdt",
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

/// The rows of one run's findings: the same lines the terminal report shows.
pub(crate) fn finding_rows(r: &Results) -> Vec<FindingRow> {
    let f = &r.findings;
    let e = &r.experiment;
    let mut rows = Vec::new();
    let slo = |name: &str| r.slo.checks.iter().find(|c| c.name == name);
    let stated = |name: &str| slo(name).map_or(String::new(), |c| c.stated.clone());
    let passed = |name: &str| slo(name).map(|c| c.passed);
    let shown = |name: &str, rounded: String| missed_precisely(slo(name), rounded);
    let rto = if f.failover.failure_at_ms.is_none() {
        "no failure".to_string()
    } else if !f.failover.recovered {
        "not recovered".to_string()
    } else {
        shown("rto", dur(f.failover.rto_ms))
    };
    rows.push(FindingRow {
        finding: "RTO (every region writing again)".into(),
        sub: false,
        observed: rto,
        stated: stated("rto"),
        passed: passed("rto"),
    });
    if f.failover.failure_at_ms.is_some() {
        let per_region: Vec<String> = f
            .failover
            .by_region
            .iter()
            .map(|(region, r)| {
                let t = if r.recovered {
                    dur(r.rto_ms)
                } else {
                    "never".into()
                };
                format!("{region} {t}")
            })
            .collect();
        if !per_region.is_empty() {
            rows.push(FindingRow::sub("by home region", per_region.join(", ")));
        }
        rows.push(FindingRow::sub(
            "detect / promote / redirect",
            format!(
                "{} / {} / {}",
                dur(f.failover.detect_ms),
                dur(f.failover.promote_ms),
                dur(f.failover.redirect_ms)
            ),
        ));
        rows.push(FindingRow::sub("read RTO", dur(f.failover.read_rto_ms)));
    }
    let lost = if f.lost_writes.checked {
        format!(
            "{} ({} lost)",
            shown("rpo", dur(f.lost_writes.rpo_ms)),
            f.lost_writes.count
        )
    } else {
        "not checked".into()
    };
    rows.push(FindingRow {
        finding: "RPO (acked writes lost)".into(),
        sub: false,
        observed: lost,
        stated: stated("rpo"),
        passed: passed("rpo"),
    });
    if f.lost_writes.unknown_absent + f.lost_writes.unknown_present > 0 {
        rows.push(FindingRow::sub(
            "unknown-outcome writes absent/present",
            format!(
                "{} / {}",
                f.lost_writes.unknown_absent, f.lost_writes.unknown_present
            ),
        ));
    }
    rows.push(FindingRow {
        finding: "stale reads".into(),
        sub: false,
        observed: format!(
            "{} ({} of {}), max age {}",
            shown("stale_read_rate", pct(f.stale_reads.rate)),
            f.stale_reads.count,
            f.stale_reads.reads,
            dur(f.stale_reads.max_age_ms)
        ),
        stated: stated("stale_read_rate"),
        passed: passed("stale_read_rate"),
    });
    if e.posture.has_standby() {
        let l = &f.replication_lag;
        let unreplicated = if l.unreplicated > 0 {
            format!(" ({} never replicated)", l.unreplicated)
        } else {
            String::new()
        };
        rows.push(FindingRow::info(
            "replication lag p50 / p99 / max",
            format!(
                "{} / {} / {}{unreplicated}",
                dur(l.p50_ms),
                dur(l.p99_ms),
                dur(l.max_ms)
            ),
        ));
        let p = &f.replay_lag;
        rows.push(FindingRow::sub(
            "PostgreSQL replay_lag p99, max behind",
            format!(
                "{}, {}",
                dur(p.p99_ms),
                p.max_bytes_behind.map_or("—".into(), bytes)
            ),
        ));
    }
    if f.read_your_writes.reads_checked > 0 {
        let ryw = &f.read_your_writes;
        rows.push(FindingRow::info(
            "read-your-writes violations",
            format!("{} ({} of {})", pct(ryw.rate), ryw.count, ryw.reads_checked),
        ));
    }
    if f.split_brain.checked {
        let sb = &f.split_brain;
        let window = sb
            .window_ms
            .map_or(String::new(), |w| format!(", over {}", dur(Some(w))));
        rows.push(FindingRow::info(
            "split-brain writes (old primary, after promotion)",
            format!("{}{window}", sb.count),
        ));
    }
    if matches!(
        e.posture,
        Posture::ActiveActiveLww | Posture::ActiveActiveCrdt
    ) && f.lww.checked
    {
        let l = &f.lww;
        rows.push(FindingRow::info(
            "LWW wrong winners / dropped writes",
            format!(
                "{} of {} keys / {} writes, {} diverged",
                l.wrong_winners, l.keys, l.dropped_writes, l.diverged_keys
            ),
        ));
    }
    if f.counters.keys > 0 {
        let c = &f.counters;
        let total = c
            .final_total
            .map_or("not checked".to_string(), |t| t.to_string());
        rows.push(FindingRow::info(
            "counters: acked / converged / lost",
            format!(
                "{} / {total} / {} lost ({} unknown)",
                c.acked, c.lost, c.unknown
            ),
        ));
    }
    if e.posture == Posture::ActiveActivePartitioned && f.conflicts.checked {
        let c = &f.conflicts;
        rows.push(FindingRow::info(
            "conflicting keys (written in both regions)",
            format!("{} of {}", c.conflicting_keys, c.keys_written),
        ));
        rows.push(FindingRow::info(
            "travelling / home users: write p50",
            format!(
                "{} / {}",
                dur(c.travel_writes.p50_ms),
                dur(c.home_writes.p50_ms)
            ),
        ));
    }
    for (region, lat) in &f.latency {
        rows.push(FindingRow::info(
            format!("{region} users: write / read p50, p99"),
            format!(
                "{} / {}, {} / {}",
                dur(lat.write.p50_ms),
                dur(lat.read.p50_ms),
                dur(lat.write.p99_ms),
                dur(lat.read.p99_ms)
            ),
        ));
    }
    for (region, phases) in &f.unavailability {
        let cells: Vec<String> = [Phase::Before, Phase::Fault, Phase::After]
            .iter()
            .filter_map(|p| {
                phases
                    .get(p)
                    .map(|c| format!("{} {}", phase_name(*p), pct(Some(c.rate))))
            })
            .collect();
        rows.push(FindingRow::info(
            format!("{region} users: failed ops"),
            cells.join(", "),
        ));
    }
    rows.push(FindingRow::info(
        "operations ok / fail / unknown",
        format!(
            "{} / {} / {} of {}",
            f.ops.ok, f.ops.fail, f.ops.unknown, f.ops.total
        ),
    ));
    rows
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
    /// The other cells, in column order (see [`COLUMNS`]); None when it could not run.
    pub metrics: Option<[String; 7]>,
    /// The error, when it could not run.
    pub error: Option<String>,
    /// How it ended.
    pub verdict: RowVerdict,
}

/// The comparison's metric columns (between posture and verdict): (one-line header, the
/// same on two lines for the terminal).
pub(crate) const COLUMNS: [(&str, &str); 7] = [
    ("RTO obs/stated", "RTO\nobs/stated"),
    ("RPO obs/stated", "RPO\nobs/stated"),
    ("lost writes", "lost\nwrites"),
    ("stale-read rate", "stale\nreads"),
    ("replication lag p99", "lag\np99"),
    ("write p99 us/eu", "write p99\nus/eu"),
    ("split-brain writes", "split\nbrain"),
];

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
            error: Some(error.to_string()),
            verdict: RowVerdict::CouldNotRun,
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
                format!("{}/{}", write_p99("us"), write_p99("eu")),
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
                error: None,
                verdict: if r.slo.passed {
                    RowVerdict::Pass
                } else {
                    RowVerdict::Missed
                },
            }
        }
    }
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
