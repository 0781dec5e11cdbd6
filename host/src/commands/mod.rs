//! One module per subcommand; each `run(args, ctx)` parses nothing and provisions
//! nothing itself: it calls the library modules and prints.

pub mod bench;
pub mod doctor;
pub mod down;
pub mod image;
pub mod init;
pub mod inventory;
pub mod logs;
pub mod outputs;
pub mod pingpong;
pub mod plan;
pub mod report;
pub mod selftest;
pub mod ssh;
pub mod status;
pub mod up;
pub mod workload_common;

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::{Cli, Command, ImageCommand, RunCommand};
use crate::context::Context;

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = cli.global;
    let ctx =
        || Context::load(g.config.clone(), &g.env, g.json).context("cannot set up the command");
    match cli.command {
        Command::Init(args) => init::run(args, g.json),
        Command::Image(ImageCommand::Build(args)) => image::build(args, &ctx()?),
        Command::Image(ImageCommand::List) => image::list(&ctx()?),
        Command::Plan(args) => plan::run(args, &ctx()?),
        Command::Up(args) => up::run(args, &ctx()?),
        Command::Down(args) => down::run(args, &ctx()?),
        Command::Status => status::run(&ctx()?),
        Command::Ssh(args) => ssh::run(args, &ctx()?),
        Command::Logs(args) => logs::run(args, &ctx()?),
        Command::Outputs => outputs::run(&ctx()?),
        Command::Inventory(args) => inventory::run(args, &ctx()?),
        Command::Doctor => doctor::run(&ctx()?),
        Command::Run(RunCommand::Pingpong(args)) => pingpong::run(args, &ctx()?),
        Command::Bench(args) => bench::run(args, &ctx()?),
        Command::Selftest => selftest::run(&ctx()?),
        Command::Report(args) => report::run(args, g.json),
    }
}
