//! `dpdkhost ssh N [-- CMD]`: ssh with the environment's key and pinned host keys
//! ([`crate::ssh`]).

use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;

use crate::cli::SshArgs;
use crate::context::{Context, ContextError};
use crate::ssh::{interactive, wait_for_sshd};

/// Runs `ssh`: replaces this process with ssh.
pub fn run(args: SshArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let state = ctx.require_state()?;
    let vm = state.vm(&args.vm).ok_or_else(|| ContextError::NoSuchVm {
        which: args.vm.clone(),
        env: ctx.env.clone(),
        known: state
            .vms
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    wait_for_sshd(vm.ssh, Duration::from_secs(120))?;
    let mut cmd = interactive(ctx, &state, vm, &args.command);
    let err = cmd.exec();
    Err(anyhow!("cannot run ssh (openssh-client installed?): {err}"))
}
