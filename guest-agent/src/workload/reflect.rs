//! Reflector: returns test packets to their sender and answers ARP for its IP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{answer_arp, flush, IdleBackoff, StopSignal, WorkloadError};
use crate::datapath::DataPort;
use crate::mbuf::MbufBatch;
use crate::packet::{self, Frame};

/// How long a reflected burst may wait for tx ring space before it is dropped.
const TX_RETRY: Duration = Duration::from_micros(200);

/// Reflector counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReflectCounters {
    /// Frames received.
    pub received: u64,
    /// Test frames sent back.
    pub reflected: u64,
    /// ARP replies sent.
    pub arp_replies: u64,
    /// Frames neither reflected nor answered (not for us, malformed, other protocols).
    pub ignored: u64,
    /// Reflections or ARP replies dropped because the tx ring stayed full.
    pub tx_dropped: u64,
}

/// Live reflector counters, updated as it runs.
#[derive(Debug, Default)]
pub struct ReflectLive {
    received: AtomicU64,
    reflected: AtomicU64,
    arp_replies: AtomicU64,
    ignored: AtomicU64,
    tx_dropped: AtomicU64,
}

impl ReflectLive {
    /// The counters now.
    pub fn snapshot(&self) -> ReflectCounters {
        ReflectCounters {
            received: self.received.load(Ordering::Relaxed),
            reflected: self.reflected.load(Ordering::Relaxed),
            arp_replies: self.arp_replies.load(Ordering::Relaxed),
            ignored: self.ignored.load(Ordering::Relaxed),
            tx_dropped: self.tx_dropped.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn publish(&self, counters: &ReflectCounters) {
        self.received.store(counters.received, Ordering::Relaxed);
        self.reflected.store(counters.reflected, Ordering::Relaxed);
        self.arp_replies
            .store(counters.arp_replies, Ordering::Relaxed);
        self.ignored.store(counters.ignored, Ordering::Relaxed);
        self.tx_dropped
            .store(counters.tx_dropped, Ordering::Relaxed);
    }
}

/// Runs the reflector until `stop`: every valid UDP frame to the port's IP and test
/// port goes back to its sender with addresses and ports swapped (checksums stay
/// valid); ARP requests for the port's IP are answered.
pub fn reflect(
    port: &mut DataPort,
    live: &ReflectLive,
    stop: &StopSignal,
) -> Result<ReflectCounters, WorkloadError> {
    // A mempool cache for this thread: the fast path allocates and frees mbufs.
    let _lcore = crate::eal::register_current_thread();
    let (mac, ip) = (port.mac(), port.ip());
    let mut counters = ReflectCounters::default();
    let mut rx = MbufBatch::new();
    let mut tx = MbufBatch::new();
    // ARP replies go in their own batch so each kind's drops are counted exactly.
    let mut arp_tx = MbufBatch::new();
    let mut idle = IdleBackoff::default();
    tracing::info!(%ip, "reflector running");
    while !stop.is_stopped() {
        let received = port.port_mut().rx_burst(&mut rx);
        idle.record(received);
        if received == 0 {
            continue;
        }
        counters.received += received as u64;
        for mbuf in rx.drain() {
            let Some(mut mbuf) = answer_arp(mbuf, mac, ip, &mut arp_tx, &mut counters.ignored)
            else {
                continue;
            };
            let for_us = matches!(
                packet::parse(mbuf.data()),
                Ok(Frame::Udp(udp)) if udp.dst_ip == ip && udp.dst_port == packet::TEST_UDP_PORT
            );
            if for_us && packet::swap_udp_in_place(mbuf.data_mut()).is_ok() {
                let _ = tx.push(mbuf);
            } else {
                counters.ignored += 1;
            }
        }
        let deadline = Instant::now() + TX_RETRY;
        let (sent, dropped) = flush(port, &mut tx, deadline);
        counters.reflected += sent as u64;
        counters.tx_dropped += dropped as u64;
        let (sent, dropped) = flush(port, &mut arp_tx, deadline);
        counters.arp_replies += sent as u64;
        counters.tx_dropped += dropped as u64;
        live.publish(&counters);
    }
    live.publish(&counters);
    tracing::info!(?counters, "reflector stopped");
    Ok(counters)
}
