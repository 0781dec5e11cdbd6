//! `dpdkhost completions SHELL` and `dpdkhost man [--out DIR]`, generated from the clap
//! definitions ([`agent_proto::cli_docs`], shared with dpdk-agent).

use std::io::Write as _;
use std::process::ExitCode;

use agent_proto::cli_docs;
use anyhow::Context as _;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};

/// Runs `completions`.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    cli_docs::write_completions(
        Cli::command(),
        "dpdkhost",
        args.shell,
        &mut std::io::stdout(),
    )
    .context("cannot write the completion script")?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `man`.
pub fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    match args.out {
        None => std::io::stdout()
            .write_all(&cli_docs::man_page(Cli::command())?)
            .context("cannot write the man page")?,
        Some(dir) => {
            let source = format!("dpdkhost {}", env!("CARGO_PKG_VERSION"));
            let pages = cli_docs::write_man_pages(Cli::command(), &source, &dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
            println!(
                "{} man pages in {} (man -l {}/dpdkhost.1)",
                pages.len(),
                dir.display(),
                dir.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
