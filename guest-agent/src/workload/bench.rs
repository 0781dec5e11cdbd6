//! Packet-rate bench: transmit at a target or maximum rate, receive and count, or both.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{
    arp_reply_in_place, flush, resolve_peer, validate_frame_size, validate_peer_mac, ArpOutcome,
    IdleBackoff, IdlePolicy, InvalidParam, StopSignal, WorkloadError,
};
use crate::datapath::{DataPort, PortStats};
use crate::eal::now_ns;
use crate::mbuf::{Mbuf, MbufBatch, MAX_BURST};
use crate::mempool::MempoolError;
use crate::packet::{self, MacAddr, ProbeLeg, TestFrameTemplate, UdpEndpoints};
use crate::workload::pingpong::HISTOGRAM_MAX_NS;

/// Highest rate one can ask for (far above what one core moves).
pub const MAX_RATE_PPS: u64 = 1_000_000_000;
/// Longest drain after sending.
pub const MAX_DRAIN: Duration = Duration::from_secs(60);
/// How long to wait for the peer's ARP answer.
const ARP_WAIT: Duration = Duration::from_secs(5);
const NS_PER_SEC: u64 = 1_000_000_000;
/// How often the live counters are published: often enough for any progress display,
/// rarely enough that the shared cache line stays out of the per-burst path.
const PUBLISH_INTERVAL_NS: u64 = 1_000_000;
/// Passes of the loop per clock read when not pacing: reading the TSC costs as much as
/// the rest of an empty pass (a tenth of the receiver's own time at 8 passes per read),
/// and the clock only ends the run and the seconds, where a few passes (at most ~50 µs
/// of full bursts) late is fine.
const CLOCK_READ_INTERVAL: u32 = 32;
/// CPU pause instructions after the tx ring refused packets, before offering again.
const TX_FULL_PAUSES: u32 = 16;
/// A sender in Tx mode polls for ARP once per this many sends (on every pass when it
/// probes latency, so a returned probe waits for no sends).
const TX_ONLY_RX_POLL_INTERVAL: u32 = 16;
/// Most latency probes a second: enough for percentiles in a short trial, few enough
/// to stay a small share of the load they measure.
pub const MAX_PROBE_RATE_PPS: u32 = 100_000;

/// What the bench does on this port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BenchMode {
    /// Send only.
    Tx,
    /// Receive and count only.
    Rx,
    /// Send and receive.
    Both,
}

/// Bench parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchParams {
    /// Send, receive or both.
    pub mode: BenchMode,
    /// Where to send (required for Tx and Both).
    pub peer_ip: Option<Ipv4Addr>,
    /// The peer's MAC when known: frames go to it without asking ARP first (like
    /// dpdk-testpmd's `--eth-peer`), for peers that do not answer ARP.
    pub peer_mac: Option<MacAddr>,
    /// Frame size, 64..=1514.
    pub frame_size: u16,
    /// Target send rate; `None` sends as fast as the port takes packets.
    pub rate_pps: Option<u64>,
    /// How long to send (Tx, Both) or receive (Rx).
    pub duration: Option<Duration>,
    /// How many packets to send (Tx, Both) or receive (Rx).
    pub count: Option<u64>,
    /// Packets per tx and per rx burst, 1..=64.
    pub burst: u16,
    /// After sending, how long to keep receiving (late packets, ARP) before finishing.
    pub drain: Duration,
    /// Latency probes per second sent alongside the load (Tx, Both): timestamped
    /// frames the receiver returns, whose round trips make [`BenchReport::probe_rtt`].
    /// A receiver returns every probe it gets, whatever this says.
    pub probe_rate_pps: Option<u32>,
    /// Send the probes only, no load: the latency of an idle link.
    pub probe_only: bool,
    /// The peer is a DUT that forwards this port's frames back to it (Both only, with
    /// `peer_mac`): the test frames received are this port's own, and a probe that
    /// comes back is this port's whether the DUT swapped only its MACs (testpmd
    /// macswap, io) or its addresses and ports too (5tswap).
    pub through_dut: bool,
}

impl BenchParams {
    /// Checks every parameter's range. Without duration or count the bench runs until
    /// stopped.
    pub fn validate(&self) -> Result<(), InvalidParam> {
        validate_frame_size(self.frame_size)?;
        if self.rate_pps == Some(0) || self.rate_pps.is_some_and(|rate| rate > MAX_RATE_PPS) {
            return Err(InvalidParam::new(
                "rate_pps",
                format!(
                    "must be 1..={MAX_RATE_PPS} packets per second (or unset for the maximum), got {}",
                    self.rate_pps.unwrap_or(0)
                ),
            ));
        }
        if self.burst == 0 || usize::from(self.burst) > MAX_BURST {
            return Err(InvalidParam::new(
                "burst",
                format!("must be 1..={MAX_BURST}, got {}", self.burst),
            ));
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err(InvalidParam::new("duration", "must be above 0 (or unset)"));
        }
        if self.count == Some(0) {
            return Err(InvalidParam::new("count", "must be above 0 (or unset)"));
        }
        if let Some(rate) = self.probe_rate_pps {
            if rate == 0 || rate > MAX_PROBE_RATE_PPS {
                return Err(InvalidParam::new(
                    "probe_rate_pps",
                    format!("must be 1..={MAX_PROBE_RATE_PPS} probes per second (or unset for no probes), got {rate}"),
                ));
            }
            if self.mode == BenchMode::Rx {
                return Err(InvalidParam::new(
                    "probe_rate_pps",
                    "is only used to send (mode tx or both); a receiver returns probes anyway",
                ));
            }
        }
        if self.probe_only && self.probe_rate_pps.is_none() {
            return Err(InvalidParam::new(
                "probe_only",
                "needs probe_rate_pps (probes are all it sends)",
            ));
        }
        if self.drain > MAX_DRAIN {
            return Err(InvalidParam::new(
                "drain",
                format!("must be at most {MAX_DRAIN:?}, got {:?}", self.drain),
            ));
        }
        if self.peer_mac.is_some() && self.mode == BenchMode::Rx {
            return Err(InvalidParam::new(
                "peer_mac",
                "is only used to send (mode tx or both)",
            ));
        }
        validate_peer_mac(self.peer_mac)?;
        if self.through_dut && (self.mode != BenchMode::Both || self.peer_mac.is_none()) {
            return Err(InvalidParam::new(
                "through_dut",
                "needs mode both (the frames come back to the sender) and peer_mac (a DUT answers no ARP)",
            ));
        }
        match (self.mode, self.peer_ip) {
            (BenchMode::Tx | BenchMode::Both, None) => Err(InvalidParam::new(
                "peer_ip",
                "is required to send (mode tx or both)",
            )),
            (_, Some(ip)) if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() => Err(
                InvalidParam::new("peer_ip", format!("{ip} is not a unicast address")),
            ),
            _ => Ok(()),
        }
    }
}

/// Bench counters (from the workload's point of view; the port's own counters are in
/// [`BenchReport::port`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BenchCounters {
    /// Test frames the driver accepted for sending.
    pub tx_packets: u64,
    /// Their bytes (frame without FCS).
    pub tx_bytes: u64,
    /// Packets the driver refused at their first offer (tx ring full). They stay
    /// queued and are offered again: back-pressure, not loss.
    pub tx_ring_full: u64,
    /// Test frames received.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Sequence numbers skipped in the received stream (lost before us, or late).
    pub rx_seq_gaps: u64,
    /// Test frames that came after a later one (reordered: counted in `rx_seq_gaps`
    /// when their turn passed, so lost = gaps - reordered).
    pub rx_reordered: u64,
    /// Other frames received (ARP, foreign traffic, probes).
    pub rx_other: u64,
    /// Time since the bench started.
    #[serde(serialize_with = "serialize_duration_secs")]
    pub elapsed: Duration,
    /// How long the sender sent: from the start to the moment it stopped sending (by
    /// duration, count or stop), the time its rate is over. Zero for a receiver.
    #[serde(serialize_with = "serialize_duration_secs")]
    pub send_elapsed: Duration,
    /// Latency probes sent.
    pub probes_sent: u64,
    /// Probes that came back (each a sample of [`BenchReport::probe_rtt`]).
    pub probes_returned: u64,
    /// Probes from the peer this port returned.
    pub probes_reflected: u64,
}

fn serialize_duration_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Live bench counters.
#[derive(Debug, Default)]
pub struct BenchLive {
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_ring_full: AtomicU64,
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_seq_gaps: AtomicU64,
    rx_reordered: AtomicU64,
    rx_other: AtomicU64,
    elapsed_ns: AtomicU64,
    send_elapsed_ns: AtomicU64,
    probes_sent: AtomicU64,
    probes_returned: AtomicU64,
    probes_reflected: AtomicU64,
}

impl BenchLive {
    /// The counters now.
    pub fn snapshot(&self) -> BenchCounters {
        BenchCounters {
            tx_packets: self.tx_packets.load(Ordering::Relaxed),
            tx_bytes: self.tx_bytes.load(Ordering::Relaxed),
            tx_ring_full: self.tx_ring_full.load(Ordering::Relaxed),
            rx_packets: self.rx_packets.load(Ordering::Relaxed),
            rx_bytes: self.rx_bytes.load(Ordering::Relaxed),
            rx_seq_gaps: self.rx_seq_gaps.load(Ordering::Relaxed),
            rx_reordered: self.rx_reordered.load(Ordering::Relaxed),
            rx_other: self.rx_other.load(Ordering::Relaxed),
            elapsed: Duration::from_nanos(self.elapsed_ns.load(Ordering::Relaxed)),
            send_elapsed: Duration::from_nanos(self.send_elapsed_ns.load(Ordering::Relaxed)),
            probes_sent: self.probes_sent.load(Ordering::Relaxed),
            probes_returned: self.probes_returned.load(Ordering::Relaxed),
            probes_reflected: self.probes_reflected.load(Ordering::Relaxed),
        }
    }

    fn publish(&self, c: &BenchCounters) {
        self.tx_packets.store(c.tx_packets, Ordering::Relaxed);
        self.tx_bytes.store(c.tx_bytes, Ordering::Relaxed);
        self.tx_ring_full.store(c.tx_ring_full, Ordering::Relaxed);
        self.rx_packets.store(c.rx_packets, Ordering::Relaxed);
        self.rx_bytes.store(c.rx_bytes, Ordering::Relaxed);
        self.rx_seq_gaps.store(c.rx_seq_gaps, Ordering::Relaxed);
        self.rx_reordered.store(c.rx_reordered, Ordering::Relaxed);
        self.rx_other.store(c.rx_other, Ordering::Relaxed);
        let elapsed = u64::try_from(c.elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_ns.store(elapsed, Ordering::Relaxed);
        let send_elapsed = u64::try_from(c.send_elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.send_elapsed_ns.store(send_elapsed, Ordering::Relaxed);
        self.probes_sent.store(c.probes_sent, Ordering::Relaxed);
        self.probes_returned
            .store(c.probes_returned, Ordering::Relaxed);
        self.probes_reflected
            .store(c.probes_reflected, Ordering::Relaxed);
    }
}

/// One second of a bench run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BenchSecond {
    /// Seconds since start (1 = the first second).
    pub second: u64,
    /// Packets sent during this second.
    pub tx_pps: u64,
    /// Test packets received during this second.
    pub rx_pps: u64,
    /// Totals at the end of this second.
    pub total: BenchCounters,
}

/// Outcome of a bench run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Workload counters.
    pub counters: BenchCounters,
    /// Port counters at the end (reset at the start), incl. imissed and rx_nombuf.
    pub port: PortStats,
    /// Extended port counters at the end.
    pub xstats: Vec<(String, u64)>,
    /// One record per full second.
    pub per_second: Vec<BenchSecond>,
    /// Round trips of the latency probes this port sent, ns, stamped and read with the
    /// TSC ([`now_ns`]); empty without probes.
    #[serde(skip)]
    pub probe_rtt: Histogram<u64>,
}

/// What one received burst held.
#[derive(Debug, Default, PartialEq, Eq)]
struct BurstTally {
    test_frames: u64,
    test_bytes: u64,
    seq_gaps: u64,
    reordered: u64,
    other: u64,
}

/// Counts the test frames of a burst and the sequence numbers they skipped, in local
/// variables (kept in registers across the per-packet loop, where the bench's counters
/// would be written to memory on every packet). `expected_seq` is the next sequence
/// number in order; late or repeated frames do not move it back.
#[inline]
fn tally_burst(burst: &[Mbuf], expected_seq: &mut u64) -> BurstTally {
    let mut tally = BurstTally::default();
    let mut expected = *expected_seq;
    for mbuf in burst {
        let frame = mbuf.data();
        match packet::peek_test_seq(frame) {
            Some(seq) => {
                tally.test_frames += 1;
                tally.test_bytes += frame.len() as u64;
                if seq >= expected {
                    tally.seq_gaps += seq - expected;
                    expected = seq + 1;
                } else {
                    tally.reordered += 1;
                }
            }
            None => tally.other += 1,
        }
    }
    *expected_seq = expected;
    tally
}

/// Runs the bench on `port`. Sending stops at `duration` or `count` (or `stop`);
/// receiving continues for `drain` afterwards. In Rx mode `duration` and `count`
/// bound the receiving.
pub fn bench(
    port: &mut DataPort,
    p: &BenchParams,
    live: &BenchLive,
    stop: &StopSignal,
) -> Result<BenchReport, WorkloadError> {
    p.validate()?;
    // A mempool cache for this thread: the fast path allocates and frees mbufs.
    let _lcore = crate::eal::register_current_thread();
    let (mac, ip) = (port.mac(), port.ip());
    let sends = matches!(p.mode, BenchMode::Tx | BenchMode::Both);
    let frame_len = usize::from(p.frame_size);
    let template = match (sends, p.peer_ip) {
        (true, Some(peer_ip)) => {
            let peer_mac = match p.peer_mac {
                Some(mac) => mac,
                None => resolve_peer(port, peer_ip, ARP_WAIT, stop)?,
            };
            let endpoints = UdpEndpoints {
                src_mac: mac,
                dst_mac: peer_mac,
                src_ip: ip,
                dst_ip: peer_ip,
                src_port: packet::TEST_UDP_PORT,
                dst_port: packet::TEST_UDP_PORT,
            };
            let probe = match p.probe_rate_pps {
                Some(_) => Some(TestFrameTemplate::new(
                    frame_len,
                    &UdpEndpoints {
                        src_port: packet::PROBE_SOURCE_PORT,
                        dst_port: packet::PROBE_UDP_PORT,
                        ..endpoints
                    },
                )?),
                None => None,
            };
            Some((TestFrameTemplate::new(frame_len, &endpoints)?, probe))
        }
        _ => None,
    };
    let (template, probe_template) = match template {
        Some((load, probe)) => (Some(load), probe),
        None => (None, None),
    };
    let probe_interval_ns = p
        .probe_rate_pps
        .map_or(u64::MAX, |rate| NS_PER_SEC / u64::from(rate));
    let mut probe_rtt = Histogram::<u64>::new_with_bounds(1, HISTOGRAM_MAX_NS, 3)
        .expect("constant histogram bounds are valid");
    port.reset_stats()?;

    let duration_ns = p
        .duration
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let drain_ns = u64::try_from(p.drain.as_nanos()).unwrap_or(u64::MAX);
    let burst = usize::from(p.burst);
    let frame_bytes = u64::from(p.frame_size);
    let mut counters = BenchCounters::default();
    let mut per_second = Vec::with_capacity(
        usize::try_from(p.duration.map_or(60, |d| d.as_secs() + 2)).unwrap_or(60),
    );
    let mut last_second = BenchCounters::default();
    let mut tx = MbufBatch::new();
    let mut rx = MbufBatch::new();
    // ARP replies and returned probes.
    let mut replies = MbufBatch::new();
    let mut probe_tx = MbufBatch::new();
    let mut probe_seq = 0u64;
    let idle_policy = IdlePolicy::for_this_cpu();
    let mut idle = IdleBackoff::new(idle_policy);
    let mut next_seq = 0u64;
    // Packets at the front of `tx` that a tx burst already refused once.
    let mut offered_before = 0usize;
    let mut expected_seq = 0u64;
    let started = Instant::now();
    let start_ns = now_ns();
    let mut next_second_ns = start_ns + NS_PER_SEC;
    let mut next_publish_ns = start_ns;
    let mut next_probe_ns = start_ns;
    let mut iteration = 0u32;
    let mut now = start_ns;
    // Pacing, and passes that may sleep, need the time on every pass; otherwise it is
    // read on every few passes.
    let clock_interval =
        if p.rate_pps.is_some() || probe_template.is_some() || idle_policy != IdlePolicy::Poll {
            1
        } else {
            CLOCK_READ_INTERVAL
        };
    // Set when sending ends; receiving ends `drain` later.
    let mut send_done_ns: Option<u64> = (!sends).then_some(start_ns);
    tracing::info!(?p, ?idle_policy, "bench running");

    loop {
        iteration = iteration.wrapping_add(1);
        if iteration % clock_interval == 0 {
            now = now_ns();
        }
        let elapsed = now - start_ns;
        if stop.is_stopped() {
            break;
        }
        if sends && send_done_ns.is_none() {
            let by_count = p.count.is_some_and(|count| counters.tx_packets >= count);
            let by_time = duration_ns.is_some_and(|d| elapsed >= d);
            if by_count || by_time {
                send_done_ns = Some(now);
                counters.send_elapsed = Duration::from_nanos(elapsed);
                tx.clear();
                offered_before = 0;
            }
        }
        match (sends, send_done_ns) {
            (true, Some(done)) if now - done >= drain_ns => break,
            (false, _) => {
                let by_count = p.count.is_some_and(|count| counters.rx_packets >= count);
                if by_count || duration_ns.is_some_and(|d| elapsed >= d) {
                    break;
                }
            }
            _ => {}
        }

        if let (Some(template), None, false) = (&template, send_done_ns, p.probe_only) {
            // How many more packets may be built now.
            let mut budget = burst.saturating_sub(tx.len());
            if let Some(count) = p.count {
                let queued = tx.len() as u64;
                let left = count.saturating_sub(counters.tx_packets + queued);
                budget = budget.min(usize::try_from(left).unwrap_or(usize::MAX));
            }
            if let Some(rate) = p.rate_pps {
                let allowed = u128::from(elapsed) * u128::from(rate) / u128::from(NS_PER_SEC);
                let used = u128::from(counters.tx_packets) + tx.len() as u128;
                let left = allowed.saturating_sub(used);
                budget = budget.min(usize::try_from(left).unwrap_or(usize::MAX));
            }
            if budget > 0 {
                // An empty pool (mbufs in flight) clears as the driver frees them: try
                // again on the next pass. Anything else will not.
                match port
                    .mempool()
                    .alloc_packets_into(&mut tx, budget, frame_len)
                {
                    Ok(()) => {
                        let fresh = tx.len() - budget;
                        for (seq, mbuf) in (next_seq..).zip(&mut tx.as_mut_slice()[fresh..]) {
                            template.write(mbuf.data_mut(), seq, now)?;
                        }
                        next_seq += budget as u64;
                    }
                    Err(MempoolError::Exhausted { .. }) => {}
                    Err(other) => return Err(other.into()),
                }
            }
            if !tx.is_empty() {
                let queued = tx.len();
                let sent = port.port_mut().tx_burst(&mut tx);
                // Refused packets stay queued and are offered again, after a pause:
                // asking again at once keeps the ring's shared cache line away from
                // the receiver that is about to free slots in it.
                if sent < queued {
                    // The refused are the last ones; count those offered for the
                    // first time, so a packet refused twice counts once.
                    let offered_first_time = queued - offered_before;
                    counters.tx_ring_full += (queued - sent).min(offered_first_time) as u64;
                    for _ in 0..TX_FULL_PAUSES {
                        std::hint::spin_loop();
                    }
                }
                counters.tx_packets += sent as u64;
                counters.tx_bytes += sent as u64 * frame_bytes;
                offered_before = tx.len();
            }
        }
        if let (Some(probe), None) = (&probe_template, send_done_ns) {
            if now >= next_probe_ns {
                // A probe the ring refuses is dropped and sent anew on the next pass
                // with a fresh stamp: a stale stamp would add the wait to its RTT.
                match port
                    .mempool()
                    .alloc_packets_into(&mut probe_tx, 1, frame_len)
                {
                    Ok(()) => {
                        if let Some(mbuf) = probe_tx.as_mut_slice().first_mut() {
                            probe.write(mbuf.data_mut(), probe_seq, now_ns())?;
                        }
                        if port.port_mut().tx_burst(&mut probe_tx) == 1 {
                            probe_seq += 1;
                            counters.probes_sent += 1;
                            // Behind by more than one interval (a stall): resume the
                            // cadence from now rather than sending the missed probes
                            // back to back.
                            next_probe_ns = (next_probe_ns + probe_interval_ns).max(now);
                        }
                        probe_tx.clear();
                    }
                    Err(MempoolError::Exhausted { .. }) => {}
                    Err(other) => return Err(other.into()),
                }
            }
        }

        // A sender only receives ARP, so it polls rarely and spends its time sending.
        if p.mode == BenchMode::Tx
            && probe_template.is_none()
            && iteration % TX_ONLY_RX_POLL_INTERVAL != 0
        {
            continue;
        }
        let got = port.port_mut().rx_burst_at_most(&mut rx, burst);
        if !sends {
            idle.record(got);
        }
        // Count in place, then free the whole burst at once; only a burst holding
        // something else (ARP, foreign frames: rare) takes the per-mbuf path.
        let tally = tally_burst(rx.as_slice(), &mut expected_seq);
        counters.rx_packets += tally.test_frames;
        counters.rx_bytes += tally.test_bytes;
        counters.rx_seq_gaps += tally.seq_gaps;
        counters.rx_reordered += tally.reordered;
        counters.rx_other += tally.other;
        if tally.other > 0 {
            for mut mbuf in rx.drain() {
                if packet::peek_test_seq(mbuf.data()).is_some() {
                    continue;
                }
                match packet::peek_probe(mbuf.data()) {
                    // Through a DUT a probe is ours whichever addresses it swapped.
                    Some((leg, sent_ns)) if leg == ProbeLeg::Back || p.through_dut => {
                        counters.probes_returned += 1;
                        let _ = probe_rtt.record(now_ns().saturating_sub(sent_ns).max(1));
                        continue;
                    }
                    Some((ProbeLeg::Out, _)) if p.mode != BenchMode::Tx => {
                        if packet::swap_udp_in_place(mbuf.data_mut()).is_ok() {
                            counters.probes_reflected += 1;
                            let _ = replies.push(mbuf);
                        }
                        continue;
                    }
                    _ => {}
                }
                if let ArpOutcome::Reply(reply, _) = arp_reply_in_place(mbuf, mac, ip) {
                    let _ = replies.push(reply);
                }
            }
        } else {
            rx.clear();
        }
        if !replies.is_empty() {
            flush(
                port,
                &mut replies,
                Instant::now() + Duration::from_micros(200),
            );
        }

        if now >= next_publish_ns {
            counters.elapsed = Duration::from_nanos(elapsed);
            live.publish(&counters);
            next_publish_ns = now + PUBLISH_INTERVAL_NS;
        }
        if now >= next_second_ns {
            counters.elapsed = started.elapsed();
            per_second.push(BenchSecond {
                second: (now - start_ns) / NS_PER_SEC,
                tx_pps: counters.tx_packets - last_second.tx_packets,
                rx_pps: counters.rx_packets - last_second.rx_packets,
                total: counters,
            });
            last_second = counters;
            next_second_ns += NS_PER_SEC;
        }
    }
    tx.clear();
    counters.elapsed = started.elapsed();
    if sends && send_done_ns.is_none() {
        // Stopped while sending.
        counters.send_elapsed = Duration::from_nanos(now_ns().saturating_sub(start_ns));
    }
    live.publish(&counters);
    let port_stats = port.stats()?;
    let xstats = port.xstats().unwrap_or_default();
    tracing::info!(?counters, ?port_stats, "bench done");
    Ok(BenchReport {
        counters,
        port: port_stats,
        xstats,
        per_second,
        probe_rtt,
    })
}
