//! The measurements `bench --pps` is made of, each from trials on the lab's two
//! agents: plain trials, NDR/PDR searches per frame size with latency levels, and
//! rounds against the testpmd baseline.

use std::time::Duration;

use anyhow::Context as _;

use crate::context::Context;
use crate::drive::{self, Agent, BenchPlan};
use crate::dut::DutSession;
use crate::results::{
    BaselineRound, BenchDirection, LatencyLevel, SearchRecord, SizeSearch, Spread, Trial,
};
use crate::search::{self, Phase, SearchParams, TrialMeasurement, TrialRunner};
use crate::ssh;
use crate::ui::Spinner;
use crate::units::nanos;

/// CSIT's latency levels, percent of PDR (0: the probes alone).
pub const LATENCY_LEVELS: [u32; 4] = [0, 10, 50, 90];

/// The two agents and what every trial shares.
pub struct Lab<'a> {
    /// Transmitter (both ways with `bidirectional`).
    pub a: &'a mut Agent,
    /// Receiver.
    pub b: &'a mut Agent,
    /// Both directions at once.
    pub bidirectional: bool,
    /// Where trial lines go.
    pub spinner: &'a Spinner,
    /// Print every second's rates as the trial runs (plain trials; a search's short
    /// trials print one line each).
    pub show_seconds: bool,
    /// Through a DUT: the application on `b`'s port, `a` the traffic generator.
    pub through: Option<&'a mut DutSession>,
}

/// A trial record from the directions a bench returned.
pub fn trial_of(
    phase: &str,
    target_pps: Option<u64>,
    duration: Duration,
    directions: Vec<BenchDirection>,
) -> Trial {
    let loss_ratio = directions
        .iter()
        .map(BenchDirection::loss_ratio)
        .fold(0.0, f64::max);
    Trial {
        phase: phase.to_owned(),
        target_pps,
        duration_ns: nanos(duration),
        directions,
        loss_ratio,
    }
}

impl Lab<'_> {
    /// One trial: the agents' bench, counters read after the sender stopped and the
    /// receiver drained (the agents answer only then).
    pub async fn trial(&mut self, phase: &str, plan: &BenchPlan) -> anyhow::Result<Trial> {
        let (spinner, show_seconds) = (self.spinner, self.show_seconds);
        let progress = |vm: &str, progress: &agent_proto::v1::BenchProgress| {
            if show_seconds {
                spinner.println(&format!(
                    "  {vm} second {:>3}: tx {:>10} pps  rx {:>10} pps",
                    progress.second, progress.tx_pps, progress.rx_pps
                ));
            }
        };
        let (a_name, b_name) = (self.a.endpoint.name.clone(), self.b.endpoint.name.clone());
        let directions = match self.through.as_deref_mut() {
            Some(dut) => vec![drive::bench_through(self.a, self.b, dut, plan, progress)
                .await
                .with_context(|| format!("bench {a_name} through {b_name} failed"))?],
            None => drive::bench(self.a, self.b, plan, progress)
                .await
                .with_context(|| format!("bench {a_name} / {b_name} failed"))?,
        };
        let trial = trial_of(phase, plan.target_pps(), plan.duration, directions);
        self.spinner.println(&super::print::trial_line(&trial));
        Ok(trial)
    }
}

/// The search's trials on the lab, at one frame size.
struct SearchTrials<'l, 'a> {
    lab: &'l mut Lab<'a>,
    size: u32,
    trials: Vec<Trial>,
}

impl TrialRunner for SearchTrials<'_, '_> {
    async fn trial(
        &mut self,
        phase: Phase,
        load_pps: Option<u64>,
        duration: Duration,
    ) -> anyhow::Result<TrialMeasurement> {
        let plan = BenchPlan {
            size: self.size,
            duration,
            rate_pps: load_pps.unwrap_or(0),
            bidirectional: self.lab.bidirectional,
            probe_rate_pps: 0,
            probe_only: false,
        };
        let name = match phase {
            Phase::Maximum => "maximum",
            Phase::Search => "search",
            Phase::Final => "final",
        };
        let trial = self.lab.trial(name, &plan).await?;
        // The offered load is what the sender reached; the lower direction's when
        // both send.
        let offered_pps = trial
            .directions
            .iter()
            .map(|d| {
                if d.offered_pps > 0.0 {
                    d.offered_pps
                } else {
                    d.tx_pps
                }
            })
            .fold(f64::INFINITY, f64::min);
        let measurement = TrialMeasurement {
            offered_pps: if offered_pps.is_finite() {
                offered_pps
            } else {
                0.0
            },
            sent: trial.directions.iter().map(|d| d.tx_packets).sum(),
            lost: trial.directions.iter().map(BenchDirection::lost).sum(),
            loss_ratio: trial.loss_ratio,
        };
        self.trials.push(trial);
        Ok(measurement)
    }
}

/// `--search` at one size: `repeats` searches, then the latency levels.
pub async fn search_size(
    lab: &mut Lab<'_>,
    size: u32,
    params: &SearchParams,
    repeats: u32,
    latency: Option<(u32, Duration)>,
) -> anyhow::Result<SizeSearch> {
    let mut searches = Vec::new();
    for repeat in 1..=repeats {
        lab.spinner.println(&format!(
            "search {size} B{}: NDR (no loss) and PDR (loss ratio <= {})",
            if repeats > 1 {
                format!(" ({repeat}/{repeats})")
            } else {
                String::new()
            },
            params.loss_ratio
        ));
        let mut runner = SearchTrials {
            lab,
            size,
            trials: Vec::new(),
        };
        let outcome = search::search(&mut runner, params).await?;
        searches.push(SearchRecord {
            max_offered_pps: outcome.max_offered_pps,
            ndr_pps: outcome.ndr_pps,
            pdr_pps: outcome.pdr_pps,
            converged: outcome.converged,
            trials: runner.trials,
        });
    }
    let spread = |pick: fn(&SearchRecord) -> u64| {
        let values: Vec<f64> = searches.iter().map(|s| pick(s) as f64).collect();
        Spread::of(&values).expect("at least one search")
    };
    let (ndr, pdr) = (spread(|s| s.ndr_pps), spread(|s| s.pdr_pps));
    let gbps = |pps: f64| pps * f64::from(size) * 8.0 / 1e9;
    let mut result = SizeSearch {
        size,
        loss_ratio_goal: params.loss_ratio,
        ndr_pps: ndr.median,
        pdr_pps: pdr.median,
        ndr_gbps: gbps(ndr.median),
        pdr_gbps: gbps(pdr.median),
        ndr,
        pdr,
        searches,
        latency: Vec::new(),
    };
    if let Some((probe_rate_pps, duration)) = latency {
        for percent in LATENCY_LEVELS {
            let load_pps = search::whole_pps((result.pdr_pps * f64::from(percent) / 100.0).round());
            if percent > 0 && load_pps == 0 {
                continue;
            }
            lab.spinner.println(&format!(
                "latency {size} B at {percent} % of PDR ({load_pps} pps), {probe_rate_pps} probes/s"
            ));
            let plan = BenchPlan {
                size,
                duration,
                rate_pps: load_pps,
                bidirectional: lab.bidirectional,
                probe_rate_pps,
                probe_only: load_pps == 0,
            };
            let trial = lab.trial("latency", &plan).await?;
            result.latency.push(LatencyLevel {
                percent_of_pdr: percent,
                load_pps,
                trial,
            });
        }
    }
    Ok(result)
}

/// The testpmd baseline: one direction, `rounds` rounds, the agent first in odd
/// rounds and testpmd first in even ones, so a drift over time (a guest settling)
/// favours neither.
pub async fn baseline_rounds(
    lab: &mut Lab<'_>,
    ctx: &Context,
    plan: &BenchPlan,
    rounds: u32,
) -> anyhow::Result<(Vec<Trial>, Vec<BaselineRound>)> {
    let state = ctx.require_state()?;
    let ssh_to = |name: &str| -> anyhow::Result<crate::testpmd::SshFactory> {
        let vm = state
            .vm(name)
            .with_context(|| format!("{name} is not in the state file"))?
            .clone();
        let (ctx, state) = (ctx.clone(), state.clone());
        Ok(Box::new(move || ssh::command(&ctx, &state, &vm, true)))
    };
    let (a_name, b_name) = (lab.a.endpoint.name.clone(), lab.b.endpoint.name.clone());
    let rx_udp = lab
        .b
        .endpoint
        .udp_local
        .map(|port| std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port));
    let mut trials = Vec::new();
    let mut out = Vec::new();
    for round in 1..=rounds {
        let agent_first = round % 2 == 1;
        lab.spinner.println(&format!(
            "round {round}/{rounds}: {} first",
            if agent_first { "agent" } else { "testpmd" }
        ));
        let mut agent_trial = None;
        let mut testpmd_direction = None;
        for tool_is_agent in [agent_first, !agent_first] {
            if tool_is_agent {
                agent_trial = Some(lab.trial("measure", plan).await?);
            } else {
                let pair = crate::testpmd::Pair {
                    tx_ssh: ssh_to(&a_name)?,
                    rx_ssh: ssh_to(&b_name)?,
                    rx_udp,
                    tx: lab.a,
                    rx: lab.b,
                };
                let spinner = lab.spinner;
                let direction = crate::testpmd::bench(pair, plan.size, plan.duration, |step| {
                    spinner.println(step)
                })
                .await
                .context(
                    "testpmd baseline failed (the agents were asked to take their ports back)",
                )?;
                lab.spinner
                    .println(&super::print::rate_summary("testpmd", &direction));
                testpmd_direction = Some(direction);
            }
        }
        let agent_trial = agent_trial.expect("the agent ran this round");
        let testpmd = testpmd_direction.expect("testpmd ran this round");
        let agent = agent_trial.directions[0].clone();
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        out.push(BaselineRound {
            round,
            first: if agent_first { "agent" } else { "testpmd" }.to_owned(),
            tx_ratio: ratio(agent.tx_pps, testpmd.tx_pps),
            rx_ratio: ratio(agent.rx_pps, testpmd.rx_pps),
            agent,
            testpmd,
        });
        trials.push(agent_trial);
    }
    Ok((trials, out))
}
