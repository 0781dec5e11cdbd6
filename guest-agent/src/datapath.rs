//! A data port ready for workloads: mempool + started port + the local IP and MAC.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::eal::Eal;
use crate::mempool::{Mempool, MempoolError};
use crate::packet::MacAddr;
use crate::port::{port_id_by_name, Port, PortConfig, PortError};

pub use crate::port::{LinkStatus, PortStats};

/// Which ethdev port to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSelector {
    /// By port id.
    Id(u16),
    /// By DPDK device name: "net_ring0", "net_memif0", "0000:00:04.0".
    Name(String),
}

impl std::fmt::Display for PortSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortSelector::Id(id) => write!(f, "port {id}"),
            PortSelector::Name(name) => write!(f, "{name}"),
        }
    }
}

impl std::str::FromStr for PortSelector {
    type Err = std::convert::Infallible;

    /// A bare number is a port id; anything else is a device name.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text.parse::<u16>() {
            Ok(id) => PortSelector::Id(id),
            Err(_) => PortSelector::Name(text.to_owned()),
        })
    }
}

/// What [`DataPort::open`] needs.
#[derive(Debug, Clone)]
pub struct DataPortSpec {
    /// The port.
    pub device: PortSelector,
    /// Local IPv4 address on the data link (answered in ARP, source of test traffic).
    pub ip: Ipv4Addr,
    /// Prefix length of the data network.
    pub prefix_len: u8,
    /// Receive descriptors.
    pub rx_desc: u16,
    /// Transmit descriptors.
    pub tx_desc: u16,
    /// Mbufs in the port's pool.
    pub mbufs: u32,
}

impl DataPortSpec {
    /// A spec with default queue and pool sizes (1024 descriptors each, 8191 mbufs:
    /// about 18 MB, small enough for `--no-huge -m 128`).
    pub fn new(device: PortSelector, ip: Ipv4Addr, prefix_len: u8) -> DataPortSpec {
        DataPortSpec {
            device,
            ip,
            prefix_len,
            rx_desc: 1024,
            tx_desc: 1024,
            mbufs: 8191,
        }
    }
}

/// Why a data port could not be opened or queried.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    /// The spec is unusable.
    #[error("invalid data port spec: {0}")]
    InvalidSpec(String),
    /// The mbuf pool could not be created.
    #[error("creating the mbuf pool for {device}")]
    Mempool {
        /// Which device.
        device: PortSelector,
        /// Cause.
        #[source]
        cause: MempoolError,
    },
    /// A port operation failed.
    #[error("data port {device}")]
    Port {
        /// Which device.
        device: PortSelector,
        /// Cause.
        #[source]
        cause: PortError,
    },
}

/// What a data port is, for display and the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortDetails {
    /// ethdev port id.
    pub port_id: u16,
    /// Driver name, e.g. "net_virtio".
    pub driver: String,
    /// DPDK device name, e.g. "0000:00:04.0".
    pub device: String,
    /// MAC address.
    pub mac: MacAddr,
    /// Link up.
    pub link_up: bool,
    /// Link speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
    /// MTU.
    pub mtu: u16,
    /// Local IPv4 address.
    pub ip: Ipv4Addr,
    /// Prefix length.
    pub prefix_len: u8,
}

/// A started port with its own mbuf pool and local addresses: what workloads run on.
/// The port is stopped and closed on Drop, then the pool freed.
#[derive(Debug)]
pub struct DataPort {
    // Field order matters: the port is dropped (closed) before its pool.
    port: Port,
    ip: Ipv4Addr,
    prefix_len: u8,
    mac: MacAddr,
}

/// Distinguishes pool names when a port is opened more than once in a process.
static POOL_SERIAL: AtomicU32 = AtomicU32::new(0);

impl DataPort {
    /// Finds the port, creates its pool, configures one rx + one tx queue, starts it.
    pub fn open(eal: &Eal, spec: &DataPortSpec) -> Result<DataPort, DatapathError> {
        if spec.prefix_len > 32 {
            return Err(DatapathError::InvalidSpec(format!(
                "prefix length {} is above 32",
                spec.prefix_len
            )));
        }
        if spec.ip.is_unspecified() || spec.ip.is_broadcast() || spec.ip.is_multicast() {
            return Err(DatapathError::InvalidSpec(format!(
                "{} cannot be a port's address",
                spec.ip
            )));
        }
        // Room for both rings full plus bursts in flight, or rx stalls.
        let needed = u32::from(spec.rx_desc) + u32::from(spec.tx_desc) + 512;
        if spec.mbufs < needed {
            return Err(DatapathError::InvalidSpec(format!(
                "{} mbufs cannot fill {} rx + {} tx descriptors (need at least {needed})",
                spec.mbufs, spec.rx_desc, spec.tx_desc
            )));
        }
        let port_err = |cause| DatapathError::Port {
            device: spec.device.clone(),
            cause,
        };
        let id = match &spec.device {
            PortSelector::Id(id) => *id,
            PortSelector::Name(name) => port_id_by_name(eal, name).map_err(port_err)?,
        };
        let serial = POOL_SERIAL.fetch_add(1, Ordering::Relaxed);
        let pool_name = format!("dp{id}_{serial}");
        let pool = Mempool::create(eal, &pool_name, spec.mbufs).map_err(|cause| {
            DatapathError::Mempool {
                device: spec.device.clone(),
                cause,
            }
        })?;
        let config = PortConfig {
            rx_desc: spec.rx_desc,
            tx_desc: spec.tx_desc,
        };
        let port = Port::open(eal, id, Arc::new(pool), config).map_err(port_err)?;
        let mac = port.mac().map_err(port_err)?;
        Ok(DataPort {
            port,
            ip: spec.ip,
            prefix_len: spec.prefix_len,
            mac,
        })
    }

    /// Local IPv4 address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Local MAC.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The underlying port (rx/tx bursts, link).
    pub fn port(&self) -> &Port {
        &self.port
    }

    /// The underlying port, for bursts.
    pub fn port_mut(&mut self) -> &mut Port {
        &mut self.port
    }

    /// The mbuf pool.
    pub fn mempool(&self) -> &Mempool {
        self.port.mempool()
    }

    fn port_error(&self, cause: PortError) -> DatapathError {
        DatapathError::Port {
            device: PortSelector::Id(self.port.id()),
            cause,
        }
    }

    /// Identity, addresses and link state.
    pub fn details(&self) -> PortDetails {
        let link = self.port.link().unwrap_or(LinkStatus {
            up: false,
            speed_mbps: 0,
            full_duplex: false,
        });
        PortDetails {
            port_id: self.port.id(),
            driver: self.port.driver().to_owned(),
            device: self.port.name().to_owned(),
            mac: self.mac,
            link_up: link.up,
            speed_mbps: link.speed_mbps,
            mtu: self.port.mtu().unwrap_or(0),
            ip: self.ip,
            prefix_len: self.prefix_len,
        }
    }

    /// Link state now.
    pub fn link(&self) -> Result<LinkStatus, DatapathError> {
        self.port.link().map_err(|cause| self.port_error(cause))
    }

    /// Basic counters.
    pub fn stats(&self) -> Result<PortStats, DatapathError> {
        self.port.stats().map_err(|cause| self.port_error(cause))
    }

    /// Extended counters.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, DatapathError> {
        self.port.xstats().map_err(|cause| self.port_error(cause))
    }

    /// Zeroes the counters.
    pub fn reset_stats(&mut self) -> Result<(), DatapathError> {
        let result = self.port.reset_stats();
        result.map_err(|cause| self.port_error(cause))
    }

    /// Whether `ip` is on this port's network.
    pub fn is_local_network(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.ip) & mask
    }
}
