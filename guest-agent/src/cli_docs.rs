//! `completions` and `man`: shell completion scripts and man pages generated from
//! the clap definitions, so they cannot drift from the options the binary takes.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};

/// The name completions and man pages are made for.
const BIN_NAME: &str = "dpdk-agent";

/// `completions SHELL`: the script on stdout.
pub fn completions(args: &CompletionsArgs) -> Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), BIN_NAME, &mut script);
    if args.shell == clap_complete::Shell::Bash {
        script = respell_bash_states(&String::from_utf8_lossy(&script)).into_bytes();
    }
    std::io::stdout()
        .write_all(&script)
        .context("writing the completion script")?;
    Ok(ExitCode::SUCCESS)
}

/// clap_complete 4.6's bash script spells a hyphenated binary's subcommand states two
/// ways: its loop arrives at `dpdk__agent__subcmd__ping`, its case arms read
/// `dpdk__subcmd__agent__subcmd__ping)`, so no subcommand option ever completes
/// (clap-rs/clap#6421, open). The arms are respelt as the loop computes them; once
/// clap_complete is fixed there is nothing left to replace.
fn respell_bash_states(script: &str) -> String {
    let wrong = BIN_NAME.replace('-', "__subcmd__");
    let right = BIN_NAME.replace('-', "__");
    script.replace(&wrong, &right)
}

/// `man`: dpdk-agent.1 on stdout, or with --out every page into the directory (the
/// paths written are listed on stdout).
pub fn man(args: &ManArgs) -> Result<ExitCode> {
    let command = documented_command();
    let Some(dir) = &args.out else {
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .render(&mut page)
            .context("rendering dpdk-agent.1")?;
        std::io::stdout()
            .write_all(&page)
            .context("writing dpdk-agent.1")?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let before = man_pages(dir)?;
    let source = format!("{BIN_NAME} {}", env!("CARGO_PKG_VERSION"));
    let pages = std::iter::once(command.clone()).chain(command.get_subcommands().cloned());
    for page in pages {
        // Subcommands carry no version of their own: the footer names the package's.
        clap_mangen::Man::new(page)
            .source(source.clone())
            .generate_to(dir)
            .with_context(|| format!("writing the man pages into {}", dir.display()))?;
    }
    for page in man_pages(dir)? {
        let state = if before.contains(&page) {
            "replaced"
        } else {
            "wrote"
        };
        println!("{state} {}", page.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The command as its pages describe it: built, so that each subcommand's page is
/// titled dpdk-agent-<name> and its synopsis reads `dpdk-agent <name>`; without the
/// `help` subcommand, which `--help` already covers.
fn documented_command() -> clap::Command {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    command
}

/// The dpdk-agent pages in `dir`, sorted.
fn man_pages(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        let is_ours =
            name == "dpdk-agent.1" || (name.starts_with("dpdk-agent-") && name.ends_with(".1"));
        if is_ours {
            pages.push(path);
        }
    }
    pages.sort();
    Ok(pages)
}
