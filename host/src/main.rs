//! dpdkhost: stands up a libvirt lab of DPDK VMs, injects the guest agent through
//! cloud-init, and drives it over gRPC. `main` parses, sets up tracing, dispatches,
//! and prints the error chain.

#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use dpdkhost::{cli, commands};

fn main() -> ExitCode {
    // Output piped into `head` ends the process quietly, as with any Unix tool; a dead
    // libvirtd is reported, not a silent exit 141.
    dpdkhost::ui::quiet_sigpipe_on_broken_stdout();
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    virt::error::clear_error_callback();
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
