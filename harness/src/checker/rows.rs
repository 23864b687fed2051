//! Finding rows: how a checker presents its findings to people.
//!
//! Every checker file has a `rows(findings, cx)` function that turns its own findings into
//! [`FindingRow`]s — the lines of the terminal report, also the Markdown and HTML findings
//! tables. [`Findings::rows`](super::Findings::rows) concatenates them in the registry's
//! order (see `checker/mod.rs`), and `report/` only lays rows out: it has no per-checker
//! code, so a new checker brings its own rows and no format changes.
//!
//! # Why the row type lives here and not in `report/`
//! A row is text cells, not layout: what was measured, what was seen, what was stated. The
//! checker that defines a figure is the one that knows how to say it (which rounding, what
//! "not checked" means for it), and `report` already depends on `checker` (it renders
//! [`Findings`](super::Findings)), so the type sits on the checker side and `report::cells`
//! re-exports it; nothing in `checker` depends on `report`. The shared number formats
//! ([`dur`], [`pct`], [`bytes()`]) live here for the same reason, and `report` uses the same
//! ones, so a figure reads the same in a finding row and in a comparison cell.
//!
//! # What a rows function gets
//! Its own findings and a [`RowContext`]: the posture (some rows only make sense for some
//! postures) and the run's SLO verdict, so a row about an objective can show what was
//! stated and whether it passed ([`RowContext::judged`]) — the verdict itself is computed
//! once, in [`slo`](super::slo), never again while rendering.

use super::verdict::{SloCheck, Verdict};
use crate::posture::Posture;

/// One line of a run's findings.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingRow {
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
    /// A row no objective judges.
    pub fn info(finding: impl Into<String>, observed: String) -> FindingRow {
        FindingRow {
            finding: finding.into(),
            sub: false,
            observed,
            stated: String::new(),
            passed: None,
        }
    }

    /// A detail of the row above it, no objective judges.
    pub fn sub(finding: impl Into<String>, observed: String) -> FindingRow {
        FindingRow {
            sub: true,
            ..FindingRow::info(finding, observed)
        }
    }
}

/// What a checker's rows may depend on besides its own findings.
#[derive(Debug, Clone, Copy)]
pub struct RowContext<'a> {
    /// The run's posture.
    pub posture: Posture,
    /// The run's verdict (`slo.*` in results.json), as stored.
    pub slo: &'a Verdict,
}

impl<'a> RowContext<'a> {
    /// The verdict's check named `name` (`rto`, `rpo`, …), if the run has one.
    pub fn check(&self, name: &str) -> Option<&'a SloCheck> {
        self.slo.checks.iter().find(|c| c.name == name)
    }

    /// A headline row judged by the check `name`: its stated value and pass/miss (empty and
    /// None when the run has no such check).
    pub fn judged(&self, finding: impl Into<String>, observed: String, name: &str) -> FindingRow {
        let check = self.check(name);
        FindingRow {
            stated: check.map_or(String::new(), |c| c.stated.clone()),
            passed: check.map(|c| c.passed),
            ..FindingRow::info(finding, observed)
        }
    }

    /// `rounded`, or the check `name`'s own precise figure when that check was missed (see
    /// [`missed_precisely`]).
    pub fn shown(&self, name: &str, rounded: String) -> String {
        missed_precisely(self.check(name), rounded)
    }
}

/// The value shown for a finding with an SLO: rounded for reading, but when the SLO was
/// missed the check's own precise figure, so 6,004 ms against "6s" never reads "6.00 s".
pub fn missed_precisely(check: Option<&SloCheck>, rounded: String) -> String {
    match check {
        Some(c) if !c.passed => c.observed.clone(),
        _ => rounded,
    }
}

/// `" to eu"` naming a replica in a finding, when the run watched several (`several`);
/// empty with one replica, whose rows read as they always did.
pub fn to_replica(replica: Option<&str>, several: bool) -> String {
    match replica {
        Some(r) if several => format!(" to {r}"),
        _ => String::new(),
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
pub fn pct(rate: Option<f64>) -> String {
    rate.map_or("—".into(), |r| format!("{:.1} %", r * 100.0))
}

/// A byte count as "512 B", "136.0 KiB", "1.5 MiB".
pub fn bytes(b: u64) -> String {
    match b {
        0..1024 => format!("{b} B"),
        1024..1_048_576 => format!("{:.1} KiB", b as f64 / 1024.0),
        _ => format!("{:.1} MiB", b as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_the_same_everywhere() {
        assert_eq!(dur(None), "—");
        assert_eq!(dur(Some(4.25)), "4.2 ms");
        assert_eq!(dur(Some(850.0)), "850 ms");
        assert_eq!(dur(Some(4210.0)), "4.21 s");
        assert_eq!(pct(Some(0.049)), "4.9 %");
        assert_eq!(pct(None), "—");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(139_264), "136.0 KiB");
        assert_eq!(bytes(1_572_864), "1.5 MiB");
    }

    #[test]
    fn judged_rows_show_the_check_and_a_missed_figure_precisely() {
        let slo = Verdict {
            passed: false,
            checks: vec![SloCheck {
                name: "rto".into(),
                stated: "6s".into(),
                observed: "6.004s".into(),
                passed: false,
            }],
        };
        let cx = RowContext {
            posture: Posture::ActivePassiveAsync,
            slo: &slo,
        };
        let row = cx.judged("RTO", cx.shown("rto", dur(Some(6004.0))), "rto");
        assert_eq!(
            (row.observed.as_str(), row.stated.as_str(), row.passed),
            ("6.004s", "6s", Some(false))
        );
        let row = cx.judged("RPO", cx.shown("rpo", dur(Some(0.0))), "rpo");
        assert_eq!(
            (row.observed.as_str(), row.stated.as_str(), row.passed),
            ("0.0 ms", "", None)
        );
    }
}
