//! One module per subcommand; each `run(args, ctx)` parses nothing and provisions
//! nothing itself: it calls the library modules and prints.

pub mod bench;
pub mod completions;
pub mod cp;
pub mod doctor;
pub mod down;
pub mod exec;
pub mod image;
pub mod init;
pub mod inventory;
pub mod logs;
pub mod outputs;
pub mod pingpong;
pub mod plan;
pub mod port;
pub mod report;
pub mod selftest;
pub mod ssh;
pub mod ssh_config;
pub mod status;
pub mod up;
pub mod workload_common;

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::{Cli, Command, ImageCommand, PortCommand, RunCommand};
use crate::context::Context;
use crate::lock::{self, EnvLock};

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = cli.global;
    let ctx =
        || Context::load(g.config.clone(), &g.env, g.json).context("cannot set up the command");
    // Commands that change the lab or the agents' state hold the environment's lock
    // until they return; the read-only ones (status, outputs, ssh, ...) do not wait.
    // `image build` writes the shared cache through a per-process work directory and
    // one rename, and takes no lock.
    let locked = || -> anyhow::Result<(Context, EnvLock)> {
        let ctx = ctx()?;
        let lock = EnvLock::acquire(&ctx.paths, &ctx.env, &lock::command_line())?;
        Ok((ctx, lock))
    };
    match cli.command {
        Command::Init(args) => init::run(args, g.json),
        Command::Image(ImageCommand::Build(args)) => image::build(args, &ctx()?),
        Command::Image(ImageCommand::List) => image::list(&ctx()?),
        Command::Plan(args) => plan::run(args, &ctx()?),
        Command::Up(args) => {
            let (ctx, _lock) = locked()?;
            up::run(args, &ctx)
        }
        Command::Down(args) => {
            let (ctx, _lock) = locked()?;
            down::run(args, &ctx)
        }
        Command::Status => status::run(&ctx()?),
        Command::Ssh(args) => ssh::run(args, &ctx()?),
        Command::Logs(args) => logs::run(args, &ctx()?),
        Command::Outputs => outputs::run(&ctx()?),
        Command::Inventory(args) => inventory::run(args, &ctx()?),
        Command::Doctor => doctor::run(&ctx()?),
        Command::Run(RunCommand::Pingpong(args)) => {
            let (ctx, _lock) = locked()?;
            pingpong::run(args, &ctx)
        }
        Command::Bench(args) => {
            let (ctx, _lock) = locked()?;
            bench::run(args, &ctx)
        }
        Command::Selftest => {
            let (ctx, _lock) = locked()?;
            selftest::run(&ctx)
        }
        Command::Port(PortCommand::Release(args)) => {
            let (ctx, _lock) = locked()?;
            port::run_release(args, &ctx)
        }
        Command::Port(PortCommand::Acquire(args)) => {
            let (ctx, _lock) = locked()?;
            port::run_acquire(args, &ctx)
        }
        // `exec --dpdk` hands the port over and back: it changes the lab.
        Command::Exec(args) if args.dpdk => {
            let (ctx, _lock) = locked()?;
            exec::run(args, &ctx)
        }
        Command::Exec(args) => exec::run(args, &ctx()?),
        Command::Cp(args) => cp::run(args, &ctx()?),
        Command::Report(args) => report::run(args, g.json),
        Command::SshConfig(args) => ssh_config::run(args, &ctx()?),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => completions::man(args),
    }
}
