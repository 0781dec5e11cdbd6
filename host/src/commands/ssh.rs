//! `dpdkhost ssh N [-- CMD]`: ssh with the environment's key and pinned host keys
//! (StrictHostKeyChecking=yes against the known_hosts `up` wrote).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};

use crate::cli::SshArgs;
use crate::context::{Context, ContextError};
use crate::state::{State, VmState};

/// An ssh command line for `vm` (host key pinned by alias). `batch` disables prompts.
pub fn command(ctx: &Context, state: &State, vm: &VmState, batch: bool) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(["-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            ctx.paths.known_hosts().display()
        ))
        .arg("-o")
        .arg(format!("HostKeyAlias={}", vm.domain))
        .args(["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"]);
    if let Some(id) = &state.ssh_identity {
        cmd.arg("-i").arg(id).args(["-o", "IdentitiesOnly=yes"]);
    }
    if batch {
        cmd.args(["-o", "BatchMode=yes"]);
    }
    cmd.arg("-p")
        .arg(vm.ssh.port().to_string())
        .arg(format!("{}@{}", state.user, vm.ssh.ip()));
    cmd
}

/// Runs `cmd` and returns its stdout and stderr, killing it after `timeout`.
pub fn output_with_timeout(mut cmd: Command, timeout: Duration) -> anyhow::Result<String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let mut out = String::new();
            if let Some(mut o) = child.stdout.take() {
                o.read_to_string(&mut out)?;
            }
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                e.read_to_string(&mut err)?;
            }
            if status.code() == Some(255) {
                return Err(anyhow!("{}", err.trim()));
            }
            return Ok(format!("{out}{err}").trim_end().to_owned());
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("no answer within {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

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
    let mut cmd = command(ctx, &state, vm, false);
    // After the destination, ssh joins the remaining words into the remote command.
    cmd.args(&args.command);
    let err = cmd.exec();
    Err(anyhow!("cannot run ssh (openssh-client installed?): {err}"))
}
