//! The matrix file: postures crossed with fault scenarios under one seed, one experiment per
//! posture × scenario, so that postures can be compared on the same faults
//! (`experiments/matrix.toml`; every key is in `experiments/README.md`, "The matrix").
//!
//! # Format
//! ```toml
//! name = "postures"             # default: the file name without .toml
//! description = "…"
//! seed = 1                      # default 1; the same seed for every cell
//! postures = ["single-region", "active-passive-async"]   # required, known, no duplicates
//!
//! [base]                        # experiment keys shared by every cell (not name, description,
//! duration = "12s"              # posture, seed, faults or slo: the matrix sets those)
//! [base.failover]
//! interval = "500ms"
//!
//! [slo]                         # defaults for every cell: rto, rpo, max_stale_read_rate
//! rpo = "0s"
//! [slo.active-passive-async]    # what one posture promises, overriding the defaults key by key
//! rpo = "3s"
//!
//! [[scenarios]]                 # required, at least one; names unique, [a-z0-9-]
//! name = "region-loss"
//! description = "…"
//! objectives = ["rto", "rpo"]   # which SLO keys this scenario exercises (default: all)
//! [[scenarios.faults]]          # exactly an experiment's [[faults]]
//! kind = "kill_region"
//! region = "us"
//! at = "4s"
//! ```
//!
//! # Expansion
//! Each cell is written as an experiment TOML document and validated by the experiment loader
//! ([`super::parse`]), so a cell is exactly what the same experiment file would give: the
//! `[base]` tables, `posture`, the matrix's `seed`, the scenario's `[[faults]]`, the merged
//! `[slo]` (defaults, then the posture's table key by key, then only the scenario's
//! `objectives`), `name = "<scenario>-<short>"` ([`short_name`]: `single`, `ap-async`,
//! `ap-semi`, `ap-sync`, `aa-part`, `aa-lww`, `aa-crdt`) and a description made of the
//! scenario's and the posture's. Cells come scenario-major in file order, postures in the
//! order listed; each has [`Experiment::scenario`] set and [`Experiment::source`] = the
//! matrix file.
//!
//! Posture adjustments, so that one `[base]` suits every posture:
//! - `single-region`: the failover controller runs in manual mode (there is nothing to fail
//!   over to; `auto` is an error there) and `fencing` is dropped;
//! - the active-active postures: `fencing` is dropped (nothing is promoted, so nothing is
//!   fenced; `true` is an error there).
//!
//! Nothing else is adjusted: a base key that a posture refuses (e.g. `travel_fraction > 0`
//! with `single-region`) is an error naming that posture.
//!
//! # Why `objectives`
//! The SLO verdict fails an objective it cannot measure: an RTO where no fault hit the
//! primary reads "no primary failure" and fails (added latency fails nothing). And some
//! figures measure the scenario rather than the posture: under a partition, whoever is on the
//! far side of the cut gets going again when it heals, whatever the posture. A nightly job
//! that fails on such a cell tells nobody anything, so each scenario says which of the
//! promises it exercises, and the others are left out of its cells.
//!
//! # Errors
//! Like experiment files: `file:line:column: field: message`, the line and column in the
//! matrix file. In order: TOML syntax, wrong types and unknown keys of the matrix's own
//! tables, matrix-level checks (postures, scenario names, objectives, `[slo]` keys, keys
//! `[base]` may not hold) — the first in file order —, then `[base]` and `[slo]` as validated
//! for each posture, then each cell. A cell's error is mapped back from the cell's field to
//! the matrix: a fault's field to the scenario's `[[scenarios.faults]]` entry, anything else
//! to `[base]` or `[slo]` (the posture's table when it holds the key). The field names the
//! cell, and the posture only when the problem is not the same for every posture:
//! - `scenarios[1] (partition) × single-region: faults[0].links[0]: link "replication" does
//!   not exist in single-region (…)`
//! - `scenarios[1] (partition): faults[0].at: starts at 15s, not before the end …`
//! - `postures[0] (single-region): base.workload.travel_fraction: travellers call …`
//! - `base.duration: required: how long the workload runs, e.g. "20s"`

use super::error::ExperimentError;
use super::{Experiment, MATRIX_FILE};
use crate::posture::Posture;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A matrix file, expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Short name (the folder of a matrix run); default: the file name without `.toml`.
    pub name: String,
    /// What the comparison shows.
    pub description: String,
    /// The file it came from.
    pub source: PathBuf,
    /// The seed of every cell.
    pub seed: u64,
    /// One validated experiment per scenario × posture: scenario-major in file order,
    /// postures in the order listed.
    pub cells: Vec<Experiment>,
}

/// The SLO keys, in the order verdicts list them.
pub const OBJECTIVES: [&str; 3] = ["rto", "rpo", "max_stale_read_rate"];

/// Keys `[base]` may not hold, and why.
const NOT_BASE: [(&str, &str); 6] = [
    ("name", "each cell is named <scenario>-<posture short name>"),
    (
        "description",
        "each cell's description is made of its scenario's and its posture's",
    ),
    ("posture", "the matrix sets it per cell from `postures`"),
    ("seed", "the matrix's top-level `seed` is every cell's seed"),
    (
        "faults",
        "faults belong to the scenarios: [[scenarios.faults]]",
    ),
    (
        "slo",
        "the matrix's top-level [slo] (defaults and one table per posture) gives every cell's SLO",
    ),
];

/// The posture's short name in cell names: `single`, `ap-async`, `ap-semi`, `ap-sync`,
/// `aa-part`, `aa-lww`, `aa-crdt`.
pub fn short_name(posture: Posture) -> &'static str {
    match posture {
        Posture::SingleRegion => "single",
        Posture::ActivePassiveAsync => "ap-async",
        Posture::ActivePassiveSemiSync => "ap-semi",
        Posture::ActivePassiveSync => "ap-sync",
        Posture::ActiveActivePartitioned => "aa-part",
        Posture::ActiveActiveLww => "aa-lww",
        Posture::ActiveActiveCrdt => "aa-crdt",
    }
}

/// One sentence on how the posture is wired, for cell descriptions.
fn posture_blurb(posture: Posture) -> &'static str {
    match posture {
        Posture::SingleRegion => {
            "everything runs in us and eu users cross the ocean to reach it; there is no \
             standby, so a region loss is a total outage until the region returns (failover \
             manual)"
        }
        Posture::ActivePassiveAsync => {
            "primary in us, streaming replica in eu; commits wait for no one, so a failover \
             loses what was not yet shipped"
        }
        Posture::ActivePassiveSemiSync => {
            "primary in us, streaming replica in eu; commits wait for the replica to write the \
             WAL (remote_write)"
        }
        Posture::ActivePassiveSync => {
            "primary in us, streaming replica in eu; commits wait for the replica to apply the \
             WAL (remote_apply)"
        }
        Posture::ActiveActivePartitioned => {
            "a primary per region; each user's keys are written only in their home region, so \
             nothing conflicts, and a region's users wait for it when it is lost"
        }
        Posture::ActiveActiveLww => {
            "a primary per region; both write shared keys and the latest write (hybrid logical \
             clock) wins"
        }
        Posture::ActiveActiveCrdt => {
            "a primary per region; shared keys by last write wins, counters as PN-counters"
        }
    }
}

/// Whether `path` is a matrix file rather than an experiment: it is named
/// [`MATRIX_FILE`], or its top level has `postures` or `scenarios` (keys no experiment has).
pub fn is_matrix(path: &Path) -> Result<bool, ExperimentError> {
    if path.file_name().is_some_and(|n| n == MATRIX_FILE) {
        return Ok(true);
    }
    let text = super::error::read_text(path)?;
    let (table, _) = DeTable::parse_recoverable(&text);
    Ok(table
        .get_ref()
        .iter()
        .any(|(k, _)| matches!(k.get_ref().as_ref(), "postures" | "scenarios")))
}

/// Reads, validates and expands the matrix file at `path`.
pub fn load(path: &Path) -> Result<Matrix, ExperimentError> {
    let text = super::error::read_text(path)?;
    parse(&text, path)
}

/// Validates and expands the text of a matrix file; `path` names it in errors, is every
/// cell's [`Experiment::source`], and gives the default name (its stem).
pub fn parse(text: &str, path: &Path) -> Result<Matrix, ExperimentError> {
    let (_, syntax_errors) = DeTable::parse_recoverable(text);
    if let Some(first) = syntax_errors
        .iter()
        .min_by_key(|e| e.span().map_or(0, |s| s.start))
    {
        return Err(ExperimentError::from_toml(path, text, first, true));
    }
    let spec: MatrixSpec =
        toml::from_str(text).map_err(|e| ExperimentError::from_toml(path, text, &e, false))?;
    let raw: toml::Table =
        toml::from_str(text).map_err(|e| ExperimentError::from_toml(path, text, &e, false))?;
    let file = File {
        path,
        text,
        spans: Spans::new(text),
    };
    let checked = file.check(&spec, &raw)?;
    let cells = file.expand(&checked)?;
    Ok(Matrix {
        name: checked.name,
        description: spec.description.clone().unwrap_or_default(),
        source: path.to_path_buf(),
        seed: checked.seed,
        cells,
    })
}

/// What the file says (the matrix's own keys; `[base]`, `[slo]` and faults stay raw and
/// are checked by the experiment validator, cell by cell).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixSpec {
    name: Option<Spanned<String>>,
    description: Option<String>,
    seed: Option<u64>,
    postures: Option<Spanned<Vec<Spanned<String>>>>,
    base: Option<toml::Table>,
    slo: Option<toml::Table>,
    scenarios: Option<Spanned<Vec<Spanned<ScenarioSpec>>>>,
}

/// One `[[scenarios]]` entry.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioSpec {
    name: Option<Spanned<String>>,
    description: Option<String>,
    objectives: Option<Spanned<Vec<Spanned<String>>>>,
    /// An experiment's `[[faults]]`: taken raw from the document and checked in each cell.
    #[serde(rename = "faults")]
    _faults: Option<serde::de::IgnoredAny>,
}

/// The matrix after its own checks: what the cells are built from.
struct Checked {
    name: String,
    seed: u64,
    /// Each posture with its index in `postures`.
    postures: Vec<(usize, Posture)>,
    base: toml::Table,
    /// `[slo]`'s own keys (the defaults).
    slo_defaults: toml::Table,
    /// `[slo.<posture>]` tables.
    slo_of: BTreeMap<String, toml::Table>,
    scenarios: Vec<Scenario>,
}

struct Scenario {
    index: usize,
    name: String,
    description: String,
    /// None: every objective.
    objectives: Option<Vec<String>>,
    faults: Option<toml::Value>,
}

/// A problem found in the matrix's own keys.
struct Problem {
    span: Range<usize>,
    field: String,
    message: String,
}

/// A cell's error, mapped back to the matrix.
#[derive(PartialEq)]
struct Mapped {
    /// Dotted path in the matrix file, e.g. `scenarios[1].faults[0].links[0]`.
    path: String,
    /// Whether the cell's error is on the key (an unknown key) rather than on its value.
    at_key: bool,
    message: String,
}

struct File<'a> {
    path: &'a Path,
    text: &'a str,
    spans: Spans,
}

impl File<'_> {
    fn error(&self, span: Range<usize>, field: String, message: String) -> ExperimentError {
        ExperimentError::at(self.path, self.text, span.start, field, message)
    }

    /// The matrix's own checks; the first problem in file order.
    fn check(&self, spec: &MatrixSpec, raw: &toml::Table) -> Result<Checked, ExperimentError> {
        let mut problems = Vec::new();
        let mut report = |span: Range<usize>, field: String, message: String| {
            problems.push(Problem {
                span,
                field,
                message,
            })
        };

        let name = match &spec.name {
            None => self
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "matrix".into()),
            Some(n) => {
                let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
                if n.get_ref().is_empty() || !n.get_ref().chars().all(ok) {
                    report(
                        n.span(),
                        "name".into(),
                        format!(
                            "\"{}\" is not a usable name: use letters, digits, '-', '_' or '.' \
                             (it names the matrix's run folder)",
                            n.get_ref()
                        ),
                    );
                }
                n.get_ref().clone()
            }
        };

        let all = Posture::ALL
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ");
        let mut postures: Vec<(usize, Posture)> = Vec::new();
        match &spec.postures {
            None => report(
                0..0,
                "postures".into(),
                format!(
                    "required: the postures to compare, e.g. [\"single-region\", \"active-passive-async\"]; known: {all}"
                ),
            ),
            Some(list) if list.get_ref().is_empty() => report(
                list.span(),
                "postures".into(),
                format!("empty: list at least one posture; known: {all}"),
            ),
            Some(list) => {
                for (j, entry) in list.get_ref().iter().enumerate() {
                    let field = format!("postures[{j}]");
                    let text = entry.get_ref().trim();
                    match Posture::parse(text) {
                        None => report(
                            entry.span(),
                            field,
                            format!("unknown posture \"{}\"; one of {all}", entry.get_ref()),
                        ),
                        Some(p) => {
                            if let Some((k, _)) = postures.iter().find(|(_, q)| *q == p) {
                                report(
                                    entry.span(),
                                    field,
                                    format!("\"{p}\" is listed twice (also postures[{k}])"),
                                );
                            } else {
                                postures.push((j, p));
                            }
                        }
                    }
                }
            }
        }

        let base = spec.base.clone().unwrap_or_default();
        for (key, why) in NOT_BASE {
            if base.contains_key(key) {
                let field = format!("base.{key}");
                report(
                    self.spans.key(&field),
                    field,
                    format!("not a [base] key: {why}"),
                );
            }
        }

        let mut slo_defaults = toml::Table::new();
        let mut slo_of = BTreeMap::new();
        for (key, value) in spec.slo.iter().flatten() {
            let field = format!("slo.{key}");
            if OBJECTIVES.contains(&key.as_str()) {
                slo_defaults.insert(key.clone(), value.clone());
            } else if Posture::parse(key).is_some() {
                match value.as_table() {
                    Some(t) => {
                        slo_of.insert(key.clone(), t.clone());
                    }
                    None => report(
                        self.spans.of(&field),
                        field,
                        format!(
                            "must be a table ([slo.{key}]) of what {key} promises: {}",
                            OBJECTIVES.join(", ")
                        ),
                    ),
                }
            } else {
                report(
                    self.spans.key(&field),
                    field,
                    format!(
                        "unknown key: [slo] takes {} (defaults) and one table per posture \
                         ([slo.<posture>], postures: {all})",
                        OBJECTIVES.join(", ")
                    ),
                );
            }
        }

        let raw_scenarios = raw.get("scenarios").and_then(toml::Value::as_array);
        let mut scenarios: Vec<Scenario> = Vec::new();
        match &spec.scenarios {
            None => report(
                0..0,
                "scenarios".into(),
                "required: at least one [[scenarios]] with a name and its [[scenarios.faults]]"
                    .into(),
            ),
            Some(list) if list.get_ref().is_empty() => report(
                list.span(),
                "scenarios".into(),
                "empty: define at least one [[scenarios]]".into(),
            ),
            Some(list) => {
                for (i, entry) in list.get_ref().iter().enumerate() {
                    let s = entry.get_ref();
                    let p = |key: &str| format!("scenarios[{i}].{key}");
                    let name = match &s.name {
                        None => {
                            report(
                                self.spans.of(&format!("scenarios[{i}]")),
                                p("name"),
                                "required: a name of lowercase letters, digits and '-', e.g. \
                                 \"region-loss\" (it starts the cells' names)"
                                    .into(),
                            );
                            None
                        }
                        Some(n) => {
                            let text = n.get_ref();
                            let ok =
                                |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
                            if text.is_empty() || !text.chars().all(ok) {
                                report(
                                    n.span(),
                                    p("name"),
                                    format!(
                                        "\"{text}\" is not a usable scenario name: use \
                                         lowercase letters, digits and '-' (it starts the \
                                         cells' names)"
                                    ),
                                );
                                None
                            } else if let Some(other) = scenarios.iter().find(|o| o.name == *text) {
                                report(
                                    n.span(),
                                    p("name"),
                                    format!(
                                        "scenario \"{text}\" is defined twice (also \
                                         scenarios[{}])",
                                        other.index
                                    ),
                                );
                                None
                            } else {
                                Some(text.clone())
                            }
                        }
                    };
                    let objectives = match &s.objectives {
                        None => Some(None),
                        Some(list) => {
                            let mut out: Vec<String> = Vec::new();
                            let mut ok = true;
                            for (k, o) in list.get_ref().iter().enumerate() {
                                let field = p(&format!("objectives[{k}]"));
                                let text = o.get_ref().trim();
                                if !OBJECTIVES.contains(&text) {
                                    report(
                                        o.span(),
                                        field,
                                        format!(
                                            "unknown objective \"{}\"; one of {}",
                                            o.get_ref(),
                                            OBJECTIVES.join(", ")
                                        ),
                                    );
                                    ok = false;
                                } else if out.iter().any(|x| x == text) {
                                    report(o.span(), field, format!("\"{text}\" is listed twice"));
                                    ok = false;
                                } else {
                                    out.push(text.to_string());
                                }
                            }
                            ok.then_some(Some(out))
                        }
                    };
                    let faults = raw_scenarios
                        .and_then(|a| a.get(i))
                        .and_then(toml::Value::as_table)
                        .and_then(|t| t.get("faults"))
                        .cloned();
                    if let (Some(name), Some(objectives)) = (name, objectives) {
                        scenarios.push(Scenario {
                            index: i,
                            name,
                            description: s.description.clone().unwrap_or_default(),
                            objectives,
                            faults,
                        });
                    }
                }
            }
        }

        // A stable sort: for problems at the same place, the first found.
        problems.sort_by_key(|p| p.span.start);
        if let Some(p) = problems.into_iter().next() {
            return Err(self.error(p.span, p.field, p.message));
        }
        Ok(Checked {
            name,
            seed: spec.seed.unwrap_or(1),
            postures,
            base,
            slo_defaults,
            slo_of,
            scenarios,
        })
    }

    /// `[base]` and `[slo]` for each posture, then every cell.
    fn expand(&self, m: &Checked) -> Result<Vec<Experiment>, ExperimentError> {
        self.first_error(m, None)?;
        let mut cells = Vec::new();
        for scenario in &m.scenarios {
            cells.extend(self.first_error(m, Some(scenario))?);
        }
        Ok(cells)
    }

    /// Validates `scenario` (None: no faults, whole SLO) with every posture; the experiments,
    /// or the first posture's error (labelled with the posture unless every posture fails
    /// the same way).
    fn first_error(
        &self,
        m: &Checked,
        scenario: Option<&Scenario>,
    ) -> Result<Vec<Experiment>, ExperimentError> {
        let results: Vec<Result<Experiment, Mapped>> = m
            .postures
            .iter()
            .map(|&(j, posture)| self.cell(m, j, posture, scenario))
            .collect();
        let errors: Vec<(usize, Posture, &Mapped)> = m
            .postures
            .iter()
            .zip(&results)
            .filter_map(|(&(j, p), r)| r.as_ref().err().map(|e| (j, p, e)))
            .collect();
        let Some(&(j, posture, first)) = errors.first() else {
            return Ok(results
                .into_iter()
                .map(|r| r.ok().expect("no error"))
                .collect());
        };
        let same_everywhere = errors.len() == results.len() && errors.iter().all(|e| e.2 == first);
        let posture_label = (!same_everywhere).then_some((j, posture));
        Err(self.report(first, scenario, posture_label))
    }

    /// The error of a cell as a matrix error: position of the matrix key, field labelled with
    /// the cell.
    fn report(
        &self,
        e: &Mapped,
        scenario: Option<&Scenario>,
        posture: Option<(usize, Posture)>,
    ) -> ExperimentError {
        let span = self.spans.find(&e.path, e.at_key);
        let field = match scenario {
            Some(s) => {
                let prefix = format!("scenarios[{}].", s.index);
                let local = e.path.strip_prefix(&prefix).unwrap_or(&e.path);
                match posture {
                    Some((_, p)) => format!("scenarios[{}] ({}) × {p}: {local}", s.index, s.name),
                    None => format!("scenarios[{}] ({}): {local}", s.index, s.name),
                }
            }
            None => match posture {
                Some((j, p)) if !e.path.starts_with(&format!("slo.{p}")) => {
                    format!("postures[{j}] ({p}): {}", e.path)
                }
                _ => e.path.clone(),
            },
        };
        self.error(span, field, e.message.clone())
    }

    /// Builds and validates one cell (`scenario` None: `[base]` and the whole `[slo]` only).
    fn cell(
        &self,
        m: &Checked,
        j: usize,
        posture: Posture,
        scenario: Option<&Scenario>,
    ) -> Result<Experiment, Mapped> {
        let doc = document(m, posture, scenario);
        let text = toml::to_string(&doc).map_err(|e| Mapped {
            path: scenario.map_or("base".into(), |s| format!("scenarios[{}]", s.index)),
            at_key: false,
            message: format!("cannot be written as an experiment: {e}"),
        })?;
        match super::parse(&text, self.path) {
            Ok(mut experiment) => {
                experiment.scenario = scenario.map(|s| s.name.clone());
                Ok(experiment)
            }
            Err(e) => {
                let path = matrix_path(&e.field, j, posture, scenario, m);
                let at_key = Spans::new(&text).on_key(&e.field, offset_of(&text, e.line, e.column));
                let top_of_base = path
                    .strip_prefix("base.")
                    .is_some_and(|k| !k.contains(['.', '[']));
                let message = if at_key && top_of_base {
                    base_keys_only(&e.message)
                } else {
                    e.message
                };
                Err(Mapped {
                    path,
                    at_key,
                    message,
                })
            }
        }
    }
}

/// The experiment document of a cell.
fn document(m: &Checked, posture: Posture, scenario: Option<&Scenario>) -> toml::Table {
    use toml::Value;
    let mut doc = m.base.clone();
    if let Some(Value::Table(failover)) = doc.get_mut("failover") {
        if !posture.has_standby() {
            failover.insert("mode".into(), Value::String("manual".into()));
            failover.remove("fencing");
        }
        if posture.is_active_active() {
            failover.remove("fencing");
        }
    }
    doc.insert("posture".into(), Value::String(posture.name().into()));
    doc.insert("seed".into(), Value::Integer(m.seed as i64));
    let mut slo = m.slo_defaults.clone();
    if let Some(own) = m.slo_of.get(posture.name()) {
        slo.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if let Some(s) = scenario {
        doc.insert(
            "name".into(),
            Value::String(format!("{}-{}", s.name, short_name(posture))),
        );
        let what = match s.description.trim() {
            "" => format!("Scenario {}.", s.name),
            d => d.to_string(),
        };
        doc.insert(
            "description".into(),
            Value::String(format!(
                "{what} Posture {posture}: {}.",
                posture_blurb(posture)
            )),
        );
        if let Some(faults) = &s.faults {
            doc.insert("faults".into(), faults.clone());
        }
        if let Some(objectives) = &s.objectives {
            slo.retain(|k, _| objectives.iter().any(|o| o == k));
        }
    }
    if !slo.is_empty() {
        doc.insert("slo".into(), Value::Table(slo));
    }
    doc
}

/// Where the cell's `field` comes from in the matrix file.
fn matrix_path(
    field: &str,
    j: usize,
    posture: Posture,
    scenario: Option<&Scenario>,
    m: &Checked,
) -> String {
    let head = field.split(['.', '[']).next().unwrap_or("");
    match head {
        "faults" | "name" | "description" => match scenario {
            Some(s) => format!("scenarios[{}].{field}", s.index),
            None => field.to_string(),
        },
        "posture" => format!("postures[{j}]"),
        "seed" => "seed".into(),
        "slo" => {
            let rest = field.strip_prefix("slo.").unwrap_or("");
            let key = rest.split(['.', '[']).next().unwrap_or("");
            let own = m
                .slo_of
                .get(posture.name())
                .is_some_and(|t| t.contains_key(key));
            if own {
                format!("slo.{posture}.{rest}")
            } else {
                field.to_string()
            }
        }
        _ => format!("base.{field}"),
    }
}

/// The spans of every key and value of a TOML document, by dotted path (`base.network.rtt`,
/// `scenarios[1].faults[0].links[0]`).
struct Spans {
    /// Path → (span of the key, span of the value). An array element has no key: both are
    /// the element's span. A table's or an array of tables' value span is its header.
    by_path: HashMap<String, (Range<usize>, Range<usize>)>,
}

impl Spans {
    fn new(text: &str) -> Spans {
        let (tree, _) = DeTable::parse_recoverable(text);
        let mut by_path = HashMap::new();
        collect_table(tree.get_ref(), "", &mut by_path);
        Spans { by_path }
    }

    /// The span of the value at `path` (of its key when `key`), or of the value of its
    /// nearest enclosing key that the document has (a missing key is reported at its table);
    /// 0..0 when none.
    fn find(&self, path: &str, key: bool) -> Range<usize> {
        if let Some((k, v)) = self.by_path.get(path) {
            return if key || v.is_empty() { k } else { v }.clone();
        }
        let mut p = path;
        while let Some(i) = p.rfind(['.', '[']) {
            p = &p[..i];
            if let Some((k, v)) = self.by_path.get(p) {
                return if v.is_empty() { k } else { v }.clone();
            }
        }
        0..0
    }

    /// The span of the value at `path` (see [`Spans::find`]).
    fn of(&self, path: &str) -> Range<usize> {
        self.find(path, false)
    }

    /// The span of the key at `path` (see [`Spans::find`]).
    fn key(&self, path: &str) -> Range<usize> {
        self.find(path, true)
    }

    /// Whether byte `offset` lies on the key of `path` rather than on its value.
    fn on_key(&self, path: &str, offset: usize) -> bool {
        self.by_path
            .get(path)
            .is_some_and(|(k, v)| k != v && k.contains(&offset))
    }
}

type SpanMap = HashMap<String, (Range<usize>, Range<usize>)>;

fn collect_table(table: &DeTable<'_>, prefix: &str, out: &mut SpanMap) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        out.entry(path.clone())
            .or_insert((key.span(), value.span()));
        collect_value(value, &path, out);
    }
}

fn collect_value(value: &Spanned<DeValue<'_>>, path: &str, out: &mut SpanMap) {
    match value.get_ref() {
        DeValue::Table(t) => collect_table(t, path, out),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                let p = format!("{path}[{i}]");
                out.entry(p.clone()).or_insert((item.span(), item.span()));
                collect_value(item, &p, out);
            }
        }
        _ => {}
    }
}

/// Byte offset of 1-based `line` and `column` (in characters) in `text`.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let rest = &text[start.min(text.len())..];
    start
        + rest
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(rest.len(), |(i, _)| i)
}

/// serde's "unknown field `x`, expected one of `a`, `b`" for a key of `[base]`, with the keys
/// `[base]` may not hold left out of the list.
fn base_keys_only(message: &str) -> String {
    let Some((head, list)) = message.split_once(", expected one of ") else {
        return message.to_string();
    };
    let keys: Vec<&str> = list
        .split(", ")
        .filter(|k| !NOT_BASE.iter().any(|(n, _)| k.trim_matches('`') == *n))
        .collect();
    format!("{head}; [base] takes {}", keys.join(", "))
}

#[cfg(test)]
mod tests {
    //! Through the public API: the shipped matrix, reproducibility, and one test per kind of
    //! bad input, each asserting the whole `file:line:column: field: message` line.

    use super::*;
    use crate::experiment::{FailoverMode, FaultSpec, LinkSelector, PartitionMode, Slo};
    use crate::workload::plan::Plan;
    use std::time::Duration;

    fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/matrix.toml")
    }

    fn ok(text: &str) -> Matrix {
        parse(text, Path::new("m.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The error line for `text`, as a user would see it.
    fn err(text: &str) -> String {
        match parse(text, Path::new("m.toml")) {
            Ok(m) => panic!(
                "accepted: {:?}",
                m.cells.iter().map(|c| &c.name).collect::<Vec<_>>()
            ),
            Err(e) => e.to_string(),
        }
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// Two postures, two scenarios; the second scenario names a link single-region lacks
    /// (line 17), so the text as is fails; `SMALL.replace(REPLICATION, BETWEEN)` is valid.
    const SMALL: &str = r#"postures = ["single-region", "active-passive-async"]

[base]
duration = "10s"

[[scenarios]]
name = "region-loss"
[[scenarios.faults]]
kind = "kill_region"
region = "us"
at = "4s"

[[scenarios]]
name = "partition"
[[scenarios.faults]]
kind = "partition"
links = ["replication"]
at = "3s"
"#;
    const REPLICATION: &str = r#"links = ["replication"]"#;
    const BETWEEN: &str = r#"between = ["us", "eu"]"#;

    const POSTURES: &str = "single-region, active-passive-async, active-passive-semi-sync, \
                            active-passive-sync, active-active-partitioned, active-active-lww, \
                            active-active-crdt";

    #[test]
    fn the_shipped_matrix_expands_to_21_cells() {
        let m = load(&shipped()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((m.name.as_str(), m.seed), ("postures", 1));
        assert_eq!(m.source, shipped());
        let names: Vec<&str> = m.cells.iter().map(|c| c.name.as_str()).collect();
        let mut expected = Vec::new();
        for scenario in ["region-loss", "partition", "latency"] {
            for short in [
                "single", "ap-async", "ap-semi", "ap-sync", "aa-part", "aa-lww", "aa-crdt",
            ] {
                expected.push(format!("{scenario}-{short}"));
            }
        }
        assert_eq!(names, expected);

        for (i, cell) in m.cells.iter().enumerate() {
            let posture = Posture::ALL[i % 7];
            let scenario = ["region-loss", "partition", "latency"][i / 7];
            assert_eq!(cell.posture, posture, "{}", cell.name);
            assert_eq!(cell.scenario.as_deref(), Some(scenario));
            assert_eq!(cell.seed, 1);
            assert_eq!(cell.source, shipped());
            assert_eq!((cell.duration, cell.settle), (s(12), s(2)));
            assert_eq!(cell.network.rtt, Duration::from_millis(80));
            let w = &cell.workload;
            assert_eq!((w.users, w.rate_per_s, w.keys), (30, 150.0, 20));
            assert!(cell.description.contains(&format!("Posture {posture}: ")));

            // single-region: manual (nothing to fail over to); fencing only where a replica
            // is promoted.
            let f = &cell.failover;
            let mode = if posture == Posture::SingleRegion {
                FailoverMode::Manual
            } else {
                FailoverMode::Auto
            };
            assert_eq!(f.mode, mode, "{}", cell.name);
            let promotes = posture.has_standby() && !posture.is_active_active();
            assert_eq!(f.fencing, promotes, "{}", cell.name);
            assert_eq!(
                (f.interval, f.threshold, f.dns_ttl),
                (Duration::from_millis(500), 3, s(1))
            );

            // Defaults rto 6s / rpo 0s, each posture's table over them, and only the
            // scenario's objectives (rto only in region-loss).
            let rto = match posture {
                Posture::SingleRegion | Posture::ActiveActivePartitioned => s(8),
                Posture::ActiveActiveLww | Posture::ActiveActiveCrdt => s(4),
                _ => s(6),
            };
            let rpo = match posture {
                Posture::ActivePassiveAsync => s(3),
                _ => s(0),
            };
            let slo = Slo {
                rto: (scenario == "region-loss").then_some(rto),
                rpo: Some(rpo),
                max_stale_read_rate: None,
                max_false_failovers: None,
            };
            assert_eq!(cell.slo, slo, "{}", cell.name);

            assert_eq!(cell.faults.len(), 1, "{}", cell.name);
            let fault = &cell.faults[0];
            let between = LinkSelector::Between("us".into(), "eu".into());
            match scenario {
                "region-loss" => {
                    assert_eq!((fault.at, fault.heal_at), (s(4), Some(s(8))));
                    assert_eq!(
                        fault.fault,
                        FaultSpec::KillRegion {
                            region: "us".into()
                        }
                    );
                }
                "partition" => {
                    assert_eq!((fault.at, fault.heal_at), (s(3), Some(s(7))));
                    assert!(matches!(
                        &fault.fault,
                        FaultSpec::Partition { links, mode: PartitionMode::BlackHole, .. }
                            if *links == between
                    ));
                }
                _ => {
                    assert_eq!((fault.at, fault.heal_at), (s(2), Some(s(8))));
                    assert_eq!(
                        fault.fault,
                        FaultSpec::Latency {
                            links: between,
                            rtt: Duration::from_millis(120),
                            jitter: Duration::from_millis(20),
                        }
                    );
                }
            }
        }
    }

    #[test]
    fn a_cell_is_reproducible_byte_for_byte() {
        let a = load(&shipped()).unwrap_or_else(|e| panic!("{e}"));
        let b = load(&shipped()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a, b);
        // The plan is drawn lazily: compare it drawn in full, as the JSON it always was.
        let plan = |c: &Experiment| Plan::new(&c.workload, c.duration, c.seed).to_json();
        let faults = |c: &Experiment| serde_json::to_vec(&c.faults).expect("faults json");
        for (x, y) in a.cells.iter().zip(&b.cells) {
            assert_eq!(plan(x), plan(y), "{}", x.name);
            assert_eq!(faults(x), faults(y), "{}", x.name);
        }
        // One seed for every cell: every posture of a scenario gets the same plan.
        assert_eq!(plan(&a.cells[0]), plan(&a.cells[6]));
    }

    #[test]
    fn defaults_name_seed_and_every_objective() {
        let m = ok(&format!(
            "{}\n[slo]\nrto = \"9s\"\n",
            SMALL.replace(REPLICATION, BETWEEN)
        ));
        assert_eq!(
            (m.name.as_str(), m.seed, m.description.as_str()),
            ("m", 1, "")
        );
        let names: Vec<&str> = m.cells.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "region-loss-single",
                "region-loss-ap-async",
                "partition-single",
                "partition-ap-async"
            ]
        );
        // No objectives: every stated key is judged.
        assert!(m.cells.iter().all(|c| c.slo.rto == Some(s(9))));
        assert!(
            m.cells[0]
                .description
                .starts_with("Scenario region-loss. Posture single-region: ")
        );
    }

    #[test]
    fn is_matrix_tells_a_matrix_from_an_experiment() {
        assert!(is_matrix(&shipped()).unwrap());
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
        assert!(!is_matrix(&dir.join("ap-async-region-loss.toml")).unwrap());
        let missing = dir.join("no-such-file.toml");
        assert!(is_matrix(&missing).is_err());
    }

    #[test]
    fn an_unknown_posture_names_the_list() {
        let text = SMALL.replace(
            r#""active-passive-async"]"#,
            r#""active-passive-async", "active-active"]"#,
        );
        assert_eq!(
            err(&text),
            format!(
                r#"m.toml:1:54: postures[2]: unknown posture "active-active"; one of {POSTURES}"#
            )
        );
    }

    #[test]
    fn a_posture_listed_twice() {
        let text = SMALL.replace(
            r#""active-passive-async"]"#,
            r#""active-passive-async", "single-region"]"#,
        );
        assert_eq!(
            err(&text),
            r#"m.toml:1:54: postures[2]: "single-region" is listed twice (also postures[0])"#
        );
    }

    #[test]
    fn missing_or_empty_postures() {
        let missing = SMALL.replace(
            r#"postures = ["single-region", "active-passive-async"]"#,
            "",
        );
        assert_eq!(
            err(&missing),
            format!(
                r#"m.toml:1:1: postures: required: the postures to compare, e.g. ["single-region", "active-passive-async"]; known: {POSTURES}"#
            )
        );
        let empty = SMALL.replace(r#"["single-region", "active-passive-async"]"#, "[]");
        assert_eq!(
            err(&empty),
            format!("m.toml:1:12: postures: empty: list at least one posture; known: {POSTURES}")
        );
    }

    #[test]
    fn a_duplicate_scenario_name() {
        let text = SMALL.replace(r#"name = "partition""#, r#"name = "region-loss""#);
        assert_eq!(
            err(&text),
            r#"m.toml:14:8: scenarios[1].name: scenario "region-loss" is defined twice (also scenarios[0])"#
        );
    }

    #[test]
    fn bad_scenario_names_and_objectives() {
        let upper = SMALL.replace(r#"name = "partition""#, r#"name = "Partition""#);
        assert_eq!(
            err(&upper),
            "m.toml:14:8: scenarios[1].name: \"Partition\" is not a usable scenario name: use \
             lowercase letters, digits and '-' (it starts the cells' names)"
        );
        let unnamed = SMALL.replace("name = \"partition\"\n", "");
        assert_eq!(
            err(&unnamed),
            "m.toml:13:1: scenarios[1].name: required: a name of lowercase letters, digits and \
             '-', e.g. \"region-loss\" (it starts the cells' names)"
        );
        let objective = SMALL.replace(
            r#"name = "partition""#,
            "name = \"partition\"\nobjectives = [\"rpo\", \"rtt\"]",
        );
        assert_eq!(
            err(&objective),
            r#"m.toml:15:22: scenarios[1].objectives[1]: unknown objective "rtt"; one of rto, rpo, max_stale_read_rate"#
        );
        let none = SMALL.split("[[scenarios]]").next().unwrap().to_string();
        assert_eq!(
            err(&none),
            "m.toml:1:1: scenarios: required: at least one [[scenarios]] with a name and its \
             [[scenarios.faults]]"
        );
    }

    #[test]
    fn an_unknown_key_in_base() {
        let text = SMALL.replace(
            "duration = \"10s\"\n",
            "duration = \"10s\"\n[base.workload]\nuserz = 3\n",
        );
        assert_eq!(
            err(&text),
            "m.toml:6:1: base.workload.userz: unknown field `userz`, expected one of `users`, \
             `rate_per_s`, `read_fraction`, `keys`, `us_fraction`, `op_timeout`, \
             `travel_fraction`, `incr_fraction`, `counters`"
        );
        // At the top of [base], the keys the matrix sets are not offered.
        let top = SMALL.replace("duration = \"10s\"\n", "duration = \"10s\"\nusers = 3\n");
        assert_eq!(
            err(&top),
            "m.toml:5:1: base.users: unknown field `users`; [base] takes `duration`, `settle`, \
             `network`, `workload`, `cache`, `failover`"
        );
        let posture = SMALL.replace(
            "duration = \"10s\"\n",
            "duration = \"10s\"\nposture = \"single-region\"\n",
        );
        assert_eq!(
            err(&posture),
            "m.toml:5:1: base.posture: not a [base] key: the matrix sets it per cell from \
             `postures`"
        );
    }

    #[test]
    fn a_missing_base_key_points_at_base() {
        let text = SMALL.replace("duration = \"10s\"\n", "settle = \"1s\"\n");
        assert_eq!(
            err(&text),
            r#"m.toml:3:1: base.duration: required: how long the workload runs, e.g. "20s""#
        );
    }

    #[test]
    fn a_base_key_one_posture_refuses_names_the_posture() {
        let text = SMALL.replace(REPLICATION, BETWEEN).replace(
            "duration = \"10s\"\n",
            "duration = \"10s\"\n[base.workload]\ntravel_fraction = 0.2\n",
        );
        assert_eq!(
            err(&text),
            "m.toml:6:19: postures[0] (single-region): base.workload.travel_fraction: travellers \
             call the other region's app, and single-region has only us-app; use 0 or leave \
             travel_fraction out"
        );
    }

    #[test]
    fn a_link_missing_in_one_posture_points_at_the_scenario() {
        assert_eq!(
            err(SMALL),
            "m.toml:17:10: scenarios[1] (partition) × single-region: faults[0].links[0]: link \
             \"replication\" does not exist in single-region (there is no replica); links in \
             single-region: eu-users-to-us-app"
        );
    }

    #[test]
    fn a_fault_wrong_in_every_posture_names_only_the_scenario() {
        let late = SMALL
            .replace(REPLICATION, BETWEEN)
            .replace(r#"at = "3s""#, r#"at = "13s""#);
        assert_eq!(
            err(&late),
            "m.toml:18:6: scenarios[1] (partition): faults[0].at: starts at 13s, not before the \
             end of the workload (duration = 10s)"
        );
        let unknown = SMALL.replace(r#"at = "4s""#, "at = \"4s\"\nlinks = [\"replication\"]");
        assert_eq!(
            err(&unknown),
            "m.toml:12:9: scenarios[0] (region-loss): faults[0].links: not a key of a \
             kill_region fault (its keys: kind, at, heal_at, duration, region)"
        );
        let no_kind = SMALL.replace("kind = \"kill_region\"\n", "");
        assert_eq!(
            err(&no_kind),
            "m.toml:8:1: scenarios[0] (region-loss): faults[0].kind: required: one of latency, \
             partition, kill_node, kill_region, pause_node, clock_skew"
        );
        let typo = SMALL.replace(r#"at = "4s""#, "at = \"4s\"\nheal = \"5s\"");
        assert_eq!(
            err(&typo),
            "m.toml:12:1: scenarios[0] (region-loss): faults[0].heal: unknown field `heal`, \
             expected one of `kind`, `at`, `heal_at`, `duration`, `region`, `node`, `links`, \
             `between`, `mode`, `direction`, `rtt`, `jitter`, `offset`"
        );
    }

    #[test]
    fn slo_defaults_posture_tables_and_objectives() {
        let text = format!(
            "{}\n[slo]\nrto = \"6s\"\nrpo = \"0s\"\n[slo.active-passive-async]\nrpo = \"2s\"\n",
            SMALL.replace(REPLICATION, BETWEEN).replace(
                "name = \"partition\"\n",
                "name = \"partition\"\nobjectives = [\"rpo\"]\n"
            )
        );
        let m = ok(&text);
        let slo: Vec<(Option<Duration>, Option<Duration>)> =
            m.cells.iter().map(|c| (c.slo.rto, c.slo.rpo)).collect();
        assert_eq!(
            slo,
            [
                (Some(s(6)), Some(s(0))),
                (Some(s(6)), Some(s(2))),
                (None, Some(s(0))),
                (None, Some(s(2))),
            ]
        );

        let bad = format!("{SMALL}\n[slo.active-passive-async]\nrpo = \"2x\"\n");
        assert_eq!(
            err(&bad),
            "m.toml:21:7: slo.active-passive-async.rpo: invalid duration \"2x\" (unknown time \
             unit \"x\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, \
             years (and few variations)); write e.g. \"80ms\", \"1.5s\" or \"2m\""
        );
        let unknown = format!("{SMALL}\n[slo]\nrpoo = \"1s\"\n");
        assert_eq!(
            err(&unknown),
            format!(
                "m.toml:21:1: slo.rpoo: unknown key: [slo] takes rto, rpo, max_stale_read_rate \
                 (defaults) and one table per posture ([slo.<posture>], postures: {POSTURES})"
            )
        );
        let in_table = format!("{SMALL}\n[slo.single-region]\nrtoo = \"1s\"\n");
        assert_eq!(
            err(&in_table),
            "m.toml:21:1: slo.single-region.rtoo: unknown field `rtoo`, expected one of `rto`, \
             `rpo`, `max_stale_read_rate`, `max_false_failovers`"
        );
    }

    #[test]
    fn syntax_and_type_errors_of_the_matrix_itself() {
        assert_eq!(
            err(&SMALL
                .replace("seed", "x")
                .replace("[base]", "seed = -1\n[base]")),
            "m.toml:3:8: seed: invalid value: integer `-1`, expected u64"
        );
        assert_eq!(
            err(&SMALL.replace(r#"name = "partition""#, "name = \"partition\"\nfoo = 1")),
            "m.toml:15:1: scenarios[1].foo: unknown field `foo`, expected one of `name`, \
             `description`, `objectives`, `faults`"
        );
        assert_eq!(
            err(&SMALL.replace(r#"duration = "10s""#, r#"duration = "10s"#)),
            "m.toml:4:16: base.duration: invalid basic string, expected `\"`"
        );
    }
}
