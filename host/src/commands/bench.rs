//! `dpdkhost bench --pps`: rx on one side, tx on the other (both ways at once with
//! `--direction bi`); per direction the rates, Gbit/s, loss and where it happened, and a
//! per-second table; saved under results/.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::{BenchArgs, BenchDirectionArg};
use crate::commands::workload_common::{
    connect_pair, environment, print_json, save_and_report, started_at,
};
use crate::context::{self, Context};
use crate::drive::{self, BenchPlan};
use crate::results::{BenchDirection, BenchRun, RunRecord, RunResult};
use crate::ui::Spinner;

/// Runs `bench --pps`.
pub fn run(args: BenchArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let rt = context::runtime()?;
    rt.block_on(async {
        let (mut a, mut b) = connect_pair(ctx, &args.from, &args.to).await?;
        let environment = environment(ctx, &mut a).await?;
        let plan = BenchPlan {
            size: args.size,
            duration: args.duration,
            rate_pps: args.rate.unwrap_or(0),
            bidirectional: args.direction == BenchDirectionArg::Bi,
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
        spinner.finish("bench done");
        let record = RunRecord {
            started_at,
            parameters: serde_json::json!({
                "from": a.endpoint.name, "to": b.endpoint.name, "size": args.size,
                "duration_ns": u64::try_from(args.duration.as_nanos()).unwrap_or(u64::MAX),
                "rate_pps": args.rate, "direction": if plan.bidirectional { "bi" } else { "uni" },
            }),
            environment,
            result: RunResult::Bench(BenchRun {
                direction: if plan.bidirectional { "bi" } else { "uni" }.into(),
                agent: directions.clone(),
                baseline: Vec::new(),
            }),
        };
        let saved = save_and_report(&record, &args.results, ctx.json)?;
        if ctx.json {
            print_json(&record)?;
        } else {
            for direction in &directions {
                print_direction(direction);
            }
            println!("saved {}", saved.json.display());
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
        "  where: link (host UDP socket) {}  imissed {}  rx_nombuf {}  ierrors {}  unaccounted {}   (tx ring full, not sent: {})",
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
