//! ssh to the lab's VMs with the environment's key and pinned host keys
//! (StrictHostKeyChecking=yes against the known_hosts `up` wrote): the command line,
//! a run with a timeout, waiting for sshd, and retrying when ssh itself failed. Used by
//! `dpdkhost ssh`, `up`, the runs' guest probes and the testpmd baseline.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::state::{State, VmState};

/// Why an ssh command gave no output.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// ssh could not be started or read.
    #[error("cannot run ssh (openssh-client installed?)")]
    Spawn(#[source] std::io::Error),
    /// ssh itself failed (exit 255): what it said.
    #[error("ssh failed: {0}")]
    Failed(String),
    /// No answer in time; ssh was killed.
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// sshd never sent its banner.
    #[error("sshd at {addr} did not answer within {} s (last: {last})", .timeout.as_secs())]
    NoSshd {
        /// Where.
        addr: std::net::SocketAddr,
        /// How long it was given.
        timeout: Duration,
        /// The last failure.
        last: String,
    },
}

/// ssh attempts for a remote command whose connection may fail: a guest whose vCPU a
/// bench saturated can take several seconds to accept connections again (sshd's banner
/// never comes and QEMU's user-mode network resets the connection).
pub const ATTEMPTS: u32 = 6;
/// Longest pause between attempts (they double from 1 s up to this).
pub const RETRY_MAX_PAUSE: Duration = Duration::from_secs(8);

/// What one attempt of [`with_retries`] came to.
pub enum Attempt<T, E> {
    /// Done, well or badly: no further attempt.
    Done(Result<T, E>),
    /// ssh itself failed before the remote command said anything: try again.
    SshFailed(E),
}

/// Runs `attempt` until it is done or [`ATTEMPTS`] ran out, pausing 1 s, 2 s, 4 s, ...
/// (at most [`RETRY_MAX_PAUSE`]) after each ssh failure.
pub fn with_retries<T, E: std::fmt::Display>(
    what: &str,
    mut attempt: impl FnMut() -> Attempt<T, E>,
) -> Result<T, E> {
    let mut n = 1;
    loop {
        match attempt() {
            Attempt::Done(result) => return result,
            Attempt::SshFailed(error) if n < ATTEMPTS => {
                tracing::warn!(%what, attempt = n, %error, "ssh failed, trying again");
                let pause = Duration::from_secs(1 << n.min(3)).min(RETRY_MAX_PAUSE);
                n += 1;
                std::thread::sleep(pause);
            }
            Attempt::SshFailed(error) => return Err(error),
        }
    }
}

/// An ssh command line for `vm` (host key pinned by alias), ending in the destination
/// and `--`: whatever the caller appends is the remote command, never ssh's options
/// (ssh reads options after the destination too: `-o ProxyCommand=...` would run on
/// this host). `batch` disables prompts.
pub fn command(ctx: &Context, state: &State, vm: &VmState, batch: bool) -> Command {
    command_with(ctx, state, vm, batch, &[])
}

/// [`command`] with more ssh options (before the destination), e.g. `-tt`.
pub fn command_with(
    ctx: &Context,
    state: &State,
    vm: &VmState,
    batch: bool,
    options: &[&str],
) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(options);
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
        .arg(format!("{}@{}", state.user, vm.ssh.ip()))
        .arg("--");
    cmd
}

/// `dpdkhost ssh N [-- REMOTE...]`: an interactive ssh to `vm` running `remote` there.
pub fn interactive(ctx: &Context, state: &State, vm: &VmState, remote: &[String]) -> Command {
    let mut cmd = command(ctx, state, vm, false);
    // ssh joins the words after `--` into the remote command.
    cmd.args(remote);
    cmd
}

/// Runs `cmd` and returns its stdout and stderr, killing it after `timeout`.
pub fn output_with_timeout(mut cmd: Command, timeout: Duration) -> Result<String, SshError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(SshError::Spawn)?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(SshError::Spawn)? {
            let mut out = String::new();
            if let Some(mut o) = child.stdout.take() {
                o.read_to_string(&mut out).map_err(SshError::Spawn)?;
            }
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                e.read_to_string(&mut err).map_err(SshError::Spawn)?;
            }
            if status.code() == Some(255) {
                return Err(SshError::Failed(err.trim().to_owned()));
            }
            return Ok(format!("{out}{err}").trim_end().to_owned());
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SshError::Timeout(timeout));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `addr` answers with an SSH banner (sshd may come up a little after the
/// agent; with user-mode networking the forwarded port accepts even before that).
pub fn wait_for_sshd(addr: std::net::SocketAddr, timeout: Duration) -> Result<(), SshError> {
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
    Err(SshError::NoSshd {
        addr,
        timeout,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Paths;

    #[test]
    fn words_after_the_double_dash_are_the_remote_command_not_ssh_options() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context {
            config: crate::config::Config::default(),
            config_path: None,
            env: "t".into(),
            json: false,
            paths: Paths {
                state_dir: dir.path().join("t"),
                image_cache: dir.path().join("img"),
            },
        };
        let vm = VmState {
            index: 1,
            name: "vm1".into(),
            domain: "dpdkhost-t-vm1".into(),
            mgmt_ip: std::net::Ipv4Addr::new(10, 0, 2, 15),
            ssh: "127.0.0.1:40022".parse().unwrap(),
            agent: "127.0.0.1:40051".parse().unwrap(),
            data_ip: "10.0.1.4/24".into(),
            mgmt_mac: "52:54:00:00:00:01".into(),
            data_mac: "52:54:00:00:00:02".into(),
            peer: None,
            peer_ip: None,
            udp_local: None,
            udp_remote: None,
            host_key: "ssh-ed25519 AAAA".into(),
        };
        let state = State {
            version: State::VERSION,
            env: "t".into(),
            libvirt_uri: "test:///default".into(),
            network: crate::config::NetworkMode::User,
            accel: crate::accel::Accel::Tcg,
            accel_reason: "test".into(),
            user: "dpdk".into(),
            ssh_identity: None,
            pool: "dpdkhost".into(),
            image: "debian-12".into(),
            image_sha256: "00".into(),
            vms: vec![vm.clone()],
        };
        let remote: Vec<String> = ["-o", "ProxyCommand=touch /tmp/pwned", "uname", "-a"]
            .map(String::from)
            .to_vec();
        let cmd = interactive(&ctx, &state, &vm, &remote);
        let argv: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let dest = argv.iter().position(|a| a == "dpdk@127.0.0.1").unwrap();
        assert_eq!(argv[dest + 1], "--", "{argv:?}");
        assert_eq!(argv[dest + 2..], remote[..], "{argv:?}");
        assert_eq!(
            argv.iter()
                .filter(|a| a.starts_with("ProxyCommand"))
                .count(),
            1,
            "only the remote command's: {argv:?}"
        );
        // ssh itself agrees: with -G it prints the options it would use, and
        // ProxyCommand is not among them.
        match Command::new("ssh").arg("-G").args(&argv).output() {
            Ok(out) => {
                assert!(out.status.success(), "{out:?}");
                let config = String::from_utf8_lossy(&out.stdout).to_lowercase();
                assert!(config.contains("port 40022"), "{config}");
                assert!(!config.contains("proxycommand"), "{config}");
            }
            Err(e) => eprintln!("ssh not installed ({e}): argv checked only"),
        }
    }
}
