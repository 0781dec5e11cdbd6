//! `dpdkhost up`: runs the up workflow ([`crate::bring_up`]) and prints its report.

use std::process::ExitCode;

use crate::bring_up::{bring_up, Outcome, UpOptions};
use crate::cli::UpArgs;
use crate::context::Context;
use crate::ui;

/// Runs `up`.
pub fn run(args: UpArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let options = UpOptions {
        yes: args.yes,
        no_kvm: args.no_kvm,
        timeout: args.timeout,
        agent: args.agent,
    };
    let report = match bring_up(ctx, &options, &|| ui::confirm("apply these changes?"))? {
        Outcome::Declined { drift_keys } => {
            if !drift_keys.is_empty() {
                eprintln!(
                    "not applied: {} changed since the VMs were made; `up -y` replaces them, or set {} back",
                    drift_keys.join(", "),
                    if drift_keys.len() == 1 { "it" } else { "them" }
                );
            }
            return Ok(ExitCode::FAILURE);
        }
        Outcome::Up(report) => report,
    };
    if ctx.json {
        ui::print_json(&report);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "environment {} is up: {} agent(s) SERVING, {} ({}), {:.1} s in all",
        report.env,
        report.vms.len(),
        report.accel,
        report.accel_reason,
        report.seconds
    );
    let guests: Vec<String> = report.guests.iter().map(ToString::to_string).collect();
    println!(
        "agents SERVING after {:.1} s; guests: {}",
        report.serving_after_s,
        if guests.is_empty() {
            "not probed".to_owned()
        } else {
            guests.join("; ")
        }
    );
    println!("next: dpdkhost status | dpdkhost ssh 1 | dpdkhost down -y");
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(ExitCode::SUCCESS)
}
