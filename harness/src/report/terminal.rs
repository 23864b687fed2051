//! The terminal report (`report.txt`, `matrix.txt`, and what the CLI prints): one table per
//! run (finding, observed, stated, verdict), and one comparison table of postures with a
//! row per experiment, at most 100 columns wide. Colour only when the caller asks for it
//! (the CLI does when stdout is a terminal and `NO_COLOR` is unset); the files never have
//! any.

use super::cells::{self, ComparisonRow, RowVerdict};
use super::{Entry, MatrixIndex, ReportError, load_results};
use crate::run_folder::Results;
use std::path::Path;
use tabled::builder::Builder;
use tabled::settings::object::{Columns, Segment};
use tabled::settings::style::HorizontalLine;
use tabled::settings::{Alignment, Modify, Padding, Span, Style};
use tabled::{Table, Tabled};

pub use super::cells::dur;

/// The widest a comparison table may be.
pub const MAX_WIDTH: usize = 100;

/// The widest an observed cell of a run's table may be: longer text (a failover episode told
/// in words, an error) wraps between words onto more lines of the same row.
pub const OBSERVED_WIDTH: usize = 80;

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "finding")]
    finding: String,
    #[tabled(rename = "observed")]
    observed: String,
    #[tabled(rename = "stated")]
    stated: String,
    #[tabled(rename = "verdict")]
    verdict: String,
}

/// The report of one run: a header line (name, posture, duration, seed, verdict) and the
/// table of findings, observed cells wrapped at [`OBSERVED_WIDTH`].
pub fn run_report(r: &Results) -> String {
    let e = &r.experiment;
    let rows = cells::finding_rows(r).into_iter().map(|row| Row {
        finding: if row.sub {
            format!("  {}", row.finding)
        } else {
            row.finding
        },
        observed: wrap_words(&row.observed, OBSERVED_WIDTH),
        stated: row.stated,
        verdict: match row.passed {
            Some(true) => "pass".into(),
            Some(false) => "MISSED".into(),
            None => String::new(),
        },
    });
    let mut table = Table::new(rows);
    table
        .with(Style::sharp())
        .with(Modify::new(Columns::new(1..)).with(Alignment::left()));
    let header = format!(
        "{} — {} ({}, seed {}): {}",
        e.name,
        e.posture,
        humantime::format_duration(e.duration),
        e.seed,
        cells::verdict_line(r.slo.passed)
    );
    let regions: String = cells::regions_line(e)
        .map(|l| format!("{}\n", wrap_words(&l, MAX_WIDTH)))
        .unwrap_or_default();
    let alerts: String = cells::alerts(r)
        .iter()
        .map(|a| format!("{}\n", wrap_words(&format!("WARNING: {a}"), MAX_WIDTH)))
        .collect();
    format!("{header}\n{regions}{alerts}{table}\n")
}

/// One comparison table: a row per experiment (posture × scenario in a matrix, or each run
/// of `regiondrill run a.toml b.toml`), in the order given. Columns: experiment (the
/// scenario, or the experiment's name), posture (short), RTO and RPO observed/stated, lost
/// writes, stale-read rate, replication lag p99, write p99 of each region's users, split-brain
/// writes, verdict. An experiment that could not run says "could not run" and why across
/// the metric columns (the reason under the table when it does not fit there), and its
/// verdict is `error`. `color`: verdict `pass` green, `MISSED` and `error` red (ANSI).
///
/// At most [`MAX_WIDTH`] columns wide: long experiment names wrap (after a `-` where
/// possible) and error notes are cut to the width.
pub fn comparison<'a, E>(rows: impl IntoIterator<Item = E>, color: bool) -> String
where
    E: Into<Entry<'a>>,
{
    let entries: Vec<Entry<'a>> = rows.into_iter().map(Into::into).collect();
    let rows: Vec<ComparisonRow> = entries.iter().map(cells::comparison_row).collect();
    comparison_table(&rows, color)
}

/// Gap between columns.
const GAP: usize = 2;

fn comparison_table(rows: &[ComparisonRow], color: bool) -> String {
    // Every column but the experiment's is as wide as its widest cell; the experiment
    // column gets what is left, at least 12. A row that could not run says so across the
    // metric columns, its verdict is "error".
    let columns = cells::columns(rows);
    let header: Vec<&str> = ["experiment", "posture"]
        .into_iter()
        .chain(columns.iter().map(|(_, two_lines)| two_lines.as_str()))
        .chain(["verdict"])
        .collect();
    let ncols = header.len();
    let verdict_text = |r: &ComparisonRow| match r.verdict {
        RowVerdict::CouldNotRun => "error",
        v => v.text(),
    };
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut v = vec![r.experiment.clone(), r.posture.clone()];
            match &r.metrics {
                Some(m) => v.extend(m.iter().enumerate().map(|(i, cell)| {
                    if i == cells::WRITE_P99_COLUMN {
                        wrap_figures(cell, FIGURES_WIDTH)
                    } else {
                        cell.clone()
                    }
                })),
                None => v.extend(std::iter::repeat_n(String::new(), columns.len())),
            }
            v.push(verdict_text(r).to_string());
            v
        })
        .collect();
    let width_of = |s: &str| s.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let mut widths: Vec<usize> = header.iter().map(|h| width_of(h)).collect();
    for row in &body {
        for (w, cell) in widths.iter_mut().zip(row).skip(1) {
            *w = (*w).max(width_of(cell));
        }
    }
    let others: usize = widths[1..].iter().sum::<usize>() + GAP * (ncols - 1);
    let experiment_width = MAX_WIDTH.saturating_sub(others).max(12);
    // The metric columns together, for the "could not run" note.
    let span_width: usize =
        widths[2..2 + columns.len()].iter().sum::<usize>() + GAP * (columns.len() - 1);
    let mut footnotes = Vec::new();
    let mut builder = Builder::default();
    builder.push_record(header.iter().map(|h| h.to_string()));
    for (row, mut cells) in rows.iter().zip(body) {
        cells[0] = wrap_name(&cells[0], experiment_width);
        if let Some(e) = &row.error {
            let full = format!("could not run: {}", one_line(e));
            cells[2] = if full.chars().count() <= span_width {
                full
            } else {
                footnotes.push(cut(
                    &format!(
                        "{} ({}) could not run: {}",
                        row.experiment,
                        row.posture,
                        one_line(e)
                    ),
                    MAX_WIDTH,
                ));
                cut("could not run (below)", span_width)
            };
        }
        if color {
            let code = match row.verdict {
                RowVerdict::Pass => "32",
                RowVerdict::Missed | RowVerdict::CouldNotRun => "31",
            };
            let last = cells.len() - 1;
            cells[last] = format!("\x1b[{code}m{}\x1b[0m", cells[last]);
        }
        builder.push_record(cells);
    }
    let mut table = builder.build();
    table
        .with(Style::empty().horizontals([(1, HorizontalLine::new('─'))]))
        .with(Modify::new(Segment::all()).with(Padding::new(0, GAP, 0, 0)))
        .with(Modify::new(Columns::last()).with(Padding::zero()));
    for (i, row) in rows.iter().enumerate() {
        if row.error.is_some() {
            table.modify((i + 1, 2), Span::column(columns.len() as isize));
        }
    }
    let mut out = String::new();
    for line in table.to_string().lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for f in footnotes {
        out.push_str(&f);
        out.push('\n');
    }
    if let Some(note) = cells::write_p99_note(rows) {
        out.push_str(&wrap_words(&note, MAX_WIDTH));
        out.push('\n');
    }
    for a in cells::comparison_alerts(rows) {
        out.push_str(&cut(&format!("WARNING: {a}"), MAX_WIDTH));
        out.push('\n');
    }
    out
}

/// Wraps a name to `width` columns, breaking after a `-`, `_` or `.` where possible.
fn wrap_name(name: &str, width: usize) -> String {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut rest: Vec<char> = name.chars().collect();
    while rest.len() > width {
        let cut_at = rest[..width]
            .iter()
            .rposition(|c| matches!(c, '-' | '_' | '.'))
            .map_or(width, |i| i + 1);
        lines.push(rest[..cut_at].iter().collect::<String>());
        rest = rest[cut_at..].to_vec();
    }
    lines.push(rest.into_iter().collect());
    lines.join("\n")
}

/// `s` on lines of at most `width` characters, broken between words (a word longer than
/// that gets a line of its own); its own line breaks are kept. Text that fits is unchanged.
fn wrap_words(s: &str, width: usize) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if line.chars().count() <= width {
            out.push_str(line);
            continue;
        }
        let mut len = 0;
        for word in line.split(' ').filter(|w| !w.is_empty()) {
            let n = word.chars().count();
            if len > 0 && len + 1 + n > width {
                out.push('\n');
                len = 0;
            } else if len > 0 {
                out.push(' ');
                len += 1;
            }
            out.push_str(word);
            len += n;
        }
    }
    out
}

/// The widest line of a write p99 cell: two regions' figures (`12.3s/12.3s`).
const FIGURES_WIDTH: usize = 11;

/// Figures joined by `/` on lines of at most `width` characters, each line after the first
/// starting with its `/` (three regions and more keep the column narrow). Fits: unchanged.
fn wrap_figures(cell: &str, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    for part in cell.split('/') {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + part.chars().count() <= width => {
                line.push('/');
                line.push_str(part);
            }
            Some(_) => lines.push(format!("/{part}")),
            None => lines.push(part.to_string()),
        }
    }
    lines.join("\n")
}

/// An error message on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `s` cut to `width` characters, ending with "…" when cut.
fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// `matrix.txt`: a header line, the comparison table, then every run's own report.
pub(crate) fn matrix_text(index: &MatrixIndex, entries: &[Entry]) -> String {
    let rows: Vec<ComparisonRow> = entries.iter().map(cells::comparison_row).collect();
    let mut out = format!(
        "matrix {} ({}): {}\n\n",
        index.name,
        index.subtitle(),
        cells::tally(&rows)
    );
    out.push_str(&comparison_table(&rows, false));
    for e in entries {
        if let Entry::Ran(r) = e {
            out.push('\n');
            out.push_str(&run_report(r));
        }
    }
    out
}

/// The comparison table of a matrix folder, from its `matrix.json` and each run's
/// `results.json` (what the CLI prints after a matrix): a header line with the tally, then
/// the table. A run folder that cannot be read is a "could not run" row naming the problem.
pub fn matrix_table(dir: &Path, color: bool) -> Result<String, ReportError> {
    let index = MatrixIndex::load(dir)?;
    let loaded: Vec<Result<Results, String>> = index
        .runs
        .iter()
        .map(|run| match &run.error {
            Some(e) => Err(e.clone()),
            None => load_results(&dir.join(&run.dir))
                .map_err(|e| format!("its run folder cannot be reported: {e}")),
        })
        .collect();
    let entries: Vec<Entry> = index
        .runs
        .iter()
        .zip(&loaded)
        .map(|(run, l)| match l {
            Ok(r) => Entry::Ran(r),
            Err(e) => run.could_not_run(e),
        })
        .collect();
    let rows: Vec<ComparisonRow> = entries.iter().map(cells::comparison_row).collect();
    Ok(format!(
        "matrix {}: {}\n{}",
        index.name,
        cells::tally(&rows),
        comparison_table(&rows, color)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_wrap_after_dashes() {
        assert_eq!(
            wrap_name("ap-async-partition-then-region-loss", 20),
            "ap-async-partition-\nthen-region-loss"
        );
        assert_eq!(wrap_name("short", 20), "short");
        assert_eq!(wrap_name("abcdefghij", 4), "abcd\nefgh\nij");
    }

    #[test]
    fn long_observed_cells_wrap_between_words() {
        assert_eq!(wrap_words("short one", 80), "short one");
        assert_eq!(wrap_words("aaa bbb ccc ddd", 7), "aaa bbb\nccc ddd");
        assert_eq!(wrap_words("aaa bbbbbbbbbb c", 5), "aaa\nbbbbbbbbbb\nc");
        assert_eq!(wrap_words("one\ntwo three", 5), "one\ntwo\nthree");
    }

    #[test]
    fn cut_marks_the_cut() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
