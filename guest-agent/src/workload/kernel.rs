//! Kernel-stack baselines: the same ping-pong and reflector as the DPDK workloads,
//! on `std::net::UdpSocket`s bound to the data address, for when the data NIC is
//! back on its kernel driver. Same count / frame size / interval / window / timeout
//! semantics and the same payload header; the frame size counts the Ethernet, IPv4
//! and UDP headers the kernel adds, so the UDP payload is `size - 42` bytes.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::pingpong::{bookkeeping, AnswerCounts, Slot, Tracker};
use super::{
    InvalidParam, PingPongLive, PingPongParams, PingPongReport, ReflectCounters, ReflectLive,
    StopSignal, WorkloadError,
};
use crate::packet::{PayloadHeader, PAYLOAD_HEADER_LEN, UDP_FRAME_OVERHEAD};

/// The UDP port the kernel reflector listens on (the DPDK one uses 9, discard).
pub const KERNEL_UDP_PORT: u16 = 9000;
/// How often blocking receives wake up to look at the stop signal.
const STOP_POLL: Duration = Duration::from_millis(20);
/// Sequence number of the unmeasured first exchange that lets the kernel resolve
/// the peer by ARP (the DPDK initiator resolves it before its first packet too).
const WARM_UP_SEQ: u64 = u64::MAX;
/// Shortest time given to the warm-up exchange, whatever the per-packet timeout.
const MIN_WARM_UP_WAIT: Duration = Duration::from_secs(3);

/// Monotonic nanoseconds for send timestamps (only ever compared within this process).
fn mono_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn socket_error(what: String) -> impl FnOnce(std::io::Error) -> WorkloadError {
    move |source| WorkloadError::Socket { what, source }
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Echoes every datagram carrying our payload header back to its sender, on
/// `ip`:[`KERNEL_UDP_PORT`], until stopped.
pub fn reflect(
    ip: Ipv4Addr,
    live: &ReflectLive,
    stop: &StopSignal,
) -> Result<ReflectCounters, WorkloadError> {
    let local = SocketAddrV4::new(ip, KERNEL_UDP_PORT);
    let socket = UdpSocket::bind(local).map_err(socket_error(format!("bind {local}")))?;
    socket
        .set_read_timeout(Some(STOP_POLL))
        .map_err(socket_error(format!("timeout on {local}")))?;
    tracing::info!(%local, "kernel UDP reflector running");
    let mut counters = ReflectCounters::default();
    let mut buffer = vec![0u8; 2048];
    while !stop.is_stopped() {
        let (len, from) = match socket.recv_from(&mut buffer) {
            Ok(got) => got,
            Err(error) if is_timeout(&error) || error.kind() == ErrorKind::Interrupted => continue,
            Err(error) => return Err(socket_error(format!("receive on {local}"))(error)),
        };
        counters.received += 1;
        if PayloadHeader::parse(&buffer[..len]).is_err() {
            counters.ignored += 1;
        } else {
            match socket.send_to(&buffer[..len], from) {
                Ok(_) => counters.reflected += 1,
                // A full socket buffer drops the reply, as a full tx ring does.
                Err(error) if error.kind() == ErrorKind::WouldBlock => counters.tx_dropped += 1,
                Err(error) => return Err(socket_error(format!("send to {from}"))(error)),
            }
        }
        live.publish(&counters);
    }
    live.publish(&counters);
    tracing::info!(?counters, "kernel UDP reflector stopped");
    Ok(counters)
}

/// Ping-pong through the kernel from `ip` to the kernel reflector at
/// `p.peer_ip`:[`KERNEL_UDP_PORT`]. The report's peer MAC is zero: the kernel
/// resolves it.
pub fn pingpong(
    ip: Ipv4Addr,
    p: &PingPongParams,
    live: &PingPongLive,
    stop: &StopSignal,
) -> Result<PingPongReport, WorkloadError> {
    p.validate()?;
    let payload_len = usize::from(p.frame_size).saturating_sub(UDP_FRAME_OVERHEAD);
    if payload_len < PAYLOAD_HEADER_LEN {
        return Err(InvalidParam::new(
            "frame_size",
            format!("{} leaves no room for the payload header", p.frame_size),
        )
        .into());
    }
    let local = SocketAddrV4::new(ip, 0);
    let peer = SocketAddr::V4(SocketAddrV4::new(p.peer_ip, KERNEL_UDP_PORT));
    let socket = UdpSocket::bind(local).map_err(socket_error(format!("bind {local}")))?;
    socket
        .connect(peer)
        .map_err(socket_error(format!("connect to {peer}")))?;

    let mut out = vec![0u8; payload_len];
    let mut buffer = vec![0u8; 2048];
    warm_up(&socket, p, &mut out, &mut buffer, stop)?;

    let (mut tracker, mut rtt, timeout_ns) = bookkeeping(p)?;
    let window = u64::from(p.window);
    let mut lost = 0u64;
    let mut counts = AnswerCounts::default();
    let mut next_seq = 0u64;
    let started = Instant::now();
    let _ = live.started.set(started);
    let mut next_send = started;
    tracing::info!(%peer, count = p.count, size = p.frame_size, window = p.window, "kernel ping-pong running");

    while !stop.is_stopped() {
        // Send what the window and the schedule allow.
        loop {
            let now = Instant::now();
            let room = window.saturating_sub(tracker.in_flight);
            if room == 0 || next_seq == p.count {
                break;
            }
            if let Some(interval) = p.interval {
                if now < next_send {
                    break;
                }
                next_send = if now.duration_since(next_send) > interval {
                    now + interval
                } else {
                    next_send + interval
                };
            }
            let stamp = mono_ns();
            PayloadHeader {
                seq: next_seq,
                tx_ns: stamp,
            }
            .write(&mut out)?;
            match socket.send(&out) {
                Ok(_) => {}
                // The peer's port answered ICMP unreachable: the packet is lost,
                // its timeout will say so.
                Err(error) if error.kind() == ErrorKind::ConnectionRefused => {}
                Err(error) => return Err(socket_error(format!("send to {peer}"))(error)),
            }
            let index = Tracker::slot_index(next_seq);
            tracker.slots[index] = Slot::InFlight;
            tracker.sent_ns[index] = stamp;
            tracker.in_flight += 1;
            next_seq += 1;
            live.sent.store(next_seq, Ordering::Relaxed);
            if p.interval.is_some() {
                break;
            }
        }
        if next_seq == p.count && tracker.in_flight == 0 {
            break;
        }
        // Wait for a reply until the next send, the oldest packet's timeout, or a
        // look at the stop signal, whichever comes first.
        let now_ns = mono_ns();
        let mut wait = STOP_POLL;
        if tracker.in_flight > 0 {
            let oldest = tracker.sent_ns[Tracker::slot_index(tracker.oldest_open)];
            let deadline = oldest.saturating_add(timeout_ns);
            wait = wait.min(Duration::from_nanos(deadline.saturating_sub(now_ns)));
        }
        if let (Some(_), true) = (p.interval, next_seq < p.count) {
            wait = wait.min(next_send.saturating_duration_since(Instant::now()));
        }
        let wait = wait.max(Duration::from_micros(1));
        socket
            .set_read_timeout(Some(wait))
            .map_err(socket_error(format!("timeout on {local}")))?;
        match socket.recv(&mut buffer) {
            Ok(len) => {
                let now = mono_ns();
                if let Some(header) = PayloadHeader::parse(&buffer[..len])
                    .ok()
                    .filter(|h| h.seq < next_seq)
                {
                    counts.count(
                        tracker.answer(header.seq, header.tx_ns, now),
                        &mut rtt,
                        live,
                    );
                }
            }
            Err(error)
                if is_timeout(&error)
                    || error.kind() == ErrorKind::Interrupted
                    || error.kind() == ErrorKind::ConnectionRefused => {}
            Err(error) => return Err(socket_error(format!("receive from {peer}"))(error)),
        }
        lost += tracker.expire(mono_ns(), timeout_ns, next_seq);
        live.received.store(counts.received, Ordering::Relaxed);
        live.lost.store(lost, Ordering::Relaxed);
    }
    lost += tracker.in_flight;
    live.lost.store(lost, Ordering::Relaxed);
    Ok(counts.report(
        "kernel ping-pong",
        next_seq,
        lost,
        started,
        rtt,
        [0; 6],
        p.frame_size,
    ))
}

/// One unmeasured exchange (resending every 200 ms) so the kernel has the peer's
/// MAC before the first measured packet; fails like the DPDK initiator's ARP when
/// nothing answers.
fn warm_up(
    socket: &UdpSocket,
    p: &PingPongParams,
    out: &mut [u8],
    buffer: &mut [u8],
    stop: &StopSignal,
) -> Result<(), WorkloadError> {
    let waited = p.timeout.max(MIN_WARM_UP_WAIT);
    let deadline = Instant::now() + waited;
    PayloadHeader {
        seq: WARM_UP_SEQ,
        tx_ns: mono_ns(),
    }
    .write(out)?;
    let resend = Duration::from_millis(200);
    socket
        .set_read_timeout(Some(resend))
        .map_err(socket_error("timeout".to_owned()))?;
    while Instant::now() < deadline {
        if stop.is_stopped() {
            return Err(WorkloadError::Stopped);
        }
        match socket.send(out) {
            Ok(_) => {}
            Err(error) if error.kind() == ErrorKind::ConnectionRefused => {}
            Err(error) => return Err(socket_error(format!("send to {}", p.peer_ip))(error)),
        }
        loop {
            match socket.recv(buffer) {
                Ok(len) => {
                    if PayloadHeader::parse(&buffer[..len]).is_ok_and(|h| h.seq == WARM_UP_SEQ) {
                        return Ok(());
                    }
                }
                Err(error)
                    if is_timeout(&error)
                        || error.kind() == ErrorKind::Interrupted
                        || error.kind() == ErrorKind::ConnectionRefused =>
                {
                    break
                }
                Err(error) => {
                    return Err(socket_error(format!("receive from {}", p.peer_ip))(error))
                }
            }
        }
    }
    Err(WorkloadError::PeerUnreachable {
        ip: p.peer_ip,
        waited,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn params(peer: Ipv4Addr, count: u64, window: u32) -> PingPongParams {
        PingPongParams {
            peer_mac: None,
            through_dut: false,
            peer_ip: peer,
            count,
            frame_size: 64,
            interval: None,
            window,
            timeout: Duration::from_millis(200),
        }
    }

    type ReflectorThread = std::thread::JoinHandle<Result<ReflectCounters, WorkloadError>>;

    /// A kernel reflector on `ip` in a thread of its own, with its stop signal and
    /// live counters.
    fn spawn_reflector(ip: Ipv4Addr) -> (StopSignal, Arc<ReflectLive>, ReflectorThread) {
        let stop = StopSignal::new();
        let live = Arc::new(ReflectLive::default());
        let reflector = {
            let (stop, live) = (stop.clone(), live.clone());
            std::thread::spawn(move || reflect(ip, &live, &stop))
        };
        (stop, live, reflector)
    }

    #[test]
    fn pingpong_through_a_kernel_reflector_on_loopback() {
        let (reflector_ip, initiator_ip) =
            (Ipv4Addr::new(127, 0, 3, 2), Ipv4Addr::new(127, 0, 3, 3));
        let (stop, _live, reflector) = spawn_reflector(reflector_ip);
        // The reflector binds in its thread; give it a moment.
        std::thread::sleep(Duration::from_millis(100));
        let report = pingpong(
            initiator_ip,
            &params(reflector_ip, 500, 4),
            &PingPongLive::default(),
            &StopSignal::new(),
        )
        .unwrap();
        stop.stop();
        let counters = reflector.join().unwrap().unwrap();
        assert_eq!(report.sent, 500);
        assert_eq!(report.received, 500, "{report:?}");
        assert_eq!(report.lost, 0);
        assert_eq!(report.rtt.len(), 500);
        assert!(report.rtt.max() < 200_000_000);
        assert_eq!(counters.reflected, 501, "500 and the warm-up");
    }

    #[test]
    fn without_a_reflector_the_peer_is_unreachable() {
        let error = pingpong(
            Ipv4Addr::new(127, 0, 3, 4),
            &PingPongParams {
                interval: Some(Duration::from_millis(1)),
                timeout: Duration::from_millis(10),
                ..params(Ipv4Addr::new(127, 0, 3, 5), 20, 1)
            },
            &PingPongLive::default(),
            &StopSignal::new(),
        )
        .unwrap_err();
        assert!(
            matches!(error, WorkloadError::PeerUnreachable { waited, .. } if waited == MIN_WARM_UP_WAIT),
            "{error}"
        );
    }

    #[test]
    fn a_reflector_that_stops_half_way_leaves_the_rest_lost() {
        let (reflector_ip, initiator_ip) =
            (Ipv4Addr::new(127, 0, 3, 6), Ipv4Addr::new(127, 0, 3, 7));
        let (stop, live, reflector) = spawn_reflector(reflector_ip);
        std::thread::sleep(Duration::from_millis(100));
        let stopper = {
            let (stop, live) = (stop.clone(), live.clone());
            std::thread::spawn(move || {
                while live.snapshot().reflected < 31 {
                    std::thread::sleep(Duration::from_micros(200));
                }
                stop.stop();
            })
        };
        let report = pingpong(
            initiator_ip,
            &PingPongParams {
                interval: Some(Duration::from_millis(2)),
                timeout: Duration::from_millis(50),
                ..params(reflector_ip, 100, 1)
            },
            &PingPongLive::default(),
            &StopSignal::new(),
        )
        .unwrap();
        stopper.join().unwrap();
        reflector.join().unwrap().unwrap();
        assert_eq!(report.sent, 100);
        assert!((28..=32).contains(&report.received), "{report:?}");
        assert_eq!(report.received + report.lost, 100);
    }
}
