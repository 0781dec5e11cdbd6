//! The rows `dpdkhost report` prints, one per run and per direction / method inside it
//! (and per frame size of a search): the parameters that tell runs apart and the
//! figures to compare them by. The chart plots these same rows, so a point in the SVG
//! and a cell of the table are one number.

use std::fmt::Write;

use serde::Serialize;

use super::{BenchDirection, BenchRun, PingPongRun, RunRecord, RunResult, SizeSearch, Spread};

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    /// The run's label (its file's stem).
    pub run: String,
    /// `bench` or `pingpong`.
    pub kind: String,
    /// What measured it: `agent`, `testpmd` or `kernel`.
    pub method: String,
    /// `vmA->vmB`; a search over both directions names both, comma-separated.
    pub link: String,
    /// `uni` or `bi` for a bench; `None` for a ping-pong (always a round trip).
    pub direction: Option<String>,
    /// Frame size in bytes (without FCS).
    pub size: u32,
    /// How long it sent, ns: a bench's planned duration, a search's longest (final)
    /// trial, a ping-pong's wall time; 0 when the file does not say.
    pub duration_ns: u64,
    /// The rate asked for, packets per second (`None`: as fast as it could, or a
    /// search, which chooses its own loads).
    pub target_pps: Option<u64>,
    /// The rate as the table shows it: `max`, `search` or the rate.
    pub rate: String,
    /// Measurements behind the figures: trials of a bench, rounds of a baseline,
    /// searches of a search; 1 for a single measurement.
    pub trials: usize,
    /// Sender rate over the trials.
    pub tx_pps: Option<Spread>,
    /// Receiver rate over the trials.
    pub rx_pps: Option<Spread>,
    /// Packets sent, not received (all trials; a ping-pong's timeouts).
    pub lost_packets: Option<u64>,
    /// `lost_packets` over the packets sent.
    pub loss_ratio: Option<f64>,
    /// NDR over the searches, packets per second per direction.
    pub ndr_pps: Option<Spread>,
    /// PDR over the searches.
    pub pdr_pps: Option<Spread>,
    /// The PDR's loss-ratio goal.
    pub pdr_loss_ratio_goal: Option<f64>,
    /// Median round trip, ns.
    pub rtt_p50_ns: Option<Spread>,
    /// 99th-percentile round trip, ns.
    pub rtt_p99_ns: Option<Spread>,
}

impl RunRow {
    /// What tells this row from the other rows of its run: the run, the method, the
    /// link, and a search's frame size.
    pub fn label(&self) -> String {
        if self.ndr_pps.is_some() || self.pdr_pps.is_some() {
            format!("{} {} {} {} B", self.run, self.method, self.link, self.size)
        } else {
            format!("{} {} {}", self.run, self.method, self.link)
        }
    }

    fn empty(run: &str, kind: &str, method: &str, link: String) -> Self {
        RunRow {
            run: run.to_owned(),
            kind: kind.to_owned(),
            method: method.to_owned(),
            link,
            direction: None,
            size: 0,
            duration_ns: 0,
            target_pps: None,
            rate: "max".to_owned(),
            trials: 1,
            tx_pps: None,
            rx_pps: None,
            lost_packets: None,
            loss_ratio: None,
            ndr_pps: None,
            pdr_pps: None,
            pdr_loss_ratio_goal: None,
            rtt_p50_ns: None,
            rtt_p99_ns: None,
        }
    }
}

/// A figure the report compares runs by: a column of the table and a chart of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Sender packets per second.
    TxPps,
    /// Receiver packets per second.
    RxPps,
    /// A search's NDR.
    NdrPps,
    /// A search's PDR.
    PdrPps,
    /// Median round trip.
    RttP50,
    /// 99th-percentile round trip.
    RttP99,
}

impl Metric {
    /// Every metric, in the order of the table's columns and the chart's panels.
    pub const ALL: [Metric; 6] = [
        Metric::TxPps,
        Metric::RxPps,
        Metric::NdrPps,
        Metric::PdrPps,
        Metric::RttP50,
        Metric::RttP99,
    ];

    /// The row's field (and JSON key) holding it.
    pub fn key(self) -> &'static str {
        match self {
            Metric::TxPps => "tx_pps",
            Metric::RxPps => "rx_pps",
            Metric::NdrPps => "ndr_pps",
            Metric::PdrPps => "pdr_pps",
            Metric::RttP50 => "rtt_p50_ns",
            Metric::RttP99 => "rtt_p99_ns",
        }
    }

    /// The column heading and chart title.
    pub fn title(self) -> &'static str {
        match self {
            Metric::TxPps => "tx pps",
            Metric::RxPps => "rx pps",
            Metric::NdrPps => "NDR pps",
            Metric::PdrPps => "PDR pps",
            Metric::RttP50 => "RTT p50 us",
            Metric::RttP99 => "RTT p99 us",
        }
    }

    /// The row's value of it.
    pub fn of(self, row: &RunRow) -> Option<&Spread> {
        match self {
            Metric::TxPps => row.tx_pps.as_ref(),
            Metric::RxPps => row.rx_pps.as_ref(),
            Metric::NdrPps => row.ndr_pps.as_ref(),
            Metric::PdrPps => row.pdr_pps.as_ref(),
            Metric::RttP50 => row.rtt_p50_ns.as_ref(),
            Metric::RttP99 => row.rtt_p99_ns.as_ref(),
        }
    }

    /// Whether it is a round trip (stored in ns, shown in us) rather than a rate.
    pub fn is_latency(self) -> bool {
        matches!(self, Metric::RttP50 | Metric::RttP99)
    }

    /// A value of it as the table and the chart's labels show it.
    pub fn format(self, value: f64) -> String {
        if self.is_latency() {
            format!("{:.1}", value / 1000.0)
        } else {
            pps(value)
        }
    }

    /// A figure of it: the median, and the range when the measurements differ.
    pub fn cell(self, spread: &Spread) -> String {
        if spread.n > 1 && spread.min < spread.max {
            format!(
                "{} ({}..{})",
                self.format(spread.median),
                self.format(spread.min),
                self.format(spread.max)
            )
        } else {
            self.format(spread.median)
        }
    }
}

/// Packets per second, short: `950`, `200.0k`, `1.235M`.
pub fn pps(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.3}M", value / 1e6)
    } else if value >= 1e4 {
        format!("{:.1}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// The rows of every run, in the order given, each run named by its label.
pub fn rows(runs: &[(String, &RunRecord)]) -> Vec<RunRow> {
    runs.iter()
        .flat_map(|(label, record)| rows_of(label, record))
        .collect()
}

/// The rows of one run.
pub fn rows_of(label: &str, record: &RunRecord) -> Vec<RunRow> {
    match &record.result {
        RunResult::Pingpong(run) => pingpong_rows(label, record, run),
        RunResult::Bench(run) => bench_rows(label, record, run),
    }
}

fn pingpong_rows(label: &str, record: &RunRecord, run: &PingPongRun) -> Vec<RunRow> {
    // Without an interval the initiator sends as soon as its window allows: its top
    // speed, which the table calls max like an unpaced bench.
    let target_pps = record
        .parameters
        .get("interval_ns")
        .and_then(serde_json::Value::as_u64)
        .filter(|&ns| ns > 0)
        .map(|ns| (1_000_000_000 + ns / 2) / ns);
    std::iter::once(&run.agent)
        .chain(run.baseline.as_ref())
        .map(|side| {
            let single = |ns: u64| Spread::of(&[ns as f64]);
            RunRow {
                size: side.size,
                duration_ns: side.elapsed_ns,
                target_pps,
                rate: rate_label(target_pps),
                lost_packets: Some(side.lost),
                loss_ratio: Some(ratio(side.lost, side.sent)),
                rtt_p50_ns: single(side.rtt.p50_ns),
                rtt_p99_ns: single(side.rtt.p99_ns),
                ..RunRow::empty(
                    label,
                    "pingpong",
                    &side.method,
                    format!("vm{}->vm{}", run.from, run.to),
                )
            }
        })
        .collect()
}

fn bench_rows(label: &str, record: &RunRecord, run: &BenchRun) -> Vec<RunRow> {
    let mut rows = Vec::new();
    if run.search.is_empty() {
        // A plain bench's trials hold every direction of every trial (the same ones
        // as `agent`, which older files have alone).
        let agent: Vec<&BenchDirection> = if run.trials.is_empty() {
            run.agent.iter().collect()
        } else {
            run.trials.iter().flat_map(|t| &t.directions).collect()
        };
        for group in by_link(agent) {
            rows.push(plain_row(label, record, run, &group));
        }
    } else {
        let link = search_links(run);
        for search in &run.search {
            rows.push(search_row(label, run, search, &link));
        }
    }
    // The baseline's rounds are plain measurements next to either.
    for group in by_link(run.baseline.iter().collect()) {
        rows.push(plain_row(label, record, run, &group));
    }
    rows
}

/// Directions grouped by method, link and size, in the order they first appear.
fn by_link(directions: Vec<&BenchDirection>) -> Vec<Vec<&BenchDirection>> {
    let mut groups: Vec<Vec<&BenchDirection>> = Vec::new();
    for direction in directions {
        let same = |d: &&BenchDirection| {
            d.method == direction.method
                && d.from == direction.from
                && d.to == direction.to
                && d.size == direction.size
        };
        match groups.iter_mut().find(|g| g.first().is_some_and(same)) {
            Some(group) => group.push(direction),
            None => groups.push(vec![direction]),
        }
    }
    groups
}

fn plain_row(label: &str, record: &RunRecord, run: &BenchRun, group: &[&BenchDirection]) -> RunRow {
    let first = group[0];
    let link = first.link_label();
    // Older files have no target in the direction; the parameters still say.
    let target_pps = first.target_pps.or_else(|| {
        record
            .parameters
            .get("rate_pps")
            .and_then(serde_json::Value::as_u64)
    });
    let tx: Vec<f64> = group.iter().map(|d| d.tx_pps).collect();
    // The bench computed this spread over its trials (and gates on it): the table
    // shows that figure rather than a recomputation.
    let rx_pps = run
        .rx_pps_spread
        .get(&link)
        .filter(|_| first.method == "agent" && !run.trials.is_empty())
        .copied()
        .or_else(|| Spread::of(&group.iter().map(|d| d.rx_pps).collect::<Vec<_>>()));
    let sent: u64 = group.iter().map(|d| d.tx_packets).sum();
    let lost: u64 = group.iter().map(|d| d.lost()).sum();
    RunRow {
        direction: Some(run.direction.clone()),
        size: first.size,
        duration_ns: first.duration_ns,
        target_pps,
        rate: rate_label(target_pps),
        trials: group.len(),
        tx_pps: Spread::of(&tx),
        rx_pps,
        lost_packets: Some(lost),
        loss_ratio: Some(ratio(lost, sent)),
        ..RunRow::empty(label, "bench", &first.method, link)
    }
}

fn search_row(label: &str, run: &BenchRun, search: &SizeSearch, link: &str) -> RunRow {
    let duration_ns = search
        .searches
        .iter()
        .flat_map(|s| &s.trials)
        .map(|t| t.duration_ns)
        .max()
        .unwrap_or(0);
    RunRow {
        direction: Some(run.direction.clone()),
        size: search.size,
        duration_ns,
        rate: "search".to_owned(),
        trials: search.ndr.n.max(search.searches.len()),
        ndr_pps: Some(search.ndr),
        pdr_pps: Some(search.pdr),
        pdr_loss_ratio_goal: Some(search.loss_ratio_goal),
        ..RunRow::empty(label, "bench", "agent", link.to_owned())
    }
}

/// The links a search loaded: the agent's directions, or its trials' when the file
/// has no plain directions.
fn search_links(run: &BenchRun) -> String {
    let trials = run
        .search
        .iter()
        .flat_map(|s| &s.searches)
        .flat_map(|s| &s.trials)
        .flat_map(|t| &t.directions);
    let mut links: Vec<String> = Vec::new();
    for direction in run.agent.iter().chain(trials) {
        let link = direction.link_label();
        if !links.contains(&link) {
            links.push(link);
        }
    }
    if links.is_empty() {
        "-".to_owned()
    } else {
        links.join(",")
    }
}

fn rate_label(target_pps: Option<u64>) -> String {
    target_pps.map_or_else(|| "max".to_owned(), |r| pps(r as f64))
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The rows as an aligned text table; figure columns no row has are left out.
pub fn render(rows: &[RunRow]) -> String {
    let mut headings = vec![
        "run", "kind", "method", "link", "dir", "size", "duration", "rate", "trials",
    ];
    // Text columns read left-aligned, numbers right-aligned.
    let mut right = vec![false, false, false, false, false, true, true, true, true];
    type Cell = Box<dyn Fn(&RunRow) -> Option<String>>;
    let mut figures: Vec<Cell> = Vec::new();
    for metric in Metric::ALL {
        if rows.iter().any(|row| metric.of(row).is_some()) {
            headings.push(metric.title());
            right.push(true);
            figures.push(Box::new(move |row| metric.of(row).map(|s| metric.cell(s))));
        }
        // Loss reads next to the rates it explains.
        if metric == Metric::RxPps && rows.iter().any(|row| row.lost_packets.is_some()) {
            headings.push("lost");
            right.push(true);
            figures.push(Box::new(|row| {
                row.lost_packets
                    .map(|lost| format!("{lost} ({:.2}%)", row.loss_ratio.unwrap_or(0.0) * 100.0))
            }));
        }
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut cells = vec![
                row.run.clone(),
                row.kind.clone(),
                row.method.clone(),
                row.link.clone(),
                row.direction.clone().unwrap_or_else(|| "-".to_owned()),
                row.size.to_string(),
                if row.duration_ns == 0 {
                    "-".to_owned()
                } else {
                    format!("{:.1}s", row.duration_ns as f64 / 1e9)
                },
                row.rate.clone(),
                row.trials.to_string(),
            ];
            cells.extend(
                figures
                    .iter()
                    .map(|cell| cell(row).unwrap_or_else(|| "-".to_owned())),
            );
            cells
        })
        .collect();
    let widths: Vec<usize> = headings
        .iter()
        .enumerate()
        .map(|(i, heading)| {
            table
                .iter()
                .map(|cells| cells[i].chars().count())
                .chain(std::iter::once(heading.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if right[i] {
                    format!("{cell:>width$}", width = widths[i])
                } else {
                    format!("{cell:<width$}", width = widths[i])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(&mut out, &headings);
    for cells in &table {
        line(
            &mut out,
            &cells.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{sample_bench, sample_bench_trials, sample_pingpong, sample_search};
    use super::*;

    fn one(label: &str, record: &RunRecord) -> Vec<RunRow> {
        rows(&[(label.to_owned(), record)])
    }

    #[test]
    fn a_plain_bench_is_one_row_of_rates_and_loss() {
        let rows = one("b", &sample_bench());
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(
            (row.kind.as_str(), row.method.as_str(), row.link.as_str()),
            ("bench", "agent", "vm1->vm2")
        );
        assert_eq!(
            (row.size, row.duration_ns, row.trials),
            (64, 3_000_000_000, 1)
        );
        assert_eq!((row.rate.as_str(), row.target_pps), ("max", None));
        assert_eq!(row.rx_pps.map(|s| s.median), Some(200_000.0));
        assert_eq!(row.tx_pps.map(|s| s.median), Some(300_000.0));
        assert_eq!(row.lost_packets, Some(300_000));
        assert!((row.loss_ratio.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!((row.ndr_pps, row.rtt_p50_ns), (None, None));
    }

    #[test]
    fn trials_give_the_benchs_own_spread_and_summed_loss() {
        let record = sample_bench_trials();
        let RunResult::Bench(run) = &record.result else {
            unreachable!()
        };
        let rows = one("t", &record);
        assert_eq!(rows.len(), 1, "three trials of one link are one row");
        let row = &rows[0];
        assert_eq!(row.trials, 3);
        assert_eq!(row.rx_pps, Some(run.rx_pps_spread["vm1->vm2"]));
        let tx = row.tx_pps.unwrap();
        assert_eq!(
            (tx.min, tx.median, tx.max),
            (249_000.0, 250_000.0, 251_000.0)
        );
        assert_eq!(row.lost_packets, Some(3 * 300_000));
        assert_eq!(
            (row.rate.as_str(), row.target_pps),
            ("250.0k", Some(250_000))
        );
    }

    #[test]
    fn a_search_is_a_row_per_size_with_ndr_and_pdr() {
        let record = sample_search();
        let RunResult::Bench(run) = &record.result else {
            unreachable!()
        };
        let rows = one("s", &record);
        assert_eq!(rows.iter().map(|r| r.size).collect::<Vec<_>>(), [64, 1518]);
        for (row, search) in rows.iter().zip(&run.search) {
            assert_eq!(row.ndr_pps, Some(search.ndr));
            assert_eq!(row.pdr_pps, Some(search.pdr));
            assert_eq!((row.rate.as_str(), row.trials), ("search", 3));
            assert_eq!(row.link, "vm1->vm2");
            assert_eq!(row.duration_ns, 10_000_000_000, "the final trial's");
            assert_eq!((row.rx_pps, row.lost_packets), (None, None));
        }
        assert_eq!(rows[0].label(), "s agent vm1->vm2 64 B");
    }

    #[test]
    fn a_pingpong_row_has_its_round_trips_and_rate() {
        let mut record = sample_pingpong();
        record.parameters = serde_json::json!({"count": 1001, "interval_ns": 1_000_000});
        let RunResult::Pingpong(run) = &record.result else {
            unreachable!()
        };
        let rows = one("p", &record);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(
            row.rtt_p50_ns.map(|s| s.median),
            Some(run.agent.rtt.p50_ns as f64)
        );
        assert_eq!(
            row.rtt_p99_ns.map(|s| (s.n, s.max)),
            Some((1, run.agent.rtt.p99_ns as f64))
        );
        assert_eq!((row.rate.as_str(), row.target_pps), ("1000", Some(1000)));
        assert_eq!(
            (row.direction.as_deref(), row.lost_packets),
            (None, Some(0))
        );
    }

    #[test]
    fn the_table_has_the_columns_its_rows_fill() {
        let (bench, search, trials) = (sample_bench(), sample_search(), sample_bench_trials());
        let text = render(&rows(&[
            ("bench".into(), &bench),
            ("search".into(), &search),
            ("trials".into(), &trials),
        ]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 4, "{text}");
        for heading in [
            "run", "rate", "trials", "tx pps", "rx pps", "lost", "NDR pps", "PDR pps",
        ] {
            assert!(lines[0].contains(heading), "{heading} in {}", lines[0]);
        }
        assert!(!lines[0].contains("RTT"), "no run has a round trip: {text}");
        // The search's 64-byte row: NDR median with its range, no rates.
        assert!(lines[2].starts_with("search "), "{text}");
        assert!(lines[2].contains("155.0k (150.0k..160.0k)"), "{text}");
        assert!(lines[4].contains("200.0k (190.0k..230.0k)"), "{text}");
        assert!(lines[1].contains("300000 (33.33%)"), "{text}");
        // Every column starts where its heading does.
        let rate = lines[0].find("trials").unwrap();
        assert!(lines
            .iter()
            .all(|l| l[..rate + 6].ends_with(char::is_alphanumeric)));
        let only_pingpong = sample_pingpong();
        let text = render(&one("p", &only_pingpong));
        assert!(
            text.contains("RTT p50 us") && !text.contains("rx pps"),
            "{text}"
        );
    }

    #[test]
    fn rows_serialize_every_figure_the_text_shows() {
        let record = sample_bench_trials();
        let value = serde_json::to_value(one("t", &record)).unwrap();
        let row = &value[0];
        assert_eq!(row["run"], "t");
        assert_eq!(row["rx_pps"]["median"], 200_000.0);
        assert_eq!(row["rx_pps"]["min"], 190_000.0);
        assert_eq!(row["rx_pps"]["max"], 230_000.0);
        assert_eq!(row["tx_pps"]["n"], 3);
        assert_eq!(row["lost_packets"], 900_000);
        assert_eq!(row["rate"], "250.0k");
        assert_eq!(row["target_pps"], 250_000);
        assert_eq!(row["duration_ns"], 3_000_000_000u64);
        assert!(row["ndr_pps"].is_null());
    }
}
