//! Saved runs: every `run pingpong` and `bench` is written under `results/` as
//! `<timestamp>-<kind>.json` (parameters, environment, results), plus the latency
//! percentile distribution (`.hgrm`) and an SVG chart a browser shows.

pub mod chart;
pub mod hgrm;
pub mod table;
pub mod udp_drops;

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Why a run could not be saved or read back.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// A file could not be written or read.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A saved run is not valid JSON of this schema.
    #[error("{path} is not a saved dpdkhost run")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The embedded histogram cannot be decoded.
    #[error("the histogram in {path} cannot be decoded")]
    Histogram {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: agent_proto::histogram::HistogramCodecError,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ResultsError + '_ {
    move |source| ResultsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where and on what a run was measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// The dpdkhost environment name.
    pub env: String,
    /// kvm or tcg, and why.
    pub accel: String,
    /// The host CPU model (from /proc/cpuinfo).
    pub cpu_model: String,
    /// The host kernel release.
    pub host_kernel: String,
    /// dpdkhost's version.
    pub dpdkhost_version: String,
    /// The agents' versions.
    pub agent_version: String,
    /// DPDK's version as the agent reports it.
    pub dpdk_version: String,
    /// Each guest's load and cloud-init state when the run started.
    #[serde(default)]
    pub guests: Vec<crate::guest::GuestLoad>,
}

impl Environment {
    /// Reads what the host can tell about itself; agent fields are filled by the caller.
    pub fn of_host(env: &str, accel: &str) -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            })
            .unwrap_or_default();
        let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|text| text.trim().to_owned())
            .unwrap_or_default();
        Self {
            env: env.to_owned(),
            accel: accel.to_owned(),
            cpu_model,
            host_kernel,
            dpdkhost_version: env!("CARGO_PKG_VERSION").to_owned(),
            agent_version: String::new(),
            dpdk_version: String::new(),
            guests: Vec::new(),
        }
    }
}

/// Round-trip time percentiles in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Smallest.
    pub min_ns: u64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest.
    pub max_ns: u64,
    /// Mean.
    pub mean_ns: f64,
}

impl Latency {
    /// Percentiles of `histogram` (empty histogram: all zero).
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            min_ns: histogram.min(),
            p50_ns: histogram.value_at_quantile(0.5),
            p90_ns: histogram.value_at_quantile(0.9),
            p99_ns: histogram.value_at_quantile(0.99),
            p999_ns: histogram.value_at_quantile(0.999),
            max_ns: histogram.max(),
            mean_ns: histogram.mean(),
        }
    }
}

/// One latency distribution: the agent's, or a baseline's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingPongSide {
    /// What measured it: `agent` (DPDK) or `kernel` (UDP sockets).
    pub method: String,
    /// Packets sent.
    pub sent: u64,
    /// Replies received.
    pub received: u64,
    /// Packets that timed out.
    pub lost: u64,
    /// Replies received twice.
    pub duplicates: u64,
    /// Replies that came back out of order.
    pub reordered: u64,
    /// Frame size in bytes (without FCS).
    pub size: u32,
    /// Wall time of the run, ns.
    pub elapsed_ns: u64,
    /// The percentiles.
    pub rtt: Latency,
    /// The whole distribution, HdrHistogram V2, base64.
    pub histogram_v2_base64: String,
}

impl PingPongSide {
    /// Decodes the embedded histogram.
    pub fn histogram(&self, path: &Path) -> Result<Histogram<u64>, ResultsError> {
        decode_histogram(&self.histogram_v2_base64, path)
    }
}

/// A ping-pong run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingPongRun {
    /// Initiating VM (1-based).
    pub from: u32,
    /// Reflecting VM (1-based).
    pub to: u32,
    /// The agent's measurement.
    pub agent: PingPongSide,
    /// The kernel-stack baseline on the same link, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<PingPongSide>,
    /// `--through`: the DUT VM (then `to` is it too, and the frames came back through
    /// it to `from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<u32>,
    /// `--through`: the application measured, with its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dut: Option<crate::dut::DutRecord>,
}

/// One second of a bench direction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BenchSecond {
    /// 1, 2, ...
    pub second: u64,
    /// Packets sent by the transmitter that second.
    pub tx_pps: u64,
    /// Test packets received by the receiver that second.
    pub rx_pps: u64,
}

/// One direction of a bench: what the transmitter sent and where each lost packet went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchDirection {
    /// What measured it: `agent` or `testpmd`.
    pub method: String,
    /// Transmitting VM.
    pub from: u32,
    /// Receiving VM.
    pub to: u32,
    /// Frame size in bytes (without FCS).
    pub size: u32,
    /// How long the transmitter sent, ns: for the agent the planned duration (its
    /// transmit loop stops then); for testpmd the forwarding time it printed (from its
    /// statistics reset to "Telling cores to stop"), stamped in the guest.
    pub duration_ns: u64,
    /// Packets the transmitter's PMD accepted.
    pub tx_packets: u64,
    /// Test packets the receiver counted.
    pub rx_packets: u64,
    /// Packets refused by a full tx ring (never sent, not counted as loss).
    pub tx_ring_full: u64,
    /// Receiver: dropped by the NIC for lack of rx descriptors.
    pub imissed: u64,
    /// Receiver: dropped for lack of mbufs.
    pub rx_nombuf: u64,
    /// Receiver: frames with errors.
    pub ierrors: u64,
    /// Dropped on the link between the VMs: in user mode, the receiving QEMU's UDP
    /// socket drops (`/proc/net/udp`), counted when the guest could not keep up.
    pub link_drops: u64,
    /// Test packets that came after a later one (late, not lost).
    #[serde(default)]
    pub reordered: u64,
    /// Through a DUT: its VM (the frames went from -> through -> to, `to` being the
    /// sender itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<u32>,
    /// Through a DUT: its own port counters over the trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dut: Option<crate::dut::DutCounters>,
    /// Sent, not received, and counted by no counter (still in flight at the end, or
    /// lost where nothing counts).
    pub unaccounted: u64,
    /// Sender rate, packets per second: `tx_packets` over `duration_ns`, the time the
    /// transmitter sent. The agent and the testpmd baseline use this same definition.
    pub tx_pps: f64,
    /// Receiver rate, packets per second: `rx_packets` (counted until the receiver
    /// stopped, after the drain) over the same `duration_ns`.
    pub rx_pps: f64,
    /// Receiver throughput, Gbit/s of frames (FCS, preamble and gap excluded), over
    /// `duration_ns`.
    pub rx_gbps: f64,
    /// Per-second rates: the transmitter's seconds, then the drain. For the agent,
    /// packets in each second of its clock (rx from the receiver's second of the same
    /// number); for testpmd, its per-second `Tx-pps` / `Rx-pps` lines (see
    /// `testpmd::per_second`).
    pub per_second: Vec<BenchSecond>,
    /// The rate the transmitter was asked for (`None`: as fast as it can).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_pps: Option<u64>,
    /// How long the transmitter actually sent, ns, by its own clock (0 when it does
    /// not say: testpmd).
    #[serde(default)]
    pub send_ns: u64,
    /// `tx_packets` over `send_ns`: the load the transmitter offered (0 without
    /// `send_ns`).
    #[serde(default)]
    pub offered_pps: f64,
    /// `offered_pps / target_pps - 1`: how far the pacing was from the rate asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacing_error: Option<f64>,
    /// Round trips of the latency probes sent alongside the load, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<ProbeLatency>,
}

/// Round trips of the probe stream a transmitter sent alongside its load: timestamped
/// frames the receiver returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeLatency {
    /// Where the timestamps come from.
    pub timestamp_source: String,
    /// Probes per second asked for.
    pub probe_rate_pps: u32,
    /// Probes sent.
    pub sent: u64,
    /// Probes that came back (each a sample).
    pub returned: u64,
    /// The percentiles.
    pub rtt: Latency,
    /// The whole distribution, HdrHistogram V2, base64.
    pub histogram_v2_base64: String,
}

impl ProbeLatency {
    /// Decodes the embedded histogram.
    pub fn histogram(&self, path: &Path) -> Result<Histogram<u64>, ResultsError> {
        decode_histogram(&self.histogram_v2_base64, path)
    }
}

/// What [`ProbeLatency::timestamp_source`] says of the agent's probes.
pub const PROBE_TIMESTAMP_SOURCE: &str =
    "TSC in the sending guest (stamped before tx_burst, read after rx_burst; round trip)";

impl BenchDirection {
    /// Packets lost: sent and not received.
    pub fn lost(&self) -> u64 {
        self.tx_packets.saturating_sub(self.rx_packets)
    }

    /// Lost packets that some counter explains.
    pub fn counted_drops(&self) -> u64 {
        self.imissed
            + self.rx_nombuf
            + self.ierrors
            + self.link_drops
            + self
                .dut
                .as_ref()
                .map_or(0, crate::dut::DutCounters::counted_drops)
    }

    /// Fills [`Self::unaccounted`] from the other counters.
    pub fn account(&mut self) {
        self.unaccounted = self.lost().saturating_sub(self.counted_drops());
    }

    /// Lost over sent (0 when nothing was sent).
    pub fn loss_ratio(&self) -> f64 {
        if self.tx_packets == 0 {
            0.0
        } else {
            self.lost() as f64 / self.tx_packets as f64
        }
    }

    /// `vmA->vmB`.
    pub fn link_label(&self) -> String {
        match self.through {
            Some(dut) => format!("vm{}->vm{dut}->vm{}", self.from, self.to),
            None => format!("vm{}->vm{}", self.from, self.to),
        }
    }
}

/// The median, smallest and largest of repeated measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// How many.
    pub n: usize,
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (`None` when empty or not all numbers).
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Spread {
            n,
            median,
            min: sorted[0],
            max: sorted[n - 1],
        })
    }
}

/// One trial of a bench: a load offered for a time, its counters read after the
/// transmitter stopped and the receiver drained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// `measure` (a plain bench's trial), `maximum`, `search` or `final` (a search's),
    /// or `latency` (a load level of the latency measurement).
    pub phase: String,
    /// The rate asked for per transmitter (`None`: as fast as it can).
    pub target_pps: Option<u64>,
    /// How long it sent, ns (planned).
    pub duration_ns: u64,
    /// Every direction's counters.
    pub directions: Vec<BenchDirection>,
    /// The worst direction's loss ratio.
    pub loss_ratio: f64,
}

/// A search's result for one frame size (one search per `--trials`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeSearch {
    /// Frame size in bytes (without FCS).
    pub size: u32,
    /// The PDR's loss-ratio goal.
    pub loss_ratio_goal: f64,
    /// NDR, packets per second per direction: the median over the searches.
    pub ndr_pps: f64,
    /// PDR, packets per second per direction: the median over the searches.
    pub pdr_pps: f64,
    /// NDR in Gbit/s of frames (FCS, preamble and gap excluded).
    pub ndr_gbps: f64,
    /// PDR in Gbit/s.
    pub pdr_gbps: f64,
    /// NDR over the searches.
    pub ndr: Spread,
    /// PDR over the searches.
    pub pdr: Spread,
    /// Each search.
    pub searches: Vec<SearchRecord>,
    /// Round trips under load, per level (with `--latency`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency: Vec<LatencyLevel>,
}

/// One search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRecord {
    /// The sender's rate in the maximum trial.
    pub max_offered_pps: f64,
    /// The highest load whose final trial lost nothing (0: none).
    pub ndr_pps: u64,
    /// The highest load whose final trial's loss ratio met the goal.
    pub pdr_pps: u64,
    /// False when the trial budget ran out first.
    pub converged: bool,
    /// Every trial, in order.
    pub trials: Vec<Trial>,
}

/// Round-trip latency at one load level, as CSIT measures it (0, 10, 50, 90 % of PDR).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyLevel {
    /// The level, percent of PDR.
    pub percent_of_pdr: u32,
    /// The load per transmitter (0: the probes only).
    pub load_pps: u64,
    /// The trial (its directions carry the probes' round trips).
    pub trial: Trial,
}

/// One round of the agent against the testpmd baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineRound {
    /// 1, 2, ...
    pub round: u32,
    /// Which tool ran first this round: `agent` or `testpmd` (alternating).
    pub first: String,
    /// The agent's direction.
    pub agent: BenchDirection,
    /// testpmd's direction.
    pub testpmd: BenchDirection,
    /// agent tx pps / testpmd tx pps.
    pub tx_ratio: f64,
    /// agent rx pps / testpmd rx pps.
    pub rx_ratio: f64,
}

/// The regression gate of `--expect-pps` / `--tolerance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// What was compared: `ndr_pps` (a search) or `rx_pps` (the median of trials).
    pub metric: String,
    /// The measured value.
    pub measured: f64,
    /// `--expect-pps`.
    pub expected: f64,
    /// `--tolerance`.
    pub tolerance: f64,
    /// `expected × (1 − tolerance)`: the lowest value that passes.
    pub floor: f64,
    /// Whether `measured >= floor`.
    pub pass: bool,
}

impl Gate {
    /// Compares `measured` against `expected × (1 − tolerance)`.
    pub fn check(metric: &str, measured: f64, expected: f64, tolerance: f64) -> Gate {
        let floor = expected * (1.0 - tolerance);
        Gate {
            metric: metric.to_owned(),
            measured,
            expected,
            tolerance,
            floor,
            pass: measured >= floor,
        }
    }
}

/// A bench run: one direction (uni) or two (bi), and the baseline's when asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchRun {
    /// `uni` or `bi`.
    pub direction: String,
    /// The agent's directions.
    pub agent: Vec<BenchDirection>,
    /// dpdk-testpmd on the same VMs and link, when asked for (every round's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baseline: Vec<BenchDirection>,
    /// Every trial of a plain bench (`--trials`), each with all its directions; the
    /// same directions are in `agent`, trial after trial.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<Trial>,
    /// Received packets per second over the trials, per direction (`vmA->vmB`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub rx_pps_spread: std::collections::BTreeMap<String, Spread>,
    /// NDR of the first (or only) size searched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ndr_pps: Option<f64>,
    /// PDR of the first (or only) size searched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdr_pps: Option<f64>,
    /// `--search`: per frame size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<SizeSearch>,
    /// `--baseline testpmd`: the rounds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<BaselineRound>,
    /// The median over the rounds of the tx ratios (agent/testpmd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_tx_ratio: Option<f64>,
    /// The median over the rounds of the rx ratios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_rx_ratio: Option<f64>,
    /// `--expect-pps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// `--through`: the application measured, with its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dut: Option<crate::dut::DutRecord>,
}

impl BenchRun {
    /// Every direction that carries probe round trips, with a name for its file:
    /// `64B-50pct` for a latency level of a search, `trial2` for a plain trial.
    pub fn latency_directions(&self) -> Vec<(String, &BenchDirection)> {
        let mut out = Vec::new();
        for size in &self.search {
            for level in &size.latency {
                for direction in &level.trial.directions {
                    out.push((
                        format!("{}B-{}pct", size.size, level.percent_of_pdr),
                        direction,
                    ));
                }
            }
        }
        for (index, trial) in self.trials.iter().enumerate() {
            for direction in &trial.directions {
                if direction.latency.is_some() {
                    out.push((format!("trial{}", index + 1), direction));
                }
            }
        }
        out.retain(|(_, d)| d.latency.is_some());
        out
    }
}

/// What a saved run holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunResult {
    /// `dpdkhost run pingpong`.
    Pingpong(Box<PingPongRun>),
    /// `dpdkhost bench --pps` (boxed like the ping-pong: trials and searches make it
    /// far larger than the other).
    Bench(Box<BenchRun>),
}

/// A saved run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// RFC 3339 start time.
    pub started_at: String,
    /// The command's parameters as given.
    pub parameters: serde_json::Value,
    /// Where it ran.
    pub environment: Environment,
    /// The results.
    pub result: RunResult,
}

/// The files a saved run consists of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SavedRun {
    /// The JSON record.
    pub json: PathBuf,
    /// Latency percentile distribution(s), for ping-pong runs.
    pub hgrm: Vec<PathBuf>,
    /// The chart.
    pub svg: PathBuf,
    /// NDR/PDR per size and latency per load level, for a search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_svg: Option<PathBuf>,
}

impl RunRecord {
    /// A short name: `20261127T184500Z-pingpong`.
    pub fn stem(&self) -> String {
        let kind = match &self.result {
            RunResult::Pingpong(_) => "pingpong",
            RunResult::Bench(_) => "bench",
        };
        let stamp: String = self
            .started_at
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        format!("{stamp}-{kind}")
    }

    /// Writes the run into `dir` (created when missing).
    pub fn save(&self, dir: &Path) -> Result<SavedRun, ResultsError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let stem = self.stem();
        let json = dir.join(format!("{stem}.json"));
        let text = serde_json::to_string_pretty(self).expect("RunRecord serializes");
        std::fs::write(&json, text + "\n").map_err(io_err(&json))?;
        let mut hgrm = Vec::new();
        if let RunResult::Pingpong(run) = &self.result {
            for side in std::iter::once(&run.agent).chain(run.baseline.as_ref()) {
                let path = dir.join(format!("{stem}-{}.hgrm", side.method));
                let histogram = side.histogram(&json)?;
                std::fs::write(&path, hgrm::percentile_distribution(&histogram, 1000.0))
                    .map_err(io_err(&path))?;
                hgrm.push(path);
            }
        }
        if let RunResult::Bench(run) = &self.result {
            for (name, direction) in run.latency_directions() {
                let Some(latency) = &direction.latency else {
                    continue;
                };
                let path = dir.join(format!(
                    "{stem}-{name}-{}.hgrm",
                    direction.link_label().replace("->", "-")
                ));
                let histogram = latency.histogram(&json)?;
                std::fs::write(&path, hgrm::percentile_distribution(&histogram, 1000.0))
                    .map_err(io_err(&path))?;
                hgrm.push(path);
            }
        }
        let svg = dir.join(format!("{stem}.svg"));
        std::fs::write(&svg, chart::for_runs(&[(stem.clone(), self)], &json)?)
            .map_err(io_err(&svg))?;
        let mut search_svg = None;
        if let RunResult::Bench(run) = &self.result {
            if let Some(chart) = chart::for_search(run) {
                let path = dir.join(format!("{stem}-search.svg"));
                std::fs::write(&path, chart).map_err(io_err(&path))?;
                search_svg = Some(path);
            }
        }
        Ok(SavedRun {
            json,
            hgrm,
            svg,
            search_svg,
        })
    }

    /// Reads a run saved by [`RunRecord::save`].
    pub fn load(path: &Path) -> Result<Self, ResultsError> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        serde_json::from_str(&text).map_err(|source| ResultsError::Parse {
            path: path.to_owned(),
            source,
        })
    }
}

/// Decodes a histogram [`histogram_base64`] encoded; `path` names the run in errors.
pub fn decode_histogram(base64_text: &str, path: &Path) -> Result<Histogram<u64>, ResultsError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_text)
        .map_err(|err| ResultsError::Parse {
            path: path.to_owned(),
            source: serde::de::Error::custom(err),
        })?;
    agent_proto::histogram::decode(&bytes).map_err(|source| ResultsError::Histogram {
        path: path.to_owned(),
        source,
    })
}

/// Encodes a histogram for [`PingPongSide::histogram_v2_base64`].
pub fn histogram_base64(histogram: &Histogram<u64>) -> String {
    use base64::Engine;
    let bytes = agent_proto::histogram::encode(histogram).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `a / b` with two decimals, or `n/a` when `b` is zero.
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "n/a".to_owned()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_pingpong() -> RunRecord {
        let mut histogram = Histogram::<u64>::new(3).unwrap();
        for i in 0..1000u64 {
            histogram.record(20_000 + i * 37).unwrap();
        }
        histogram.record(900_000).unwrap();
        let side = PingPongSide {
            method: "agent".into(),
            sent: 1001,
            received: 1001,
            lost: 0,
            duplicates: 0,
            reordered: 0,
            size: 64,
            elapsed_ns: 2_000_000_000,
            rtt: Latency::of(&histogram),
            histogram_v2_base64: histogram_base64(&histogram),
        };
        RunRecord {
            started_at: "2026-11-27T18:45:00Z".into(),
            parameters: serde_json::json!({"count": 1001}),
            environment: Environment::of_host("test", "tcg"),
            result: RunResult::Pingpong(Box::new(PingPongRun {
                from: 1,
                to: 2,
                agent: side,
                baseline: None,
                through: None,
                dut: None,
            })),
        }
    }

    pub(crate) fn sample_bench() -> RunRecord {
        let direction = BenchDirection {
            method: "agent".into(),
            from: 1,
            to: 2,
            size: 64,
            duration_ns: 3_000_000_000,
            tx_packets: 900_000,
            rx_packets: 600_000,
            tx_ring_full: 10,
            imissed: 100_000,
            rx_nombuf: 0,
            ierrors: 0,
            link_drops: 200_000,
            unaccounted: 0,
            tx_pps: 300_000.0,
            rx_pps: 200_000.0,
            rx_gbps: 0.1,
            per_second: (1..=3)
                .map(|second| BenchSecond {
                    second,
                    tx_pps: 300_000,
                    rx_pps: 190_000 + second * 5000,
                })
                .collect(),
            ..BenchDirection::default()
        };
        RunRecord {
            started_at: "2026-11-27T18:46:00Z".into(),
            parameters: serde_json::json!({"duration": "3s"}),
            environment: Environment::of_host("test", "tcg"),
            result: RunResult::Bench(Box::new(BenchRun {
                direction: "uni".into(),
                agent: vec![direction],
                ..BenchRun::default()
            })),
        }
    }

    /// A bench of three trials (paced at 250 kpps), its rx rate differing per trial.
    pub(crate) fn sample_bench_trials() -> RunRecord {
        let mut record = sample_bench();
        let RunResult::Bench(run) = &mut record.result else {
            unreachable!()
        };
        let base = run.agent[0].clone();
        let trials: Vec<Trial> = [
            (250_000.0, 190_000.0),
            (249_000.0, 200_000.0),
            (251_000.0, 230_000.0),
        ]
        .into_iter()
        .map(|(tx_pps, rx_pps)| {
            let direction = BenchDirection {
                tx_pps,
                rx_pps,
                target_pps: Some(250_000),
                ..base.clone()
            };
            Trial {
                phase: "measure".into(),
                target_pps: Some(250_000),
                duration_ns: direction.duration_ns,
                loss_ratio: direction.loss_ratio(),
                directions: vec![direction],
            }
        })
        .collect();
        run.agent = trials.iter().flat_map(|t| t.directions.clone()).collect();
        let rx: Vec<f64> = run.agent.iter().map(|d| d.rx_pps).collect();
        run.rx_pps_spread = [("vm1->vm2".to_owned(), Spread::of(&rx).unwrap())].into();
        run.trials = trials;
        record
    }

    /// A search over two frame sizes, three searches each.
    pub(crate) fn sample_search() -> RunRecord {
        let mut record = sample_bench();
        let RunResult::Bench(run) = &mut record.result else {
            unreachable!()
        };
        let base = run.agent[0].clone();
        let search = |size: u32, ndr: [u64; 3], pdr: [u64; 3]| {
            let searches = ndr
                .iter()
                .zip(&pdr)
                .map(|(&ndr_pps, &pdr_pps)| SearchRecord {
                    max_offered_pps: pdr_pps as f64 * 1.5,
                    ndr_pps,
                    pdr_pps,
                    converged: true,
                    trials: [("maximum", 1_000_000_000u64), ("final", 10_000_000_000)]
                        .into_iter()
                        .map(|(phase, duration_ns)| Trial {
                            phase: phase.into(),
                            target_pps: None,
                            duration_ns,
                            directions: vec![BenchDirection {
                                size,
                                ..base.clone()
                            }],
                            loss_ratio: 0.0,
                        })
                        .collect(),
                })
                .collect();
            let spread = |values: [u64; 3]| Spread::of(&values.map(|v| v as f64)).unwrap();
            let (ndr, pdr) = (spread(ndr), spread(pdr));
            SizeSearch {
                size,
                loss_ratio_goal: 0.005,
                ndr_pps: ndr.median,
                pdr_pps: pdr.median,
                ndr_gbps: 0.0,
                pdr_gbps: 0.0,
                ndr,
                pdr,
                searches,
                latency: Vec::new(),
            }
        };
        run.agent.clear();
        run.search = vec![
            search(64, [150_000, 160_000, 155_000], [180_000, 185_000, 175_000]),
            search(1518, [90_000, 91_000, 89_000], [99_000, 99_500, 98_000]),
        ];
        run.ndr_pps = Some(run.search[0].ndr_pps);
        run.pdr_pps = Some(run.search[0].pdr_pps);
        record
    }

    /// A search over two sizes, the first with latency levels.
    pub(crate) fn sample_search_with_latency() -> RunRecord {
        let mut record = sample_bench();
        let RunResult::Bench(run) = &mut record.result else {
            unreachable!()
        };
        let mut histogram = Histogram::<u64>::new(3).unwrap();
        for i in 0..100u64 {
            histogram.record(80_000 + i * 100).unwrap();
        }
        let direction = run.agent[0].clone();
        let trial = |phase: &str, target: Option<u64>| Trial {
            phase: phase.into(),
            target_pps: target,
            duration_ns: 1_000_000_000,
            directions: vec![direction.clone()],
            loss_ratio: direction.loss_ratio(),
        };
        let level = |percent: u32| {
            let mut trial = trial("latency", Some(u64::from(percent) * 1000));
            trial.directions[0].latency = Some(ProbeLatency {
                timestamp_source: PROBE_TIMESTAMP_SOURCE.into(),
                probe_rate_pps: 1000,
                sent: 100,
                returned: 100,
                rtt: Latency::of(&histogram),
                histogram_v2_base64: histogram_base64(&histogram),
            });
            LatencyLevel {
                percent_of_pdr: percent,
                load_pps: u64::from(percent) * 1000,
                trial,
            }
        };
        let size = |size: u32, ndr: f64, latency: Vec<LatencyLevel>| SizeSearch {
            size,
            loss_ratio_goal: 0.005,
            ndr_pps: ndr,
            pdr_pps: ndr * 1.2,
            ndr_gbps: ndr * f64::from(size) * 8.0 / 1e9,
            pdr_gbps: ndr * 1.2 * f64::from(size) * 8.0 / 1e9,
            ndr: Spread::of(&[ndr - 8000.0, ndr, ndr + 8000.0]).unwrap(),
            pdr: Spread::of(&[ndr + 8000.0, ndr * 1.2, ndr * 1.5]).unwrap(),
            searches: vec![SearchRecord {
                max_offered_pps: 300_000.0,
                ndr_pps: crate::search::whole_pps(ndr),
                pdr_pps: crate::search::whole_pps(ndr * 1.2),
                converged: true,
                trials: vec![
                    trial("maximum", None),
                    trial("final", Some(crate::search::whole_pps(ndr))),
                ],
            }],
            latency,
        };
        run.search = vec![
            size(64, 100_000.0, [0, 10, 50, 90].map(level).into()),
            size(1514, 40_000.0, Vec::new()),
        ];
        run.ndr_pps = Some(100_000.0);
        run.pdr_pps = Some(120_000.0);
        record
    }

    #[test]
    fn a_search_saves_its_chart_and_a_histogram_per_latency_level() {
        let dir = tempfile::tempdir().unwrap();
        let record = sample_search_with_latency();
        let saved = record.save(dir.path()).unwrap();
        assert_eq!(RunRecord::load(&saved.json).unwrap(), record);
        let names: Vec<String> = saved
            .hgrm
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["0pct", "10pct", "50pct", "90pct"]
                .map(|level| format!("{}-64B-{level}-vm1-vm2.hgrm", record.stem()))
        );
        let hgrm = std::fs::read_to_string(&saved.hgrm[0]).unwrap();
        assert!(hgrm.contains("Total count    =          100]"), "{hgrm}");
        assert!(saved.search_svg.is_some_and(|p| p.exists()));
    }

    #[test]
    fn spread_is_median_min_max() {
        let spread = Spread::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(
            (spread.n, spread.median, spread.min, spread.max),
            (4, 2.5, 1.0, 10.0)
        );
        assert_eq!(Spread::of(&[5.0]).unwrap().median, 5.0);
        assert!(Spread::of(&[]).is_none());
        assert!(Spread::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn the_gate_passes_at_the_floor_and_fails_below_it() {
        let gate = Gate::check("ndr_pps", 95_000.0, 100_000.0, 0.05);
        assert!(gate.pass && (gate.floor - 95_000.0).abs() < 1e-6);
        assert!(!Gate::check("ndr_pps", 94_999.0, 100_000.0, 0.05).pass);
    }

    #[test]
    fn saved_run_reads_back_with_its_hgrm_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let record = sample_pingpong();
        let saved = record.save(dir.path()).unwrap();
        assert_eq!(RunRecord::load(&saved.json).unwrap(), record);
        assert_eq!(saved.hgrm.len(), 1);
        let hgrm = std::fs::read_to_string(&saved.hgrm[0]).unwrap();
        assert!(hgrm.contains("Total count    =         1001]"), "{hgrm}");
        assert!(std::fs::read_to_string(&saved.svg)
            .unwrap()
            .starts_with("<svg"));
    }

    #[test]
    fn bench_loss_is_accounted_only_when_counters_add_up() {
        let RunResult::Bench(run) = sample_bench().result else {
            unreachable!()
        };
        let mut direction = run.agent[0].clone();
        direction.account();
        assert_eq!(direction.unaccounted, 0);
        direction.link_drops -= 7;
        direction.account();
        assert_eq!(direction.unaccounted, 7);
    }
}
