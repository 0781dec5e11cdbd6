//! dpdk-agent: `--selftest`, or one workload in the foreground.

#![deny(unsafe_code)]

mod cli;
mod cli_docs;
mod foreground;
mod ping;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Some(Command::Serve(_)) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // No colour codes in the journal (`serve` runs under systemd).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
    let outcome = match (&cli.command, cli.selftest) {
        (_, true) => foreground::selftest(&cli),
        (Some(Command::Bench(args)), false) => foreground::bench(args),
        (Some(Command::Reflect(args)), false) => foreground::reflect(args),
        (Some(Command::Pingpong(args)), false) => foreground::pingpong(args),
        (Some(Command::Ping(args)), false) => ping::ping(args),
        (Some(Command::Completions(args)), false) => cli_docs::completions(args),
        (Some(Command::Man(args)), false) => cli_docs::man(args),
        (Some(Command::Serve(args)), false) => dpdk_agent::serve::run(args)
            .map(|()| ExitCode::SUCCESS)
            .map_err(anyhow::Error::from),
        (None, false) => Err(anyhow::anyhow!(
            "nothing to do: pass --selftest or a subcommand (see --help)"
        )),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("dpdk-agent: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
