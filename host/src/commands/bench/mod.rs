//! `dpdkhost bench --pps`: rx on one side, tx on the other (both ways at once with
//! `--direction bi`); per direction the rates, Gbit/s, loss and where it happened, and a
//! per-second table. `--trials` repeats it, `--search` finds NDR and PDR per frame size
//! (with `--latency`, round trips at levels of the PDR), `--baseline testpmd` alternates
//! with dpdk-testpmd over rounds, `--expect-pps` gates on the result. Saved under
//! results/.

mod measure;
mod print;

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::bail;

use crate::cli::{BenchArgs, BenchBaseline, BenchDirectionArg};
use crate::commands::workload_common::{
    connect_workload, environment, print_json, save_and_report, started_at,
};
use crate::context::{self, Context};
use crate::drive::BenchPlan;
use crate::dut::DutSession;
use crate::results::{BenchRun, Gate, RunRecord, RunResult, Spread};
use crate::search::SearchParams;
use crate::ui::Spinner;
use crate::units::nanos;
use measure::Lab;

/// Refuses combinations a baseline cannot measure, before anything runs.
pub fn check_baseline(args: &BenchArgs) -> anyhow::Result<()> {
    if args.baseline == Some(BenchBaseline::Testpmd) && args.direction == BenchDirectionArg::Bi {
        bail!(
            "--baseline testpmd measures one direction only: testpmd's txonly engine does not \
             receive, so it cannot run the workload of --direction bi (both VMs sending and \
             receiving at once); use --direction uni (the default) with --baseline testpmd, \
             or --direction bi without a baseline"
        );
    }
    if args.baseline.is_some() && args.search {
        bail!(
            "--baseline testpmd cannot run with --search: the search offers chosen loads, and \
             testpmd's txonly engine has no rate limit; run the baseline without --search"
        );
    }
    if args.baseline.is_some() && args.trials > 1 {
        bail!(
            "--baseline testpmd repeats by --rounds (agent and testpmd alternating), not by \
             --trials; drop --trials {} and give --rounds {}",
            args.trials,
            args.trials
        );
    }
    if args.baseline.is_some() && args.latency {
        bail!("--latency cannot run with --baseline testpmd: testpmd does not return the agent's probes");
    }
    if args.search {
        if let Some(rate) = args.rate {
            bail!(
                "--rate {rate} cannot be given with --search: the search chooses the loads \
                 (from --min-rate to the sender's maximum)"
            );
        }
        search_params(args).validate()?;
    }
    let sizes = args.frame_sizes().len();
    if args.expect_pps.is_some() && sizes > 1 {
        bail!(
            "--expect-pps gates on one rate, but --sizes gives {sizes} sizes: gate one size at a \
             time (--size N, or --sizes N)"
        );
    }
    if args.baseline == Some(BenchBaseline::Testpmd) {
        if let Some(rate) = args.rate {
            bail!(
                "--baseline testpmd runs unpaced: testpmd's txonly engine has no rate limit, so \
                 a baseline next to --rate {rate} would compare different loads; drop --rate \
                 to compare both at their maximum, or drop --baseline to run paced"
            );
        }
    }
    Ok(())
}

fn search_params(args: &BenchArgs) -> SearchParams {
    SearchParams {
        loss_ratio: args.loss_ratio,
        precision: args.precision,
        min_load_pps: args.min_rate,
        trial: args.trial_duration,
        final_trial: args.final_trial,
        max_trials: args.max_trials,
    }
}

/// Runs `bench --pps`.
pub fn run(args: BenchArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    check_baseline(&args)?;
    let rt = context::runtime()?;
    rt.block_on(async {
        let (mut a, mut b, dut_vm) =
            connect_workload(ctx, &args.from, &args.to, args.through.as_deref()).await?;
        let environment = environment(ctx, &mut a).await?;
        let bidirectional = args.direction == BenchDirectionArg::Bi;
        let plan = BenchPlan {
            size: args.size,
            duration: args.duration,
            rate_pps: args.rate.unwrap_or(0),
            bidirectional,
            probe_rate_pps: if args.latency { args.probe_rate } else { 0 },
            probe_only: false,
        };
        let started_at = started_at();
        let spinner = Spinner::new(ctx.json);
        spinner.println(&print::headline(&args, &a.endpoint.name, &b.endpoint.name));
        let mut dut = match &dut_vm {
            Some(vm) => Some(
                DutSession::start(ctx, vm, &mut b, &mut a, &args.app, |step| {
                    spinner.println(step)
                })
                .await?,
            ),
            None => None,
        };
        let mut lab = Lab {
            a: &mut a,
            b: &mut b,
            bidirectional,
            spinner: &spinner,
            show_seconds: !args.search,
            through: dut.as_mut(),
        };
        let measured = measure(&args, ctx, &mut lab, &plan).await;
        let dut_record = match dut {
            Some(session) => {
                let record = session.finish(&mut b).await;
                spinner.println(&record.stopped_line());
                Some(record)
            }
            None => None,
        };
        let mut run = measured?;
        run.dut = dut_record;
        run.agent = run
            .trials
            .iter()
            .flat_map(|t| t.directions.iter().cloned())
            .collect();
        let mut by_link: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for direction in &run.agent {
            by_link
                .entry(direction.link_label())
                .or_default()
                .push(direction.rx_pps);
        }
        run.rx_pps_spread = by_link
            .into_iter()
            .filter_map(|(link, values)| Spread::of(&values).map(|s| (link, s)))
            .collect();
        if let Some(expected) = args.expect_pps {
            run.gate = Some(match run.ndr_pps {
                Some(ndr) => Gate::check("ndr_pps", ndr, expected, args.tolerance),
                None => {
                    let measured = run
                        .rx_pps_spread
                        .values()
                        .map(|s| s.median)
                        .fold(f64::INFINITY, f64::min);
                    Gate::check("rx_pps", measured, expected, args.tolerance)
                }
            });
        }
        spinner.finish("bench done");
        let record = RunRecord {
            started_at,
            parameters: serde_json::json!({
                "from": a.endpoint.name, "to": b.endpoint.name, "size": args.size,
                "through": args.through.as_ref().map(|_| &b.endpoint.name),
                "app": args.through.as_ref().map(|_| &args.app),
                "duration_ns": nanos(args.duration),
                "rate_pps": args.rate, "direction": run.direction,
                "baseline": args.baseline.map(|_| "testpmd"),
                "rounds": args.baseline.map(|_| args.rounds),
                "trials": args.trials,
                "search": args.search.then(|| serde_json::json!({
                    "loss_ratio": args.loss_ratio, "precision": args.precision,
                    "trial_duration_ns": nanos(args.trial_duration),
                    "final_trial_ns": nanos(args.final_trial),
                    "max_trials": args.max_trials, "min_rate_pps": args.min_rate,
                    "sizes": args.frame_sizes(),
                })),
                "latency": args.latency.then(|| serde_json::json!({
                    "probe_rate_pps": args.probe_rate,
                    "level_duration_ns": nanos(args.latency_duration),
                })),
                "expect_pps": args.expect_pps,
                "tolerance": args.expect_pps.map(|_| args.tolerance),
            }),
            environment,
            result: RunResult::Bench(Box::new(run)),
        };
        let saved = save_and_report(&record, &args.results, ctx.json)?;
        let RunResult::Bench(run) = &record.result else {
            unreachable!("built as a bench above")
        };
        if ctx.json {
            print_json(&record)?;
        } else {
            print::run(run);
            println!("saved {}", saved.json.display());
        }
        match &run.gate {
            Some(gate) if !gate.pass => {
                eprintln!("{}", print::gate_line(gate));
                Ok(ExitCode::FAILURE)
            }
            Some(gate) => {
                if !ctx.json {
                    println!("{}", print::gate_line(gate));
                }
                Ok(ExitCode::SUCCESS)
            }
            None => Ok(ExitCode::SUCCESS),
        }
    })
}

/// The measurement `args` asks for, on `lab`: a search, baseline rounds or plain
/// trials.
async fn measure(
    args: &BenchArgs,
    ctx: &Context,
    lab: &mut Lab<'_>,
    plan: &BenchPlan,
) -> anyhow::Result<BenchRun> {
    let mut run = BenchRun {
        direction: if plan.bidirectional { "bi" } else { "uni" }.into(),
        ..BenchRun::default()
    };
    let spinner = lab.spinner;
    if args.search {
        let params = search_params(args);
        let latency = args
            .latency
            .then_some((args.probe_rate, args.latency_duration));
        for size in args.frame_sizes() {
            run.search
                .push(measure::search_size(lab, size, &params, args.trials, latency).await?);
        }
        run.ndr_pps = run.search.first().map(|s| s.ndr_pps);
        run.pdr_pps = run.search.first().map(|s| s.pdr_pps);
    } else if args.baseline == Some(BenchBaseline::Testpmd) {
        let (trials, rounds) = measure::baseline_rounds(lab, ctx, plan, args.rounds).await?;
        let median = |pick: fn(&crate::results::BaselineRound) -> f64| {
            let values: Vec<f64> = rounds.iter().map(pick).filter(|v| v.is_finite()).collect();
            Spread::of(&values).map(|s| s.median)
        };
        run.median_tx_ratio = median(|r| r.tx_ratio);
        run.median_rx_ratio = median(|r| r.rx_ratio);
        run.baseline = rounds.iter().map(|r| r.testpmd.clone()).collect();
        run.rounds = rounds;
        run.trials = trials;
    } else {
        for trial in 1..=args.trials {
            if args.trials > 1 {
                spinner.println(&format!("trial {trial}/{}", args.trials));
            }
            run.trials.push(lab.trial("measure", plan).await?);
        }
    }
    Ok(run)
}
