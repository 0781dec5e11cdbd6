//! `dpdkhost image build | list`.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::ImageBuildArgs;
use crate::config::BUILTIN_IMAGE;
use crate::context::Context;
use crate::image::{CachedBuiltin, ImageStore, Progress as _, STALE};
use crate::ui::{self, Spinner};

/// Runs `image build`.
pub fn build(args: ImageBuildArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let store = ImageStore::new(ctx.paths.image_cache.clone());
    let stale = match store.builtin(BUILTIN_IMAGE)? {
        CachedBuiltin::Current(m) if !args.force => {
            if ctx.json {
                ui::print_json(&m);
            } else {
                println!(
                    "{BUILTIN_IMAGE} is cached in {} (disk sha256 {}); --force rebuilds it",
                    store.dir.join(BUILTIN_IMAGE).display(),
                    m.disk.sha256
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        CachedBuiltin::Stale(_) => !args.force,
        _ => false,
    };
    let spinner = Spinner::new(ctx.json);
    if stale {
        spinner.stage(&format!("{BUILTIN_IMAGE} {STALE}: building it again"));
    }
    let start = std::time::Instant::now();
    let m = store.build_debian(&spinner).context("image build failed")?;
    spinner.finish(&format!(
        "built {BUILTIN_IMAGE} in {} s",
        start.elapsed().as_secs()
    ));
    if ctx.json {
        ui::print_json(&m);
    } else {
        println!(
            "{}: {} ({} MiB, sha256 {}), kernel + initrd for direct boot, in {}",
            m.name,
            m.disk.file,
            m.disk.size >> 20,
            m.disk.sha256,
            store.dir.join(&m.name).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `image list`.
pub fn list(ctx: &Context) -> anyhow::Result<ExitCode> {
    let store = ImageStore::new(ctx.paths.image_cache.clone());
    let images = store.list()?;
    if ctx.json {
        ui::print_json(&images);
        return Ok(ExitCode::SUCCESS);
    }
    if images.is_empty() {
        println!(
            "no images in {}: run `dpdkhost image build`",
            store.dir.display()
        );
    }
    println!(
        "{:<12} {:>8}  {:<6} {:<12} {:<16} SOURCE",
        "NAME", "SIZE", "FORMAT", "BOOT", "SHA256"
    );
    for m in images {
        println!(
            "{:<12} {:>5} MiB  {:<6} {:<12} {:<16} {}",
            m.name,
            m.disk.size >> 20,
            m.format.as_str(),
            if m.kernel.is_some() {
                "direct kernel"
            } else {
                "disk"
            },
            &m.disk.sha256[..16],
            m.source
        );
    }
    Ok(ExitCode::SUCCESS)
}
