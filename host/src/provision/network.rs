//! nat mode networks: a NAT management network with a DHCP reservation per VM MAC (so
//! addresses are known before boot) and an isolated data network with no host address.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use virt::connect::Connect;
use virt::network::Network;

use super::domain::esc;
use super::{lookup, ProvisionError};
use crate::config::Subnet;

/// One DHCP reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The VM's management MAC.
    pub mac: String,
    /// Its hostname.
    pub name: String,
    /// Its address.
    pub ip: Ipv4Addr,
}

/// The NAT management network.
pub fn mgmt_xml(name: &str, subnet: &Subnet, hosts: &[Reservation]) -> String {
    let mut x = String::new();
    let _ = writeln!(
        x,
        "<network>\n  <name>{}</name>\n  <forward mode='nat'/>",
        esc(name)
    );
    x.push_str("  <bridge stp='on' delay='0'/>\n");
    let _ = writeln!(
        x,
        "  <ip address='{}' netmask='{}'>\n    <dhcp>",
        subnet.host(1),
        subnet.netmask()
    );
    let last = u32::try_from(subnet.size().saturating_sub(2)).unwrap_or(u32::MAX);
    let _ = writeln!(
        x,
        "      <range start='{}' end='{}'/>",
        subnet.host(100.min(last)),
        subnet.host(last)
    );
    for h in hosts {
        let _ = writeln!(
            x,
            "      <host mac='{}' name='{}' ip='{}'/>",
            h.mac,
            esc(&h.name),
            h.ip
        );
    }
    x.push_str("    </dhcp>\n  </ip>\n</network>\n");
    x
}

/// The isolated data network: a bridge with no forward and no host address.
pub fn data_xml(name: &str) -> String {
    format!(
        "<network>\n  <name>{}</name>\n  <bridge stp='off' delay='0'/>\n</network>\n",
        esc(name)
    )
}

/// Defines and starts network `name` from `xml` unless it exists; starts it if inactive.
pub fn ensure(conn: &Connect, name: &str, xml: &str) -> Result<(), ProvisionError> {
    let net = match lookup(Network::lookup_by_name(conn, name))? {
        Some(net) => net,
        None => Network::define_xml(conn, xml).map_err(|source| ProvisionError::Libvirt {
            what: format!("define network {name}"),
            source,
        })?,
    };
    if !net.is_active().unwrap_or(false) {
        net.create().map_err(|source| ProvisionError::Libvirt {
            what: format!("start network {name}"),
            source,
        })?;
    }
    Ok(())
}

/// Stops and undefines network `name` if it exists.
pub fn remove(conn: &Connect, name: &str) -> Result<bool, ProvisionError> {
    let Some(net) = lookup(Network::lookup_by_name(conn, name))? else {
        return Ok(false);
    };
    if net.is_active().unwrap_or(false) {
        net.destroy().map_err(|source| ProvisionError::Libvirt {
            what: format!("stop network {name}"),
            source,
        })?;
    }
    if net.is_persistent().unwrap_or(true) {
        net.undefine().map_err(|source| ProvisionError::Libvirt {
            what: format!("undefine network {name}"),
            source,
        })?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_network_has_a_reservation_per_vm() {
        let subnet = Subnet {
            network: Ipv4Addr::new(192, 168, 150, 0),
            prefix: 24,
        };
        let x = mgmt_xml(
            "dpdkhost-t-mgmt",
            &subnet,
            &[
                Reservation {
                    mac: "52:54:00:00:01:02".into(),
                    name: "vm1".into(),
                    ip: Ipv4Addr::new(192, 168, 150, 11),
                },
                Reservation {
                    mac: "52:54:00:00:02:02".into(),
                    name: "vm2".into(),
                    ip: Ipv4Addr::new(192, 168, 150, 12),
                },
            ],
        );
        assert!(x.contains("<forward mode='nat'/>"));
        assert!(x.contains("<ip address='192.168.150.1' netmask='255.255.255.0'>"));
        assert!(x.contains("<host mac='52:54:00:00:01:02' name='vm1' ip='192.168.150.11'/>"));
        assert!(x.contains("<host mac='52:54:00:00:02:02' name='vm2' ip='192.168.150.12'/>"));
        assert!(x.contains("<range start='192.168.150.100' end='192.168.150.254'/>"));
        let d = data_xml("dpdkhost-t-data");
        assert!(
            !d.contains("<ip") && !d.contains("<forward"),
            "isolated, no host address: {d}"
        );
    }

    #[test]
    fn define_start_and_remove_on_the_test_driver() {
        virt::error::clear_error_callback();
        let conn = Connect::open(Some("test:///default")).unwrap();
        let subnet = Subnet {
            network: Ipv4Addr::new(192, 168, 151, 0),
            prefix: 24,
        };
        ensure(
            &conn,
            "dpdkhost-nt-mgmt",
            &mgmt_xml("dpdkhost-nt-mgmt", &subnet, &[]),
        )
        .unwrap();
        ensure(&conn, "dpdkhost-nt-data", &data_xml("dpdkhost-nt-data")).unwrap();
        ensure(&conn, "dpdkhost-nt-data", &data_xml("dpdkhost-nt-data")).unwrap();
        let net = Network::lookup_by_name(&conn, "dpdkhost-nt-mgmt").unwrap();
        assert!(net.is_active().unwrap());
        assert!(remove(&conn, "dpdkhost-nt-mgmt").unwrap());
        assert!(remove(&conn, "dpdkhost-nt-data").unwrap());
        assert!(!remove(&conn, "dpdkhost-nt-data").unwrap());
        assert!(Network::lookup_by_name(&conn, "dpdkhost-nt-mgmt").is_err());
    }
}
