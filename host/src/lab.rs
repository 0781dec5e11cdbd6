//! The lab's names and what libvirt holds of it: every object's name for an
//! environment (and whether a name is one dpdkhost writes), and the environment's
//! objects as `find` reads them. `plan` reasons over these; `provision` makes them.

use std::path::PathBuf;

use crate::accel::Accel;
use crate::provision::domain::VmMeta;
use crate::provision::network;
use crate::provision::owner::LeftAlone;

/// Object names of environment `env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    env: String,
}

impl Names {
    /// The environment.
    pub fn env(&self) -> &str {
        &self.env
    }
    /// Names for `env`.
    pub fn new(env: &str) -> Names {
        Names {
            env: env.to_owned(),
        }
    }
    /// `dpdkhost-<env>-`.
    pub fn prefix(&self) -> String {
        format!("dpdkhost-{}-", self.env)
    }
    /// Domain of VM `index`.
    pub fn domain(&self, index: u8) -> String {
        format!("{}vm{index}", self.prefix())
    }
    /// Overlay volume of VM `index`.
    pub fn overlay(&self, index: u8) -> String {
        format!("{}vm{index}.qcow2", self.prefix())
    }
    /// Seed volume of VM `index`.
    pub fn seed(&self, index: u8) -> String {
        format!("{}vm{index}-seed.img", self.prefix())
    }
    /// Serial console log of VM `index` (in the pool directory).
    pub fn console_log(&self, index: u8) -> String {
        format!("{}vm{index}.console.log", self.prefix())
    }
    /// Base image volume.
    pub fn base(&self) -> String {
        format!("{}base.img", self.prefix())
    }
    /// Kernel volume.
    pub fn kernel(&self) -> String {
        format!("{}vmlinuz", self.prefix())
    }
    /// Initrd volume.
    pub fn initrd(&self) -> String {
        format!("{}initrd.img", self.prefix())
    }
    /// NAT management network.
    pub fn mgmt_network(&self) -> String {
        format!("{}mgmt", self.prefix())
    }
    /// Isolated data network.
    pub fn data_network(&self) -> String {
        format!("{}data", self.prefix())
    }

    /// Whether `name` is one of this environment's volume names (exactly, so env `a`
    /// never claims env `a-b`'s objects, nor `vm01.qcow2`).
    pub fn owns_volume(&self, name: &str) -> bool {
        self.volume_name(name)
            .is_some_and(|digits| digits.is_none_or(|d| vm_index(d).is_some()))
    }

    /// Whether `name` looks like one of this environment's volumes without being one
    /// (`dpdkhost-t-vm01.qcow2`).
    pub fn looks_like_volume(&self, name: &str) -> bool {
        self.volume_name(name).is_some() && !self.owns_volume(name)
    }

    /// `Some(None)` for the environment's base, kernel or initrd volume; `Some(Some(digits))`
    /// for a per-VM volume name with any run of digits as its index.
    fn volume_name<'a>(&self, name: &'a str) -> Option<Option<&'a str>> {
        let rest = name.strip_prefix(&self.prefix())?;
        if ["base.img", "vmlinuz", "initrd.img"].contains(&rest) {
            return Some(None);
        }
        let rest = rest.strip_prefix("vm")?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        (digits > 0 && [".qcow2", "-seed.img", ".console.log"].contains(&&rest[digits..]))
            .then_some(Some(&rest[..digits]))
    }

    /// Whether `name` is one of this environment's networks.
    pub fn owns_network(&self, name: &str) -> bool {
        name == self.mgmt_network() || name == self.data_network()
    }

    /// The VM index of a domain name of this environment (`dpdkhost-<env>-vm<N>`, N as
    /// dpdkhost writes it: 1..=99, no sign, no leading zero).
    pub fn domain_index(&self, name: &str) -> Option<u8> {
        vm_index(name.strip_prefix(&self.prefix())?.strip_prefix("vm")?)
    }

    /// Whether `name` looks like a domain name of this environment without being one
    /// (`vm01`, `vm+2`: what older versions claimed).
    pub fn looks_like_domain(&self, name: &str) -> bool {
        let rest = name
            .strip_prefix(&self.prefix())
            .and_then(|r| r.strip_prefix("vm"));
        rest.is_some_and(|r| r.parse::<u8>().is_ok()) && self.domain_index(name).is_none()
    }
}

/// A VM index as dpdkhost writes it in names.
fn vm_index(digits: &str) -> Option<u8> {
    let index: u8 = digits.parse().ok()?;
    (index.to_string() == digits && (1..=99).contains(&index)).then_some(index)
}

/// A domain of the environment as libvirt has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundDomain {
    /// libvirt name.
    pub name: String,
    /// VM index.
    pub index: u8,
    /// Running (or paused: anything with a QEMU process).
    pub active: bool,
    /// Human state: running, paused, shut off, crashed, ...
    pub state: String,
    /// Domain type.
    pub accel: Option<Accel>,
    /// dpdkhost metadata.
    pub meta: VmMeta,
}

/// An environment's objects as libvirt has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Whether the pool exists, is active, and its path.
    pub pool: Option<(bool, PathBuf)>,
    /// Whether dpdkhost made the pool (it holds the marker volume).
    pub pool_owned: bool,
    /// The environment's volumes in the pool: named for it, and in a pool dpdkhost
    /// made or used by one of the environment's domains.
    pub volumes: Vec<String>,
    /// Every volume in the pool but the marker (to know whether the pool can go).
    pub pool_volume_count: usize,
    /// The environment's networks.
    pub networks: Vec<String>,
    /// Those of them that are defined but not running (after a host reboot: libvirt
    /// starts no network without autostart).
    pub inactive_networks: Vec<String>,
    /// The management network's address and reservations, when it exists (nat mode).
    pub mgmt_network: Option<network::MgmtFound>,
    /// The environment's domains, by index.
    pub domains: Vec<FoundDomain>,
    /// What looks like the environment's but is not: never removed nor replaced.
    pub left_alone: Vec<LeftAlone>,
}

impl Found {
    /// The domain of VM `index`.
    pub fn domain(&self, index: u8) -> Option<&FoundDomain> {
        self.domains.iter().find(|d| d.index == index)
    }
    /// Whether nothing of the environment exists.
    pub fn is_empty(&self) -> bool {
        self.volumes.is_empty() && self.networks.is_empty() && self.domains.is_empty()
    }

    /// Whether `down` removes the pool: dpdkhost made it and nothing but the
    /// environment's volumes is in it.
    pub fn pool_goes(&self) -> bool {
        self.pool.is_some() && self.pool_owned && self.pool_volume_count == self.volumes.len()
    }

    /// What is in the way of making `objects` (`domain dpdkhost-t-vm1`, ...): objects of
    /// those names that are not the environment's.
    pub fn not_ours_among(&self, objects: &[String]) -> Vec<&LeftAlone> {
        self.left_alone
            .iter()
            .filter(|l| objects.contains(&l.object))
            .collect()
    }
}
