//! SVG charts of saved runs, readable in any browser. One panel per figure the runs
//! have (tx / rx pps, NDR / PDR, RTT p50 / p99): the runs along the x axis, a point at
//! each run's median and a whisker from its smallest to its largest measurement, the
//! same numbers as `dpdkhost report`'s table (both read [`table::rows`]). Up to
//! [`MAX_OVERLAY_RUNS`] runs also get today's overlays: the round-trip percentile curve
//! (the x axis stretches the tail: 90%, 99%, 99.9%, ...) and packets per second over
//! time. Legends sit to the right of the plot, never on the data, and no two series of
//! a panel share a colour and dash pattern.

use std::fmt::Write;
use std::path::Path;

use hdrhistogram::Histogram;

use super::table::{self, Metric, RunRow};
use super::{
    BenchDirection, BenchRun, BenchSecond, Latency, ResultsError, RunRecord, RunResult, Spread,
};

/// Up to this many runs also get the overlay panels (percentile curves, per-second
/// rates): beyond it the curves of one plot no longer read apart.
pub const MAX_OVERLAY_RUNS: usize = 5;

const MARGIN_LEFT: f64 = 80.0;
const PLOT_WIDTH: f64 = 800.0;
const MARGIN_RIGHT: f64 = 20.0;
const MARGIN_TOP: f64 = 40.0;
const PLOT_HEIGHT: f64 = 260.0;
const PANEL_GAP: f64 = 24.0;
/// Room between the plot and the legend: an overlay's last x tick label is centred on
/// the plot's right edge and must not run into the legend.
const LEGEND_GAP: f64 = 40.0;
const LEGEND_ROW: f64 = 16.0;
/// The swatch's share of a legend entry, before its text.
const LEGEND_SWATCH: f64 = 38.0;
/// Legend labels longer than this are cut in the middle (the table has them whole).
const LEGEND_CHARS: usize = 64;
/// Turned tick labels longer than this are cut in the middle (the legend has them
/// whole): a run's stem, `20261127T184500Z-pingpong`, still fits.
const TICK_CHARS: usize = 28;
/// A generous width of one character, in ems: DejaVu Sans, the widest usual default,
/// draws digits at 0.64 em, so a box sized with this holds its text.
const CHAR_EM: f64 = 0.68;
const LEGEND_FONT: f64 = 12.0;
const TICK_FONT: f64 = 11.0;
/// Sine (and cosine) of the rotation of tick labels that do not fit horizontally.
const ROTATED: f64 = std::f64::consts::FRAC_1_SQRT_2;
const SUMMARY_ROW: f64 = 16.0;

/// Ten colours far apart (Tableau's); past ten series the dash pattern (and a point's
/// marker) changes instead, so pairs stay distinct however many series a panel has.
const COLOURS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];
/// Dash patterns by index: even ones for a series' main line, odd ones for its variant
/// (a transmitter's rate, the kernel baseline), so the pair of one series reads as one.
const DASHES: [&str; 6] = ["", "6 4", "2 3", "10 3 2 3", "1 4", "12 3 3 3 3 3"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Circle,
    Square,
    Diamond,
    Triangle,
}

const MARKERS: [Marker; 4] = [
    Marker::Circle,
    Marker::Square,
    Marker::Diamond,
    Marker::Triangle,
];

impl Marker {
    fn name(self) -> &'static str {
        match self {
            Marker::Circle => "circle",
            Marker::Square => "square",
            Marker::Diamond => "diamond",
            Marker::Triangle => "triangle",
        }
    }

    /// The marker centred on (x, y), filled with its element's colour.
    fn svg(self, x: f64, y: f64) -> String {
        match self {
            Marker::Circle => format!(r#"<circle cx="{x:.1}" cy="{y:.1}" r="4.5" stroke="none"/>"#),
            Marker::Square => format!(
                r#"<rect x="{:.1}" y="{:.1}" width="8" height="8" stroke="none"/>"#,
                x - 4.0,
                y - 4.0
            ),
            Marker::Diamond => format!(
                r#"<polygon points="{x:.1},{:.1} {:.1},{y:.1} {x:.1},{:.1} {:.1},{y:.1}" stroke="none"/>"#,
                y - 5.5,
                x + 5.5,
                y + 5.5,
                x - 5.5
            ),
            Marker::Triangle => format!(
                r#"<polygon points="{x:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" stroke="none"/>"#,
                y - 5.5,
                x + 5.0,
                y + 4.0,
                x - 5.0,
                y + 4.0
            ),
        }
    }
}

/// How one series is drawn.
#[derive(Debug, Clone, PartialEq)]
struct Style {
    colour: &'static str,
    dash: String,
    marker: Marker,
}

impl Style {
    /// Series `index`'s style, `variant` 0 for its main line and 1 for its companion:
    /// (colour, dash) differs for every (index, variant).
    fn of(index: usize, variant: usize) -> Style {
        let cycle = index / COLOURS.len();
        let dash_index = 2 * cycle + variant.min(1);
        let dash = DASHES.get(dash_index).map_or_else(
            // Past the list: long dashes of growing length, one length per index.
            || format!("{} 3 2 3", dash_index + 8),
            |dash| (*dash).to_owned(),
        );
        Style {
            colour: COLOURS[index % COLOURS.len()],
            dash,
            marker: MARKERS[cycle % MARKERS.len()],
        }
    }

    /// `stroke` and, unless solid, `stroke-dasharray`.
    fn stroke(&self) -> String {
        if self.dash.is_empty() {
            format!(r#"stroke="{}""#, self.colour)
        } else {
            format!(
                r#"stroke="{}" stroke-dasharray="{}""#,
                self.colour, self.dash
            )
        }
    }
}

struct Series {
    label: String,
    points: Vec<(f64, f64)>,
    style: Style,
}

/// One row's figure in a per-metric panel.
struct Point {
    /// Which x tick (run) it belongs to.
    tick: usize,
    /// Its place among the rows of that run in this panel.
    slot: usize,
    /// How many rows that run has in this panel.
    slots: usize,
    label: String,
    run: String,
    /// What it is (the unit it is drawn in and its `data-metric`).
    metric: Metric,
    spread: Spread,
    style: Style,
}

enum Body {
    /// Curves over a numeric x axis: the overlays.
    Lines {
        x_ticks: Vec<(f64, String)>,
        series: Vec<Series>,
    },
    /// Figures with their spread over categories along the x axis: one metric by run,
    /// or a search's NDR/PDR by frame size. A panel's points share a unit.
    Points {
        ticks: Vec<String>,
        points: Vec<Point>,
    },
}

struct Panel {
    title: String,
    x_label: String,
    y_label: String,
    body: Body,
    /// Summary lines under the plot: (text, attributes carrying the raw numbers).
    summary: Vec<(String, String)>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `text` in at most `max` characters, cut in the middle: the start (a run's date)
/// and the end (its kind, a method, a link) are what tell runs apart.
fn shorten(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max || max < 3 {
        return text.to_owned();
    }
    let head = (max - 1) / 2;
    let tail = max - 1 - head;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(count - tail).collect();
    format!("{start}…{end}")
}

/// About how wide `text` is drawn at `font_size` px (rather more than less).
fn text_width(text: &str, font_size: f64) -> f64 {
    text.chars().count() as f64 * CHAR_EM * font_size
}

/// A y-axis step that gives about five gridlines: 1, 2 or 5 times a power of ten.
fn nice_step(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / 5.0;
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

fn format_number(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.0}k", value / 1e3)
    } else if value >= 10.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// A legend entry: its label, its style, and whether its swatch shows a marker.
struct LegendEntry<'a> {
    label: String,
    style: &'a Style,
    marker: bool,
}

/// Where a panel's parts go, worked out before anything is drawn so that the SVG can
/// be as wide and as tall as its panels need.
struct Layout {
    /// The x axis's labels as drawn: a per-metric panel's runs, shortened when turned.
    tick_labels: Vec<String>,
    /// Whether the tick labels are turned by 45 degrees (they do not fit side by side).
    rotated: bool,
    /// How far below the plot the tick labels reach.
    tick_depth: f64,
    /// How far left of the plot's left edge a rotated label reaches (0: not at all).
    left_overhang: f64,
    legend_width: f64,
    legend_height: f64,
}

impl Panel {
    fn legend(&self) -> Vec<LegendEntry<'_>> {
        match &self.body {
            Body::Lines { series, .. } => series
                .iter()
                .map(|s| LegendEntry {
                    label: shorten(&s.label, LEGEND_CHARS),
                    style: &s.style,
                    marker: false,
                })
                .collect(),
            // A series drawn at several categories (NDR at every size) is one entry.
            Body::Points { points, .. } => {
                let mut entries: Vec<LegendEntry<'_>> = Vec::new();
                for p in points {
                    let label = shorten(&p.label, LEGEND_CHARS);
                    if !entries
                        .iter()
                        .any(|e| e.label == label && *e.style == p.style)
                    {
                        entries.push(LegendEntry {
                            label,
                            style: &p.style,
                            marker: true,
                        });
                    }
                }
                entries
            }
        }
    }

    fn layout(&self) -> Layout {
        let legend = self.legend();
        let legend_width = legend
            .iter()
            .map(|e| LEGEND_SWATCH + text_width(&e.label, LEGEND_FONT) + 10.0)
            .fold(0f64, f64::max);
        let legend_height = if legend.is_empty() {
            0.0
        } else {
            legend.len() as f64 * LEGEND_ROW + 10.0
        };
        let (tick_labels, rotated, tick_depth, left_overhang) = match &self.body {
            Body::Lines { x_ticks, .. } => (
                x_ticks.iter().map(|(_, l)| l.clone()).collect(),
                false,
                18.0,
                0.0,
            ),
            Body::Points { ticks, .. } => {
                let slot = PLOT_WIDTH / ticks.len().max(1) as f64;
                let widest = |labels: &[String]| {
                    labels
                        .iter()
                        .map(|l| text_width(l, TICK_FONT))
                        .fold(0f64, f64::max)
                };
                if widest(ticks) <= slot - 6.0 {
                    (ticks.clone(), false, 18.0, 0.0)
                } else {
                    let labels: Vec<String> =
                        ticks.iter().map(|t| shorten(t, TICK_CHARS)).collect();
                    // Turned labels end under their tick and run down to the left: the
                    // first ones may reach past the plot's left edge.
                    let overhang = labels
                        .iter()
                        .enumerate()
                        .map(|(i, l)| {
                            text_width(l, TICK_FONT) * ROTATED + 8.0 - (i as f64 + 0.5) * slot
                        })
                        .fold(0f64, f64::max);
                    let depth = widest(&labels) * ROTATED + 20.0;
                    (labels, true, depth, overhang)
                }
            }
        };
        Layout {
            tick_labels,
            rotated,
            tick_depth,
            left_overhang,
            legend_width,
            legend_height,
        }
    }

    /// The panel's height: the plot with its labels and summary, or the legend beside
    /// it when that is taller.
    fn height(&self, layout: &Layout) -> f64 {
        let below = layout.tick_depth + 22.0 + self.summary.len() as f64 * SUMMARY_ROW;
        MARGIN_TOP + (PLOT_HEIGHT + below).max(layout.legend_height) + PANEL_GAP
    }

    fn y_values(&self) -> Vec<f64> {
        match &self.body {
            Body::Lines { series, .. } => series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .collect(),
            Body::Points { points, .. } => points
                .iter()
                .map(|p| scaled(p.metric, p.spread.max))
                .collect(),
        }
    }
}

/// A metric's value in the chart's unit: round trips in us, rates as they are.
fn scaled(metric: Metric, value: f64) -> f64 {
    if metric.is_latency() {
        value / 1000.0
    } else {
        value
    }
}

/// Draws `panel` at `top`, its plot's left edge at `left`.
fn render_panel(out: &mut String, panel: &Panel, layout: &Layout, top: f64, left: f64) {
    // Headroom over the largest value: a point or curve at the top would sit on the
    // plot's border.
    let y_data_max = panel.y_values().into_iter().fold(0f64, f64::max) * 1.05;
    let y_step = nice_step(y_data_max);
    let y_max = (y_data_max / y_step).ceil().max(1.0) * y_step;
    let plot_top = top + MARGIN_TOP;
    let plot_bottom = plot_top + PLOT_HEIGHT;
    let right = left + PLOT_WIDTH;
    let y_of = |y: f64| plot_bottom - y / y_max * PLOT_HEIGHT;

    let _ = writeln!(
        out,
        r#"<g class="panel" data-title="{}">"#,
        escape(&panel.title)
    );
    let _ = writeln!(
        out,
        r#"<text x="{left}" y="{}" font-size="16" font-weight="bold">{}</text>"#,
        top + 24.0,
        escape(&panel.title)
    );
    let mut gridline = 0.0;
    while gridline <= y_max + y_step / 2.0 {
        let y = y_of(gridline);
        let _ = writeln!(
            out,
            r##"<line x1="{left}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            left - 6.0,
            y + 4.0,
            format_number(gridline)
        );
        gridline += y_step;
    }
    let labels = &layout.tick_labels;
    let tick_x: Vec<f64> = match &panel.body {
        Body::Lines { x_ticks, series } => {
            let x_max = line_x_max(x_ticks, series);
            x_ticks
                .iter()
                .map(|(x, _)| left + x / x_max * PLOT_WIDTH)
                .collect()
        }
        Body::Points { ticks, .. } => {
            let slot = PLOT_WIDTH / ticks.len().max(1) as f64;
            (0..ticks.len())
                .map(|i| left + (i as f64 + 0.5) * slot)
                .collect()
        }
    };
    for (px, label) in tick_x.iter().zip(labels) {
        let label_y = plot_bottom + 16.0;
        let text = if layout.rotated {
            format!(
                r#"<text class="tick" x="{px:.1}" y="{label_y:.1}" font-size="{TICK_FONT}" text-anchor="end" transform="rotate(-45 {px:.1} {label_y:.1})">{}</text>"#,
                escape(label)
            )
        } else {
            format!(
                r#"<text class="tick" x="{px:.1}" y="{label_y:.1}" font-size="{TICK_FONT}" text-anchor="middle">{}</text>"#,
                escape(label)
            )
        };
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{plot_top:.1}" x2="{px:.1}" y2="{plot_bottom:.1}" stroke="#eee"/>{text}"##
        );
    }
    let _ = writeln!(
        out,
        r##"<rect class="plot" x="{left}" y="{plot_top:.1}" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
        left + PLOT_WIDTH / 2.0,
        plot_bottom + layout.tick_depth + 16.0,
        escape(&panel.x_label)
    );
    let y_label_x = left - 64.0;
    let _ = writeln!(
        out,
        r#"<text x="{y_label_x:.1}" y="{:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 {y_label_x:.1} {:.1})">{}</text>"#,
        plot_top + PLOT_HEIGHT / 2.0,
        plot_top + PLOT_HEIGHT / 2.0,
        escape(&panel.y_label)
    );
    match &panel.body {
        Body::Lines { x_ticks, series } => {
            let x_max = line_x_max(x_ticks, series);
            for series in series {
                let points: Vec<String> = series
                    .points
                    .iter()
                    .map(|(x, y)| format!("{:.1},{:.1}", left + x / x_max * PLOT_WIDTH, y_of(*y)))
                    .collect();
                let _ = writeln!(
                    out,
                    r#"<polyline class="series" data-label="{}" fill="none" {} stroke-width="2" points="{}"/>"#,
                    escape(&series.label),
                    series.style.stroke(),
                    points.join(" ")
                );
            }
        }
        Body::Points { ticks, points } => {
            let slot = PLOT_WIDTH / ticks.len().max(1) as f64;
            for point in points {
                let metric = &point.metric;
                // Rows of one run stand side by side within its slot.
                let spacing = (slot * 0.6 / point.slots as f64).min(14.0);
                let x = left
                    + (point.tick as f64 + 0.5) * slot
                    + (point.slot as f64 - (point.slots as f64 - 1.0) / 2.0) * spacing;
                let spread = &point.spread;
                let _ = writeln!(
                    out,
                    r#"<g class="point" data-run="{}" data-label="{}" data-metric="{}" data-n="{}" data-median="{}" data-min="{}" data-max="{}" data-marker="{}" {} fill="{}" stroke-width="2">"#,
                    escape(&point.run),
                    escape(&point.label),
                    metric.key(),
                    spread.n,
                    spread.median,
                    spread.min,
                    spread.max,
                    point.style.marker.name(),
                    point.style.stroke(),
                    point.style.colour
                );
                let _ = writeln!(
                    out,
                    "<title>{}: {}</title>",
                    escape(&point.label),
                    escape(&metric.cell(spread))
                );
                if spread.min < spread.max {
                    let (low, high) = (
                        y_of(scaled(*metric, spread.min)),
                        y_of(scaled(*metric, spread.max)),
                    );
                    let _ = writeln!(
                        out,
                        r#"<line class="whisker" x1="{x:.1}" y1="{low:.1}" x2="{x:.1}" y2="{high:.1}"/><line x1="{:.1}" y1="{low:.1}" x2="{:.1}" y2="{low:.1}" stroke-dasharray="none"/><line x1="{:.1}" y1="{high:.1}" x2="{:.1}" y2="{high:.1}" stroke-dasharray="none"/>"#,
                        x - 5.0,
                        x + 5.0,
                        x - 5.0,
                        x + 5.0
                    );
                }
                let _ = writeln!(
                    out,
                    "{}",
                    point
                        .style
                        .marker
                        .svg(x, y_of(scaled(*metric, spread.median)))
                );
                out.push_str("</g>\n");
            }
        }
    }
    render_legend(out, &panel.legend(), layout, right + LEGEND_GAP, plot_top);
    for (index, (text, attributes)) in panel.summary.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<text class="summary" {attributes} x="{left}" y="{:.1}" font-size="12" font-family="monospace">{}</text>"#,
            plot_bottom + layout.tick_depth + 40.0 + index as f64 * SUMMARY_ROW,
            escape(text)
        );
    }
    out.push_str("</g>\n");
}

fn line_x_max(x_ticks: &[(f64, String)], series: &[Series]) -> f64 {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .chain(x_ticks.iter().map(|t| t.0))
        .fold(0f64, f64::max)
        .max(1.0)
}

/// The legend, a box of its own right of the plot (`x` is past the plot's right edge):
/// it never covers data, however many entries it has; the panel grows to hold it.
fn render_legend(out: &mut String, entries: &[LegendEntry<'_>], layout: &Layout, x: f64, y: f64) {
    if entries.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        r##"<g class="legend"><rect class="legend-box" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="white" stroke="#ccc"/>"##,
        layout.legend_width, layout.legend_height
    );
    for (index, entry) in entries.iter().enumerate() {
        let row_y = y + 14.0 + index as f64 * LEGEND_ROW;
        let line_y = row_y - 4.0;
        let _ = write!(
            out,
            r#"<line class="swatch" x1="{:.1}" y1="{line_y:.1}" x2="{:.1}" y2="{line_y:.1}" {} stroke-width="2"/>"#,
            x + 6.0,
            x + LEGEND_SWATCH - 6.0,
            entry.style.stroke()
        );
        if entry.marker {
            let _ = write!(
                out,
                r#"<g fill="{}">{}</g>"#,
                entry.style.colour,
                entry.style.marker.svg(x + LEGEND_SWATCH / 2.0, line_y)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{row_y:.1}" font-size="{LEGEND_FONT}" fill="{}">{}</text>"#,
            x + LEGEND_SWATCH,
            entry.style.colour,
            escape(&entry.label)
        );
    }
    out.push_str("</g>\n");
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

/// The one-line latency summary the table and the chart share.
pub fn latency_line(label: &str, rtt: &Latency) -> String {
    format!(
        "{label}: min {} p50 {} p90 {} p99 {} p99.9 {} max {} us",
        us(rtt.min_ns),
        us(rtt.p50_ns),
        us(rtt.p90_ns),
        us(rtt.p99_ns),
        us(rtt.p999_ns),
        us(rtt.max_ns)
    )
}

/// One panel per metric some row has: the runs along the x axis (in the order given),
/// a point per row at its median, a whisker over its range. A row keeps its style
/// in every panel, so a run reads the same across them.
fn metric_panels(rows: &[RunRow]) -> Vec<Panel> {
    let mut panels = Vec::new();
    for metric in Metric::ALL {
        let mut ticks: Vec<String> = Vec::new();
        let mut points: Vec<Point> = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            let Some(spread) = metric.of(row) else {
                continue;
            };
            let tick = match ticks.iter().position(|t| *t == row.run) {
                Some(tick) => tick,
                None => {
                    ticks.push(row.run.clone());
                    ticks.len() - 1
                }
            };
            let slot = points.iter().filter(|p| p.tick == tick).count();
            points.push(Point {
                tick,
                slot,
                slots: 0,
                label: row.label(),
                run: row.run.clone(),
                metric,
                spread: *spread,
                style: Style::of(index, 0),
            });
        }
        if points.is_empty() {
            continue;
        }
        for tick in 0..ticks.len() {
            let slots = points.iter().filter(|p| p.tick == tick).count();
            for point in points.iter_mut().filter(|p| p.tick == tick) {
                point.slots = slots;
            }
        }
        panels.push(Panel {
            title: if metric.is_latency() {
                format!("{} by run", metric.title())
            } else {
                format!("{} by run (median, min–max)", metric.title())
            },
            x_label: "run".into(),
            y_label: if metric.is_latency() {
                "round trip (us)".into()
            } else {
                "packets per second".into()
            },
            body: Body::Points { ticks, points },
            summary: Vec::new(),
        });
    }
    panels
}

fn latency_panel(curves: &[(String, Histogram<u64>, Latency)]) -> Panel {
    // Percentile p sits at log10(1 / (1 - p)): 90% at 1, 99% at 2, 99.9% at 3, ...
    let tail_cap = 5.0;
    let series = curves
        .iter()
        .enumerate()
        .map(|(index, (label, histogram, _))| Series {
            label: label.clone(),
            points: histogram
                .iter_quantiles(5)
                .map(|step| {
                    let quantile = step.quantile_iterated_to();
                    let x = if quantile >= 1.0 {
                        tail_cap
                    } else {
                        (1.0 / (1.0 - quantile)).log10().min(tail_cap)
                    };
                    (x, step.value_iterated_to() as f64 / 1000.0)
                })
                .collect(),
            // The kernel baseline dashed, as next to its agent run.
            style: Style::of(index, usize::from(label.contains("kernel"))),
        })
        .collect();
    let summary = curves
        .iter()
        .map(|(label, _, rtt)| {
            (
                latency_line(label, rtt),
                format!(
                    r#"data-label="{}" data-p50-ns="{}" data-p99-ns="{}" data-max-ns="{}""#,
                    escape(label),
                    rtt.p50_ns,
                    rtt.p99_ns,
                    rtt.max_ns
                ),
            )
        })
        .collect();
    Panel {
        title: "Round-trip time by percentile".into(),
        x_label: "percentile".into(),
        y_label: "round trip (us)".into(),
        body: Body::Lines {
            x_ticks: ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
                .iter()
                .enumerate()
                .map(|(i, label)| (i as f64, (*label).to_owned()))
                .collect(),
            series,
        },
        summary,
    }
}

/// The one-line rate summary the table and the chart share.
pub fn rate_line(label: &str, direction: &BenchDirection) -> String {
    format!(
        "{label}: tx {:.0} pps, rx {:.0} pps, lost {}",
        direction.tx_pps,
        direction.rx_pps,
        direction.lost()
    )
}

fn rate_panel(directions: &[(String, &BenchDirection)]) -> Panel {
    let mut series = Vec::new();
    let mut x_max = 1u64;
    for (index, (label, direction)) in directions.iter().enumerate() {
        x_max = x_max.max(
            direction
                .per_second
                .iter()
                .map(|s| s.second)
                .max()
                .unwrap_or(1),
        );
        type Rate = fn(&BenchSecond) -> u64;
        // A direction's tx and rx share its colour; tx is the dashed one.
        let sides: [(&str, Rate, usize); 2] = [("tx", |s| s.tx_pps, 1), ("rx", |s| s.rx_pps, 0)];
        for (side, rate, variant) in sides {
            series.push(Series {
                label: format!("{label} {side}"),
                points: direction
                    .per_second
                    .iter()
                    .map(|s| (s.second as f64, rate(s) as f64))
                    .collect(),
                style: Style::of(index, variant),
            });
        }
    }
    let summary = directions
        .iter()
        .map(|(label, direction)| {
            (
                rate_line(label, direction),
                format!(
                    r#"data-label="{}" data-tx-pps="{:.0}" data-rx-pps="{:.0}""#,
                    escape(label),
                    direction.tx_pps,
                    direction.rx_pps
                ),
            )
        })
        .collect();
    Panel {
        title: "Packet rate per second".into(),
        x_label: "second".into(),
        y_label: "packets per second".into(),
        body: Body::Lines {
            x_ticks: (1..=x_max)
                .step_by(usize::try_from(x_max / 10 + 1).unwrap_or(1))
                .map(|s| (s as f64, s.to_string()))
                .collect(),
            series,
        },
        summary,
    }
}

/// The overlays of `runs`: every ping-pong's percentile curve in one panel, every bench
/// direction's per-second rates in another.
fn overlay_panels(runs: &[(String, &RunRecord)], path: &Path) -> Result<Vec<Panel>, ResultsError> {
    let mut curves = Vec::new();
    let mut directions = Vec::new();
    for (label, record) in runs {
        match &record.result {
            RunResult::Pingpong(run) => {
                for side in std::iter::once(&run.agent).chain(run.baseline.as_ref()) {
                    curves.push((
                        format!("{label} {}", side.method),
                        side.histogram(path)?,
                        side.rtt,
                    ));
                }
            }
            RunResult::Bench(run) => {
                let all: Vec<&BenchDirection> = run.agent.iter().chain(&run.baseline).collect();
                for (index, direction) in all.iter().enumerate() {
                    let same = |d: &&&BenchDirection| {
                        d.method == direction.method && d.link_label() == direction.link_label()
                    };
                    let name = format!("{label} {} {}", direction.method, direction.link_label());
                    // Trials (or baseline rounds) repeat a direction: number them.
                    let name = if all.iter().filter(same).count() > 1 {
                        let nth = all[..index].iter().filter(same).count() + 1;
                        format!("{name} #{nth}")
                    } else {
                        name
                    };
                    directions.push((name, *direction));
                }
            }
        }
    }
    let mut panels = Vec::new();
    if !curves.is_empty() {
        panels.push(latency_panel(&curves));
    }
    if !directions.is_empty() {
        panels.push(rate_panel(&directions));
    }
    Ok(panels)
}

/// One SVG of `runs` (each named by its label): a panel per metric ([`table::rows`]),
/// then, for at most [`MAX_OVERLAY_RUNS`] runs, the latency and rate overlays. `path`
/// names the source in errors.
pub fn for_runs(runs: &[(String, &RunRecord)], path: &Path) -> Result<String, ResultsError> {
    let mut panels = metric_panels(&table::rows(runs));
    if runs.len() <= MAX_OVERLAY_RUNS {
        panels.extend(overlay_panels(runs, path)?);
    }
    Ok(render(&panels))
}

/// The chart of a `bench --search` (`None` when `run` searched nothing): NDR and PDR
/// per frame size with each one's min–max over the searches, and with `--latency` the
/// round-trip p50 and p99 per load level and direction.
pub fn for_search(run: &BenchRun) -> Option<String> {
    if run.search.is_empty() {
        return None;
    }
    let sizes: Vec<String> = run.search.iter().map(|s| format!("{} B", s.size)).collect();
    let goal = run.search[0].loss_ratio_goal;
    let mut points = Vec::new();
    for (tick, size) in run.search.iter().enumerate() {
        let figures = [
            ("NDR (no loss)".to_owned(), Metric::NdrPps, size.ndr),
            (format!("PDR (loss <= {goal})"), Metric::PdrPps, size.pdr),
        ];
        for (slot, (label, metric, spread)) in figures.into_iter().enumerate() {
            points.push(Point {
                tick,
                slot,
                slots: 2,
                label,
                run: sizes[tick].clone(),
                metric,
                spread,
                style: Style::of(slot, 0),
            });
        }
    }
    let mut panels = vec![Panel {
        title: "NDR and PDR per frame size (median, min–max over searches)".into(),
        x_label: "frame size".into(),
        y_label: "packets per second".into(),
        body: Body::Points {
            ticks: sizes,
            points,
        },
        summary: Vec::new(),
    }];
    for size in run.search.iter().filter(|s| !s.latency.is_empty()) {
        let ticks: Vec<String> = size
            .latency
            .iter()
            .map(|l| format!("{} % PDR", l.percent_of_pdr))
            .collect();
        let links: Vec<String> = size.latency[0]
            .trial
            .directions
            .iter()
            .map(BenchDirection::link_label)
            .collect();
        let mut points = Vec::new();
        for (tick, level) in size.latency.iter().enumerate() {
            for (link_index, link) in links.iter().enumerate() {
                let Some(latency) = level
                    .trial
                    .directions
                    .iter()
                    .find(|d| &d.link_label() == link)
                    .and_then(|d| d.latency.as_ref())
                else {
                    continue;
                };
                let figures = [
                    ("p50", Metric::RttP50, latency.rtt.p50_ns),
                    ("p99", Metric::RttP99, latency.rtt.p99_ns),
                ];
                for (k, (name, metric, ns)) in figures.into_iter().enumerate() {
                    let slot = link_index * 2 + k;
                    points.push(Point {
                        tick,
                        slot,
                        slots: links.len() * 2,
                        label: format!("{link} {name}"),
                        run: ticks[tick].clone(),
                        metric,
                        spread: Spread::of(&[ns as f64]).expect("one number"),
                        style: Style::of(slot, 0),
                    });
                }
            }
        }
        panels.push(Panel {
            title: format!("Round trip under load, {} B (TSC in the guest)", size.size),
            x_label: "load".into(),
            y_label: "round trip (us)".into(),
            body: Body::Points { ticks, points },
            summary: Vec::new(),
        });
    }
    Some(render(&panels))
}

fn render(panels: &[Panel]) -> String {
    let layouts: Vec<Layout> = panels.iter().map(Panel::layout).collect();
    // Every panel's plot starts at the same x: the widest need decides.
    let left = layouts
        .iter()
        .map(|l| MARGIN_LEFT + l.left_overhang)
        .fold(MARGIN_LEFT, f64::max);
    let legend_width = layouts.iter().map(|l| l.legend_width).fold(0f64, f64::max);
    let width = left
        + PLOT_WIDTH
        + if legend_width > 0.0 {
            LEGEND_GAP + legend_width
        } else {
            0.0
        }
        + MARGIN_RIGHT;
    let heights: Vec<f64> = panels
        .iter()
        .zip(&layouts)
        .map(|(panel, layout)| panel.height(layout))
        .collect();
    let height = heights.iter().sum::<f64>().max(MARGIN_TOP * 2.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    if panels.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="{MARGIN_LEFT}" y="{MARGIN_TOP}" font-size="14">these runs hold no figures to chart</text>"#
        );
    }
    let mut top = 0.0;
    for ((panel, layout), panel_height) in panels.iter().zip(&layouts).zip(&heights) {
        render_panel(&mut out, panel, layout, top, left);
        top += panel_height;
    }
    out.push_str("</svg>\n");
    out
}
#[cfg(test)]
mod tests {
    use super::super::tests::{
        sample_bench, sample_bench_trials, sample_pingpong, sample_search,
        sample_search_with_latency,
    };
    use super::*;
    use roxmltree::{Document, Node};

    /// (x, y, width, height) of a rect.
    fn rect_of(node: Node<'_, '_>) -> (f64, f64, f64, f64) {
        let number = |name| node.attribute(name).unwrap().parse::<f64>().unwrap();
        (number("x"), number("y"), number("width"), number("height"))
    }

    fn panels<'a>(document: &'a Document<'a>) -> Vec<Node<'a, 'a>> {
        document
            .descendants()
            .filter(|n| n.attribute("class") == Some("panel"))
            .collect()
    }

    fn titles(svg: &str) -> Vec<String> {
        let document = Document::parse(svg).unwrap();
        panels(&document)
            .iter()
            .map(|p| p.attribute("data-title").unwrap().to_owned())
            .collect()
    }

    fn with_class<'a>(node: Node<'a, 'a>, class: &str) -> Vec<Node<'a, 'a>> {
        node.descendants()
            .filter(|n| n.attribute("class") == Some(class))
            .collect()
    }

    /// (colour, dash) of every drawn series: the overlays' curves and the per-metric
    /// panels' points.
    fn styles(node: Node<'_, '_>) -> Vec<(String, String)> {
        node.descendants()
            .filter(|n| matches!(n.attribute("class"), Some("series" | "point")))
            .map(|n| {
                (
                    n.attribute("stroke").unwrap_or_default().to_owned(),
                    n.attribute("stroke-dasharray")
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    /// `count` plain benches, run01, run02, ..., each receiving a little more.
    fn many_benches(count: u32) -> Vec<(String, RunRecord)> {
        (1..=count)
            .map(|i| {
                let mut record = sample_bench();
                let RunResult::Bench(run) = &mut record.result else {
                    unreachable!()
                };
                run.agent[0].rx_pps = 100_000.0 + f64::from(i) * 1000.0;
                (format!("2026-12-01T10{i:02}00Z-bench"), record)
            })
            .collect()
    }

    fn borrow(runs: &[(String, RunRecord)]) -> Vec<(String, &RunRecord)> {
        runs.iter().map(|(l, r)| (l.clone(), r)).collect()
    }

    fn summaries(svg: &str) -> Vec<(String, Vec<(String, String)>)> {
        let document = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
        document
            .descendants()
            .filter(|node| node.attribute("class") == Some("summary"))
            .map(|node| {
                (
                    node.text().unwrap_or_default().to_owned(),
                    node.attributes()
                        .map(|a| (a.name().to_owned(), a.value().to_owned()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn latency_chart_parses_and_shows_the_table_numbers() {
        let record = sample_pingpong();
        let svg = for_runs(&[("run".into(), &record)], Path::new("x.json")).unwrap();
        let RunResult::Pingpong(run) = &record.result else {
            unreachable!()
        };
        let found = summaries(&svg);
        assert_eq!(found.len(), 1);
        let (text, attributes) = &found[0];
        assert_eq!(text, &latency_line("run agent", &run.agent.rtt));
        let p50 = attributes.iter().find(|(k, _)| k == "data-p50-ns").unwrap();
        assert_eq!(p50.1, run.agent.rtt.p50_ns.to_string());
        assert!(svg.contains("99.9%"));
    }

    #[test]
    fn report_overlays_latency_and_rate_runs() {
        let pingpong = sample_pingpong();
        let bench = sample_bench();
        let svg = for_runs(
            &[("a".into(), &pingpong), ("b".into(), &bench)],
            Path::new("x.json"),
        )
        .unwrap();
        let document = roxmltree::Document::parse(&svg).unwrap();
        let series: Vec<&str> = document
            .descendants()
            .filter(|n| n.attribute("class") == Some("series"))
            .filter_map(|n| n.attribute("data-label"))
            .collect();
        assert_eq!(
            series,
            ["a agent", "b agent vm1->vm2 tx", "b agent vm1->vm2 rx"]
        );
        let found = summaries(&svg);
        assert_eq!(
            found[1]
                .1
                .iter()
                .find(|(k, _)| k == "data-rx-pps")
                .unwrap()
                .1,
            "200000"
        );
    }

    #[test]
    fn a_panel_per_metric_the_runs_have_with_the_tables_numbers() {
        let runs = vec![
            ("ping".to_owned(), sample_pingpong()),
            ("plain".to_owned(), sample_bench()),
            ("trials".to_owned(), sample_bench_trials()),
            ("search".to_owned(), sample_search()),
        ];
        let runs = borrow(&runs);
        let svg = for_runs(&runs, Path::new("x.json")).unwrap();
        let rows = table::rows(&runs);
        let document = Document::parse(&svg).unwrap();
        let found = panels(&document);
        let metric_panels: Vec<_> = found
            .iter()
            .filter(|p| !with_class(**p, "point").is_empty())
            .collect();
        assert_eq!(metric_panels.len(), Metric::ALL.len(), "{:?}", titles(&svg));
        for (panel, metric) in metric_panels.iter().zip(Metric::ALL) {
            assert!(panel
                .attribute("data-title")
                .unwrap()
                .starts_with(metric.title()));
            let points = with_class(**panel, "point");
            let expected: Vec<&RunRow> = rows.iter().filter(|r| metric.of(r).is_some()).collect();
            assert_eq!(points.len(), expected.len(), "{}", metric.title());
            for (point, row) in points.iter().zip(expected) {
                let spread = metric.of(row).unwrap();
                let number = |name| point.attribute(name).unwrap().parse::<f64>().unwrap();
                assert_eq!(point.attribute("data-run"), Some(row.run.as_str()));
                assert_eq!(point.attribute("data-metric"), Some(metric.key()));
                assert_eq!(number("data-median"), spread.median);
                assert_eq!(number("data-min"), spread.min);
                assert_eq!(number("data-max"), spread.max);
                assert_eq!(number("data-n"), spread.n as f64);
                // A whisker exactly where the run has a spread.
                let whiskers = with_class(*point, "whisker").len();
                assert_eq!(whiskers, usize::from(spread.min < spread.max));
            }
        }
        // One tick per run: the search's two sizes share theirs.
        let ndr = metric_panels[2];
        assert_eq!(with_class(*ndr, "tick").len(), 1);
        assert_eq!(with_class(*ndr, "point").len(), 2);
        let rx = metric_panels[1];
        let ticks: Vec<_> = with_class(*rx, "tick")
            .iter()
            .map(|t| t.text().unwrap().to_owned())
            .collect();
        assert_eq!(ticks, ["plain", "trials"]);
    }

    #[test]
    fn metrics_no_run_has_get_no_panel() {
        let bench = sample_bench();
        let svg = for_runs(&[("b".into(), &bench)], Path::new("x.json")).unwrap();
        let titles = titles(&svg);
        assert_eq!(titles.len(), 3, "{titles:?}");
        assert!(titles[0].starts_with("tx pps") && titles[1].starts_with("rx pps"));
        assert_eq!(titles[2], "Packet rate per second");
    }

    #[test]
    fn the_search_chart_shows_each_sizes_ndr_and_pdr_and_the_latency_levels() {
        let record = sample_search_with_latency();
        let RunResult::Bench(run) = &record.result else {
            unreachable!()
        };
        let svg = for_search(run).expect("a search run has a chart");
        let document = Document::parse(&svg).expect("well-formed SVG");
        let points: Vec<(String, String, String)> = document
            .descendants()
            .filter(|n| n.attribute("class") == Some("point"))
            .map(|n| {
                (
                    n.attribute("data-run").unwrap().to_owned(),
                    n.attribute("data-metric").unwrap().to_owned(),
                    n.attribute("data-median").unwrap().to_owned(),
                )
            })
            .collect();
        for size in &run.search {
            let category = format!("{} B", size.size);
            assert!(points.contains(&(
                category.clone(),
                "ndr_pps".into(),
                size.ndr.median.to_string()
            )));
            assert!(points.contains(&(category, "pdr_pps".into(), size.pdr.median.to_string())));
        }
        // 2 sizes x (NDR, PDR), then 4 levels x (p50, p99) for the size with latency.
        assert_eq!(points.len(), 2 * 2 + 4 * 2, "{points:?}");
        for panel in panels(&document) {
            // The legend sits beside the plot, one entry per series.
            let plot = rect_of(with_class(panel, "plot")[0]);
            let legend = with_class(panel, "legend")[0];
            let bbox = rect_of(with_class(legend, "legend-box")[0]);
            assert!(
                bbox.0 >= plot.0 + plot.2,
                "legend {bbox:?} on plot {plot:?}"
            );
            assert_eq!(with_class(legend, "swatch").len(), 2);
        }
        let mut plain = run.clone();
        plain.search.clear();
        assert!(for_search(&plain).is_none());
    }

    #[test]
    fn legends_lie_outside_the_plot() {
        for count in [1, 3, 20] {
            let mut runs = many_benches(count);
            runs.push(("ping".into(), sample_pingpong()));
            let svg = for_runs(&borrow(&runs), Path::new("x.json")).unwrap();
            let document = Document::parse(&svg).unwrap();
            let width: f64 = document
                .root_element()
                .attribute("width")
                .unwrap()
                .parse()
                .unwrap();
            for panel in panels(&document) {
                let plot = rect_of(with_class(panel, "plot")[0]);
                let legend = with_class(panel, "legend")[0];
                let bbox = rect_of(with_class(legend, "legend-box")[0]);
                let disjoint = bbox.0 >= plot.0 + plot.2
                    || bbox.0 + bbox.2 <= plot.0
                    || bbox.1 >= plot.1 + plot.3
                    || bbox.1 + bbox.3 <= plot.1;
                assert!(disjoint, "legend {bbox:?} on plot {plot:?}");
                assert!(bbox.0 + bbox.2 <= width, "the legend fits the SVG");
                // Everything of the legend is inside its box.
                for node in legend.descendants().filter(|n| n.is_element()) {
                    for name in ["x", "x1", "x2", "cx"] {
                        if let Some(x) = node.attribute(name) {
                            let x: f64 = x.parse().unwrap();
                            assert!(
                                x >= bbox.0 && x <= bbox.0 + bbox.2,
                                "{name}={x} off {bbox:?}"
                            );
                        }
                    }
                }
                let entries = with_class(legend, "swatch").len();
                assert!(
                    bbox.3 >= entries as f64 * LEGEND_ROW,
                    "{entries} entries in {bbox:?}"
                );
            }
        }
    }

    #[test]
    fn twenty_runs_are_twenty_distinct_series_and_no_overlay() {
        let runs = many_benches(20);
        let svg = for_runs(&borrow(&runs), Path::new("x.json")).unwrap();
        let document = Document::parse(&svg).unwrap();
        let found = panels(&document);
        assert_eq!(
            found.len(),
            2,
            "tx and rx by run, no overlay: {:?}",
            titles(&svg)
        );
        for panel in found {
            let styles = styles(panel);
            assert_eq!(styles.len(), 20);
            let distinct: std::collections::BTreeSet<_> = styles.iter().collect();
            assert_eq!(distinct.len(), 20, "{styles:?}");
            // Long labels are turned, and none starts left of the SVG.
            for tick in with_class(panel, "tick") {
                assert!(tick
                    .attribute("transform")
                    .unwrap()
                    .starts_with("rotate(-45"));
                let x: f64 = tick.attribute("x").unwrap().parse().unwrap();
                let width = text_width(tick.text().unwrap(), TICK_FONT);
                assert!(x - width * ROTATED >= 0.0, "{x} {width}");
            }
        }
        assert!(!svg.contains("Packet rate per second"));
    }

    #[test]
    fn three_runs_keep_the_overlays_with_distinct_curves() {
        let runs = vec![
            ("a".to_owned(), sample_pingpong()),
            ("b".to_owned(), sample_bench()),
            ("c".to_owned(), sample_bench_trials()),
        ];
        let svg = for_runs(&borrow(&runs), Path::new("x.json")).unwrap();
        let titles = titles(&svg);
        let overlay = titles.len() - 2;
        assert_eq!(
            titles[overlay..],
            ["Round-trip time by percentile", "Packet rate per second"]
        );
        let document = Document::parse(&svg).unwrap();
        let rates = panels(&document)[overlay + 1];
        let curves = styles(rates);
        // b's direction and c's three trials, tx and rx each.
        assert_eq!(curves.len(), 8);
        let distinct: std::collections::BTreeSet<_> = curves.iter().collect();
        assert_eq!(distinct.len(), 8, "{curves:?}");
        let labels: Vec<_> = with_class(rates, "series")
            .iter()
            .filter_map(|n| n.attribute("data-label"))
            .map(str::to_owned)
            .collect();
        assert!(
            labels.contains(&"c agent vm1->vm2 #3 rx".to_owned()),
            "{labels:?}"
        );
    }

    #[test]
    fn styles_stay_distinct_past_the_palette() {
        let mut seen = std::collections::BTreeSet::new();
        for index in 0..200 {
            for variant in 0..2 {
                let style = Style::of(index, variant);
                assert!(seen.insert((style.colour, style.dash)), "{index} {variant}");
            }
        }
    }

    #[test]
    fn long_labels_are_cut_in_the_middle() {
        assert_eq!(shorten("short", 24), "short");
        let cut = shorten("20261201T101500Z-bench-with-a-long-name", 24);
        assert_eq!(cut.chars().count(), 24);
        assert!(
            cut.starts_with("20261201T10") && cut.ends_with("long-name"),
            "{cut}"
        );
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(100.0), 20.0);
        assert_eq!(nice_step(7.0), 2.0);
        assert_eq!(nice_step(0.0), 1.0);
    }
}
