//! The verdict's types: what `slo::verdict` computes once per run and `results.json` stores as
//! `slo.*`. Kept apart from [`super::slo`] (which judges findings, so it depends on the
//! checkers) so that the checkers' rows can show a stated objective without depending back
//! on the judging.

use serde::{Deserialize, Serialize};

/// Pass/fail against the SLO (`slo.*` in results.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether every check passed (true when the SLO states nothing).
    pub passed: bool,
    /// One line per stated objective.
    pub checks: Vec<SloCheck>,
}

/// One objective, stated and observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloCheck {
    /// `rto`, `rpo`, `stale_read_rate` or `false_failovers`.
    pub name: String,
    /// What the experiment promised, e.g. "6s", "0s", "5.0%".
    pub stated: String,
    /// What the run showed, e.g. "4.2s", "not recovered (us)", "not checked", "no reads".
    pub observed: String,
    /// Whether the observation meets the promise.
    pub passed: bool,
}
