//! From configuration and what libvirt holds to the list of actions `up` takes. The
//! layout of each VM (names, MACs, addresses, ports) is decided here; ports of existing
//! domains come back from their metadata so `up` twice changes nothing.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::accel::{Accel, Decision};
use crate::config::{Config, NetworkMode, Subnet};
use crate::lab::{Found, Names};
use crate::provision::domain::{self, DataNic, DomainSpec, KernelBoot, MadeWith, MgmtNic, VmMeta};
use crate::provision::network::Reservation;

/// One VM's layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmPlan {
    /// 1-based index.
    pub index: u8,
    /// Short name / hostname / agent certificate DNS name.
    pub name: String,
    /// libvirt domain name.
    pub domain: String,
    /// Management NIC MAC.
    pub mgmt_mac: String,
    /// Data NIC MAC.
    pub data_mac: String,
    /// Management address inside the guest.
    pub mgmt_ip: Ipv4Addr,
    /// Management prefix length.
    pub mgmt_prefix: u8,
    /// Management gateway.
    pub mgmt_gateway: Ipv4Addr,
    /// Data address.
    pub data_ip: Ipv4Addr,
    /// Data prefix length.
    pub data_prefix: u8,
    /// Where the host reaches sshd.
    pub ssh: SocketAddr,
    /// Where the host reaches the agent.
    pub agent: SocketAddr,
    /// Where the agent listens inside the guest.
    pub agent_listen: SocketAddr,
    /// user mode: (local, remote) UDP ports of the data link.
    pub udp: Option<(u16, u16)>,
    /// The VM at the other end of the data link.
    pub peer: Option<u8>,
}

/// One step of `up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "action", content = "vm", rename_all = "snake_case")]
pub enum Action {
    /// Define, build and start the storage pool.
    CreatePool,
    /// Upload the base image (and kernel, initrd) into the pool.
    UploadImage,
    /// nat mode: define and start the two networks.
    CreateNetworks,
    /// nat mode: reserve VM n's management address in the existing network (a VM added
    /// after the network was made).
    ReserveAddress(u8),
    /// Overlay, seed and domain of VM n.
    CreateVm(u8),
    /// Start VM n.
    StartVm(u8),
}

/// What `up` will do.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Environment.
    pub env: String,
    /// KVM or TCG.
    pub accel: Accel,
    /// Why.
    pub accel_reason: String,
    /// vCPUs per VM.
    pub vcpus: u32,
    /// MiB per VM.
    pub memory_mb: u32,
    /// Overlay size in bytes.
    pub disk_bytes: u64,
    /// Hugepages per VM.
    pub hugepages: u32,
    /// Network mode.
    pub network: NetworkMode,
    /// Pool name.
    pub pool: String,
    /// Pool directory.
    pub pool_path: PathBuf,
    /// Image for display.
    pub image: String,
    /// NAT subnet (nat mode).
    #[serde(skip)]
    pub nat_subnet: Subnet,
    /// The VMs.
    pub vms: Vec<VmPlan>,
    /// Steps, in order.
    pub actions: Vec<Action>,
    /// Domains of the environment beyond vm_count (left alone; `down` removes them).
    pub surplus: Vec<String>,
    /// Configuration keys that changed since a VM was made: applying the plan replaces
    /// that VM.
    pub drift: Vec<Drift>,
    /// Running VMs that a new base image recreates.
    pub recreated_for_image: Vec<String>,
    /// The sha256 of the agent binary the seeds carry (recorded in each domain).
    pub agent_sha256: Option<String>,
}

/// A configuration key whose value differs from the one a VM was made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The VM.
    pub vm: String,
    /// The dpdkhost.toml key.
    pub key: &'static str,
    /// What the VM has.
    pub old: String,
    /// What the configuration says.
    pub new: String,
}

/// What each key of `wanted` that differs from `had` is, per VM.
fn drift(vm: &str, had: &MadeWith, wanted: &MadeWith) -> Vec<Drift> {
    let pairs: [(&'static str, String, String); 5] = [
        ("vcpus", had.vcpus.to_string(), wanted.vcpus.to_string()),
        (
            "memory_mb",
            had.memory_mb.to_string(),
            wanted.memory_mb.to_string(),
        ),
        (
            "disk_gb",
            had.disk_gb.to_string(),
            wanted.disk_gb.to_string(),
        ),
        (
            "hugepages",
            had.hugepages.to_string(),
            wanted.hugepages.to_string(),
        ),
        ("data_subnet", had.data_ip.clone(), wanted.data_ip.clone()),
    ];
    pairs
        .into_iter()
        .filter(|(_, old, new)| old != new)
        .map(|(key, old, new)| Drift {
            vm: vm.to_owned(),
            key,
            old,
            new,
        })
        .collect()
}

/// Free ports on 127.0.0.1.
pub trait PortSource {
    /// A free TCP port.
    fn tcp(&mut self) -> u16;
    /// A free UDP port.
    fn udp(&mut self) -> u16;
}

/// Asks the kernel for free ports (binds port 0), never handing out one twice.
#[derive(Default)]
pub struct KernelPorts {
    given: Vec<u16>,
}

impl KernelPorts {
    /// Binds port 0 with `bind` until the kernel picks a port not handed out yet.
    fn take(&mut self, bind: impl Fn() -> std::io::Result<std::net::SocketAddr>) -> u16 {
        loop {
            let port = bind().map(|a| a.port()).unwrap_or(0);
            if port != 0 && !self.given.contains(&port) {
                self.given.push(port);
                return port;
            }
        }
    }
}

impl PortSource for KernelPorts {
    fn tcp(&mut self) -> u16 {
        self.take(|| std::net::TcpListener::bind("127.0.0.1:0")?.local_addr())
    }
    fn udp(&mut self) -> u16 {
        self.take(|| std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr())
    }
}

/// A MAC derived from the environment name, VM index and NIC (0 mgmt, 1 data): stable
/// across runs, distinct across environments.
pub fn mac(env: &str, index: u8, nic: u8) -> String {
    let h = Sha256::digest(env.as_bytes());
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        h[0],
        h[1],
        index.wrapping_mul(2).wrapping_add(nic)
    )
}

/// Refuses to plan over what libvirt holds when it contradicts the configuration in a
/// way `up` cannot mend without taking VMs down: a nat-mode management network on
/// another subnet (every VM's address comes from it).
pub fn check_existing(config: &Config, env: &str, found: &Found) -> Result<(), String> {
    let Some(mgmt) = found.mgmt_network.as_ref() else {
        return Ok(());
    };
    if config.network != NetworkMode::Nat {
        return Ok(());
    }
    let subnet = &config.nat_subnet;
    let wanted = (Some(subnet.host(1)), Some(subnet.netmask()));
    if (mgmt.address, mgmt.netmask) == wanted {
        return Ok(());
    }
    let show = |a: Option<Ipv4Addr>| a.map_or_else(|| "?".to_owned(), |a| a.to_string());
    Err(format!(
        "network {} exists with address {} netmask {}, but nat_subnet is {} (address {}): \
         the VMs' addresses come from that network. Set nat_subnet back, or remove the lab \
         with `dpdkhost --env {env} down -y` and run up again",
        Names::new(env).mgmt_network(),
        show(mgmt.address),
        show(mgmt.netmask),
        subnet,
        subnet.host(1),
    ))
}

/// Builds the plan.
pub fn make(
    config: &Config,
    env: &str,
    decision: &Decision,
    image: &str,
    image_ready_in_pool: bool,
    found: &Found,
    ports: &mut dyn PortSource,
) -> Plan {
    let names = Names::new(env);
    let kvm = decision.accel == Accel::Kvm;
    let n = config.vm_count;
    let mut vms: Vec<VmPlan> = Vec::new();
    // user mode: UDP pairs (1,2), (3,4), ...; an odd last VM gets a link to nowhere.
    let mut udp: Vec<Option<(u16, u16)>> = vec![None; usize::from(n) + 1];
    if config.network == NetworkMode::User {
        let mut i = 1u8;
        while i <= n {
            let j = i + 1;
            let from_meta = |k: u8| {
                found
                    .domain(k)
                    .and_then(|d| Some((d.meta.udp_local?, d.meta.udp_remote?)))
            };
            let (a, b) = match (from_meta(i), if j <= n { from_meta(j) } else { None }) {
                (Some((l, r)), _) => (l, r),
                (None, Some((l, r))) => (r, l),
                (None, None) => (ports.udp(), ports.udp()),
            };
            udp[usize::from(i)] = Some((a, b));
            if j <= n {
                udp[usize::from(j)] = Some((b, a));
            }
            i += 2;
        }
    }
    for index in 1..=n {
        let peer = if index % 2 == 1 { index + 1 } else { index - 1 };
        let peer = (peer <= n).then_some(peer);
        let meta = found.domain(index).map(|d| &d.meta);
        let (mgmt_ip, mgmt_prefix, gateway, ssh, agent, listen) = match config.network {
            NetworkMode::User => {
                let ssh = meta
                    .and_then(|m| m.ssh)
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], ports.tcp())));
                let agent = meta
                    .and_then(|m| m.agent)
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], ports.tcp())));
                let listen =
                    SocketAddr::from((domain::USER_GUEST_IP, agent_proto::DEFAULT_AGENT_PORT));
                (
                    domain::USER_GUEST_IP,
                    24,
                    domain::USER_GATEWAY,
                    ssh,
                    agent,
                    listen,
                )
            }
            NetworkMode::Nat => {
                let ip = config.nat_ip(index);
                let s = &config.nat_subnet;
                (
                    ip,
                    s.prefix,
                    s.host(1),
                    SocketAddr::from((ip, 22)),
                    SocketAddr::from((ip, agent_proto::DEFAULT_AGENT_PORT)),
                    SocketAddr::from((ip, agent_proto::DEFAULT_AGENT_PORT)),
                )
            }
        };
        vms.push(VmPlan {
            index,
            name: format!("vm{index}"),
            domain: names.domain(index),
            mgmt_mac: mac(env, index, 0),
            data_mac: mac(env, index, 1),
            mgmt_ip,
            mgmt_prefix,
            mgmt_gateway: gateway,
            data_ip: config.data_ip(index),
            data_prefix: config.data_subnet.prefix,
            ssh,
            agent,
            agent_listen: listen,
            udp: udp[usize::from(index)],
            peer,
        });
    }

    let mut actions = Vec::new();
    if !matches!(found.pool, Some((true, _))) {
        actions.push(Action::CreatePool);
    }
    // Base volumes are trusted only while a domain of the environment uses them: an
    // interrupted upload leaves a volume but never a domain.
    let any_domain = found.domains.iter().any(|d| d.index <= n);
    let base_present = found.volumes.contains(&names.base());
    if !(any_domain && base_present && image_ready_in_pool) {
        actions.push(Action::UploadImage);
    }
    // A network that exists but is stopped (the host rebooted) must run before any VM
    // on it can start.
    let network_ready =
        |n: String| found.networks.contains(&n) && !found.inactive_networks.contains(&n);
    if config.network == NetworkMode::Nat
        && !(network_ready(names.mgmt_network()) && network_ready(names.data_network()))
    {
        actions.push(Action::CreateNetworks);
    }
    // Reservations are written when the network is made; VMs added later need theirs,
    // or DHCP hands them an address nobody expects.
    if let (NetworkMode::Nat, Some(mgmt)) = (config.network, &found.mgmt_network) {
        for vm in &vms {
            if !mgmt.hosts.contains(&vm.mgmt_reservation()) {
                actions.push(Action::ReserveAddress(vm.index));
            }
        }
    }
    let reupload = actions.contains(&Action::UploadImage);
    let (vcpus, memory_mb) = (config.vcpus_for(kvm), config.memory_for(kvm));
    let mut drifts = Vec::new();
    let mut recreated_for_image = Vec::new();
    for vm in &vms {
        let wanted = MadeWith {
            vcpus,
            memory_mb,
            disk_gb: config.disk_gb,
            hugepages: config.hugepages,
            data_ip: format!("{}/{}", vm.data_ip, vm.data_prefix),
            agent_sha256: None,
        };
        let changed = found
            .domain(vm.index)
            .and_then(|d| d.meta.made_with.as_ref())
            .map(|had| drift(&vm.name, had, &wanted))
            .unwrap_or_default();
        match found.domain(vm.index) {
            Some(d) if !reupload && changed.is_empty() => {
                if !d.active {
                    actions.push(Action::StartVm(vm.index));
                }
            }
            existing => {
                if reupload && existing.is_some_and(|d| d.active) {
                    recreated_for_image.push(vm.name.clone());
                }
                drifts.extend(changed);
                actions.push(Action::CreateVm(vm.index));
                actions.push(Action::StartVm(vm.index));
            }
        }
    }
    let surplus = found
        .domains
        .iter()
        .filter(|d| d.index > n)
        .map(|d| d.name.clone())
        .collect();
    Plan {
        env: env.to_owned(),
        accel: decision.accel,
        accel_reason: decision.reason.clone(),
        vcpus,
        memory_mb,
        disk_bytes: u64::from(config.disk_gb) << 30,
        hugepages: config.hugepages,
        network: config.network,
        pool: config.pool.clone(),
        pool_path: found
            .pool
            .as_ref()
            .map(|(_, p)| p.clone())
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| config.pool_path.clone()),
        image: image.to_owned(),
        nat_subnet: config.nat_subnet,
        vms,
        actions,
        surplus,
        drift: drifts,
        recreated_for_image,
        agent_sha256: None,
    }
}

/// Records the agent binary the seeds will carry, and replaces each VM whose seed
/// carried another one: a rebuilt agent reaches the guests only through a new seed.
pub fn replace_for_agent(plan: &mut Plan, found: &Found, agent_sha256: &str) {
    plan.agent_sha256 = Some(agent_sha256.to_owned());
    for vm in &plan.vms {
        let had = found
            .domain(vm.index)
            .and_then(|d| d.meta.made_with.as_ref())
            .and_then(|m| m.agent_sha256.as_deref());
        let Some(had) = had else { continue };
        if had == agent_sha256 || plan.actions.contains(&Action::CreateVm(vm.index)) {
            continue;
        }
        plan.drift.push(Drift {
            vm: vm.name.clone(),
            key: "agent",
            old: had.chars().take(12).collect(),
            new: agent_sha256.chars().take(12).collect(),
        });
        let at = plan
            .actions
            .iter()
            .position(|a| *a == Action::StartVm(vm.index))
            .unwrap_or(plan.actions.len());
        plan.actions.insert(at, Action::CreateVm(vm.index));
        if !plan.actions.contains(&Action::StartVm(vm.index)) {
            plan.actions.insert(at + 1, Action::StartVm(vm.index));
        }
    }
}

impl VmPlan {
    /// Its DHCP reservation in the nat-mode management network.
    pub fn mgmt_reservation(&self) -> Reservation {
        Reservation {
            mac: self.mgmt_mac.clone(),
            name: self.name.clone(),
            ip: self.mgmt_ip,
        }
    }
}

impl Plan {
    /// VM by index.
    pub fn vm(&self, index: u8) -> Option<&VmPlan> {
        self.vms.iter().find(|v| v.index == index)
    }

    /// Whether applying changes anything.
    pub fn is_noop(&self) -> bool {
        self.actions.is_empty()
    }

    /// The domain definition of `vm`, with volumes in pool directory `dir`.
    pub fn domain_spec(&self, vm: &VmPlan, dir: &Path, direct_boot: bool) -> DomainSpec {
        let names = Names::new(&self.env);
        let network = self.network.to_string();
        let (mgmt, data) = match self.network {
            NetworkMode::User => {
                let (local, remote) = vm.udp.unwrap_or((0, 0));
                (
                    MgmtNic::User {
                        mac: vm.mgmt_mac.clone(),
                        ssh_port: vm.ssh.port(),
                        agent_port: vm.agent.port(),
                        guest_agent_port: vm.agent_listen.port(),
                    },
                    DataNic::Udp {
                        mac: vm.data_mac.clone(),
                        local_port: local,
                        remote_port: remote,
                    },
                )
            }
            NetworkMode::Nat => (
                MgmtNic::Network {
                    mac: vm.mgmt_mac.clone(),
                    network: names.mgmt_network(),
                },
                DataNic::Network {
                    mac: vm.data_mac.clone(),
                    network: names.data_network(),
                },
            ),
        };
        DomainSpec {
            name: vm.domain.clone(),
            accel: self.accel,
            vcpus: self.vcpus,
            memory_mb: self.memory_mb,
            disk: dir.join(names.overlay(vm.index)),
            seed: dir.join(names.seed(vm.index)),
            boot: direct_boot.then(|| KernelBoot {
                kernel: dir.join(names.kernel()),
                initrd: dir.join(names.initrd()),
                cmdline: format!(
                    "{} hugepagesz=2M hugepages={}",
                    crate::image::DEBIAN_CMDLINE,
                    self.hugepages
                ),
            }),
            serial_log: dir.join(names.console_log(vm.index)),
            mgmt,
            data,
            meta: VmMeta {
                env: self.env.clone(),
                index: vm.index,
                network,
                ssh: Some(vm.ssh),
                agent: Some(vm.agent),
                udp_local: vm.udp.map(|u| u.0),
                udp_remote: vm.udp.map(|u| u.1),
                made_with: Some(MadeWith {
                    vcpus: self.vcpus,
                    memory_mb: self.memory_mb,
                    disk_gb: u32::try_from(self.disk_bytes >> 30).unwrap_or(u32::MAX),
                    hugepages: self.hugepages,
                    data_ip: format!("{}/{}", vm.data_ip, vm.data_prefix),
                    agent_sha256: self.agent_sha256.clone(),
                }),
            },
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "environment {}: {} VM(s), {} network, {} ({})",
            self.env,
            self.vms.len(),
            self.network,
            self.accel,
            self.accel_reason
        )?;
        writeln!(
            f,
            "  each VM: {} vCPU, {} MiB, {} GiB disk, {} x 2 MiB hugepages; image {}",
            self.vcpus,
            self.memory_mb,
            self.disk_bytes >> 30,
            self.hugepages,
            self.image
        )?;
        for vm in &self.vms {
            let link = match (vm.udp, vm.peer) {
                (Some((l, r)), Some(p)) => format!("udp 127.0.0.1:{l} <-> :{r} (vm{p})"),
                (Some((l, _)), None) => format!("udp 127.0.0.1:{l} (no peer)"),
                (None, Some(p)) => format!("isolated network (vm{p})"),
                (None, None) => "isolated network".into(),
            };
            writeln!(
                f,
                "  {}: data {}/{} {}, ssh {}, agent {}",
                vm.name, vm.data_ip, vm.data_prefix, link, vm.ssh, vm.agent
            )?;
        }
        if self.actions.is_empty() {
            writeln!(f, "no changes: everything exists and runs")?;
        } else {
            writeln!(f, "actions:")?;
            for a in &self.actions {
                let line = match a {
                    Action::CreatePool => {
                        format!("+ pool {} at {}", self.pool, self.pool_path.display())
                    }
                    Action::UploadImage => format!("+ base image volumes ({})", self.image),
                    Action::CreateNetworks => format!(
                        "+ networks dpdkhost-{0}-mgmt (NAT), dpdkhost-{0}-data (isolated)",
                        self.env
                    ),
                    Action::ReserveAddress(i) => format!(
                        "+ vm{i}: management address reserved in dpdkhost-{}-mgmt",
                        self.env
                    ),
                    Action::CreateVm(i) => format!("+ vm{i}: overlay, seed, domain"),
                    Action::StartVm(i) => format!("> start vm{i}"),
                };
                writeln!(f, "  {line}")?;
            }
        }
        for d in &self.drift {
            writeln!(
                f,
                "  ~ {}: {} {} -> {}: replaces {} (its disk is recreated)",
                d.vm, d.key, d.old, d.new, d.vm
            )?;
        }
        if !self.recreated_for_image.is_empty() {
            writeln!(
                f,
                "  ! the base image changed: recreates the running {} (their disks are recreated)",
                self.recreated_for_image.join(", ")
            )?;
        }
        for s in &self.surplus {
            writeln!(
                f,
                "  ! {s} is beyond vm_count and left alone (down removes it)"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::FoundDomain;

    struct Seq(u16);
    impl PortSource for Seq {
        fn tcp(&mut self) -> u16 {
            self.0 += 1;
            self.0
        }
        fn udp(&mut self) -> u16 {
            self.0 += 1;
            self.0
        }
    }

    /// The plan for lab "t" over what `found` holds, new ports counted from `ports`.
    fn plan_from(config: &Config, found: &Found, image_ready: bool, ports: u16) -> Plan {
        make(
            config,
            "t",
            &tcg(),
            "debian-12",
            image_ready,
            found,
            &mut Seq(ports),
        )
    }

    /// The plan for a lab that does not exist yet (ports from 40000).
    fn fresh(config: &Config) -> Plan {
        plan_from(config, &Found::default(), true, 40000)
    }

    /// The plan over what `found` holds (new ports from 50000).
    fn plan_over(config: &Config, found: &Found, image_ready: bool) -> Plan {
        plan_from(config, found, image_ready, 50000)
    }

    fn tcg() -> Decision {
        Decision {
            accel: Accel::Tcg,
            reason: "test".into(),
        }
    }

    #[test]
    fn fresh_user_mode_plan() {
        let config = Config::parse("vm_count = 3").unwrap();
        let plan = plan_from(&config, &Found::default(), false, 40000);
        assert_eq!(
            plan.actions,
            [
                Action::CreatePool,
                Action::UploadImage,
                Action::CreateVm(1),
                Action::StartVm(1),
                Action::CreateVm(2),
                Action::StartVm(2),
                Action::CreateVm(3),
                Action::StartVm(3)
            ]
        );
        let (a, b, c) = (&plan.vms[0], &plan.vms[1], &plan.vms[2]);
        assert_eq!((a.peer, b.peer, c.peer), (Some(2), Some(1), None));
        let (l, r) = a.udp.unwrap();
        assert_eq!(b.udp, Some((r, l)), "vm1 and vm2 point at each other");
        assert_ne!(c.udp.unwrap().0, l);
        assert_eq!(a.data_ip, Ipv4Addr::new(10, 0, 1, 4));
        assert_eq!(b.data_ip, Ipv4Addr::new(10, 0, 1, 6));
        assert_eq!(a.agent_listen, "10.0.2.15:50051".parse().unwrap());
        assert_eq!(a.ssh.ip(), std::net::IpAddr::from([127, 0, 0, 1]));
        let all_ports: std::collections::HashSet<u16> = plan
            .vms
            .iter()
            .flat_map(|v| [v.ssh.port(), v.agent.port()])
            .collect();
        assert_eq!(all_ports.len(), 6);
        assert_eq!((plan.vcpus, plan.memory_mb), (1, 1024));
        assert_ne!(a.mgmt_mac, a.data_mac);
        assert_eq!(a.mgmt_mac, mac("t", 1, 0));
        assert_ne!(mac("t", 1, 0), mac("u", 1, 0));
        let spec = plan.domain_spec(a, Path::new("/pool"), true);
        let xml = domain::domain_xml(&spec);
        assert!(xml.contains("hugepagesz=2M hugepages=64"));
        assert_eq!(VmMeta::parse(&xml).unwrap().udp_local, Some(l));
    }

    fn found_from(plan: &Plan, active: bool) -> Found {
        let names = Names::new(&plan.env);
        Found {
            pool: Some((true, PathBuf::from("/pool"))),
            volumes: vec![names.base()],
            pool_volume_count: 1,
            networks: vec![],
            inactive_networks: vec![],
            mgmt_network: None,
            domains: plan
                .vms
                .iter()
                .map(|vm| FoundDomain {
                    name: vm.domain.clone(),
                    index: vm.index,
                    active,
                    state: "running".into(),
                    accel: Some(Accel::Tcg),
                    meta: plan.domain_spec(vm, Path::new("/pool"), true).meta,
                })
                .collect(),
            ..Found::default()
        }
    }

    /// The default lab, made and running: its configuration, the plan that made it
    /// and what `find` reports of it.
    fn running_default() -> (Config, Plan, Found) {
        let config = Config::default();
        let first = fresh(&config);
        let found = found_from(&first, true);
        (config, first, found)
    }

    /// What `find` reports for a nat-mode lab made from `plan`: its domains and both
    /// networks (running).
    fn nat_found_from(plan: &Plan, active: bool) -> Found {
        let names = Names::new(&plan.env);
        Found {
            networks: vec![names.data_network(), names.mgmt_network()],
            ..found_from(plan, active)
        }
    }

    #[test]
    fn a_changed_key_is_shown_per_vm_and_replaces_the_vm() {
        let (config, _, found) = running_default();
        for (key, change) in [
            (
                "vcpus",
                (|c: &mut Config| c.vcpus = Some(2)) as fn(&mut Config),
            ),
            ("memory_mb", |c| c.memory_mb = Some(2048)),
            ("disk_gb", |c| c.disk_gb = 16),
            ("hugepages", |c| c.hugepages = 128),
            ("data_subnet", |c| {
                c.data_subnet = Subnet {
                    network: Ipv4Addr::new(10, 0, 7, 0),
                    prefix: 24,
                }
            }),
        ] {
            let mut changed = config.clone();
            change(&mut changed);
            let plan = plan_over(&changed, &found, true);
            assert_eq!(
                plan.drift
                    .iter()
                    .map(|d| (d.vm.as_str(), d.key))
                    .collect::<Vec<_>>(),
                [("vm1", key), ("vm2", key)],
                "{plan}"
            );
            assert!(plan.actions.contains(&Action::CreateVm(1)), "{plan}");
            assert!(plan.actions.contains(&Action::CreateVm(2)), "{plan}");
            let text = plan.to_string();
            assert!(!text.contains("no changes"), "{text}");
            assert!(text.contains(&format!("~ vm1: {key} ")), "{text}");
            assert!(
                text.contains("replaces vm1 (its disk is recreated)"),
                "{text}"
            );
        }
        let subnet = {
            let mut c = config.clone();
            c.data_subnet = Subnet {
                network: Ipv4Addr::new(10, 0, 7, 0),
                prefix: 24,
            };
            plan_over(&c, &found, true)
        };
        assert_eq!(subnet.drift[0].old, "10.0.1.4/24");
        assert_eq!(subnet.drift[0].new, "10.0.7.4/24");
    }

    #[test]
    fn a_rebuilt_agent_replaces_the_vms_that_carry_the_old_one() {
        let config = Config::default();
        let mut first = fresh(&config);
        replace_for_agent(&mut first, &Found::default(), &"aa".repeat(32));
        let found = found_from(&first, true);
        let mut same = plan_over(&config, &found, true);
        replace_for_agent(&mut same, &found, &"aa".repeat(32));
        assert!(same.is_noop(), "{same}");
        let mut rebuilt = plan_over(&config, &found, true);
        replace_for_agent(&mut rebuilt, &found, &"bb".repeat(32));
        assert_eq!(
            rebuilt.actions,
            [
                Action::CreateVm(1),
                Action::StartVm(1),
                Action::CreateVm(2),
                Action::StartVm(2)
            ]
        );
        assert!(
            rebuilt
                .to_string()
                .contains("~ vm1: agent aaaaaaaaaaaa -> bbbbbbbbbbbb"),
            "{rebuilt}"
        );
    }

    #[test]
    fn a_new_base_image_names_the_running_vms_it_recreates() {
        let (config, _, found) = running_default();
        let plan = plan_over(&config, &found, false);
        assert_eq!(plan.recreated_for_image, ["vm1", "vm2"]);
        assert!(
            plan.to_string().contains("recreates the running vm1, vm2"),
            "{plan}"
        );
    }

    #[test]
    fn up_twice_changes_nothing_and_keeps_ports() {
        let (config, first, found) = running_default();
        let second = plan_over(&config, &found, true);
        assert!(second.is_noop(), "{:?}", second.actions);
        assert_eq!(second.vms, first.vms, "same layout and ports");
        let stopped = plan_over(&config, &found_from(&first, false), true);
        assert_eq!(stopped.actions, [Action::StartVm(1), Action::StartVm(2)]);
    }

    #[test]
    fn half_made_environment_is_completed_consistently() {
        let (config, first, mut found) = running_default();
        found.domains.retain(|d| d.index == 1);
        let again = plan_over(&config, &found, true);
        assert_eq!(again.actions, [Action::CreateVm(2), Action::StartVm(2)]);
        assert_eq!(again.vms[1].udp, first.vms[1].udp, "vm2 joins vm1's link");
        // A base volume without any domain may be a torn upload: upload again.
        let mut found = found_from(&first, true);
        found.domains.clear();
        let again = plan_over(&config, &found, true);
        assert!(again.actions.contains(&Action::UploadImage));
    }

    #[test]
    fn nat_mode_plan() {
        let config = Config::parse("network = \"nat\"").unwrap();
        let plan = plan_from(&config, &Found::default(), false, 40000);
        assert!(plan.actions.contains(&Action::CreateNetworks));
        let vm = &plan.vms[1];
        assert_eq!(vm.mgmt_ip, Ipv4Addr::new(192, 168, 150, 12));
        assert_eq!(vm.ssh, "192.168.150.12:22".parse().unwrap());
        assert_eq!(vm.agent_listen, vm.agent);
        assert_eq!(vm.udp, None);
        let xml = domain::domain_xml(&plan.domain_spec(vm, Path::new("/pool"), true));
        assert!(xml.contains("dpdkhost-t-mgmt") && xml.contains("dpdkhost-t-data"));
        assert!(plan.to_string().contains("+ networks"));
    }

    #[test]
    fn nat_mode_after_a_reboot_starts_the_networks_before_the_vms() {
        let config = Config::parse("network = \"nat\"").unwrap();
        let first = fresh(&config);
        let names = Names::new("t");
        let found = nat_found_from(&first, true);
        let again = plan_from(&config, &found, true, 0);
        assert!(again.is_noop(), "{:?}", again.actions);
        // Rebooted: domains shut off, networks defined but stopped (no autostart).
        let mut found = nat_found_from(&first, false);
        found.inactive_networks = found.networks.clone();
        let again = plan_from(&config, &found, true, 0);
        assert_eq!(
            again.actions,
            [
                Action::CreateNetworks,
                Action::StartVm(1),
                Action::StartVm(2)
            ]
        );
        // One of them stopped is enough.
        let mut found = nat_found_from(&first, true);
        found.inactive_networks = vec![names.data_network()];
        let again = plan_from(&config, &found, true, 0);
        assert_eq!(again.actions, [Action::CreateNetworks]);
    }

    #[test]
    fn nat_mode_reserves_addresses_for_vms_added_later_and_refuses_a_moved_subnet() {
        use crate::provision::network;
        let two = Config::parse("network = \"nat\"\nvm_count = 2").unwrap();
        let first = plan_from(&two, &Found::default(), true, 0);
        let names = Names::new("t");
        let hosts: Vec<Reservation> = first.vms.iter().map(VmPlan::mgmt_reservation).collect();
        let mut found = nat_found_from(&first, true);
        found.mgmt_network = Some(network::parse_mgmt(&network::mgmt_xml(
            &names.mgmt_network(),
            &two.nat_subnet,
            &hosts,
        )));
        let again = plan_from(&two, &found, true, 0);
        assert!(again.is_noop(), "{:?}", again.actions);

        let three = Config::parse("network = \"nat\"\nvm_count = 3").unwrap();
        let more = plan_from(&three, &found, true, 0);
        assert_eq!(
            more.actions,
            [
                Action::ReserveAddress(3),
                Action::CreateVm(3),
                Action::StartVm(3)
            ]
        );
        assert!(
            more.to_string()
                .contains("vm3: management address reserved in dpdkhost-t-mgmt"),
            "{more}"
        );

        assert_eq!(check_existing(&three, "t", &found), Ok(()));
        let moved = Config::parse("network = \"nat\"\nnat_subnet = \"192.168.177.0/24\"").unwrap();
        let err = check_existing(&moved, "t", &found).unwrap_err();
        for part in [
            "dpdkhost-t-mgmt",
            "192.168.150.1",
            "nat_subnet is 192.168.177.0/24",
            "down -y",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
        // In user mode a leftover NAT network is not in the way.
        assert_eq!(check_existing(&Config::default(), "t", &found), Ok(()));
    }
}
