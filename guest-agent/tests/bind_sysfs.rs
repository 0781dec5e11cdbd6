//! NIC binding against a fake sysfs tree: the same files a real kernel shows, and a
//! small "kernel" thread that acts on `unbind` / `drivers_probe` writes the way the
//! PCI core does.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use agent_proto::config::BindDriver;
use dpdk_agent::bind::{
    bind, find_nic_by_mac, give_to_kernel, locate_data_nic, restore, take_from_kernel, BindError,
    BindRequest, Binding, DpdkDriver, KernelOpError, KernelOps, SysfsRoot,
};

const BDF: &str = "0000:00:04.0";
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xaa, 0x00, 0x02];
const MAC_TEXT: &str = "52:54:00:aa:00:02";
const MGMT_BDF: &str = "0000:00:03.0";

/// A fake sysfs with a management NIC (eth0) and a data NIC (eth1), both virtio.
struct FakeSysfs {
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    kernel: Option<JoinHandle<()>>,
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

impl FakeSysfs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("class/net")).unwrap();
        fs::create_dir_all(root.join("bus/pci/devices")).unwrap();
        fs::create_dir_all(root.join("kernel/iommu_groups")).unwrap();
        write(&root.join("bus/pci/drivers_probe"), "");
        Self::add_driver(root, "virtio-pci");
        // A loopback interface with no device link must be skipped.
        write(
            &root.join("devices/virtual/net/lo/address"),
            "00:00:00:00:00:00\n",
        );
        symlink("../../devices/virtual/net/lo", root.join("class/net/lo")).unwrap();
        for (bdf, virtio, ifname, mac) in [
            (MGMT_BDF, "virtio0", "eth0", "52:54:00:aa:00:01"),
            (BDF, "virtio1", "eth1", MAC_TEXT),
        ] {
            let device = root.join("devices/pci0000:00").join(bdf);
            write(&device.join("driver_override"), "(null)\n");
            write(&device.join("vendor"), "0x1af4\n");
            symlink(
                format!("../../../devices/pci0000:00/{bdf}"),
                root.join("bus/pci/devices").join(bdf),
            )
            .unwrap();
            symlink("../../../bus/pci/drivers/virtio-pci", device.join("driver")).unwrap();
            Self::add_netdev(root, bdf, virtio, ifname, mac);
        }
        let mut fake = FakeSysfs {
            dir,
            stop: Arc::new(AtomicBool::new(false)),
            kernel: None,
        };
        fake.start_kernel();
        fake
    }

    fn add_driver(root: &Path, name: &str) {
        write(&root.join("bus/pci/drivers").join(name).join("bind"), "");
        write(&root.join("bus/pci/drivers").join(name).join("unbind"), "");
    }

    fn add_netdev(root: &Path, bdf: &str, virtio: &str, ifname: &str, mac: &str) {
        let virtio_dir = root.join("devices/pci0000:00").join(bdf).join(virtio);
        let net = virtio_dir.join("net").join(ifname);
        write(&net.join("address"), &format!("{mac}\n"));
        symlink(format!("../../../{virtio}"), net.join("device")).unwrap();
        symlink(
            format!("../../devices/pci0000:00/{bdf}/{virtio}/net/{ifname}"),
            root.join("class/net").join(ifname),
        )
        .unwrap();
    }

    fn root(&self) -> SysfsRoot {
        SysfsRoot::new(self.dir.path())
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn driver_of(&self, bdf: &str) -> Option<String> {
        self.root().current_driver(bdf)
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    /// Acts like the PCI core: `unbind` detaches (and a virtio NIC's interface
    /// disappears), `drivers_probe` attaches the override driver, or virtio-pci when
    /// there is no override (the ID match), bringing the interface back.
    fn start_kernel(&mut self) {
        let root = self.dir.path().to_owned();
        let stop = self.stop.clone();
        self.kernel = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                kernel_pass(&root);
                std::thread::sleep(Duration::from_millis(2));
            }
        }));
    }
}

fn take(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim().to_owned();
    if text.is_empty() {
        return None;
    }
    fs::write(path, "").unwrap();
    Some(text)
}

fn kernel_pass(root: &Path) {
    for entry in fs::read_dir(root.join("bus/pci/drivers")).unwrap() {
        let driver_dir = entry.unwrap().path();
        if let Some(bdf) = take(&driver_dir.join("unbind")) {
            let device = root.join("devices/pci0000:00").join(&bdf);
            fs::remove_file(device.join("driver")).unwrap();
            // The netdev goes with the driver.
            for entry in fs::read_dir(root.join("class/net")).unwrap() {
                let link = entry.unwrap().path();
                let target = fs::read_link(&link).unwrap();
                if target.to_string_lossy().contains(&bdf) {
                    fs::remove_file(&link).unwrap();
                }
            }
            let virtio = device.join("virtio1");
            if virtio.exists() {
                fs::remove_dir_all(virtio).unwrap();
            }
        }
    }
    let probe = root.join("bus/pci/drivers_probe");
    let pending = fs::read_to_string(&probe).unwrap().trim().to_owned();
    if pending.is_empty() {
        return;
    }
    let device = root.join("devices/pci0000:00").join(&pending);
    if device.join("driver").exists() {
        return; // still bound: leave the probe for the next pass
    }
    fs::write(&probe, "").unwrap();
    let override_ = fs::read_to_string(device.join("driver_override")).unwrap();
    let override_ = override_.trim();
    let driver = if override_.is_empty() || override_ == "(null)" {
        "virtio-pci"
    } else {
        override_
    };
    if !root.join("bus/pci/drivers").join(driver).exists() {
        return;
    }
    symlink(
        format!("../../../bus/pci/drivers/{driver}"),
        device.join("driver"),
    )
    .unwrap();
    if driver == "virtio-pci" {
        FakeSysfs::add_netdev(root, &pending, "virtio1", "eth1", MAC_TEXT);
    }
}

impl Drop for FakeSysfs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(kernel) = self.kernel.take() {
            let _ = kernel.join();
        }
    }
}

/// modprobe creates the driver directory for the modules it "has"; `ip link set
/// down` is recorded.
struct FakeKernel {
    root: PathBuf,
    available: Vec<&'static str>,
    calls: Mutex<Vec<String>>,
    /// What /boot/config says about VFIO no-IOMMU (None: no config to read).
    noiommu_config: Option<bool>,
}

impl FakeKernel {
    fn new(fake: &FakeSysfs, available: &[&'static str]) -> Self {
        Self {
            root: fake.dir.path().to_owned(),
            available: available.to_vec(),
            calls: Mutex::new(Vec::new()),
            noiommu_config: None,
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl KernelOps for FakeKernel {
    fn load_module(&self, module: &str) -> Result<(), KernelOpError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("modprobe {module}"));
        if !self.available.contains(&module) {
            // What a real modprobe failure looks like to the caller.
            let status = std::process::Command::new("false").status().unwrap();
            return Err(KernelOpError::Failed {
                command: format!("modprobe {module}"),
                status,
                stderr: format!("modprobe: FATAL: Module {module} not found"),
            });
        }
        if module == "vfio" {
            return Ok(());
        }
        FakeSysfs::add_driver(&self.root, module);
        Ok(())
    }

    fn set_link_down(&self, ifname: &str) -> Result<(), KernelOpError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("link down {ifname}"));
        Ok(())
    }

    fn has_vfio_noiommu(&self) -> Option<bool> {
        self.noiommu_config
    }

    fn set_address(&self, ifname: &str, cidr: &str) -> Result<(), KernelOpError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("address {cidr} on {ifname}, up"));
        Ok(())
    }

    fn flush_addresses(&self, ifname: &str) -> Result<(), KernelOpError> {
        self.calls.lock().unwrap().push(format!("flush {ifname}"));
        Ok(())
    }
}

/// One test's world: the fake sysfs, a kernel that has `modules`, and where a binding
/// is recorded when a test asks for the record.
struct Lab {
    fake: FakeSysfs,
    kernel: FakeKernel,
    root: SysfsRoot,
    state: PathBuf,
}

impl Lab {
    fn new(modules: &[&'static str]) -> Self {
        let fake = FakeSysfs::new();
        let kernel = FakeKernel::new(&fake, modules);
        let root = fake.root();
        let state = fake.path("run/binding.json");
        Lab {
            fake,
            kernel,
            root,
            state,
        }
    }

    /// The data NIC's request; `record`: with the state file.
    fn request(&self, preference: BindDriver, record: bool) -> BindRequest<'_> {
        BindRequest {
            root: &self.root,
            kernel: &self.kernel,
            mac: MAC,
            preference,
            state_path: record.then_some(self.state.as_path()),
        }
    }

    fn bind(&self, preference: BindDriver, record: bool) -> Result<Binding, BindError> {
        bind(&self.request(preference, record))
    }
}

#[test]
fn finds_the_data_nic_by_mac_through_the_virtio_device() {
    let fake = FakeSysfs::new();
    let nic = find_nic_by_mac(&fake.root(), MAC).unwrap();
    assert_eq!(nic.ifname.as_deref(), Some("eth1"));
    assert_eq!(nic.pci_address, BDF);
    assert_eq!(nic.driver.as_deref(), Some("virtio-pci"));
}

/// The standalone selftest finds the data NIC by MAC while the kernel has it, and
/// through the binding's state file once its interface is gone.
#[test]
fn the_data_nic_is_located_before_and_after_binding() {
    let lab = Lab::new(&["uio_pci_generic"]);
    let (root, state) = (&lab.root, lab.state.as_path());
    assert_eq!(locate_data_nic(root, MAC, state).as_deref(), Some(BDF));
    lab.bind(BindDriver::Auto, true).unwrap();
    assert!(find_nic_by_mac(root, MAC).is_err(), "the interface is gone");
    assert_eq!(locate_data_nic(root, MAC, state).as_deref(), Some(BDF));
    let other = [0x52, 0x54, 0, 0, 0, 0x99];
    assert_eq!(locate_data_nic(root, other, state), None);
}

#[test]
fn nic_not_found_names_the_mac() {
    let lab = Lab::new(&["uio_pci_generic"]);
    let error = bind(&BindRequest {
        mac: [0x52, 0x54, 0, 0, 0, 0x99],
        ..lab.request(BindDriver::Auto, false)
    })
    .unwrap_err();
    assert!(matches!(error, BindError::NicNotFound { .. }), "{error:?}");
    assert!(error.to_string().contains("52:54:00:00:00:99"), "{error}");
    assert!(
        lab.kernel.calls().is_empty(),
        "nothing touched: {:?}",
        lab.kernel.calls()
    );
}

#[test]
fn binds_to_uio_without_iommu_and_restores_virtio() {
    let lab = Lab::new(&["uio_pci_generic", "vfio-pci"]);
    let (fake, state) = (&lab.fake, lab.state.as_path());
    let binding = lab.bind(BindDriver::Auto, true).unwrap();
    assert_eq!(binding.driver, DpdkDriver::UioPciGeneric);
    assert_eq!(binding.pci_address, BDF);
    assert_eq!(binding.original_driver.as_deref(), Some("virtio-pci"));
    assert_eq!(lab.fake.driver_of(BDF).as_deref(), Some("uio_pci_generic"));
    assert_eq!(lab.fake.driver_of(MGMT_BDF).as_deref(), Some("virtio-pci"));
    assert_eq!(
        fake.read("devices/pci0000:00/0000:00:04.0/driver_override"),
        "uio_pci_generic"
    );
    assert!(
        !fake.path("class/net/eth1").exists(),
        "the kernel interface is gone"
    );
    // Link down before the module and the unbind; vfio tried for no-IOMMU mode.
    assert_eq!(
        lab.kernel.calls(),
        [
            "modprobe vfio",
            "link down eth1",
            "modprobe uio_pci_generic"
        ]
    );
    assert!(state.exists());

    restore(&lab.root, &binding, Some(state)).unwrap();
    assert_eq!(lab.fake.driver_of(BDF).as_deref(), Some("virtio-pci"));
    assert_eq!(
        fake.read("devices/pci0000:00/0000:00:04.0/driver_override"),
        "\n"
    );
    assert!(
        fake.path("class/net/eth1/address").exists(),
        "the interface is back"
    );
    assert!(!state.exists());
}

#[test]
fn binds_to_vfio_with_an_iommu() {
    let lab = Lab::new(&["uio_pci_generic", "vfio-pci"]);
    fs::create_dir_all(lab.fake.path("kernel/iommu_groups/7/devices")).unwrap();
    let binding = lab.bind(BindDriver::Auto, false).unwrap();
    assert_eq!(binding.driver, DpdkDriver::VfioPci);
    assert_eq!(lab.fake.driver_of(BDF).as_deref(), Some("vfio-pci"));
    assert_eq!(lab.kernel.calls(), ["link down eth1", "modprobe vfio-pci"]);
    restore(&lab.root, &binding, None).unwrap();
    assert_eq!(lab.fake.driver_of(BDF).as_deref(), Some("virtio-pci"));
}

#[test]
fn uses_vfio_no_iommu_where_the_kernel_has_it() {
    let lab = Lab::new(&["vfio-pci"]);
    let parameter = "module/vfio/parameters/enable_unsafe_noiommu_mode";
    write(&lab.fake.path(parameter), "N\n");
    let binding = lab.bind(BindDriver::Auto, false).unwrap();
    assert_eq!(binding.driver, DpdkDriver::VfioNoIommu);
    assert_eq!(lab.fake.read(parameter), "Y");
    assert_eq!(lab.fake.driver_of(BDF).as_deref(), Some("vfio-pci"));
}

#[test]
fn vfio_asked_for_without_iommu_is_refused_before_touching_the_nic() {
    let lab = Lab::new(&["vfio-pci", "uio_pci_generic"]);
    let error = lab.bind(BindDriver::VfioPci, false).unwrap_err();
    assert!(matches!(error, BindError::NoIommu), "{error:?}");
    assert_eq!(lab.fake.driver_of(BDF).as_deref(), Some("virtio-pci"));
}

#[test]
fn module_missing_leaves_the_nic_with_its_driver() {
    let lab = Lab::new(&[]);
    let error = lab.bind(BindDriver::UioPciGeneric, false).unwrap_err();
    assert!(
        matches!(error, BindError::ModuleMissing { .. }),
        "{error:?}"
    );
    let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
    assert!(chain.contains("uio_pci_generic"), "{chain}");
    assert!(chain.contains("not found"), "{chain}");
    assert_eq!(lab.fake.driver_of(BDF).as_deref(), Some("virtio-pci"));
    assert!(lab.fake.path("class/net/eth1").exists());
}

#[test]
fn a_restarted_agent_finds_its_nic_through_the_state_file() {
    let lab = Lab::new(&["uio_pci_generic"]);
    let request = lab.request(BindDriver::UioPciGeneric, true);
    let first = bind(&request).unwrap();
    // The interface (and its MAC) is gone now; a second start must still work and
    // remember virtio-pci, not uio_pci_generic, as the driver to give it back to.
    let second = bind(&request).unwrap();
    assert_eq!(
        second,
        Binding {
            ifname: None,
            ..first.clone()
        }
    );
    assert_eq!(second.original_driver.as_deref(), Some("virtio-pci"));
    restore(&lab.root, &second, Some(&lab.state)).unwrap();
    assert_eq!(lab.fake.driver_of(BDF).as_deref(), Some("virtio-pci"));
    // Without the record, a NIC with no interface cannot be found.
    let error = bind(&BindRequest {
        state_path: None,
        mac: [0x52, 0x54, 0, 0, 0, 0x77],
        ..request
    })
    .unwrap_err();
    assert!(matches!(error, BindError::NicNotFound { .. }));
}

#[test]
fn a_kernel_config_without_no_iommu_skips_loading_vfio() {
    let mut lab = Lab::new(&["uio_pci_generic", "vfio", "vfio-pci"]);
    lab.kernel.noiommu_config = Some(false);
    let binding = lab.bind(BindDriver::Auto, false).unwrap();
    assert_eq!(binding.driver, DpdkDriver::UioPciGeneric);
    assert_eq!(
        lab.kernel.calls(),
        ["link down eth1", "modprobe uio_pci_generic"]
    );
}

#[test]
fn release_to_the_kernel_and_take_back() {
    let lab = Lab::new(&["uio_pci_generic"]);
    let (root, kernel, state) = (&lab.root, &lab.kernel, lab.state.as_path());
    let request = lab.request(BindDriver::UioPciGeneric, true);
    let binding = bind(&request).unwrap();
    assert_eq!(lab.fake.driver_of(BDF).as_deref(), Some("uio_pci_generic"));

    let ifname = give_to_kernel(root, kernel, &binding, Some(state), "10.0.1.4/24").unwrap();
    assert_eq!(ifname, "eth1");
    assert_eq!(lab.fake.driver_of(BDF).as_deref(), Some("virtio-pci"));
    assert!(
        !state.exists(),
        "nothing to restore while the kernel has it"
    );
    assert_eq!(
        kernel.calls().last().map(String::as_str),
        Some("address 10.0.1.4/24 on eth1, up")
    );

    let again = take_from_kernel(&request).unwrap();
    assert_eq!(again, binding);
    assert_eq!(lab.fake.driver_of(BDF).as_deref(), Some("uio_pci_generic"));
    assert!(state.exists());
    let calls = kernel.calls();
    let flush = calls
        .iter()
        .position(|c| c == "flush eth1")
        .expect("flushed");
    let down = calls.iter().rposition(|c| c == "link down eth1").unwrap();
    assert!(
        flush < down,
        "address removed before the interface goes: {calls:?}"
    );
}

#[test]
fn a_nic_without_a_kernel_driver_cannot_go_to_the_kernel() {
    let lab = Lab::new(&["uio_pci_generic"]);
    let binding = Binding {
        mac: MAC_TEXT.into(),
        pci_address: BDF.into(),
        ifname: None,
        original_driver: None,
        driver: DpdkDriver::UioPciGeneric,
    };
    let error = give_to_kernel(&lab.root, &lab.kernel, &binding, None, "10.0.1.4/24").unwrap_err();
    assert!(matches!(error, BindError::NoKernelDriver { .. }), "{error}");
    assert_eq!(
        lab.fake.driver_of(BDF).as_deref(),
        Some("virtio-pci"),
        "untouched"
    );
}
