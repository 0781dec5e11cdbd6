//! Runs the selftest or one workload in the foreground and prints the outcome.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dpdk_agent::datapath::{DataPort, DataPortSpec, PortSelector};
use dpdk_agent::devlock::{self, DeviceLocks};
use dpdk_agent::eal::Eal;
use dpdk_agent::packet::format_mac;
use dpdk_agent::selftest::{is_pci_address, Check, SelftestReport, StandaloneSelftest};
use dpdk_agent::workload::{
    self, BenchLive, BenchMode, BenchParams, PingPongLive, PingPongParams, ReflectLive, StopSignal,
};

use crate::cli::{BenchArgs, Cli, IpPrefix, ModeArg, PingPongArgs, PortArgs, ReflectArgs};

/// How long a foreground workload waits for the link before it starts.
const LINK_WAIT: Duration = Duration::from_secs(10);

fn seconds(value: f64, name: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("--{name} {value} is not a duration in seconds"))
}

fn print_report(report: &SelftestReport, json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.render_table());
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--selftest` with no device: through the serving agent's control socket, with
/// the peer from --peer or the agent's configuration. None when no agent serves.
fn selftest_through_agent(cli: &Cli) -> Result<Option<SelftestReport>> {
    let socket = cli
        .control_socket
        .clone()
        .unwrap_or_else(dpdk_agent::control::default_socket);
    if !socket.exists() {
        if cli.control_socket.is_some() {
            bail!("no control socket {}", socket.display());
        }
        return Ok(None);
    }
    let peer = match cli.peer {
        Some(peer) => Some(peer),
        None if cli.config.exists() => {
            agent_proto::config::AgentConfig::load(&cli.config)
                .with_context(|| "reading the peer from the agent's configuration")?
                .peer_ip
        }
        None => None,
    };
    let timeout = seconds(cli.timeout, "timeout")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reply = runtime.block_on(dpdk_agent::control::selftest(&socket, peer, timeout));
    let reply = match reply {
        Ok(reply) => reply,
        Err(error @ dpdk_agent::control::ControlError::Connect { .. })
            if cli.control_socket.is_none() =>
        {
            tracing::warn!(error = %format!("{error:#}"), "no serving agent: running the selftest here");
            return Ok(None);
        }
        Err(error) => return Err(error.into()),
    };
    let mut checks = vec![Check::pass(
        "serving agent",
        format!("through {}", socket.display()),
    )];
    checks.extend(reply.checks.into_iter().map(|check| Check {
        name: check.name,
        ok: check.ok,
        detail: check.detail,
    }));
    Ok(Some(SelftestReport { checks }))
}

/// What the standalone selftest takes from the agent's configuration.
#[derive(Debug, Default)]
struct Configured {
    device: Option<String>,
    ip: Option<IpPrefix>,
    peer: Option<Ipv4Addr>,
}

/// Without --device, --eal and --ip: the data NIC (by MAC while the kernel owns it,
/// else from the binding `serve` recorded), its address and the peer from the
/// agent's configuration, when there is one.
fn from_config(cli: &Cli) -> Result<Configured> {
    if cli.device.is_some() || cli.eal.is_some() || cli.ip.is_some() || !cli.config.exists() {
        return Ok(Configured::default());
    }
    let config = agent_proto::config::AgentConfig::load(&cli.config)
        .with_context(|| format!("reading {}", cli.config.display()))?;
    let (ip, prefix_len) = config.data_addr()?;
    let device = dpdk_agent::bind::locate_data_nic(
        &dpdk_agent::bind::SysfsRoot::system(),
        config.data_mac_bytes()?,
        std::path::Path::new(dpdk_agent::bind::DEFAULT_STATE_PATH),
    );
    if device.is_none() {
        tracing::warn!(mac = %config.data_mac, "the data NIC is neither a kernel interface nor in the binding state file");
    }
    Ok(Configured {
        device,
        ip: Some(IpPrefix { ip, prefix_len }),
        peer: config.peer_ip,
    })
}

/// `--selftest`: prints the table (or JSON); exit status 1 when any check failed.
pub fn selftest(cli: &Cli) -> Result<ExitCode> {
    if !cli.loopback && cli.device.is_none() && cli.eal.is_none() {
        if let Some(report) = selftest_through_agent(cli)? {
            return print_report(&report, cli.json);
        }
    }
    let test = if cli.loopback {
        StandaloneSelftest {
            peer: cli.peer,
            timeout: seconds(cli.timeout, "timeout")?,
            ..StandaloneSelftest::loopback()
        }
    } else {
        let configured = from_config(cli)?;
        let device = cli.device.clone().or(configured.device);
        let eal_args = match (&cli.eal, &device) {
            (Some(eal), _) => eal.split_whitespace().map(str::to_owned).collect(),
            (None, device) => {
                let mut args = vec![
                    "-l".to_owned(),
                    "0".to_owned(),
                    format!("--file-prefix=dpdk-agent-selftest-{}", std::process::id()),
                ];
                // Without -a, EAL would grab every PCI NIC, including the management one.
                match device {
                    Some(bdf) if is_pci_address(bdf) => args.extend(["-a".to_owned(), bdf.clone()]),
                    _ => args.push("--no-pci".to_owned()),
                }
                args
            }
        };
        // Without an address the port checks cannot run; the system checks and EAL
        // still can, and the report then says what is missing.
        let (device, ip) = match (device, cli.ip.or(configured.ip)) {
            (Some(device), Some(ip)) => (Some(device), ip),
            (_, ip) => (
                None,
                ip.unwrap_or(IpPrefix {
                    ip: Ipv4Addr::UNSPECIFIED,
                    prefix_len: 0,
                }),
            ),
        };
        StandaloneSelftest {
            check_hugepages: !eal_args.iter().any(|arg| arg == "--no-huge"),
            eal_args,
            device: device.map(|d| d.parse::<PortSelector>().unwrap_or(PortSelector::Name(d))),
            ip: ip.ip,
            prefix_len: ip.prefix_len,
            peer: cli.peer.or(configured.peer),
            timeout: seconds(cli.timeout, "timeout")?,
        }
    };
    let report = test.run();
    print_report(&report, cli.json)
}

/// The port and the locks on its devices (held while it is open).
fn open_port(args: &PortArgs) -> Result<(DataPort, DeviceLocks)> {
    let eal_args: Vec<String> = args.eal.split_whitespace().map(str::to_owned).collect();
    let locks = DeviceLocks::for_eal_args(&eal_args, &devlock::run_dir(), "dpdk-agent workload")?;
    let eal = Eal::init(&eal_args)?;
    let device: PortSelector = args.device.parse().unwrap_or(PortSelector::Id(0));
    let mut spec = DataPortSpec::new(device, args.ip.ip, args.ip.prefix_len);
    spec.mbufs = args.mbufs;
    let port = DataPort::open(&eal, &spec)?;
    // A memif client or a virtio NIC may take a moment to come up; ARP needs the link.
    let link = port.port().wait_link_up(LINK_WAIT)?;
    if !link.up {
        tracing::warn!("link still down after {LINK_WAIT:?}; going on anyway");
    }
    let details = port.details();
    eprintln!(
        "port {} {} ({}) mac {} {}/{}",
        details.port_id,
        details.device,
        details.driver,
        format_mac(&details.mac),
        details.ip,
        details.prefix_len
    );
    Ok((port, locks))
}

/// Ctrl-C (or SIGTERM) stops a foreground workload like the end of its duration:
/// the report of what ran so far is printed and the process exits normally, which
/// also removes EAL's runtime directory. A second signal kills as usual (the default
/// action runs once the flag is set).
fn stop_on_signals() -> Result<()> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_default(signal, interrupted_flag())
            .and_then(|_| signal_hook::flag::register(signal, interrupted_flag()))
            .with_context(|| format!("installing the handler for signal {signal}"))?;
    }
    Ok(())
}

/// Raised by the first SIGINT or SIGTERM a foreground workload receives.
fn interrupted_flag() -> std::sync::Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<std::sync::Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| std::sync::Arc::new(AtomicBool::new(false)))
        .clone()
}

/// Runs `work` on a worker thread and prints `progress()` to stderr every second;
/// raises `stop` when the process is interrupted.
fn with_progress<T: Send>(
    stop: &StopSignal,
    work: impl FnOnce() -> T + Send,
    progress: impl Fn() -> String,
) -> T {
    std::thread::scope(|scope| {
        let worker = scope.spawn(work);
        let mut next = Instant::now() + Duration::from_secs(1);
        while !worker.is_finished() {
            std::thread::sleep(Duration::from_millis(20));
            if interrupted_flag().load(Ordering::Relaxed) {
                stop.stop();
            }
            if Instant::now() >= next {
                eprintln!("{}", progress());
                next += Duration::from_secs(1);
            }
        }
        match worker.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// `bench`: prints totals, port counters and the per-second record.
pub fn bench(args: &BenchArgs) -> Result<ExitCode> {
    let params = BenchParams {
        through_dut: false,
        mode: match args.mode {
            ModeArg::Tx => BenchMode::Tx,
            ModeArg::Rx => BenchMode::Rx,
            ModeArg::Both => BenchMode::Both,
        },
        peer_ip: args.peer,
        peer_mac: args.peer_mac,
        frame_size: args.size,
        rate_pps: args.rate,
        duration: args.duration.map(|d| seconds(d, "duration")).transpose()?,
        count: args.count,
        burst: args.burst,
        drain: seconds(args.drain, "drain")?,
        probe_rate_pps: args.probe_rate,
        probe_only: false,
    };
    // Before EAL: a bad parameter should not cost an EAL start.
    params.validate()?;
    let (mut port, _locks) = open_port(&args.port)?;
    let live = BenchLive::default();
    let stop = StopSignal::new();
    stop_on_signals()?;
    let report = with_progress(
        &stop,
        || workload::bench(&mut port, &params, &live, &stop),
        || {
            let c = live.snapshot();
            format!(
                "{:>6.1}s tx {} rx {} ring-full {}",
                c.elapsed.as_secs_f64(),
                c.tx_packets,
                c.rx_packets,
                c.tx_ring_full
            )
        },
    )?;
    if args.port.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let c = &report.counters;
    let secs = c.elapsed.as_secs_f64().max(1e-9);
    // Rates over the sending (or receiving) period, excluding the drain.
    let active = params.duration.map_or(secs, |d| d.as_secs_f64().min(secs));
    println!("elapsed_s={secs:.3}");
    println!(
        "tx_packets={} tx_bytes={} tx_ring_full={} tx_pps={:.0}",
        c.tx_packets,
        c.tx_bytes,
        c.tx_ring_full,
        c.tx_packets as f64 / active
    );
    println!(
        "rx_packets={} rx_bytes={} rx_seq_gaps={} rx_other={} rx_pps={:.0}",
        c.rx_packets,
        c.rx_bytes,
        c.rx_seq_gaps,
        c.rx_other,
        c.rx_packets as f64 / active
    );
    if c.send_elapsed > Duration::ZERO {
        let send_secs = c.send_elapsed.as_secs_f64();
        let offered = c.tx_packets as f64 / send_secs;
        print!("send_s={send_secs:.6} offered_pps={offered:.0}");
        match params.rate_pps {
            Some(rate) => println!(" pacing_error={:.5}", offered / rate as f64 - 1.0),
            None => println!(),
        }
    }
    if c.probes_sent > 0 || c.probes_reflected > 0 {
        let rtt = &report.probe_rtt;
        println!(
            "probes_sent={} probes_returned={} probes_reflected={} rtt_p50_ns={} rtt_p99_ns={} rtt_max_ns={} (TSC)",
            c.probes_sent,
            c.probes_returned,
            c.probes_reflected,
            rtt.value_at_quantile(0.5),
            rtt.value_at_quantile(0.99),
            rtt.max()
        );
    }
    let p = &report.port;
    println!(
        "port ipackets={} opackets={} imissed={} ierrors={} oerrors={} rx_nombuf={}",
        p.ipackets, p.opackets, p.imissed, p.ierrors, p.oerrors, p.rx_nombuf
    );
    for second in &report.per_second {
        println!(
            "second={} tx_pps={} rx_pps={}",
            second.second, second.tx_pps, second.rx_pps
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `reflect`: runs for the duration, prints the counters.
pub fn reflect(args: &ReflectArgs) -> Result<ExitCode> {
    let duration = seconds(args.duration, "duration")?;
    if duration.is_zero() {
        bail!("--duration must be above 0");
    }
    let (mut port, _locks) = open_port(&args.port)?;
    let live = ReflectLive::default();
    let stop = StopSignal::new();
    stop_on_signals()?;
    let deadline = Instant::now() + duration;
    let counters = std::thread::scope(|scope| {
        let worker = scope.spawn(|| workload::reflect(&mut port, &live, &stop));
        while !worker.is_finished()
            && Instant::now() < deadline
            && !interrupted_flag().load(Ordering::Relaxed)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.stop();
        match worker.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })?;
    if args.port.json {
        println!("{}", serde_json::to_string_pretty(&counters)?);
    } else {
        println!(
            "received={} reflected={} arp_replies={} ignored={} tx_dropped={}",
            counters.received,
            counters.reflected,
            counters.arp_replies,
            counters.ignored,
            counters.tx_dropped
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `pingpong`: prints loss and RTT percentiles; exit status 1 when anything was lost.
pub fn pingpong(args: &PingPongArgs) -> Result<ExitCode> {
    let params = PingPongParams {
        peer_mac: None,
        through_dut: false,
        peer_ip: args.peer,
        count: args.count,
        frame_size: args.size,
        interval: args.interval_us.map(Duration::from_micros),
        window: args.window,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    params.validate()?;
    let (mut port, _locks) = open_port(&args.port)?;
    let live = PingPongLive::default();
    let stop = StopSignal::new();
    stop_on_signals()?;
    let report = with_progress(
        &stop,
        || workload::pingpong(&mut port, &params, &live, &stop),
        || {
            let s = live.snapshot();
            format!(
                "{:>6.1}s sent {} received {} lost {} last rtt {} ns",
                s.elapsed.as_secs_f64(),
                s.sent,
                s.received,
                s.lost,
                s.last_rtt_ns
            )
        },
    )?;
    let rtt = &report.rtt;
    let summary = serde_json::json!({
        "sent": report.sent,
        "received": report.received,
        "lost": report.lost,
        "duplicates": report.duplicates,
        "reordered": report.reordered,
        "elapsed_s": report.elapsed.as_secs_f64(),
        "peer_mac": format_mac(&report.peer_mac),
        "frame_size": report.frame_size,
        "rtt_ns": {
            "min": rtt.min(), "p50": rtt.value_at_quantile(0.5), "p90": rtt.value_at_quantile(0.9),
            "p99": rtt.value_at_quantile(0.99), "p999": rtt.value_at_quantile(0.999),
            "max": rtt.max(), "mean": rtt.mean(),
        },
    });
    if args.port.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "sent={} received={} lost={} duplicates={} reordered={}",
            report.sent, report.received, report.lost, report.duplicates, report.reordered
        );
        println!(
            "rtt_ns min={} p50={} p90={} p99={} p99.9={} max={} mean={:.0}",
            rtt.min(),
            rtt.value_at_quantile(0.5),
            rtt.value_at_quantile(0.9),
            rtt.value_at_quantile(0.99),
            rtt.value_at_quantile(0.999),
            rtt.max(),
            rtt.mean()
        );
    }
    Ok(if report.lost == 0 && report.received == report.sent {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
