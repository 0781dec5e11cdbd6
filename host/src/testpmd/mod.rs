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

//!
//! Three parts: [`remote`] (the runner's command line, the agents' handover values
//! parsed, testpmd under ssh with its line channel), [`parse`] (testpmd's output, with
//! fixtures of real runs) and, here, the bench that puts them together.

pub mod parse;
pub mod remote;

use std::net::SocketAddrV4;
use std::process::Command;
use std::time::{Duration, Instant};

use agent_proto::v1;

use crate::drive::{Agent, DriveError};
use crate::results::{udp_drops, BenchDirection};

pub use parse::{
    direction, parse_forward_stats, parse_output, per_second, ForwardStats, Line, Period, RunOutput,
};
use remote::Remote;
pub use remote::{
    arguments, remote_command, EalArg, Handover, PciAddress, Role, Until, UntrustedValue,
};

/// Where testpmd is in the guest image (Debian's dpdk package).
pub const TESTPMD: &str = "/usr/bin/dpdk-testpmd";
/// testpmd's mbuf pool: 8192 mbufs of 2176 bytes plus headers, about 19 MB.
pub(crate) const TOTAL_MBUFS: u32 = 8192;
/// 2 MiB pages testpmd needs for that pool, its rings and EAL's own structures.
pub const NEEDED_HUGEPAGES: u64 = 16;
/// testpmd starts slowly under TCG (EAL init, PCI probe, port start).
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(240);
/// How long the receiver keeps counting after the transmitter stops.
const DRAIN: Duration = Duration::from_secs(1);
/// testpmd's statistics period (`--stats-period`); the transmitter is signalled half of
/// it before the duration ends (it stops at its next wake-up).
pub(crate) const STATS_PERIOD: Duration = Duration::from_secs(1);
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
