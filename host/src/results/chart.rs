//! SVG charts of saved runs, readable in any browser: the round-trip latency
//! percentile curve (the x axis stretches the tail: 90%, 99%, 99.9%, ...) and packets
//! per second over time. Several runs overlay in one chart (`dpdkhost report`). Each
//! chart also carries its summary numbers as text, the same values the table prints.

use std::fmt::Write;
use std::path::Path;

use hdrhistogram::Histogram;

use super::{BenchDirection, BenchSecond, Latency, ResultsError, RunRecord, RunResult};

const WIDTH: f64 = 900.0;
const PANEL_HEIGHT: f64 = 420.0;
const MARGIN_LEFT: f64 = 80.0;
const MARGIN_RIGHT: f64 = 20.0;
const MARGIN_TOP: f64 = 40.0;
const PLOT_HEIGHT: f64 = 260.0;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

struct Series {
    label: String,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

struct Panel {
    title: String,
    x_label: String,
    y_label: String,
    x_ticks: Vec<(f64, String)>,
    series: Vec<Series>,
    /// Summary lines under the plot: (text, attributes carrying the raw numbers).
    summary: Vec<(String, String)>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

fn render_panel(out: &mut String, panel: &Panel, top: f64) {
    let plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let x_max = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .chain(panel.x_ticks.iter().map(|t| t.0))
        .fold(0f64, f64::max)
        .max(1.0);
    let y_data_max = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0f64, f64::max);
    let y_step = nice_step(y_data_max);
    let y_max = (y_data_max / y_step).ceil().max(1.0) * y_step;
    let plot_top = top + MARGIN_TOP;
    let x_of = |x: f64| MARGIN_LEFT + x / x_max * plot_width;
    let y_of = |y: f64| plot_top + PLOT_HEIGHT - y / y_max * PLOT_HEIGHT;

    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" font-size="16" font-weight="bold">{}</text>"#,
        MARGIN_LEFT,
        top + 24.0,
        escape(&panel.title)
    );
    let mut gridline = 0.0;
    while gridline <= y_max + y_step / 2.0 {
        let y = y_of(gridline);
        let _ = writeln!(
            out,
            r##"<line x1="{MARGIN_LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            MARGIN_LEFT + plot_width,
            MARGIN_LEFT - 6.0,
            y + 4.0,
            format_number(gridline)
        );
        gridline += y_step;
    }
    for (x, label) in &panel.x_ticks {
        let px = x_of(*x);
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{plot_top:.1}" x2="{px:.1}" y2="{:.1}" stroke="#eee"/><text x="{px:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
            plot_top + PLOT_HEIGHT,
            plot_top + PLOT_HEIGHT + 16.0,
            escape(label)
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{MARGIN_LEFT}" y="{plot_top:.1}" width="{plot_width:.1}" height="{PLOT_HEIGHT}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
        MARGIN_LEFT + plot_width / 2.0,
        plot_top + PLOT_HEIGHT + 34.0,
        escape(&panel.x_label)
    );
    let _ = writeln!(
        out,
        r#"<text x="16" y="{:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
        plot_top + PLOT_HEIGHT / 2.0,
        plot_top + PLOT_HEIGHT / 2.0,
        escape(&panel.y_label)
    );
    for (index, series) in panel.series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let points: Vec<String> = series
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", x_of(*x), y_of(*y)))
            .collect();
        let dash = if series.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<polyline class="series" data-label="{}" fill="none" stroke="{colour}" stroke-width="2"{dash} points="{}"/>"#,
            escape(&series.label),
            points.join(" ")
        );
        let legend_y = plot_top + 14.0 + index as f64 * 16.0;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{legend_y:.1}" font-size="12" fill="{colour}">{}</text>"#,
            MARGIN_LEFT + 10.0,
            escape(&series.label)
        );
    }
    for (index, (text, attributes)) in panel.summary.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<text class="summary" {attributes} x="{MARGIN_LEFT}" y="{:.1}" font-size="12" font-family="monospace">{}</text>"#,
            plot_top + PLOT_HEIGHT + 58.0 + index as f64 * 16.0,
            escape(text)
        );
    }
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

fn latency_panel(curves: &[(String, Histogram<u64>, Latency)]) -> Panel {
    // Percentile p sits at log10(1 / (1 - p)): 90% at 1, 99% at 2, 99.9% at 3, ...
    let tail_cap = 5.0;
    let series = curves
        .iter()
        .map(|(label, histogram, _)| Series {
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
            dashed: label.contains("kernel"),
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
        x_ticks: ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
            .iter()
            .enumerate()
            .map(|(i, label)| (i as f64, (*label).to_owned()))
            .collect(),
        series,
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
    for (label, direction) in directions {
        x_max = x_max.max(
            direction
                .per_second
                .iter()
                .map(|s| s.second)
                .max()
                .unwrap_or(1),
        );
        type Rate = fn(&BenchSecond) -> u64;
        let sides: [(&str, Rate, bool); 2] =
            [("tx", |s| s.tx_pps, true), ("rx", |s| s.rx_pps, false)];
        for (side, rate, dashed) in sides {
            series.push(Series {
                label: format!("{label} {side}"),
                points: direction
                    .per_second
                    .iter()
                    .map(|s| (s.second as f64, rate(s) as f64))
                    .collect(),
                dashed,
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
        x_ticks: (1..=x_max)
            .step_by(usize::try_from(x_max / 10 + 1).unwrap_or(1))
            .map(|s| (s as f64, s.to_string()))
            .collect(),
        series,
        summary,
    }
}

/// One SVG with a latency panel for the ping-pong runs and a rate panel for the bench
/// runs among `runs` (each named by its label). `path` names the source in errors.
pub fn for_runs(runs: &[(String, &RunRecord)], path: &Path) -> Result<String, ResultsError> {
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
                for direction in run.agent.iter().chain(&run.baseline) {
                    directions.push((
                        format!(
                            "{label} {} vm{}->vm{}",
                            direction.method, direction.from, direction.to
                        ),
                        direction,
                    ));
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
    let height = PANEL_HEIGHT * panels.len().max(1) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (index, panel) in panels.iter().enumerate() {
        render_panel(&mut out, panel, index as f64 * PANEL_HEIGHT);
    }
    out.push_str("</svg>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{sample_bench, sample_pingpong};
    use super::*;

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
    fn nice_steps() {
        assert_eq!(nice_step(100.0), 20.0);
        assert_eq!(nice_step(7.0), 2.0);
        assert_eq!(nice_step(0.0), 1.0);
    }
}
