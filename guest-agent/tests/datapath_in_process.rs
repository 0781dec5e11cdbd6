//! The datapath on a real EAL inside one process: two ports joined back to back by
//! rings (a virtual wire), plus a net_ring loopback port.
//!
//! EAL can be initialised only once per process, so this file holds one test that
//! runs every scenario in turn on the same EAL.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dpdk_agent::datapath::{DataPort, DataPortSpec, DatapathError, PortSelector};
use dpdk_agent::eal::{Eal, EalError};
use dpdk_agent::mbuf::MbufBatch;
use dpdk_agent::packet::{self, ArpOp, Frame, PayloadHeader, UdpEndpoints};
use dpdk_agent::port::create_ring_pair;
use dpdk_agent::selftest::port_checks;
use dpdk_agent::telemetry;
use dpdk_agent::workload::idle::answer_one_burst;
use dpdk_agent::workload::{
    bench, pingpong, reflect, BenchLive, BenchMode, BenchParams, BenchReport, PingPongLive,
    PingPongParams, ReflectLive, StopSignal, WorkloadError,
};

const IP_A: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

fn file_prefix() -> String {
    format!("dpdk-agent-inproc-{}", std::process::id())
}

fn eal() -> Eal {
    let args: Vec<String> = [
        "--no-huge",
        "--no-pci",
        // One lcore allowed on both CPUs, so the two workload threads (which inherit
        // the main thread's affinity) can run in parallel.
        "--lcores=0@(0,1)",
        "-m",
        "256",
        "--vdev=net_ring0",
        "--log-level=lib.eal:warning",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .chain([format!("--file-prefix={}", file_prefix())])
    .collect();
    Eal::init(&args).expect("EAL starts without hugepages")
}

fn bench_params(mode: BenchMode) -> BenchParams {
    BenchParams {
        through_dut: false,
        mode,
        peer_ip: Some(IP_B),
        peer_mac: None,
        frame_size: 64,
        rate_pps: None,
        duration: None,
        count: None,
        burst: 32,
        drain: Duration::from_millis(100),
        probe_rate_pps: None,
        probe_only: false,
    }
}

/// B reflects while A runs ping-pong: every packet comes back, each with an RTT.
fn pingpong_over_the_wire(a: &mut DataPort, b: &mut DataPort) {
    let stop = StopSignal::new();
    let reflect_live = ReflectLive::default();
    let params = PingPongParams {
        peer_mac: None,
        through_dut: false,
        peer_ip: IP_B,
        count: 2000,
        frame_size: 128,
        interval: None,
        window: 8,
        timeout: Duration::from_secs(2),
    };
    let (report, reflected) = std::thread::scope(|scope| {
        let reflector = scope.spawn(|| reflect(b, &reflect_live, &stop));
        let live = PingPongLive::default();
        let report = pingpong(a, &params, &live, &StopSignal::new());
        assert_eq!(
            live.snapshot().received,
            2000,
            "live counters follow the run"
        );
        stop.stop();
        (report, reflector.join().expect("reflector thread"))
    });
    let report = report.expect("ping-pong runs");
    let reflected = reflected.expect("reflector runs");
    assert_eq!(report.sent, 2000);
    assert_eq!(report.received, 2000);
    assert_eq!(report.lost, 0);
    assert_eq!(report.duplicates, 0);
    assert_eq!(report.rtt.len(), 2000, "one RTT sample per packet");
    assert!(report.rtt.min() > 0 && report.rtt.max() < 2_000_000_000);
    assert_eq!(report.peer_mac, b.mac());
    assert_eq!(reflected.reflected, 2000);
    assert!(
        reflected.arp_replies >= 1,
        "A resolved B through B's ARP reply"
    );
    assert_eq!(reflected.tx_dropped, 0);
}

/// Runs an Rx bench on `b` while `a` sends `tx_params` (a count), and lets the receiver
/// empty its ring before it stops.
fn send_into_receiver(
    a: &mut DataPort,
    b: &mut DataPort,
    tx_params: &BenchParams,
) -> (BenchReport, BenchReport) {
    let count = tx_params.count.expect("a counted send");
    let stop_rx = StopSignal::new();
    let rx_live = BenchLive::default();
    let (tx_report, rx_report) = std::thread::scope(|scope| {
        let receiver = scope.spawn(|| bench(b, &bench_params(BenchMode::Rx), &rx_live, &stop_rx));
        let tx_report = bench(a, tx_params, &BenchLive::default(), &StopSignal::new());
        let settle = Instant::now() + Duration::from_secs(5);
        while rx_live.snapshot().rx_packets < count && Instant::now() < settle {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        stop_rx.stop();
        (tx_report, receiver.join().expect("receiver thread"))
    });
    (
        tx_report.expect("tx bench runs"),
        rx_report.expect("rx bench runs"),
    )
}

/// A sends a fixed count as fast as it can; B counts. Every packet sent is received
/// or reported as dropped by a counter.
fn tx_to_rx_counts_match(a: &mut DataPort, b: &mut DataPort) {
    const COUNT: u64 = 200_000;
    let (tx, rx) = send_into_receiver(
        a,
        b,
        &BenchParams {
            count: Some(COUNT),
            ..bench_params(BenchMode::Tx)
        },
    );
    assert_eq!(tx.counters.tx_packets, COUNT);
    assert_eq!(tx.counters.tx_bytes, COUNT * 64);
    assert_eq!(
        tx.port.opackets, COUNT,
        "the port counted what the workload sent"
    );
    let dropped = rx.port.imissed + rx.port.rx_nombuf + rx.port.ierrors;
    assert_eq!(
        rx.counters.rx_packets + dropped,
        tx.counters.tx_packets,
        "sent = received + drops reported by counters: {rx:?}"
    );
    assert_eq!(rx.counters.rx_seq_gaps, dropped);
    assert_eq!(rx.counters.rx_bytes, rx.counters.rx_packets * 64);
    assert_eq!(
        rx.port.ipackets,
        rx.counters.rx_packets + rx.counters.rx_other
    );
}

/// With the receiver's MAC given, the sender asks no ARP: the receiver sees test frames
/// only, where the ARP path shows it one request.
fn known_peer_mac_needs_no_arp(a: &mut DataPort, b: &mut DataPort) {
    const COUNT: u64 = 20_000;
    let peer_mac = b.mac();
    let (tx, rx) = send_into_receiver(
        a,
        b,
        &BenchParams {
            count: Some(COUNT),
            peer_mac: Some(peer_mac),
            ..bench_params(BenchMode::Tx)
        },
    );
    assert_eq!(tx.counters.tx_packets, COUNT);
    assert_eq!(tx.port.opackets, COUNT);
    assert_eq!(rx.counters.rx_other, 0, "no ARP request came in: {rx:?}");
    let dropped = rx.port.imissed + rx.port.rx_nombuf + rx.port.ierrors;
    assert_eq!(rx.counters.rx_packets + dropped, COUNT);
}

/// A rate target is held: 20 kpps for one second sends about 20 000 packets.
fn rate_is_held(a: &mut DataPort, b: &mut DataPort) {
    let stop_rx = StopSignal::new();
    let (tx, rx) = std::thread::scope(|scope| {
        let receiver = scope.spawn(|| {
            bench(
                b,
                &bench_params(BenchMode::Rx),
                &BenchLive::default(),
                &stop_rx,
            )
        });
        let params = BenchParams {
            rate_pps: Some(20_000),
            duration: Some(Duration::from_secs(1)),
            probe_rate_pps: Some(1000),
            ..bench_params(BenchMode::Tx)
        };
        let tx = bench(a, &params, &BenchLive::default(), &StopSignal::new());
        std::thread::sleep(Duration::from_millis(200));
        stop_rx.stop();
        (tx, receiver.join().expect("receiver thread"))
    });
    let tx = tx.expect("rate-limited tx runs");
    let rx = rx.expect("rx runs");
    let sent = tx.counters.tx_packets;
    assert!(
        (18_000..=20_100).contains(&sent),
        "sent {sent} at 20 kpps for 1 s"
    );
    assert_eq!(
        rx.counters.rx_packets, sent,
        "probes are not counted as load"
    );
    assert!(!tx.per_second.is_empty(), "a per-second record");
    // The rate over the time it sent is the rate asked for.
    let send_secs = tx.counters.send_elapsed.as_secs_f64();
    assert!((0.99..1.05).contains(&send_secs), "sent for {send_secs} s");
    let pacing_error = sent as f64 / send_secs / 20_000.0 - 1.0;
    assert!(pacing_error.abs() < 0.02, "pacing error {pacing_error}");
    // Every probe went out at its cadence, was returned by the receiver and timed.
    let probes = tx.counters.probes_sent;
    assert!(
        (900..=1001).contains(&probes),
        "{probes} probes in 1 s at 1000/s"
    );
    assert_eq!(rx.counters.probes_reflected, probes);
    assert_eq!(tx.counters.probes_returned, probes);
    assert_eq!(tx.probe_rtt.len(), probes);
    assert!(tx.probe_rtt.min() > 0 && tx.probe_rtt.max() < 1_000_000_000);
    assert!(rx.probe_rtt.is_empty(), "the receiver sent no probes");
}

/// Both directions at once: A sends to B's reflector and counts what comes back.
fn both_directions_through_a_reflector(a: &mut DataPort, b: &mut DataPort) {
    const COUNT: u64 = 50_000;
    let stop = StopSignal::new();
    let reflect_live = ReflectLive::default();
    let (report, reflected) = std::thread::scope(|scope| {
        let reflector = scope.spawn(|| reflect(b, &reflect_live, &stop));
        let params = BenchParams {
            count: Some(COUNT),
            rate_pps: Some(200_000),
            drain: Duration::from_millis(500),
            ..bench_params(BenchMode::Both)
        };
        let report = bench(a, &params, &BenchLive::default(), &StopSignal::new());
        stop.stop();
        (report, reflector.join().expect("reflector thread"))
    });
    let report = report.expect("bench both runs");
    let reflected = reflected.expect("reflector runs");
    assert_eq!(report.counters.tx_packets, COUNT);
    assert_eq!(reflected.reflected + reflected.tx_dropped, COUNT);
    assert_eq!(report.counters.rx_packets, reflected.reflected);
    // Drops at the very end of the run leave no gap behind them.
    assert!(report.counters.rx_seq_gaps <= reflected.tx_dropped);
}

/// Paced ping-pong keeps its interval; a peer that answers ARP but does not reflect
/// (B running an rx bench) loses every packet, each after its own timeout.
fn interval_and_loss(a: &mut DataPort, b: &mut DataPort) {
    let paced = PingPongParams {
        peer_mac: None,
        through_dut: false,
        peer_ip: IP_B,
        count: 50,
        frame_size: 64,
        interval: Some(Duration::from_millis(2)),
        window: 1,
        timeout: Duration::from_millis(200),
    };
    let stop = StopSignal::new();
    let reflect_live = ReflectLive::default();
    let paced_report = std::thread::scope(|scope| {
        let reflector = scope.spawn(|| reflect(b, &reflect_live, &stop));
        let report = pingpong(a, &paced, &PingPongLive::default(), &StopSignal::new());
        stop.stop();
        reflector
            .join()
            .expect("reflector thread")
            .expect("reflector runs");
        report
    });
    let rx_stop = StopSignal::new();
    let lossy = PingPongParams {
        peer_mac: None,
        through_dut: false,
        count: 5,
        window: 5,
        interval: None,
        ..paced.clone()
    };
    let lossy_report = std::thread::scope(|scope| {
        let sink = scope.spawn(|| {
            bench(
                b,
                &bench_params(BenchMode::Rx),
                &BenchLive::default(),
                &rx_stop,
            )
        });
        let report = pingpong(a, &lossy, &PingPongLive::default(), &StopSignal::new());
        rx_stop.stop();
        let sink = sink.join().expect("sink thread").expect("rx bench runs");
        assert_eq!(sink.counters.rx_packets, 5, "the sink saw every ping");
        report
    });
    let paced_report = paced_report.expect("paced ping-pong runs");
    assert_eq!(paced_report.received, 50);
    assert!(
        paced_report.elapsed >= Duration::from_millis(98),
        "50 packets 2 ms apart took {:?}",
        paced_report.elapsed
    );
    let lossy_report = lossy_report.expect("ping-pong without reflector still reports");
    assert_eq!(lossy_report.sent, 5);
    assert_eq!(lossy_report.received, 0);
    assert_eq!(lossy_report.lost, 5);
    assert!(lossy_report.elapsed >= Duration::from_millis(200));
    assert_eq!(lossy_report.rtt.len(), 0);
}

/// Bad requests are errors with the field and value named, never panics.
fn invalid_requests_are_rejected(a: &mut DataPort, b_mac: [u8; 6], eal: &Eal) {
    let again = Eal::init(&["--no-huge".to_owned()]);
    assert!(matches!(again, Err(EalError::AlreadyInitialized { .. })));

    let missing = DataPort::open(
        eal,
        &DataPortSpec::new(
            PortSelector::Name("net_nonexistent7".into()),
            Ipv4Addr::new(10, 1, 1, 1),
            24,
        ),
    );
    let err = missing.expect_err("no such device");
    assert!(matches!(err, DatapathError::Port { .. }));
    let chain = dpdk_agent::selftest::error_chain(&err);
    assert!(
        chain.contains("no DPDK port named \"net_nonexistent7\""),
        "{chain}"
    );
    assert!(DataPort::open(
        eal,
        &DataPortSpec::new(PortSelector::Id(77), Ipv4Addr::new(10, 1, 1, 1), 24)
    )
    .is_err());

    for (size, field) in [
        (20u16, "frame_size"),
        (63, "frame_size"),
        (1515, "frame_size"),
    ] {
        let params = BenchParams {
            frame_size: size,
            ..bench_params(BenchMode::Tx)
        };
        let err = params.validate().expect_err("size out of range");
        assert_eq!(err.field, field);
        assert!(err.to_string().contains(&size.to_string()), "{err}");
        let run = bench(a, &params, &BenchLive::default(), &StopSignal::new());
        assert!(matches!(run, Err(WorkloadError::InvalidParam(_))));
    }
    // Sized allocation: what fits comes sized; what does not is an error naming the room.
    let mut batch = dpdk_agent::mbuf::MbufBatch::new();
    a.mempool()
        .alloc_packets_into(&mut batch, 4, 100)
        .expect("4 packets of 100 bytes");
    assert!(batch
        .as_slice()
        .iter()
        .all(|m| m.len() == 100 && m.data().len() == 100));
    let err = a
        .mempool()
        .alloc_packets_into(&mut batch, 1, 5000)
        .expect_err("5000 bytes do not fit one mbuf");
    assert!(
        err.to_string().contains("5000-byte packet") && err.to_string().contains("room for 2048"),
        "{err}"
    );
    assert_eq!(batch.len(), 4, "a refused allocation adds nothing");
    drop(batch);

    let zero_rate = BenchParams {
        rate_pps: Some(0),
        ..bench_params(BenchMode::Tx)
    };
    assert_eq!(zero_rate.validate().expect_err("rate 0").field, "rate_pps");
    for (mode, rate) in [
        (BenchMode::Tx, 0),
        (BenchMode::Tx, 100_001),
        (BenchMode::Rx, 10),
    ] {
        let params = BenchParams {
            probe_rate_pps: Some(rate),
            ..bench_params(mode)
        };
        let err = params.validate().expect_err("probe rate refused");
        assert_eq!(err.field, "probe_rate_pps", "{err}");
    }
    let no_peer = BenchParams {
        peer_ip: None,
        ..bench_params(BenchMode::Both)
    };
    assert_eq!(no_peer.validate().expect_err("no peer").field, "peer_ip");
    for (mode, mac) in [
        (BenchMode::Tx, [0x01, 0, 0x5e, 0, 0, 1]),
        (BenchMode::Both, [0xff; 6]),
        (BenchMode::Rx, b_mac),
    ] {
        let params = BenchParams {
            peer_mac: Some(mac),
            ..bench_params(mode)
        };
        let err = params.validate().expect_err("peer_mac refused");
        assert_eq!(err.field, "peer_mac", "{err}");
    }
    let bad_pingpong = PingPongParams {
        peer_mac: None,
        through_dut: false,
        peer_ip: IP_B,
        count: 0,
        frame_size: 64,
        interval: None,
        window: 1,
        timeout: Duration::from_secs(1),
    };
    assert_eq!(bad_pingpong.validate().expect_err("count 0").field, "count");

    // Nobody owns 10.9.0.99: ARP gets no answer, and that is an error naming the IP.
    let unreachable = PingPongParams {
        peer_ip: Ipv4Addr::new(10, 9, 0, 99),
        count: 1,
        ..bad_pingpong
    };
    let started = Instant::now();
    match pingpong(
        a,
        &unreachable,
        &PingPongLive::default(),
        &StopSignal::new(),
    ) {
        Err(WorkloadError::PeerUnreachable { ip, .. }) => {
            assert_eq!(ip, unreachable.peer_ip);
        }
        other => panic!("expected PeerUnreachable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Sends `frames` from `b` into `a`, lets `a`'s idle responder answer one burst and
/// returns what came back to `b`.
fn idle_round(a: &mut DataPort, b: &mut DataPort, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut batch = MbufBatch::new();
    for frame in frames {
        let mut mbuf = b.mempool().alloc().expect("an mbuf");
        mbuf.set_len(frame.len())
            .expect("room for the frame")
            .copy_from_slice(frame);
        batch.push(mbuf).expect("room in the batch");
    }
    assert_eq!(b.port_mut().tx_burst(&mut batch), frames.len());
    let counters = answer_one_burst(a);
    assert_eq!(counters.received, frames.len() as u64, "{counters:?}");
    let mut back = MbufBatch::new();
    b.port_mut().rx_burst(&mut back);
    back.drain().map(|mbuf| mbuf.data().to_vec()).collect()
}

fn test_frame(src_mac: [u8; 6], dst_mac: [u8; 6], src_ip: Ipv4Addr, dst_ip: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0u8; 64];
    let endpoints = UdpEndpoints {
        src_mac,
        dst_mac,
        src_ip,
        dst_ip,
        src_port: packet::TEST_UDP_PORT,
        dst_port: packet::TEST_UDP_PORT,
    };
    packet::build_udp(&mut frame, &endpoints, &PayloadHeader { seq: 7, tx_ns: 1 }).unwrap();
    frame
}

/// While no workload runs, A answers ARP for its IP and sends B's test frames back
/// once (TTL one less), but never a frame that was already answered or its own.
fn idle_port_answers_like_a_host(a: &mut DataPort, b: &mut DataPort) {
    // What earlier scenarios left on the wire.
    for port in [&mut *a, &mut *b] {
        let mut stale = MbufBatch::new();
        while port.port_mut().rx_burst(&mut stale) > 0 {
            stale.clear();
        }
    }
    let arp_for = |target| {
        let mut frame = vec![0u8; packet::ETH_MIN_FRAME];
        packet::build_arp(
            &mut frame,
            packet::BROADCAST_MAC,
            &packet::arp_request(b.mac(), IP_B, target),
        )
        .unwrap();
        frame
    };
    let from_b = test_frame(b.mac(), a.mac(), IP_B, IP_A);
    let back = idle_round(
        a,
        b,
        &[
            arp_for(IP_A),
            arp_for(Ipv4Addr::new(10, 9, 0, 77)),
            from_b.clone(),
            test_frame(a.mac(), a.mac(), IP_A, IP_A),
        ],
    );
    assert_eq!(back.len(), 2, "an ARP reply and one reflected frame");
    match packet::parse(&back[0]) {
        Ok(Frame::Arp { arp, .. }) => {
            assert_eq!(arp.op, ArpOp::Reply);
            assert_eq!((arp.sender_ip, arp.sender_mac), (IP_A, a.mac()));
        }
        other => panic!("expected an ARP reply, got {other:?}"),
    }
    let reflected = back[1].clone();
    match packet::parse(&reflected) {
        Ok(Frame::Udp(udp)) => {
            assert_eq!((udp.src_ip, udp.dst_ip), (IP_A, IP_B));
            assert_eq!(udp.ttl, packet::DEFAULT_TTL - 1);
            assert_eq!(PayloadHeader::parse(udp.payload).unwrap().seq, 7);
        }
        other => panic!("expected the reflected test frame, got {other:?}"),
    }
    // An answer that comes back (a peer's idle responder bouncing it) is not
    // answered again.
    let mut bounced = reflected;
    packet::swap_udp_in_place(&mut bounced).unwrap();
    assert!(idle_round(a, b, &[bounced]).is_empty());
}

/// The loopback port returns every frame as it was sent, as a DUT forwarding with
/// testpmd's io engine does: with `through_dut` the sender counts its own frames and
/// probes coming back (with their addresses unswapped), and the ping-pong takes them
/// as replies. Without it the same frames are not replies.
fn through_a_dut_that_returns_frames_unchanged(looped: &mut DataPort) {
    const COUNT: u64 = 5_000;
    let dut_ip = Ipv4Addr::new(192, 0, 2, 9);
    let dut_mac = Some([0x52, 0x54, 0, 0, 0, 9]);
    let through = BenchParams {
        peer_ip: Some(dut_ip),
        peer_mac: dut_mac,
        through_dut: true,
        count: Some(COUNT),
        rate_pps: Some(50_000),
        probe_rate_pps: Some(1_000),
        ..bench_params(BenchMode::Both)
    };
    let report = bench(looped, &through, &BenchLive::default(), &StopSignal::new())
        .expect("bench through the loopback");
    let c = report.counters;
    assert_eq!(c.tx_packets, COUNT);
    assert_eq!(c.rx_packets, COUNT, "every frame came back: {c:?}");
    assert_eq!((c.rx_seq_gaps, c.rx_reordered), (0, 0), "{c:?}");
    assert!(c.probes_sent > 0, "{c:?}");
    assert_eq!(c.probes_returned, c.probes_sent, "{c:?}");
    assert_eq!(
        c.probes_reflected, 0,
        "no probe was taken for a peer's: {c:?}"
    );
    assert_eq!(report.probe_rtt.len(), c.probes_returned);
    telemetry_reads_the_same_counters(looped, COUNT + c.probes_sent);

    let pings = PingPongParams {
        peer_ip: dut_ip,
        count: 200,
        frame_size: 64,
        interval: None,
        window: 4,
        timeout: Duration::from_millis(500),
        peer_mac: dut_mac,
        through_dut: true,
    };
    let report = pingpong(looped, &pings, &PingPongLive::default(), &StopSignal::new())
        .expect("ping-pong through the loopback");
    assert_eq!((report.received, report.lost), (200, 0));
    let not_through = PingPongParams {
        through_dut: false,
        count: 3,
        timeout: Duration::from_millis(50),
        ..pings
    };
    let report = pingpong(
        looped,
        &not_through,
        &PingPongLive::default(),
        &StopSignal::new(),
    )
    .expect("ping-pong into the loopback");
    assert_eq!(
        (report.received, report.lost),
        (0, 3),
        "its own frames are no replies"
    );
    let no_mac = BenchParams {
        peer_mac: None,
        ..through
    };
    assert!(no_mac.validate().is_err(), "through_dut needs peer_mac");
}

/// This process's own telemetry socket (EAL opens one as it starts) answers
/// `/ethdev/stats` with the port's counters: what the agent reads of an application
/// under test.
fn telemetry_reads_the_same_counters(port: &DataPort, sent: u64) {
    if !nix::unistd::geteuid().is_root() {
        // Without root EAL puts its runtime directory under XDG_RUNTIME_DIR; the
        // agent (root in the guest) reads /var/run/dpdk only.
        eprintln!("telemetry check skipped: not root");
        return;
    }
    let path = telemetry::socket_path(&file_prefix()).expect("a valid prefix");
    let command = format!("/ethdev/stats,{}", port.details().port_id);
    let answer = telemetry::query(&path, &command, Duration::from_secs(2))
        .unwrap_or_else(|error| panic!("telemetry at {}: {error}", path.display()));
    let greeting: serde_json::Value =
        serde_json::from_str(&answer.greeting).expect("JSON greeting");
    assert_eq!(greeting["pid"], std::process::id(), "{greeting}");
    let stats: serde_json::Value = serde_json::from_str(&answer.json).expect("JSON answer");
    assert_eq!(stats["/ethdev/stats"]["opackets"], sent, "{stats}");
    assert_eq!(stats["/ethdev/stats"]["ipackets"], sent, "{stats}");
    assert!(matches!(
        telemetry::query(&path, "/ethdev/stats;reboot", Duration::from_secs(1)),
        Err(telemetry::TelemetryError::Command(_))
    ));
}

#[test]
fn datapath_on_a_real_eal() {
    let eal = eal();
    assert!(!Eal::dpdk_version().is_empty());
    let (id_a, id_b) = create_ring_pair(&eal, "wire_a", "wire_b").expect("ring pair");
    let mut a = DataPort::open(&eal, &DataPortSpec::new(PortSelector::Id(id_a), IP_A, 24))
        .expect("port A opens");
    let mut b = DataPort::open(
        &eal,
        &DataPortSpec::new(PortSelector::Name("net_ring_wire_b".into()), IP_B, 24),
    )
    .expect("port B opens by name");
    assert_eq!(b.details().port_id, id_b);
    assert!(a.details().link_up);

    pingpong_over_the_wire(&mut a, &mut b);
    tx_to_rx_counts_match(&mut a, &mut b);
    known_peer_mac_needs_no_arp(&mut a, &mut b);
    rate_is_held(&mut a, &mut b);
    both_directions_through_a_reflector(&mut a, &mut b);
    interval_and_loss(&mut a, &mut b);
    invalid_requests_are_rejected(&mut a, b.mac(), &eal);
    idle_port_answers_like_a_host(&mut a, &mut b);

    // The loopback port passes the same port checks the selftest runs.
    let mut looped = DataPort::open(
        &eal,
        &DataPortSpec::new(
            PortSelector::Name("net_ring0".into()),
            Ipv4Addr::new(192, 0, 2, 1),
            24,
        ),
    )
    .expect("net_ring0 opens");
    let checks = port_checks(&mut looped, None, Duration::from_secs(3));
    assert!(checks.iter().all(|check| check.ok), "{checks:?}");
    assert_eq!(checks.len(), 4);
    through_a_dut_that_returns_frames_unchanged(&mut looped);

    // Stats reset really resets.
    a.reset_stats().expect("reset");
    assert_eq!(a.stats().expect("stats").opackets, 0);
    assert!(a.xstats().is_ok());
    // Pools get every mbuf back once the ports are closed.
    drop(looped);
    drop(a);
    drop(b);
}
