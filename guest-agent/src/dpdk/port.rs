//! Ethernet ports: configure one rx and one tx queue, start, and stop + close on Drop.

use std::ffi::{c_char, CStr, CString};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk_sys as sys;
use serde::Serialize;

use crate::eal::{Eal, RteError};
use crate::mbuf::MbufBatch;
use crate::mempool::Mempool;

/// Why a port operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// No ethdev port has this name.
    #[error("no DPDK port named {name:?} (known ports: {known})")]
    NoSuchName {
        /// The name looked up.
        name: String,
        /// Names of the ports EAL knows, for the message.
        known: String,
    },
    /// No ethdev port has this id.
    #[error("no DPDK port with id {id} (EAL has {count} port(s))")]
    NoSuchId {
        /// The id looked up.
        id: u16,
        /// How many ports EAL has.
        count: usize,
    },
    /// A DPDK ethdev call failed.
    #[error("port {port}: {operation} failed")]
    Call {
        /// Port id.
        port: u16,
        /// What was being done, e.g. "rte_eth_dev_configure".
        operation: &'static str,
        /// What DPDK reported.
        #[source]
        cause: RteError,
    },
    /// A name cannot be passed to C.
    #[error("name {0:?} contains a NUL byte")]
    NameHasNul(String),
}

/// Queue sizes for [`Port::open`].
#[derive(Debug, Clone, Copy)]
pub struct PortConfig {
    /// Receive descriptors.
    pub rx_desc: u16,
    /// Transmit descriptors.
    pub tx_desc: u16,
}

/// Link state as the driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LinkStatus {
    /// Whether the link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Basic port counters (`rte_eth_stats_get`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the hardware dropped because the rx queue was full.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// Rx failures because no mbuf was free.
    pub rx_nombuf: u64,
}

/// A started ethdev port with one rx and one tx queue. Stopped and closed on Drop.
/// Rx and tx take `&mut self`: queue 0 is not safe to poll from two threads at once.
#[derive(Debug)]
pub struct Port {
    id: u16,
    name: String,
    driver: String,
    started: bool,
    /// The rx queue refills from this pool, so it must outlive the port.
    mempool: Arc<Mempool>,
}

fn check(port: u16, operation: &'static str, ret: i32) -> Result<i32, PortError> {
    if ret < 0 {
        Err(PortError::Call {
            port,
            operation,
            cause: RteError::from_return(ret),
        })
    } else {
        Ok(ret)
    }
}

/// Name of port `id` as DPDK knows it ("net_ring0", "0000:00:04.0").
pub fn port_name(id: u16) -> Option<String> {
    let mut buf = [0 as c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: buf has RTE_ETH_NAME_MAX_LEN bytes, the size DPDK writes at most.
    let ret = unsafe { sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
    if ret != 0 {
        return None;
    }
    // SAFETY: on success DPDK wrote a NUL-terminated name into buf.
    Some(
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Finds a port by its DPDK name.
pub fn port_id_by_name(eal: &Eal, name: &str) -> Result<u16, PortError> {
    let c_name = CString::new(name).map_err(|_| PortError::NameHasNul(name.to_owned()))?;
    let mut id = 0u16;
    // SAFETY: c_name is a valid C string; id is a valid out pointer.
    let ret = unsafe { sys::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut id) };
    if ret == 0 {
        return Ok(id);
    }
    let known = eal
        .available_ports()
        .into_iter()
        .filter_map(port_name)
        .collect::<Vec<_>>()
        .join(", ");
    Err(PortError::NoSuchName {
        name: name.to_owned(),
        known: if known.is_empty() {
            "none".into()
        } else {
            known
        },
    })
}

/// Creates two ports joined back to back through two rings: what one sends, the
/// other receives. A virtual wire inside one process, for tests. DPDK names the
/// ports `net_ring_<name>`; their ids are returned.
pub fn create_ring_pair(_eal: &Eal, name_a: &str, name_b: &str) -> Result<(u16, u16), PortError> {
    let ring = |suffix: &str| -> Result<*mut sys::rte_ring, PortError> {
        let ring_name = format!("{name_a}_{suffix}");
        let c_name =
            CString::new(ring_name.clone()).map_err(|_| PortError::NameHasNul(ring_name))?;
        // SAFETY: EAL is initialised; the name is a valid C string. Flags 0 give a
        // multi-producer/multi-consumer ring, safe whichever thread polls each side.
        let raw = unsafe { sys::rte_ring_create(c_name.as_ptr(), 4096, sys::SOCKET_ID_ANY, 0) };
        if raw.is_null() {
            Err(PortError::Call {
                port: u16::MAX,
                operation: "rte_ring_create",
                cause: RteError::last(),
            })
        } else {
            Ok(raw)
        }
    };
    let a_to_b = ring("ab")?;
    let b_to_a = ring("ba")?;
    let make = |name: &str, rx: *mut sys::rte_ring, tx: *mut sys::rte_ring| {
        let c_name = CString::new(name).map_err(|_| PortError::NameHasNul(name.to_owned()))?;
        // SAFETY: the rings are live for the rest of the process (never freed: the
        // ports reference them); arrays of one ring each.
        let id = unsafe { sys::rte_eth_from_rings(c_name.as_ptr(), &rx, 1, &tx, 1, 0) };
        if id < 0 {
            return Err(PortError::Call {
                port: u16::MAX,
                operation: "rte_eth_from_rings",
                cause: RteError::last(),
            });
        }
        u16::try_from(id).map_err(|_| PortError::Call {
            port: u16::MAX,
            operation: "rte_eth_from_rings",
            cause: RteError::from_return(-libc::ERANGE),
        })
    };
    Ok((make(name_a, b_to_a, a_to_b)?, make(name_b, a_to_b, b_to_a)?))
}

impl Port {
    /// Configures port `id` with one rx queue (filled from `mempool`) and one tx
    /// queue, and starts it.
    pub fn open(
        eal: &Eal,
        id: u16,
        mempool: Arc<Mempool>,
        config: PortConfig,
    ) -> Result<Port, PortError> {
        // SAFETY: EAL is initialised; any id may be checked.
        if unsafe { sys::rte_eth_dev_is_valid_port(id) } != 1 {
            return Err(PortError::NoSuchId {
                id,
                count: eal.available_ports().len(),
            });
        }
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: valid port; info is a valid out struct.
        check(id, "rte_eth_dev_info_get", unsafe {
            sys::rte_eth_dev_info_get(id, &mut info)
        })?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name points at the driver's static NUL-terminated name.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        let name = port_name(id).unwrap_or_default();

        let conf = sys::rte_eth_conf::default();
        // SAFETY: valid, stopped port; conf is a zeroed (all defaults) config.
        check(id, "rte_eth_dev_configure", unsafe {
            sys::rte_eth_dev_configure(id, 1, 1, &conf)
        })?;
        let (mut rx_desc, mut tx_desc) = (config.rx_desc, config.tx_desc);
        // SAFETY: valid port; the counts are in/out values DPDK clamps to its limits.
        check(id, "rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rx_desc, &mut tx_desc)
        })?;
        // SAFETY: valid port.
        let socket = u32::try_from(unsafe { sys::rte_eth_dev_socket_id(id) }).unwrap_or(0);
        // SAFETY: configured port; a null rx_conf means the driver's defaults; the
        // pool outlives the port because the port holds an Arc to it.
        check(id, "rte_eth_rx_queue_setup", unsafe {
            sys::rte_eth_rx_queue_setup(id, 0, rx_desc, socket, std::ptr::null(), mempool.as_ptr())
        })?;
        // SAFETY: configured port; null tx_conf means the driver's defaults.
        check(id, "rte_eth_tx_queue_setup", unsafe {
            sys::rte_eth_tx_queue_setup(id, 0, tx_desc, socket, std::ptr::null())
        })?;
        // SAFETY: configured port with its queues set up.
        check(id, "rte_eth_dev_start", unsafe {
            sys::rte_eth_dev_start(id)
        })?;
        tracing::info!(port = id, %name, %driver, rx_desc, tx_desc, "port started");
        Ok(Port {
            id,
            name,
            driver,
            started: true,
            mempool,
        })
    }

    /// Port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// DPDK device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Driver name, e.g. "net_virtio".
    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// Whether the port is started.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// The pool the rx queue fills from (also used for tx buffers).
    pub fn mempool(&self) -> &Arc<Mempool> {
        &self.mempool
    }

    /// MAC address.
    pub fn mac(&self) -> Result<[u8; 6], PortError> {
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid port; addr is a valid out struct.
        check(self.id, "rte_eth_macaddr_get", unsafe {
            sys::rte_eth_macaddr_get(self.id, &mut addr)
        })?;
        Ok(addr.addr_bytes)
    }

    /// MTU.
    pub fn mtu(&self) -> Result<u16, PortError> {
        let mut mtu = 0u16;
        // SAFETY: valid port; mtu is a valid out pointer.
        check(self.id, "rte_eth_dev_get_mtu", unsafe {
            sys::rte_eth_dev_get_mtu(self.id, &mut mtu)
        })?;
        Ok(mtu)
    }

    /// Current link state, without waiting.
    pub fn link(&self) -> Result<LinkStatus, PortError> {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: valid port; link is a valid out struct.
        check(self.id, "rte_eth_link_get_nowait", unsafe {
            sys::rte_eth_link_get_nowait(self.id, &mut link)
        })?;
        Ok(LinkStatus {
            up: link.link_status() != 0,
            speed_mbps: if link.link_speed == sys::RTE_ETH_SPEED_NUM_UNKNOWN {
                0
            } else {
                link.link_speed
            },
            full_duplex: link.link_duplex() != 0,
        })
    }

    /// Polls the link until it is up or `timeout` passes; returns the last state.
    pub fn wait_link_up(&self, timeout: Duration) -> Result<LinkStatus, PortError> {
        let deadline = Instant::now() + timeout;
        loop {
            let link = self.link()?;
            if link.up || Instant::now() >= deadline {
                return Ok(link);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Basic counters.
    pub fn stats(&self) -> Result<PortStats, PortError> {
        let mut raw = sys::rte_eth_stats::default();
        // SAFETY: valid port; raw is a valid out struct.
        check(self.id, "rte_eth_stats_get", unsafe {
            sys::rte_eth_stats_get(self.id, &mut raw)
        })?;
        Ok(PortStats {
            ipackets: raw.ipackets,
            opackets: raw.opackets,
            ibytes: raw.ibytes,
            obytes: raw.obytes,
            imissed: raw.imissed,
            ierrors: raw.ierrors,
            oerrors: raw.oerrors,
            rx_nombuf: raw.rx_nombuf,
        })
    }

    /// Zeroes the basic and extended counters.
    pub fn reset_stats(&mut self) -> Result<(), PortError> {
        // SAFETY: valid port.
        check(self.id, "rte_eth_stats_reset", unsafe {
            sys::rte_eth_stats_reset(self.id)
        })?;
        // Not every driver has xstats; a failure here is not worth reporting.
        // SAFETY: valid port.
        let _ = unsafe { sys::rte_eth_xstats_reset(self.id) };
        Ok(())
    }

    /// Extended counters by name, as the driver names them.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, PortError> {
        // SAFETY: valid port; a null array asks for the count.
        let count = check(self.id, "rte_eth_xstats_get_names", unsafe {
            sys::rte_eth_xstats_get_names(self.id, std::ptr::null_mut(), 0)
        })?;
        let size = usize::try_from(count).unwrap_or(0);
        let mut names = vec![sys::rte_eth_xstat_name::default(); size];
        let mut values = vec![sys::rte_eth_xstat::default(); size];
        let n = u32::try_from(size).unwrap_or(0);
        // SAFETY: names has room for `n` entries.
        let got_names = check(self.id, "rte_eth_xstats_get_names", unsafe {
            sys::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), n)
        })?;
        // SAFETY: values has room for `n` entries.
        let got_values = check(self.id, "rte_eth_xstats_get", unsafe {
            sys::rte_eth_xstats_get(self.id, values.as_mut_ptr(), n)
        })?;
        let used = usize::try_from(got_names.min(got_values))
            .unwrap_or(0)
            .min(size);
        Ok(values[..used]
            .iter()
            .filter_map(|value| {
                let name = names.get(usize::try_from(value.id).ok()?)?;
                // SAFETY: DPDK writes NUL-terminated names into the 64-byte arrays.
                let text = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                Some((text.to_string_lossy().into_owned(), value.value))
            })
            .collect())
    }

    /// Receives up to the batch's free room from queue 0; returns how many arrived.
    #[inline]
    pub fn rx_burst(&mut self, batch: &mut MbufBatch) -> usize {
        self.rx_burst_at_most(batch, usize::MAX)
    }

    /// Receives up to `max` packets (and at most the batch's free room) from queue 0;
    /// returns how many arrived.
    #[inline]
    pub fn rx_burst_at_most(&mut self, batch: &mut MbufBatch, max: usize) -> usize {
        let spare = batch.spare_slots();
        let room = u16::try_from(spare.len().min(max)).unwrap_or(u16::MAX);
        if room == 0 {
            return 0;
        }
        // SAFETY: started port, queue 0 exists, &mut self means no other thread
        // polls it; spare has `room` writable slots.
        let received = unsafe { sys::rte_eth_rx_burst(self.id, 0, spare.as_mut_ptr(), room) };
        // SAFETY: DPDK filled `received` slots with mbufs it handed over to us.
        unsafe { batch.commit_spare(usize::from(received)) };
        usize::from(received)
    }

    /// Sends the batch's mbufs from the front on queue 0; returns how many the driver
    /// took. The rest stay in the batch, in order, for a retry or to be freed.
    #[inline]
    pub fn tx_burst(&mut self, batch: &mut MbufBatch) -> usize {
        let held = batch.held_slots();
        let count = u16::try_from(held.len()).unwrap_or(u16::MAX);
        if count == 0 {
            return 0;
        }
        // SAFETY: started port, queue 0 exists, &mut self excludes concurrent use;
        // held has `count` owned mbufs.
        let sent = unsafe { sys::rte_eth_tx_burst(self.id, 0, held.as_mut_ptr(), count) };
        // SAFETY: the driver now owns (and will free) the first `sent` mbufs.
        unsafe { batch.consume_front(usize::from(sent)) };
        usize::from(sent)
    }

    /// Stops the port (it can be started again).
    pub fn stop(&mut self) -> Result<(), PortError> {
        if self.started {
            // SAFETY: valid started port.
            check(self.id, "rte_eth_dev_stop", unsafe {
                sys::rte_eth_dev_stop(self.id)
            })?;
            self.started = false;
        }
        Ok(())
    }

    /// Starts a stopped port.
    pub fn start(&mut self) -> Result<(), PortError> {
        if !self.started {
            // SAFETY: valid configured port.
            check(self.id, "rte_eth_dev_start", unsafe {
                sys::rte_eth_dev_start(self.id)
            })?;
            self.started = true;
        }
        Ok(())
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            tracing::warn!(port = self.id, error = %err, "stopping port");
        }
        // Closing releases the queues, returning their mbufs to the pool before the
        // pool's Arc is dropped. SAFETY: valid stopped port, not used after this.
        let ret = unsafe { sys::rte_eth_dev_close(self.id) };
        if ret < 0 {
            tracing::warn!(port = self.id, error = %RteError::from_return(ret), "closing port");
        }
    }
}
