//! Workloads that run on a [`DataPort`]: reflector, ping-pong initiator, packet-rate
//! bench. Each polls the port until done or stopped, answers ARP for the port's IP
//! the whole time, and publishes live counters through atomics.

pub mod bench;
pub mod idle;
pub mod kernel;
pub mod pingpong;
pub mod reflect;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use bench::{
    bench, BenchCounters, BenchLive, BenchMode, BenchParams, BenchReport, BenchSecond,
};
pub use idle::IdleCounters;
pub use pingpong::{pingpong, PingPongLive, PingPongParams, PingPongReport, PingPongSnapshot};
pub use reflect::{reflect, ReflectCounters, ReflectLive};

use crate::datapath::{DataPort, DatapathError};
use crate::mbuf::{Mbuf, MbufBatch};
use crate::mempool::MempoolError;
use crate::packet::{self, ArpOp, Frame, MacAddr, BROADCAST_MAC};

/// Asks a running workload to finish. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    stopped: Arc<AtomicBool>,
}

impl StopSignal {
    /// A signal not yet raised.
    pub fn new() -> StopSignal {
        StopSignal::default()
    }

    /// Asks every workload watching this signal to stop.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Whether stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }
}

/// A workload parameter out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct InvalidParam {
    /// The parameter's name.
    pub field: &'static str,
    /// What is wrong, with the value given.
    pub message: String,
}

impl InvalidParam {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> InvalidParam {
        InvalidParam {
            field,
            message: message.into(),
        }
    }
}

/// Checks a peer MAC given instead of ARP: it must be unicast (the group bit is
/// multicast and broadcast).
pub(crate) fn validate_peer_mac(mac: Option<packet::MacAddr>) -> Result<(), InvalidParam> {
    match mac {
        Some(mac) if mac[0] & 1 == 1 => Err(InvalidParam::new(
            "peer_mac",
            format!("{} is not a unicast MAC address", packet::format_mac(&mac)),
        )),
        _ => Ok(()),
    }
}

/// Checks a frame size for test traffic: 64..=1514 bytes.
pub(crate) fn validate_frame_size(size: u16) -> Result<(), InvalidParam> {
    if (packet::MIN_FRAME_SIZE..=packet::MAX_FRAME_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(InvalidParam::new(
            "frame_size",
            format!(
                "must be {}..={} (Ethernet frame without FCS), got {size}",
                packet::MIN_FRAME_SIZE,
                packet::MAX_FRAME_SIZE
            ),
        ))
    }
}

/// Why a workload failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// A parameter is out of range.
    #[error("invalid parameter")]
    InvalidParam(#[from] InvalidParam),
    /// The peer did not answer ARP.
    #[error("peer {ip} did not answer ARP within {waited:?}")]
    PeerUnreachable {
        /// The peer's IP.
        ip: Ipv4Addr,
        /// How long we asked.
        waited: Duration,
    },
    /// No mbuf could be had for a packet.
    #[error("out of packet buffers")]
    Mempool(#[from] MempoolError),
    /// A port query failed.
    #[error("data port")]
    Datapath(#[from] DatapathError),
    /// A frame could not be built.
    #[error("building a frame")]
    Packet(#[from] packet::PacketError),
    /// A kernel socket failed (kernel-stack baselines).
    #[error("UDP socket {what}")]
    Socket {
        /// What was being done, with the address.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Stopped before the workload could do anything useful (e.g. during ARP).
    #[error("stopped before the peer was resolved")]
    Stopped,
}

/// Rx polls that found nothing before the loop yields the CPU once: busy polling is
/// the point of DPDK, but an idle workload should not starve others on a small VM.
pub(crate) const IDLE_POLLS_BEFORE_YIELD: u32 = 1024;
/// Under emulation: empty polls before the loop sleeps.
const IDLE_POLLS_BEFORE_SLEEP: u32 = 4;
/// Under emulation: how long the loop sleeps. Short next to what a virtio ring holds
/// at the rates TCG reaches (256 descriptors at ~100k pps: 2.5 ms).
const EMULATED_IDLE_SLEEP: Duration = Duration::from_micros(50);

/// What a receive loop does when polls come back empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Keep polling; yield the CPU once after a long run of empty polls.
    Poll,
    /// Sleep after a few empty polls, so the vCPU halts and the host runs QEMU's
    /// device thread, which fills the ring (what helps under TCG, where that thread
    /// and the polling vCPU share the host's cores).
    Sleep(Duration),
}

impl IdlePolicy {
    /// Sleep under TCG, poll everywhere else.
    pub fn for_this_cpu() -> IdlePolicy {
        if crate::cpu::is_tcg() {
            IdlePolicy::Sleep(EMULATED_IDLE_SLEEP)
        } else {
            IdlePolicy::Poll
        }
    }
}

/// Counts empty polls and yields or sleeps after a run of them (see [`IdlePolicy`]).
#[derive(Debug)]
pub(crate) struct IdleBackoff {
    policy: IdlePolicy,
    empty_polls: u32,
}

impl Default for IdleBackoff {
    fn default() -> Self {
        IdleBackoff::new(IdlePolicy::Poll)
    }
}

impl IdleBackoff {
    pub(crate) fn new(policy: IdlePolicy) -> IdleBackoff {
        IdleBackoff {
            policy,
            empty_polls: 0,
        }
    }

    pub(crate) fn record(&mut self, received: usize) {
        if received > 0 {
            self.empty_polls = 0;
            return;
        }
        self.empty_polls += 1;
        match self.policy {
            IdlePolicy::Poll if self.empty_polls >= IDLE_POLLS_BEFORE_YIELD => {
                self.empty_polls = 0;
                std::thread::yield_now();
            }
            IdlePolicy::Sleep(pause) if self.empty_polls >= IDLE_POLLS_BEFORE_SLEEP => {
                self.empty_polls = 0;
                std::thread::sleep(pause);
            }
            _ => {}
        }
    }
}

/// Answers ARP requests for the port's IP. Given a received mbuf, turns an ARP request
/// for us into the reply in place (no allocation) and returns it for sending.
pub(crate) fn arp_reply_in_place(mut mbuf: Mbuf, mac: MacAddr, ip: Ipv4Addr) -> ArpOutcome {
    let request = match packet::parse(mbuf.data()) {
        Ok(Frame::Arp { arp, .. }) => arp,
        _ => return ArpOutcome::NotArp(mbuf),
    };
    if request.op != ArpOp::Request || request.target_ip != ip {
        return ArpOutcome::Consumed(Some(request));
    }
    let reply = packet::arp_reply(&request, mac);
    let built = mbuf
        .set_len(packet::ETH_MIN_FRAME)
        .map_err(|_| ())
        .and_then(|frame| packet::build_arp(frame, request.sender_mac, &reply).map_err(|_| ()));
    match built {
        Ok(_) => ArpOutcome::Reply(mbuf, request),
        Err(()) => ArpOutcome::Consumed(Some(request)),
    }
}

/// A responder's first step on each received frame: an ARP request for us becomes a
/// reply queued on `arp_tx`, any other ARP is counted in `ignored`; everything else
/// comes back to be looked at.
pub(crate) fn answer_arp(
    mbuf: Mbuf,
    mac: MacAddr,
    ip: Ipv4Addr,
    arp_tx: &mut MbufBatch,
    ignored: &mut u64,
) -> Option<Mbuf> {
    match arp_reply_in_place(mbuf, mac, ip) {
        ArpOutcome::NotArp(mbuf) => Some(mbuf),
        ArpOutcome::Reply(reply, _) => {
            let _ = arp_tx.push(reply);
            None
        }
        ArpOutcome::Consumed(_) => {
            *ignored += 1;
            None
        }
    }
}

/// What [`arp_reply_in_place`] made of a frame.
pub(crate) enum ArpOutcome {
    /// Not ARP: the mbuf, untouched.
    NotArp(Mbuf),
    /// ARP not needing an answer from us (the parsed packet, for learning).
    Consumed(Option<packet::ArpPacket>),
    /// Our reply to send, and the request it answers.
    Reply(Mbuf, packet::ArpPacket),
}

/// Sends what `batch` holds, retrying while the tx ring is full until `deadline`;
/// frees what could not be sent. Returns (sent, dropped).
pub(crate) fn flush(
    port: &mut DataPort,
    batch: &mut MbufBatch,
    deadline: Instant,
) -> (usize, usize) {
    let mut sent = 0;
    while !batch.is_empty() {
        sent += port.port_mut().tx_burst(batch);
        if batch.is_empty() || Instant::now() >= deadline {
            break;
        }
    }
    let dropped = batch.len();
    batch.clear();
    (sent, dropped)
}

/// Resolves `peer` to a MAC by ARP: a request every 200 ms until a reply or `timeout`.
/// Answers ARP for our IP meanwhile (the peer may be resolving us at the same time)
/// and learns the peer's MAC from its requests too. Other frames are dropped.
pub(crate) fn resolve_peer(
    port: &mut DataPort,
    peer: Ipv4Addr,
    timeout: Duration,
    stop: &StopSignal,
) -> Result<MacAddr, WorkloadError> {
    const RETRY: Duration = Duration::from_millis(200);
    let (mac, ip) = (port.mac(), port.ip());
    let started = Instant::now();
    let mut next_request = started;
    let mut rx = MbufBatch::new();
    let mut tx = MbufBatch::new();
    let mut idle = IdleBackoff::default();
    loop {
        if stop.is_stopped() {
            return Err(WorkloadError::Stopped);
        }
        let now = Instant::now();
        if now.duration_since(started) >= timeout {
            return Err(WorkloadError::PeerUnreachable {
                ip: peer,
                waited: timeout,
            });
        }
        if now >= next_request {
            let mut mbuf = port.mempool().alloc()?;
            let frame = mbuf
                .set_len(packet::ETH_MIN_FRAME)
                .map_err(|_| packet::PacketError::NotUdp)?;
            packet::build_arp(frame, BROADCAST_MAC, &packet::arp_request(mac, ip, peer))?;
            let _ = tx.push(mbuf);
            flush(port, &mut tx, now + RETRY);
            next_request = now + RETRY;
        }
        let received = port.port_mut().rx_burst(&mut rx);
        idle.record(received);
        let mut learned = None;
        for mbuf in rx.drain() {
            match arp_reply_in_place(mbuf, mac, ip) {
                ArpOutcome::Reply(reply, request) => {
                    if request.sender_ip == peer {
                        learned = Some(request.sender_mac);
                    }
                    let _ = tx.push(reply);
                }
                // Learn from any ARP the peer sent: its reply, or its own request for
                // someone (virtual ports such as net_ring may have an all-zero MAC).
                ArpOutcome::Consumed(Some(arp)) => {
                    if arp.sender_ip == peer {
                        learned = Some(arp.sender_mac);
                    }
                }
                ArpOutcome::Consumed(None) | ArpOutcome::NotArp(_) => {}
            }
        }
        flush(port, &mut tx, Instant::now() + RETRY);
        if let Some(peer_mac) = learned {
            tracing::info!(%peer, mac = %packet::format_mac(&peer_mac), "peer resolved");
            return Ok(peer_mac);
        }
    }
}
