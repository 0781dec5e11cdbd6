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

/// Waits until `addr` answers with an SSH banner (sshd may come up a little after the
/// agent; with user-mode networking the forwarded port accepts even before that).
pub fn wait_for_sshd(addr: std::net::SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    use std::io::Read as _;
    let start = Instant::now();
    let mut last = String::from("no attempt");
    let mut told = false;
    while start.elapsed() < timeout {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 64];
                match s.read(&mut buf) {
                    Ok(n) if buf[..n].starts_with(b"SSH-") => return Ok(()),
                    Ok(_) => last = "connection closed before the SSH banner".into(),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(e) => last = e.to_string(),
        }
        if !told && start.elapsed() > Duration::from_secs(2) {
            eprintln!("waiting for sshd at {addr} ...");
            told = true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!(
        "sshd at {addr} did not answer within {} s (last: {last})",
        timeout.as_secs()
    )
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
    wait_for_sshd(vm.ssh, Duration::from_secs(120))?;
    let mut cmd = command(ctx, &state, vm, false);
    // After the destination, ssh joins the remaining words into the remote command.
    cmd.args(&args.command);
    let err = cmd.exec();
    Err(anyhow!("cannot run ssh (openssh-client installed?): {err}"))
}
