//! `dpdkhost init`: writes a commented default configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};

use crate::cli::InitArgs;
use crate::config::{DEFAULT_CONFIG_FILE, DEFAULT_FILE};

/// Runs `init`.
pub fn run(args: InitArgs, json: bool) -> anyhow::Result<ExitCode> {
    let path = args
        .output
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE));
    if path.exists() && !args.force {
        bail!("{} exists; pass --force to overwrite it", path.display());
    }
    std::fs::write(&path, DEFAULT_FILE)
        .with_context(|| format!("cannot write {}", path.display()))?;
    if json {
        crate::ui::print_json(&serde_json::json!({ "written": path }));
    } else {
        println!(
            "wrote {} (every key commented out: the defaults apply)",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
