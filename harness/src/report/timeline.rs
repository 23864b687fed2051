//! Timelines of a run for the HTML report, drawn as SVG with plotters (rendered to a string
//! and inlined; text is left to the browser's sans-serif, no font is read or embedded).
//!
//! Three charts share one time axis (seconds since the workload started, the history's
//! clock):
//! - **replication lag** (ms): each heartbeat's lag at its commit time, as in
//!   `replication_lag.series`; heartbeats never seen on the replica are crosses along the
//!   upper part of the chart. Left out when there is no heartbeat.
//! - **error rate** (%): operations bucketed by invoke time into [`BUCKETS`] equal buckets
//!   over the run; each bucket's share of operations that did not end `ok` (`fail` or
//!   `unknown`). Empty buckets are gaps.
//! - **write latency** (ms, log scale): p50 and p99 (nearest rank, as the checkers) of the
//!   `ok` writes and increments of each bucket, one pair of lines per home region. Writes,
//!   because they tell the postures apart (who crosses the ocean to the primary, and when
//!   that changes); per region, because one p50 over both regions — or over local reads and
//!   remote writes — would jump between them from bucket to bucket.
//!
//! - **erasures** (`[residency]` runs with planned erasures): one row per erasure, a bar from
//!   its acknowledged request to the first poll that found no copy in any region (a cross at
//!   the end of the run when copies remained).
//!
//! Behind the data: each fault's window, shaded from its `FaultStarted` to its
//! `FaultHealed` (or to `Healed`, or to the end of the run when never healed). On top:
//! the failover controller's steps — primary declared down, fenced, promoted, rerouted — as
//! vertical lines, with a legend.
//!
//! Bucketing keeps the SVG the same size whatever the history's length, and costs one pass
//! over the operations plus a selection per bucket: a million operations take milliseconds.

use super::StoredRun;
use crate::checker::percentile;
use crate::history::{EventKind, Nanos, OpKind};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Buckets of the error-rate and latency charts.
pub const BUCKETS: usize = 150;
/// Lag points kept at most (the highest lag of each slice of time beyond that).
const MAX_LAG_POINTS: usize = 1200;
/// Chart size in SVG pixels (the page scales them down to its width).
const SIZE: (u32, u32) = (960, 260);
/// Room right of the plot for the legend, so it never hides data.
const LEGEND_WIDTH: u32 = 165;

/// A fault, from start to heal.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    /// Start, s.
    pub start_s: f64,
    /// Heal (or end of the run), s.
    pub end_s: f64,
    /// What the fault was, e.g. "kill region us".
    pub fault: String,
}

/// A failover step of the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MarkKind {
    /// The primary region was declared down.
    DeclaredDown,
    /// The old primary was fenced.
    Fenced,
    /// The replica was promoted.
    Promoted,
    /// Routing moved to the new primary.
    Rerouted,
    /// A failover step failed.
    Failed,
}

impl MarkKind {
    /// The legend's label.
    pub fn label(self) -> &'static str {
        match self {
            MarkKind::DeclaredDown => "declared down",
            MarkKind::Fenced => "fenced",
            MarkKind::Promoted => "promoted",
            MarkKind::Rerouted => "rerouted",
            MarkKind::Failed => "failover failed",
        }
    }

    fn color(self) -> RGBColor {
        match self {
            MarkKind::DeclaredDown => RGBColor(230, 120, 0),
            MarkKind::Fenced => RGBColor(140, 86, 75),
            MarkKind::Promoted => RGBColor(128, 60, 190),
            MarkKind::Rerouted => RGBColor(30, 140, 60),
            MarkKind::Failed => RGBColor(209, 36, 47),
        }
    }
}

/// One bucket of operations (by invoke time).
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Start, s.
    pub start_s: f64,
    /// Operations invoked in it.
    pub ops: usize,
    /// Those that did not end `ok`.
    pub not_ok: usize,
    /// p50 latency of its `ok` writes and increments, ms, per home region (as
    /// [`Timeline::regions`]).
    pub p50_ms: Vec<Option<f64>>,
    /// p99 latency of its `ok` writes and increments, ms, per home region.
    pub p99_ms: Vec<Option<f64>>,
}

/// One replica's heartbeat lag in the replication-lag chart.
#[derive(Debug, Clone, PartialEq)]
pub struct LagLine {
    /// The replica's region (None in results written before it was recorded).
    pub replica: Option<String>,
    /// (commit time s, lag ms), downsampled to at most 1,200 points.
    pub points: Vec<(f64, f64)>,
    /// Commit times (s) of heartbeats never seen on this replica.
    pub unreplicated: Vec<f64>,
}

/// What the charts of one run show.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// End of the time axis, s: the last thing recorded.
    pub end_s: f64,
    /// Fault windows (from the history's events).
    pub faults: Vec<FaultWindow>,
    /// Failover steps, in time order.
    pub marks: Vec<(f64, MarkKind)>,
    /// Replication lag, one line per replica watched (the first replica's first).
    pub lags: Vec<LagLine>,
    /// Width of a bucket, s.
    pub bucket_s: f64,
    /// Operations by invoke time (empty without a history).
    pub buckets: Vec<Bucket>,
    /// The home regions of the operations, sorted: the order of each bucket's latencies.
    pub regions: Vec<String>,
}

fn s(ns: Nanos) -> f64 {
    ns as f64 / 1e9
}

impl Timeline {
    /// The timeline of a stored run: buckets, faults and steps from `history.jsonl`; lag
    /// from `probes.json`, else from `results.json`'s series; without a history the steps
    /// come from `results.json`'s failover findings and there are no buckets or faults.
    pub fn of(run: &StoredRun) -> Timeline {
        let mut end_ns: Nanos = 0;
        let mut faults = Vec::new();
        let mut marks = Vec::new();
        let mut buckets = Vec::new();
        let mut regions = Vec::new();
        let mut bucket_ns: Nanos = 0;
        if let Some(h) = &run.history {
            for op in &h.ops {
                end_ns = end_ns.max(op.complete_ns).max(op.invoke_ns);
            }
            for e in &h.events {
                end_ns = end_ns.max(e.at_ns);
            }
            let healed = h
                .events
                .iter()
                .find(|e| e.kind == EventKind::Healed)
                .map(|e| e.at_ns);
            for (i, e) in h.events.iter().enumerate() {
                match &e.kind {
                    EventKind::FaultStarted { index, fault, .. } => {
                        let heal = h.events[i + 1..]
                            .iter()
                            .find(|later| {
                                matches!(&later.kind,
                                EventKind::FaultHealed { index: j, .. } if j == index)
                            })
                            .map(|later| later.at_ns)
                            .or(healed.filter(|&t| t >= e.at_ns));
                        faults.push((e.at_ns, heal, fault.clone()));
                    }
                    EventKind::PrimaryDeclaredDown { .. } => {
                        marks.push((s(e.at_ns), MarkKind::DeclaredDown))
                    }
                    EventKind::Fenced { .. } => marks.push((s(e.at_ns), MarkKind::Fenced)),
                    EventKind::Promoted { .. } => marks.push((s(e.at_ns), MarkKind::Promoted)),
                    EventKind::Rerouted { .. } => marks.push((s(e.at_ns), MarkKind::Rerouted)),
                    EventKind::FailoverFailed { .. } => marks.push((s(e.at_ns), MarkKind::Failed)),
                    _ => {}
                }
            }
            (bucket_ns, buckets, regions) = bucketize(h);
        } else {
            let f = &run.results.findings.failover;
            for (at, kind) in [
                (f.detected_at_ms, MarkKind::DeclaredDown),
                (f.promoted_at_ms, MarkKind::Promoted),
                (f.rerouted_at_ms, MarkKind::Rerouted),
            ] {
                if let Some(ms) = at {
                    marks.push((ms / 1e3, kind));
                }
            }
        }
        // Per replica, the first replica's first; downsampled once the time axis is known.
        let mut lags: Vec<LagLine> = Vec::new();
        match &run.probes {
            Some(p) => {
                let first = (p.lag_replica.clone(), &p.heartbeats);
                let others = p
                    .other_replicas
                    .iter()
                    .map(|r| (Some(r.replica.clone()), &r.heartbeats));
                for (replica, heartbeats) in std::iter::once(first).chain(others) {
                    let (mut points, mut unreplicated) = (Vec::new(), Vec::new());
                    for hb in heartbeats {
                        end_ns = end_ns.max(hb.committed_ns);
                        match hb.visible_ns {
                            Some(v) => points.push((
                                s(hb.committed_ns),
                                (v as i128 - hb.committed_ns as i128) as f64 / 1e6,
                            )),
                            None => unreplicated.push(s(hb.committed_ns)),
                        }
                    }
                    lags.push(LagLine {
                        replica,
                        points,
                        unreplicated,
                    });
                }
            }
            None => {
                let first = &run.results.findings.replication_lag;
                for l in std::iter::once(first).chain(&first.others) {
                    lags.push(LagLine {
                        replica: l.replica.clone(),
                        points: l.series.iter().map(|p| (p.at_ms / 1e3, p.lag_ms)).collect(),
                        unreplicated: Vec::new(),
                    });
                }
            }
        }
        lags.retain(|l| !l.points.is_empty() || !l.unreplicated.is_empty());
        let mut end_s = s(end_ns);
        for (t, _) in lags.iter().flat_map(|l| &l.points) {
            end_s = end_s.max(*t);
        }
        for (t, _) in &marks {
            end_s = end_s.max(*t);
        }
        if end_s <= 0.0 {
            end_s = 1.0;
        }
        let faults = faults
            .into_iter()
            .map(|(start, heal, fault)| FaultWindow {
                start_s: s(start),
                end_s: heal.map_or(end_s, s),
                fault,
            })
            .collect();
        marks.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        Timeline {
            end_s,
            faults,
            marks,
            lags: lags
                .into_iter()
                .map(|l| LagLine {
                    points: downsample_max(l.points, end_s),
                    unreplicated: dedupe_by_pixel(l.unreplicated, end_s),
                    ..l
                })
                .collect(),
            bucket_s: s(bucket_ns),
            buckets,
            regions,
        }
    }
}

/// Operations into [`BUCKETS`] buckets by invoke time, from 0 to the last invocation; with
/// the home regions (sorted) that the buckets' latencies are given for.
fn bucketize(h: &crate::history::History) -> (Nanos, Vec<Bucket>, Vec<String>) {
    let Some(last) = h.ops.iter().map(|o| o.invoke_ns).max() else {
        return (0, Vec::new(), Vec::new());
    };
    let mut regions: Vec<String> = Vec::new();
    for op in &h.ops {
        if !regions.contains(&op.region) {
            regions.push(op.region.clone());
        }
    }
    regions.sort();
    let width = (last / BUCKETS as u64 + 1).max(1_000_000);
    let n = (last / width) as usize + 1;
    let mut ops = vec![0usize; n];
    let mut not_ok = vec![0usize; n];
    // [bucket][region]
    let mut latencies: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); regions.len()]; n];
    for op in &h.ops {
        let b = (op.invoke_ns / width) as usize;
        ops[b] += 1;
        if !op.outcome.is_ok() {
            not_ok[b] += 1;
        } else if op.kind != OpKind::Read {
            let r = regions
                .iter()
                .position(|r| *r == op.region)
                .expect("listed");
            latencies[b][r].push(op.latency_ns() as f64 / 1e6);
        }
    }
    let buckets = latencies
        .iter_mut()
        .enumerate()
        .map(|(b, per_region)| Bucket {
            start_s: s(b as u64 * width),
            ops: ops[b],
            not_ok: not_ok[b],
            p50_ms: per_region.iter_mut().map(|l| percentile(l, 0.50)).collect(),
            p99_ms: per_region.iter_mut().map(|l| percentile(l, 0.99)).collect(),
        })
        .collect();
    (width, buckets, regions)
}

/// At most [`MAX_LAG_POINTS`] points: beyond that, the highest lag of each of
/// `MAX_LAG_POINTS / 2` slices of time (a spike must survive the downsampling; half as many
/// points as allowed keeps the line readable).
fn downsample_max(points: Vec<(f64, f64)>, end_s: f64) -> Vec<(f64, f64)> {
    if points.len() <= MAX_LAG_POINTS {
        return points;
    }
    let slices = MAX_LAG_POINTS / 2;
    let mut best: Vec<Option<(f64, f64)>> = vec![None; slices];
    for (t, lag) in points {
        let i = ((t / end_s * slices as f64) as usize).min(slices - 1);
        if best[i].is_none_or(|(_, l)| lag > l) {
            best[i] = Some((t, lag));
        }
    }
    best.into_iter().flatten().collect()
}

/// One time per horizontal pixel is enough for markers.
fn dedupe_by_pixel(times: Vec<f64>, end_s: f64) -> Vec<f64> {
    let mut last = None;
    let mut out = Vec::new();
    for t in times {
        let px = (t / end_s * SIZE.0 as f64) as i64;
        if last != Some(px) {
            out.push(t);
            last = Some(px);
        }
    }
    out
}

const FAULT: RGBColor = RGBColor(220, 40, 40);
const FAULT_TEXT: RGBColor = RGBColor(150, 20, 20);
const ERRORS: RGBColor = RGBColor(200, 30, 30);
/// One colour per home region in the latency chart (as many as an experiment may name), and
/// per replica in the replication-lag chart.
const REGION_COLORS: [RGBColor; crate::stack::topology::MAX_REGIONS] = [
    RGBColor(230, 85, 13),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
const UNSEEN: RGBColor = RGBColor(90, 90, 90);
const ERASURE: RGBColor = RGBColor(117, 80, 160);
const GRID: RGBColor = RGBColor(232, 232, 232);
const AXIS_TEXT: RGBColor = RGBColor(60, 60, 60);

type Svg<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Chart<'a, 'b, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A number for an axis label: at most two decimals, trailing zeros dropped.
fn num(v: f64) -> String {
    let s = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

/// How a legend entry is drawn.
#[derive(Clone, Copy)]
enum Swatch {
    /// A filled box (areas, windows).
    Area(RGBAColor),
    /// A horizontal line (series), of this width.
    Line(RGBAColor, u32),
    /// A vertical line (events).
    Mark(RGBColor),
    /// A cross (points).
    Cross(RGBColor),
}

/// The legend, drawn in the margin right of the plot (never over data).
#[derive(Default)]
struct Legend(Vec<(String, Swatch)>);

impl Legend {
    fn add(&mut self, label: impl Into<String>, swatch: Swatch) {
        self.0.push((label.into(), swatch));
    }

    fn draw(&self, root: &Svg) -> Result<(), String> {
        let x = (SIZE.0 - LEGEND_WIDTH + 14) as i32;
        let font = ("sans-serif", 13).into_font().color(&AXIS_TEXT);
        for (i, (label, swatch)) in self.0.iter().enumerate() {
            let y = 18 + 20 * i as i32;
            match *swatch {
                Swatch::Area(c) => {
                    root.draw(&Rectangle::new([(x, y - 6), (x + 18, y + 6)], c.filled()))
                }
                Swatch::Line(c, width) => root.draw(&PathElement::new(
                    vec![(x, y), (x + 18, y)],
                    c.stroke_width(width),
                )),
                Swatch::Mark(c) => root.draw(&PathElement::new(
                    vec![(x + 9, y - 8), (x + 9, y + 8)],
                    c.stroke_width(2),
                )),
                Swatch::Cross(c) => root.draw(&Cross::new((x + 9, y), 4, c.stroke_width(1))),
            }
            .map_err(err)?;
            root.draw(&Text::new(
                label.clone(),
                (x + 26, y),
                font.clone().pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(err)?;
        }
        Ok(())
    }
}

/// Draws one chart into a fresh SVG string; `draw` adds the data and fills the legend.
fn svg<F>(draw: F) -> Result<String, String>
where
    F: FnOnce(&Svg, &mut Legend) -> Result<(), String>,
{
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut legend = Legend::default();
        draw(&root, &mut legend)?;
        legend.draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// The axes and grid, then the fault windows (with what each fault was at its top) behind
/// everything else.
fn frame<'a, 'b: 'a, Y>(
    chart: &mut Chart<'a, 'b, Y>,
    legend: &mut Legend,
    t: &Timeline,
    y_desc: &str,
) -> Result<(), String>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let x_fmt = |v: &f64| num(*v);
    let y_fmt = |v: &f64| num(*v);
    chart
        .configure_mesh()
        .x_desc("time since the workload started (s)")
        .y_desc(y_desc)
        .x_labels(12)
        .y_labels(6)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .axis_style(AXIS_TEXT)
        .label_style(("sans-serif", 13).into_font().color(&AXIS_TEXT))
        .axis_desc_style(("sans-serif", 14).into_font().color(&AXIS_TEXT))
        .draw()
        .map_err(err)?;
    if !t.faults.is_empty() {
        let (y_lo, y_hi) = y_span(chart);
        chart
            .draw_series(t.faults.iter().map(|f| {
                Rectangle::new(
                    [(f.start_s, y_lo), (f.end_s, y_hi)],
                    FAULT.mix(0.12).filled(),
                )
            }))
            .map_err(err)?;
        let font = ("sans-serif", 12).into_font().color(&FAULT_TEXT);
        // Labels of faults that start close together go on separate lines.
        let mut rows: Vec<f64> = Vec::new();
        let mut labels = Vec::new();
        for f in &t.faults {
            let row = rows
                .iter()
                .position(|&free_from| f.start_s >= free_from)
                .unwrap_or(rows.len());
            let free_from = f.start_s + t.end_s * 0.2;
            match rows.get_mut(row) {
                Some(r) => *r = free_from,
                None => rows.push(free_from),
            }
            labels.push((f, row as i32));
        }
        chart
            .draw_series(labels.into_iter().map(|(f, row)| {
                EmptyElement::at((f.start_s, y_hi))
                    + Text::new(f.fault.clone(), (3, 3 + 14 * row), font.clone())
            }))
            .map_err(err)?;
        legend.add("fault window", Swatch::Area(FAULT.mix(0.25)));
    }
    Ok(())
}

/// The y range of a chart, in data units.
fn y_span<Y: Ranged<ValueType = f64>>(chart: &Chart<'_, '_, Y>) -> (f64, f64) {
    let r = chart.y_range();
    (r.start, r.end)
}

/// The failover steps, on top of the data.
fn marks<'a, 'b: 'a, Y>(
    chart: &mut Chart<'a, 'b, Y>,
    legend: &mut Legend,
    t: &Timeline,
) -> Result<(), String>
where
    Y: Ranged<ValueType = f64>,
{
    let (y_lo, y_hi) = y_span(chart);
    for kind in [
        MarkKind::DeclaredDown,
        MarkKind::Fenced,
        MarkKind::Promoted,
        MarkKind::Rerouted,
    ] {
        let at: Vec<f64> = t
            .marks
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(at, _)| *at)
            .collect();
        if at.is_empty() {
            continue;
        }
        let color = kind.color();
        chart
            .draw_series(
                at.into_iter()
                    .map(|x| PathElement::new(vec![(x, y_lo), (x, y_hi)], color.stroke_width(2))),
            )
            .map_err(err)?;
        legend.add(kind.label(), Swatch::Mark(color));
    }
    Ok(())
}

/// Splits points into runs without gaps longer than `max_gap` (x units): a line must not
/// bridge a stretch with no data.
fn segments(points: impl IntoIterator<Item = (f64, f64)>, max_gap: f64) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut last_x = f64::NEG_INFINITY;
    for (x, y) in points {
        if x - last_x > max_gap || out.is_empty() {
            out.push(Vec::new());
        }
        out.last_mut().expect("pushed").push((x, y));
        last_x = x;
    }
    out
}

fn builder<'a, 'b>(root: &'a Svg<'b>) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.margin(10)
        .margin_right(LEGEND_WIDTH)
        .x_label_area_size(40)
        .y_label_area_size(64);
    b
}

/// The replication-lag chart, a line per replica (their never-replicated heartbeats as
/// crosses in the line's colour, each replica at its own height); None when there is no
/// heartbeat at all.
pub fn lag_svg(t: &Timeline) -> Option<Result<String, String>> {
    if t.lags.is_empty() {
        return None;
    }
    let all = || t.lags.iter().flat_map(|l| &l.points).map(|p| p.1);
    let y_hi = (all().fold(0.0f64, f64::max) * 1.15).max(1.0);
    let y_lo = all().fold(0.0f64, f64::min) * 1.15;
    let several = t.lags.len() > 1;
    Some(svg(|root, legend| {
        let mut chart = builder(root)
            .build_cartesian_2d(0f64..t.end_s, y_lo..y_hi)
            .map_err(err)?;
        frame(&mut chart, legend, t, "replication lag (ms)")?;
        for (i, line) in t.lags.iter().enumerate() {
            // The region palette from its blue on: a lone replica's line stays blue.
            let colour = REGION_COLORS[(i + 1) % REGION_COLORS.len()];
            let to = crate::checker::rows::to_replica(line.replica.as_deref(), several);
            // A gap of more than a second, or of 20 typical spacings, is a gap in the data.
            let spacing = match line.points.as_slice() {
                [first, .., last] => (last.0 - first.0) / (line.points.len() - 1) as f64,
                _ => 1.0,
            };
            if !line.points.is_empty() {
                chart
                    .draw_series(
                        segments(line.points.iter().copied(), (spacing * 20.0).max(1.0))
                            .into_iter()
                            .map(|seg| PathElement::new(seg, colour.stroke_width(2))),
                    )
                    .map_err(err)?;
                legend.add(
                    format!("heartbeat lag{to}"),
                    Swatch::Line(colour.to_rgba(), 2),
                );
            }
            if !line.unreplicated.is_empty() {
                let (y, cross) = if several {
                    (0.8 - 0.06 * i as f64, colour)
                } else {
                    (0.8, UNSEEN)
                };
                let y = y_lo + (y_hi - y_lo) * y;
                chart
                    .draw_series(
                        line.unreplicated
                            .iter()
                            .map(|&x| Cross::new((x, y), 3, cross.stroke_width(1))),
                    )
                    .map_err(err)?;
                legend.add(format!("never replicated{to}"), Swatch::Cross(cross));
            }
        }
        marks(&mut chart, legend, t)
    }))
}

/// The error-rate chart; None without operations.
pub fn error_rate_svg(t: &Timeline) -> Option<Result<String, String>> {
    if t.buckets.is_empty() {
        return None;
    }
    let rate = |b: &Bucket| b.not_ok as f64 * 100.0 / b.ops as f64;
    let points = t
        .buckets
        .iter()
        .filter(|b| b.ops > 0)
        .map(|b| (b.start_s + t.bucket_s / 2.0, rate(b)));
    let max = t
        .buckets
        .iter()
        .filter(|b| b.ops > 0)
        .map(rate)
        .fold(0.0f64, f64::max);
    let y_hi = (max * 1.2).clamp(5.0, 100.0);
    let segs = segments(points, t.bucket_s * 1.5);
    Some(svg(|root, legend| {
        let mut chart = builder(root)
            .build_cartesian_2d(0f64..t.end_s, 0f64..y_hi)
            .map_err(err)?;
        frame(&mut chart, legend, t, "operations not ok (%)")?;
        chart
            .draw_series(segs.into_iter().flat_map(|seg| {
                AreaSeries::new(seg, 0.0, ERRORS.mix(0.25)).border_style(ERRORS.stroke_width(2))
            }))
            .map_err(err)?;
        legend.add("failed or unknown", Swatch::Area(ERRORS.mix(0.5)));
        marks(&mut chart, legend, t)
    }))
}

/// The write-latency chart (log scale): p50 (thick) and p99 (thin) per home region; None
/// without `ok` writes.
pub fn latency_svg(t: &Timeline) -> Option<Result<String, String>> {
    let series = |pick: fn(&Bucket) -> &Vec<Option<f64>>, region: usize| -> Vec<(f64, f64)> {
        t.buckets
            .iter()
            .filter_map(|b| {
                let v = pick(b).get(region).copied().flatten()?;
                Some((b.start_s + t.bucket_s / 2.0, v.max(0.001)))
            })
            .collect()
    };
    // (region, p50 points, p99 points)
    type Lines = Vec<(String, Vec<(f64, f64)>, Vec<(f64, f64)>)>;
    let lines: Lines = (0..t.regions.len())
        .map(|r| {
            (
                t.regions[r].clone(),
                series(|b| &b.p50_ms, r),
                series(|b| &b.p99_ms, r),
            )
        })
        .filter(|(_, p50, _)| !p50.is_empty())
        .collect();
    if lines.is_empty() {
        return None;
    }
    let lo = lines
        .iter()
        .flat_map(|(_, p50, _)| p50.iter().map(|p| p.1))
        .fold(f64::INFINITY, f64::min);
    let hi = lines
        .iter()
        .flat_map(|(_, _, p99)| p99.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let y_lo = (lo / 2.0).max(0.001);
    let y_hi = (hi * 2.0).max(y_lo * 10.0);
    let max_gap = t.bucket_s * 1.5;
    Some(svg(|root, legend| {
        let mut chart = builder(root)
            .build_cartesian_2d(0f64..t.end_s, (y_lo..y_hi).log_scale())
            .map_err(err)?;
        frame(&mut chart, legend, t, "latency of ok writes (ms)")?;
        for (i, (region, p50, p99)) in lines.into_iter().enumerate() {
            let color = REGION_COLORS[i % REGION_COLORS.len()];
            for (points, paint, width, label) in [
                (p99, color.mix(0.6), 1, "p99"),
                (p50, color.to_rgba(), 3, "p50"),
            ] {
                chart
                    .draw_series(
                        segments(points, max_gap)
                            .into_iter()
                            .map(|seg| PathElement::new(seg, paint.stroke_width(width))),
                    )
                    .map_err(err)?;
                legend.add(
                    format!("{region} users {label}"),
                    Swatch::Line(paint, width),
                );
            }
        }
        marks(&mut chart, legend, t)
    }))
}

/// The erasures of a `[residency]` run, one row each (in the order they were acknowledged):
/// a bar from the acknowledged request to the first poll that found no copy anywhere, or a
/// cross at the end of the run where copies remained. None when nothing was acknowledged.
pub fn erasure_svg(
    t: &Timeline,
    e: &crate::checker::erasure::Erasure,
) -> Option<Result<String, String>> {
    let mut rows: Vec<(f64, Option<f64>)> = e
        .erasures
        .iter()
        .filter_map(|r| Some((r.ack_ms? / 1e3, r.done_ms.map(|d| d / 1e3))))
        .collect();
    if rows.is_empty() {
        return None;
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let end = rows.iter().filter_map(|r| r.1).fold(t.end_s, f64::max);
    let n = rows.len() as f64;
    Some(svg(|root, legend| {
        let mut chart = builder(root)
            .build_cartesian_2d(0f64..end, 0f64..n)
            .map_err(err)?;
        frame(&mut chart, legend, t, "erasures (one per row)")?;
        let y = |i: usize| n - i as f64 - 0.5;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, (ack, done))| {
                let to = done.unwrap_or(end);
                PathElement::new(vec![(*ack, y(i)), (to, y(i))], ERASURE.stroke_width(3))
            }))
            .map_err(err)?;
        legend.add("until no copy", Swatch::Line(ERASURE.to_rgba(), 3));
        let pending: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].1.is_none()).collect();
        if !pending.is_empty() {
            chart
                .draw_series(
                    pending
                        .iter()
                        .map(|&i| Cross::new((end, y(i)), 4, UNSEEN.stroke_width(2))),
                )
                .map_err(err)?;
            legend.add("copies remain", Swatch::Cross(UNSEEN));
        }
        Ok(())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(num(2.0), "2");
        assert_eq!(num(2.5), "2.5");
        assert_eq!(num(0.126), "0.13");
        assert_eq!(num(1234.4), "1234");
        assert_eq!(num(-0.0001), "0");
    }

    #[test]
    fn write_latency_is_per_home_region_and_leaves_reads_out() {
        use crate::checker::testkit::{history, r, w};
        // Bucket 0 (first 80 ms of a 12 s run): us writes of 1, 2, 3 ms; eu writes of 80 and
        // 90 ms; an eu read of 1 ms (left out); a failed us write (counted, not timed).
        let mut ops = vec![
            w(1, "a", 0, 1),
            w(2, "a", 10, 12),
            w(3, "a", 20, 23),
            w(4, "b", 0, 80).region("eu"),
            w(5, "b", 5, 95).region("eu"),
            r(6, "b", 30, 31, Some(4)).region("eu"),
            w(7, "a", 40, 50).fail(),
        ];
        ops.push(w(8, "a", 12_000, 12_001));
        let (width, buckets, regions) = bucketize(&history(ops, vec![]));
        assert_eq!(width, 80_000_001);
        assert_eq!(regions, ["eu", "us"]);
        let b = &buckets[0];
        assert_eq!((b.ops, b.not_ok), (7, 1));
        assert_eq!(b.p50_ms, [Some(80.0), Some(2.0)]);
        assert_eq!(b.p99_ms, [Some(90.0), Some(3.0)]);
        assert_eq!(buckets[1].p50_ms, [None, None]);
    }

    #[test]
    fn segments_break_at_gaps() {
        let s = segments([(0.0, 1.0), (1.0, 1.0), (5.0, 1.0)], 2.0);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].len(), 2);
    }
}
