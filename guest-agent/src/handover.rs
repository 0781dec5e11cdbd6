//! Handing the data port over for a same-run baseline, and taking it back.
//!
//! To another DPDK process (dpdk-testpmd): the port is stopped and closed, its pool
//! freed, and the device detached from EAL (`rte_eal_hotplug_remove`), so the NIC
//! stays on uio_pci_generic / vfio-pci but nothing in the agent maps it. EAL stays
//! up (DPDK cannot initialise it twice), and with it the hugepages `-m` preallocated:
//! the other process gets the pages that are still free.
//!
//! To the kernel: the same, then the NIC goes back to its original driver with the
//! data address on it and the link up ([`bind::give_to_kernel`]).
//!
//! Taking it back reverses the steps: rebind for DPDK where needed, re-attach the
//! device (`rte_eal_hotplug_add`) and open the port again with the same spec.

use std::path::PathBuf;
use std::sync::Arc;

use agent_proto::config::{format_mac, BindDriver};

use crate::bind::{self, BindError, BindRequest, Binding, KernelOps, SysfsRoot};
use crate::datapath::{DataPort, DataPortSpec, DatapathError};
use crate::devlock::{DeviceLocks, LockError};
use crate::eal::{Eal, RteError};

/// Who gets the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseTarget {
    /// The NIC's kernel driver, with the data address.
    Kernel,
    /// Another DPDK process; the NIC stays on its DPDK driver.
    DpdkProcess,
}

impl std::fmt::Display for ReleaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReleaseTarget::Kernel => "the kernel",
            ReleaseTarget::DpdkProcess => "another DPDK process",
        })
    }
}

/// Why the port could not be handed over or taken back.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// Moving the NIC between drivers failed.
    #[error("moving the NIC between drivers")]
    Bind(#[from] BindError),
    /// EAL would not detach the device.
    #[error("detaching {device} from EAL")]
    Detach {
        /// The device.
        device: String,
        /// What DPDK said.
        #[source]
        cause: RteError,
    },
    /// EAL would not attach the device again.
    #[error("attaching {device} to EAL")]
    Attach {
        /// The device.
        device: String,
        /// What DPDK said.
        #[source]
        cause: RteError,
    },
    /// The port could not be opened again.
    #[error("opening the data port again")]
    Open(#[from] DatapathError),
    /// Another process took the device while it was handed over.
    #[error("taking the device lock back")]
    Lock(#[from] LockError),
}

/// How the agent reached its data port.
pub enum Device {
    /// A PCI NIC the agent bound through sysfs.
    Nic {
        /// The sysfs tree.
        root: SysfsRoot,
        /// modprobe, link and address changes.
        kernel: Arc<dyn KernelOps>,
        /// The current binding.
        binding: Binding,
        /// Where the binding is recorded.
        state_file: Option<PathBuf>,
        /// The configured driver preference (for rebinding).
        preference: BindDriver,
    },
    /// A DPDK virtual device (`net_ring0`, `net_memif0,role=...`): nothing to bind;
    /// "released to the kernel" means the port is closed and kernel sockets use the
    /// data address as the host already has it (tests on loopback addresses).
    Vdev {
        /// Name and arguments as given to `--vdev`.
        spec: String,
    },
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Nic { binding, .. } => f.debug_struct("Nic").field("binding", binding).finish(),
            Device::Vdev { spec } => f.debug_struct("Vdev").field("spec", spec).finish(),
        }
    }
}

impl Device {
    fn bus_and_name(&self) -> (&'static str, String) {
        match self {
            Device::Nic { binding, .. } => ("pci", binding.pci_address.clone()),
            Device::Vdev { spec } => (
                "vdev",
                spec.split(',').next().unwrap_or_default().to_owned(),
            ),
        }
    }
}

/// What a release handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// To whom.
    pub to: ReleaseTarget,
    /// Kernel: the interface with the data address (empty for a vdev).
    pub ifname: String,
    /// The data address with prefix.
    pub cidr: String,
    /// PCI address or vdev name.
    pub device: String,
    /// The port's MAC.
    pub mac: String,
    /// DPDK process: EAL arguments to reach the device.
    pub eal_args: Vec<String>,
}

/// Everything needed to give the port away and open it again.
#[derive(Debug)]
pub struct Handover {
    eal: Eal,
    spec: DataPortSpec,
    device: Device,
    locks: Option<HeldLocks>,
}

/// The device locks the agent holds while it drives the port (devlock.rs).
#[derive(Debug)]
struct HeldLocks {
    /// The EAL arguments naming the devices, to lock them again.
    eal_args: Vec<String>,
    run_dir: PathBuf,
    /// None while a DPDK process has the port.
    held: Option<DeviceLocks>,
}

impl Handover {
    /// A handover for the port `spec` opened on `device`.
    pub fn new(eal: Eal, spec: DataPortSpec, device: Device) -> Handover {
        Handover {
            eal,
            spec,
            device,
            locks: None,
        }
    }

    /// Keeps `locks` (taken on the devices `eal_args` name, in `run_dir`) while the
    /// agent drives the port: let go while a DPDK process has it, taken back with it.
    pub fn hold_locks(&mut self, locks: DeviceLocks, eal_args: Vec<String>, run_dir: PathBuf) {
        self.locks = Some(HeldLocks {
            eal_args,
            run_dir,
            held: Some(locks),
        });
    }

    /// The NIC binding now, if the port is a PCI NIC.
    pub fn binding(&self) -> Option<&Binding> {
        match &self.device {
            Device::Nic { binding, .. } => Some(binding),
            Device::Vdev { .. } => None,
        }
    }

    fn detach(&self) -> Result<(), HandoverError> {
        let (bus, name) = self.device.bus_and_name();
        // The port on the device was closed before (the DataPort was dropped).
        crate::eal::hotplug_remove(&self.eal, bus, &name).map_err(|cause| {
            HandoverError::Detach {
                device: name.clone(),
                cause,
            }
        })?;
        tracing::info!(%bus, device = %name, "device detached from EAL");
        Ok(())
    }

    fn attach(&self) -> Result<(), HandoverError> {
        let (bus, name) = self.device.bus_and_name();
        let args = match &self.device {
            Device::Vdev { spec } => spec.split_once(',').map(|(_, a)| a).unwrap_or_default(),
            Device::Nic { .. } => "",
        };
        crate::eal::hotplug_add(&self.eal, bus, &name, args).map_err(|cause| {
            HandoverError::Attach {
                device: name.clone(),
                cause,
            }
        })?;
        tracing::info!(%bus, device = %name, "device attached to EAL");
        Ok(())
    }

    /// Closes `port`, detaches its device and hands it to `to`.
    ///
    /// On error the port is closed and the caller should try [`Handover::acquire`].
    pub fn release(
        &mut self,
        port: DataPort,
        to: ReleaseTarget,
    ) -> Result<Released, HandoverError> {
        let details = port.details();
        drop(port);
        self.detach()?;
        let cidr = format!("{}/{}", self.spec.ip, self.spec.prefix_len);
        let mac = format_mac(&details.mac);
        let (bus, device) = self.device.bus_and_name();
        let mut released = Released {
            to,
            ifname: String::new(),
            cidr: cidr.clone(),
            device: device.clone(),
            mac,
            eal_args: Vec::new(),
        };
        match (to, &self.device) {
            (
                ReleaseTarget::Kernel,
                Device::Nic {
                    root,
                    kernel,
                    binding,
                    state_file,
                    ..
                },
            ) => {
                released.ifname = bind::give_to_kernel(
                    root,
                    kernel.as_ref(),
                    binding,
                    state_file.as_deref(),
                    &cidr,
                )?;
            }
            (ReleaseTarget::Kernel, Device::Vdev { .. }) => {}
            (ReleaseTarget::DpdkProcess, Device::Nic { binding, .. }) => {
                released.eal_args = vec!["-a".into(), device];
                if binding.driver.needs_iova_pa() {
                    released.eal_args.push("--iova-mode=pa".into());
                }
            }
            (ReleaseTarget::DpdkProcess, Device::Vdev { spec }) => {
                released.eal_args = vec!["--no-pci".into(), format!("--vdev={spec}")];
            }
        }
        if to == ReleaseTarget::DpdkProcess {
            if let Some(locks) = &mut self.locks {
                // The process it goes to (dpdk-testpmd) does not know our lock; any
                // of ours started meanwhile may use the device, as the caller asked.
                locks.held = None;
            }
        }
        tracing::info!(%to, %bus, device = %released.device, "data port released");
        Ok(released)
    }

    /// Takes the device back from `from` and opens the port again.
    pub fn acquire(&mut self, from: ReleaseTarget) -> Result<DataPort, HandoverError> {
        if let (
            ReleaseTarget::Kernel,
            Device::Nic {
                root,
                kernel,
                binding,
                state_file,
                preference,
            },
        ) = (from, &mut self.device)
        {
            let mac = agent_proto::config::parse_mac(&binding.mac).unwrap_or_default();
            *binding = bind::take_from_kernel(&BindRequest {
                root,
                kernel: kernel.as_ref(),
                mac,
                preference: *preference,
                state_path: state_file.as_deref(),
            })?;
        }
        if let Some(locks) = &mut self.locks {
            if locks.held.is_none() {
                locks.held = Some(DeviceLocks::for_eal_args(
                    &locks.eal_args,
                    &locks.run_dir,
                    "dpdk-agent serve",
                )?);
            }
        }
        self.attach()?;
        let port = DataPort::open(&self.eal, &self.spec)?;
        tracing::info!(%from, "data port taken back");
        Ok(port)
    }

    /// The agent is exiting while the kernel has the NIC: remove the data address so
    /// the interface is as the agent found it (the driver already is).
    pub fn forget_kernel_address(&self) {
        if let Device::Nic {
            root,
            kernel,
            binding,
            ..
        } = &self.device
        {
            let mac = agent_proto::config::parse_mac(&binding.mac).unwrap_or_default();
            if let Ok(bind::Nic {
                ifname: Some(ifname),
                ..
            }) = bind::find_nic_by_mac(root, mac)
            {
                if let Err(error) = kernel.flush_addresses(&ifname) {
                    tracing::warn!(%ifname, %error, "cannot remove the data address");
                }
            }
        }
    }
}
