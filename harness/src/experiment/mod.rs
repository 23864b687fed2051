//! Experiments are data: a TOML file ([`spec::ExperimentSpec`], what the file says) is parsed
//! and validated into an [`Experiment`] (what runs). Errors name the file, line, column and
//! field: `experiments/x.toml:12:10: faults[0].heal_at: heals at 2s, not after it starts
//! (at = 5s)`.
//!
//! # Layout
//! - `spec`: the raw file format; every key, its default and unit, documented on its field.
//! - `validate`: document → experiment (defaults, durations, names checked against the
//!   posture's topology, fault times against the workload's duration); each fault's own keys
//!   are its kind's file's to read and check (`crate::fault`).
//! - `check`: the checks both are made of (durations, link selectors, node ids, regions).
//! - `model`: the validated types the rest of the harness uses.
//! - `error`: [`ExperimentError`] and the mapping of byte offsets to line, column and field.
//!
//! Three kinds of problem, reported in this order, each the first one in the file:
//! TOML syntax errors; wrong types and unknown keys (serde, with `deny_unknown_fields`);
//! everything else (semantic checks, which see the whole file, so the first in file order is
//! reported even when a later key is what made an earlier one wrong).

pub(crate) mod error;
pub mod matrix;
mod model;
pub mod spec;
mod validate;

pub use error::{ExperimentError, NOT_UTF8_FIELD};
pub use matrix::Matrix;
pub use model::*;
pub use validate::{MAX_PLANNED_OPS, MAX_USERS};

use std::path::{Path, PathBuf};

/// The file [`load_dir`] skips: it lists which experiments to run, it is not one.
pub const MATRIX_FILE: &str = "matrix.toml";

/// Reads and validates the experiment file at `path`.
pub fn load(path: &Path) -> Result<Experiment, ExperimentError> {
    let text = error::read_text(path)?;
    parse(&text, path)
}

/// Validates the text of an experiment file; `path` names it in errors, is recorded as
/// [`Experiment::source`], and gives the default name (its stem).
pub fn parse(text: &str, path: &Path) -> Result<Experiment, ExperimentError> {
    let (doc, syntax_errors) = toml::de::DeTable::parse_recoverable(text);
    if let Some(first) = syntax_errors
        .iter()
        .min_by_key(|e| e.span().map_or(0, |s| s.start))
    {
        return Err(ExperimentError::from_toml(path, text, first, true));
    }
    // The whole file: a missing top-level key is reported at its start (1:1).
    let doc = toml::Spanned::new(0..text.len(), doc.into_inner());
    validate::validate(doc, path).map_err(|e| match e {
        crate::fields::Invalid::Type(e) => ExperimentError::from_toml(path, text, &e, false),
        crate::fields::Invalid::Problem(p) => {
            ExperimentError::at(path, text, p.span.start, p.field, p.message)
        }
    })
}

/// Loads every `*.toml` in `dir` except matrix files, sorted by file name. Stops at the
/// first file with a problem.
pub fn load_dir(dir: &Path) -> Result<Vec<Experiment>, ExperimentError> {
    let io = |e: std::io::Error| ExperimentError::io(dir, &e);
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let is_toml = path.extension().is_some_and(|x| x == "toml") && path.is_file();
        // Matrix files (`matrix.toml`, or any with `postures`/`scenarios`) are not experiments.
        if is_toml && !matrix::is_matrix(&path)? {
            paths.push(path);
        }
    }
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    paths.iter().map(|p| load(p)).collect()
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
