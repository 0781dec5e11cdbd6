//! `dpdkhost down`: removes every libvirt object of the environment, found by name and
//! metadata (no state file needed), then the environment's state directory. What only
//! looks like the environment's is listed with the reason and left alone.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::DownArgs;
use crate::context::Context;
use crate::provision::owner::LeftAlone;
use crate::state;
use crate::ui;

fn print_left_alone(left_alone: &[LeftAlone]) {
    for l in left_alone {
        println!("  left alone: {l}");
    }
}

/// Runs `down`.
pub fn run(args: DownArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let pool = ctx
        .state()
        .ok()
        .flatten()
        .map(|s| s.pool)
        .unwrap_or_else(|| ctx.config.pool.clone());
    let lv = ctx.connect()?;
    let found = lv
        .find(&ctx.env, &pool)
        .context("cannot list the environment's libvirt objects")?;
    if found.is_empty() && !found.pool_goes() {
        state::remove_all(&ctx.paths)?;
        if ctx.json {
            ui::print_json(&serde_json::json!({
                "env": ctx.env, "removed": [], "left_alone": found.left_alone,
            }));
        } else {
            println!("environment {}: nothing to remove", ctx.env);
            print_left_alone(&found.left_alone);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !ctx.json {
        println!("environment {} on {}:", ctx.env, lv.uri());
        for d in &found.domains {
            println!("  - domain {} ({})", d.name, d.state);
        }
        for n in &found.networks {
            println!("  - network {n}");
        }
        for v in &found.volumes {
            println!("  - volume {v}");
        }
        if found.pool_goes() {
            println!("  - pool {pool} (nothing else in it)");
        }
        print_left_alone(&found.left_alone);
    }
    if !args.yes && !ui::confirm("remove all of this?") {
        return Ok(ExitCode::FAILURE);
    }
    let removed = lv.teardown(&ctx.env, &pool).context("teardown failed")?;
    state::remove_all(&ctx.paths)?;
    if ctx.json {
        ui::print_json(&serde_json::json!({
            "env": ctx.env, "removed": removed, "left_alone": found.left_alone,
        }));
    } else {
        println!(
            "removed {} object(s); environment {} is gone",
            removed.len(),
            ctx.env
        );
        if !found.left_alone.is_empty() {
            println!(
                "{} object(s) that only look like the environment's are left alone (listed above)",
                found.left_alone.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
