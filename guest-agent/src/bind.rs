//! Hands the data NIC to DPDK through sysfs, and gives it back.
//!
//! The NIC is found by its MAC in `class/net`, its PCI address is read from the
//! device path, the kernel interface is set down, the module for the DPDK-side
//! driver is loaded, and then the usual dance: `driver_override`, `unbind` from the
//! kernel driver, `drivers_probe`. [`restore`] does the reverse with the original
//! driver's name as the override, so the kernel driver takes the device back.
//!
//! Everything goes through a [`SysfsRoot`] and a [`KernelOps`], so tests run the
//! same code against a fake tree in a temporary directory.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent_proto::config::{format_mac, parse_mac, BindDriver};
use serde::{Deserialize, Serialize};

/// Where the agent records what it bound, so a restarted agent can still find a
/// NIC that no longer has a kernel interface (and its MAC) and give it back.
pub const DEFAULT_STATE_PATH: &str = "/run/dpdk-agent/binding.json";

/// How long a bind or unbind may take to show in sysfs.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The root of a sysfs tree: `/sys` on a real system, a temporary directory in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysfsRoot(PathBuf);

impl SysfsRoot {
    /// A tree rooted at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    /// The system's `/sys`.
    pub fn system() -> Self {
        Self::new("/sys")
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }

    fn pci_device(&self, pci_address: &str) -> PathBuf {
        self.join("bus/pci/devices").join(pci_address)
    }

    fn pci_driver(&self, driver: &str) -> PathBuf {
        self.join("bus/pci/drivers").join(driver)
    }

    /// The driver a PCI device is bound to now, if any.
    pub fn current_driver(&self, pci_address: &str) -> Option<String> {
        let link = fs::read_link(self.pci_device(pci_address).join("driver")).ok()?;
        link.file_name()
            .map(|name| name.to_string_lossy().into_owned())
    }

    fn has_iommu_groups(&self) -> bool {
        fs::read_dir(self.join("kernel/iommu_groups"))
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(false)
    }

    fn noiommu_parameter(&self) -> PathBuf {
        self.join("module/vfio/parameters/enable_unsafe_noiommu_mode")
    }
}

/// Why a kernel operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelOpError {
    /// The helper program could not be started.
    #[error("cannot run {program}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The helper program ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed.
        stderr: String,
    },
}

/// The steps that are not plain sysfs writes: loading a module and setting a
/// kernel interface down.
pub trait KernelOps: Send + Sync {
    /// Loads a kernel module (`modprobe`). Loading one that is loaded is fine.
    fn load_module(&self, module: &str) -> Result<(), KernelOpError>;
    /// Sets a kernel network interface down, so the kernel lets go of it.
    fn set_link_down(&self, ifname: &str) -> Result<(), KernelOpError>;
    /// Whether the running kernel was built with VFIO no-IOMMU mode, when that can
    /// be told without loading vfio (`None`: unknown, so try loading it).
    fn has_vfio_noiommu(&self) -> Option<bool> {
        None
    }
    /// Puts `cidr` (e.g. `10.0.1.4/24`) on a kernel interface, replacing what it had,
    /// and sets the link up.
    fn set_address(&self, ifname: &str, cidr: &str) -> Result<(), KernelOpError>;
    /// Removes every IPv4 address from a kernel interface.
    fn flush_addresses(&self, ifname: &str) -> Result<(), KernelOpError>;
}

/// The real system: `modprobe` and `ip link set dev X down`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemKernel;

fn first_existing(candidates: &[&'static str], fallback: &'static str) -> &'static str {
    candidates
        .iter()
        .copied()
        .find(|path| Path::new(path).exists())
        .unwrap_or(fallback)
}

fn run(program: &str, args: &[&str]) -> Result<(), KernelOpError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| KernelOpError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(KernelOpError::Failed {
        command: format!("{program} {}", args.join(" ")),
        status: output.status,
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

fn ip_program() -> &'static str {
    first_existing(
        &["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"],
        "ip",
    )
}

impl KernelOps for SystemKernel {
    fn load_module(&self, module: &str) -> Result<(), KernelOpError> {
        let modprobe = first_existing(
            &[
                "/usr/sbin/modprobe",
                "/sbin/modprobe",
                "/usr/bin/modprobe",
                "/bin/modprobe",
            ],
            "modprobe",
        );
        run(modprobe, &[module])
    }

    fn set_link_down(&self, ifname: &str) -> Result<(), KernelOpError> {
        run(ip_program(), &["link", "set", "dev", ifname, "down"])
    }

    fn set_address(&self, ifname: &str, cidr: &str) -> Result<(), KernelOpError> {
        // The driver names the interface ethN and udev renames it a moment later: let
        // udev finish first (an interface that is up cannot be renamed).
        let udevadm = first_existing(&["/usr/bin/udevadm", "/bin/udevadm"], "udevadm");
        if let Err(error) = run(udevadm, &["settle", "--timeout=5"]) {
            tracing::debug!(%error, "udevadm settle");
        }
        let ip = ip_program();
        run(ip, &["-4", "addr", "flush", "dev", ifname])?;
        run(ip, &["addr", "add", cidr, "dev", ifname])?;
        run(ip, &["link", "set", "dev", ifname, "up"])
    }

    fn flush_addresses(&self, ifname: &str) -> Result<(), KernelOpError> {
        run(ip_program(), &["-4", "addr", "flush", "dev", ifname])
    }

    /// From /boot/config-<release> (Debian and Ubuntu ship it): loading vfio just to
    /// find out costs seconds in a TCG guest.
    fn has_vfio_noiommu(&self) -> Option<bool> {
        let release = fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
        let config = fs::read_to_string(format!("/boot/config-{}", release.trim())).ok()?;
        kernel_config_has(&config, "CONFIG_VFIO_NOIOMMU")
    }
}

/// Whether a kernel config enables `option` (`=y` or `=m`); `None` when the config
/// does not mention it at all.
fn kernel_config_has(config: &str, option: &str) -> Option<bool> {
    config.lines().find_map(|line| {
        let line = line.trim();
        if let Some(value) = line.strip_prefix(option).and_then(|v| v.strip_prefix('=')) {
            return Some(value == "y" || value == "m");
        }
        (line == format!("# {option} is not set")).then_some(false)
    })
}

/// The kernel driver DPDK uses for the NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DpdkDriver {
    /// vfio-pci behind an IOMMU.
    VfioPci,
    /// vfio-pci with `enable_unsafe_noiommu_mode`.
    VfioNoIommu,
    /// uio_pci_generic: no IOMMU, so DPDK must use physical addresses.
    UioPciGeneric,
}

impl DpdkDriver {
    /// The PCI driver's name in sysfs.
    pub fn sysfs_name(self) -> &'static str {
        match self {
            DpdkDriver::VfioPci | DpdkDriver::VfioNoIommu => "vfio-pci",
            DpdkDriver::UioPciGeneric => "uio_pci_generic",
        }
    }

    /// The kernel module that provides it.
    pub fn module(self) -> &'static str {
        match self {
            DpdkDriver::VfioPci | DpdkDriver::VfioNoIommu => "vfio-pci",
            DpdkDriver::UioPciGeneric => "uio_pci_generic",
        }
    }

    /// Whether DPDK must run with `--iova-mode=pa`.
    pub fn needs_iova_pa(self) -> bool {
        !matches!(self, DpdkDriver::VfioPci)
    }
}

/// A NIC as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// The kernel interface name, when the kernel driver owns the NIC.
    pub ifname: Option<String>,
    /// The MAC it was looked up by.
    pub mac: [u8; 6],
    /// PCI address, e.g. `0000:00:04.0`.
    pub pci_address: String,
    /// The driver bound now.
    pub driver: Option<String>,
}

/// What [`bind`] did, and what [`restore`] needs to undo it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The data NIC's MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// PCI address, e.g. `0000:00:04.0` (the `-a` argument for EAL).
    pub pci_address: String,
    /// The kernel interface name before binding, if it had one.
    pub ifname: Option<String>,
    /// The driver the NIC had before the agent first bound it (e.g. `virtio-pci`).
    pub original_driver: Option<String>,
    /// The driver the NIC is bound to for DPDK.
    pub driver: DpdkDriver,
}

/// Why the NIC could not be bound or given back.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// No interface in `class/net` has this MAC, and no record says where it went.
    #[error("no network interface with MAC {mac} in {root}/class/net")]
    NicNotFound {
        /// The MAC looked for.
        mac: String,
        /// The sysfs root.
        root: PathBuf,
    },
    /// The interface is not a PCI device (so DPDK cannot take it by `-a`).
    #[error("interface {ifname} (MAC {mac}) is not on a PCI device")]
    NotPci {
        /// The interface.
        ifname: String,
        /// Its MAC.
        mac: String,
    },
    /// vfio-pci was asked for and neither an IOMMU nor no-IOMMU mode is available.
    #[error("vfio-pci needs an IOMMU or a kernel with VFIO no-IOMMU mode; this one has neither (use bind_driver = \"uio-pci-generic\")")]
    NoIommu,
    /// The driver's module could not be loaded, or loaded without the driver showing.
    #[error("kernel module {module} is not available")]
    ModuleMissing {
        /// The module.
        module: String,
        /// What modprobe said, if it failed.
        #[source]
        source: Option<KernelOpError>,
    },
    /// The kernel interface could not be set down.
    #[error("cannot set interface {ifname} down")]
    LinkDown {
        /// The interface.
        ifname: String,
        /// The cause.
        #[source]
        source: KernelOpError,
    },
    /// A sysfs file could not be read or written.
    #[error("cannot {action} {path}")]
    Sysfs {
        /// "write" / "read".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The writes went through but the device did not end up with the driver.
    #[error("{pci_address} did not bind to {driver} within {timeout:?} (driver now: {now})")]
    DidNotBind {
        /// The device.
        pci_address: String,
        /// The driver wanted.
        driver: String,
        /// How long we waited.
        timeout: Duration,
        /// The driver it has, or "none".
        now: String,
    },
    /// The NIC has no kernel driver to go back to.
    #[error("{pci_address} had no kernel driver before the agent bound it")]
    NoKernelDriver {
        /// The device.
        pci_address: String,
    },
    /// The kernel driver took the NIC back but no interface with its MAC showed up.
    #[error(
        "no interface with MAC {mac} appeared within {timeout:?} after {driver} took {pci_address}"
    )]
    NoInterface {
        /// The MAC.
        mac: String,
        /// The device.
        pci_address: String,
        /// The kernel driver.
        driver: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The data address could not be configured or removed.
    #[error("cannot configure {cidr} on {ifname}")]
    Address {
        /// The interface.
        ifname: String,
        /// The address.
        cidr: String,
        /// The cause.
        #[source]
        source: KernelOpError,
    },
    /// The state file could not be written.
    #[error("cannot record the binding in {path}")]
    State {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Writes `value` to an existing sysfs file (never creates one: a missing file is
/// an error, as it is in a real sysfs).
fn sysfs_write(path: &Path, value: &str) -> Result<(), BindError> {
    let result = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut file| file.write_all(value.as_bytes()));
    result.map_err(|source| BindError::Sysfs {
        action: "write",
        path: path.to_owned(),
        source,
    })
}

fn is_pci_address(name: &str) -> bool {
    // dddd:bb:dd.f
    let bytes = name.as_bytes();
    bytes.len() == 12
        && bytes[4] == b':'
        && bytes[7] == b':'
        && bytes[10] == b'.'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| matches!(i, 4 | 7 | 10) || b.is_ascii_hexdigit())
}

/// Finds the interface with `mac` in `class/net` and the PCI device under it.
pub fn find_nic_by_mac(root: &SysfsRoot, mac: [u8; 6]) -> Result<Nic, BindError> {
    let class_net = root.join("class/net");
    let entries = fs::read_dir(&class_net).map_err(|source| BindError::Sysfs {
        action: "read",
        path: class_net.clone(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for ifname in names {
        let dir = class_net.join(&ifname);
        let Ok(address) = fs::read_to_string(dir.join("address")) else {
            continue;
        };
        if parse_mac(address.trim()) != Some(mac) {
            continue;
        }
        // virtio-net: class/net/X/device -> .../0000:00:04.0/virtio1; e1000 and
        // friends: straight to the PCI device. Walk up to the PCI address.
        let pci_address = fs::canonicalize(dir.join("device"))
            .ok()
            .and_then(|device| {
                device.ancestors().find_map(|p| {
                    let name = p.file_name()?.to_string_lossy();
                    is_pci_address(&name).then(|| name.into_owned())
                })
            })
            .ok_or_else(|| BindError::NotPci {
                ifname: ifname.clone(),
                mac: format_mac(&mac),
            })?;
        let driver = root.current_driver(&pci_address);
        return Ok(Nic {
            ifname: Some(ifname),
            mac,
            pci_address,
            driver,
        });
    }
    Err(BindError::NicNotFound {
        mac: format_mac(&mac),
        root: root.path().to_owned(),
    })
}

/// Picks the DPDK driver for `preference` on this system.
pub fn choose_driver(
    root: &SysfsRoot,
    kernel: &dyn KernelOps,
    preference: BindDriver,
) -> Result<DpdkDriver, BindError> {
    if matches!(preference, BindDriver::UioPciGeneric) {
        return Ok(DpdkDriver::UioPciGeneric);
    }
    if root.has_iommu_groups() {
        return Ok(DpdkDriver::VfioPci);
    }
    // The no-IOMMU switch shows once vfio is loaded, and only where the kernel has it.
    if !root.noiommu_parameter().exists() && kernel.has_vfio_noiommu() != Some(false) {
        if let Err(error) = kernel.load_module("vfio") {
            tracing::debug!(%error, "vfio did not load");
        }
    }
    if root.noiommu_parameter().exists() {
        return Ok(DpdkDriver::VfioNoIommu);
    }
    match preference {
        BindDriver::VfioPci => Err(BindError::NoIommu),
        _ => Ok(DpdkDriver::UioPciGeneric),
    }
}

fn wait_for_driver(
    root: &SysfsRoot,
    pci_address: &str,
    wanted: Option<&str>,
) -> Result<(), BindError> {
    let start = Instant::now();
    loop {
        let now = root.current_driver(pci_address);
        if now.as_deref() == wanted {
            return Ok(());
        }
        if start.elapsed() > SETTLE_TIMEOUT {
            return Err(BindError::DidNotBind {
                pci_address: pci_address.to_owned(),
                driver: wanted.unwrap_or("none").to_owned(),
                timeout: SETTLE_TIMEOUT,
                now: now.unwrap_or_else(|| "none".into()),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Moves the device to `driver` (or to no driver with `None`): override, unbind,
/// probe, wait until sysfs shows it.
fn rebind(root: &SysfsRoot, pci_address: &str, driver: Option<&str>) -> Result<(), BindError> {
    let device = root.pci_device(pci_address);
    if let Some(driver) = driver {
        sysfs_write(&device.join("driver_override"), driver)?;
    }
    if let Some(current) = root.current_driver(pci_address) {
        if Some(current.as_str()) == driver {
            return Ok(());
        }
        sysfs_write(&root.pci_driver(&current).join("unbind"), pci_address)?;
        wait_for_driver(root, pci_address, None)?;
    }
    if driver.is_some() {
        sysfs_write(&root.join("bus/pci/drivers_probe"), pci_address)?;
    }
    wait_for_driver(root, pci_address, driver)
}

/// The data NIC's PCI address without touching it: found by `mac` while the kernel
/// owns it, or from the binding `state_path` records once it is bound for DPDK (its
/// interface, and with it the MAC in sysfs, is gone then). None when neither knows.
pub fn locate_data_nic(root: &SysfsRoot, mac: [u8; 6], state_path: &Path) -> Option<String> {
    if let Ok(nic) = find_nic_by_mac(root, mac) {
        return Some(nic.pci_address);
    }
    read_state(state_path)
        .filter(|binding| agent_proto::config::parse_mac(&binding.mac) == Some(mac))
        .map(|binding| binding.pci_address)
}

fn read_state(path: &Path) -> Option<Binding> {
    let text = fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_state(path: &Path, binding: &Binding) -> Result<(), BindError> {
    let to_error = |source| BindError::State {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(to_error)?;
    }
    let text = serde_json::to_string_pretty(binding).expect("a Binding always serializes");
    fs::write(path, text).map_err(to_error)
}

/// What [`bind`] needs.
pub struct BindRequest<'a> {
    /// The sysfs tree.
    pub root: &'a SysfsRoot,
    /// modprobe and link down.
    pub kernel: &'a dyn KernelOps,
    /// The data NIC's MAC.
    pub mac: [u8; 6],
    /// The configured driver preference.
    pub preference: BindDriver,
    /// Where to record the binding (`None`: nowhere).
    pub state_path: Option<&'a Path>,
}

/// Binds the NIC with `mac` for DPDK and records the original driver.
///
/// A NIC the agent bound before (it has no kernel interface any more, so no MAC in
/// `class/net`) is found again through the state file; a NIC already on the wanted
/// driver is left as it is.
pub fn bind(request: &BindRequest<'_>) -> Result<Binding, BindError> {
    let BindRequest {
        root,
        kernel,
        mac,
        preference,
        state_path,
    } = *request;
    let mac_text = format_mac(&mac);
    let recorded = state_path
        .and_then(read_state)
        .filter(|state| state.mac == mac_text && root.pci_device(&state.pci_address).exists());
    let nic = match find_nic_by_mac(root, mac) {
        Ok(nic) => nic,
        Err(BindError::NicNotFound { .. }) if recorded.is_some() => {
            let state = recorded.clone().expect("checked above");
            tracing::info!(pci = %state.pci_address, "data NIC found through {}", state_path.map(Path::display).map(|d| d.to_string()).unwrap_or_default());
            Nic {
                ifname: None,
                mac,
                driver: root.current_driver(&state.pci_address),
                pci_address: state.pci_address,
            }
        }
        Err(error) => return Err(error),
    };
    let driver = choose_driver(root, kernel, preference)?;
    // The driver to give the NIC back to: the one it had when the agent first took it.
    let original_driver = match &recorded {
        Some(state) if state.pci_address == nic.pci_address => state.original_driver.clone(),
        _ => nic.driver.clone(),
    }
    .filter(|name| name != "vfio-pci" && name != "uio_pci_generic");
    let binding = Binding {
        mac: mac_text,
        pci_address: nic.pci_address.clone(),
        ifname: nic.ifname.clone(),
        original_driver,
        driver,
    };
    if nic.driver.as_deref() != Some(driver.sysfs_name()) {
        if let Some(ifname) = &nic.ifname {
            kernel
                .set_link_down(ifname)
                .map_err(|source| BindError::LinkDown {
                    ifname: ifname.clone(),
                    source,
                })?;
        }
        let module_error = kernel.load_module(driver.module()).err();
        if !root.pci_driver(driver.sysfs_name()).exists() {
            return Err(BindError::ModuleMissing {
                module: driver.module().to_owned(),
                source: module_error,
            });
        }
        if driver == DpdkDriver::VfioNoIommu {
            sysfs_write(&root.noiommu_parameter(), "Y")?;
        }
        // Record first: if anything below fails half-way, a later start or restore
        // still knows the original driver.
        if let Some(path) = state_path {
            write_state(path, &binding)?;
        }
        rebind(root, &nic.pci_address, Some(driver.sysfs_name()))?;
        tracing::info!(
            pci = %nic.pci_address,
            from = nic.driver.as_deref().unwrap_or("none"),
            to = driver.sysfs_name(),
            "data NIC bound for DPDK"
        );
    } else if let Some(path) = state_path {
        write_state(path, &binding)?;
    }
    Ok(binding)
}

/// Gives the NIC back to its original driver (or leaves it unbound when it had
/// none), clears the override and removes the state file.
pub fn restore(
    root: &SysfsRoot,
    binding: &Binding,
    state_path: Option<&Path>,
) -> Result<(), BindError> {
    let original = binding.original_driver.as_deref();
    rebind(root, &binding.pci_address, original)?;
    // An empty override lets the kernel match drivers by ID again.
    sysfs_write(
        &root
            .pci_device(&binding.pci_address)
            .join("driver_override"),
        "\n",
    )?;
    if let Some(path) = state_path {
        if let Err(error) = fs::remove_file(path) {
            if error.kind() != std::io::ErrorKind::NotFound {
                return Err(BindError::State {
                    path: path.to_owned(),
                    source: error,
                });
            }
        }
    }
    tracing::info!(
        pci = %binding.pci_address,
        to = original.unwrap_or("none"),
        "data NIC given back"
    );
    Ok(())
}

/// Gives the NIC back to its kernel driver for a kernel-stack baseline: [`restore`],
/// then waits for its interface to show up and puts the data address on it with the
/// link up. Returns the interface name. [`take_from_kernel`] undoes it.
pub fn give_to_kernel(
    root: &SysfsRoot,
    kernel: &dyn KernelOps,
    binding: &Binding,
    state_path: Option<&Path>,
    cidr: &str,
) -> Result<String, BindError> {
    let Some(driver) = binding.original_driver.clone() else {
        return Err(BindError::NoKernelDriver {
            pci_address: binding.pci_address.clone(),
        });
    };
    restore(root, binding, state_path)?;
    let mac = parse_mac(&binding.mac).unwrap_or_default();
    let start = Instant::now();
    // The interface shows up, and may be renamed under us (udev) between finding it
    // and configuring it: find it again and retry until the deadline.
    loop {
        let ifname = match find_nic_by_mac(root, mac) {
            Ok(nic) => nic.ifname.unwrap_or_default(),
            Err(BindError::NicNotFound { .. }) if start.elapsed() < SETTLE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(BindError::NicNotFound { .. }) => {
                return Err(BindError::NoInterface {
                    mac: binding.mac.clone(),
                    pci_address: binding.pci_address.clone(),
                    driver,
                    timeout: SETTLE_TIMEOUT,
                })
            }
            Err(error) => return Err(error),
        };
        match kernel.set_address(&ifname, cidr) {
            Ok(()) => {
                tracing::info!(pci = %binding.pci_address, %ifname, %cidr, "data NIC given to the kernel");
                return Ok(ifname);
            }
            Err(error) if start.elapsed() < SETTLE_TIMEOUT => {
                tracing::info!(%ifname, %error, "interface not ready yet, retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(source) => {
                return Err(BindError::Address {
                    ifname,
                    cidr: cidr.to_owned(),
                    source,
                })
            }
        }
    }
}

/// Takes the NIC back from the kernel after [`give_to_kernel`]: removes the data
/// address, then [`bind`]s it for DPDK again.
pub fn take_from_kernel(request: &BindRequest<'_>) -> Result<Binding, BindError> {
    if let Ok(Nic {
        ifname: Some(ifname),
        ..
    }) = find_nic_by_mac(request.root, request.mac)
    {
        request
            .kernel
            .flush_addresses(&ifname)
            .map_err(|source| BindError::Address {
                ifname: ifname.clone(),
                cidr: "(all)".to_owned(),
                source,
            })?;
    }
    bind(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses() {
        assert!(is_pci_address("0000:00:04.0"));
        assert!(is_pci_address("0000:af:1f.7"));
        assert!(!is_pci_address("virtio1"));
        assert!(!is_pci_address("pci0000:00"));
        assert!(!is_pci_address("0000:00:04"));
    }

    #[test]
    fn kernel_config_lookup() {
        let config = "CONFIG_VFIO=m\n# CONFIG_VFIO_NOIOMMU is not set\nCONFIG_UIO_PCI_GENERIC=m\n";
        assert_eq!(
            kernel_config_has(config, "CONFIG_VFIO_NOIOMMU"),
            Some(false)
        );
        assert_eq!(
            kernel_config_has(config, "CONFIG_UIO_PCI_GENERIC"),
            Some(true)
        );
        assert_eq!(kernel_config_has(config, "CONFIG_VFIO"), Some(true));
        assert_eq!(kernel_config_has(config, "CONFIG_VFIO_PCI"), None);
        assert_eq!(
            kernel_config_has("CONFIG_VFIO_NOIOMMU=y\n", "CONFIG_VFIO_NOIOMMU"),
            Some(true)
        );
    }

    #[test]
    fn iova_mode_follows_the_driver() {
        assert!(!DpdkDriver::VfioPci.needs_iova_pa());
        assert!(DpdkDriver::VfioNoIommu.needs_iova_pa());
        assert!(DpdkDriver::UioPciGeneric.needs_iova_pa());
    }
}
