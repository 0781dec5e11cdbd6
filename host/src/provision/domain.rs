//! Domain XML: type kvm or qemu, cpu host-passthrough or maximum, a qcow2 overlay and
//! the seed as virtio disks, two virtio NICs on fixed PCI slots, serial console to a log
//! file, and metadata naming the environment (what `down` finds it by).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::accel::Accel;

/// XML namespace of dpdkhost's domain metadata.
pub const METADATA_NS: &str = "https://dpdkhost.invalid/xmlns/vm/1";
/// Prefix of the metadata element.
pub const METADATA_KEY: &str = "dpdkhost";

/// PCI slot of the data NIC (`ens3` in the guest).
pub const SLOT_DATA_NIC: u8 = 0x03;
/// PCI slot of the root disk.
pub const SLOT_DISK: u8 = 0x04;
/// PCI slot of the seed disk.
pub const SLOT_SEED: u8 = 0x05;
/// PCI slot of the virtio RNG (entropy for sshd and TLS early in boot).
pub const SLOT_RNG: u8 = 0x06;
/// PCI slot of the management NIC (`ens16` in the guest).
pub const SLOT_MGMT_NIC: u8 = 0x10;
/// The management NIC's name in the guest, from its PCI slot.
pub const MGMT_IFNAME: &str = "ens16";
/// Guest address of a QEMU user-mode NIC.
pub const USER_GUEST_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 0, 2, 15);
/// Gateway of a QEMU user-mode NIC.
pub const USER_GATEWAY: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 0, 2, 2);
/// DNS of a QEMU user-mode NIC.
pub const USER_DNS: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 0, 2, 3);

/// The management NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MgmtNic {
    /// QEMU user-mode NIC (restrict=on) with hostfwd on 127.0.0.1 to sshd and the agent.
    User {
        /// MAC.
        mac: String,
        /// Host port forwarded to guest port 22.
        ssh_port: u16,
        /// Host port forwarded to the agent's port.
        agent_port: u16,
        /// The agent's port in the guest.
        guest_agent_port: u16,
    },
    /// A libvirt network (nat mode).
    Network {
        /// MAC.
        mac: String,
        /// Network name.
        network: String,
    },
}

/// The data NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataNic {
    /// Point-to-point UDP socket link on 127.0.0.1.
    Udp {
        /// MAC.
        mac: String,
        /// This VM's UDP port.
        local_port: u16,
        /// The peer's UDP port.
        remote_port: u16,
    },
    /// A libvirt network (nat mode: isolated).
    Network {
        /// MAC.
        mac: String,
        /// Network name.
        network: String,
    },
}

/// Direct kernel boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelBoot {
    /// vmlinuz in the pool.
    pub kernel: PathBuf,
    /// initrd in the pool.
    pub initrd: PathBuf,
    /// Command line.
    pub cmdline: String,
}

/// What `down`, `status` and `up` read back from a domain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmMeta {
    /// Environment name.
    pub env: String,
    /// 1-based index.
    pub index: u8,
    /// Network mode.
    pub network: String,
    /// Host address of sshd.
    pub ssh: Option<SocketAddr>,
    /// Host address of the agent.
    pub agent: Option<SocketAddr>,
    /// user mode: UDP ports of the data link.
    pub udp_local: Option<u16>,
    /// user mode: the peer's UDP port.
    pub udp_remote: Option<u16>,
    /// What the VM was made with, to show a later configuration change (None on
    /// domains made before these were recorded).
    pub made_with: Option<MadeWith>,
}

/// The configuration a VM was made with: a change to any of it takes a new VM.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MadeWith {
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
    /// Overlay size in GiB.
    pub disk_gb: u32,
    /// 2 MiB hugepages reserved in the guest.
    pub hugepages: u32,
    /// The data address with prefix, `10.0.1.4/24`.
    pub data_ip: String,
    /// The sha256 of the agent binary on the seed (None on older domains).
    pub agent_sha256: Option<String>,
}

impl VmMeta {
    /// The metadata element.
    pub fn to_xml(&self) -> String {
        let mut s = format!(
            "<{k}:vm xmlns:{k}=\"{ns}\" env=\"{env}\" index=\"{idx}\" network=\"{net}\"",
            k = METADATA_KEY,
            ns = METADATA_NS,
            env = esc(&self.env),
            idx = self.index,
            net = esc(&self.network)
        );
        if let Some(a) = self.ssh {
            let _ = write!(s, " ssh=\"{a}\"");
        }
        if let Some(a) = self.agent {
            let _ = write!(s, " agent=\"{a}\"");
        }
        if let Some(p) = self.udp_local {
            let _ = write!(s, " udp-local=\"{p}\"");
        }
        if let Some(p) = self.udp_remote {
            let _ = write!(s, " udp-remote=\"{p}\"");
        }
        if let Some(m) = &self.made_with {
            let _ = write!(
                s,
                " vcpus=\"{}\" memory-mb=\"{}\" disk-gb=\"{}\" hugepages=\"{}\" data-ip=\"{}\"",
                m.vcpus,
                m.memory_mb,
                m.disk_gb,
                m.hugepages,
                esc(&m.data_ip)
            );
            if let Some(sha) = &m.agent_sha256 {
                let _ = write!(s, " agent-sha256=\"{}\"", esc(sha));
            }
        }
        s.push_str("/>");
        s
    }

    /// Parses the element as libvirt returns it (from the metadata API or the full XML).
    pub fn parse(xml: &str) -> Option<VmMeta> {
        let start = xml.find(&format!("{METADATA_NS}\""))?;
        // The element containing the namespace declaration.
        let open = xml[..start].rfind('<')?;
        let end = open + xml[open..].find('>')?;
        let elem = &xml[open..end];
        Some(VmMeta {
            env: attr(elem, "env")?,
            index: attr(elem, "index")?.parse().ok()?,
            network: attr(elem, "network").unwrap_or_default(),
            ssh: attr(elem, "ssh").and_then(|v| v.parse().ok()),
            agent: attr(elem, "agent").and_then(|v| v.parse().ok()),
            udp_local: attr(elem, "udp-local").and_then(|v| v.parse().ok()),
            udp_remote: attr(elem, "udp-remote").and_then(|v| v.parse().ok()),
            made_with: (|| {
                Some(MadeWith {
                    vcpus: attr(elem, "vcpus")?.parse().ok()?,
                    memory_mb: attr(elem, "memory-mb")?.parse().ok()?,
                    disk_gb: attr(elem, "disk-gb")?.parse().ok()?,
                    hugepages: attr(elem, "hugepages")?.parse().ok()?,
                    data_ip: attr(elem, "data-ip")?,
                    agent_sha256: attr(elem, "agent-sha256"),
                })
            })(),
        })
    }
}

/// The value of attribute `name` in an element's start tag.
pub fn attr(elem: &str, name: &str) -> Option<String> {
    for quote in ['"', '\''] {
        let pat = format!(" {name}={quote}");
        if let Some(i) = elem.find(&pat) {
            let rest = &elem[i + pat.len()..];
            let j = rest.find(quote)?;
            return Some(unesc(&rest[..j]));
        }
    }
    None
}

/// Escapes text for XML attribute and element content.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn unesc(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Everything a domain is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSpec {
    /// libvirt name (`dpdkhost-<env>-vm1`).
    pub name: String,
    /// KVM or TCG.
    pub accel: Accel,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
    /// Root disk (qcow2 overlay).
    pub disk: PathBuf,
    /// NoCloud seed (raw FAT).
    pub seed: PathBuf,
    /// Direct kernel boot, or `None` to boot the disk.
    pub boot: Option<KernelBoot>,
    /// Serial console log.
    pub serial_log: PathBuf,
    /// Management NIC.
    pub mgmt: MgmtNic,
    /// Data NIC.
    pub data: DataNic,
    /// Metadata.
    pub meta: VmMeta,
}

fn pci(slot: u8) -> String {
    format!("<address type='pci' domain='0x0000' bus='0x00' slot='0x{slot:02x}' function='0x0'/>")
}

/// The domain XML.
pub fn domain_xml(d: &DomainSpec) -> String {
    let mut x = String::new();
    let _ = writeln!(
        x,
        "<domain type='{}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>",
        d.accel.domain_type()
    );
    let _ = writeln!(x, "  <name>{}</name>", esc(&d.name));
    let _ = writeln!(
        x,
        "  <title>dpdkhost environment {} VM {}</title>",
        esc(&d.meta.env),
        d.meta.index
    );
    let _ = writeln!(x, "  <metadata>\n    {}\n  </metadata>", d.meta.to_xml());
    let _ = writeln!(x, "  <memory unit='MiB'>{}</memory>", d.memory_mb);
    let _ = writeln!(x, "  <vcpu placement='static'>{}</vcpu>", d.vcpus);
    x.push_str("  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n");
    match &d.boot {
        Some(b) => {
            let _ = writeln!(
                x,
                "    <kernel>{}</kernel>",
                esc(&b.kernel.to_string_lossy())
            );
            let _ = writeln!(
                x,
                "    <initrd>{}</initrd>",
                esc(&b.initrd.to_string_lossy())
            );
            let _ = writeln!(x, "    <cmdline>{}</cmdline>", esc(&b.cmdline));
        }
        None => x.push_str("    <boot dev='hd'/>\n"),
    }
    x.push_str("  </os>\n  <features><acpi/><apic/></features>\n");
    match d.accel {
        Accel::Kvm => {
            x.push_str("  <cpu mode='host-passthrough' check='none' migratable='off'/>\n")
        }
        Accel::Tcg => x.push_str("  <cpu mode='maximum' check='none'/>\n"),
    }
    x.push_str(
        "  <clock offset='utc'>\n    <timer name='rtc' tickpolicy='catchup'/>\n    <timer name='pit' tickpolicy='delay'/>\n    <timer name='hpet' present='no'/>\n  </clock>\n",
    );
    x.push_str("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n");
    x.push_str("  <devices>\n");
    let _ = writeln!(
        x,
        "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2' discard='unmap'/>\n      <source file='{}'/>\n      <target dev='vda' bus='virtio'/>\n      {}\n    </disk>",
        esc(&d.disk.to_string_lossy()),
        pci(SLOT_DISK)
    );
    let _ = writeln!(
        x,
        "    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n      <source file='{}'/>\n      <target dev='vdb' bus='virtio'/>\n      <readonly/>\n      {}\n    </disk>",
        esc(&d.seed.to_string_lossy()),
        pci(SLOT_SEED)
    );
    match &d.data {
        DataNic::Udp {
            mac,
            local_port,
            remote_port,
        } => {
            let _ = writeln!(
                x,
                "    <interface type='udp'>\n      <mac address='{mac}'/>\n      <source address='127.0.0.1' port='{remote_port}'>\n        <local address='127.0.0.1' port='{local_port}'/>\n      </source>\n      <model type='virtio'/>\n      {}\n    </interface>",
                pci(SLOT_DATA_NIC)
            );
        }
        DataNic::Network { mac, network } => {
            let _ = writeln!(
                x,
                "    <interface type='network'>\n      <mac address='{mac}'/>\n      <source network='{}'/>\n      <model type='virtio'/>\n      {}\n    </interface>",
                esc(network),
                pci(SLOT_DATA_NIC)
            );
        }
    }
    if let MgmtNic::Network { mac, network } = &d.mgmt {
        let _ = writeln!(
            x,
            "    <interface type='network'>\n      <mac address='{mac}'/>\n      <source network='{}'/>\n      <model type='virtio'/>\n      {}\n    </interface>",
            esc(network),
            pci(SLOT_MGMT_NIC)
        );
    }
    let log = esc(&d.serial_log.to_string_lossy());
    let _ = writeln!(
        x,
        "    <serial type='file'>\n      <source path='{log}' append='off'/>\n      <target port='0'/>\n    </serial>\n    <console type='file'>\n      <source path='{log}' append='off'/>\n      <target type='serial' port='0'/>\n    </console>"
    );
    let _ = writeln!(
        x,
        "    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n      {}\n    </rng>",
        pci(SLOT_RNG)
    );
    x.push_str(
        "    <controller type='usb' model='none'/>\n    <memballoon model='none'/>\n  </devices>\n",
    );
    if let MgmtNic::User {
        mac,
        ssh_port,
        agent_port,
        guest_agent_port,
    } = &d.mgmt
    {
        let netdev = format!(
            "user,id=mgmt0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-{USER_GUEST_IP}:22,hostfwd=tcp:127.0.0.1:{agent_port}-{USER_GUEST_IP}:{guest_agent_port}"
        );
        let device =
            format!("virtio-net-pci,netdev=mgmt0,mac={mac},bus=pci.0,addr=0x{SLOT_MGMT_NIC:x}");
        let _ = writeln!(
            x,
            "  <qemu:commandline>\n    <qemu:arg value='-netdev'/>\n    <qemu:arg value='{}'/>\n    <qemu:arg value='-device'/>\n    <qemu:arg value='{}'/>\n  </qemu:commandline>",
            esc(&netdev),
            esc(&device)
        );
    }
    x.push_str("</domain>\n");
    x
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn spec(accel: Accel, user: bool) -> DomainSpec {
        DomainSpec {
            name: "dpdkhost-t-vm1".into(),
            accel,
            vcpus: 1,
            memory_mb: 1024,
            disk: "/pool/dpdkhost-t-vm1.qcow2".into(),
            seed: "/pool/dpdkhost-t-vm1-seed.img".into(),
            boot: Some(KernelBoot {
                kernel: "/pool/dpdkhost-t-vmlinuz".into(),
                initrd: "/pool/dpdkhost-t-initrd.img".into(),
                cmdline: "root=/dev/vda rw hugepagesz=2M hugepages=64".into(),
            }),
            serial_log: "/pool/dpdkhost-t-vm1.console.log".into(),
            mgmt: if user {
                MgmtNic::User {
                    mac: "52:54:00:aa:01:02".into(),
                    ssh_port: 40022,
                    agent_port: 40051,
                    guest_agent_port: 50051,
                }
            } else {
                MgmtNic::Network {
                    mac: "52:54:00:aa:01:02".into(),
                    network: "dpdkhost-t-mgmt".into(),
                }
            },
            data: if user {
                DataNic::Udp {
                    mac: "52:54:00:aa:01:03".into(),
                    local_port: 40100,
                    remote_port: 40101,
                }
            } else {
                DataNic::Network {
                    mac: "52:54:00:aa:01:03".into(),
                    network: "dpdkhost-t-data".into(),
                }
            },
            meta: VmMeta {
                env: "t".into(),
                index: 1,
                network: if user { "user" } else { "nat" }.into(),
                ssh: Some("127.0.0.1:40022".parse().unwrap()),
                agent: Some("127.0.0.1:40051".parse().unwrap()),
                udp_local: user.then_some(40100),
                udp_remote: user.then_some(40101),
                made_with: Some(MadeWith {
                    vcpus: 1,
                    memory_mb: 1024,
                    disk_gb: 8,
                    hugepages: 64,
                    data_ip: "10.0.1.4/24".into(),
                    agent_sha256: Some("ab".repeat(32)),
                }),
            },
        }
    }

    #[test]
    fn tcg_user_mode_xml() {
        let x = domain_xml(&spec(Accel::Tcg, true));
        assert!(x.starts_with("<domain type='qemu' "));
        assert!(x.contains("<cpu mode='maximum'"));
        assert!(x.contains("<kernel>/pool/dpdkhost-t-vmlinuz</kernel>"));
        assert!(x.contains("hugepages=64</cmdline>"));
        assert!(x.contains(
            "hostfwd=tcp:127.0.0.1:40022-10.0.2.15:22,hostfwd=tcp:127.0.0.1:40051-10.0.2.15:50051"
        ));
        assert!(x.contains("restrict=on"));
        assert!(x.contains("virtio-net-pci,netdev=mgmt0,mac=52:54:00:aa:01:02,bus=pci.0,addr=0x10"));
        assert!(x.contains("<interface type='udp'>"));
        assert!(x.contains("<source address='127.0.0.1' port='40101'>"));
        assert!(x.contains("<local address='127.0.0.1' port='40100'/>"));
        assert!(x.contains("<serial type='file'>"));
        assert_eq!(
            x.matches("<address type='pci'").count(),
            4,
            "every libvirt device pinned"
        );
        assert_eq!(VmMeta::parse(&x), Some(spec(Accel::Tcg, true).meta));
    }

    #[test]
    fn kvm_nat_mode_xml() {
        let x = domain_xml(&spec(Accel::Kvm, false));
        assert!(x.starts_with("<domain type='kvm' "));
        assert!(x.contains("<cpu mode='host-passthrough'"));
        assert!(!x.contains("qemu:commandline"));
        assert!(x.contains("<source network='dpdkhost-t-mgmt'/>"));
        assert!(x.contains("<source network='dpdkhost-t-data'/>"));
        assert!(x.contains("slot='0x10'") && x.contains("slot='0x03'"));
    }

    #[test]
    fn metadata_round_trip_and_escaping() {
        let m = VmMeta {
            env: "a&b".into(),
            index: 3,
            network: "nat".into(),
            ..Default::default()
        };
        assert_eq!(VmMeta::parse(&m.to_xml()), Some(m));
        let made = spec(Accel::Tcg, true).meta;
        assert!(made.made_with.is_some());
        assert_eq!(VmMeta::parse(&made.to_xml()), Some(made));
        assert_eq!(VmMeta::parse("<domain><name>x</name></domain>"), None);
        assert_eq!(attr("<x a='1' b=\"2\"", "b").as_deref(), Some("2"));
        assert_eq!(attr("<x a='1'", "a").as_deref(), Some("1"));
    }
}
