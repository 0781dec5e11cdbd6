//! Command-line definitions (parsing only; `foreground` does the work).

use std::net::Ipv4Addr;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// dpdk-agent: the guest side of dpdkhost.
#[derive(Debug, Parser)]
#[command(name = "dpdk-agent", version, about)]
pub struct Cli {
    /// Check hugepages, the data NIC, EAL, a port and a real packet, print a table,
    /// exit non-zero on any failure.
    #[arg(long)]
    pub selftest: bool,
    /// Selftest on a net_ring loopback port without hugepages or PCI (any Linux host).
    #[arg(long, requires = "selftest")]
    pub loopback: bool,
    /// Selftest: bounce the test packet off the reflector at this IP.
    #[arg(long, requires = "selftest")]
    pub peer: Option<Ipv4Addr>,
    /// Selftest: print JSON instead of a table.
    #[arg(long, requires = "selftest")]
    pub json: bool,
    /// Selftest: the data NIC (PCI address like 0000:00:04.0, or a DPDK port name).
    #[arg(long, requires = "selftest", conflicts_with = "loopback")]
    pub device: Option<String>,
    /// Selftest: the data NIC's address, e.g. 10.0.1.4/24.
    #[arg(long, requires = "selftest", conflicts_with = "loopback")]
    pub ip: Option<IpPrefix>,
    /// Selftest: EAL options (one string), replacing the defaults `-l 0 -a <device>`.
    #[arg(
        long,
        requires = "selftest",
        allow_hyphen_values = true,
        conflicts_with = "loopback"
    )]
    pub eal: Option<String>,
    /// Selftest without --device/--eal/--loopback: ask the serving agent through
    /// this control socket (default /run/dpdk-agent/agent.sock).
    #[arg(long, value_name = "PATH", requires = "selftest", conflicts_with_all = ["loopback", "device", "eal"])]
    pub control_socket: Option<std::path::PathBuf>,
    /// Selftest: the agent configuration giving the peer when --peer is not given, and,
    /// with no serving agent and no --device/--eal/--ip, the data NIC (by its MAC, or
    /// the binding `serve` recorded) and its address.
    #[arg(long, value_name = "PATH", requires = "selftest", default_value = agent_proto::config::DEFAULT_CONFIG_PATH)]
    pub config: std::path::PathBuf,
    /// Selftest: seconds to wait for the link and for replies.
    #[arg(long, requires = "selftest", default_value_t = 5.0)]
    pub timeout: f64,

    /// Run one workload in the foreground instead.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Workloads runnable from the command line.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Packet-rate bench: send, receive and count, or both.
    Bench(BenchArgs),
    /// Return test packets to their sender (and answer ARP) until the duration ends.
    Reflect(ReflectArgs),
    /// Measure round-trip times against a reflector.
    Pingpong(PingPongArgs),
    /// Serve the gRPC API: bind the data NIC, start EAL, serve until SIGTERM (what
    /// the VM's systemd unit runs; `--loopback` runs anywhere).
    Serve(dpdk_agent::serve::ServeArgs),
    /// Reach a peer across the DPDK data link through the serving agent (as root):
    /// ARP, then timestamped echoes that the peer's agent returns, like ping(8).
    Ping(PingArgs),
    /// Print a shell completion script (e.g. `dpdk-agent completions bash >
    /// /etc/bash_completion.d/dpdk-agent`).
    Completions(CompletionsArgs),
    /// Write the man pages: dpdk-agent.1 to stdout, or with --out every page
    /// (dpdk-agent.1 and dpdk-agent-<subcommand>.1) into a directory.
    Man(ManArgs),
}

/// An IPv4 address with a prefix length, `10.0.1.4/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    /// Address.
    pub ip: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix_len: u8,
}

impl FromStr for IpPrefix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (ip, prefix) = text.split_once('/').unwrap_or((text, "24"));
        let ip = ip.parse().map_err(|err| format!("{ip:?}: {err}"))?;
        let prefix_len = prefix
            .parse::<u8>()
            .ok()
            .filter(|len| *len <= 32)
            .ok_or_else(|| format!("prefix length {prefix:?} is not 0..=32"))?;
        Ok(IpPrefix { ip, prefix_len })
    }
}

/// The port a workload runs on.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// EAL options as one string, e.g. "--no-huge --no-pci -l 0 --vdev=net_memif0,role=server".
    #[arg(long, allow_hyphen_values = true)]
    pub eal: String,
    /// DPDK port name or id (net_memif0, 0000:00:04.0, 0).
    #[arg(long, default_value = "0")]
    pub device: String,
    /// This port's address, e.g. 10.0.1.4/24.
    #[arg(long)]
    pub ip: IpPrefix,
    /// Mbufs in the port's pool.
    #[arg(long, default_value_t = 8191)]
    pub mbufs: u32,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What the bench does.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// Send only.
    Tx,
    /// Receive only.
    Rx,
    /// Send and receive.
    Both,
}

/// `dpdk-agent bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The port.
    #[command(flatten)]
    pub port: PortArgs,
    /// Send, receive or both.
    #[arg(long, value_enum)]
    pub mode: ModeArg,
    /// Receiver's IP (tx and both).
    #[arg(long)]
    pub peer: Option<Ipv4Addr>,
    /// Receiver's MAC: send to it without ARP (like dpdk-testpmd's --eth-peer), for
    /// receivers that do not answer ARP.
    #[arg(long, value_parser = dpdk_agent::packet::parse_mac, requires = "peer")]
    pub peer_mac: Option<dpdk_agent::packet::MacAddr>,
    /// Frame size without FCS, 64..=1514.
    #[arg(long, default_value_t = 64)]
    pub size: u16,
    /// Packets per second; the maximum when not given.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Seconds to send (tx, both) or receive (rx).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Packets to send (tx, both) or receive (rx).
    #[arg(long)]
    pub count: Option<u64>,
    /// Packets per tx and per rx burst (32, like dpdk-testpmd's default).
    #[arg(long, default_value_t = 32)]
    pub burst: u16,
    /// Seconds to keep receiving after sending ends.
    #[arg(long, default_value_t = 0.5)]
    pub drain: f64,
    /// Latency probes per second alongside the load (tx, both; 1..=100000): the
    /// receiver returns them and their round trips are printed.
    #[arg(long)]
    pub probe_rate: Option<u32>,
}

/// `dpdk-agent reflect`.
#[derive(Debug, Args)]
pub struct ReflectArgs {
    /// The port.
    #[command(flatten)]
    pub port: PortArgs,
    /// Seconds to run.
    #[arg(long)]
    pub duration: f64,
}

/// `dpdk-agent pingpong`.
#[derive(Debug, Args)]
pub struct PingPongArgs {
    /// The port.
    #[command(flatten)]
    pub port: PortArgs,
    /// The reflector's IP.
    #[arg(long)]
    pub peer: Ipv4Addr,
    /// Packets to send.
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    /// Frame size without FCS, 64..=1514.
    #[arg(long, default_value_t = 64)]
    pub size: u16,
    /// Microseconds between sends; back to back (within the window) when not given.
    #[arg(long)]
    pub interval_us: Option<u64>,
    /// Packets in flight at most.
    #[arg(long, default_value_t = 1)]
    pub window: u32,
    /// Milliseconds to wait for each reply.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
}

/// Most echoes one `ping` sends.
pub const MAX_PING_COUNT: u64 = 1000;
/// Longest gap between two echoes, in milliseconds.
pub const MAX_PING_INTERVAL_MS: u64 = 10_000;
/// Longest wait for one answer, in milliseconds (the agent's limit).
pub const MAX_PING_TIMEOUT_MS: u64 = 60_000;

/// `dpdk-agent ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// The peer's data address (IPv4), e.g. 10.0.1.6.
    #[arg(value_name = "PEER_IP")]
    pub peer: Ipv4Addr,
    /// Echoes to send, 1..=1000.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=MAX_PING_COUNT))]
    pub count: u64,
    /// Milliseconds between two echoes, 1..=10000.
    #[arg(long, value_name = "MS", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..=MAX_PING_INTERVAL_MS))]
    pub interval_ms: u64,
    /// Milliseconds to wait for each answer before counting it lost, 1..=60000.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=MAX_PING_TIMEOUT_MS))]
    pub timeout_ms: u64,
    /// The serving agent's control socket (default /run/dpdk-agent/agent.sock, or
    /// agent.sock in $DPDK_AGENT_RUN_DIR).
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<std::path::PathBuf>,
    /// Print the outcome as JSON (every figure, progress included).
    #[arg(long)]
    pub json: bool,
}

pub use agent_proto::cli_docs::{CompletionsArgs, ManArgs};
