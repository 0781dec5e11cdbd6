//! `dpdkhost completions SHELL` and `dpdkhost man [--out DIR]`: generated from the clap
//! definitions, so they never disagree with the parser.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};

/// Runs `completions`.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "dpdkhost", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Runs `man`.
pub fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    let command = Cli::command();
    match args.out {
        None => {
            clap_mangen::Man::new(command)
                .render(&mut std::io::stdout())
                .context("cannot write the man page")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, &dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
            println!(
                "man pages in {} (man -l {}/dpdkhost.1)",
                dir.display(),
                dir.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
