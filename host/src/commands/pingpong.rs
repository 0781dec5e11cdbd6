//! `dpdkhost run pingpong`: the reflector on one VM, the initiator on another, live
//! progress, then the round-trip percentiles, loss and reordering; saved under results/.

use crate::units::nanos;
use std::process::ExitCode;

use agent_proto::v1;
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{PingPongArgs, PingPongBaseline};
use crate::commands::workload_common::{
    connect_workload, environment, print_json, save_and_report, started_at,
};
use crate::context::{self, Context};
use crate::drive;
use crate::dut::DutSession;
use crate::results::ratio;
use crate::results::{chart, PingPongRun, RunRecord, RunResult};

/// Runs `run pingpong`.
pub fn run(args: PingPongArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let rt = context::runtime()?;
    rt.block_on(async {
        let (mut from, mut to, dut_vm) =
            connect_workload(ctx, &args.from, &args.to, args.through.as_deref()).await?;
        let request = v1::PingPongRequest {
            peer_ip: to.endpoint.data_ip.to_string(),
            count: args.count,
            size: args.size,
            interval_ns: args.interval.map(nanos).unwrap_or(0),
            window: args.window.unwrap_or(1),
            timeout_ns: nanos(args.timeout),
            ..v1::PingPongRequest::default()
        };
        let environment = environment(ctx, &mut from).await?;
        let started_at = started_at();
        let mut dut = match &dut_vm {
            Some(vm) => Some(
                DutSession::start(ctx, vm, &mut to, &mut from, &args.app, |step| {
                    if !ctx.json {
                        eprintln!("{step}");
                    }
                })
                .await?,
            ),
            None => None,
        };
        let bar = progress_bar(ctx.json, args.count);
        let progress = |progress: &v1::PingPongProgress| {
            bar.set_position(progress.received + progress.lost);
            bar.set_message(format!(
                "sent {} received {} lost {} last rtt {:.1} us",
                progress.sent,
                progress.received,
                progress.lost,
                progress.last_rtt_ns as f64 / 1000.0
            ));
        };
        let side = match dut.as_mut() {
            Some(dut) => drive::pingpong_through(&mut from, dut, request.clone(), progress).await,
            None => drive::pingpong(&mut from, &mut to, request.clone(), progress)
                .await
                .map_err(anyhow::Error::from),
        };
        bar.finish_and_clear();
        let dut_record = match dut {
            Some(session) => {
                let record = session.finish(&mut to).await;
                if !ctx.json {
                    eprintln!("{}", record.stopped_line());
                }
                Some(record)
            }
            None => None,
        };
        let path = match &dut_record {
            Some(_) => format!(
                "{} -> {} (DUT) -> {}",
                from.endpoint.name, to.endpoint.name, from.endpoint.name
            ),
            None => format!("{} -> {}", from.endpoint.name, to.endpoint.name),
        };
        let side = side.with_context(|| format!("ping-pong {path} failed"))?;
        // A failed baseline still leaves the agent's run saved and shown; the command
        // then fails with the baseline's error.
        let mut baseline_error = None;
        let baseline = match args.baseline {
            None => None,
            Some(PingPongBaseline::Kernel) => {
                let bar = progress_bar(ctx.json, args.count);
                bar.set_message("kernel baseline: handing the NICs to virtio_net");
                let kernel = drive::pingpong_kernel(&mut from, &mut to, request, |progress| {
                    bar.set_position(progress.received + progress.lost);
                    bar.set_message(format!(
                        "kernel: sent {} received {} lost {}",
                        progress.sent, progress.received, progress.lost
                    ));
                })
                .await
                .with_context(|| {
                    format!(
                        "kernel baseline ping-pong {} -> {} failed",
                        from.endpoint.name, to.endpoint.name
                    )
                });
                bar.finish_and_clear();
                kernel.map_err(|error| baseline_error = Some(error)).ok()
            }
        };
        let record = RunRecord {
            started_at,
            parameters: serde_json::json!({
                "from": from.endpoint.name, "to": to.endpoint.name, "count": args.count,
                "size": args.size, "interval_ns": args.interval.map(nanos),
                "window": args.window.unwrap_or(1), "timeout_ns": nanos(args.timeout),
                "baseline": args.baseline.map(|_| "kernel"),
                "through": args.through.as_ref().map(|_| &to.endpoint.name),
                "app": args.through.as_ref().map(|_| &args.app),
            }),
            environment,
            result: RunResult::Pingpong(Box::new(PingPongRun {
                from: u32::from(from.endpoint.index),
                to: u32::from(to.endpoint.index),
                agent: side.clone(),
                baseline: baseline.clone(),
                through: dut_record.as_ref().map(|record| record.vm),
                dut: dut_record,
            })),
        };
        let saved = save_and_report(&record, &args.results, ctx.json)?;
        if ctx.json {
            print_json(&record)?;
        } else {
            println!(
                "ping-pong {path} ({} packets of {} bytes, {})",
                side.sent,
                side.size,
                match args.interval {
                    Some(gap) => format!("one every {gap:?}"),
                    None => format!("window {}", args.window.unwrap_or(1)),
                }
            );
            println!(
                "  sent {}  received {}  lost {}  duplicates {}  reordered {}  in {:.2} s",
                side.sent,
                side.received,
                side.lost,
                side.duplicates,
                side.reordered,
                side.elapsed_ns as f64 / 1e9
            );
            println!("  {}", chart::latency_line("round trip", &side.rtt));
            if let Some(kernel) = &baseline {
                println!(
                    "baseline kernel UDP (same VMs and link, virtio_net): sent {}  received {}  lost {}  duplicates {}  reordered {}  in {:.2} s",
                    kernel.sent,
                    kernel.received,
                    kernel.lost,
                    kernel.duplicates,
                    kernel.reordered,
                    kernel.elapsed_ns as f64 / 1e9
                );
                println!("  {}", chart::latency_line("round trip", &kernel.rtt));
                println!(
                    "  ratio agent/kernel: p50={} p99={}",
                    ratio(side.rtt.p50_ns as f64, kernel.rtt.p50_ns as f64),
                    ratio(side.rtt.p99_ns as f64, kernel.rtt.p99_ns as f64)
                );
            }
            println!("  saved {}", saved.json.display());
        }
        if let Some(error) = baseline_error {
            return Err(error);
        }
        // Loss is a measurement, not a failure: the table and the record carry it.
        Ok(ExitCode::SUCCESS)
    })
}

fn progress_bar(quiet: bool, total: u64) -> ProgressBar {
    if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed}] {msg}").expect("template"),
    );
    bar
}
