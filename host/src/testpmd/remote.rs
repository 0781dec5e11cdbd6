//! testpmd in a VM: its arguments from what the agents handed over (parsed: every
//! value came from a guest), the runner's command line (cloud-init/testpmd-run.sh,
//! every word quoted), and the runner under ssh with its output on a line channel.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use agent_proto::v1;

use super::parse::{parse_output, stamped, Line, RunOutput};
use super::{SshFactory, TestpmdError, START_TIMEOUT, STATS_PERIOD, TESTPMD, TOTAL_MBUFS};

/// What testpmd does on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// `--forward-mode=txonly` to the peer.
    Tx {
        /// The receiver's MAC (`--eth-peer`).
        peer_mac: [u8; 6],
        /// Source IP (`--tx-ip`).
        src_ip: Ipv4Addr,
        /// Destination IP.
        dst_ip: Ipv4Addr,
        /// Frame size without FCS (`--txpkts`).
        size: u32,
    },
    /// `--forward-mode=rxonly`.
    Rx,
}

/// An EAL argument an agent told testpmd to use, of the few forms an agent gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EalArg {
    /// `-a <PCI address>`.
    Allow(PciAddress),
    /// `--iova-mode=pa` or `=va`.
    IovaMode(&'static str),
    /// `--no-pci`.
    NoPci,
    /// `--vdev=<driver name>[,key=value...]`.
    Vdev(String),
    /// `--file-prefix=<name>`.
    FilePrefix(String),
}

impl EalArg {
    /// The words on a command line.
    pub fn words(&self) -> Vec<String> {
        match self {
            EalArg::Allow(pci) => vec!["-a".to_owned(), pci.to_string()],
            EalArg::IovaMode(mode) => vec![format!("--iova-mode={mode}")],
            EalArg::NoPci => vec!["--no-pci".to_owned()],
            EalArg::Vdev(spec) => vec![format!("--vdev={spec}")],
            EalArg::FilePrefix(name) => vec![format!("--file-prefix={name}")],
        }
    }
}

/// A PCI address `dddd:bb:dd.f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciAddress {
    domain: u16,
    bus: u8,
    device: u8,
    function: u8,
}

impl std::str::FromStr for PciAddress {
    type Err = ();
    fn from_str(text: &str) -> Result<Self, ()> {
        let hex = |part: &str, digits: usize| {
            (part.len() == digits && part.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u16::from_str_radix(part, 16).ok())
                .flatten()
                .ok_or(())
        };
        let (domain, rest) = text.split_once(':').ok_or(())?;
        let (bus, rest) = rest.split_once(':').ok_or(())?;
        let (device, function) = rest.split_once('.').ok_or(())?;
        let (device, function) = (hex(device, 2)?, hex(function, 1)?);
        if device > 0x1f || function > 7 {
            return Err(());
        }
        Ok(PciAddress {
            domain: hex(domain, 4)?,
            bus: u8::try_from(hex(bus, 2)?).map_err(|_| ())?,
            device: u8::try_from(device).map_err(|_| ())?,
            function: u8::try_from(function).map_err(|_| ())?,
        })
    }
}

impl std::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

/// What an agent's ReleasePort reply says, parsed: every value in it came from a guest,
/// and some of it ends up on a command line in the other VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// The released NIC's MAC.
    pub mac: [u8; 6],
    /// Its data address.
    pub ip: Ipv4Addr,
    /// The EAL arguments another process should use.
    pub eal_args: Vec<EalArg>,
    /// 2 MiB pages free next to the released agent.
    pub free_hugepages: u64,
}

/// A value in an agent's reply that is not of the form it must have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the agent's {field} {value:?} is not {accepted}")]
pub struct UntrustedValue {
    /// The reply's field.
    pub field: &'static str,
    /// What the agent sent.
    pub value: String,
    /// What is accepted.
    pub accepted: &'static str,
}

fn untrusted(field: &'static str, value: &str, accepted: &'static str) -> UntrustedValue {
    UntrustedValue {
        field,
        value: value.to_owned(),
        accepted,
    }
}

/// A runtime-directory name: a file name, nothing a path or a shell could read more into.
fn file_prefix(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A vdev spec as DPDK writes one: a driver name and `key=value` options.
fn vdev_spec(spec: &str) -> bool {
    !spec.is_empty()
        && spec.len() <= 256
        && spec.starts_with("net_")
        && spec
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_,=.:/-".contains(&b))
}

impl Handover {
    /// Parses a ReleasePort reply.
    pub fn parse(reply: &v1::ReleasePortReply) -> Result<Handover, UntrustedValue> {
        let mac = agent_proto::config::parse_mac(&reply.mac)
            .ok_or_else(|| untrusted("mac", &reply.mac, "a MAC address aa:bb:cc:dd:ee:ff"))?;
        let ip = agent_proto::config::parse_cidr(&reply.ip)
            .map(|(ip, _)| ip)
            .ok_or_else(|| untrusted("ip", &reply.ip, "an IPv4 address with prefix a.b.c.d/n"))?;
        let mut eal_args = Vec::new();
        let mut words = reply.eal_args.iter();
        while let Some(word) = words.next() {
            const ACCEPTED: &str = "one of -a <dddd:bb:dd.f>, --iova-mode=pa|va, --no-pci, \
                 --vdev=net_<name>[,key=value], --file-prefix=<name>";
            let arg = match word.as_str() {
                "-a" => {
                    let pci = words.next().map(String::as_str).unwrap_or_default();
                    EalArg::Allow(
                        pci.parse().map_err(|()| {
                            untrusted("eal_args", pci, "a PCI address dddd:bb:dd.f")
                        })?,
                    )
                }
                "--iova-mode=pa" => EalArg::IovaMode("pa"),
                "--iova-mode=va" => EalArg::IovaMode("va"),
                "--no-pci" => EalArg::NoPci,
                "--file-prefix" => {
                    let name = words.next().map(String::as_str).unwrap_or_default();
                    if !file_prefix(name) {
                        return Err(untrusted(
                            "eal_args",
                            name,
                            "a file prefix of 1-64 [A-Za-z0-9_-]",
                        ));
                    }
                    EalArg::FilePrefix(name.to_owned())
                }
                other => {
                    if let Some(spec) = other.strip_prefix("--vdev=").filter(|spec| vdev_spec(spec))
                    {
                        EalArg::Vdev(spec.to_owned())
                    } else if let Some(name) = other
                        .strip_prefix("--file-prefix=")
                        .filter(|name| file_prefix(name))
                    {
                        EalArg::FilePrefix(name.to_owned())
                    } else {
                        return Err(untrusted("eal_args", other, ACCEPTED));
                    }
                }
            };
            eal_args.push(arg);
        }
        Ok(Handover {
            mac,
            ip,
            eal_args,
            free_hugepages: reply.free_hugepages,
        })
    }
}

/// testpmd's arguments for `role` on the port an agent handed over.
/// One vCPU: both lcores on CPU 0; no -m, EAL takes the free pages it needs.
pub fn arguments(release: &Handover, role: &Role) -> Vec<String> {
    let mut args = vec!["--lcores=0@0,1@0".to_owned(), "--huge-unlink".to_owned()];
    args.extend(release.eal_args.iter().flat_map(EalArg::words));
    args.push("--".to_owned());
    args.extend(
        [
            "--nb-cores=1",
            "--rxq=1",
            "--txq=1",
            "--rxd=1024",
            "--txd=1024",
            "--burst=32",
            "--no-mlockall",
        ]
        .map(str::to_owned),
    );
    args.push(format!("--stats-period={}", STATS_PERIOD.as_secs()));
    args.push(format!("--total-num-mbufs={TOTAL_MBUFS}"));
    match role {
        Role::Tx {
            peer_mac,
            src_ip,
            dst_ip,
            size,
        } => {
            args.push("--forward-mode=txonly".to_owned());
            args.push(format!(
                "--eth-peer=0,{}",
                agent_proto::config::format_mac(peer_mac)
            ));
            args.push(format!("--tx-ip={src_ip},{dst_ip}"));
            args.push(format!("--txpkts={size}"));
        }
        Role::Rx => args.push("--forward-mode=rxonly".to_owned()),
    }
    args
}

/// How the remote script ends the run once testpmd forwards.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this long (the transmitter).
    Elapsed(Duration),
    /// When the host writes a line to ssh's stdin (the receiver).
    Told,
}

/// The runner in the guest (see its header): every value is one of its arguments.
const RUNNER: &str = crate::assets::TESTPMD_RUN;

/// The remote command that runs testpmd with `args` as root (testpmd needs the device
/// and hugepages, and the runner signals it directly): `sudo bash -c RUNNER ...`, every
/// word quoted for the login shell ssh hands it to.
pub fn remote_command(args: &[String], until: Until) -> Result<String, crate::shell::NulInWord> {
    let mut words = vec!["sudo".to_owned()];
    words.extend(runner_words(TESTPMD, args, until));
    crate::shell::join(&words)
}

/// `bash -c RUNNER testpmd-run.sh MODE SIGNAL_AFTER_US START_POLLS PROGRAM ARGS...`.
fn runner_words(program: &str, args: &[String], until: Until) -> Vec<String> {
    let (mode, signal_after_us) = match until {
        // Signalled half a period before the duration ends (by the guest's clock),
        // testpmd stops at the wake-up nearest the end of the duration: it forwards
        // for the duration to within half a second, and the time is measured, not
        // assumed.
        Until::Elapsed(duration) => (
            "elapsed",
            duration.saturating_sub(STATS_PERIOD / 2).as_micros(),
        ),
        Until::Told => ("told", 0),
    };
    let mut words: Vec<String> = ["bash", "-c", RUNNER, "testpmd-run.sh", mode]
        .map(str::to_owned)
        .to_vec();
    words.push(signal_after_us.to_string());
    words.push((START_TIMEOUT.as_millis() / 100).to_string());
    words.push(program.to_owned());
    words.extend(args.iter().cloned());
    words
}

/// testpmd running in a VM under ssh: lines arrive on a channel as it prints them,
/// each with the time the host read it.
pub(crate) struct Remote {
    vm: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Line>,
    received: Vec<Line>,
}

impl Remote {
    fn spawn(
        vm: &str,
        mut ssh: Command,
        command: &str,
        epoch: Instant,
    ) -> Result<Remote, TestpmdError> {
        let ssh_error = |source| TestpmdError::Ssh {
            vm: vm.to_owned(),
            source,
        };
        let mut child = ssh
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(ssh_error)?;
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let tx_err = tx.clone();
        let host_us = move || u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        std::thread::spawn(move || {
            for text in BufReader::new(stdout).lines().map_while(Result::ok) {
                let line = Line {
                    host_us: host_us(),
                    text,
                };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            for text in BufReader::new(stderr).lines().map_while(Result::ok) {
                let line = Line {
                    host_us: host_us(),
                    text: format!("ssh: {text}"),
                };
                if tx_err.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Remote {
            vm: vm.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            received: Vec::new(),
        })
    }

    /// What the script printed, testpmd's lines without their stamps.
    fn output(&self) -> String {
        self.received
            .iter()
            .map(|line| {
                let text = stamped(&line.text).map_or(line.text.as_str(), |(_, text)| text);
                format!("{text}\n")
            })
            .collect()
    }

    fn fail(&self, what: impl Into<String>) -> TestpmdError {
        TestpmdError::Run {
            vm: self.vm.clone(),
            what: what.into(),
            output: self.output(),
        }
    }

    /// Waits for `READY`, up to `timeout`.
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), TestpmdError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let ready = line.text.starts_with("READY ");
                    self.received.push(line);
                    if ready {
                        return Ok(());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(self.fail(format!("did not start forwarding within {timeout:?}")))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(self.fail("exited before forwarding"))
                }
            }
        }
    }

    /// Starts the script and waits for `READY`, starting again when ssh itself
    /// failed (exit 255 before the script printed anything).
    pub(crate) fn start(
        vm: &str,
        ssh: &SshFactory,
        command: &str,
        timeout: Duration,
        epoch: Instant,
    ) -> Result<Remote, TestpmdError> {
        use crate::ssh::Attempt;
        crate::ssh::with_retries(vm, || {
            let mut remote = match Remote::spawn(vm, ssh(), command, epoch) {
                Ok(remote) => remote,
                Err(error) => return Attempt::Done(Err(error)),
            };
            match remote.wait_ready(timeout) {
                Ok(()) => Attempt::Done(Ok(remote)),
                Err(error) if remote.ssh_failed() => Attempt::SshFailed(error),
                Err(error) => Attempt::Done(Err(error)),
            }
        })
    }

    /// Whether ssh exited 255 (its own failure) with nothing from the script.
    fn ssh_failed(&mut self) -> bool {
        let script_spoke = self
            .received
            .iter()
            .any(|line| !line.text.starts_with("ssh: "));
        // After the output closed, ssh exits within moments; a run that timed out
        // is still going and is not an ssh failure.
        let mut status = None;
        for _ in 0..50 {
            if let Ok(Some(exit)) = self.child.try_wait() {
                status = exit.code();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        !script_spoke && status == Some(255)
    }

    /// Tells an `Until::Told` script to stop.
    pub(crate) fn tell_stop(&mut self) -> Result<(), TestpmdError> {
        let vm = self.vm.clone();
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.fail("stdin is closed"));
        };
        stdin
            .write_all(b"stop\n")
            .and_then(|()| stdin.flush())
            .map_err(|source| TestpmdError::Ssh { vm, source })
    }

    /// Collects everything until ssh exits (up to `timeout`), then parses it.
    pub(crate) fn finish(mut self, timeout: Duration) -> Result<RunOutput, TestpmdError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.received.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(self.fail(format!("did not finish within {timeout:?}")))
                }
            }
        }
        let _ = self.child.wait();
        if tracing::enabled!(tracing::Level::DEBUG) {
            let raw: String = self
                .received
                .iter()
                .map(|line| format!("{:>10} {}\n", line.host_us, line.text))
                .collect();
            tracing::debug!(vm = %self.vm, "what the script printed (host µs, line):\n{raw}");
        }
        parse_output(&self.received).map_err(|what| self.fail(what))
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Ending ssh closes the script's output and input: its reader, then testpmd,
        // die writing to it (SIGPIPE), and a script waiting to be told reads the end
        // of its input and stops testpmd.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpmd::parse::tests::{arrived, TXONLY};

    /// A stand-in for dpdk-testpmd with --stats-period (statistics blocks every 0.1 s
    /// here; SIGINT stops it, then it prints its totals).
    fn fake_testpmd(dir: &std::path::Path) -> String {
        let path = dir.join("testpmd");
        std::fs::write(
            &path,
            r##"#!/usr/bin/perl
$| = 1;
my $stop = 0;
$SIG{INT} = sub { $stop = 1 };
print "EAL: args @ARGV\n  TX offloads=0x0 - TX RS bit threshold=0\n";
my $n = 0;
while (!$stop) {
    print "\e[2J\e[1;1H\nPort statistics ====================================\n";
    print "  TX-packets: ", $n * 100, "  TX-errors: 0  TX-bytes:  0\n";
    print "  Tx-pps: ", ($n ? 1000 : 0), "  Tx-bps: 0\n  ", "#" x 40, "\n";
    $n++;
    select(undef, undef, undef, 0.1);
}
print "Telling cores to stop...\n\n";
print "  ---------------------- Forward statistics for port 0  ----------------------\n";
print "  RX-packets: 0              RX-dropped: 0             RX-total: 0\n";
print "  TX-packets: ", $n * 100 + 7, "  TX-dropped: 0  TX-total: 0\n\nBye...\n";
"##,
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    /// Runs a remote command line as the guest's login shell would.
    fn run_script(command: &str, stdin: &str) -> Vec<Line> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let stdin = stdin.to_owned();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            let _ = input.write_all(stdin.as_bytes());
        });
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap();
        arrived(&String::from_utf8_lossy(&output.stdout), 0, 0)
    }

    #[test]
    fn the_script_stamps_testpmd_and_stops_it_with_sigint() {
        let dir = tempfile::tempdir().unwrap();
        let program = fake_testpmd(dir.path());
        let args = ["--forward-mode=txonly".to_owned()];
        for (until, stdin) in [
            (Until::Elapsed(Duration::from_millis(900)), ""),
            (Until::Told, "stop\n"),
        ] {
            let command = crate::shell::join(&runner_words(&program, &args, until)).unwrap();
            let lines = run_script(&command, stdin);
            let text: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
            let marker = |name: &str| text.iter().position(|l| l.starts_with(name));
            let (ready, stop, exit) = (marker("READY "), marker("STOP "), marker("EXIT "));
            assert!(ready < stop && stop < exit && ready.is_some(), "{text:#?}");
            assert_eq!(text.last(), Some(&"EXIT 0"), "{text:#?}");
            assert!(
                text.iter()
                    .any(|l| l.starts_with('T') && l.ends_with(" EAL: args --forward-mode=txonly")),
                "{text:#?}"
            );
            let run = parse_output(&lines).unwrap();
            assert!(run.periods.len() >= 3, "{text:#?}");
            assert_eq!(run.stats.tx_packets, run.periods.len() as u64 * 100 + 7);
            assert!(run.start_us <= run.periods[0].at_us && run.periods[0].at_us < run.stop_us);
        }
    }

    /// A stand-in for ssh: `sh -c BODY` (the remote command becomes `$0`).
    fn fake_ssh(body: String) -> SshFactory {
        Box::new(move || {
            let mut command = Command::new("sh");
            command.arg("-c").arg(body.clone());
            command
        })
    }

    #[test]
    fn a_failed_ssh_connection_is_tried_again_and_the_run_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("tried");
        let output = dir.path().join("output");
        std::fs::write(&output, TXONLY).unwrap();
        // The first connection fails like ssh does (exit 255, a message on stderr).
        let body = format!(
            "if [ -e {m} ]; then cat {o}; else touch {m}; echo kex reset >&2; exit 255; fi",
            m = marker.display(),
            o = output.display()
        );
        let remote = Remote::start(
            "vm1",
            &fake_ssh(body),
            "script",
            Duration::from_secs(10),
            Instant::now(),
        )
        .unwrap();
        let run = remote.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(run.stats.tx_packets, 674_688);
        assert_eq!(run.periods.len(), 3);
    }

    #[test]
    fn a_testpmd_that_fails_is_not_retried_and_its_output_is_shown() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("count");
        let body = format!(
            "echo x >> {c}; echo T17 EAL: Cannot init memory; echo EXIT 1; exit 1",
            c = count.display()
        );
        let error = match Remote::start(
            "vm2",
            &fake_ssh(body),
            "script",
            Duration::from_secs(10),
            Instant::now(),
        ) {
            Ok(_) => panic!("started"),
            Err(error) => error,
        };
        let text = error.to_string();
        assert!(
            text.contains("vm2") && text.contains("\nEAL: Cannot init memory\n"),
            "{text}"
        );
        assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 1);
    }

    fn release_reply() -> v1::ReleasePortReply {
        v1::ReleasePortReply {
            mac: "52:54:00:00:00:01".into(),
            ip: "10.0.1.4/24".into(),
            eal_args: vec![
                "-a".into(),
                "0000:00:04.0".into(),
                "--iova-mode=pa".into(),
                "--file-prefix".into(),
                "baseline".into(),
            ],
            free_hugepages: 40,
            ..Default::default()
        }
    }

    #[test]
    fn txonly_arguments_name_the_peer_and_the_port() {
        let release = Handover::parse(&release_reply()).unwrap();
        let args = arguments(
            &release,
            &Role::Tx {
                peer_mac: [0x52, 0x54, 0, 0, 0, 2],
                src_ip: Ipv4Addr::new(10, 0, 1, 4),
                dst_ip: Ipv4Addr::new(10, 0, 1, 6),
                size: 64,
            },
        );
        let text = args.join(" ");
        assert!(text.starts_with(
            "--lcores=0@0,1@0 --huge-unlink -a 0000:00:04.0 --iova-mode=pa --file-prefix=baseline"
        ));
        let app = text.split(" -- ").nth(1).unwrap();
        assert!(app.contains("--forward-mode=txonly"));
        assert!(app.contains("--eth-peer=0,52:54:00:00:00:02"));
        assert!(app.contains("--tx-ip=10.0.1.4,10.0.1.6"));
        assert!(app.contains("--txpkts=64"));
        assert!(app.contains("--stats-period=1"));
        let command = remote_command(&args, Until::Elapsed(Duration::from_secs(10))).unwrap();
        assert!(command.starts_with("sudo bash -c '"), "{command}");
        // Signalled half a second before the end, counted from the first statistics
        // block: testpmd stops at its next one-second wake-up.
        assert!(
            command.contains(" testpmd-run.sh elapsed 9500000 2400 /usr/bin/dpdk-testpmd --lcores"),
            "{command}"
        );
    }

    #[test]
    fn hostile_release_replies_are_refused_naming_the_field() {
        type Spoil = fn(&mut v1::ReleasePortReply);
        let cases: [(&str, Spoil); 6] = [
            ("mac", |r| r.mac = "52:54:00:00:00:01' ; reboot ; '".into()),
            ("ip", |r| r.ip = "10.0.1.4/24 $(id)".into()),
            ("eal_args", |r| r.eal_args[1] = "0000:00:04.0;id".into()),
            ("eal_args", |r| {
                r.eal_args.push("--vdev=net_ring0,$(id)".into())
            }),
            ("eal_args", |r| r.eal_args.push("--log-level=8".into())),
            ("eal_args", |r| r.eal_args[4] = "../../etc".into()),
        ];
        for (field, spoil) in cases {
            let mut reply = release_reply();
            spoil(&mut reply);
            let error = Handover::parse(&reply).unwrap_err();
            assert_eq!(error.field, field, "{error}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        /// Whatever an agent puts in its reply, it is refused or it is one of the
        /// accepted forms, and the command line a shell runs holds exactly the words.
        #[test]
        fn any_release_reply_is_refused_or_stays_words(
            mac in proptest::prop_oneof!["([0-9a-f]{2}:){5}[0-9a-f]{2}", "[^\\x00]{0,20}"],
            ip in proptest::prop_oneof!["10\\.0\\.1\\.[0-9]{1,3}/[0-9]{1,2}", "[^\\x00]{0,20}"],
            eal in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just("-a".to_owned()),
                "[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-9]",
                "--vdev=net_[a-z0-9_,=.:/$();'` -]{0,12}",
                "--file-prefix=[ -~]{0,10}",
                "--iova-mode=[a-z ]{2,3}",
                "[^\\x00]{0,20}",
            ], 0..5),
        ) {
            let reply = v1::ReleasePortReply { mac, ip, eal_args: eal, ..Default::default() };
            if let Ok(handover) = Handover::parse(&reply) {
                let args = arguments(&handover, &Role::Rx);
                for arg in &args {
                    proptest::prop_assert!(
                        arg.bytes().all(|b| b.is_ascii_graphic()),
                        "a word that needs quoting got through: {arg:?}"
                    );
                }
                let command = remote_command(&args, Until::Told).unwrap();
                let out = Command::new("sh")
                    .arg("-c")
                    .arg(format!("set -- {}; shift 6; printf '%s\\n' \"$@\"", command.trim_start_matches("sudo bash -c ")))
                    .output()
                    .unwrap();
                let seen = String::from_utf8_lossy(&out.stdout);
                proptest::prop_assert_eq!(seen.lines().collect::<Vec<_>>(), args.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
    }
}
