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
//! [[scenarios.operations]]      # exactly an experiment's [[operations]] (optional;
//! kind = "rejoin"               # active-passive postures only)
//! at = "8s"
//!
//! [[variants]]                  # optional: a third dimension, e.g. HA managers or their
//! name = "patroni-tight"        # settings; names unique, [a-z0-9-]
//! description = "…"
//! [variants.failover]           # any [base] key: replaces [base]'s (a table whole)
//! manager = "patroni"
//! ```
//!
//! # Expansion
//! Each cell is an experiment document assembled from the matrix's own pieces, spans kept:
//! the `[base]` tables, `posture`, the matrix's `seed`, the scenario's `[[faults]]` and
//! `[[operations]]`, the
//! merged `[slo]` (defaults, then the posture's table key by key, then only the scenario's
//! `objectives`), `name = "<scenario>-<short>"` ([`short_name`]: `single`, `ap-async`,
//! `ap-semi`, `ap-sync`, `aa-part`, `aa-lww`, `aa-crdt`) and a description made of the
//! scenario's and the posture's. With `[[variants]]`, every scenario × posture is made once
//! per variant, its keys replacing `[base]`'s: named `<scenario>-<short>-<variant>`, its
//! scenario shown as `<scenario>/<variant>`, its description with the variant's. It is validated as an experiment file's document is, so a
//! cell is exactly what the same experiment file would give, and every problem is already
//! placed in the matrix file. Cells come scenario-major in file order, postures in the order
//! listed (variant by variant, in file order, within a scenario); each has
//! [`Experiment::scenario`] set and [`Experiment::source`] = the matrix
//! file.
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
//! for each posture, then each cell, whose first problem in the matrix file's order is
//! reported. A cell's problem is at its place in the matrix (a missing experiment key at
//! `[base]`); its field is named from the matrix: a fault's field in the scenario's
//! `[[scenarios.faults]]` entry, anything else in `[base]` or `[slo]` (the posture's table
//! when it holds the key). The field names the cell, and the posture only when the problem is
//! not the same for every posture:
//! - `scenarios[1] (partition) × single-region: faults[0].links[0]: link "replication" does
//!   not exist in single-region (…)`
//! - `scenarios[1] (partition): faults[0].at: starts at 15s, not before the end …`
//! - `postures[0] (single-region): base.workload.travel_fraction: travellers call …`
//! - `base.duration: required: how long the workload runs, e.g. "20s"`

use super::error::{ExperimentError, field_in};
use super::{Experiment, MATRIX_FILE, validate};
use crate::fields::{Checker, Invalid, Problem};
use crate::posture::Posture;
use serde::Deserialize;
use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue, ValueDeserializer};
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
const NOT_BASE: [(&str, &str); 8] = [
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
        "operations",
        "operations belong to the scenarios: [[scenarios.operations]]",
    ),
    (
        "slo",
        "the matrix's top-level [slo] (defaults and one table per posture) gives every cell's SLO",
    ),
    (
        "residency",
        "residency drills are single experiments for now (a matrix has no residency column)",
    ),
];

/// The posture's short name in cell names and tables: `single`, `ap-async`, `ap-semi`,
/// `ap-sync`, `ap-quorum`, `aa-part`, `aa-lww`, `aa-crdt`.
pub fn short_name(posture: Posture) -> &'static str {
    match posture {
        Posture::SingleRegion => "single",
        Posture::ActivePassiveAsync => "ap-async",
        Posture::ActivePassiveSemiSync => "ap-semi",
        Posture::ActivePassiveSync => "ap-sync",
        Posture::ActivePassiveQuorum => "ap-quorum",
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
        Posture::ActivePassiveQuorum => {
            "primary in the first region, a streaming replica in every other; commits wait for \
             any one replica to flush the WAL (ANY 1), the nearest while it answers"
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
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    if let Some(first) = syntax_errors
        .iter()
        .min_by_key(|e| e.span().map_or(0, |s| s.start))
    {
        return Err(ExperimentError::from_toml(path, text, first, true));
    }
    let whole = Spanned::new(0..text.len(), DeValue::Table(doc.get_ref().clone()));
    let spec = MatrixSpec::deserialize(ValueDeserializer::from(whole))
        .map_err(|e| ExperimentError::from_toml(path, text, &e, false))?;
    let error = |p: Problem| ExperimentError::at(path, text, p.span.start, p.field, p.message);
    let m = check(&spec, doc.get_ref(), path).map_err(error)?;
    // `[base]` and `[slo]` for each posture first, then every cell.
    m.cells(None, None).map_err(error)?;
    let variants: Vec<Option<&Variant>> = match m.variants.is_empty() {
        true => vec![None],
        false => m.variants.iter().map(Some).collect(),
    };
    for v in variants.iter().flatten() {
        m.cells(None, Some(v)).map_err(error)?;
    }
    let mut cells = Vec::new();
    for scenario in &m.scenarios {
        for &variant in &variants {
            cells.extend(m.cells(Some(scenario), variant).map_err(error)?);
        }
    }
    Ok(Matrix {
        name: m.name,
        description: spec.description.unwrap_or_default(),
        source: path.to_path_buf(),
        seed: m.seed,
        cells,
    })
}

/// What the file says (the matrix's own keys; `[base]`, `[slo]` and faults are taken from the
/// document as written and checked by the experiment validator, cell by cell).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixSpec {
    name: Option<Spanned<String>>,
    description: Option<String>,
    seed: Option<u64>,
    postures: Option<Spanned<Vec<Spanned<String>>>>,
    /// Read only to refuse a `base` that is not a table.
    #[serde(rename = "base")]
    _base: Option<toml::Table>,
    /// Read only to refuse an `slo` that is not a table.
    #[serde(rename = "slo")]
    _slo: Option<toml::Table>,
    scenarios: Option<Spanned<Vec<Spanned<ScenarioSpec>>>>,
    variants: Option<Spanned<Vec<Spanned<VariantSpec>>>>,
}

/// One `[[variants]]` entry: its own keys; the rest are `[base]` keys it replaces, taken from
/// the document and checked in each cell.
#[derive(Debug, Deserialize)]
struct VariantSpec {
    name: Option<Spanned<String>>,
    description: Option<String>,
}

/// One `[[scenarios]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioSpec {
    name: Option<Spanned<String>>,
    description: Option<String>,
    objectives: Option<Spanned<Vec<Spanned<String>>>>,
    /// An experiment's `[[faults]]`: taken from the document and checked in each cell.
    #[serde(rename = "faults")]
    _faults: Option<serde::de::IgnoredAny>,
    /// An experiment's `[[operations]]` (rejoin, switchover), likewise.
    #[serde(rename = "operations")]
    _operations: Option<serde::de::IgnoredAny>,
}

/// The matrix after its own checks: the document the cells are assembled from.
struct Checked<'d, 'i> {
    doc: &'d DeTable<'i>,
    path: &'d Path,
    name: String,
    seed: u64,
    /// Each posture with its index in `postures` and where it is written there.
    postures: Vec<(usize, Posture, Range<usize>)>,
    scenarios: Vec<Scenario>,
    /// Empty: one cell per scenario × posture, from `[base]` alone.
    variants: Vec<Variant>,
}

struct Variant {
    index: usize,
    name: Spanned<String>,
    description: String,
}

struct Scenario {
    index: usize,
    name: Spanned<String>,
    description: String,
    /// None: every objective.
    objectives: Option<Vec<String>>,
}

/// The table `doc[key]`, with its span, if it is one.
fn table<'d, 'i>(doc: &'d DeTable<'i>, key: &str) -> Option<(Range<usize>, &'d DeTable<'i>)> {
    let value = doc.get(key)?;
    match value.get_ref() {
        DeValue::Table(t) => Some((value.span(), t)),
        _ => None,
    }
}

/// The matrix's own checks; the first problem in file order.
fn check<'d, 'i>(
    spec: &MatrixSpec,
    doc: &'d DeTable<'i>,
    path: &'d Path,
) -> Result<Checked<'d, 'i>, Problem> {
    let mut c = Checker::default();
    let name = match &spec.name {
        None => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "matrix".into()),
        Some(n) => {
            let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
            if n.get_ref().is_empty() || !n.get_ref().chars().all(ok) {
                c.report(
                    n.span(),
                    "name",
                    format!(
                        "\"{}\" is not a usable name: use letters, digits, '-', '_' or '.' (it \
                         names the matrix's run folder)",
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
    let mut postures: Vec<(usize, Posture, Range<usize>)> = Vec::new();
    match &spec.postures {
        None => c.report(
            0..0,
            "postures",
            format!(
                "required: the postures to compare, e.g. [\"single-region\", \
                 \"active-passive-async\"]; known: {all}"
            ),
        ),
        Some(list) if list.get_ref().is_empty() => c.report(
            list.span(),
            "postures",
            format!("empty: list at least one posture; known: {all}"),
        ),
        Some(list) => {
            for (j, entry) in list.get_ref().iter().enumerate() {
                let field = format!("postures[{j}]");
                match Posture::parse(entry.get_ref().trim()) {
                    None => c.report(
                        entry.span(),
                        field,
                        format!("unknown posture \"{}\"; one of {all}", entry.get_ref()),
                    ),
                    Some(p) => match postures.iter().find(|(_, q, _)| *q == p) {
                        Some((k, _, _)) => c.report(
                            entry.span(),
                            field,
                            format!("\"{p}\" is listed twice (also postures[{k}])"),
                        ),
                        None => postures.push((j, p, entry.span())),
                    },
                }
            }
        }
    }

    if let Some((_, base)) = table(doc, "base") {
        for (key, why) in NOT_BASE {
            if let Some((k, _)) = base.get_key_value(key) {
                c.report(
                    k.span(),
                    format!("base.{key}"),
                    format!("not a [base] key: {why}"),
                );
            }
        }
    }
    for (key, value) in table(doc, "slo")
        .map(|(_, slo)| slo.iter())
        .into_iter()
        .flatten()
    {
        let key_name: &str = key.get_ref();
        let field = format!("slo.{key_name}");
        let is_table = matches!(value.get_ref(), DeValue::Table(_));
        if Posture::parse(key_name).is_some() && !is_table {
            c.report(
                value.span(),
                field,
                format!(
                    "must be a table ([slo.{key_name}]) of what {key_name} promises: {}",
                    OBJECTIVES.join(", ")
                ),
            );
        } else if Posture::parse(key_name).is_none() && !OBJECTIVES.contains(&key_name) {
            c.report(
                key.span(),
                field,
                format!(
                    "unknown key: [slo] takes {} (defaults) and one table per posture \
                     ([slo.<posture>], postures: {all})",
                    OBJECTIVES.join(", ")
                ),
            );
        }
    }

    let mut scenarios: Vec<Scenario> = Vec::new();
    match &spec.scenarios {
        None => c.report(
            0..0,
            "scenarios",
            "required: at least one [[scenarios]] with a name and its [[scenarios.faults]]",
        ),
        Some(list) if list.get_ref().is_empty() => c.report(
            list.span(),
            "scenarios",
            "empty: define at least one [[scenarios]]",
        ),
        Some(list) => {
            for (i, entry) in list.get_ref().iter().enumerate() {
                let name = scenario_name(&mut c, i, entry, &scenarios);
                let objectives = objectives(&mut c, i, entry.get_ref().objectives.as_ref());
                if let (Some(name), Some(objectives)) = (name, objectives) {
                    scenarios.push(Scenario {
                        index: i,
                        name,
                        description: entry.get_ref().description.clone().unwrap_or_default(),
                        objectives,
                    });
                }
            }
        }
    }

    let mut variants: Vec<Variant> = Vec::new();
    if let Some(list) = &spec.variants {
        if list.get_ref().is_empty() {
            c.report(
                list.span(),
                "variants",
                "empty: define at least one [[variants]], or none",
            );
        }
        let written = match doc.get("variants").map(Spanned::get_ref) {
            Some(DeValue::Array(a)) => a.iter().map(Spanned::get_ref).collect(),
            _ => Vec::new(),
        };
        for (i, entry) in list.get_ref().iter().enumerate() {
            if let Some(DeValue::Table(t)) = written.get(i) {
                // `[base]`'s forbidden keys, but for the variant's own name and description.
                let own = |k: &&(&str, &str)| !matches!(k.0, "name" | "description");
                for (key, why) in NOT_BASE.iter().filter(own) {
                    if let Some((k, _)) = t.get_key_value(*key) {
                        c.report(
                            k.span(),
                            format!("variants[{i}].{key}"),
                            format!("not a variant key: {why}"),
                        );
                    }
                }
            }
            let before: Vec<(usize, &str)> = variants
                .iter()
                .map(|v| (v.index, v.name.get_ref().as_str()))
                .collect();
            let n = entry_name(
                &mut c,
                "variants",
                i,
                entry.span(),
                entry.get_ref().name.as_ref(),
                &before,
            );
            if let Some(name) = n {
                let description = entry.get_ref().description.clone().unwrap_or_default();
                variants.push(Variant {
                    index: i,
                    name,
                    description,
                });
            }
        }
    }

    match c.first_problem() {
        Some(problem) => Err(problem),
        None => Ok(Checked {
            doc,
            path,
            name,
            seed: spec.seed.unwrap_or(1),
            postures,
            scenarios,
            variants,
        }),
    }
}

/// Scenario `i`'s name: lowercase letters, digits and '-', not another scenario's.
fn scenario_name(
    c: &mut Checker,
    i: usize,
    entry: &Spanned<ScenarioSpec>,
    before: &[Scenario],
) -> Option<Spanned<String>> {
    let before: Vec<(usize, &str)> = before
        .iter()
        .map(|s| (s.index, s.name.get_ref().as_str()))
        .collect();
    let name = entry.get_ref().name.as_ref();
    entry_name(c, "scenarios", i, entry.span(), name, &before)
}

/// The name of entry `i` of `list` (`scenarios` or `variants`): lowercase letters, digits
/// and '-', not an earlier entry's (`before`: their indexes and names).
fn entry_name(
    c: &mut Checker,
    list: &str,
    i: usize,
    at: Range<usize>,
    name: Option<&Spanned<String>>,
    before: &[(usize, &str)],
) -> Option<Spanned<String>> {
    let field = format!("{list}[{i}].name");
    let what = list.trim_end_matches('s');
    let (example, role) = match list {
        "scenarios" => ("region-loss", "starts"),
        _ => ("patroni-tight", "ends"),
    };
    let Some(n) = name else {
        c.report(
            at,
            field,
            format!(
                "required: a name of lowercase letters, digits and '-', e.g. \"{example}\" (it \
                 {role} the cells' names)"
            ),
        );
        return None;
    };
    let text = n.get_ref();
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if text.is_empty() || !text.chars().all(ok) {
        c.report(
            n.span(),
            field,
            format!(
                "\"{text}\" is not a usable {what} name: use lowercase letters, digits and \
                 '-' (it {role} the cells' names)"
            ),
        );
        return None;
    }
    if let Some((other, _)) = before.iter().find(|(_, o)| *o == text) {
        c.report(
            n.span(),
            field,
            format!("{what} \"{text}\" is defined twice (also {list}[{other}])"),
        );
        return None;
    }
    Some(n.clone())
}

/// Scenario `i`'s objectives: known SLO keys, each once (`Some(None)`: every objective).
fn objectives(
    c: &mut Checker,
    i: usize,
    list: Option<&Spanned<Vec<Spanned<String>>>>,
) -> Option<Option<Vec<String>>> {
    let Some(list) = list else {
        return Some(None);
    };
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for (k, o) in list.get_ref().iter().enumerate() {
        let field = format!("scenarios[{i}].objectives[{k}]");
        let text = o.get_ref().trim();
        if !OBJECTIVES.contains(&text) {
            c.report(
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
            c.report(o.span(), field, format!("\"{text}\" is listed twice"));
            ok = false;
        } else {
            out.push(text.to_string());
        }
    }
    ok.then_some(Some(out))
}

impl<'i> Checked<'_, 'i> {
    /// Validates `scenario` (None: no faults, whole SLO) with every posture; the experiments,
    /// or the first posture's problem, its field labelled with the cell: with the posture
    /// unless every posture has that same problem.
    fn cells(
        &self,
        scenario: Option<&Scenario>,
        variant: Option<&Variant>,
    ) -> Result<Vec<Experiment>, Problem> {
        let results: Vec<Result<Experiment, Problem>> = self
            .postures
            .iter()
            .map(|(j, posture, at)| self.cell(*j, *posture, at, scenario, variant))
            .collect();
        let errors: Vec<(usize, Posture, &Problem)> = self
            .postures
            .iter()
            .zip(&results)
            .filter_map(|((j, p, _), r)| r.as_ref().err().map(|e| (*j, *p, e)))
            .collect();
        let Some(&(j, posture, first)) = errors.first() else {
            return Ok(results.into_iter().flatten().collect());
        };
        let same_everywhere = errors.len() == results.len() && errors.iter().all(|e| e.2 == first);
        let field = match scenario {
            Some(s) => {
                let prefix = format!("scenarios[{}].", s.index);
                let local = first.field.strip_prefix(&prefix).unwrap_or(&first.field);
                let cell = format!("scenarios[{}] ({})", s.index, s.name.get_ref());
                match same_everywhere {
                    true => format!("{cell}: {local}"),
                    false => format!("{cell} × {posture}: {local}"),
                }
            }
            None if !same_everywhere && !first.field.starts_with(&format!("slo.{posture}")) => {
                format!("postures[{j}] ({posture}): {}", first.field)
            }
            None => first.field.clone(),
        };
        Err(Problem {
            span: first.span.clone(),
            field,
            message: first.message.clone(),
        })
    }

    /// Builds and validates one cell (`scenario` None: `[base]` and the whole `[slo]` only);
    /// a problem's field is the matrix's.
    fn cell(
        &self,
        j: usize,
        posture: Posture,
        posture_at: &Range<usize>,
        scenario: Option<&Scenario>,
        variant: Option<&Variant>,
    ) -> Result<Experiment, Problem> {
        let doc = self.document(posture, posture_at, scenario, variant);
        let (span, field, message) = match validate::validate(doc, self.path) {
            Ok(mut experiment) => {
                experiment.scenario = scenario.map(|s| match variant {
                    Some(v) => format!("{}/{}", s.name.get_ref(), v.name.get_ref()),
                    None => s.name.get_ref().clone(),
                });
                return Ok(experiment);
            }
            Err(Invalid::Problem(p)) => (p.span, p.field, p.message),
            Err(Invalid::Type(e)) => {
                // Named after the cell's key or value there (the document is built again:
                // validating took it).
                let span = e.span().unwrap_or(0..0);
                let doc = self.document(posture, posture_at, scenario, variant);
                let field = field_in(doc.get_ref(), &span).unwrap_or_else(|| "syntax".into());
                (span, field, e.message().trim().to_string())
            }
        };
        let field = self.matrix_path(&field, j, posture, scenario, variant);
        let top_of_base = field
            .strip_prefix("base.")
            .is_some_and(|k| !k.contains(['.', '[']));
        let message = if top_of_base && message.starts_with("unknown field") {
            base_keys_only(&message)
        } else {
            message
        };
        Err(Problem {
            span,
            field,
            message,
        })
    }

    /// The experiment document of a cell, assembled from the matrix's pieces where they are
    /// written (`scenario` None: `[base]` and the whole `[slo]` only). A missing key of the
    /// experiment is reported at `[base]`.
    fn document(
        &self,
        posture: Posture,
        posture_at: &Range<usize>,
        scenario: Option<&Scenario>,
        variant: Option<&Variant>,
    ) -> Spanned<DeTable<'i>> {
        let key = |name: &'static str, at: &Range<usize>| Spanned::new(at.clone(), name.into());
        let text = |value: Cow<'i, str>, at: &Range<usize>| {
            Spanned::new(at.clone(), DeValue::String(value))
        };
        let (root, mut cell) =
            table(self.doc, "base").map_or((0..0, DeTable::new()), |(at, base)| (at, base.clone()));
        // A variant's keys replace `[base]`'s, whole tables at a time.
        if let Some(DeValue::Table(own)) = variant.and_then(|v| self.variant_table(v)) {
            for (k, v) in own.iter() {
                if !matches!(k.get_ref().as_ref(), "name" | "description") {
                    cell.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(failover) = cell.get_mut("failover") {
            let at = failover.span();
            if let DeValue::Table(failover) = failover.get_mut() {
                if !posture.has_standby() {
                    let at = failover.get("mode").map_or(at, Spanned::span);
                    failover.insert(key("mode", &at), text("manual".into(), &at));
                    failover.remove("fencing");
                }
                if posture.is_active_active() {
                    failover.remove("fencing");
                }
            }
        }
        cell.insert(
            key("posture", posture_at),
            text(posture.name().into(), posture_at),
        );
        if let Some((k, v)) = self.doc.get_key_value("seed") {
            cell.insert(k.clone(), v.clone());
        }
        // Defaults, then the posture's table key by key, then only the scenario's objectives.
        let (slo_at, slo) = table(self.doc, "slo").map_or((0..0, None), |(at, t)| (at, Some(t)));
        let mut merged: Vec<(Spanned<DeString<'i>>, Spanned<DeValue<'i>>)> = slo
            .into_iter()
            .flat_map(|slo| slo.iter())
            .filter(|(k, _)| OBJECTIVES.contains(&k.get_ref().as_ref()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some((_, own)) = slo.and_then(|slo| table(slo, posture.name())) {
            merged.retain(|(k, _)| !own.contains_key(k.get_ref().as_ref()));
            merged.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(s) = scenario {
            let at = s.name.span();
            let mut name = format!("{}-{}", s.name.get_ref(), short_name(posture));
            if let Some(v) = variant {
                name = format!("{name}-{}", v.name.get_ref());
            }
            cell.insert(key("name", &at), text(name.into(), &at));
            let what = match s.description.trim() {
                "" => format!("Scenario {}.", s.name.get_ref()),
                d => d.to_string(),
            };
            let mut description = what;
            if let Some(v) = variant {
                description.push_str(&match v.description.trim() {
                    "" => format!(" Variant {}.", v.name.get_ref()),
                    d => format!(" {d}"),
                });
            }
            let description = format!(
                "{description} Posture {posture}: {}.",
                posture_blurb(posture)
            );
            cell.insert(key("description", &at), text(description.into(), &at));
            let written = match self.doc.get("scenarios").map(Spanned::get_ref) {
                Some(DeValue::Array(a)) => a.get(s.index).map(Spanned::get_ref),
                _ => None,
            };
            if let Some(DeValue::Table(t)) = written {
                for item in ["faults", "operations"] {
                    if let Some((k, v)) = t.get_key_value(item) {
                        cell.insert(k.clone(), v.clone());
                    }
                }
            }
            if let Some(objectives) = &s.objectives {
                merged.retain(|(k, _)| objectives.iter().any(|o| **o == **k.get_ref()));
            }
        }
        if !merged.is_empty() {
            let merged = DeValue::Table(merged.into_iter().collect());
            cell.insert(key("slo", &slo_at), Spanned::new(slo_at.clone(), merged));
        }
        Spanned::new(root, cell)
    }

    /// The variant's table as written.
    fn variant_table(&self, v: &Variant) -> Option<&DeValue<'i>> {
        match self.doc.get("variants").map(Spanned::get_ref) {
            Some(DeValue::Array(a)) => a.get(v.index).map(Spanned::get_ref),
            _ => None,
        }
    }

    /// Where the cell's `field` is in the matrix file.
    fn matrix_path(
        &self,
        field: &str,
        j: usize,
        posture: Posture,
        scenario: Option<&Scenario>,
        variant: Option<&Variant>,
    ) -> String {
        let top = field.split(['.', '[']).next().unwrap_or("");
        if let Some(DeValue::Table(own)) = variant.and_then(|v| self.variant_table(v))
            && own.contains_key(top)
        {
            return format!("variants[{}].{field}", variant.map_or(0, |v| v.index));
        }
        match top {
            "faults" | "operations" | "name" | "description" => match scenario {
                Some(s) => format!("scenarios[{}].{field}", s.index),
                None => field.to_string(),
            },
            "posture" => format!("postures[{j}]"),
            "seed" => "seed".into(),
            "slo" => {
                let rest = field.strip_prefix("slo.").unwrap_or("");
                let key = rest.split(['.', '[']).next().unwrap_or("");
                let own = table(self.doc, "slo")
                    .and_then(|(_, slo)| table(slo, posture.name()))
                    .is_some_and(|(_, t)| t.contains_key(key));
                match own {
                    true => format!("slo.{posture}.{rest}"),
                    false => field.to_string(),
                }
            }
            _ => format!("base.{field}"),
        }
    }
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
    use crate::fault::{KillRegion, Latency, Partition};
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
                            active-active-crdt, active-passive-quorum";

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
                max_residency_violations: None,
                erasure_within: None,
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
                        FaultSpec::KillRegion(KillRegion {
                            region: "us".into()
                        })
                    );
                }
                "partition" => {
                    assert_eq!((fault.at, fault.heal_at), (s(3), Some(s(7))));
                    assert!(matches!(
                        &fault.fault,
                        FaultSpec::Partition(Partition { links, mode: PartitionMode::BlackHole, .. })
                            if *links == between
                    ));
                }
                _ => {
                    assert_eq!((fault.at, fault.heal_at), (s(2), Some(s(8))));
                    assert_eq!(
                        fault.fault,
                        FaultSpec::Latency(Latency {
                            links: between,
                            rtt: Duration::from_millis(120),
                            jitter: Duration::from_millis(20),
                        })
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

    /// Two variants of the failover settings: every scenario × variant × posture, the
    /// variant's `[failover]` replacing `[base]`'s whole, named and labelled after it.
    const VARIANTS: &str = r#"postures = ["active-passive-async"]

[base]
duration = "10s"
[base.failover]
interval = "500ms"
threshold = 3

[[scenarios]]
name = "region-loss"
[[scenarios.faults]]
kind = "kill_region"
region = "us"
at = "4s"

[[variants]]
name = "default"
description = "The base's failover settings."

[[variants]]
name = "tight"
[variants.failover]
interval = "200ms"
threshold = 2
"#;

    #[test]
    fn variants_cross_every_scenario_and_replace_base_keys() {
        let m = ok(VARIANTS);
        let cells: Vec<(&str, Option<&str>, Duration)> = m
            .cells
            .iter()
            .map(|c| (c.name.as_str(), c.scenario.as_deref(), c.failover.interval))
            .collect();
        assert_eq!(
            cells,
            [
                (
                    "region-loss-ap-async-default",
                    Some("region-loss/default"),
                    Duration::from_millis(500)
                ),
                (
                    "region-loss-ap-async-tight",
                    Some("region-loss/tight"),
                    Duration::from_millis(200)
                ),
            ]
        );
        assert_eq!(m.cells[1].failover.threshold, 2);
        assert!(
            m.cells[0]
                .description
                .contains("The base's failover settings.")
        );
        assert!(m.cells[1].description.contains("Variant tight."));
    }

    #[test]
    fn a_bad_variant_value_is_placed_in_the_variant() {
        let text = VARIANTS.replace("threshold = 2", "threshold = 0");
        assert_eq!(
            err(&text),
            "m.toml:24:13: variants[1].failover.threshold: must be at least 1"
        );
    }

    #[test]
    fn a_variant_may_not_hold_faults_or_share_a_name() {
        let faults = VARIANTS.replace(
            "[variants.failover]",
            "[[variants.faults]]\nkind = \"kill_region\"\nregion = \"us\"\nat = \"4s\"\n[variants.failover]",
        );
        assert_eq!(
            err(&faults),
            "m.toml:22:12: variants[1].faults: not a variant key: faults belong to the \
             scenarios: [[scenarios.faults]]"
        );
        let twice = VARIANTS.replace("name = \"tight\"", "name = \"default\"");
        assert_eq!(
            err(&twice),
            r#"m.toml:21:8: variants[1].name: variant "default" is defined twice (also variants[0])"#
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
             `rate_per_s`, `read_fraction`, `keys`, `us_fraction`, `homes`, `op_timeout`, \
             `travel_fraction`, `incr_fraction`, `counters`"
        );
        // At the top of [base], the keys the matrix sets are not offered.
        let top = SMALL.replace("duration = \"10s\"\n", "duration = \"10s\"\nusers = 3\n");
        assert_eq!(
            err(&top),
            "m.toml:5:1: base.users: unknown field `users`; [base] takes `duration`, `settle`, \
             `regions`, `network`, `workload`, `cache`, `failover`"
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
             \"replication\" does not exist in single-region (there is no eu-db to replicate); links in \
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
            format!(
                "m.toml:8:1: scenarios[0] (region-loss): faults[0].kind: required: one of {}",
                crate::fault::KINDS.join(", ")
            )
        );
        let typo = SMALL.replace(r#"at = "4s""#, "at = \"4s\"\nheal = \"5s\"");
        // serde's list: the common keys, then every kind's own (see `fault::keys`).
        let keys = crate::fault::keys()
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(
            err(&typo),
            format!(
                "m.toml:12:1: scenarios[0] (region-loss): faults[0].heal: unknown field `heal`, \
                 expected one of {keys}"
            )
        );
        assert!(keys.starts_with(
            "`kind`, `at`, `heal_at`, `duration`, `links`, `between`, `isolate`, `rtt`, `jitter`, \
             `mode`, `direction`, `node`, `region`, `offset`"
        ));
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
             `rpo`, `max_stale_read_rate`, `max_false_failovers`, `max_residency_violations`, \
             `erasure_within`"
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
             `description`, `objectives`, `faults`, `operations`"
        );
        assert_eq!(
            err(&SMALL.replace(r#"duration = "10s""#, r#"duration = "10s"#)),
            "m.toml:4:16: base.duration: invalid basic string, expected `\"`"
        );
    }
}
