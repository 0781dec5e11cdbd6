//! `completions` and `man`: shell completion scripts and man pages generated from
//! the clap definitions, so they cannot drift from the options the binary takes.

use std::io::Write;
use std::process::ExitCode;

use agent_proto::cli_docs;
use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};

/// `dpdk-agent completions SHELL`: the script on stdout.
pub fn completions(args: &CompletionsArgs) -> Result<ExitCode> {
    cli_docs::write_completions(
        Cli::command(),
        "dpdk-agent",
        args.shell,
        &mut std::io::stdout(),
    )
    .context("writing the completion script")?;
    Ok(ExitCode::SUCCESS)
}

/// `dpdk-agent man [--out DIR]`: dpdk-agent.1 on stdout, or every page into DIR,
/// each file it wrote listed.
pub fn man(args: &ManArgs) -> Result<ExitCode> {
    let Some(dir) = &args.out else {
        std::io::stdout()
            .write_all(&cli_docs::man_page(Cli::command()).context("rendering dpdk-agent.1")?)
            .context("writing dpdk-agent.1")?;
        return Ok(ExitCode::SUCCESS);
    };
    let source = format!("dpdk-agent {}", env!("CARGO_PKG_VERSION"));
    for page in cli_docs::write_man_pages(Cli::command(), &source, dir)
        .with_context(|| format!("writing the man pages into {}", dir.display()))?
    {
        println!("wrote {}", page.display());
    }
    Ok(ExitCode::SUCCESS)
}
