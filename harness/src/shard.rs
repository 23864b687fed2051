//! Slices of a matrix for CI jobs: `regiondrill matrix … --shard K/N` runs the K-th of N
//! slices, and `regiondrill report --merge` puts the slices' folders back together
//! ([`crate::report::merge`]). GitHub Actions' job matrix is the distributed engine; this
//! module only decides, deterministically, which cells each job runs, and fingerprints the
//! expanded matrix so that slices of different matrices are never merged.
//!
//! # Slicing
//! Each cell weighs its stated duration: `duration + settle` (what the experiment file
//! says it runs, not a measurement, so every job computes the same slices without talking to
//! the others). Cells are dealt heaviest first — ties in matrix order — each to the slice
//! with the least weight so far, ties to the lowest slice (longest processing time first:
//! within 4/3 of the best possible longest slice). A slice runs its cells in matrix order.
//! The same cells and N give the same slices on every machine, and every cell is in exactly
//! one slice; with more slices than cells, some slices are empty (and still merge).
//!
//! # Fingerprint
//! [`digest`]: FNV-1a (64 bits, as 16 hex digits) of the canonical JSON (keys sorted) of the
//! matrix's name and every expanded cell as `experiment.json` stores it, less `source` (the
//! path the matrix was read from may differ between machines; the content may not). It is a
//! check against mistakes — merging last week's slice, a slice run from another branch —, not
//! against forgery, so a 64-bit hash with no dependency suffices; a changed key, seed, SLO or
//! cell order changes it.

use crate::experiment::Experiment;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Which slice of how many: `K/N`, 1 ≤ K ≤ N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    /// K, from 1.
    pub index: usize,
    /// N.
    pub count: usize,
}

impl std::str::FromStr for ShardSpec {
    type Err = String;

    /// `"2/4"`.
    fn from_str(s: &str) -> Result<ShardSpec, String> {
        let bad = || format!("{s:?}: a shard is K/N with 1 ≤ K ≤ N, e.g. 2/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            k.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(ShardSpec { index, count })
    }
}

impl std::fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What a cell weighs when slicing: its stated run time.
pub fn weight(exp: &Experiment) -> Duration {
    exp.duration + exp.settle
}

/// The matrix positions (0-based, ascending) of every slice's cells, for cells of these
/// weights: `slices(w, n)[k - 1]` is slice K/N.
pub fn slices(weights: &[Duration], count: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Heaviest first; the sort is stable, so equal weights keep matrix order.
    order.sort_by(|&a, &b| weights[b].cmp(&weights[a]));
    let mut load = vec![Duration::ZERO; count];
    let mut out = vec![Vec::new(); count];
    for cell in order {
        let lightest = (0..count)
            .min_by_key(|&s| (load[s], s))
            .expect("at least one slice");
        load[lightest] += weights[cell];
        out[lightest].push(cell);
    }
    for slice in &mut out {
        slice.sort_unstable();
    }
    out
}

/// The positions of the cells of slice `spec` of these experiments.
pub fn positions(experiments: &[Experiment], spec: ShardSpec) -> Vec<usize> {
    let weights: Vec<Duration> = experiments.iter().map(weight).collect();
    slices(&weights, spec.count).swap_remove(spec.index - 1)
}

/// The fingerprint of an expanded matrix (see the module's docs).
pub fn digest(name: &str, experiments: &[Experiment]) -> String {
    let cells: Vec<serde_json::Value> = experiments
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).expect("serializable");
            if let Some(map) = v.as_object_mut() {
                map.remove("source");
            }
            v
        })
        .collect();
    let doc = serde_json::json!({ "name": name, "cells": cells });
    format!("{:016x}", fnv1a(doc.to_string().as_bytes()))
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&s| Duration::from_secs(s)).collect()
    }

    #[test]
    fn shard_specs_parse_and_refuse() {
        assert_eq!(
            "2/4".parse::<ShardSpec>(),
            Ok(ShardSpec { index: 2, count: 4 })
        );
        for bad in ["0/2", "3/2", "1/0", "1", "a/b", "1/2/3", ""] {
            let e = bad.parse::<ShardSpec>().unwrap_err();
            assert!(e.contains("K/N"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_cell_is_in_exactly_one_slice_for_every_n() {
        let w = secs(&[14, 14, 30, 6, 14, 9, 9, 14, 21, 3, 14]);
        for n in 1..=14 {
            let s = slices(&w, n);
            assert_eq!(s.len(), n);
            let mut all: Vec<usize> = s.concat();
            all.sort_unstable();
            assert_eq!(all, (0..w.len()).collect::<Vec<_>>(), "n = {n}");
            assert_eq!(slices(&w, n), s, "not deterministic at n = {n}");
        }
    }

    #[test]
    fn slices_are_balanced_by_stated_duration() {
        // Known answer, dealt heaviest first to the lightest slice: 30 → slice 0; 21 → 1;
        // 14 → 2; 14 → 2 (14 < 21); 9 → 1 (21 < 28); 3 → 2 (28 < 30 = 30).
        let w = secs(&[30, 21, 14, 14, 9, 3]);
        let s = slices(&w, 3);
        assert_eq!(s, vec![vec![0], vec![1, 4], vec![2, 3, 5]]);
        let load = |i: usize| s[i].iter().map(|&c| w[c]).sum::<Duration>();
        assert_eq!(
            (load(0), load(1), load(2)),
            (
                Duration::from_secs(30),
                Duration::from_secs(30),
                Duration::from_secs(31)
            )
        );
        // Equal cells: one more or less per slice, never a pile on slice 1.
        let s = slices(&secs(&[14; 21]), 4);
        let sizes: Vec<usize> = s.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![6, 5, 5, 5]);
        // More slices than cells: the extra ones are empty.
        assert_eq!(slices(&secs(&[5, 5]), 3), vec![vec![0], vec![1], vec![]]);
    }

    #[test]
    fn fnv1a_known_answers() {
        // The reference values of the FNV-1a 64-bit test suite.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
