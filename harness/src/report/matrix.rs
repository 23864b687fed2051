//! `matrix.json`: the index of a matrix folder. A matrix folder holds this file and one run
//! folder per experiment (posture × scenario) inside it; the index lists them in the order
//! they ran, with the experiments that could not run and why, so the reports can show every
//! experiment the matrix asked for — including those with no run folder.

use super::{Entry, ReportError, read_json};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `matrix.json`'s schema version.
pub const MATRIX_SCHEMA: &str = "regiondrill.matrix/v1";
/// The index's file name in a matrix folder.
pub const MATRIX_INDEX: &str = "matrix.json";

/// `matrix.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixIndex {
    /// [`MATRIX_SCHEMA`].
    pub schema: String,
    /// The matrix's name (from the matrix file, or the directory of experiments).
    pub name: String,
    /// What it ran: the matrix file, experiment files or directories given.
    pub source: Vec<String>,
    /// The matrix's seed, when a matrix file set one.
    #[serde(default)]
    pub seed: Option<u64>,
    /// The expanded matrix's fingerprint ([`crate::shard::digest`]): what slices must share
    /// to be merged. Absent in folders written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Which slice of the matrix this folder ran (`regiondrill matrix --shard K/N`); absent
    /// in a folder that ran the whole matrix, and in a merged one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
    /// Every experiment, in the order it ran.
    pub runs: Vec<MatrixRun>,
}

/// The slice a shard folder ran: enough to put the slices back in matrix order and to see
/// that none is missing or given twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// K of K/N, from 1.
    pub index: usize,
    /// N.
    pub count: usize,
    /// How many cells the whole matrix has.
    pub cells: usize,
    /// Each run's position in the whole matrix (0-based), in `runs` order.
    pub positions: Vec<usize>,
}

/// One experiment of a matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixRun {
    /// The experiment's name.
    pub experiment: String,
    /// Its posture's name (as in experiment files).
    pub posture: String,
    /// The scenario, when a matrix file crossed postures with scenarios.
    #[serde(default)]
    pub scenario: Option<String>,
    /// Its run folder, relative to the matrix folder ("" when it could not run).
    #[serde(default)]
    pub dir: String,
    /// Why the experiment could not run (None: it ran, its folder is `dir`).
    #[serde(default)]
    pub error: Option<String>,
}

impl MatrixIndex {
    /// An index of `runs`, with the current schema.
    pub fn new(
        name: String,
        source: Vec<String>,
        seed: Option<u64>,
        runs: Vec<MatrixRun>,
    ) -> MatrixIndex {
        MatrixIndex {
            schema: MATRIX_SCHEMA.into(),
            name,
            source,
            seed,
            digest: None,
            shard: None,
            runs,
        }
    }

    /// Reads `<dir>/matrix.json`, checking its schema.
    pub fn load(dir: &Path) -> Result<MatrixIndex, ReportError> {
        let path = dir.join(MATRIX_INDEX);
        let index: MatrixIndex = read_json(&path, "matrix index")?;
        if index.schema != MATRIX_SCHEMA {
            return Err(ReportError::Invalid {
                path,
                message: format!(
                    "schema is {:?}, this regiondrill reads {MATRIX_SCHEMA:?}",
                    index.schema
                ),
            });
        }
        Ok(index)
    }

    /// Writes `<dir>/matrix.json` (pretty-printed), creating `dir` if needed.
    pub fn save(&self, dir: &Path) -> Result<(), ReportError> {
        let path = dir.join(MATRIX_INDEX);
        std::fs::create_dir_all(dir).map_err(|e| ReportError::Write {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut text = serde_json::to_string_pretty(self).expect("serializable");
        text.push('\n');
        super::write_file(&path, &text)
    }

    /// The folder of run `i`, when it ran.
    pub fn run_dir(&self, dir: &Path, i: usize) -> Option<PathBuf> {
        let run = self.runs.get(i)?;
        (run.error.is_none()).then(|| dir.join(&run.dir))
    }

    /// "from matrices/nightly.toml · seed 7" (what the reports show under the title).
    pub(crate) fn subtitle(&self) -> String {
        let mut s = format!("from {}", self.source.join(", "));
        if let Some(seed) = self.seed {
            s.push_str(&format!(" · seed {seed}"));
        }
        if let Some(shard) = &self.shard {
            s.push_str(&format!(
                " · shard {}/{} ({} of {} cells)",
                shard.index,
                shard.count,
                shard.positions.len(),
                shard.cells
            ));
        }
        s
    }
}

impl MatrixRun {
    /// This experiment as a "could not run" entry of a comparison.
    pub fn could_not_run<'a>(&'a self, error: &'a str) -> Entry<'a> {
        Entry::CouldNotRun {
            experiment: &self.experiment,
            posture: &self.posture,
            scenario: self.scenario.as_deref(),
            error,
        }
    }
}
