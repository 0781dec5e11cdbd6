//! Command-line definitions (clap). No logic here.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Stand up a lab of DPDK VMs under libvirt, with a gRPC agent injected into each one.
#[derive(Debug, Parser)]
#[command(name = "dpdkhost", version, about, propagate_version = true)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Configuration file (default: ./dpdkhost.toml when present, else built-in defaults).
    #[arg(long, global = true, env = "DPDKHOST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Environment name: labs with different names live side by side; every libvirt
    /// object is named dpdkhost-<env>-...
    #[arg(long, global = true, default_value = "default", env = "DPDKHOST_ENV")]
    pub env: String,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented default dpdkhost.toml.
    Init(InitArgs),
    /// Build or list guest images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Show what `up` would do.
    Plan(PlanArgs),
    /// Create the lab and wait until every agent is SERVING.
    Up(UpArgs),
    /// Remove everything of the environment (found by name and metadata; no state needed).
    Down(DownArgs),
    /// VMs, their state, acceleration, addresses, agent health and EAL state.
    Status,
    /// SSH into VM N (1, 2, ... or vm1), optionally running a command.
    Ssh(SshArgs),
    /// VM N's serial console log.
    Logs(LogsArgs),
    /// VM names and addresses (like the old Terraform outputs).
    Outputs,
    /// Ansible dynamic inventory.
    Inventory(InventoryArgs),
    /// Check this machine: libvirtd, pool, KVM, hugepages, image, disk space.
    Doctor,
    /// Run a workload between two VMs.
    #[command(subcommand)]
    Run(RunCommand),
    /// Packet rate between two VMs over the DPDK link, loss accounted on both sides.
    Bench(BenchArgs),
    /// Every agent's selftest, the test packet through its peer's reflector.
    Selftest,
    /// Hand a VM's data port to your own DPDK application, or take it back.
    #[command(subcommand)]
    Port(PortCommand),
    /// Run a command in a VM (as root on the released data port with --dpdk).
    Exec(ExecArgs),
    /// Copy a file into a VM (FILE N[:DEST]) or out of it (N:SRC DEST).
    Cp(CpArgs),
    /// Overlay saved runs (results/*.json) in one SVG chart.
    Report(ReportArgs),
    /// An OpenSSH config block per VM (pinned host keys), for ssh -F, scp, rsync, editors.
    SshConfig(SshConfigArgs),
    /// A shell completion script, generated from these definitions.
    Completions(CompletionsArgs),
    /// The man pages: dpdkhost(1) and one per subcommand.
    Man(ManArgs),
}

/// `port ...`.
#[derive(Debug, Subcommand)]
pub enum PortCommand {
    /// The agent lets go of its data port (left bound for DPDK) and prints the EAL
    /// arguments, MAC and IP an application needs, and the peer's.
    Release(PortArgs),
    /// The agent takes its data port back (stop the application first).
    Acquire(PortArgs),
}

/// `port release|acquire`.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// VM index (1, 2, ...) or name (vm1).
    pub vm: String,
}

/// `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// VM index (1, 2, ...) or name (vm1).
    pub vm: String,
    /// Release the data port first, replace {eal} in the command with the EAL
    /// arguments for it, set DPDKHOST_EAL, DPDKHOST_DATA_MAC, DPDKHOST_DATA_IP,
    /// DPDKHOST_PEER_MAC and DPDKHOST_PEER_IP, run it as root, and take the port back
    /// however it ends.
    #[arg(long)]
    pub dpdk: bool,
    /// The command (after `--`), shell text as ssh passes it on.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// `cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// A local file, or N:PATH in a VM.
    pub source: String,
    /// N or N:PATH in a VM (default: the user's home; a path ending in / is a
    /// directory), or a local path.
    pub dest: String,
}

/// `ssh-config`.
#[derive(Debug, Args)]
pub struct SshConfigArgs {
    /// Write it to the environment's state directory and print the `Include` line for
    /// ~/.ssh/config instead of printing the blocks.
    #[arg(long)]
    pub write: bool,
}

pub use agent_proto::cli_docs::{CompletionsArgs, ManArgs};

/// `run ...`.
#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Round-trip latency percentiles between two VMs over the DPDK link.
    Pingpong(PingPongArgs),
}

/// `run pingpong`.
#[derive(Debug, Args)]
pub struct PingPongArgs {
    /// The initiating VM (index or name).
    #[arg(long, default_value = "1")]
    pub from: String,
    /// The reflecting VM (index or name).
    #[arg(long, default_value = "2")]
    pub to: String,
    /// Packets to send (1..=10000000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub count: u64,
    /// Frame size in bytes without FCS, as testpmd counts it (64..=1514).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(64..=1514))]
    pub size: u32,
    /// Gap between sends (e.g. 1ms, 100us); without it, back-to-back within --window.
    #[arg(long, value_parser = crate::units::parse_duration, conflicts_with = "window")]
    pub interval: Option<Duration>,
    /// Packets in flight when sending back-to-back (1..=1024; default 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub window: Option<u32>,
    /// Per-packet timeout: a reply later than this counts as lost.
    #[arg(long, default_value = "1s", value_parser = crate::units::parse_duration)]
    pub timeout: Duration,
    /// After the agent's run, measure the same ping-pong through this reference on the
    /// same VMs and link (kernel: the NICs go back to virtio_net, UDP sockets).
    #[arg(long, value_enum)]
    pub baseline: Option<PingPongBaseline>,
    /// Measure through the DPDK application on this VM (index or name; DTS's SUT)
    /// instead of between two agents: its agent releases its port, --app runs on it,
    /// and the agent at the other end of its data link (--from) sends to it and counts
    /// what it returns.
    #[arg(long, value_name = "VM", conflicts_with_all = ["to", "baseline"])]
    pub through: Option<String>,
    /// With --through: the application, shell text run as root in the VM, `{eal}`
    /// replaced by EAL arguments for the released port; it must send what it
    /// receives back out of the same port (MACs or everything swapped).
    #[arg(long, requires = "through", default_value = crate::dut::DEFAULT_APP, value_name = "CMD")]
    pub app: String,
    /// Directory the run is saved in.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
}

/// A reference for `run pingpong`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PingPongBaseline {
    /// UDP round trips through both guests' kernel stacks.
    Kernel,
}

/// A reference for `bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchBaseline {
    /// dpdk-testpmd txonly -> rxonly in the same VMs on the same ports.
    Testpmd,
}

/// One way or both ways at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchDirectionArg {
    /// --from transmits, --to receives.
    Uni,
    /// Both transmit and receive at once.
    Bi,
}

/// `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Measure packets per second (the only bench so far; required so scripts say what they mean).
    #[arg(long, required = true)]
    pub pps: bool,
    /// Frame size in bytes without FCS, as testpmd counts it (64..=1514).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(64..=1514))]
    pub size: u32,
    /// How long to transmit (1s..=1h).
    #[arg(long, default_value = "10s", value_parser = parse_bench_duration)]
    pub duration: Duration,
    /// Target rate per transmitter in packets per second (1..=100000000); default: as fast as possible.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub rate: Option<u64>,
    /// uni: --from sends to --to; bi: both ways at once.
    #[arg(long, value_enum, default_value = "uni")]
    pub direction: BenchDirectionArg,
    /// The transmitting VM (index or name).
    #[arg(long, default_value = "1")]
    pub from: String,
    /// The receiving VM (index or name).
    #[arg(long, default_value = "2")]
    pub to: String,
    /// Measure the same direction with this reference on the same VMs and ports, in
    /// alternating order with the agent for --rounds rounds (testpmd: --direction uni
    /// only, as fast as possible).
    #[arg(long, value_enum)]
    pub baseline: Option<BenchBaseline>,
    /// Measure through the DPDK application on this VM (index or name; DTS's SUT)
    /// instead of between two agents: its agent releases its port, --app runs on it,
    /// and the agent at the other end of its data link (--from) sends to it and counts
    /// what it returns.
    #[arg(long, value_name = "VM", conflicts_with_all = ["to", "baseline", "direction"])]
    pub through: Option<String>,
    /// With --through: the application, shell text run as root in the VM, `{eal}`
    /// replaced by EAL arguments for the released port; it must send what it
    /// receives back out of the same port (MACs or everything swapped).
    #[arg(long, requires = "through", default_value = crate::dut::DEFAULT_APP, value_name = "CMD")]
    pub app: String,
    /// Rounds of agent and baseline with --baseline (1..=20); the order alternates.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: u32,
    /// Repeat each measurement (a plain trial, or a whole search) this many times and
    /// report the median, min and max (1..=100).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub trials: u32,
    /// Search NDR (no loss) and PDR (loss ratio at most --loss-ratio) by trials at
    /// chosen loads (RFC 2544 throughput, RFC 9971): short trials narrow the interval,
    /// a --final-trial confirms each result.
    #[arg(long)]
    pub search: bool,
    /// The PDR's loss-ratio goal (above 0, below 1; CSIT uses 0.005).
    #[arg(long, default_value_t = 0.005, requires = "search")]
    pub loss_ratio: f64,
    /// Stop narrowing when the interval is at most this share of its upper end (above 0, below 1).
    #[arg(long, default_value_t = 0.02, requires = "search")]
    pub precision: f64,
    /// Duration of the search's short trials (1s..=1h).
    #[arg(long, default_value = "1s", value_parser = parse_bench_duration, requires = "search")]
    pub trial_duration: Duration,
    /// Duration of the final trial at each result (1s..=1h).
    #[arg(long, default_value = "10s", value_parser = parse_bench_duration, requires = "search")]
    pub final_trial: Duration,
    /// At most this many trials per search (3..=1000).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(3..=1000), requires = "search")]
    pub max_trials: u32,
    /// Loads below this are not tried (packets per second, 1..=100000000): an NDR below
    /// it is reported as 0.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000_000), requires = "search")]
    pub min_rate: u64,
    /// Frame sizes to search, comma-separated, bytes without FCS (64..=1514 each), or
    /// `rfc2544` for RFC 2544 §9.1's 64,128,256,512,1024,1280,1518 with FCS (1514
    /// without); replaces --size.
    #[arg(long, value_parser = parse_sizes, requires = "search")]
    pub sizes: Option<FrameSizes>,
    /// Measure round-trip latency with a stream of timestamped probes alongside the
    /// load: with --search at 0, 10, 50 and 90 % of the PDR, otherwise in every trial.
    #[arg(long)]
    pub latency: bool,
    /// Latency probes per second per transmitter (1..=100000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000), requires = "latency")]
    pub probe_rate: u32,
    /// Duration of each latency level's trial with --search (1s..=1h).
    #[arg(long, default_value = "5s", value_parser = parse_bench_duration, requires = "latency")]
    pub latency_duration: Duration,
    /// Fail (exit 1) when the measured rate (NDR with --search, else the median rx
    /// pps) is below this × (1 − --tolerance): a regression gate for CI.
    #[arg(long, value_parser = parse_positive_rate)]
    pub expect_pps: Option<f64>,
    /// The share the rate may fall short of --expect-pps (0..1).
    #[arg(long, default_value_t = 0.05, requires = "expect_pps", value_parser = parse_tolerance)]
    pub tolerance: f64,
    /// Directory the run is saved in.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
}

/// RFC 2544 §9.1's Ethernet frame sizes, here without the 4-byte FCS where it would
/// not fit (1518 with FCS is 1514 without; the smallest keep their size, as testpmd's
/// --txpkts counts them).
pub const RFC2544_SIZES: [u32; 7] = [64, 128, 256, 512, 1024, 1280, 1514];

impl BenchArgs {
    /// The frame sizes measured: `--sizes`, or `--size` alone.
    pub fn frame_sizes(&self) -> Vec<u32> {
        self.sizes
            .clone()
            .map_or_else(|| vec![self.size], |sizes| sizes.0)
    }
}

/// The frame sizes of `--sizes` (one value on the command line, a list here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSizes(pub Vec<u32>);

fn parse_sizes(text: &str) -> Result<FrameSizes, String> {
    parse_size_list(text).map(FrameSizes)
}

fn parse_size_list(text: &str) -> Result<Vec<u32>, String> {
    if text == "rfc2544" {
        return Ok(RFC2544_SIZES.to_vec());
    }
    let mut sizes = Vec::new();
    for word in text.split(',') {
        let size: u32 = word
            .trim()
            .parse()
            .map_err(|_| format!("{word:?} is not a frame size (bytes without FCS, 64..=1514)"))?;
        if !(64..=1514).contains(&size) {
            let hint = if size == 1518 {
                " (1518 with FCS is 1514 without: give 1514, or `rfc2544`)"
            } else {
                ""
            };
            return Err(format!(
                "{size} is out of range: sizes are bytes without FCS, 64..=1514{hint}"
            ));
        }
        if sizes.contains(&size) {
            return Err(format!("{size} is given twice"));
        }
        sizes.push(size);
    }
    Ok(sizes)
}

fn parse_positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "must be a rate above 0 packets per second, got {text:?}"
        )),
    }
}

fn parse_tolerance(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if (0.0..1.0).contains(&share) => Ok(share),
        _ => Err(format!(
            "must be a share in 0..1 (e.g. 0.05 for 5 %), got {text:?}"
        )),
    }
}

fn parse_bench_duration(text: &str) -> Result<Duration, String> {
    let duration = crate::units::parse_duration(text)?;
    if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&duration) {
        return Err(format!("must be 1s..=1h, got {duration:?}"));
    }
    Ok(duration)
}

/// `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Saved runs (results/*.json).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Where to write the chart.
    #[arg(long, short, default_value = "report.svg")]
    pub output: PathBuf,
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write (default: ./dpdkhost.toml).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

/// `image ...`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the default guest image (Debian 12 via mmdebstrap) into the cache.
    Build(ImageBuildArgs),
    /// List cached images.
    List,
}

/// `image build`.
#[derive(Debug, Args)]
pub struct ImageBuildArgs {
    /// Rebuild even when the image is cached.
    #[arg(long)]
    pub force: bool,
}

/// `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Use TCG even where KVM works.
    #[arg(long)]
    pub no_kvm: bool,
}

/// `up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Apply without asking.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Use TCG (software emulation) even where KVM works.
    #[arg(long)]
    pub no_kvm: bool,
    /// Seconds to wait for every agent to be SERVING (default: timeout_secs, 300).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// The dpdk-agent binary to inject (default: `agent` in the configuration, else next
    /// to this executable).
    #[arg(long, env = "DPDKHOST_AGENT")]
    pub agent: Option<PathBuf>,
}

/// `down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// Remove without asking.
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// `ssh`.
#[derive(Debug, Args)]
pub struct SshArgs {
    /// VM index (1, 2, ...) or name (vm1).
    pub vm: String,
    /// Command to run instead of a shell (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// VM index (1, 2, ...) or name (vm1).
    pub vm: String,
    /// Only the last N lines.
    #[arg(long, short = 'n')]
    pub lines: Option<usize>,
    /// QEMU's own log instead of the serial console.
    #[arg(long)]
    pub qemu: bool,
}

/// `inventory`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct InventoryArgs {
    /// Every host and group.
    #[arg(long)]
    pub list: bool,
    /// One host's variables.
    #[arg(long)]
    pub host: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn bench(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        let cli = Cli::try_parse_from(["dpdkhost", "bench", "--pps"].iter().chain(args))?;
        match cli.command {
            Command::Bench(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn every_methodology_option_parses_into_its_type() {
        let args = bench(&[
            "--search",
            "--sizes",
            "rfc2544",
            "--loss-ratio",
            "0.01",
            "--precision",
            "0.05",
            "--trial-duration",
            "2s",
            "--final-trial",
            "5s",
            "--max-trials",
            "30",
            "--min-rate",
            "500",
            "--latency",
            "--probe-rate",
            "200",
            "--latency-duration",
            "3s",
            "--trials",
            "2",
            "--expect-pps",
            "1000",
            "--tolerance",
            "0.1",
        ])
        .unwrap();
        assert_eq!(args.sizes, Some(FrameSizes(RFC2544_SIZES.to_vec())));
        assert!(args.search && args.latency);
        assert_eq!(
            (args.trials, args.max_trials, args.probe_rate),
            (2, 30, 200)
        );
        assert_eq!(args.expect_pps, Some(1000.0));
        let args = bench(&["--search", "--sizes", "64,512"]).unwrap();
        assert_eq!(args.sizes, Some(FrameSizes(vec![64, 512])));
        let args = bench(&["--baseline", "testpmd", "--rounds", "5"]).unwrap();
        assert_eq!(args.rounds, 5);
    }

    #[test]
    fn bad_methodology_values_name_the_option_and_range() {
        for (args, expected) in [
            (
                &["--search", "--sizes", "64,1518"][..],
                "1518 with FCS is 1514 without",
            ),
            (&["--search", "--sizes", "64,64"][..], "given twice"),
            (&["--search", "--sizes", "big"][..], "not a frame size"),
            (&["--expect-pps", "0"][..], "above 0"),
            (&["--expect-pps", "10", "--tolerance", "1.5"][..], "0..1"),
            (&["--loss-ratio", "0.1"][..], "--search"),
            (&["--trials", "0"][..], "--trials"),
            (&["--rounds", "21"][..], "--rounds"),
        ] {
            let error = bench(args).unwrap_err().to_string();
            assert!(error.contains(expected), "{args:?}: {error}");
        }
    }

    #[test]
    fn port_exec_and_cp_parse() {
        let cli = Cli::try_parse_from([
            "dpdkhost",
            "exec",
            "2",
            "--dpdk",
            "--",
            "dpdk-testpmd",
            "{eal}",
        ])
        .unwrap();
        let Command::Exec(exec) = cli.command else {
            panic!()
        };
        assert!(exec.dpdk);
        assert_eq!(exec.command, ["dpdk-testpmd", "{eal}"]);
        let cli = Cli::try_parse_from(["dpdkhost", "port", "release", "vm2"]).unwrap();
        assert!(
            matches!(cli.command, Command::Port(PortCommand::Release(PortArgs { vm })) if vm == "vm2")
        );
        let cli = Cli::try_parse_from(["dpdkhost", "cp", "app", "2:/tmp/"]).unwrap();
        assert!(
            matches!(cli.command, Command::Cp(CpArgs { source, dest }) if source == "app" && dest == "2:/tmp/")
        );
    }
}
