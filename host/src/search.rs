//! The throughput search: the highest load a link forwards with no loss (NDR, RFC 2544
//! §26.1 throughput) and with a loss ratio at most a goal (PDR, 0.5 % in FD.io CSIT),
//! found by trials at chosen loads, in the spirit of RFC 9971 (MLRsearch): one trial at
//! the sender's maximum bounds the interval, short trials halve it until it is narrower
//! than the precision, and a long final trial at the candidate confirms it; a candidate
//! that fails its final trial becomes the new upper bound and the search goes on below
//! it. PDR is searched first, then NDR inside what the PDR trials left; both goals read
//! the same trials.
//!
//! The trials themselves are the caller's ([`TrialRunner`]): on the lab, a bench whose
//! counters are read after the sender stopped and the receiver drained. A simulated link
//! runs them in the tests.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a trial is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// As fast as the sender can: the upper end of every search.
    Maximum,
    /// A short trial narrowing the interval.
    Search,
    /// The long trial that confirms a result.
    Final,
}

/// What a trial measured, as the search needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrialMeasurement {
    /// The load the sender reached, packets per second (per direction; the lower of
    /// two directions).
    pub offered_pps: f64,
    /// Packets sent (all directions).
    pub sent: u64,
    /// Packets sent and not received (all directions).
    pub lost: u64,
    /// The worst direction's loss ratio.
    pub loss_ratio: f64,
}

/// Runs one trial: offers `load_pps` (`None`: as fast as the sender can) for
/// `duration`, and returns once the counters are final.
pub trait TrialRunner {
    /// One trial.
    fn trial(
        &mut self,
        phase: Phase,
        load_pps: Option<u64>,
        duration: Duration,
    ) -> impl std::future::Future<Output = anyhow::Result<TrialMeasurement>>;
}

/// How the search runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    /// The PDR's goal: the highest loss ratio that still passes (0 < goal < 1).
    pub loss_ratio: f64,
    /// The search stops narrowing when the interval is at most this share of its upper
    /// end (0 < precision < 1).
    pub precision: f64,
    /// Loads below this are not tried: an NDR under it is reported as 0.
    pub min_load_pps: u64,
    /// Duration of the maximum and search trials.
    pub trial: Duration,
    /// Duration of the final trials.
    pub final_trial: Duration,
    /// At most this many trials in one search (maximum and finals included).
    pub max_trials: u32,
}

/// Why a search could not run.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A parameter is out of range.
    #[error("{name} must be {range}, got {value}")]
    Param {
        /// The option.
        name: &'static str,
        /// The accepted range.
        range: &'static str,
        /// What was given.
        value: String,
    },
}

impl SearchParams {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), SearchError> {
        let param = |name, range, value: String| Err(SearchError::Param { name, range, value });
        if !(self.loss_ratio > 0.0 && self.loss_ratio < 1.0) {
            return param(
                "--loss-ratio",
                "above 0 and below 1 (e.g. 0.005 for CSIT's PDR)",
                self.loss_ratio.to_string(),
            );
        }
        if !(self.precision > 0.0 && self.precision < 1.0) {
            return param(
                "--precision",
                "above 0 and below 1 (a share of the upper bound, e.g. 0.02)",
                self.precision.to_string(),
            );
        }
        if self.max_trials < 3 {
            return param("--max-trials", "at least 3", self.max_trials.to_string());
        }
        Ok(())
    }
}

/// One trial the search ran.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchStep {
    /// What it was for.
    pub phase: Phase,
    /// The load asked for (`None`: the maximum).
    pub load_pps: Option<u64>,
    /// How long it sent.
    pub duration: Duration,
    /// What it measured.
    pub measurement: TrialMeasurement,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOutcome {
    /// The sender's rate in the maximum trial.
    pub max_offered_pps: f64,
    /// The highest load with no loss in its final trial (0: none at or above the
    /// minimum load).
    pub ndr_pps: u64,
    /// The highest load whose final trial's loss ratio is within the goal.
    pub pdr_pps: u64,
    /// False when the trial budget ran out before both results were confirmed: then
    /// the results are the highest loads that passed a final trial so far (or 0).
    pub converged: bool,
    /// Every trial, in order.
    pub steps: Vec<SearchStep>,
}

/// Whether a trial meets a goal: no loss at all for NDR, the ratio for PDR.
fn passes(measurement: &TrialMeasurement, goal: Goal) -> bool {
    match goal {
        Goal::NoLoss => measurement.lost == 0,
        Goal::Ratio(ratio) => measurement.loss_ratio <= ratio,
    }
}

#[derive(Debug, Clone, Copy)]
enum Goal {
    NoLoss,
    Ratio(f64),
}

struct Search<'r, R> {
    runner: &'r mut R,
    params: SearchParams,
    max_load: u64,
    steps: Vec<SearchStep>,
}

impl<R: TrialRunner> Search<'_, R> {
    fn budget_left(&self) -> bool {
        u32::try_from(self.steps.len()).is_ok_and(|n| n < self.params.max_trials)
    }

    /// The load a step stands for: what was asked, or the maximum.
    fn load_of(&self, step: &SearchStep) -> u64 {
        step.load_pps.unwrap_or(self.max_load)
    }

    async fn run(&mut self, phase: Phase, load: u64) -> anyhow::Result<()> {
        let duration = match phase {
            Phase::Final => self.params.final_trial,
            Phase::Maximum | Phase::Search => self.params.trial,
        };
        let load_pps = (load < self.max_load).then_some(load);
        let measurement = self.runner.trial(phase, load_pps, duration).await?;
        tracing::info!(?phase, load, ?measurement, "trial");
        self.steps.push(SearchStep {
            phase,
            load_pps,
            duration,
            measurement,
        });
        Ok(())
    }

    /// The loads of the trials that passed `goal` (`passed`) or failed it, of the final
    /// trials only with `finals_only`.
    fn loads(&self, goal: Goal, passed: bool, finals_only: bool) -> impl Iterator<Item = u64> + '_ {
        self.steps
            .iter()
            .filter(move |step| {
                passes(&step.measurement, goal) == passed
                    && (!finals_only || step.phase == Phase::Final)
            })
            .map(|step| self.load_of(step))
    }

    /// The lowest load any trial failed `goal` at, at most `ceiling`.
    fn lowest_failure(&self, goal: Goal, ceiling: u64) -> Option<u64> {
        self.loads(goal, false, false)
            .filter(|&load| load <= ceiling)
            .min()
    }

    /// The highest load below `upper` that passed `goal` (in a final trial with
    /// `finals_only`).
    fn highest_pass_below(&self, goal: Goal, upper: u64, finals_only: bool) -> Option<u64> {
        self.loads(goal, true, finals_only)
            .filter(|&load| load < upper)
            .max()
    }

    /// Whether a final trial at `load` passed `goal`.
    fn confirmed(&self, goal: Goal, load: u64) -> bool {
        self.loads(goal, true, true).any(|passed| passed == load)
    }

    /// The highest load at most `ceiling` a final trial confirmed for `goal` (0: none).
    fn best_confirmed(&self, goal: Goal, ceiling: u64) -> u64 {
        self.highest_pass_below(goal, ceiling.saturating_add(1), true)
            .unwrap_or(0)
    }

    /// The highest confirmed load for `goal` at most `ceiling`, and whether the search
    /// for it ended within the budget.
    ///
    /// Short trials narrow the interval until a final trial fails: then the link loses
    /// over the long trial what it did not over the short ones, so short passes no
    /// longer bound anything and the search goes on with final trials only, stepping
    /// down from the failed load by twice the precision, then four times, ... until one
    /// passes, and halving between that and the lowest failure.
    async fn find(&mut self, goal: Goal, ceiling: u64) -> anyhow::Result<(u64, bool)> {
        let min = self.params.min_load_pps;
        let mut long_only = false;
        let mut failed_finals = 0u32;
        loop {
            let (mut lo, mut hi) = match self.lowest_failure(goal, ceiling) {
                None => (ceiling, None),
                Some(fail) => match self.highest_pass_below(goal, fail, long_only) {
                    Some(pass) => (pass.max(min), Some(fail)),
                    None if long_only => {
                        let step =
                            self.params.precision * f64::from(2u32.saturating_pow(failed_finals));
                        let below = whole_pps(fail as f64 * (1.0 - step.min(1.0)));
                        (below.max(min).min(fail.saturating_sub(1)), Some(fail))
                    }
                    None => (min, Some(fail)),
                },
            };
            let narrowing = if long_only {
                Phase::Final
            } else {
                Phase::Search
            };
            // Step-down candidates are tried before narrowing around them.
            let untested_step_down = long_only && !self.confirmed(goal, lo) && lo > min;
            while let (Some(fail), false) = (hi, untested_step_down) {
                if fail <= lo || (fail - lo) as f64 <= self.params.precision * fail as f64 {
                    break;
                }
                if !self.budget_left() {
                    return Ok((self.best_confirmed(goal, ceiling), false));
                }
                let mid = lo + (fail - lo) / 2;
                self.run(narrowing, mid).await?;
                if passes(&self.steps.last().expect("just ran").measurement, goal) {
                    lo = mid;
                } else {
                    hi = Some(mid);
                }
            }
            if lo < min || lo == 0 || hi.is_some_and(|fail| fail <= lo) {
                return Ok((0, true));
            }
            if !self.confirmed(goal, lo) {
                if !self.budget_left() {
                    return Ok((self.best_confirmed(goal, ceiling), false));
                }
                self.run(Phase::Final, lo).await?;
            }
            if self.confirmed(goal, lo) && !untested_step_down {
                return Ok((lo, true));
            }
            if !self.confirmed(goal, lo) {
                if lo <= min {
                    return Ok((0, true));
                }
                long_only = true;
                failed_finals += 1;
            }
        }
    }
}

/// `value` rounded down to a whole count (packets, packets per second): a float's `as`
/// cast does exactly that, and saturates (negative or NaN to 0, past `u64::MAX` to it),
/// which is right for a load.
#[allow(clippy::cast_possible_truncation)]
pub fn whole_pps(value: f64) -> u64 {
    value as u64
}

/// Finds NDR and PDR with `runner`'s trials.
pub async fn search<R: TrialRunner>(
    runner: &mut R,
    params: &SearchParams,
) -> anyhow::Result<SearchOutcome> {
    params.validate()?;
    let maximum = runner.trial(Phase::Maximum, None, params.trial).await?;
    let max_load = whole_pps(maximum.offered_pps);
    let mut search = Search {
        runner,
        params: params.clone(),
        max_load,
        steps: vec![SearchStep {
            phase: Phase::Maximum,
            load_pps: None,
            duration: params.trial,
            measurement: maximum,
        }],
    };
    if max_load < params.min_load_pps || max_load == 0 {
        return Ok(SearchOutcome {
            max_offered_pps: maximum.offered_pps,
            ndr_pps: 0,
            pdr_pps: 0,
            converged: true,
            steps: search.steps,
        });
    }
    let (pdr, pdr_done) = search
        .find(Goal::Ratio(params.loss_ratio), max_load)
        .await?;
    // No loss implies the PDR's goal, so NDR is at most PDR.
    let (ndr, ndr_done) = if pdr == 0 {
        (0, pdr_done)
    } else {
        search.find(Goal::NoLoss, pdr).await?
    };
    Ok(SearchOutcome {
        max_offered_pps: maximum.offered_pps,
        ndr_pps: ndr,
        pdr_pps: pdr,
        converged: pdr_done && ndr_done,
        steps: search.steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A link that forwards up to `capacity` packets per second and drops the excess,
    /// behind a sender that reaches at most `sender_max`; `long_capacity` is what it
    /// sustains over a final trial (buffers hide a little overload in short ones);
    /// `noise` is the chance that a trial near capacity loses a few packets anyway.
    struct SimulatedLink {
        capacity: f64,
        long_capacity: f64,
        sender_max: f64,
        noise: f64,
        rng: rand::rngs::StdRng,
        trials: Vec<(Phase, Option<u64>, Duration)>,
    }

    impl SimulatedLink {
        fn new(capacity: f64, sender_max: f64) -> Self {
            Self {
                capacity,
                long_capacity: capacity,
                sender_max,
                noise: 0.0,
                rng: rand::rngs::StdRng::seed_from_u64(7),
                trials: Vec::new(),
            }
        }
    }

    impl TrialRunner for SimulatedLink {
        async fn trial(
            &mut self,
            phase: Phase,
            load_pps: Option<u64>,
            duration: Duration,
        ) -> anyhow::Result<TrialMeasurement> {
            self.trials.push((phase, load_pps, duration));
            // Pacing within 0.5 %, like the agent's.
            let jitter = 1.0 + self.rng.gen_range(-0.005..0.005);
            let offered = load_pps.map_or(self.sender_max, |l| (l as f64).min(self.sender_max));
            let offered = offered * if load_pps.is_some() { jitter } else { 1.0 };
            let capacity = if phase == Phase::Final {
                self.long_capacity
            } else {
                self.capacity
            };
            let secs = duration.as_secs_f64();
            let sent = whole_pps((offered * secs).round());
            let mut lost = whole_pps(((offered - capacity).max(0.0) * secs).round());
            if offered > 0.9 * capacity && self.rng.gen_bool(self.noise) {
                lost += self.rng.gen_range(1..5);
            }
            let lost = lost.min(sent);
            Ok(TrialMeasurement {
                offered_pps: offered,
                sent,
                lost,
                loss_ratio: if sent == 0 {
                    0.0
                } else {
                    lost as f64 / sent as f64
                },
            })
        }
    }

    fn params() -> SearchParams {
        SearchParams {
            loss_ratio: 0.005,
            precision: 0.02,
            min_load_pps: 100,
            trial: Duration::from_secs(1),
            final_trial: Duration::from_secs(10),
            max_trials: 40,
        }
    }

    fn run(link: &mut SimulatedLink, params: &SearchParams) -> SearchOutcome {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(search(link, params))
            .unwrap()
    }

    /// Each result was confirmed by a passing final trial at exactly that load, and
    /// every load the search tried is a step.
    fn assert_confirmed(outcome: &SearchOutcome, link: &SimulatedLink) {
        assert_eq!(outcome.steps.len(), link.trials.len());
        for (result, no_loss) in [(outcome.ndr_pps, true), (outcome.pdr_pps, false)] {
            if result == 0 {
                continue;
            }
            let max = whole_pps(outcome.max_offered_pps);
            assert!(
                outcome.steps.iter().any(|s| s.phase == Phase::Final
                    && s.load_pps.unwrap_or(max) == result
                    && s.duration == Duration::from_secs(10)
                    && if no_loss {
                        s.measurement.lost == 0
                    } else {
                        s.measurement.loss_ratio <= 0.005
                    }),
                "{result} has no passing final trial: {:#?}",
                outcome.steps
            );
        }
    }

    #[test]
    fn a_lossy_link_gives_ndr_and_pdr_within_the_precision() {
        let mut link = SimulatedLink::new(50_000.0, 120_000.0);
        let outcome = run(&mut link, &params());
        assert!(outcome.converged);
        // The pacing jitter (±0.5 %) blurs the edge by as much.
        let ndr = outcome.ndr_pps as f64;
        assert!((50_000.0 * 0.975..=50_000.0).contains(&ndr), "{outcome:#?}");
        let pdr_edge = 50_000.0 / (1.0 - 0.005);
        let pdr = outcome.pdr_pps as f64;
        assert!(
            (pdr_edge * 0.975..=pdr_edge * 1.006).contains(&pdr),
            "{outcome:#?}"
        );
        assert!(outcome.pdr_pps >= outcome.ndr_pps);
        // Halving 120k down to 2 % takes about six trials per goal, plus the maximum
        // and two finals.
        assert!(outcome.steps.len() <= 16, "{} trials", outcome.steps.len());
        assert_confirmed(&outcome, &link);
    }

    #[test]
    fn a_link_faster_than_the_sender_gives_the_senders_maximum_for_both() {
        let mut link = SimulatedLink::new(1e6, 80_000.0);
        let outcome = run(&mut link, &params());
        assert_eq!(outcome.ndr_pps, 80_000);
        assert_eq!(outcome.pdr_pps, 80_000);
        // The maximum, then one final trial that confirms both goals.
        assert_eq!(outcome.steps.len(), 2, "{outcome:#?}");
        assert_confirmed(&outcome, &link);
    }

    #[test]
    fn a_candidate_that_fails_its_final_trial_is_searched_below() {
        let mut link = SimulatedLink::new(50_000.0, 120_000.0);
        link.long_capacity = 40_000.0;
        let outcome = run(&mut link, &params());
        assert!(outcome.converged);
        let ndr = outcome.ndr_pps as f64;
        assert!((40_000.0 * 0.97..=40_000.0).contains(&ndr), "{outcome:#?}");
        assert!(
            outcome
                .steps
                .iter()
                .any(|s| s.phase == Phase::Final && s.measurement.lost > 0),
            "a final trial failed on the way"
        );
        assert_confirmed(&outcome, &link);
    }

    #[test]
    fn noise_near_capacity_lowers_ndr_but_every_result_is_confirmed() {
        for seed in 0..20 {
            let mut link = SimulatedLink::new(50_000.0, 120_000.0);
            link.noise = 0.3;
            link.rng = rand::rngs::StdRng::seed_from_u64(seed);
            let outcome = run(&mut link, &params());
            assert!(outcome.ndr_pps > 0, "seed {seed}: {outcome:#?}");
            assert!(outcome.ndr_pps as f64 <= 50_000.0 * 1.005);
            assert!(outcome.pdr_pps >= outcome.ndr_pps, "seed {seed}");
            assert!(outcome.steps.len() <= 40);
            assert_confirmed(&outcome, &link);
        }
    }

    #[test]
    fn a_link_that_loses_everything_gives_zero() {
        let mut link = SimulatedLink::new(0.0, 120_000.0);
        let outcome = run(&mut link, &params());
        assert_eq!((outcome.ndr_pps, outcome.pdr_pps), (0, 0));
        assert!(outcome.converged);
        // Halving from 120k to the 100 pps floor, no final trial passes.
        assert!(outcome.steps.len() <= 40, "{}", outcome.steps.len());
    }

    #[test]
    fn the_trial_budget_bounds_the_search() {
        let mut link = SimulatedLink::new(50_000.0, 120_000.0);
        let outcome = run(
            &mut link,
            &SearchParams {
                max_trials: 5,
                ..params()
            },
        );
        assert!(!outcome.converged);
        assert!(outcome.steps.len() <= 5);
    }

    #[test]
    fn parameters_out_of_range_name_the_option() {
        for (bad, name) in [
            (
                SearchParams {
                    loss_ratio: 0.0,
                    ..params()
                },
                "--loss-ratio",
            ),
            (
                SearchParams {
                    loss_ratio: 1.0,
                    ..params()
                },
                "--loss-ratio",
            ),
            (
                SearchParams {
                    precision: 0.0,
                    ..params()
                },
                "--precision",
            ),
            (
                SearchParams {
                    max_trials: 2,
                    ..params()
                },
                "--max-trials",
            ),
        ] {
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.starts_with(name), "{err}");
        }
    }
}
