//! `dpdkhost bench --pps`: rx on one side, tx on the other (both ways at once with
//! `--direction bi`); per direction the rates, Gbit/s, loss and where it happened, and a
//! per-second table; saved under results/.

use std::process::ExitCode;

use anyhow::{bail, Context as _};

use crate::cli::{BenchArgs, BenchBaseline, BenchDirectionArg};
use crate::commands::workload_common::{
    connect_pair, environment, print_json, save_and_report, started_at,
};
use crate::context::{self, Context};
use crate::drive::{self, BenchPlan};
use crate::results::ratio;
use crate::results::{BenchDirection, BenchRun, RunRecord, RunResult};
use crate::ssh;
use crate::ui::Spinner;

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

/// Runs `bench --pps`.
pub fn run(args: BenchArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    check_baseline(&args)?;
    let rt = context::runtime()?;
    rt.block_on(async {
        let (mut a, mut b) = connect_pair(ctx, &args.from, &args.to).await?;
        let environment = environment(ctx, &mut a).await?;
        let plan = BenchPlan {
            size: args.size,
            duration: args.duration,
            rate_pps: args.rate.unwrap_or(0),
            bidirectional: args.direction == BenchDirectionArg::Bi,
            probe_rate_pps: 0,
            probe_only: false,
        };
        let started_at = started_at();
        let spinner = Spinner::new(ctx.json);
        spinner.println(&format!(
            "bench {} {} {} for {:?}, {} bytes, rate {}",
            a.endpoint.name,
            if plan.bidirectional { "<->" } else { "->" },
            b.endpoint.name,
            plan.duration,
            plan.size,
            args.rate
                .map_or_else(|| "as fast as possible".to_owned(), |r| format!("{r} pps"))
        ));
        let directions = drive::bench(&mut a, &mut b, &plan, |vm, progress| {
            spinner.println(&format!(
                "  {vm} second {:>3}: tx {:>10} pps  rx {:>10} pps",
                progress.second, progress.tx_pps, progress.rx_pps
            ));
        })
        .await
        .with_context(|| format!("bench {} / {} failed", a.endpoint.name, b.endpoint.name))?;
        // A failed baseline still leaves the agent's run saved and shown; the command
        // then fails with the baseline's error.
        let mut baseline_error = None;
        let baseline = match args.baseline {
            None => Vec::new(),
            Some(BenchBaseline::Testpmd) => {
                let state = ctx.require_state()?;
                let ssh_to = |name: &str| -> anyhow::Result<crate::testpmd::SshFactory> {
                    let vm = state
                        .vm(name)
                        .with_context(|| format!("{name} is not in the state file"))?
                        .clone();
                    let (ctx, state) = (ctx.clone(), state.clone());
                    Ok(Box::new(move || ssh::command(&ctx, &state, &vm, true)))
                };
                let pair = crate::testpmd::Pair {
                    tx_ssh: ssh_to(&a.endpoint.name)?,
                    rx_ssh: ssh_to(&b.endpoint.name)?,
                    rx_udp: b.endpoint.udp_local.map(|port| {
                        std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port)
                    }),
                    tx: &mut a,
                    rx: &mut b,
                };
                let direction = crate::testpmd::bench(pair, plan.size, plan.duration, |step| {
                    spinner.println(step)
                })
                .await
                .context(
                    "testpmd baseline failed (the agents were asked to take their ports back)",
                );
                direction
                    .map_err(|error| baseline_error = Some(error))
                    .into_iter()
                    .collect()
            }
        };
        spinner.finish("bench done");
        let record = RunRecord {
            started_at,
            parameters: serde_json::json!({
                "from": a.endpoint.name, "to": b.endpoint.name, "size": args.size,
                "duration_ns": u64::try_from(args.duration.as_nanos()).unwrap_or(u64::MAX),
                "rate_pps": args.rate, "direction": if plan.bidirectional { "bi" } else { "uni" },
                "baseline": args.baseline.map(|_| "testpmd"),
            }),
            environment,
            result: RunResult::Bench(Box::new(BenchRun {
                direction: if plan.bidirectional { "bi" } else { "uni" }.into(),
                agent: directions.clone(),
                baseline: baseline.clone(),
                ..BenchRun::default()
            })),
        };
        let saved = save_and_report(&record, &args.results, ctx.json)?;
        if ctx.json {
            print_json(&record)?;
        } else {
            for direction in &directions {
                print_direction(direction);
            }
            for direction in &baseline {
                println!("baseline dpdk-testpmd txonly -> rxonly (same VMs and ports):");
                print_direction(direction);
                if let Some(agent) = directions
                    .iter()
                    .find(|d| d.from == direction.from && d.to == direction.to)
                {
                    println!(
                        "ratio agent/testpmd: tx={} rx={}",
                        ratio(agent.tx_pps, direction.tx_pps),
                        ratio(agent.rx_pps, direction.rx_pps)
                    );
                }
            }
            println!("saved {}", saved.json.display());
        }
        if let Some(error) = baseline_error {
            return Err(error);
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_direction(d: &BenchDirection) {
    println!(
        "vm{} -> vm{} ({} bytes, {:.1} s):",
        d.from,
        d.to,
        d.size,
        d.duration_ns as f64 / 1e9
    );
    println!(
        "  tx {:>12.0} pps   rx {:>12.0} pps   {:.3} Gbit/s received",
        d.tx_pps, d.rx_pps, d.rx_gbps
    );
    println!(
        "  sent {}  received {}  lost {} ({:.2}%)",
        d.tx_packets,
        d.rx_packets,
        d.lost(),
        if d.tx_packets == 0 {
            0.0
        } else {
            d.lost() as f64 * 100.0 / d.tx_packets as f64
        }
    );
    println!(
        "  where: link (host UDP socket) {}  imissed {}  rx_nombuf {}  ierrors {}  unaccounted {}   (tx ring full: {} packets refused by the driver, not counted in tx)",
        d.link_drops, d.imissed, d.rx_nombuf, d.ierrors, d.unaccounted, d.tx_ring_full
    );
    println!("  {:>6} {:>12} {:>12}", "second", "tx pps", "rx pps");
    for second in &d.per_second {
        println!(
            "  {:>6} {:>12} {:>12}",
            second.second, second.tx_pps, second.rx_pps
        );
    }
}
