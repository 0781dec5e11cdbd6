//! dpdk-testpmd as the reference for `bench --baseline testpmd`: both agents hand
//! their ports to another DPDK process (the NICs stay on uio_pci_generic), testpmd
//! runs rxonly on the receiver and txonly on the transmitter over ssh with the same
//! frame size and duration, and the agents take their ports back.
//!
//! It is measured like the agent's bench ([`crate::drive::bench`]):
//! - testpmd runs with `--stats-period=1`: it starts forwarding at once, prints its port
//!   statistics every second (the first block as forwarding starts, with rates of 0) and
//!   on SIGINT stops forwarding, prints its "Forward statistics" totals and exits. It
//!   notices the signal only at its next one-second wake-up (its sleep resumes after a
//!   signal), so the transmitter is signalled half a second before the duration ends,
//!   counted from its first block on the guest's clock.
//! - The remote script stamps every line testpmd prints with the guest's clock, so the
//!   time testpmd forwarded is known from its own output: from the line it prints just
//!   before it resets its statistics and launches forwarding, to "Telling cores to
//!   stop...". (The stamps are taken as the script reads the lines; under TCG that can
//!   be some tens of milliseconds late, at both ends alike.) Rates are the totals over
//!   the transmitter's forwarding time — the same definition as the agent's (see
//!   [`crate::results::BenchDirection::tx_pps`]).
//! - The per-second table takes tx from the transmitter's `Tx-pps` lines and rx from
//!   the receiver's `Rx-pps` lines (see [`per_second`]).
//! - Loss is accounted like the agent's: testpmd's RX-dropped (imissed), RX-nombufs,
//!   RX-error, and the receiving QEMU's UDP socket drops.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use agent_proto::v1;

use crate::drive::{Agent, DriveError};
use crate::results::{udp_drops, BenchDirection, BenchSecond};

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
/// testpmd's statistics period (`--stats-period`); the transmitter is signalled half of
/// it before the duration ends (it stops at its next wake-up).
const STATS_PERIOD: Duration = Duration::from_secs(1);
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
    /// An agent's ReleasePort reply held a value of the wrong form.
    #[error("{vm}: untrusted reply")]
    Untrusted {
        /// The VM.
        vm: String,
        /// What was wrong.
        #[source]
        source: UntrustedValue,
    },
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
    fn words(&self) -> Vec<String> {
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

/// One block of port statistics testpmd prints every second with `--stats-period=1`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    /// When it was printed, guest clock, µs.
    pub at_us: u64,
    /// The port's RX-packets so far.
    pub rx_packets: u64,
    /// The port's TX-packets so far.
    pub tx_packets: u64,
    /// `Rx-pps`: received per second since the previous block (0 in the first).
    pub rx_pps: u64,
    /// `Tx-pps`: sent per second since the previous block (0 in the first).
    pub tx_pps: u64,
}

/// What one remote run printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// Port 0's totals.
    pub stats: ForwardStats,
    /// Every statistics block; the first is printed as forwarding starts.
    pub periods: Vec<Period>,
    /// When testpmd reset its statistics and launched forwarding: the stamp of the
    /// line it prints just before (guest clock, µs).
    pub start_us: u64,
    /// When it stopped forwarding: "Telling cores to stop..." (guest clock, µs).
    pub stop_us: u64,
    /// Host time minus guest time, µs, the smallest over the run's lines (the line
    /// that reached the host quickest): puts the guest's stamps on the host's clock.
    pub clock_offset_us: i64,
}

impl RunOutput {
    /// How long testpmd forwarded, µs (at least 1).
    pub fn forwarding_us(&self) -> u64 {
        self.stop_us.saturating_sub(self.start_us).max(1)
    }

    fn on_host(&self, guest_us: u64) -> i64 {
        i64::try_from(guest_us)
            .unwrap_or(i64::MAX)
            .saturating_add(self.clock_offset_us)
    }
}

/// A line from the remote script and when the host read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// µs since the run began on the host.
    pub host_us: u64,
    /// The text.
    pub text: String,
}

fn number_after(text: &str, label: &str) -> Option<u64> {
    let mut tokens = text.split_whitespace();
    tokens.find(|token| *token == label)?;
    tokens.next()?.parse().ok()
}

/// A testpmd line the script stamped: `T<µs> <line>` -> (µs, line).
fn stamped(text: &str) -> Option<(u64, &str)> {
    let rest = text.strip_prefix('T')?;
    let (stamp, line) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((stamp.parse().ok()?, line.trim_end_matches('\r')))
}

/// Whether a line shows anything (testpmd clears the screen before each block with a
/// line of escape sequences alone).
fn visible(line: &str) -> bool {
    let mut escape = false;
    for c in line.chars() {
        match c {
            '\u{1b}' => escape = true,
            c if escape => escape = !c.is_ascii_alphabetic(),
            c if !c.is_whitespace() => return true,
            _ => {}
        }
    }
    false
}

/// testpmd's "Forward statistics for port 0" block, from its unstamped text.
pub fn parse_forward_stats(text: &str) -> Option<ForwardStats> {
    let start = text.find("Forward statistics for port 0")?;
    let block = &text[start..];
    let end = block
        .find("Accumulated forward statistics")
        .unwrap_or(block.len());
    let block = &block[..end];
    Some(ForwardStats {
        rx_packets: number_after(block, "RX-packets:")?,
        rx_dropped: number_after(block, "RX-dropped:")?,
        rx_errors: number_after(block, "RX-error:").unwrap_or(0),
        rx_nombuf: number_after(block, "RX-nombufs:").unwrap_or(0),
        tx_packets: number_after(block, "TX-packets:")?,
        tx_dropped: number_after(block, "TX-dropped:")?,
    })
}

/// The per-second blocks among testpmd's stamped lines.
fn parse_periods(lines: &[(u64, &str)]) -> Vec<Period> {
    let mut periods = Vec::new();
    let mut current: Option<Period> = None;
    for &(at_us, line) in lines {
        if line.contains("Port statistics ====") {
            periods.extend(current.take());
            current = Some(Period {
                at_us,
                ..Period::default()
            });
            continue;
        }
        let Some(period) = current.as_mut() else {
            continue;
        };
        let trimmed = line.trim();
        if !trimmed.is_empty() && trimmed.chars().all(|c| c == '#') {
            // The ruler that closes the block.
            periods.extend(current.take());
            continue;
        }
        if let Some(n) = number_after(line, "RX-packets:") {
            period.rx_packets = n;
        }
        if let Some(n) = number_after(line, "TX-packets:") {
            period.tx_packets = n;
        }
        if let Some(n) = number_after(line, "Rx-pps:") {
            period.rx_pps = n;
        }
        if let Some(n) = number_after(line, "Tx-pps:") {
            period.tx_pps = n;
        }
    }
    periods.extend(current);
    periods
}

/// Parses what the remote script printed: testpmd's stamped lines (per-second
/// blocks, the start and stop of forwarding, the forward statistics). The error says
/// what is missing.
pub fn parse_output(lines: &[Line]) -> Result<RunOutput, String> {
    let mut testpmd = Vec::new();
    let mut clock_offset_us = i64::MAX;
    for line in lines {
        if let Some((at_us, text)) = stamped(&line.text) {
            let offset = i64::try_from(line.host_us).unwrap_or(i64::MAX)
                - i64::try_from(at_us).unwrap_or(i64::MAX);
            clock_offset_us = clock_offset_us.min(offset);
            testpmd.push((at_us, text));
        }
    }
    let text: String = testpmd
        .iter()
        .map(|(_, line)| format!("{line}\n"))
        .collect();
    let stats = parse_forward_stats(&text).ok_or("printed no forward statistics")?;
    let periods = parse_periods(&testpmd);
    let first_block = testpmd
        .iter()
        .position(|(_, line)| line.contains("Port statistics ===="))
        .ok_or("printed no per-second statistics (--stats-period)")?;
    let start_us = testpmd[..first_block]
        .iter()
        .rev()
        .find(|(_, line)| visible(line))
        .map_or(testpmd[first_block].0, |(at, _)| *at);
    let stop_us = testpmd
        .iter()
        .find(|(_, line)| line.starts_with("Telling cores to stop"))
        .map(|(at, _)| *at)
        .ok_or("never said it stopped forwarding (\"Telling cores to stop\")")?;
    Ok(RunOutput {
        stats,
        periods,
        start_us,
        stop_us,
        clock_offset_us,
    })
}

fn per_second_of(count: u64, us: u64) -> u64 {
    let rate = u128::from(count) * 1_000_000 / u128::from(us.max(1));
    u64::try_from(rate).unwrap_or(u64::MAX)
}

/// The baseline's per-second table.
///
/// Rows 1.. are the transmitter's seconds: tx is testpmd's `Tx-pps` of each block after
/// the first (the first is printed as forwarding starts, with no rate yet). testpmd
/// stops forwarding where it would have printed its last second, so the last row is
/// what its totals add to the printed seconds (that last second and the moments before
/// its first block) over that time. rx is the receiver's `Rx-pps` of the block printed
/// nearest in time (both guests' stamps put on the host's clock): the two testpmds'
/// one-second timers are not in phase, so a row's rx may lead or lag its tx by up to
/// half a second — as the agent's rows do, whose receiver starts first. Rows after
/// the transmitter stopped (tx 0) follow while the receiver still counted packets.
pub fn per_second(sent: &RunOutput, received: &RunOutput) -> Vec<BenchSecond> {
    let mut tx_rows: Vec<(i64, u64)> = sent
        .periods
        .iter()
        .skip(1)
        .map(|period| (sent.on_host(period.at_us), period.tx_pps))
        .collect();
    if let (Some(first), Some(last)) = (sent.periods.first(), sent.periods.last()) {
        let printed_packets = last.tx_packets.saturating_sub(first.tx_packets);
        let printed_us = last.at_us.saturating_sub(first.at_us);
        let rest_packets = sent.stats.tx_packets.saturating_sub(printed_packets);
        let rest_us = sent.forwarding_us().saturating_sub(printed_us);
        if sent.stop_us > last.at_us && rest_us > 0 {
            tx_rows.push((
                sent.on_host(sent.stop_us),
                per_second_of(rest_packets, rest_us),
            ));
        }
    }
    let rx_rows: Vec<(i64, u64)> = received
        .periods
        .iter()
        .skip(1)
        .map(|period| (received.on_host(period.at_us), period.rx_pps))
        .collect();
    let nearest = |at: i64| (0..rx_rows.len()).min_by_key(|&index| rx_rows[index].0.abs_diff(at));
    let mut rows = Vec::new();
    let mut last_rx = None;
    for (at, tx_pps) in tx_rows {
        let rx = nearest(at);
        rows.push(BenchSecond {
            second: rows.len() as u64 + 1,
            tx_pps,
            rx_pps: rx.map_or(0, |index| rx_rows[index].1),
        });
        last_rx = rx.or(last_rx);
    }
    if let Some(last) = last_rx {
        for &(_, rx_pps) in rx_rows[last + 1..].iter().take_while(|(_, pps)| *pps > 0) {
            rows.push(BenchSecond {
                second: rows.len() as u64 + 1,
                tx_pps: 0,
                rx_pps,
            });
        }
    }
    rows
}

/// The baseline's direction from what the transmitter's and the receiver's testpmd
/// printed. Rates are totals over the transmitter's forwarding time, like the agent's.
pub fn direction(
    sent: &RunOutput,
    received: &RunOutput,
    (from, to): (u32, u32),
    size: u32,
    link_drops: u64,
) -> BenchDirection {
    let forwarding_us = sent.forwarding_us();
    let seconds = forwarding_us as f64 / 1e6;
    let mut direction = BenchDirection {
        method: "testpmd".to_owned(),
        from,
        to,
        size,
        duration_ns: forwarding_us.saturating_mul(1000),
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
        per_second: per_second(sent, received),
    };
    direction.account();
    direction
}

/// testpmd running in a VM under ssh: lines arrive on a channel as it prints them,
/// each with the time the host read it.
struct Remote {
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
    fn start(
        vm: &str,
        ssh: &SshFactory,
        command: &str,
        timeout: Duration,
        epoch: Instant,
    ) -> Result<Remote, TestpmdError> {
        let mut attempt = 1;
        loop {
            let mut remote = Remote::spawn(vm, ssh(), command, epoch)?;
            match remote.wait_ready(timeout) {
                Ok(()) => return Ok(remote),
                Err(error) if attempt < SSH_ATTEMPTS && remote.ssh_failed() => {
                    tracing::warn!(%vm, attempt, output = %remote.output(), "ssh failed, trying again");
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
        let tx_handover =
            Handover::parse(&tx_release).map_err(|source| TestpmdError::Untrusted {
                vm: tx.endpoint.name.clone(),
                source,
            })?;
        let rx_handover =
            Handover::parse(&rx_release).map_err(|source| TestpmdError::Untrusted {
                vm: rx.endpoint.name.clone(),
                source,
            })?;
        let unquotable = |vm: &str| {
            let vm = vm.to_owned();
            move |error: crate::shell::NulInWord| TestpmdError::Run {
                vm,
                what: error.to_string(),
                output: String::new(),
            }
        };
        let tx_script = remote_command(
            &arguments(
                &tx_handover,
                &Role::Tx {
                    peer_mac: rx_handover.mac,
                    src_ip: tx_handover.ip,
                    dst_ip: rx_handover.ip,
                    size,
                },
            ),
            Until::Elapsed(duration),
        )
        .map_err(unquotable(&tx.endpoint.name))?;
        let rx_script = remote_command(&arguments(&rx_handover, &Role::Rx), Until::Told)
            .map_err(unquotable(&rx.endpoint.name))?;
        let (tx_vm, rx_vm) = (tx.endpoint.name.clone(), rx.endpoint.name.clone());
        on_step(&format!("testpmd baseline: rxonly starting on {rx_vm}"));
        let blocking = move || -> Result<(RunOutput, RunOutput, u64), TestpmdError> {
            // One clock for both VMs' lines, to line their seconds up.
            let epoch = Instant::now();
            let mut receiver = Remote::start(&rx_vm, &rx_ssh, &rx_script, START_TIMEOUT, epoch)?;
            let drops_before = rx_udp.and_then(udp_drops::read_socket_drops);
            let transmitter = Remote::start(&tx_vm, &tx_ssh, &tx_script, START_TIMEOUT, epoch)?;
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
    Ok(direction(
        &sent,
        &received,
        (u32::from(tx.endpoint.index), u32::from(rx.endpoint.index)),
        size,
        link_drops,
    ))
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

    // What `remote_script` printed around dpdk-testpmd 22.11.11 (Debian 12) with
    // --stats-period=1: txonly for 3 s into one end of a veth pair (net_af_packet,
    // --no-huge) and rxonly on the other end, started 2.5 s earlier and told to stop
    // 1 s after the transmitter's script ended. Both ran on one host, so their stamps
    // share a clock.
    const TXONLY: &str = include_str!("../tests/fixtures/testpmd-22.11-txonly.txt");
    const RXONLY: &str = include_str!("../tests/fixtures/testpmd-22.11-rxonly.txt");

    /// The lines as the host would have read them, `delay_us` after they were stamped,
    /// µs since `BASE_US`; the stamps moved `guest_ahead_us` (a guest clock that is
    /// ahead of the host's).
    fn arrived(text: &str, guest_ahead_us: u64, delay_us: u64) -> Vec<Line> {
        let mut last = 0;
        text.lines()
            .map(|text| match stamped(text) {
                Some((at, line)) => {
                    last = at.saturating_sub(BASE_US) + delay_us;
                    Line {
                        host_us: last,
                        text: format!("T{} {line}", at + guest_ahead_us),
                    }
                }
                None => Line {
                    host_us: last,
                    text: text.to_owned(),
                },
            })
            .collect()
    }

    const BASE_US: u64 = 1_795_820_240_000_000;

    #[test]
    fn parses_txonly_forward_statistics() {
        let stats = parse_forward_stats(TX_OUTPUT).unwrap();
        assert_eq!(stats.tx_packets, 2_612_345);
        assert_eq!(stats.tx_dropped, 40_921);
        assert_eq!(stats.rx_packets, 0);
    }

    #[test]
    fn parses_rx_errors_and_nombufs_when_shown() {
        let stats = parse_forward_stats(RX_OUTPUT).unwrap();
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
    fn parses_the_seconds_and_the_forwarding_time_of_a_real_txonly_run() {
        let run = parse_output(&arrived(TXONLY, 0, 2000)).unwrap();
        assert_eq!(run.stats.tx_packets, 674_688);
        assert_eq!(run.stats.tx_dropped, 0);
        let pps: Vec<u64> = run.periods.iter().map(|p| p.tx_pps).collect();
        assert_eq!(pps, [0, 266_523, 260_243]);
        let sent: Vec<u64> = run.periods.iter().map(|p| p.tx_packets).collect();
        assert_eq!(sent, [96, 266_656, 527_328]);
        assert_eq!(run.periods[0].at_us, 1_795_820_252_420_003);
        // From the line before the statistics reset to "Telling cores to stop...".
        assert_eq!(run.start_us, 1_795_820_252_419_612);
        assert_eq!(run.stop_us, 1_795_820_255_427_961);
        assert_eq!(run.forwarding_us(), 3_008_349);
        assert_eq!(run.clock_offset_us, 2000 - i64::try_from(BASE_US).unwrap());
    }

    #[test]
    fn parses_the_seconds_of_a_real_rxonly_run() {
        let run = parse_output(&arrived(RXONLY, 0, 2000)).unwrap();
        assert_eq!(run.stats.rx_packets, 180_095);
        assert_eq!(run.stats.rx_dropped, 0);
        let pps: Vec<u64> = run.periods.iter().map(|p| p.rx_pps).collect();
        assert_eq!(pps, [0, 0, 0, 21_423, 89_173, 46_745, 22_468]);
        assert_eq!(run.periods.last().unwrap().rx_packets, 180_095);
    }

    #[test]
    fn the_baseline_counts_over_the_transmitters_forwarding_time_and_lines_its_seconds_up() {
        let sent = parse_output(&arrived(TXONLY, 0, 3000)).unwrap();
        // The receiver's guest clock runs 0.7 s ahead of the transmitter's; its lines
        // are put on the host's clock by their own offset.
        let received = parse_output(&arrived(RXONLY, 700_000, 1000)).unwrap();
        let d = direction(&sent, &received, (1, 2), 64, 400_000);
        assert_eq!(d.method, "testpmd");
        assert_eq!(d.duration_ns, 3_008_349_000);
        assert!(
            (d.tx_pps - 674_688.0 / 3.008_349).abs() < 0.01,
            "{}",
            d.tx_pps
        );
        assert!(
            (d.rx_pps - 180_095.0 / 3.008_349).abs() < 0.01,
            "{}",
            d.rx_pps
        );
        assert_eq!(d.unaccounted, 674_688 - 180_095 - 400_000);
        let rows: Vec<(u64, u64, u64)> = d
            .per_second
            .iter()
            .map(|s| (s.second, s.tx_pps, s.rx_pps))
            .collect();
        // tx: the two printed seconds, then the rest of the total (147456 packets in
        // the last 1.004287 s); rx: the receiver's block nearest each (0.23 s after).
        assert_eq!(
            rows,
            [
                (1, 266_523, 89_173),
                (2, 260_243, 46_745),
                (3, 146_826, 22_468)
            ]
        );
    }

    #[test]
    fn receiver_seconds_with_packets_after_the_transmitter_stopped_follow_with_tx_0() {
        let period = |at_s: u64, pps: u64| Period {
            at_us: at_s * 1_000_000,
            rx_pps: pps,
            tx_pps: pps,
            ..Period::default()
        };
        let run = |periods: Vec<Period>, stop_s: u64, packets: u64| RunOutput {
            stats: ForwardStats {
                rx_packets: packets,
                tx_packets: packets,
                ..ForwardStats::default()
            },
            start_us: periods[0].at_us,
            stop_us: stop_s * 1_000_000,
            periods,
            clock_offset_us: 0,
        };
        let mut sent = run(vec![period(10, 0), period(11, 100)], 12, 100);
        sent.periods[1].tx_packets = 100;
        let rx_pps = [0, 0, 0, 60, 30, 10, 0, 5];
        let received = run(
            (8..=15)
                .zip(rx_pps)
                .map(|(s, pps)| period(s, pps))
                .collect(),
            16,
            100,
        );
        let rows: Vec<(u64, u64, u64)> = per_second(&sent, &received)
            .iter()
            .map(|s| (s.second, s.tx_pps, s.rx_pps))
            .collect();
        // Nothing was left over for the transmitter's unprinted last second (tx 0);
        // the drain ends at the receiver's first empty second.
        assert_eq!(rows, [(1, 100, 60), (2, 0, 30), (3, 0, 10)]);
    }

    #[test]
    fn output_without_statistics_is_refused() {
        let lines = |text: &str| arrived(text, 0, 0);
        let error = parse_output(&lines("T1 EAL: Cannot init memory\nEXIT 1\n")).unwrap_err();
        assert!(error.contains("forward statistics"), "{error}");
        let stamp = |text: &str| -> String { text.lines().map(|l| format!("T5 {l}\n")).collect() };
        let error = parse_output(&lines(&stamp(TX_OUTPUT))).unwrap_err();
        assert!(error.contains("per-second"), "{error}");
        let no_stop = TXONLY.replace("Telling cores", "Asking cores");
        let error = parse_output(&lines(&no_stop)).unwrap_err();
        assert!(error.contains("Telling cores to stop"), "{error}");
    }

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
