//! `dpdkhost ssh N [-- CMD]`: ssh with the environment's key and pinned host keys
//! ([`crate::ssh`]).

use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;

use crate::cli::SshArgs;
use crate::context::Context;
use crate::ssh::{interactive, wait_for_sshd};

/// Runs `ssh`: replaces this process with ssh.
pub fn run(args: SshArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let state = ctx.require_state()?;
    let vm = ctx.vm(&state, &args.vm)?;
    wait_for_sshd(vm.ssh, Duration::from_secs(120))?;
    let mut cmd = interactive(ctx, &state, vm, &args.command);
    let err = cmd.exec();
    Err(anyhow!("cannot run ssh (openssh-client installed?): {err}"))
}
