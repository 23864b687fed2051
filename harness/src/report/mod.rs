//! Reports: rendered only from stored files (a run folder's `results.json`, and its
//! `history.jsonl` and `probes.json` for timelines), never from a live stack. Rendering the
//! same folder twice gives the same bytes, so a report can be re-rendered by a newer
//! regiondrill, diffed, or committed as an example.
//!
//! # Formats
//! [`render_run`] writes four files into a run folder, [`render_matrix`] the same four for a
//! matrix folder (every run's own, plus the matrix's):
//! - `report.txt` / `matrix.txt` ([`terminal`]): what the CLI prints, without colour, for
//!   a terminal or a CI log. `report.txt` is the run's table (finding, observed, stated,
//!   verdict); `matrix.txt` the comparison table of postures (at most 100 columns), then
//!   every run's table.
//! - `report.md` / `matrix.md` ([`markdown`]): GitHub-flavoured Markdown for a pull-request
//!   comment or `$GITHUB_STEP_SUMMARY`: a title, the comparison table, then one folded
//!   (`<details>`) section per experiment with its SLO checks and findings, so the summary
//!   stays short and an experiment that missed its SLO is shown unfolded.
//! - `report.html` / `matrix.html` ([`html`]): one self-contained page (inline CSS and SVG,
//!   no fonts, scripts or images fetched) to open offline or keep as a CI artifact: the
//!   comparison table, then per experiment its findings and three timelines — replication
//!   lag, error rate and write latency (p50/p99 per home region) over the run — with fault
//!   windows shaded and the failover steps (declared down, fenced, promoted, rerouted)
//!   marked ([`timeline`]).
//! - `junit.xml` ([`junit`]): for CI test reporters: one `<testsuite>` per experiment, one
//!   `<testcase>` per stated SLO, failing with "stated 6s, observed 7.2s" when missed; an
//!   experiment that could not run is an `<error>`.
//!
//! `results.json` itself is the format for machines (see `reports/README.md`).
//!
//! # Layout
//! - this file: loading run folders ([`load_run`]) and rendering them ([`render_run`],
//!   [`render_matrix`]); [`Entry`], one experiment of a comparison.
//! - [`matrix`]: `matrix.json`, the index of a matrix folder.
//! - `cells`: the text of every comparison cell, and the finding rows — which each checker
//!   writes itself ([`crate::checker::Findings::rows`]) — shared by all formats.
//! - [`terminal`], [`markdown`], [`html`] (with [`timeline`]), [`junit`]: one per format.
//! - [`merge`]: the slices of a sharded matrix, put back into one matrix folder.
//! - [`compare`]: two folders (last night's and tonight's) cell by cell: what regressed.
//! - [`trend`]: several nights' folders on one page, each cell's figures over time.

pub(crate) mod cells;
pub mod compare;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod matrix;
pub mod merge;
pub mod terminal;
pub mod timeline;
pub mod trend;

pub use cells::{dur, short_dur, short_posture};
pub use matrix::{MATRIX_INDEX, MATRIX_SCHEMA, MatrixIndex, MatrixRun, ShardRecord};

use crate::history::{History, HistoryError, Probes};
use crate::run_folder::{RESULTS_SCHEMA, Results};
use std::path::{Path, PathBuf};

/// A report could not be rendered: names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read (missing, unreadable).
    #[error("{}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file was read but is not what it should be (not JSON, wrong schema, bad line).
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A report file could not be written.
    #[error("writing {}: {message}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// A run folder as stored: what every format is rendered from.
#[derive(Debug, Clone)]
pub struct StoredRun {
    /// The run folder.
    pub dir: PathBuf,
    /// `results.json`.
    pub results: Results,
    /// `history.jsonl` (None when absent: the timelines are left out).
    pub history: Option<History>,
    /// `probes.json` (None when absent: the lag timeline falls back to `results.json`'s
    /// series, without the never-replicated heartbeats).
    pub probes: Option<Probes>,
}

/// `results.json` in a run folder.
pub const RESULTS_FILE: &str = "results.json";
/// `history.jsonl` in a run folder.
pub const HISTORY_FILE: &str = "history.jsonl";
/// `probes.json` in a run folder.
pub const PROBES_FILE: &str = "probes.json";

/// Reads a run folder: `results.json` (required), `history.jsonl` and `probes.json`
/// (optional; an absent file is None, a present but unreadable one is an error).
pub fn load_run(dir: &Path) -> Result<StoredRun, ReportError> {
    let results = load_results(dir)?;
    let history_path = dir.join(HISTORY_FILE);
    let history = if history_path.is_file() {
        Some(History::load(&history_path).map_err(|e| match e {
            HistoryError::Io(message) => ReportError::Read {
                path: history_path.clone(),
                message,
            },
            HistoryError::Parse { .. } => ReportError::Invalid {
                path: history_path.clone(),
                message: e.to_string(),
            },
        })?)
    } else {
        None
    };
    let probes_path = dir.join(PROBES_FILE);
    let probes = if probes_path.is_file() {
        Some(read_json::<Probes>(&probes_path, "probes")?)
    } else {
        None
    };
    Ok(StoredRun {
        dir: dir.to_path_buf(),
        results,
        history,
        probes,
    })
}

/// Reads only a run folder's `results.json`, checking its schema.
pub fn load_results(dir: &Path) -> Result<Results, ReportError> {
    let path = dir.join(RESULTS_FILE);
    let marker = dir.join(crate::run_folder::INCOMPLETE_FILE);
    if !path.is_file() && marker.is_file() {
        let why: Option<crate::run_folder::Incomplete> = std::fs::read(&marker)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        return Err(ReportError::Read {
            path: marker,
            message: format!(
                "the run is incomplete ({}): it has no verdict to report",
                why.map_or("reason unreadable".into(), |w| w.reason)
            ),
        });
    }
    if !path.is_file() && dir.is_dir() {
        return Err(ReportError::Read {
            path,
            message: "missing: not a run folder (regiondrill writes results.json last; \
                      the run may have been interrupted)"
                .into(),
        });
    }
    // Check the schema first, so a results.json of another version says so rather than
    // naming the first field that moved.
    let value: serde_json::Value = read_json(&path, "JSON")?;
    let schema = value.get("schema").and_then(|s| s.as_str()).unwrap_or("");
    if schema != RESULTS_SCHEMA {
        return Err(ReportError::Invalid {
            path,
            message: format!("schema is {schema:?}, this regiondrill reads {RESULTS_SCHEMA:?}"),
        });
    }
    serde_json::from_value(value).map_err(|e| ReportError::Invalid {
        path,
        message: format!("not valid results: {e}"),
    })
}

/// Reads and parses a JSON file; `what` names the expected content in errors.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
) -> Result<T, ReportError> {
    let bytes = std::fs::read(path).map_err(|e| ReportError::Read {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ReportError::Invalid {
        path: path.to_path_buf(),
        message: format!("not valid {what}: {e}"),
    })
}

pub(crate) fn write_file(path: &Path, content: &str) -> Result<(), ReportError> {
    std::fs::write(path, content).map_err(|e| ReportError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// One experiment of a comparison: its results, or why it could not run.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    /// It ran: its `results.json`.
    Ran(&'a Results),
    /// It could not run (the stack could not be brought up, it was interrupted), or its run
    /// folder could not be read.
    CouldNotRun {
        /// The experiment's name.
        experiment: &'a str,
        /// Its posture's name.
        posture: &'a str,
        /// The matrix scenario, when a matrix generated it.
        scenario: Option<&'a str>,
        /// Why.
        error: &'a str,
    },
}

impl<'a> Entry<'a> {
    /// The experiment's name.
    pub fn experiment(&self) -> &'a str {
        match *self {
            Entry::Ran(r) => &r.experiment.name,
            Entry::CouldNotRun { experiment, .. } => experiment,
        }
    }

    /// The posture's name.
    pub fn posture(&self) -> &'a str {
        match *self {
            Entry::Ran(r) => r.experiment.posture.name(),
            Entry::CouldNotRun { posture, .. } => posture,
        }
    }
}

impl<'a> From<&'a Results> for Entry<'a> {
    fn from(r: &'a Results) -> Entry<'a> {
        Entry::Ran(r)
    }
}

impl<'a> From<&Entry<'a>> for Entry<'a> {
    fn from(e: &Entry<'a>) -> Entry<'a> {
        *e
    }
}

impl<'a> From<&'a Box<Results>> for Entry<'a> {
    fn from(r: &'a Box<Results>) -> Entry<'a> {
        Entry::Ran(r)
    }
}

/// One run rendered: what a matrix page reuses.
struct RenderedRun {
    results: Results,
    /// The HTML timelines (figures), drawn once from the history.
    charts: String,
}

/// Renders a run folder into `report.txt`, `report.md`, `report.html` and `junit.xml`
/// beside its `results.json`.
pub fn render_run(dir: &Path) -> Result<(), ReportError> {
    let run = load_run(dir)?;
    render_stored(&run).map(|_| ())
}

fn render_stored(run: &StoredRun) -> Result<RenderedRun, ReportError> {
    let r = &run.results;
    let entries = [Entry::Ran(r)];
    let charts = html::charts(run);
    write_file(
        &run.dir.join("report.txt"),
        &terminal::run_report(&run.results),
    )?;
    let title = format!(
        "{} — {}",
        r.experiment.name,
        cells::verdict_line(r.slo.passed)
    );
    write_file(
        &run.dir.join("report.md"),
        &markdown::page(&title, None, &entries),
    )?;
    write_file(
        &run.dir.join("report.html"),
        &html::page(&title, None, &entries, &[charts.as_str()]),
    )?;
    write_file(
        &run.dir.join("junit.xml"),
        &junit::document(&r.experiment.name, &entries),
    )?;
    Ok(RenderedRun {
        results: run.results.clone(),
        charts,
    })
}

/// One run of a matrix, as rendered (or why it is not).
enum MatrixPart {
    Ran(Box<RenderedRun>),
    Failed { run: usize, error: String },
}

/// Renders a matrix folder: every run folder listed in its `matrix.json` (as
/// [`render_run`]), then `matrix.txt`, `matrix.md`, `matrix.html` and `junit.xml` (every
/// experiment's test cases) beside it. An experiment that could not run, or whose run
/// folder cannot be read, is a "could not run" row and a JUnit `<error>`; the others are
/// still rendered. Fails only when `matrix.json` cannot be read or a file cannot be written.
pub fn render_matrix(dir: &Path) -> Result<(), ReportError> {
    let index = MatrixIndex::load(dir)?;
    let mut parts = Vec::with_capacity(index.runs.len());
    for (i, run) in index.runs.iter().enumerate() {
        if let Some(error) = &run.error {
            parts.push(MatrixPart::Failed {
                run: i,
                error: error.clone(),
            });
            continue;
        }
        match load_run(&dir.join(&run.dir)) {
            Ok(stored) => parts.push(MatrixPart::Ran(Box::new(render_stored(&stored)?))),
            Err(e) => parts.push(MatrixPart::Failed {
                run: i,
                error: format!("its run folder cannot be reported: {e}"),
            }),
        }
    }
    let entries: Vec<Entry> = parts
        .iter()
        .map(|p| match p {
            MatrixPart::Ran(r) => Entry::Ran(&r.results),
            MatrixPart::Failed { run, error } => index.runs[*run].could_not_run(error),
        })
        .collect();
    let charts: Vec<&str> = parts
        .iter()
        .map(|p| match p {
            MatrixPart::Ran(r) => r.charts.as_str(),
            MatrixPart::Failed { .. } => "",
        })
        .collect();
    write_file(
        &dir.join("matrix.txt"),
        &terminal::matrix_text(&index, &entries),
    )?;
    let title = format!("matrix {}", index.name);
    let subtitle = index.subtitle();
    write_file(
        &dir.join("matrix.md"),
        &markdown::page(&title, Some(&subtitle), &entries),
    )?;
    write_file(
        &dir.join("matrix.html"),
        &html::page(&title, Some(&subtitle), &entries, &charts),
    )?;
    write_file(
        &dir.join("junit.xml"),
        &junit::document(&index.name, &entries),
    )?;
    Ok(())
}
