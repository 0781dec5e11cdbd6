//! `dpdkhost plan`: what `up` would do, from the configuration and what libvirt holds.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::accel::{self, KvmProbe};
use crate::cli::PlanArgs;
use crate::context::Context;
use crate::image::ImageStore;
use crate::plan::{self, KernelPorts, Plan};
use crate::provision::Libvirt;
use crate::ui;

/// What `plan` and `up` both start from.
pub struct Prepared {
    /// The connection.
    pub libvirt: Libvirt,
    /// What to do.
    pub plan: Plan,
}

/// Connects, decides the acceleration, looks at what exists, and plans. `image_sha256`
/// is the base image `up` will use, when known.
pub fn prepare(
    ctx: &Context,
    no_kvm: bool,
    image_sha256: Option<&str>,
) -> anyhow::Result<Prepared> {
    let libvirt = Libvirt::open(&ctx.config.libvirt_uri)?;
    let decision = accel::decide(
        ctx.config.accel,
        no_kvm,
        libvirt.is_local(),
        &KvmProbe::run(),
    )?;
    let found = libvirt
        .find(&ctx.env, &ctx.config.pool)
        .context("cannot list the environment's libvirt objects")?;
    plan::check_existing(&ctx.config, &ctx.env, &found).map_err(anyhow::Error::msg)?;
    let state = ctx.state()?;
    let image_matches = match (state.as_ref(), image_sha256) {
        (Some(s), Some(sha)) => s.image_sha256 == sha,
        _ => true,
    };
    let plan = plan::make(
        &ctx.config,
        &ctx.env,
        &decision,
        &ctx.config.image.to_string(),
        image_matches,
        &found,
        &mut KernelPorts::default(),
    );
    Ok(Prepared { libvirt, plan })
}

/// Runs `plan`.
pub fn run(args: PlanArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let p = prepare(ctx, args.no_kvm, None)?;
    let store = ImageStore::new(ctx.paths.image_cache.clone());
    let image_ready = store.is_ready(&ctx.config.image);
    if ctx.json {
        ui::print_json(&serde_json::json!({ "plan": p.plan, "image_cached": image_ready }));
    } else {
        match &ctx.config_path {
            Some(path) => println!("configuration: {}", path.display()),
            None => println!("configuration: built-in defaults (no dpdkhost.toml here; `dpdkhost init` writes one)"),
        }
        print!("{}", p.plan);
        if !image_ready {
            println!(
                "  (image {} is not cached: up builds or fetches it first)",
                ctx.config.image
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
