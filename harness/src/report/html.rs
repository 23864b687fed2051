//! The HTML report (`report.html`, `matrix.html`): ONE self-contained file to open offline or
//! keep as a CI artifact — inline CSS, inline SVG charts, no fonts, scripts or images
//! fetched from anywhere. The comparison table (each experiment linking to its section),
//! then per experiment: its verdict, description, findings table (the terminal report's
//! rows) and timelines ([`super::timeline`]).
//!
//! A tiny inline script records, on `load`, what the browser actually laid out:
//! `<body data-rendered="tables=N;charts=M">` (tables with a non-zero height, SVGs with a
//! non-zero width and height), so a headless browser can check the page renders.

use super::cells::{self, ComparisonRow, RowVerdict, xml_escape as escape};
use super::timeline::{self, Timeline};
use super::{Entry, StoredRun};
use std::fmt::Write;

pub(crate) const STYLE: &str = r#"
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: #1f2328; background: #fff; max-width: 1100px; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2.5rem; padding-bottom: .3rem; border-bottom: 1px solid #d1d9e0; }
.sub, .meta, figcaption { color: #59636e; }
.meta { font-size: .9rem; }
table { border-collapse: collapse; margin: 1rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d1d9e0; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num { text-align: right; white-space: nowrap; }
td.nowrap { white-space: nowrap; }
tr.detail td:first-child { padding-left: 1.8rem; color: #59636e; }
.pass { color: #1a7f37; font-weight: 600; }
.missed { color: #d1242f; font-weight: 600; }
.alert { border-left: 4px solid #d1242f; background: #fff1f0; padding: .4rem .7rem; margin: .5rem 0; }
.error { color: #9a6700; font-weight: 600; }
.badge { font-size: .85rem; padding: .1rem .5rem; border-radius: 1rem; border: 1px solid currentColor; margin-left: .5rem; }
figure { margin: 1.2rem 0; }
figure svg { display: block; width: 100%; max-width: 960px; height: auto; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; white-space: pre-wrap; }
a { color: #0969da; text-decoration: none; }
a:hover { text-decoration: underline; }
"#;

/// Measures what the browser laid out and records it on `<body>` (read by tests through
/// a headless browser).
const SCRIPT: &str = r#"
window.addEventListener("load", function () {
  var tables = 0, charts = 0;
  document.querySelectorAll("table").forEach(function (t) {
    if (t.getBoundingClientRect().height > 0) { tables++; }
  });
  document.querySelectorAll("svg").forEach(function (s) {
    var r = s.getBoundingClientRect();
    if (r.width > 0 && r.height > 0) { charts++; }
  });
  document.body.dataset.rendered = "tables=" + tables + ";charts=" + charts;
});
"#;

/// The timelines of a run as HTML figures ("" plus a note when there is nothing to draw).
pub fn charts(run: &StoredRun) -> String {
    let t = Timeline::of(run);
    let mut html = String::new();
    let mut figure = |caption: &str, chart: Option<Result<String, String>>| match chart {
        None => {}
        Some(Ok(svg)) => {
            let _ = write!(
                html,
                "<figure>\n<figcaption>{caption}</figcaption>\n{svg}</figure>\n"
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(
                html,
                "<p class=\"meta\">{caption}: could not be drawn ({})</p>",
                escape(&e)
            );
        }
    };
    let bucket = if t.bucket_s > 0.0 {
        format!(
            "{} buckets of {}",
            t.buckets.len(),
            cells::dur(Some(t.bucket_s * 1e3))
        )
    } else {
        String::new()
    };
    figure(
        "Replication lag: each heartbeat's lag (commit on the primary → seen on the replica; \
         a line per replica) at its commit time",
        timeline::lag_svg(&t),
    );
    figure(
        &format!(
            "Error rate: share of operations that did not succeed (fail or unknown), by invoke \
             time ({bucket})"
        ),
        timeline::error_rate_svg(&t),
    );
    figure(
        &format!(
            "Write latency of successful writes by home region, p50 and p99 ({bucket}), log scale"
        ),
        timeline::latency_svg(&t),
    );
    let erasure = &run.results.findings.erasure;
    if erasure.checked {
        figure(
            "Erasures: each from its acknowledged request to the first poll that found no copy \
             in any region's databases or caches",
            timeline::erasure_svg(&t, erasure),
        );
    }
    if run.history.is_none() {
        html.push_str(
            "<p class=\"meta\">No history.jsonl in the run folder: error-rate and latency \
             timelines and fault windows left out.</p>\n",
        );
    }
    html
}

/// A whole page: `title`, an optional subtitle, the comparison of `entries` and a section
/// per entry with `charts[i]` (HTML figures, as from [`charts`]).
pub fn page(title: &str, subtitle: Option<&str>, entries: &[Entry], charts: &[&str]) -> String {
    let rows: Vec<ComparisonRow> = entries.iter().map(cells::comparison_row).collect();
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>regiondrill: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(title)
    );
    let _ = writeln!(html, "<h1>regiondrill: {}</h1>", escape(title));
    let tally = cells::tally(&rows);
    match subtitle {
        Some(s) => {
            let _ = writeln!(
                html,
                "<p class=\"sub\">{} · {}</p>",
                escape(s),
                escape(&tally)
            );
        }
        None => {
            let _ = writeln!(html, "<p class=\"sub\">{}</p>", escape(&tally));
        }
    }
    html.push_str(&comparison(&rows));
    for (i, (entry, row)) in entries.iter().zip(&rows).enumerate() {
        html.push_str(&section(
            i,
            entry,
            row,
            charts.get(i).copied().unwrap_or(""),
        ));
    }
    let _ = write!(html, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    html
}

fn verdict_class(v: RowVerdict) -> &'static str {
    match v {
        RowVerdict::Pass => "pass",
        RowVerdict::Missed => "missed",
        RowVerdict::CouldNotRun => "error",
    }
}

fn comparison(rows: &[ComparisonRow]) -> String {
    let mut html = String::from(
        "<table class=\"comparison\">\n<thead><tr><th>experiment</th><th>posture</th>",
    );
    let columns = cells::columns(rows);
    for (header, _) in &columns {
        let _ = write!(html, "<th>{}</th>", escape(header));
    }
    html.push_str("<th>verdict</th></tr></thead>\n<tbody>\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            html,
            "<tr><td><a href=\"#x{i}\">{}</a></td><td class=\"nowrap\">{}</td>",
            escape(&r.experiment),
            escape(&r.posture)
        );
        match &r.metrics {
            Some(m) => {
                for cell in m {
                    let _ = write!(html, "<td class=\"num\">{}</td>", escape(cell));
                }
            }
            None => {
                let error = r.error.as_deref().unwrap_or("");
                let _ = write!(
                    html,
                    "<td colspan=\"{}\" class=\"error\">could not run: {}</td>",
                    columns.len(),
                    escape(error.lines().next().unwrap_or(""))
                );
            }
        }
        let verdict = match r.verdict {
            RowVerdict::CouldNotRun => "error",
            v => v.text(),
        };
        let _ = writeln!(
            html,
            "<td class=\"{}\">{verdict}</td></tr>",
            verdict_class(r.verdict)
        );
    }
    html.push_str("</tbody>\n</table>\n");
    if let Some(note) = cells::write_p99_note(rows) {
        let _ = writeln!(html, "<p>{}</p>", escape(&note));
    }
    for a in cells::comparison_alerts(rows) {
        let _ = writeln!(html, "<p class=\"alert\">⚠ {}</p>", escape(&a));
    }
    html
}

fn section(i: usize, entry: &Entry, row: &ComparisonRow, charts: &str) -> String {
    let mut html = String::new();
    let _ = writeln!(
        html,
        "<section id=\"x{i}\">\n<h2>{} <span class=\"meta\">{}</span> \
         <span class=\"badge {}\">{}</span></h2>",
        escape(entry.experiment()),
        escape(entry.posture()),
        verdict_class(row.verdict),
        match entry {
            Entry::Ran(r) => cells::verdict_line(r.slo.passed),
            Entry::CouldNotRun { .. } => "could not run",
        }
    );
    match *entry {
        Entry::CouldNotRun { error, .. } => {
            let _ = writeln!(html, "<pre>{}</pre>", escape(error.trim_end()));
        }
        Entry::Ran(r) => {
            let e = &r.experiment;
            for alert in cells::alerts(r) {
                let _ = writeln!(html, "<p class=\"alert\">⚠ {}</p>", escape(&alert));
            }
            if !e.description.trim().is_empty() {
                let _ = writeln!(html, "<p>{}</p>", escape(e.description.trim()));
            }
            if let Some(line) = cells::regions_line(e) {
                let _ = writeln!(html, "<p class=\"meta\">{}</p>", escape(&line));
            }
            let _ = writeln!(
                html,
                "<p class=\"meta\">{} · seed {} · run <code>{}</code> on {} (fault proxy: {})</p>",
                humantime::format_duration(e.duration),
                e.seed,
                escape(&r.run.id),
                escape(&r.run.backend),
                escape(&r.run.fault_proxy)
            );
            html.push_str(
                "<table class=\"findings\">\n<thead><tr><th>finding</th><th>observed</th>\
                 <th>stated</th><th>verdict</th></tr></thead>\n<tbody>\n",
            );
            for f in cells::finding_rows(r) {
                let (class, verdict) = match f.passed {
                    Some(true) => ("pass", "pass"),
                    Some(false) => ("missed", "MISSED"),
                    None => ("", ""),
                };
                let _ = writeln!(
                    html,
                    "<tr{}><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{verdict}</td></tr>",
                    if f.sub { " class=\"detail\"" } else { "" },
                    escape(&f.finding),
                    escape(&f.observed),
                    escape(&f.stated)
                );
            }
            html.push_str("</tbody>\n</table>\n");
            html.push_str(charts);
        }
    }
    html.push_str("</section>\n");
    html
}
