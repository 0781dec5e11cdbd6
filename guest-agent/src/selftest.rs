//! Selftest: is this machine able to move packets with DPDK? Hugepages, the data
//! NIC's driver binding, EAL, mempool, port, link, and one real packet out and back.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::datapath::{DataPort, DataPortSpec, PortSelector};
use crate::devlock::DeviceLocks;
use crate::eal::Eal;
use crate::workload::{pingpong, PingPongLive, PingPongParams, StopSignal};

/// Kernel drivers DPDK's PCI PMDs can use.
const DPDK_PCI_DRIVERS: &[&str] = &["vfio-pci", "uio_pci_generic", "igb_uio"];

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, or why it failed.
    pub detail: String,
}

impl Check {
    /// A passed check.
    pub fn pass(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.to_owned(),
            ok: true,
            detail: detail.into(),
        }
    }

    /// A failed check.
    pub fn fail(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.to_owned(),
            ok: false,
            detail: detail.into(),
        }
    }
}

/// Every check of a selftest run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SelftestReport {
    /// Checks in the order they ran.
    pub checks: Vec<Check>,
}

impl SelftestReport {
    /// Whether every check passed (and there was at least one).
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|check| check.ok)
    }

    /// A plain-text table, one check per line, and a verdict line.
    pub fn render_table(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|check| check.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!("{:<width$}  {:<6}  DETAIL\n", "CHECK", "RESULT");
        for check in &self.checks {
            let result = if check.ok { "ok" } else { "FAIL" };
            let _ = writeln!(
                out,
                "{:<width$}  {:<6}  {}",
                check.name, result, check.detail
            );
        }
        let failed = self.checks.iter().filter(|check| !check.ok).count();
        let _ = if self.ok() {
            writeln!(out, "selftest passed ({} checks)", self.checks.len())
        } else {
            writeln!(
                out,
                "selftest FAILED ({failed} of {} checks)",
                self.checks.len()
            )
        };
        out
    }
}

fn meminfo_value(meminfo: &str, key: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Hugepages reserved and free, from /proc/meminfo.
pub fn hugepage_check() -> Check {
    let name = "hugepages";
    let meminfo = match std::fs::read_to_string("/proc/meminfo") {
        Ok(text) => text,
        Err(err) => return Check::fail(name, format!("reading /proc/meminfo: {err}")),
    };
    let total = meminfo_value(&meminfo, "HugePages_Total").unwrap_or(0);
    let free = meminfo_value(&meminfo, "HugePages_Free").unwrap_or(0);
    let size_kb = meminfo_value(&meminfo, "Hugepagesize").unwrap_or(0);
    let detail = format!("{free} of {total} free, {size_kb} kB each");
    if total == 0 {
        Check::fail(name, format!("{detail}: none reserved (vm.nr_hugepages)"))
    } else if free == 0 {
        Check::fail(name, format!("{detail}: all in use"))
    } else {
        Check::pass(name, detail)
    }
}

/// SSE4.2, which DPDK's x86 build requires.
pub fn cpu_check() -> Check {
    let name = "cpu";
    match std::fs::read_to_string("/proc/cpuinfo") {
        Ok(cpuinfo) => {
            let has_sse42 = cpuinfo
                .lines()
                .filter(|line| line.starts_with("flags"))
                .any(|line| line.split_whitespace().any(|flag| flag == "sse4_2"));
            if has_sse42 {
                Check::pass(name, "sse4_2 present")
            } else {
                Check::fail(
                    name,
                    "no sse4_2: DPDK cannot run (under TCG use cpu mode 'maximum')",
                )
            }
        }
        Err(err) => Check::fail(name, format!("reading /proc/cpuinfo: {err}")),
    }
}

/// Host checks that need no EAL: hugepages and CPU features.
pub fn system_checks() -> Vec<Check> {
    vec![hugepage_check(), cpu_check()]
}

/// Whether `device` looks like a PCI address (`0000:00:04.0`).
pub fn is_pci_address(device: &str) -> bool {
    let parts: Vec<&str> = device.split([':', '.']).collect();
    matches!(parts.as_slice(), [domain, bus, slot, function]
        if domain.len() == 4 && bus.len() == 2 && slot.len() == 2 && function.len() == 1
            && parts.iter().all(|part| part.chars().all(|c| c.is_ascii_hexdigit())))
}

/// Which kernel driver holds PCI device `bdf`, and whether DPDK can use it.
pub fn binding_check(bdf: &str) -> Check {
    let name = "device binding";
    let device_dir = Path::new("/sys/bus/pci/devices").join(bdf);
    if !device_dir.exists() {
        return Check::fail(name, format!("no PCI device {bdf}"));
    }
    match std::fs::read_link(device_dir.join("driver")) {
        Ok(link) => {
            let driver = link
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            if DPDK_PCI_DRIVERS.contains(&driver.as_str()) {
                Check::pass(name, format!("{bdf} bound to {driver}"))
            } else {
                Check::fail(
                    name,
                    format!(
                        "{bdf} bound to {driver} (kernel); DPDK needs one of {DPDK_PCI_DRIVERS:?}"
                    ),
                )
            }
        }
        Err(_) => Check::fail(
            name,
            format!("{bdf} has no driver; bind it to vfio-pci or uio_pci_generic"),
        ),
    }
}

/// Checks on an open data port: mempool, port started, link up within `timeout`, and
/// one real exchange of packets: ARP then three test frames, through the reflector at
/// `peer`, or (without a peer) to the port's own address, for a port that loops its
/// transmissions back (net_ring).
pub fn port_checks(port: &mut DataPort, peer: Option<Ipv4Addr>, timeout: Duration) -> Vec<Check> {
    let mut checks = Vec::new();
    let pool = port.mempool();
    let (available, size) = (pool.available(), pool.size());
    checks.push(if available > 0 {
        Check::pass("mempool", format!("{} mbufs, {available} free", size))
    } else {
        Check::fail("mempool", format!("all {size} mbufs in use"))
    });
    let details = port.details();
    let description = format!(
        "port {} {} ({}), mac {}, {}/{}",
        details.port_id,
        details.device,
        details.driver,
        crate::packet::format_mac(&details.mac),
        details.ip,
        details.prefix_len
    );
    checks.push(if port.port().is_started() {
        Check::pass("port start", description)
    } else {
        Check::fail("port start", format!("{description}: not started"))
    });
    match port.port().wait_link_up(timeout) {
        Ok(link) if link.up => checks.push(Check::pass(
            "link",
            format!("up, {} Mbit/s", link.speed_mbps),
        )),
        Ok(_) => checks.push(Check::fail("link", format!("down after {timeout:?}"))),
        Err(err) => checks.push(Check::fail("link", error_chain(&err))),
    }
    let target = peer.unwrap_or_else(|| port.ip());
    let params = PingPongParams {
        peer_mac: None,
        through_dut: false,
        peer_ip: target,
        count: 3,
        frame_size: crate::packet::MIN_FRAME_SIZE,
        interval: None,
        window: 1,
        timeout,
    };
    let via = if peer.is_some() {
        format!("via reflector {target}")
    } else {
        "looped back by the port".to_owned()
    };
    let name = "packet round trip";
    match pingpong(port, &params, &PingPongLive::default(), &StopSignal::new()) {
        Ok(report) if report.received == report.sent && report.sent == params.count => {
            checks.push(Check::pass(
                name,
                format!(
                    "{}/{} back {via}, rtt min {} ns, max {} ns",
                    report.received,
                    report.sent,
                    report.rtt.min(),
                    report.rtt.max()
                ),
            ));
        }
        Ok(report) => checks.push(Check::fail(
            name,
            format!(
                "{}/{} back {via} ({} lost)",
                report.received, report.sent, report.lost
            ),
        )),
        Err(err) => checks.push(Check::fail(name, format!("{via}: {}", error_chain(&err)))),
    }
    checks
}

pub use agent_proto::error_chain;

/// A whole selftest in a process that has not initialised EAL yet.
#[derive(Debug, Clone)]
pub struct StandaloneSelftest {
    /// EAL options.
    pub eal_args: Vec<String>,
    /// The data port; `None` when nobody said which (reported as a failed check).
    pub device: Option<PortSelector>,
    /// Local address on the data link.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// Reflector to bounce a packet off; `None` expects the port to loop back.
    pub peer: Option<Ipv4Addr>,
    /// Time allowed for link and replies.
    pub timeout: Duration,
    /// Whether to check hugepages (not needed with `--no-huge`).
    pub check_hugepages: bool,
}

impl StandaloneSelftest {
    /// The self-contained loopback selftest: no hugepages, no PCI, a net_ring port
    /// that returns what it sends. Runs on any Linux host.
    pub fn loopback() -> StandaloneSelftest {
        let prefix = format!("dpdk-agent-selftest-{}", std::process::id());
        StandaloneSelftest {
            eal_args: [
                "--no-huge",
                "--no-pci",
                "-l",
                "0",
                "--vdev=net_ring0",
                "-m",
                "128",
            ]
            .iter()
            .map(|arg| (*arg).to_owned())
            .chain([format!("--file-prefix={prefix}")])
            .collect(),
            device: Some(PortSelector::Name("net_ring0".to_owned())),
            // TEST-NET-1: documentation range, never routed.
            ip: Ipv4Addr::new(192, 0, 2, 1),
            prefix_len: 24,
            peer: None,
            timeout: Duration::from_secs(3),
            check_hugepages: false,
        }
    }

    /// Runs every check; stops early only where later checks cannot run.
    pub fn run(&self) -> SelftestReport {
        let mut report = SelftestReport::default();
        if self.check_hugepages {
            report.checks.push(hugepage_check());
        }
        report.checks.push(cpu_check());
        if let Some(PortSelector::Name(name)) = &self.device {
            if is_pci_address(name) {
                report.checks.push(binding_check(name));
            }
        }
        // Held until the port is closed, at the end of the run.
        let locks = DeviceLocks::for_eal_args(
            &self.eal_args,
            &crate::devlock::run_dir(),
            "dpdk-agent --selftest",
        );
        let _locks = match locks {
            Ok(locks) => {
                let devices = locks.devices();
                if !devices.is_empty() {
                    report
                        .checks
                        .push(Check::pass("device lock", devices.join(", ")));
                }
                locks
            }
            Err(error) => {
                report
                    .checks
                    .push(Check::fail("device lock", error_chain(&error)));
                return report;
            }
        };
        let eal = match Eal::init(&self.eal_args) {
            Ok(eal) => {
                report.checks.push(Check::pass(
                    "eal",
                    format!(
                        "{}, {} port(s), {}",
                        Eal::dpdk_version(),
                        eal.available_ports().len(),
                        if eal.has_hugepages() {
                            "hugepages"
                        } else {
                            "no hugepages"
                        }
                    ),
                ));
                eal
            }
            Err(err) => {
                report.checks.push(Check::fail("eal", error_chain(&err)));
                return report;
            }
        };
        let Some(device) = self.device.clone() else {
            report.checks.push(Check::fail(
                "data port",
                "no data device given (pass --device BDF or name and --ip ADDRESS/PREFIX)",
            ));
            return report;
        };
        let spec = DataPortSpec::new(device, self.ip, self.prefix_len);
        match DataPort::open(&eal, &spec) {
            Ok(mut port) => report
                .checks
                .extend(port_checks(&mut port, self.peer, self.timeout)),
            Err(err) => report
                .checks
                .push(Check::fail("data port", error_chain(&err))),
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses_are_recognised() {
        assert!(is_pci_address("0000:00:04.0"));
        assert!(is_pci_address("0000:af:1f.7"));
        assert!(!is_pci_address("net_ring0"));
        assert!(!is_pci_address("00:04.0"));
        assert!(!is_pci_address("0000:00:04"));
    }

    #[test]
    fn meminfo_values_are_parsed() {
        let text = "MemTotal: 100 kB\nHugePages_Total:      64\nHugePages_Free:  3\nHugepagesize: 2048 kB\n";
        assert_eq!(meminfo_value(text, "HugePages_Total"), Some(64));
        assert_eq!(meminfo_value(text, "HugePages_Free"), Some(3));
        assert_eq!(meminfo_value(text, "Hugepagesize"), Some(2048));
        assert_eq!(meminfo_value(text, "Missing"), None);
    }

    #[test]
    fn report_fails_on_any_failed_check() {
        let mut report = SelftestReport::default();
        assert!(!report.ok(), "an empty report proves nothing");
        report.checks.push(Check::pass("a", "fine"));
        assert!(report.ok());
        report.checks.push(Check::fail("b", "broken"));
        assert!(!report.ok());
        let table = report.render_table();
        assert!(table.contains("FAIL") && table.contains("broken") && table.contains("FAILED"));
    }
}
