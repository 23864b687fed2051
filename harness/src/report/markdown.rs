//! Markdown (GitHub-flavoured) reports, `report.md` and `matrix.md`: short enough for a
//! pull-request comment or `$GITHUB_STEP_SUMMARY` (`cat matrix.md >> "$GITHUB_STEP_SUMMARY"`).
//! A title and tally, the comparison table, then one `<details>` section per experiment: its
//! verdict as the summary line, its SLO checks (stated vs observed) and the findings table
//! (the terminal report's rows). Sections of experiments that missed an SLO or could not
//! run are open; the others are folded.

use super::Entry;
use super::cells::{self, ComparisonRow, RowVerdict};
use std::fmt::Write;

/// A whole Markdown page: `title`, an optional subtitle, the comparison table of `entries`
/// and a section per entry.
pub fn page(title: &str, subtitle: Option<&str>, entries: &[Entry]) -> String {
    let rows: Vec<ComparisonRow> = entries.iter().map(cells::comparison_row).collect();
    let mut md = String::new();
    let _ = writeln!(md, "## regiondrill: {}\n", escape(title));
    match subtitle {
        Some(s) => {
            let _ = writeln!(md, "{} · {}\n", escape(s), escape(&cells::tally(&rows)));
        }
        None => {
            let _ = writeln!(md, "{}\n", escape(&cells::tally(&rows)));
        }
    }
    md.push_str(&comparison(&rows));
    for (entry, row) in entries.iter().zip(&rows) {
        md.push('\n');
        md.push_str(&section(entry, row));
    }
    md
}

/// The comparison table.
fn comparison(rows: &[ComparisonRow]) -> String {
    let columns = cells::columns(rows);
    let mut md = String::from("| experiment | posture |");
    for (header, _) in &columns {
        let _ = write!(md, " {header} |");
    }
    md.push_str(" verdict |\n|:--|:--|");
    for _ in &columns {
        md.push_str("--:|");
    }
    md.push_str(":--|\n");
    for r in rows {
        let _ = write!(md, "| {} | {} |", escape(&r.experiment), escape(&r.posture));
        match &r.metrics {
            Some(m) => {
                for cell in m {
                    let _ = write!(md, " {} |", escape(cell));
                }
            }
            None => md.push_str(&" |".repeat(columns.len())),
        }
        let _ = writeln!(md, " {} |", badge(r.verdict));
    }
    if let Some(note) = cells::write_p99_note(rows) {
        let _ = writeln!(md, "\n{}", escape(&note));
    }
    for a in cells::comparison_alerts(rows) {
        let _ = writeln!(md, "\n> [!WARNING]\n> {}", escape(&a));
    }
    md
}

/// "✅ pass", "❌ MISSED", "⚠️ could not run".
fn badge(v: RowVerdict) -> String {
    let mark = match v {
        RowVerdict::Pass => "✅",
        RowVerdict::Missed => "❌",
        RowVerdict::CouldNotRun => "⚠️",
    };
    format!("{mark} {}", v.text())
}

/// One experiment's folded section.
fn section(entry: &Entry, row: &ComparisonRow) -> String {
    let mut md = String::new();
    let name = html_escape(entry.experiment());
    let posture = html_escape(entry.posture());
    match *entry {
        Entry::CouldNotRun { error, .. } => {
            let _ = writeln!(
                md,
                "<details open><summary><b>{name}</b> · {posture} · {}</summary>\n",
                badge(row.verdict)
            );
            let fence = "`".repeat(longest_backtick_run(error).max(2) + 1);
            let _ = writeln!(md, "{fence}text\n{}\n{fence}\n", error.trim_end());
            md.push_str("</details>\n");
        }
        Entry::Ran(r) => {
            let open = if r.slo.passed { "" } else { " open" };
            let mark = if r.slo.passed { "✅" } else { "❌" };
            let _ = writeln!(
                md,
                "<details{open}><summary><b>{name}</b> · {posture} · {mark} {}</summary>\n",
                cells::verdict_line(r.slo.passed)
            );
            for alert in cells::alerts(r) {
                let _ = writeln!(md, "> [!WARNING]\n> {}\n", escape(&alert));
            }
            if !r.experiment.description.trim().is_empty() {
                let _ = writeln!(md, "{}\n", escape(r.experiment.description.trim()));
            }
            if r.slo.checks.is_empty() {
                md.push_str("No SLO stated.\n\n");
            } else {
                for c in &r.slo.checks {
                    let _ = writeln!(
                        md,
                        "- **{}**: stated {}, observed {} — {}",
                        escape(&cells::slo_title(&c.name)),
                        escape(&c.stated),
                        escape(&c.observed),
                        if c.passed { "✅ pass" } else { "❌ MISSED" }
                    );
                }
                md.push('\n');
            }
            md.push_str("| finding | observed | stated | verdict |\n|:--|:--|:--|:--|\n");
            for f in cells::finding_rows(r) {
                let verdict = match f.passed {
                    Some(true) => "pass",
                    Some(false) => "**MISSED**",
                    None => "",
                };
                let _ = writeln!(
                    md,
                    "| {}{} | {} | {} | {verdict} |",
                    if f.sub { "&emsp;" } else { "" },
                    escape(&f.finding),
                    escape(&f.observed),
                    escape(&f.stated),
                );
            }
            let e = &r.experiment;
            if let Some(line) = cells::regions_line(e) {
                let _ = writeln!(md, "\n{}", escape(&line));
            }
            let _ = writeln!(
                md,
                "\n{} · seed {} · run `{}` on {} (fault proxy: {})\n",
                humantime::format_duration(e.duration),
                e.seed,
                r.run.id.replace('`', "'"),
                escape(&r.run.backend),
                escape(&r.run.fault_proxy),
            );
            md.push_str("</details>\n");
        }
    }
    md
}

fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// Text for a Markdown table cell or paragraph: `|` and Markdown's active characters
/// escaped, HTML characters as entities, line breaks as `<br>`.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '\\' | '*' | '`' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => {}
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

/// Text inside HTML tags of the page (the `<summary>` lines).
fn html_escape(s: &str) -> String {
    cells::xml_escape(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_escaped() {
        assert_eq!(escape("a|b"), "a\\|b");
        assert_eq!(escape("<x> & *y*"), "&lt;x&gt; &amp; \\*y\\*");
        assert_eq!(escape("one\ntwo"), "one<br>two");
    }
}
