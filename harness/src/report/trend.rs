//! `regiondrill report --trend NIGHT… --out DIR`: one HTML page (`DIR/trend.html`,
//! self-contained like the other HTML reports) with each cell's figures over several nights'
//! run or matrix folders, so that a slow drift — an RTO creeping up by 100 ms a week, which
//! no night-to-night comparison flags — is visible.
//!
//! Nights are ordered by when they ran: the earliest run id in each folder (run ids start
//! with the UTC start, `yyyymmdd-hhmmss`); folders without one keep the order given, after
//! those with one. Cells are matched by experiment name, in order of first appearance. Per
//! cell: a chart of its times (RTO, RPO, replication lag p99, write p99 of each home
//! region; ms) and one of its lost writes, one point per night (a night where the figure was
//! not measured, or the cell did not run, is a gap), then a table of every compared figure
//! and the verdict per night. The figures are those of `regiondrill compare`.

use super::compare::{Metric, Side, cells, figures};
use super::{ReportError, cells::xml_escape as escape, html::STYLE};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The trend page's file name in the output folder.
pub const TREND_FILE: &str = "trend.html";

/// Chart size in SVG pixels.
const SIZE: (u32, u32) = (960, 240);
/// Room right of the plot for the legend.
const LEGEND_WIDTH: u32 = 165;
const COLORS: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];
const GRID: RGBColor = RGBColor(232, 232, 232);
const AXIS_TEXT: RGBColor = RGBColor(60, 60, 60);

/// One night: its label and its cells.
struct Night {
    label: String,
    cells: Vec<(String, Side)>,
}

/// One line of a chart: a label and a value per night (None: a gap).
type Series = (String, Vec<Option<f64>>);

/// Renders `<out>/trend.html` from the nights' folders; returns its path.
pub fn render(dirs: &[PathBuf], out: &Path) -> Result<PathBuf, ReportError> {
    let mut nights = Vec::with_capacity(dirs.len());
    for (i, dir) in dirs.iter().enumerate() {
        let cells = cells(dir)?;
        let started = cells
            .iter()
            .filter_map(|(_, s)| match s {
                Side::Ran(r) => r.run.id.get(..15).map(str::to_string),
                Side::CouldNotRun(_) => None,
            })
            .filter(|id| {
                id.as_bytes()[8] == b'-' && id.bytes().filter(u8::is_ascii_digit).count() == 14
            })
            .min();
        let label = started.as_deref().map_or_else(
            || {
                dir.file_name()
                    .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into())
            },
            |s| {
                format!(
                    "{}-{}-{} {}:{}",
                    &s[0..4],
                    &s[4..6],
                    &s[6..8],
                    &s[9..11],
                    &s[11..13]
                )
            },
        );
        nights.push(((started.is_none(), started, i), Night { label, cells }));
    }
    nights.sort_by(|a, b| a.0.cmp(&b.0));
    let nights: Vec<Night> = nights.into_iter().map(|(_, n)| n).collect();
    let html = page(&nights)?;
    std::fs::create_dir_all(out).map_err(|e| ReportError::Write {
        path: out.to_path_buf(),
        message: e.to_string(),
    })?;
    let path = out.join(TREND_FILE);
    super::write_file(&path, &html)?;
    Ok(path)
}

fn page(nights: &[Night]) -> Result<String, ReportError> {
    let mut names: Vec<&str> = Vec::new();
    for n in nights {
        for (name, _) in &n.cells {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>regiondrill: trend</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>regiondrill: trend</h1>\n<p class=\"sub\">{} cell{} over {} night{}: {} to {}</p>\n",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        nights.len(),
        if nights.len() == 1 { "" } else { "s" },
        escape(nights.first().map_or("", |n| n.label.as_str())),
        escape(nights.last().map_or("", |n| n.label.as_str())),
    );
    html.push_str("<ul>\n");
    for (i, name) in names.iter().enumerate() {
        let _ = writeln!(html, "<li><a href=\"#cell-{i}\">{}</a></li>", escape(name));
    }
    html.push_str("</ul>\n");
    let labels: Vec<&str> = nights.iter().map(|n| n.label.as_str()).collect();
    for (i, name) in names.iter().enumerate() {
        let sides: Vec<Option<&Side>> = nights
            .iter()
            .map(|n| n.cells.iter().find(|(c, _)| c == name).map(|(_, s)| s))
            .collect();
        let series = cell_series(&sides);
        let _ = writeln!(html, "<h2 id=\"cell-{i}\">{}</h2>", escape(name));
        let pick = |keep: &dyn Fn(Metric) -> bool| -> Vec<Series> {
            series
                .iter()
                .filter(|(m, _)| keep(*m))
                .map(|(_, s)| s.clone())
                .collect()
        };
        let times = pick(&|m| !matches!(m, Metric::LostWrites | Metric::StaleReadRate));
        let losses = pick(&|m| m == Metric::LostWrites);
        for (title, y_desc, data) in [
            ("times", "ms", &times),
            ("lost writes", "acknowledged writes lost", &losses),
        ] {
            // Nothing to draw: never measured, or no write ever lost.
            if data
                .iter()
                .all(|(_, v)| v.iter().all(|v| v.is_none_or(|v| v == 0.0)))
            {
                continue;
            }
            let svg = chart(&labels, data, y_desc).map_err(|message| ReportError::Invalid {
                path: PathBuf::from(name),
                message: format!("cannot draw the {title} chart: {message}"),
            })?;
            let _ = writeln!(
                html,
                "<figure>{svg}<figcaption>{} of {}, night by night</figcaption></figure>",
                escape(title),
                escape(name)
            );
        }
        html.push_str(&table(&labels, &sides, &series));
    }
    html.push_str("</body>\n</html>\n");
    Ok(html)
}

/// Every figure of a cell over the nights: (metric, (label, value per night)).
fn cell_series(sides: &[Option<&Side>]) -> Vec<(Metric, Series)> {
    let mut out: Vec<(Metric, Series)> = Vec::new();
    for (night, side) in sides.iter().enumerate() {
        let Some(Side::Ran(r)) = side else { continue };
        for (metric, detail, value) in figures(r) {
            let label = if detail.is_empty() {
                metric.title().to_string()
            } else {
                format!("{} {detail}", metric.title())
            };
            let at = match out
                .iter()
                .position(|(m, (l, _))| *m == metric && *l == label)
            {
                Some(at) => at,
                None => {
                    out.push((metric, (label, vec![None; sides.len()])));
                    out.len() - 1
                }
            };
            out[at].1.1[night] = value;
        }
    }
    out.sort_by_key(|(m, _)| *m);
    out
}

fn table(labels: &[&str], sides: &[Option<&Side>], series: &[(Metric, Series)]) -> String {
    let mut html = String::from("<table>\n<tr><th>night</th>");
    for (_, (label, _)) in series {
        let _ = write!(html, "<th>{}</th>", escape(label));
    }
    html.push_str("<th>verdict</th></tr>\n");
    for (night, label) in labels.iter().enumerate() {
        let _ = write!(html, "<tr><td class=\"nowrap\">{}</td>", escape(label));
        for (metric, (_, values)) in series {
            let _ = write!(
                html,
                "<td class=\"num\">{}</td>",
                values[night].map_or("—".into(), |v| escape(&metric.show(v)))
            );
        }
        let verdict = match sides[night] {
            None => "<td>not in this night</td>".to_string(),
            Some(Side::CouldNotRun(e)) => {
                format!("<td class=\"error\">could not run: {}</td>", escape(e))
            }
            Some(Side::Ran(r)) if r.slo.passed => "<td class=\"pass\">pass</td>".into(),
            Some(Side::Ran(_)) => "<td class=\"missed\">MISSED</td>".into(),
        };
        let _ = writeln!(html, "{verdict}</tr>");
    }
    html.push_str("</table>\n");
    html
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// One chart: a line with points per series, x = the nights (labelled), gaps where a value
/// is missing; "never" (an RTO not recovered from) is drawn as a cross at the top.
fn chart(labels: &[&str], series: &[Series], y_desc: &str) -> Result<String, String> {
    // Figures never measured on any night (lag in single-region) stay out of the legend.
    // Each keeps its colour (its place among the cell's figures) on every chart.
    let series: Vec<(usize, &Series)> = series
        .iter()
        .enumerate()
        .filter(|(_, (_, v))| v.iter().any(Option::is_some))
        .collect();
    let finite = series
        .iter()
        .flat_map(|(_, (_, v))| v.iter().flatten())
        .filter(|v| v.is_finite());
    let y_hi = (finite.fold(0.0f64, |a, &b| a.max(b)) * 1.15).max(1.0);
    let n = labels.len().max(1);
    let x_range = -0.5f64..(n as f64 - 0.5);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .margin_right(LEGEND_WIDTH)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(x_range, 0f64..y_hi)
            .map_err(err)?;
        let x_fmt = |v: &f64| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].to_string()
            } else {
                String::new()
            }
        };
        let y_fmt = |v: &f64| format!("{v:.0}");
        // Whole numbers on the axis: no more labels than units when the range is small.
        let y_labels = (y_hi.floor() as usize + 1).clamp(2, 6);
        chart
            .configure_mesh()
            .x_labels(n.min(12) + 1)
            .y_labels(y_labels)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .y_desc(y_desc)
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .axis_style(AXIS_TEXT)
            .label_style(("sans-serif", 12).into_font().color(&AXIS_TEXT))
            .axis_desc_style(("sans-serif", 13).into_font().color(&AXIS_TEXT))
            .draw()
            .map_err(err)?;
        let font = ("sans-serif", 13).into_font().color(&AXIS_TEXT);
        for (k, &(place, (label, values))) in series.iter().enumerate() {
            let color = COLORS[place % COLORS.len()];
            let mut run: Vec<(f64, f64)> = Vec::new();
            let mut runs = Vec::new();
            for (x, v) in values.iter().enumerate() {
                match v {
                    Some(v) if v.is_finite() => run.push((x as f64, *v)),
                    _ => runs.push(std::mem::take(&mut run)),
                }
            }
            runs.push(run);
            chart
                .draw_series(
                    runs.iter()
                        .filter(|r| r.len() > 1)
                        .map(|r| PathElement::new(r.clone(), color.stroke_width(2))),
                )
                .map_err(err)?;
            chart
                .draw_series(
                    runs.iter()
                        .flatten()
                        .map(|&p| Circle::new(p, 3, color.filled())),
                )
                .map_err(err)?;
            chart
                .draw_series(values.iter().enumerate().filter_map(|(x, v)| {
                    v.filter(|v| v.is_infinite())
                        .map(|_| Cross::new((x as f64, y_hi * 0.95), 5, color.stroke_width(2)))
                }))
                .map_err(err)?;
            let (lx, ly) = ((SIZE.0 - LEGEND_WIDTH + 14) as i32, 18 + 20 * k as i32);
            root.draw(&PathElement::new(
                vec![(lx, ly), (lx + 18, ly)],
                color.stroke_width(2),
            ))
            .map_err(err)?;
            root.draw(&Text::new(
                label.clone(),
                (lx + 26, ly),
                font.clone().pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(out)
}
