//! nat mode networks: a NAT management network with a DHCP reservation per VM MAC (so
//! addresses are known before boot) and an isolated data network with no host address.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use virt::connect::Connect;
use virt::network::Network;

use super::domain::esc;
use super::{lookup, owner, ProvisionError};
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
        let _ = writeln!(x, "      {}", host_xml(h));
    }
    x.push_str("    </dhcp>\n  </ip>\n</network>\n");
    x
}

/// What an existing management network holds: its host address and netmask, and its
/// DHCP reservations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MgmtFound {
    /// The host's address on the network (the gateway).
    pub address: Option<Ipv4Addr>,
    /// Its netmask.
    pub netmask: Option<Ipv4Addr>,
    /// The DHCP reservations.
    pub hosts: Vec<Reservation>,
}

/// Reads the address, netmask and reservations out of a network's XML.
pub fn parse_mgmt(xml: &str) -> MgmtFound {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return MgmtFound::default();
    };
    let Some(ip) = doc.descendants().find(|n| n.has_tag_name("ip")) else {
        return MgmtFound::default();
    };
    let addr = |node: roxmltree::Node, name: &str| node.attribute(name)?.parse().ok();
    MgmtFound {
        address: addr(ip, "address"),
        netmask: addr(ip, "netmask"),
        hosts: ip
            .descendants()
            .filter(|n| n.has_tag_name("host"))
            .filter_map(|h| {
                Some(Reservation {
                    mac: h.attribute("mac")?.to_ascii_lowercase(),
                    name: h.attribute("name").unwrap_or_default().to_owned(),
                    ip: addr(h, "ip")?,
                })
            })
            .collect(),
    }
}

fn host_xml(h: &Reservation) -> String {
    format!(
        "<host mac='{}' name='{}' ip='{}'/>",
        h.mac,
        esc(&h.name),
        h.ip
    )
}

/// Makes network `name` reserve exactly `wanted`'s addresses for their MACs, in the
/// running network and in its definition, without restarting it (VMs on it keep their
/// leases). A reservation of another MAC on a wanted address goes first: libvirt
/// refuses two hosts on one address.
pub fn reserve(conn: &Connect, name: &str, wanted: &[Reservation]) -> Result<(), ProvisionError> {
    use virt_sys::{
        VIR_NETWORK_SECTION_IP_DHCP_HOST as HOSTS, VIR_NETWORK_UPDATE_AFFECT_CONFIG as CONFIG,
        VIR_NETWORK_UPDATE_AFFECT_LIVE as LIVE, VIR_NETWORK_UPDATE_COMMAND_ADD_LAST as ADD,
        VIR_NETWORK_UPDATE_COMMAND_DELETE as DELETE, VIR_NETWORK_UPDATE_COMMAND_MODIFY as MODIFY,
    };
    let Some(net) = lookup(Network::lookup_by_name(conn, name))? else {
        return Err(ProvisionError::Unexpected(format!(
            "network {name} vanished before its DHCP reservations could be made"
        )));
    };
    let flags = if net.is_active().unwrap_or(false) {
        LIVE | CONFIG
    } else {
        CONFIG
    };
    let libvirt_err = |what: String| move |source| ProvisionError::Libvirt { what, source };
    let xml = net
        .get_xml_desc(0)
        .map_err(libvirt_err(format!("read network {name}")))?;
    // Kept in step with every update, so a later wanted host sees what earlier ones
    // changed (a reservation dropped for one cannot be modified for the next).
    let mut existing = parse_mgmt(&xml).hosts;
    for want in wanted {
        if existing.contains(want) {
            continue;
        }
        for stale in existing
            .iter()
            .filter(|h| h.ip == want.ip && h.mac != want.mac)
        {
            net.update(DELETE, HOSTS, -1, &host_xml(stale), flags)
                .map_err(libvirt_err(format!(
                    "drop reservation {} in network {name}",
                    stale.ip
                )))?;
        }
        existing.retain(|h| h.ip != want.ip || h.mac == want.mac);
        let command = if existing.iter().any(|h| h.mac == want.mac) {
            MODIFY
        } else {
            ADD
        };
        net.update(command, HOSTS, -1, &host_xml(want), flags)
            .map_err(libvirt_err(format!(
                "reserve {} for {} in network {name}",
                want.ip, want.name
            )))?;
        existing.retain(|h| h.mac != want.mac);
        existing.push(want.clone());
    }
    Ok(())
}

/// The isolated data network: a bridge with no forward and no host address.
pub fn data_xml(name: &str) -> String {
    format!(
        "<network>\n  <name>{}</name>\n  <bridge stp='off' delay='0'/>\n</network>\n",
        esc(name)
    )
}

/// Defines network `name` from `xml` (with metadata naming environment `env`, what
/// `down` finds it by) unless it exists, and starts it if inactive. A network of that
/// name that is not `env`'s is refused, never used.
pub fn ensure(conn: &Connect, env: &str, name: &str, xml: &str) -> Result<(), ProvisionError> {
    let net = match lookup(Network::lookup_by_name(conn, name))? {
        Some(net) => {
            let existing = net
                .get_xml_desc(0)
                .map_err(|source| ProvisionError::Libvirt {
                    what: format!("read network {name}"),
                    source,
                })?;
            let found = owner::network_env(&existing);
            if let Some(reason) = owner::metadata_reason(found.as_deref(), env) {
                return Err(ProvisionError::NotOurs(owner::LeftAlone::new(
                    "network", name, reason,
                )));
            }
            net
        }
        None => {
            let xml = xml.replacen(
                "</name>",
                &format!("</name>\n  {}", owner::network_metadata(env)),
                1,
            );
            Network::define_xml(conn, &xml).map_err(|source| ProvisionError::Libvirt {
                what: format!("define network {name}"),
                source,
            })?
        }
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
            "nt",
            "dpdkhost-nt-mgmt",
            &mgmt_xml("dpdkhost-nt-mgmt", &subnet, &[]),
        )
        .unwrap();
        // Twice: the second finds it and changes nothing.
        for _ in 0..2 {
            ensure(
                &conn,
                "nt",
                "dpdkhost-nt-data",
                &data_xml("dpdkhost-nt-data"),
            )
            .unwrap();
        }
        let xml = Network::lookup_by_name(&conn, "dpdkhost-nt-data")
            .unwrap()
            .get_xml_desc(0)
            .unwrap();
        assert_eq!(owner::network_env(&xml).as_deref(), Some("nt"), "{xml}");
        // A network of that name someone else made is refused, not used.
        Network::define_xml(&conn, &data_xml("dpdkhost-nu-data")).unwrap();
        let err = ensure(
            &conn,
            "nu",
            "dpdkhost-nu-data",
            &data_xml("dpdkhost-nu-data"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("network dpdkhost-nu-data") && err.contains("no dpdkhost metadata"),
            "{err}"
        );
        assert!(remove(&conn, "dpdkhost-nu-data").unwrap());
        let net = Network::lookup_by_name(&conn, "dpdkhost-nt-mgmt").unwrap();
        assert!(net.is_active().unwrap());
        assert!(remove(&conn, "dpdkhost-nt-mgmt").unwrap());
        assert!(remove(&conn, "dpdkhost-nt-data").unwrap());
        assert!(!remove(&conn, "dpdkhost-nt-data").unwrap());
        assert!(Network::lookup_by_name(&conn, "dpdkhost-nt-mgmt").is_err());
    }

    #[test]
    fn reservations_are_added_and_corrected_in_a_running_network() {
        virt::error::clear_error_callback();
        let conn = Connect::open(Some("test:///default")).unwrap();
        let subnet = Subnet {
            network: Ipv4Addr::new(192, 168, 152, 0),
            prefix: 24,
        };
        let host = |vm: u8, last: u8| Reservation {
            mac: format!("52:54:00:00:0{vm}:02"),
            name: format!("vm{vm}"),
            ip: Ipv4Addr::new(192, 168, 152, last),
        };
        let name = "dpdkhost-rs-mgmt";
        ensure(
            &conn,
            "rs",
            name,
            &mgmt_xml(name, &subnet, &[host(1, 11), host(2, 12)]),
        )
        .unwrap();
        let read = || {
            let net = Network::lookup_by_name(&conn, name).unwrap();
            parse_mgmt(&net.get_xml_desc(0).unwrap())
        };
        let before = read();
        assert_eq!(before.address, Some(Ipv4Addr::new(192, 168, 152, 1)));
        assert_eq!(before.netmask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(before.hosts, [host(1, 11), host(2, 12)]);
        // vm3 is new; vm2 moves to .13, then vm3 takes .12 that vm2 left.
        reserve(&conn, name, &[host(1, 11), host(2, 13), host(3, 14)]).unwrap();
        let mut hosts = read().hosts;
        hosts.sort_by_key(|h| h.ip);
        assert_eq!(hosts, [host(1, 11), host(2, 13), host(3, 14)]);
        reserve(&conn, name, &[host(3, 11)]).unwrap();
        let mut hosts = read().hosts;
        hosts.sort_by_key(|h| h.ip);
        assert_eq!(
            hosts,
            [host(3, 11), host(2, 13)],
            "vm1's address went to vm3"
        );
        // vm1 takes .13 from vm2 (dropping vm2's reservation), then vm2 gets .12 anew.
        reserve(&conn, name, &[host(1, 13), host(2, 12)]).unwrap();
        let mut hosts = read().hosts;
        hosts.sort_by_key(|h| h.ip);
        assert_eq!(hosts, [host(3, 11), host(2, 12), host(1, 13)]);
        assert!(remove(&conn, name).unwrap());
    }
}
