//! The run folder: one per run, self-contained, written by [`crate::run`] and read by
//! [`crate::report`] — its file names, `results.json`'s schema, and the writer.
//!
//! | file | content |
//! |---|---|
//! | `experiment.toml`, `experiment.json` | the file as given, the experiment as run |
//! | `history.jsonl` | every operation and event |
//! | `probes.json` | the probes' samples |
//! | `final_state.json` | what the databases held after heal |
//! | `results.json` | findings and verdict ([`Results`]) |
//! | `incomplete.json` | only in a run that stopped before its verdict ([`Incomplete`]) |

use crate::checker::{Findings, Verdict};
use crate::experiment::Experiment;
use crate::history::{FinalState, History, Probes};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `results.json`.
pub const RESULTS_FILE: &str = "results.json";
/// `history.jsonl`.
pub const HISTORY_FILE: &str = "history.jsonl";
/// `probes.json`.
pub const PROBES_FILE: &str = "probes.json";
/// `final_state.json`.
pub const FINAL_STATE_FILE: &str = "final_state.json";
/// The file that marks a run folder incomplete (and says why); such a folder has no
/// `results.json`.
pub const INCOMPLETE_FILE: &str = "incomplete.json";

/// `results.json`'s schema version.
pub const RESULTS_SCHEMA: &str = "regiondrill.results/v1";

/// `results.json`: everything a report needs, each finding under a stable dotted name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// [`RESULTS_SCHEMA`].
    pub schema: String,
    /// The run.
    pub run: RunInfo,
    /// The experiment as run.
    pub experiment: Experiment,
    /// What the checkers found.
    pub findings: Findings,
    /// SLO comparison: `slo.passed`, `slo.checks`.
    pub slo: Verdict,
}

/// About the run itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// Run id.
    pub id: String,
    /// Backend.
    pub backend: String,
    /// Fault proxy.
    pub fault_proxy: String,
    /// What a "lost write" can survive here.
    pub durability: String,
    /// Stage timings.
    pub timings: Timings,
}

/// How long each stage of the harness took (for the overhead figures).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    /// Stack bring-up to ready, ms.
    pub bring_up_ms: f64,
    /// Workload, ms.
    pub workload_ms: f64,
    /// Heal and settle, ms.
    pub heal_settle_ms: f64,
    /// Teardown, ms.
    pub teardown_ms: f64,
    /// Checkers, ms.
    pub check_ms: f64,
}

/// `incomplete.json`: why a run stopped before its verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Incomplete {
    /// What stopped it, e.g. "interrupted while running the workload and faults for 20s".
    pub reason: String,
    /// Whether it was interrupted (Ctrl-C) rather than failing by itself.
    pub interrupted: bool,
    /// Whether `history.jsonl` and `probes.json` hold what was recorded up to then.
    pub has_history: bool,
}

/// Why a run folder could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing {path}: {error}")]
pub struct WriteError {
    /// The path.
    pub path: String,
    /// The error.
    pub error: String,
}

/// A run folder being written.
pub struct RunFolder<'a> {
    dir: &'a Path,
}

impl<'a> RunFolder<'a> {
    /// Creates the folder (and its parents).
    pub fn create(dir: &'a Path) -> Result<Self, WriteError> {
        std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
        Ok(RunFolder { dir })
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), WriteError> {
        let p = self.dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| write_error(&p, e))
    }

    fn json(&self, name: &str, value: &impl Serialize) -> Result<(), WriteError> {
        self.write(
            name,
            &serde_json::to_vec_pretty(value).expect("serializable"),
        )
    }

    /// `experiment.toml` (the file as written, when readable) and `experiment.json`.
    pub fn experiment(&self, exp: &Experiment) -> Result<(), WriteError> {
        if let Ok(text) = std::fs::read(&exp.source) {
            self.write("experiment.toml", &text)?;
        }
        self.json("experiment.json", exp)
    }

    /// `history.jsonl` and `probes.json`.
    pub fn recorded(&self, history: &History, probes: &Probes) -> Result<(), WriteError> {
        let mut bytes = Vec::new();
        history
            .write_jsonl(&mut bytes)
            .map_err(|e| write_error(&self.dir.join(HISTORY_FILE), e))?;
        self.write(HISTORY_FILE, &bytes)?;
        self.json(PROBES_FILE, probes)
    }

    /// `final_state.json` and `results.json`: the run is complete.
    pub fn complete(&self, final_state: &FinalState, results: &Results) -> Result<(), WriteError> {
        self.write(
            FINAL_STATE_FILE,
            &serde_json::to_vec(final_state).expect("serializable"),
        )?;
        self.json(RESULTS_FILE, results)
    }

    /// `incomplete.json`: the run stopped before its verdict.
    pub fn incomplete(&self, why: &Incomplete) -> Result<(), WriteError> {
        self.json(INCOMPLETE_FILE, why)
    }
}

fn write_error(p: &Path, e: std::io::Error) -> WriteError {
    WriteError {
        path: p.display().to_string(),
        error: e.to_string(),
    }
}
