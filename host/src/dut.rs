//! A device under test (DTS's SUT): the user's DPDK application on VM N's released data
//! port, with the agent at the other end of the link as the traffic generator. This
//! module releases the port, starts the application over ssh under the exec runner
//! (`cloud-init/exec-run.sh`), waits until it forwards, reads its port counters
//! through its DPDK telemetry socket (the agent asks it, see the Telemetry RPC), keeps
//! its output, and on every way out stops what is left of it and has the agent take
//! the port back.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_proto::v1;
use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdin};

use crate::commands::port::{self, PortGrant};
use crate::context::Context;
use crate::drive::Agent;
use crate::ssh;
use crate::state::{State, VmState};

/// The placeholder replaced by the EAL arguments of the released port.
pub const EAL_PLACEHOLDER: &str = "{eal}";
/// The application measured when `--app` is not given: testpmd forwarding every frame
/// back out of the port it came in on, MACs, IPs and UDP ports swapped, with a pool
/// that fits the hugepages a lab VM has left (testpmd's default wants ~330 MB).
pub const DEFAULT_APP: &str = "dpdk-testpmd {eal} -- --total-num-mbufs=8192 --forward-mode=5tswap";
/// How long the application may take to open its telemetry socket and bring its port
/// up (testpmd under TCG takes 5-15 s).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long it may take to forward the first frame once its port is up.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of the application's output is kept (the end of it).
const OUTPUT_KEPT: usize = 256 * 1024;

/// The user's words as the remote shell text ssh would make of them (joined by
/// spaces), with `{eal}` replaced by the grant's quoted EAL arguments.
pub fn command_text(words: &[String], grant: Option<&PortGrant>) -> String {
    let text = words.join(" ");
    match grant {
        Some(grant) => text.replace(EAL_PLACEHOLDER, &grant.eal),
        None => text,
    }
}

/// `sudo env VARS... bash -c RUNNER exec-run.sh run ID TEXT`, quoted for the login
/// shell ssh hands it to.
pub fn runner_command(grant: &PortGrant, id: &str, text: &str) -> anyhow::Result<String> {
    let mut words = vec!["sudo".to_owned(), "env".to_owned()];
    words.extend(
        grant
            .environment()
            .into_iter()
            .map(|(name, value)| format!("{name}={value}")),
    );
    words.extend(
        [
            "bash",
            "-c",
            crate::assets::EXEC_RUN,
            "exec-run.sh",
            "run",
            id,
            text,
        ]
        .map(str::to_owned),
    );
    crate::shell::join(&words).context("the command holds a NUL byte")
}

/// The runner's `stop ID [PREFIX]`, quoted likewise.
pub fn stop_command(id: &str, file_prefix: Option<&str>) -> anyhow::Result<String> {
    let mut words = vec![
        "sudo",
        "bash",
        "-c",
        crate::assets::EXEC_RUN,
        "exec-run.sh",
        "stop",
        id,
    ];
    words.extend(file_prefix);
    crate::shell::join(&words).context("the runner holds a NUL byte")
}

/// Stops what is left of the command `run ID` started and removes what DPDK left of
/// its file prefix; the runner's word for how it ended (`exited`, `terminated`,
/// `killed`), or why it could not say.
pub async fn stop_remote(
    ctx: &Context,
    state: &State,
    vm: &VmState,
    id: &str,
    file_prefix: Option<&str>,
) -> Result<String, String> {
    let stop = stop_command(id, file_prefix).map_err(|error| error.to_string())?;
    let mut cmd = tokio::process::Command::from(ssh::command(ctx, state, vm, true));
    cmd.arg(stop).stdin(Stdio::null());
    match tokio::time::timeout(Duration::from_secs(60), cmd.output()).await {
        Ok(Ok(output)) if output.status.success() => {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        }
        Ok(Ok(output)) => Err(format!(
            "stop failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Ok(Err(error)) => Err(format!("stop failed: {error}")),
        Err(_) => Err("stop timed out".to_owned()),
    }
}

/// A DPDK port's basic counters as `/ethdev/stats` gives them (testpmd's names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EthdevStats {
    /// Frames received.
    pub ipackets: u64,
    /// Frames sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Dropped by the NIC: no rx descriptor free (the application's rx ring full).
    pub imissed: u64,
    /// Erroneous frames received.
    pub ierrors: u64,
    /// Frames the NIC failed to send.
    pub oerrors: u64,
    /// Receive failures for lack of mbufs.
    pub rx_nombuf: u64,
}

impl EthdevStats {
    /// What changed from `before` to `self` (counters only grow; a restart reads 0).
    pub fn since(&self, before: &EthdevStats) -> EthdevStats {
        EthdevStats {
            ipackets: self.ipackets.saturating_sub(before.ipackets),
            opackets: self.opackets.saturating_sub(before.opackets),
            ibytes: self.ibytes.saturating_sub(before.ibytes),
            obytes: self.obytes.saturating_sub(before.obytes),
            imissed: self.imissed.saturating_sub(before.imissed),
            ierrors: self.ierrors.saturating_sub(before.ierrors),
            oerrors: self.oerrors.saturating_sub(before.oerrors),
            rx_nombuf: self.rx_nombuf.saturating_sub(before.rx_nombuf),
        }
    }
}

/// The DUT's own view of one trial: its port's counters over the trial, read through
/// its telemetry socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DutCounters {
    /// The DUT VM.
    pub vm: u32,
    /// Where the counters come from: `telemetry /ethdev/stats,<port>`.
    pub source: String,
    /// The port's counters over the trial.
    pub port: EthdevStats,
    /// Received by the DUT and not sent back out (`ipackets - opackets`): dropped
    /// inside the application (testpmd's TX-dropped, a full tx ring) or still in it.
    pub forward_drops: u64,
    /// Extended counters that changed over the trial (`/ethdev/xstats`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub xstats: std::collections::BTreeMap<String, u64>,
}

impl DutCounters {
    /// Lost packets the DUT's counters explain: its rx ring, mbufs, errors, and what
    /// it received without sending on.
    pub fn counted_drops(&self) -> u64 {
        self.port.imissed + self.port.rx_nombuf + self.port.ierrors + self.forward_drops
    }
}

/// A telemetry answer is untrusted: `{"<command>": value}` with the value read into
/// `T`, or an error naming the command.
pub fn parse_answer<T: serde::de::DeserializeOwned>(
    command: &str,
    json: &str,
) -> anyhow::Result<T> {
    let key = command.split(',').next().unwrap_or(command);
    let mut answer: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_str(json)
            .with_context(|| format!("telemetry answer to {command} is not a JSON object"))?;
    let value = answer
        .remove(key)
        .with_context(|| format!("telemetry answer to {command} has no {key:?} member"))?;
    serde_json::from_value(value)
        .with_context(|| format!("telemetry answer to {command} is not shaped as expected"))
}

/// What the session records of the application.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DutRecord {
    /// The DUT VM's index.
    pub vm: u32,
    /// The command as it ran (`{eal}` replaced), as root in the VM.
    pub command: String,
    /// The EAL arguments it was given.
    pub eal: String,
    /// The DUT's data port MAC and address, where the generator sent to.
    pub mac: String,
    /// Its data address.
    pub ip: String,
    /// The ethdev port id the counters are of.
    pub port_id: u16,
    /// The application's telemetry greeting (its DPDK version and pid).
    pub telemetry: String,
    /// How it ended: `terminated` (stopped after the measurement), `exited`, `killed`,
    /// or why that is not known.
    pub ended: String,
    /// Whether the agent took its port back afterwards.
    #[serde(default)]
    pub port_back: bool,
    /// Its output (stdout and stderr), the last 256 KiB.
    pub output: String,
}

impl DutRecord {
    /// The line saying how the application ended and where the port is now.
    pub fn stopped_line(&self) -> String {
        format!(
            "vm{}: the application was stopped ({}); {}",
            self.vm,
            self.ended,
            if self.port_back {
                "its port is back with the agent"
            } else {
                "its port is NOT back with the agent"
            }
        )
    }
}

/// Output kept from the application: the end of it.
#[derive(Debug, Default)]
struct OutputTail {
    bytes: Vec<u8>,
}

impl OutputTail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > OUTPUT_KEPT {
            let cut = self.bytes.len() - OUTPUT_KEPT;
            self.bytes.drain(..cut);
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The last `lines` lines, for an error.
    fn last_lines(&self, lines: usize) -> String {
        last_lines(&self.text(), lines)
    }
}

/// The application running on the DUT's released port.
pub struct DutSession {
    ctx: Context,
    state: State,
    vm: VmState,
    id: String,
    /// What the application was given.
    pub grant: PortGrant,
    /// The command as it runs.
    pub command: String,
    /// The ethdev port the counters are of.
    pub port_id: u16,
    greeting: String,
    child: Child,
    // Held open: testpmd without -i waits for a line on stdin before it exits.
    _stdin: Option<ChildStdin>,
    output: Arc<Mutex<OutputTail>>,
    exited: Option<ExitStatus>,
}

impl DutSession {
    /// Releases `agent`'s port (the DUT VM's), starts `app` (shell text with
    /// `{eal}`) on it, waits until its telemetry shows the port up and frames from
    /// `tg` come back through it. On failure nothing is left: the application is
    /// stopped and the port taken back.
    pub async fn start(
        ctx: &Context,
        vm: &VmState,
        agent: &mut Agent,
        tg: &mut Agent,
        app: &str,
        mut step: impl FnMut(&str),
    ) -> anyhow::Result<DutSession> {
        let state = ctx.require_state()?;
        let grant = port::release(ctx, agent).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let command = command_text(&[app.to_owned()], Some(&grant));
        step(&format!("{}: port released; starting {command}", vm.name));
        let spawned = spawn(ctx, &state, vm, &grant, &id, &command);
        let (child, stdin, output) = match spawned {
            Ok(spawned) => spawned,
            Err(error) => {
                let _ = agent.acquire_port().await;
                return Err(error);
            }
        };
        let mut session = DutSession {
            ctx: ctx.clone(),
            state,
            vm: vm.clone(),
            id,
            grant,
            command,
            port_id: 0,
            greeting: String::new(),
            child,
            _stdin: stdin,
            output,
            exited: None,
        };
        let ready = async {
            session.wait_ready(agent).await?;
            step(&format!(
                "{}: the application's port {} is up ({})",
                vm.name, session.port_id, session.greeting
            ));
            session.wait_forwarding(tg).await
        };
        match ready.await {
            Ok(()) => Ok(session),
            Err(error) => {
                // An application that ended says so with its output already.
                let died = session.exited.is_some();
                let record = session.finish(agent).await;
                let context = if died {
                    format!("the application in {} did not come up", vm.name)
                } else {
                    format!(
                        "the application in {} did not come up (it was stopped: {}); its last output:\n{}",
                        vm.name,
                        record.ended,
                        last_lines(&record.output, 20)
                    )
                };
                Err(error.context(context))
            }
        }
    }

    async fn telemetry(
        &self,
        agent: &mut Agent,
        command: &str,
    ) -> anyhow::Result<v1::TelemetryReply> {
        let prefix = self
            .grant
            .file_prefix
            .as_deref()
            .context("the grant names no --file-prefix")?;
        agent
            .client
            .telemetry(prefix, command)
            .await
            .with_context(|| format!("{}: telemetry {command}", self.vm.name))
    }

    async fn wait_ready(&mut self, agent: &mut Agent) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            self.check_running()?;
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "no telemetry socket with an up port after {START_TIMEOUT:?} (an application \
                     started with --no-telemetry cannot be measured: its counters are read there)"
                );
            }
            if let Ok(reply) = self.telemetry(agent, "/ethdev/list").await {
                let ports: Vec<u16> = parse_answer("/ethdev/list", &reply.json)?;
                if let Some(&port_id) = ports.first() {
                    let command = format!("/ethdev/link_status,{port_id}");
                    let link = self.telemetry(agent, &command).await?;
                    let link: LinkStatus = parse_answer(&command, &link.json)?;
                    if link.status == "UP" {
                        self.port_id = port_id;
                        self.greeting = reply.greeting.trim().to_owned();
                        return Ok(());
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = tokio::signal::ctrl_c() => bail!(crate::drive::DriveError::Interrupted),
            }
        }
    }

    /// Ping-pongs a few frames from `tg` until one comes back through the application.
    async fn wait_forwarding(&mut self, tg: &mut Agent) -> anyhow::Result<()> {
        let started = Instant::now();
        let request = v1::PingPongRequest {
            count: 5,
            timeout_ns: crate::units::nanos(Duration::from_millis(200)),
            ..v1::PingPongRequest::default()
        };
        loop {
            let side = crate::drive::pingpong_through(tg, self, request.clone(), |_| {}).await?;
            if side.received > 0 {
                return Ok(());
            }
            if started.elapsed() > FORWARD_TIMEOUT {
                bail!(
                    "nothing {} sent came back through the application within \
                     {FORWARD_TIMEOUT:?}: it must send what it receives back out of the same \
                     port (testpmd --forward-mode=5tswap or macswap)",
                    tg.endpoint.name
                );
            }
        }
    }

    /// Fails with the application's exit status and last output if it is gone.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().context("cannot poll ssh")?;
        }
        match self.exited {
            None => Ok(()),
            Some(status) => bail!(self.died(status)),
        }
    }

    fn died(&self, status: ExitStatus) -> String {
        format!(
            "the application in {} ended ({}); its last output:\n{}",
            self.vm.name,
            describe(status),
            lock(&self.output).last_lines(20)
        )
    }

    /// Resolves when the application ends; its exit status and last output as the
    /// error to stop a measurement with.
    pub async fn ended(&mut self) -> anyhow::Error {
        let status = match self.exited {
            Some(status) => status,
            None => match self.child.wait().await {
                Ok(status) => {
                    self.exited = Some(status);
                    status
                }
                Err(error) => return anyhow::Error::new(error).context("cannot wait for ssh"),
            },
        };
        anyhow::anyhow!(self.died(status))
    }

    /// The port's counters now.
    pub async fn stats(&self, agent: &mut Agent) -> anyhow::Result<EthdevStats> {
        let command = format!("/ethdev/stats,{}", self.port_id);
        let reply = self.telemetry(agent, &command).await?;
        parse_answer(&command, &reply.json)
    }

    /// The port's extended counters now.
    pub async fn xstats(
        &self,
        agent: &mut Agent,
    ) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
        let command = format!("/ethdev/xstats,{}", self.port_id);
        let reply = self.telemetry(agent, &command).await?;
        parse_answer(&command, &reply.json)
    }

    /// The DUT VM's index.
    pub fn vm_index(&self) -> u32 {
        u32::from(self.vm.index)
    }

    /// Stops the application (if it still runs), has the agent take its port back and
    /// returns what is recorded of the application. Never fails: what went wrong is
    /// in [`DutRecord::ended`] and [`DutRecord::port_back`].
    pub async fn finish(mut self, agent: &mut Agent) -> DutRecord {
        let stopped = stop_remote(
            &self.ctx,
            &self.state,
            &self.vm,
            &self.id,
            self.grant.file_prefix.as_deref(),
        )
        .await;
        let _ = self.child.start_kill();
        let status = match self.exited {
            Some(status) => Some(status),
            None => tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                .await
                .ok()
                .and_then(Result::ok),
        };
        // Let the output readers take the last bytes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ended = match (&stopped, self.exited) {
            (Ok(_), Some(status)) => describe(status),
            (Ok(word), None) => word.clone(),
            (Err(error), _) => error.clone(),
        };
        tracing::info!(vm = %self.vm.name, %ended, ?status, "DUT application stopped");
        let acquired = agent.acquire_port().await;
        let port_back = acquired.is_ok();
        let ended = match acquired {
            Ok(_) => ended,
            Err(error) => format!(
                "{ended}; the agent could not take its port back ({error}): dpdkhost port acquire {}",
                self.vm.index
            ),
        };
        let output = lock(&self.output).text();
        DutRecord {
            vm: u32::from(self.vm.index),
            command: self.command.clone(),
            eal: self.grant.eal.clone(),
            mac: self.grant.mac.clone(),
            ip: self.grant.ip.clone(),
            port_id: self.port_id,
            telemetry: self.greeting.clone(),
            ended,
            port_back,
            output,
        }
    }
}

#[derive(Debug, Deserialize)]
struct LinkStatus {
    status: String,
}

fn lock(output: &Mutex<OutputTail>) -> std::sync::MutexGuard<'_, OutputTail> {
    output
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn last_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `exit status 3`, `killed by signal 9` (the runner reports a signal as 128 + N).
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) if code > 128 && code < 160 => {
            format!("exit status {code}: signal {}", code - 128)
        }
        (Some(255), _) => {
            "exit status 255: ssh lost the session, or its runner was killed".to_owned()
        }
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("ssh killed by signal {signal}"),
        (None, None) => "ended".to_owned(),
    }
}

type Spawned = (Child, Option<ChildStdin>, Arc<Mutex<OutputTail>>);

fn spawn(
    ctx: &Context,
    state: &State,
    vm: &VmState,
    grant: &PortGrant,
    id: &str,
    command: &str,
) -> anyhow::Result<Spawned> {
    let remote = runner_command(grant, id, command)?;
    let mut child =
        tokio::process::Command::from(ssh::command_with(ctx, state, vm, false, &["-T"]))
            .arg(remote)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot run ssh (openssh-client installed?)")?;
    let output = Arc::new(Mutex::new(OutputTail::default()));
    for reader in [
        child
            .stdout
            .take()
            .map(|out| Box::new(out) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        child
            .stderr
            .take()
            .map(|err| Box::new(err) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let output = output.clone();
        tokio::spawn(async move {
            let mut reader = reader;
            let mut buffer = vec![0u8; 8192];
            while let Ok(n) = reader.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                lock(&output).push(&buffer[..n]);
            }
        });
    }
    let stdin = child.stdin.take();
    Ok((child, stdin, output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_answers_are_read_into_types() {
        let stats: EthdevStats = parse_answer(
            "/ethdev/stats,0",
            r#"{"/ethdev/stats": {"ipackets": 10, "opackets": 9, "ibytes": 640, "obytes": 576,
                "imissed": 1, "ierrors": 0, "oerrors": 0, "rx_nombuf": 0,
                "q_ipackets": [10], "q_opackets": [9], "q_ibytes": [640], "q_obytes": [576],
                "q_errors": [0]}}"#,
        )
        .unwrap();
        assert_eq!((stats.ipackets, stats.opackets, stats.imissed), (10, 9, 1));
        let ports: Vec<u16> = parse_answer("/ethdev/list", r#"{"/ethdev/list": [0]}"#).unwrap();
        assert_eq!(ports, [0]);
        for hostile in [
            "[]",
            r#"{"/ethdev/list": [0]}"#,
            r#"{"/ethdev/stats": {"ipackets": -1}}"#,
            r#"{"/ethdev/stats": {"ipackets": "$(reboot)"}}"#,
            "not json",
        ] {
            let error = parse_answer::<EthdevStats>("/ethdev/stats,0", hostile).unwrap_err();
            assert!(
                format!("{error:#}").contains("/ethdev/stats,0"),
                "{error:#}"
            );
        }
    }

    #[test]
    fn counters_over_a_trial_are_differences() {
        let before = EthdevStats {
            ipackets: 100,
            opackets: 90,
            imissed: 5,
            ..EthdevStats::default()
        };
        let after = EthdevStats {
            ipackets: 1100,
            opackets: 1080,
            imissed: 7,
            ..EthdevStats::default()
        };
        let over = after.since(&before);
        assert_eq!((over.ipackets, over.opackets, over.imissed), (1000, 990, 2));
        assert_eq!(
            before.since(&after).ipackets,
            0,
            "a restarted DUT reads 0, not a wrap"
        );
    }

    #[test]
    fn the_output_keeps_its_end() {
        let mut tail = OutputTail::default();
        tail.push(&vec![b'a'; OUTPUT_KEPT]);
        tail.push(b"\nlast line\n");
        assert_eq!(tail.bytes.len(), OUTPUT_KEPT);
        assert_eq!(tail.last_lines(1), "last line");
    }
}
