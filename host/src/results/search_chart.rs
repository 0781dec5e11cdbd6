//! The chart of a `bench --search`: NDR and PDR per frame size (with each one's
//! min–max over the searches), and with `--latency` the round-trip p50 and p99 per
//! load level. Categories on the x axis, one colour per series, the legend beside the
//! plot, and each point's value in `data-*` attributes for tests and tools.

use std::fmt::Write;

use super::BenchRun;

const WIDTH: f64 = 900.0;
const PANEL_HEIGHT: f64 = 380.0;
const LEFT: f64 = 90.0;
const PLOT_WIDTH: f64 = 600.0;
const TOP: f64 = 50.0;
const PLOT_HEIGHT: f64 = 260.0;
const LEGEND_X: f64 = LEFT + PLOT_WIDTH + 20.0;
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"];

/// One value of a series at a category, with its spread.
struct Point {
    value: f64,
    min: f64,
    max: f64,
}

struct SeriesData {
    label: String,
    points: Vec<Option<Point>>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn axis_max(series: &[SeriesData]) -> f64 {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().flatten().map(|p| p.max.max(p.value)))
        .fold(0.0, f64::max);
    if max <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    let mut top = power;
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        top = step * power;
        if top >= max * 1.05 {
            break;
        }
    }
    top
}

fn panel(
    out: &mut String,
    top: f64,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[SeriesData],
) {
    let y_max = axis_max(series);
    let plot_top = top + TOP;
    let x_of = |i: usize| LEFT + (i as f64 + 0.5) * PLOT_WIDTH / categories.len().max(1) as f64;
    let y_of = |v: f64| plot_top + PLOT_HEIGHT - v / y_max * PLOT_HEIGHT;
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{:.1}" font-size="16" font-weight="bold">{}</text>"#,
        top + 28.0,
        escape(title)
    );
    for tick in 0..=5 {
        let value = y_max * f64::from(tick) / 5.0;
        let y = y_of(value);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{value:.0}</text>"##,
            LEFT + PLOT_WIDTH,
            LEFT - 6.0,
            y + 4.0
        );
    }
    for (i, category) in categories.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
            x_of(i),
            plot_top + PLOT_HEIGHT + 16.0,
            escape(category)
        );
    }
    let _ = writeln!(
        out,
        r##"<rect class="plot" x="{LEFT}" y="{plot_top:.1}" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" fill="none" stroke="#444"/><text x="20" y="{:.1}" font-size="12" transform="rotate(-90 20 {:.1})" text-anchor="middle">{}</text>"##,
        plot_top + PLOT_HEIGHT / 2.0,
        plot_top + PLOT_HEIGHT / 2.0,
        escape(y_label)
    );
    for (index, data) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        // Side by side within a category, so whiskers do not hide each other.
        let offset = (index as f64 - (series.len() as f64 - 1.0) / 2.0) * 10.0;
        let mut path = String::new();
        for (i, point) in data.points.iter().enumerate() {
            let Some(point) = point else { continue };
            let x = x_of(i) + offset;
            let _ = write!(
                path,
                "{}{x:.1},{:.1} ",
                if path.is_empty() { "M" } else { "L" },
                y_of(point.value)
            );
        }
        let _ = writeln!(
            out,
            r#"<g class="series" data-label="{}"><path d="{}" fill="none" stroke="{colour}" stroke-width="1.5"/>"#,
            escape(&data.label),
            path.trim_end()
        );
        for (i, point) in data.points.iter().enumerate() {
            let Some(point) = point else { continue };
            let x = x_of(i) + offset;
            let _ = writeln!(
                out,
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{colour}"/><circle class="point" cx="{x:.1}" cy="{:.1}" r="4" fill="{colour}" data-category="{}" data-value="{}" data-min="{}" data-max="{}"/>"#,
                y_of(point.min),
                y_of(point.max),
                y_of(point.value),
                escape(&categories[i]),
                point.value,
                point.min,
                point.max
            );
        }
        out.push_str("</g>\n");
        let y = plot_top + 10.0 + index as f64 * 20.0;
        let _ = writeln!(
            out,
            r#"<g class="legend"><rect x="{LEGEND_X}" y="{:.1}" width="14" height="4" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="12">{}</text></g>"#,
            y - 4.0,
            LEGEND_X + 20.0,
            y + 1.0,
            escape(&data.label)
        );
    }
}

/// The search chart of `run`, or `None` when it searched nothing.
pub fn for_search(run: &BenchRun) -> Option<String> {
    if run.search.is_empty() {
        return None;
    }
    let sizes: Vec<String> = run.search.iter().map(|s| format!("{} B", s.size)).collect();
    let rates = [
        SeriesData {
            label: "NDR (no loss)".into(),
            points: run
                .search
                .iter()
                .map(|s| {
                    Some(Point {
                        value: s.ndr.median,
                        min: s.ndr.min,
                        max: s.ndr.max,
                    })
                })
                .collect(),
        },
        SeriesData {
            label: format!(
                "PDR (loss <= {})",
                run.search.first().map_or(0.0, |s| s.loss_ratio_goal)
            ),
            points: run
                .search
                .iter()
                .map(|s| {
                    Some(Point {
                        value: s.pdr.median,
                        min: s.pdr.min,
                        max: s.pdr.max,
                    })
                })
                .collect(),
        },
    ];
    let mut panels: Vec<(String, String, Vec<String>, Vec<SeriesData>)> = vec![(
        "NDR and PDR per frame size (median, min-max over searches)".into(),
        "packets per second".into(),
        sizes,
        rates.into(),
    )];
    for size in run.search.iter().filter(|s| !s.latency.is_empty()) {
        let levels: Vec<String> = size
            .latency
            .iter()
            .map(|l| format!("{} % PDR", l.percent_of_pdr))
            .collect();
        let mut series = Vec::new();
        let links: Vec<String> = size.latency[0]
            .trial
            .directions
            .iter()
            .map(|d| d.link_label())
            .collect();
        for link in &links {
            type Pick = fn(&super::Latency) -> u64;
            let picks: [(&str, Pick); 2] = [("p50", |l| l.p50_ns), ("p99", |l| l.p99_ns)];
            for (name, pick) in picks {
                series.push(SeriesData {
                    label: format!("{link} {name}"),
                    points: size
                        .latency
                        .iter()
                        .map(|level| {
                            level
                                .trial
                                .directions
                                .iter()
                                .find(|d| &d.link_label() == link)
                                .and_then(|d| d.latency.as_ref())
                                .map(|latency| {
                                    let us = pick(&latency.rtt) as f64 / 1e3;
                                    Point {
                                        value: us,
                                        min: us,
                                        max: us,
                                    }
                                })
                        })
                        .collect(),
                });
            }
        }
        panels.push((
            format!("Round trip under load, {} B (TSC in the guest)", size.size),
            "microseconds".into(),
            levels,
            series,
        ));
    }
    let height = PANEL_HEIGHT * panels.len() as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (index, (title, y_label, categories, series)) in panels.iter().enumerate() {
        panel(
            &mut out,
            index as f64 * PANEL_HEIGHT,
            title,
            y_label,
            categories,
            series,
        );
    }
    out.push_str("</svg>\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample_search_with_latency as sample_search;
    use super::*;

    #[test]
    fn the_chart_shows_each_sizes_ndr_and_pdr_and_the_latency_levels() {
        let record = sample_search();
        let super::super::RunResult::Bench(run) = &record.result else {
            unreachable!()
        };
        let svg = for_search(run).expect("a search run has a chart");
        let document = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let points: Vec<(String, String)> = document
            .descendants()
            .filter(|n| n.attribute("class") == Some("point"))
            .map(|n| {
                (
                    n.attribute("data-category").unwrap().to_owned(),
                    n.attribute("data-value").unwrap().to_owned(),
                )
            })
            .collect();
        for size in &run.search {
            let category = format!("{} B", size.size);
            assert!(points.contains(&(category.clone(), size.ndr.median.to_string())));
            assert!(points.contains(&(category, size.pdr.median.to_string())));
        }
        // 2 sizes x (NDR, PDR), then 4 levels x (p50, p99) for the size with latency.
        assert_eq!(points.len(), 2 * 2 + 4 * 2, "{points:?}");
        // The legend sits right of every plot.
        for legend in document
            .descendants()
            .filter(|n| n.attribute("class") == Some("legend"))
        {
            let rect = legend.first_element_child().unwrap();
            let x: f64 = rect.attribute("x").unwrap().parse().unwrap();
            assert!(x > LEFT + PLOT_WIDTH);
        }
        let mut plain = record.clone();
        if let super::super::RunResult::Bench(run) = &mut plain.result {
            run.search.clear();
            assert!(for_search(run).is_none());
        }
    }
}
