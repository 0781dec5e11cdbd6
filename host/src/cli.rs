//! Command-line definitions (clap). No logic here.

use std::path::PathBuf;

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
    #[arg(long)]
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
