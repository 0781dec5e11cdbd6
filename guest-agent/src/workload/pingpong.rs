//! Ping-pong initiator: sends numbered test frames to a reflector and records every
//! round-trip time.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{
    arp_reply_in_place, flush, resolve_peer, validate_frame_size, validate_peer_mac, ArpOutcome,
    IdleBackoff, InvalidParam, StopSignal, WorkloadError,
};
use crate::datapath::DataPort;
use crate::eal::now_ns;
use crate::mbuf::MbufBatch;
use crate::packet::{self, Frame, MacAddr, PayloadHeader, TestFrameTemplate, UdpEndpoints};

/// Most packets one run may send: per-packet state is kept for duplicate and loss
/// detection (9 bytes each).
pub const MAX_COUNT: u64 = 10_000_000;
/// Most packets in flight at once.
pub const MAX_WINDOW: u32 = 4096;
/// Longest per-packet timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Shortest time given to ARP, whatever the per-packet timeout.
const MIN_ARP_WAIT: Duration = Duration::from_secs(3);
/// Highest RTT the histogram holds; longer ones are clamped (they are timeouts anyway).
pub(crate) const HISTOGRAM_MAX_NS: u64 = 120_000_000_000;

/// What a ping-pong run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingPongParams {
    /// The reflector's IP on the data link.
    pub peer_ip: Ipv4Addr,
    /// Packets to send.
    pub count: u64,
    /// Frame size, 64..=1514.
    pub frame_size: u16,
    /// Gap between sends; `None` sends back to back, limited by `window`.
    pub interval: Option<Duration>,
    /// Most packets in flight (1 = strict ping-pong).
    pub window: u32,
    /// How long to wait for each packet's reply before counting it lost.
    pub timeout: Duration,
    /// The peer's MAC when known: no ARP first (a DUT answers none).
    pub peer_mac: Option<MacAddr>,
    /// The peer is a DUT forwarding the frames back (needs `peer_mac`): a reply counts
    /// whether the DUT swapped only the MACs (testpmd macswap, io) or the IPs and UDP
    /// ports too (5tswap).
    pub through_dut: bool,
}

impl PingPongParams {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), InvalidParam> {
        validate_frame_size(self.frame_size)?;
        if self.count == 0 || self.count > MAX_COUNT {
            return Err(InvalidParam::new(
                "count",
                format!("must be 1..={MAX_COUNT}, got {}", self.count),
            ));
        }
        if self.window == 0 || self.window > MAX_WINDOW {
            return Err(InvalidParam::new(
                "window",
                format!("must be 1..={MAX_WINDOW}, got {}", self.window),
            ));
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(InvalidParam::new(
                "timeout",
                format!(
                    "must be above 0 and at most {MAX_TIMEOUT:?}, got {:?}",
                    self.timeout
                ),
            ));
        }
        if self.through_dut && self.peer_mac.is_none() {
            return Err(InvalidParam::new(
                "through_dut",
                "needs peer_mac: a DUT answers no ARP",
            ));
        }
        validate_peer_mac(self.peer_mac)?;
        if self.peer_ip.is_unspecified()
            || self.peer_ip.is_broadcast()
            || self.peer_ip.is_multicast()
        {
            return Err(InvalidParam::new(
                "peer_ip",
                format!("{} is not a unicast address", self.peer_ip),
            ));
        }
        Ok(())
    }
}

/// Live ping-pong counters.
#[derive(Debug, Default)]
pub struct PingPongLive {
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) last_rtt_ns: AtomicU64,
    pub(crate) started: OnceLock<Instant>,
}

/// A point-in-time view of [`PingPongLive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingPongSnapshot {
    /// Packets sent.
    pub sent: u64,
    /// Replies received (first copy of each).
    pub received: u64,
    /// Packets given up on (timeout or stop).
    pub lost: u64,
    /// Round-trip time of the latest reply.
    pub last_rtt_ns: u64,
    /// Time since the first packet was sent.
    pub elapsed: Duration,
}

impl PingPongLive {
    /// The counters now.
    pub fn snapshot(&self) -> PingPongSnapshot {
        PingPongSnapshot {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            last_rtt_ns: self.last_rtt_ns.load(Ordering::Relaxed),
            elapsed: self.started.get().map(Instant::elapsed).unwrap_or_default(),
        }
    }
}

/// Outcome of a ping-pong run.
#[derive(Debug, Clone)]
pub struct PingPongReport {
    /// Packets sent.
    pub sent: u64,
    /// Replies received (first copy of each).
    pub received: u64,
    /// Packets without a reply within the timeout (or still in flight at stop).
    pub lost: u64,
    /// Extra copies of replies already received.
    pub duplicates: u64,
    /// Replies that arrived after a reply to a later packet.
    pub reordered: u64,
    /// From the first send to the last reply or timeout.
    pub elapsed: Duration,
    /// Round-trip times in nanoseconds.
    pub rtt: Histogram<u64>,
    /// The peer's MAC (from ARP).
    pub peer_mac: MacAddr,
    /// Frame size used.
    pub frame_size: u16,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Unsent,
    InFlight,
    Answered,
    Lost,
}

/// What an arriving answer was.
pub(crate) enum Answer {
    /// The first answer to a packet in flight: its round trip, and whether a later
    /// packet was answered before it.
    First { rtt_ns: u64, reordered: bool },
    /// Another answer to a packet already answered.
    Duplicate,
    /// An answer after the packet was counted lost (or to one never sent).
    Late,
}

/// A run's bookkeeping at its start: the tracker, the round-trip histogram (1 ns to
/// [`HISTOGRAM_MAX_NS`], 3 significant digits) and the answer timeout in ns.
pub(crate) fn bookkeeping(
    p: &PingPongParams,
) -> Result<(Tracker, Histogram<u64>, u64), InvalidParam> {
    let rtt = Histogram::<u64>::new_with_bounds(1, HISTOGRAM_MAX_NS, 3)
        .map_err(|err| InvalidParam::new("histogram", err.to_string()))?;
    let timeout_ns = u64::try_from(p.timeout.as_nanos()).unwrap_or(u64::MAX);
    Ok((Tracker::new(p.count), rtt, timeout_ns))
}

/// A run's answers, counted.
#[derive(Debug, Default)]
pub(crate) struct AnswerCounts {
    /// First answers.
    pub(crate) received: u64,
    /// Answers to packets already answered.
    pub(crate) duplicates: u64,
    /// First answers that came after a later packet's.
    pub(crate) reordered: u64,
}

impl AnswerCounts {
    /// The run's report, logged. (Every argument is one field of the report; a struct
    /// to carry them would be the report itself.)
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn report(
        self,
        what: &str,
        sent: u64,
        lost: u64,
        started: Instant,
        rtt: Histogram<u64>,
        peer_mac: [u8; 6],
        frame_size: u16,
    ) -> PingPongReport {
        let elapsed = started.elapsed();
        tracing::info!(
            sent,
            received = self.received,
            lost,
            duplicates = self.duplicates,
            reordered = self.reordered,
            "{what} done"
        );
        PingPongReport {
            sent,
            received: self.received,
            lost,
            duplicates: self.duplicates,
            reordered: self.reordered,
            elapsed,
            rtt,
            peer_mac,
            frame_size,
        }
    }

    /// Counts `answer`; a first answer's round trip goes into `rtt` and `live`.
    pub(crate) fn count(&mut self, answer: Answer, rtt: &mut Histogram<u64>, live: &PingPongLive) {
        match answer {
            Answer::First { rtt_ns, reordered } => {
                self.received += 1;
                rtt.saturating_record(rtt_ns);
                live.last_rtt_ns.store(rtt_ns, Ordering::Relaxed);
                if reordered {
                    self.reordered += 1;
                }
            }
            Answer::Duplicate => self.duplicates += 1,
            Answer::Late => {}
        }
    }
}

/// Per-run bookkeeping, allocated once before the first packet.
pub(crate) struct Tracker {
    pub(crate) slots: Vec<Slot>,
    pub(crate) sent_ns: Vec<u64>,
    /// Every seq below this is answered or lost.
    pub(crate) oldest_open: u64,
    pub(crate) in_flight: u64,
    pub(crate) highest_answered: Option<u64>,
}

impl Tracker {
    /// Nothing sent yet, room for `count` packets.
    pub(crate) fn new(count: u64) -> Self {
        let len = Self::slot_index(count);
        Tracker {
            slots: vec![Slot::Unsent; len],
            sent_ns: vec![0; len],
            oldest_open: 0,
            in_flight: 0,
            highest_answered: None,
        }
    }

    pub(crate) fn slot_index(seq: u64) -> usize {
        // count <= MAX_COUNT, so every seq fits usize.
        usize::try_from(seq).unwrap_or(usize::MAX)
    }

    /// Accounts for an answer to `seq`, sent at `tx_ns` (our own timestamp, returned
    /// untouched), arriving at `now`.
    pub(crate) fn answer(&mut self, seq: u64, tx_ns: u64, now: u64) -> Answer {
        let index = Tracker::slot_index(seq);
        match self.slots[index] {
            Slot::InFlight => {
                self.slots[index] = Slot::Answered;
                self.in_flight -= 1;
                let reordered = self.highest_answered.is_some_and(|highest| seq < highest);
                self.highest_answered = Some(self.highest_answered.map_or(seq, |h| h.max(seq)));
                Answer::First {
                    rtt_ns: now.saturating_sub(tx_ns).clamp(1, HISTOGRAM_MAX_NS),
                    reordered,
                }
            }
            Slot::Answered => Answer::Duplicate,
            // A reply after its timeout stays counted as lost.
            Slot::Lost | Slot::Unsent => Answer::Late,
        }
    }

    /// Marks expired packets lost; returns how many.
    pub(crate) fn expire(&mut self, now: u64, timeout_ns: u64, sent_up_to: u64) -> u64 {
        let mut lost = 0;
        while self.oldest_open < sent_up_to {
            let index = Tracker::slot_index(self.oldest_open);
            match self.slots[index] {
                Slot::InFlight if now.saturating_sub(self.sent_ns[index]) >= timeout_ns => {
                    self.slots[index] = Slot::Lost;
                    self.in_flight -= 1;
                    lost += 1;
                }
                Slot::InFlight | Slot::Unsent => break,
                Slot::Answered | Slot::Lost => {}
            }
            self.oldest_open += 1;
        }
        lost
    }
}

/// Runs ping-pong against the reflector at `p.peer_ip`: resolves it by ARP, sends
/// `p.count` frames and waits for each to come back. Answers ARP for the port's IP
/// throughout.
pub fn pingpong(
    port: &mut DataPort,
    p: &PingPongParams,
    live: &PingPongLive,
    stop: &StopSignal,
) -> Result<PingPongReport, WorkloadError> {
    p.validate()?;
    // A mempool cache for this thread: the fast path allocates and frees mbufs.
    let _lcore = crate::eal::register_current_thread();
    let (mac, ip) = (port.mac(), port.ip());
    let peer_mac = match p.peer_mac {
        Some(mac) => mac,
        None => resolve_peer(port, p.peer_ip, p.timeout.max(MIN_ARP_WAIT), stop)?,
    };
    let endpoints = UdpEndpoints {
        src_mac: mac,
        dst_mac: peer_mac,
        src_ip: ip,
        dst_ip: p.peer_ip,
        src_port: packet::TEST_UDP_PORT,
        dst_port: packet::TEST_UDP_PORT,
    };
    let frame_len = usize::from(p.frame_size);
    let template = TestFrameTemplate::new(frame_len, &endpoints)?;

    let (mut tracker, mut rtt, timeout_ns) = bookkeeping(p)?;
    let window = u64::from(p.window);
    let mut lost = 0u64;
    let mut counts = AnswerCounts::default();
    // Packets [first_pending..next_seq) are built and waiting in `pending` for tx room.
    let (mut next_seq, mut first_pending) = (0u64, 0u64);
    let mut pending = MbufBatch::new();
    let mut rx = MbufBatch::new();
    let mut arp_tx = MbufBatch::new();
    let mut idle = IdleBackoff::default();
    let started = Instant::now();
    let _ = live.started.set(started);
    let mut next_send = started;
    tracing::info!(peer = %p.peer_ip, count = p.count, size = p.frame_size, window = p.window, "ping-pong running");

    loop {
        if stop.is_stopped() {
            break;
        }
        let now = Instant::now();
        // Build what the window and the schedule allow.
        let open = tracker.in_flight + (next_seq - first_pending);
        let mut can_build = (window.saturating_sub(open)).min(p.count - next_seq);
        if let Some(interval) = p.interval {
            if now < next_send {
                can_build = 0;
            } else {
                can_build = can_build.min(1);
                if can_build == 1 {
                    next_send = if now.duration_since(next_send) > interval {
                        now + interval
                    } else {
                        next_send + interval
                    };
                }
            }
        }
        let can_build = usize::try_from(can_build)
            .unwrap_or(usize::MAX)
            .min(pending.room());
        for _ in 0..can_build {
            let mut mbuf = port.mempool().alloc()?;
            let frame = mbuf
                .set_len(frame_len)
                .map_err(|_| packet::PacketError::FrameSize {
                    size: frame_len,
                    min: 64,
                    max: 1514,
                })?;
            template.write(frame, next_seq, now_ns())?;
            let _ = pending.push(mbuf);
            next_seq += 1;
        }
        if !pending.is_empty() {
            let sent = port.port_mut().tx_burst(&mut pending) as u64;
            let stamp = now_ns();
            for seq in first_pending..first_pending + sent {
                let index = Tracker::slot_index(seq);
                tracker.slots[index] = Slot::InFlight;
                tracker.sent_ns[index] = stamp;
            }
            first_pending += sent;
            tracker.in_flight += sent;
            live.sent.store(first_pending, Ordering::Relaxed);
        }

        let got = port.port_mut().rx_burst(&mut rx);
        idle.record(got);
        for mbuf in rx.drain() {
            let mbuf = match arp_reply_in_place(mbuf, mac, ip) {
                ArpOutcome::NotArp(mbuf) => mbuf,
                ArpOutcome::Reply(reply, _) => {
                    let _ = arp_tx.push(reply);
                    continue;
                }
                ArpOutcome::Consumed(_) => continue,
            };
            let now = now_ns();
            let header = match packet::parse(mbuf.data()) {
                Ok(Frame::Udp(udp))
                    if udp.dst_port == packet::TEST_UDP_PORT
                        && ((udp.src_ip == p.peer_ip && udp.dst_ip == ip)
                            || (p.through_dut && udp.src_ip == ip && udp.dst_ip == p.peer_ip)) =>
                {
                    PayloadHeader::parse(udp.payload).ok()
                }
                _ => None,
            };
            let Some(header) = header.filter(|h| h.seq < first_pending) else {
                continue;
            };
            counts.count(
                tracker.answer(header.seq, header.tx_ns, now),
                &mut rtt,
                live,
            );
        }
        if !arp_tx.is_empty() {
            flush(
                port,
                &mut arp_tx,
                Instant::now() + Duration::from_micros(200),
            );
        }
        lost += tracker.expire(now_ns(), timeout_ns, first_pending);
        live.received.store(counts.received, Ordering::Relaxed);
        live.lost.store(lost, Ordering::Relaxed);
        if first_pending == p.count && tracker.in_flight == 0 {
            break;
        }
    }
    // Stopped early: what is still in flight never got its answer.
    lost += tracker.in_flight;
    live.lost.store(lost, Ordering::Relaxed);
    Ok(counts.report(
        "ping-pong",
        first_pending,
        lost,
        started,
        rtt,
        peer_mac,
        p.frame_size,
    ))
}
