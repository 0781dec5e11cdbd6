//! dpdk-testpmd as the reference for `bench --baseline testpmd`: both agents hand
//! their ports to another DPDK process (the NICs stay on uio_pci_generic), testpmd
//! runs rxonly on the receiver and txonly on the transmitter over ssh with the same
//! frame size and duration, its final forward statistics are parsed, and the agents
//! take their ports back. Loss is accounted like the agent's: testpmd's RX-dropped
//! (imissed), RX-nombufs, RX-error, and the receiving QEMU's UDP socket drops.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddrV4;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use agent_proto::v1;

use crate::drive::{Agent, DriveError};
use crate::results::{udp_drops, BenchDirection};

/// Where testpmd is in the guest image (Debian's dpdk package).
pub const TESTPMD: &str = "/usr/bin/dpdk-testpmd";
/// testpmd's mbuf pool: 8192 mbufs of 2176 bytes plus headers, about 19 MB.
const TOTAL_MBUFS: u32 = 8192;
/// 2 MiB pages testpmd needs for that pool, its rings and EAL's own structures.
pub const NEEDED_HUGEPAGES: u64 = 16;
/// testpmd starts slowly under TCG (EAL init, PCI probe, port start).
const START_TIMEOUT: Duration = Duration::from_secs(240);
/// How long the receiver keeps counting after the transmitter stops.
const DRAIN: Duration = Duration::from_secs(1);
/// ssh attempts when the connection itself fails (a 1-vCPU guest that just ran a
/// busy-polling workload can reset connections while sshd catches up).
/// ssh attempts per remote command; a guest whose vCPU was saturated by a bench can
/// take several seconds to accept connections again (sshd's banner never comes and
/// QEMU's user-mode network resets the connection).
const SSH_ATTEMPTS: u32 = 6;
/// Longest pause between ssh attempts (they double from 1 s up to this).
const SSH_RETRY_MAX_PAUSE: Duration = Duration::from_secs(8);

/// Makes an ssh command to one VM (destination set, remote command to be appended).
pub type SshFactory = Box<dyn Fn() -> Command + Send>;

/// Why the testpmd baseline could not run.
#[derive(Debug, thiserror::Error)]
pub enum TestpmdError {
    /// An agent refused to hand its port over or to take it back.
    #[error("agent")]
    Agent(#[from] DriveError),
    /// Too few hugepages are free next to the released agent.
    #[error("{vm}: {free} hugepages of 2 MiB are free next to the released agent; testpmd needs {NEEDED_HUGEPAGES} (raise `hugepages` in dpdkhost.toml)")]
    Hugepages {
        /// The VM.
        vm: String,
        /// Free pages.
        free: u64,
    },
    /// ssh could not be started or talked to.
    #[error("{vm}: ssh")]
    Ssh {
        /// The VM.
        vm: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// testpmd did not start forwarding, failed, or printed no statistics.
    #[error("{vm}: dpdk-testpmd {what}; its output:\n{output}")]
    Run {
        /// The VM.
        vm: String,
        /// What went wrong.
        what: String,
        /// What it printed.
        output: String,
    },
}

/// What testpmd does on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// `--forward-mode=txonly` to the peer.
    Tx {
        /// The receiver's MAC (`--eth-peer`).
        peer_mac: String,
        /// Source and destination IPs (`--tx-ip`).
        src_ip: String,
        /// Destination IP.
        dst_ip: String,
        /// Frame size without FCS (`--txpkts`).
        size: u32,
    },
    /// `--forward-mode=rxonly`.
    Rx,
}

/// testpmd's arguments for `role` on the port described by the agent's release reply.
/// One vCPU: both lcores on CPU 0; no -m, EAL takes the free pages it needs.
pub fn arguments(release: &v1::ReleasePortReply, role: &Role) -> Vec<String> {
    let mut args = vec!["--lcores=0@0,1@0".to_owned(), "--huge-unlink".to_owned()];
    args.extend(release.eal_args.iter().cloned());
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
    args.push(format!("--total-num-mbufs={TOTAL_MBUFS}"));
    match role {
        Role::Tx {
            peer_mac,
            src_ip,
            dst_ip,
            size,
        } => {
            args.push("--forward-mode=txonly".to_owned());
            args.push(format!("--eth-peer=0,{peer_mac}"));
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

/// A shell script (no single quotes, so it fits in `bash -c '...'`) that starts
/// testpmd with stdin on a fifo, prints `READY <ns>` once it forwards, waits, prints
/// `STOP <ns>`, presses enter (testpmd prints its statistics and exits), and prints
/// testpmd's output.
pub fn remote_script(args: &[String], until: Until) -> String {
    let wait = match until {
        Until::Elapsed(duration) => format!("sleep {:.3}", duration.as_secs_f64()),
        Until::Told => "read -r _go".to_owned(),
    };
    format!(
        r#"set -u
out=$(mktemp /tmp/testpmd.XXXXXX); fifo=$out.in; mkfifo $fifo
sudo stdbuf -oL -eL {TESTPMD} {args} <$fifo >$out 2>&1 &
pid=$!
trap "sudo kill $pid 2>/dev/null; rm -f $out $fifo" EXIT
exec 3>$fifo
n=0
until grep -q "Press enter to exit" $out; do
  if [ ! -d /proc/$pid ]; then echo "FAILED before forwarding"; cat $out; exit 1; fi
  n=$((n+1)); if [ $n -gt {polls} ]; then echo "TIMEOUT waiting for forwarding"; cat $out; exit 1; fi
  sleep 0.1
done
echo "READY $(date +%s%N)"
{wait}
echo "STOP $(date +%s%N)"
echo >&3
wait $pid; echo "EXIT $?"
echo "---- testpmd output"
cat $out
"#,
        args = args.join(" "),
        polls = START_TIMEOUT.as_millis() / 100,
    )
}

/// testpmd's final forward statistics for port 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardStats {
    /// RX-packets.
    pub rx_packets: u64,
    /// RX-dropped (the port's imissed).
    pub rx_dropped: u64,
    /// RX-error (shown only when errors or nombufs are non-zero).
    pub rx_errors: u64,
    /// RX-nombufs.
    pub rx_nombuf: u64,
    /// TX-packets.
    pub tx_packets: u64,
    /// TX-dropped: packets the tx burst refused (tx ring full).
    pub tx_dropped: u64,
}

/// What one remote run printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// Port 0's statistics.
    pub stats: ForwardStats,
    /// When forwarding had started (guest clock, ns).
    pub ready_ns: u64,
    /// When enter was pressed (guest clock, ns).
    pub stop_ns: u64,
}

fn number_after(text: &str, label: &str) -> Option<u64> {
    let mut tokens = text.split_whitespace();
    tokens.find(|token| *token == label)?;
    tokens.next()?.parse().ok()
}

fn marker(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

/// Parses the script's markers and testpmd's "Forward statistics for port 0" block.
pub fn parse_output(text: &str) -> Option<RunOutput> {
    let ready_ns = marker(text, "READY ")?;
    let stop_ns = marker(text, "STOP ")?;
    let start = text.find("Forward statistics for port 0")?;
    let block = &text[start..];
    let end = block
        .find("Accumulated forward statistics")
        .unwrap_or(block.len());
    let block = &block[..end];
    let stats = ForwardStats {
        rx_packets: number_after(block, "RX-packets:")?,
        rx_dropped: number_after(block, "RX-dropped:")?,
        rx_errors: number_after(block, "RX-error:").unwrap_or(0),
        rx_nombuf: number_after(block, "RX-nombufs:").unwrap_or(0),
        tx_packets: number_after(block, "TX-packets:")?,
        tx_dropped: number_after(block, "TX-dropped:")?,
    };
    Some(RunOutput {
        stats,
        ready_ns,
        stop_ns,
    })
}

/// testpmd running in a VM under ssh: lines arrive on a channel as it prints them.
struct Remote {
    vm: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    output: String,
}

impl Remote {
    fn spawn(vm: &str, mut ssh: Command, script: &str) -> Result<Remote, TestpmdError> {
        let ssh_error = |source| TestpmdError::Ssh {
            vm: vm.to_owned(),
            source,
        };
        let mut child = ssh
            .arg(format!("bash -c '{script}'"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(ssh_error)?;
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let tx_err = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx_err.send(format!("ssh: {line}")).is_err() {
                    break;
                }
            }
        });
        Ok(Remote {
            vm: vm.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            output: String::new(),
        })
    }

    fn fail(&self, what: impl Into<String>) -> TestpmdError {
        TestpmdError::Run {
            vm: self.vm.clone(),
            what: what.into(),
            output: self.output.clone(),
        }
    }

    /// Waits for `READY`, up to `timeout`.
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), TestpmdError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let ready = line.starts_with("READY ");
                    self.output.push_str(&line);
                    self.output.push('\n');
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
    fn start(
        vm: &str,
        ssh: &SshFactory,
        script: &str,
        timeout: Duration,
    ) -> Result<Remote, TestpmdError> {
        let mut attempt = 1;
        loop {
            let mut remote = Remote::spawn(vm, ssh(), script)?;
            match remote.wait_ready(timeout) {
                Ok(()) => return Ok(remote),
                Err(error) if attempt < SSH_ATTEMPTS && remote.ssh_failed() => {
                    tracing::warn!(%vm, attempt, output = %remote.output, "ssh failed, trying again");
                    drop(error);
                    let pause = Duration::from_secs(1 << attempt.min(3)).min(SSH_RETRY_MAX_PAUSE);
                    attempt += 1;
                    std::thread::sleep(pause);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Whether ssh exited 255 (its own failure) with nothing from the script.
    fn ssh_failed(&mut self) -> bool {
        let script_spoke = self.output.lines().any(|line| !line.starts_with("ssh: "));
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
    fn tell_stop(&mut self) -> Result<(), TestpmdError> {
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
    fn finish(mut self, timeout: Duration) -> Result<RunOutput, TestpmdError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.output.push_str(&line);
                    self.output.push('\n');
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(self.fail(format!("did not finish within {timeout:?}")))
                }
            }
        }
        let _ = self.child.wait();
        parse_output(&self.output).ok_or_else(|| self.fail("printed no forward statistics"))
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Ending ssh ends the remote script, whose trap stops testpmd.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The VMs and how to reach them over ssh.
pub struct Pair<'a> {
    /// Transmitter.
    pub tx: &'a mut Agent,
    /// Receiver.
    pub rx: &'a mut Agent,
    /// ssh to the transmitter.
    pub tx_ssh: SshFactory,
    /// ssh to the receiver.
    pub rx_ssh: SshFactory,
    /// The receiver's end of the user-mode UDP link (its drops are link loss).
    pub rx_udp: Option<SocketAddrV4>,
}

/// txonly on `pair.tx` -> rxonly on `pair.rx` for `duration` with `size`-byte
/// frames. The agents hand their ports over first and take them back on every path.
pub async fn bench(
    pair: Pair<'_>,
    size: u32,
    duration: Duration,
    on_step: impl Fn(&str),
) -> Result<BenchDirection, TestpmdError> {
    let Pair {
        tx,
        rx,
        tx_ssh,
        rx_ssh,
        rx_udp,
    } = pair;
    on_step("testpmd baseline: agents hand their ports over");
    let outcome = async {
        let (tx_release, rx_release) = tokio::join!(
            tx.release_port(v1::ReleaseTo::DpdkProcess),
            rx.release_port(v1::ReleaseTo::DpdkProcess)
        );
        let (tx_release, rx_release) = (tx_release?, rx_release?);
        for (agent, release) in [(&*tx, &tx_release), (&*rx, &rx_release)] {
            if release.free_hugepages < NEEDED_HUGEPAGES {
                return Err(TestpmdError::Hugepages {
                    vm: agent.endpoint.name.clone(),
                    free: release.free_hugepages,
                });
            }
        }
        let src_ip = tx_release
            .ip
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let dst_ip = rx_release
            .ip
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let tx_script = remote_script(
            &arguments(
                &tx_release,
                &Role::Tx {
                    peer_mac: rx_release.mac.clone(),
                    src_ip,
                    dst_ip,
                    size,
                },
            ),
            Until::Elapsed(duration),
        );
        let rx_script = remote_script(&arguments(&rx_release, &Role::Rx), Until::Told);
        let (tx_vm, rx_vm) = (tx.endpoint.name.clone(), rx.endpoint.name.clone());
        on_step(&format!("testpmd baseline: rxonly starting on {rx_vm}"));
        let blocking = move || -> Result<(RunOutput, RunOutput, u64), TestpmdError> {
            let mut receiver = Remote::start(&rx_vm, &rx_ssh, &rx_script, START_TIMEOUT)?;
            let drops_before = rx_udp.and_then(udp_drops::read_socket_drops);
            let transmitter = Remote::start(&tx_vm, &tx_ssh, &tx_script, START_TIMEOUT)?;
            let sent = transmitter.finish(duration + Duration::from_secs(60))?;
            std::thread::sleep(DRAIN);
            receiver.tell_stop()?;
            let received = receiver.finish(Duration::from_secs(60))?;
            let drops_after = rx_udp.and_then(udp_drops::read_socket_drops);
            let link_drops = match (drops_before, drops_after) {
                (Some(before), Some(after)) => after.saturating_sub(before),
                _ => 0,
            };
            Ok((sent, received, link_drops))
        };
        let (sent, received, link_drops) =
            tokio::task::spawn_blocking(blocking)
                .await
                .map_err(|error| TestpmdError::Run {
                    vm: tx.endpoint.name.clone(),
                    what: format!("driver thread failed: {error}"),
                    output: String::new(),
                })??;
        Ok((sent, received, link_drops))
    }
    .await;
    on_step("testpmd baseline: agents take their ports back");
    let (tx_back, rx_back) = tokio::join!(tx.acquire_port(), rx.acquire_port());
    let (sent, received, link_drops) = outcome?;
    tx_back?;
    rx_back?;
    let elapsed_ns = sent.stop_ns.saturating_sub(sent.ready_ns).max(1);
    let seconds = elapsed_ns as f64 / 1e9;
    let mut direction = BenchDirection {
        method: "testpmd".to_owned(),
        from: u32::from(tx.endpoint.index),
        to: u32::from(rx.endpoint.index),
        size,
        duration_ns: elapsed_ns,
        tx_packets: sent.stats.tx_packets,
        rx_packets: received.stats.rx_packets,
        tx_ring_full: sent.stats.tx_dropped,
        imissed: received.stats.rx_dropped,
        rx_nombuf: received.stats.rx_nombuf,
        ierrors: received.stats.rx_errors,
        link_drops,
        unaccounted: 0,
        tx_pps: sent.stats.tx_packets as f64 / seconds,
        rx_pps: received.stats.rx_packets as f64 / seconds,
        // testpmd counts frames without FCS, like the agent.
        rx_gbps: received.stats.rx_packets as f64 * f64::from(size) * 8.0 / seconds / 1e9,
        per_second: Vec::new(),
    };
    direction.account();
    Ok(direction)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Trimmed from a dpdk-testpmd 22.11 run (txonly, then rxonly with drops).
    const TX_OUTPUT: &str = "READY 1000000000
STOP 11000000000
Telling cores to stop...
Waiting for lcores to finish...

  ---------------------- Forward statistics for port 0  ----------------------
  RX-packets: 0              RX-dropped: 0             RX-total: 0
  TX-packets: 2612345        TX-dropped: 40921         TX-total: 2653266
  ----------------------------------------------------------------------------

  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++
  RX-packets: 0              RX-dropped: 0             RX-total: 0
  TX-packets: 2612345        TX-dropped: 40921         TX-total: 2653266
  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++
EXIT 0
";

    const RX_OUTPUT: &str = "READY 5
STOP 7
  ---------------------- Forward statistics for port 0  ----------------------
  RX-packets: 1000123        RX-dropped: 2000          RX-total: 1002123
  RX-error: 3
  RX-nombufs: 17
  TX-packets: 0              TX-dropped: 0             TX-total: 0
  ----------------------------------------------------------------------------
";

    #[test]
    fn parses_txonly_statistics_and_markers() {
        let run = parse_output(TX_OUTPUT).unwrap();
        assert_eq!(run.ready_ns, 1_000_000_000);
        assert_eq!(run.stop_ns, 11_000_000_000);
        assert_eq!(run.stats.tx_packets, 2_612_345);
        assert_eq!(run.stats.tx_dropped, 40_921);
        assert_eq!(run.stats.rx_packets, 0);
    }

    #[test]
    fn parses_rx_errors_and_nombufs_when_shown() {
        let stats = parse_output(RX_OUTPUT).unwrap().stats;
        assert_eq!(
            stats,
            ForwardStats {
                rx_packets: 1_000_123,
                rx_dropped: 2000,
                rx_errors: 3,
                rx_nombuf: 17,
                tx_packets: 0,
                tx_dropped: 0,
            }
        );
    }

    #[test]
    fn output_without_statistics_is_refused() {
        assert_eq!(
            parse_output("READY 1\nSTOP 2\nEAL: Cannot init memory\n"),
            None
        );
        assert_eq!(parse_output(&TX_OUTPUT.replace("READY", "RDY")), None);
    }

    /// A stand-in for ssh: `sh -c BODY` (the script argument becomes `$0`).
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
        let stats = dir.path().join("stats");
        std::fs::write(&stats, TX_OUTPUT).unwrap();
        // The first connection fails like ssh does (exit 255, a message on stderr).
        let body = format!(
            "if [ -e {m} ]; then cat {s}; else touch {m}; echo kex reset >&2; exit 255; fi",
            m = marker.display(),
            s = stats.display()
        );
        let remote =
            Remote::start("vm1", &fake_ssh(body), "script", Duration::from_secs(10)).unwrap();
        let run = remote.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(run.stats.tx_packets, 2_612_345);
    }

    #[test]
    fn a_testpmd_that_fails_is_not_retried_and_its_output_is_shown() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("count");
        let body = format!(
            "echo x >> {c}; echo FAILED before forwarding; echo EAL: Cannot init memory; exit 1",
            c = count.display()
        );
        let error = match Remote::start("vm2", &fake_ssh(body), "script", Duration::from_secs(10)) {
            Ok(_) => panic!("started"),
            Err(error) => error,
        };
        let text = error.to_string();
        assert!(
            text.contains("vm2") && text.contains("Cannot init memory"),
            "{text}"
        );
        assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 1);
    }

    #[test]
    fn txonly_arguments_name_the_peer_and_the_port() {
        let release = v1::ReleasePortReply {
            eal_args: vec![
                "-a".into(),
                "0000:00:04.0".into(),
                "--iova-mode=pa".into(),
                "--file-prefix".into(),
                "baseline".into(),
            ],
            ..Default::default()
        };
        let args = arguments(
            &release,
            &Role::Tx {
                peer_mac: "52:54:00:00:00:02".into(),
                src_ip: "10.0.1.4".into(),
                dst_ip: "10.0.1.6".into(),
                size: 64,
            },
        );
        let text = args.join(" ");
        assert!(text.starts_with("--lcores=0@0,1@0 --huge-unlink -a 0000:00:04.0 --iova-mode=pa"));
        let app = text.split(" -- ").nth(1).unwrap();
        assert!(app.contains("--forward-mode=txonly"));
        assert!(app.contains("--eth-peer=0,52:54:00:00:00:02"));
        assert!(app.contains("--tx-ip=10.0.1.4,10.0.1.6"));
        assert!(app.contains("--txpkts=64"));
        let script = remote_script(&args, Until::Elapsed(Duration::from_secs(10)));
        assert!(
            !script.contains('\''),
            "the script goes inside single quotes"
        );
        assert!(script.contains("sleep 10.000"));
    }
}
