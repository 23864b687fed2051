//! `regiondrill report --merge SHARD… --out DIR`: the slices of one matrix, run by several CI
//! jobs (`regiondrill matrix --shard K/N`), put back into one matrix folder that is what a run
//! of the whole matrix in one go would have written for the same results.
//!
//! The merged folder holds every slice's run folders (copied, under their own names) and a
//! `matrix.json` with the cells in matrix order and no `shard` record — the same `name`,
//! `source`, `seed` and `digest` an unsharded run writes —, and its reports are rendered by
//! the same [`super::render_matrix`] from those stored files. So every format is byte for
//! byte an unsharded run's with the same results. What differs between two real runs is only
//! in the stored results (each run's id, which carries its UTC start, its stage timings and
//! every measurement) and the run folders' names in `matrix.json`'s `runs[].dir` (the run
//! ids again): nothing of the merge itself — when, where, from which folders — is written.
//!
//! Refused, naming the problem and the folders: a folder that is not a slice, slices of
//! different seeds, names, inputs or matrices (digest), of different N, a slice missing or
//! given twice, a cell in two slices or in none, an output folder that is not empty.

use super::{MatrixIndex, ReportError, render_matrix};
use std::path::{Path, PathBuf};

/// Why slices cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The slices given do not make one whole matrix (or the output is in the way).
    #[error("cannot merge: {0}")]
    Refused(String),
    /// A folder could not be read or written.
    #[error(transparent)]
    Report(#[from] ReportError),
}

fn refuse<T>(message: String) -> Result<T, MergeError> {
    Err(MergeError::Refused(message))
}

/// Merges the shard folders `dirs` into `out` (created; it must not exist or be empty),
/// renders every format there, and returns the merged index.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<MatrixIndex, MergeError> {
    if dirs.is_empty() {
        return refuse("no shard folders given".into());
    }
    let mut slices = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let index = MatrixIndex::load(dir)?;
        let Some(shard) = index.shard.clone() else {
            return refuse(format!(
                "{} is not a slice of a matrix (its matrix.json has no `shard`: it ran with no \
                 --shard K/N, or is a merged folder)",
                dir.display()
            ));
        };
        if shard.positions.len() != index.runs.len() {
            return refuse(format!(
                "{}: matrix.json lists {} runs but {} positions",
                dir.display(),
                index.runs.len(),
                shard.positions.len()
            ));
        }
        slices.push((dir, index, shard));
    }
    let (first_dir, first, first_shard) = &slices[0];
    for (dir, index, shard) in &slices[1..] {
        let differ = |what: &str, a: String, b: String| {
            refuse::<()>(format!(
                "{} and {} are slices of different matrices: {what} {a} and {b}",
                first_dir.display(),
                dir.display()
            ))
        };
        if index.seed != first.seed {
            let seed = |s: Option<u64>| s.map_or("none".into(), |s| s.to_string());
            differ("seed", seed(first.seed), seed(index.seed))?;
        }
        if index.name != first.name {
            differ(
                "name",
                format!("{:?}", first.name),
                format!("{:?}", index.name),
            )?;
        }
        if index.source != first.source {
            differ(
                "inputs",
                format!("{:?}", first.source),
                format!("{:?}", index.source),
            )?;
        }
        if index.digest != first.digest || index.digest.is_none() {
            let d = |d: &Option<String>| d.clone().unwrap_or_else(|| "none".into());
            differ(
                "(the cells' settings differ) digest",
                d(&first.digest),
                d(&index.digest),
            )?;
        }
        if shard.count != first_shard.count || shard.cells != first_shard.cells {
            differ(
                "slicing",
                format!("N = {} of {} cells", first_shard.count, first_shard.cells),
                format!("N = {} of {} cells", shard.count, shard.cells),
            )?;
        }
    }
    // Every slice exactly once.
    let count = first_shard.count;
    let mut by_slice: Vec<Option<&PathBuf>> = vec![None; count];
    for (dir, _, shard) in &slices {
        if shard.index == 0 || shard.index > count {
            return refuse(format!(
                "{}: slice {}/{count} does not exist",
                dir.display(),
                shard.index
            ));
        }
        if let Some(other) = by_slice[shard.index - 1] {
            return refuse(format!(
                "slice {}/{count} given twice: {} and {}",
                shard.index,
                other.display(),
                dir.display()
            ));
        }
        by_slice[shard.index - 1] = Some(dir);
    }
    let missing: Vec<String> = (1..=count)
        .filter(|k| by_slice[k - 1].is_none())
        .map(|k| format!("{k}/{count}"))
        .collect();
    if !missing.is_empty() {
        return refuse(format!(
            "slice{} {} missing (given: {})",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // Every cell exactly once, back in matrix order.
    let cells = first_shard.cells;
    let mut placed: Vec<Option<(usize, usize)>> = vec![None; cells];
    for (s, (dir, index, shard)) in slices.iter().enumerate() {
        for (r, &pos) in shard.positions.iter().enumerate() {
            let name = &index.runs[r].experiment;
            if pos >= cells {
                return refuse(format!(
                    "{}: {name} is at position {pos} of a {cells}-cell matrix",
                    dir.display()
                ));
            }
            if let Some((s0, _)) = placed[pos] {
                return refuse(format!(
                    "cell {pos} ({name}) is in two slices: {} and {}",
                    slices[s0].0.display(),
                    dir.display()
                ));
            }
            placed[pos] = Some((s, r));
        }
    }
    if let Some(pos) = placed.iter().position(Option::is_none) {
        return refuse(format!("cell {pos} of {cells} is in no slice"));
    }
    // The output folder.
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .map(|mut rd| rd.next().is_none())
            .unwrap_or(false);
        if !empty {
            return refuse(format!(
                "{} exists and is not empty: give a new folder for the merged matrix",
                out.display()
            ));
        }
    }
    let write_err = |path: &Path, e: std::io::Error| ReportError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(out).map_err(|e| write_err(out, e))?;
    let mut runs = Vec::with_capacity(cells);
    for (s, r) in placed.into_iter().flatten() {
        let (dir, index, _) = &slices[s];
        let run = index.runs[r].clone();
        if run.error.is_none() && !run.dir.is_empty() {
            let to = out.join(&run.dir);
            if to.exists() {
                return refuse(format!("two slices have a run folder named {}", run.dir));
            }
            copy_tree(&dir.join(&run.dir), &to)?;
        }
        runs.push(run);
    }
    let mut merged = MatrixIndex::new(first.name.clone(), first.source.clone(), first.seed, runs);
    merged.digest = first.digest.clone();
    merged.save(out)?;
    render_matrix(out)?;
    Ok(merged)
}

/// Copies a folder tree (regular files and folders; a run folder has nothing else).
fn copy_tree(from: &Path, to: &Path) -> Result<(), ReportError> {
    let read = |path: &Path, e: std::io::Error| ReportError::Read {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    };
    let write = |path: &Path, e: std::io::Error| ReportError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(to).map_err(|e| write(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| read(from, e))? {
        let entry = entry.map_err(|e| read(from, e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(|e| read(&src, e))?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| write(&dst, e))?;
        }
    }
    Ok(())
}
