//! What a port answers while no workload holds it, like a host's kernel would: ARP
//! requests for its IP, ICMP echo requests to it, and the agent's own UDP test frames
//! to it (sent back as the reflector does, so a peer's selftest or ping-pong gets its
//! round trip without anyone starting Reflect here). Everything else is dropped.
//!
//! Test frames are sent back only when they come from another address with the
//! sender's TTL ([`packet::DEFAULT_TTL`]), and go back with that TTL less one: a
//! frame that arrives after its ping-pong gave up on it is answered once, never
//! bounced for ever between two idle agents (or by a loopback port to itself).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{answer_arp, flush};
use crate::datapath::DataPort;
use crate::mbuf::MbufBatch;
use crate::packet::{self, Frame};

/// How long answers may wait for tx ring space before they are dropped: short, the
/// caller holds the port's slot meanwhile.
const TX_RETRY: Duration = Duration::from_micros(100);

/// What the idle responder did, summed over its bursts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IdleCounters {
    /// Frames received.
    pub received: u64,
    /// ARP replies sent.
    pub arp_replies: u64,
    /// ICMP echo replies sent.
    pub echo_replies: u64,
    /// Test frames sent back.
    pub reflected: u64,
    /// Frames not answered (not for us, malformed, other protocols).
    pub ignored: u64,
    /// Answers dropped because the tx ring stayed full.
    pub tx_dropped: u64,
}

impl IdleCounters {
    /// Adds `other` to these counters.
    pub fn add(&mut self, other: &IdleCounters) {
        self.received += other.received;
        self.arp_replies += other.arp_replies;
        self.echo_replies += other.echo_replies;
        self.reflected += other.reflected;
        self.ignored += other.ignored;
        self.tx_dropped += other.tx_dropped;
    }
}

/// One rx burst and its answers; returns what it did. `received == 0` when the
/// ring was empty.
pub fn answer_one_burst(port: &mut DataPort) -> IdleCounters {
    let (mac, ip) = (port.mac(), port.ip());
    let mut counters = IdleCounters::default();
    let mut rx = MbufBatch::new();
    let received = port.port_mut().rx_burst(&mut rx);
    if received == 0 {
        return counters;
    }
    counters.received = received as u64;
    // One batch per kind, so each kind's sends and drops are counted exactly.
    let (mut arp_tx, mut echo_tx, mut udp_tx) =
        (MbufBatch::new(), MbufBatch::new(), MbufBatch::new());
    for mbuf in rx.drain() {
        let Some(mut mbuf) = answer_arp(mbuf, mac, ip, &mut arp_tx, &mut counters.ignored) else {
            continue;
        };
        if let Ok(true) = packet::icmp_echo_reply_in_place(mbuf.data_mut(), ip) {
            let _ = echo_tx.push(mbuf);
            continue;
        }
        let test_frame = matches!(
            packet::parse(mbuf.data()),
            Ok(Frame::Udp(udp)) if udp.dst_ip == ip
                && udp.src_ip != ip
                && udp.dst_port == packet::TEST_UDP_PORT
                && udp.ttl == packet::DEFAULT_TTL
                && packet::PayloadHeader::parse(udp.payload).is_ok()
        );
        if test_frame
            && packet::swap_udp_in_place(mbuf.data_mut()).is_ok()
            && packet::set_ipv4_ttl(mbuf.data_mut(), packet::DEFAULT_TTL - 1).is_ok()
        {
            let _ = udp_tx.push(mbuf);
        } else {
            counters.ignored += 1;
        }
    }
    let deadline = Instant::now() + TX_RETRY;
    for (batch, sent_counter) in [
        (&mut arp_tx, &mut counters.arp_replies),
        (&mut echo_tx, &mut counters.echo_replies),
        (&mut udp_tx, &mut counters.reflected),
    ] {
        let (sent, dropped) = flush(port, batch, deadline);
        *sent_counter += sent as u64;
        counters.tx_dropped += dropped as u64;
    }
    counters
}
