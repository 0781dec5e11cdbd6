//! `dpdkhost plan`: what `up` would do, from the configuration and what libvirt holds.

use std::process::ExitCode;

use crate::cli::PlanArgs;
use crate::context::Context;
use crate::image::ImageStore;
use crate::survey::{left_alone_lines, prepare};
use crate::ui;

/// Runs `plan`.
pub fn run(args: PlanArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    // The agent `up` would inject: a rebuilt one replaces the VMs. Without one (not
    // built yet) the plan cannot say.
    let agent_sha256 = crate::bring_up::find_agent(None, ctx.config.agent.as_deref())
        .ok()
        .and_then(|path| crate::image::sha256_file(&path).ok());
    let p = prepare(ctx, args.no_kvm, None, agent_sha256.as_deref())?;
    let store = ImageStore::new(ctx.paths.image_cache.clone());
    let image_ready = store.is_ready(&ctx.config.image);
    if ctx.json {
        ui::print_json(&serde_json::json!({
            "plan": p.plan, "image_cached": image_ready, "left_alone": p.left_alone,
        }));
    } else {
        match &ctx.config_path {
            Some(path) => println!("configuration: {}", path.display()),
            None => println!("configuration: built-in defaults (no dpdkhost.toml here; `dpdkhost init` writes one)"),
        }
        print!("{}", p.plan);
        print!("{}", left_alone_lines(&p.left_alone));
        if !image_ready {
            println!(
                "  (image {} is not cached: up builds or fetches it first)",
                ctx.config.image
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
