//! Workload reports and port details -> proto messages.

use std::time::Duration;

use agent_proto::config::format_mac;
use agent_proto::v1;
use hdrhistogram::Histogram;

use crate::datapath::{PortDetails, PortStats};
use crate::selftest::Check;
use crate::workload::{
    BenchCounters, BenchReport, BenchSecond, PingPongReport, PingPongSnapshot, ReflectCounters,
};

pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// `count` events over `over`, per second.
pub(crate) fn rate(count: u64, over: Duration) -> u64 {
    let nanos = over.as_nanos().max(1);
    u64::try_from(u128::from(count) * 1_000_000_000 / nanos).unwrap_or(u64::MAX)
}

pub(crate) fn port_info(details: &PortDetails) -> v1::PortInfo {
    v1::PortInfo {
        port_id: u32::from(details.port_id),
        driver: details.driver.clone(),
        device: details.device.clone(),
        mac: format_mac(&details.mac),
        link_up: details.link_up,
        link_speed_mbps: details.speed_mbps,
        ip: format!("{}/{}", details.ip, details.prefix_len),
        mtu: u32::from(details.mtu),
    }
}

pub(crate) fn latency_summary(rtt: &Histogram<u64>) -> v1::LatencySummary {
    if rtt.is_empty() {
        return v1::LatencySummary::default();
    }
    v1::LatencySummary {
        min_ns: rtt.min(),
        p50_ns: rtt.value_at_quantile(0.5),
        p90_ns: rtt.value_at_quantile(0.9),
        p99_ns: rtt.value_at_quantile(0.99),
        p999_ns: rtt.value_at_quantile(0.999),
        max_ns: rtt.max(),
        mean_ns: rtt.mean(),
        stdev_ns: rtt.stdev(),
    }
}

pub(crate) fn pingpong_progress(snapshot: &PingPongSnapshot) -> v1::PingPongProgress {
    v1::PingPongProgress {
        sent: snapshot.sent,
        received: snapshot.received,
        lost: snapshot.lost,
        last_rtt_ns: snapshot.last_rtt_ns,
        elapsed_ns: nanos(snapshot.elapsed),
    }
}

pub(crate) fn pingpong_result(
    report: &PingPongReport,
) -> Result<v1::PingPongResult, agent_proto::histogram::HistogramCodecError> {
    Ok(v1::PingPongResult {
        sent: report.sent,
        received: report.received,
        lost: report.lost,
        duplicates: report.duplicates,
        reordered: report.reordered,
        elapsed_ns: nanos(report.elapsed),
        rtt: Some(latency_summary(&report.rtt)),
        histogram: agent_proto::histogram::encode(&report.rtt)?,
        peer_mac: format_mac(&report.peer_mac),
        size: u32::from(report.frame_size),
    })
}

pub(crate) fn reflect_counters(counters: &ReflectCounters) -> v1::ReflectCounters {
    v1::ReflectCounters {
        received: counters.received,
        reflected: counters.reflected,
        arp_replies: counters.arp_replies,
        ignored: counters.ignored,
    }
}

pub(crate) fn bench_counters(counters: &BenchCounters) -> v1::BenchCounters {
    v1::BenchCounters {
        tx_packets: counters.tx_packets,
        tx_bytes: counters.tx_bytes,
        tx_ring_full: counters.tx_ring_full,
        rx_packets: counters.rx_packets,
        rx_bytes: counters.rx_bytes,
        rx_seq_gaps: counters.rx_seq_gaps,
        rx_reordered: counters.rx_reordered,
        rx_other: counters.rx_other,
        elapsed_ns: nanos(counters.elapsed),
        send_ns: nanos(counters.send_elapsed),
        probes_sent: counters.probes_sent,
        probes_returned: counters.probes_returned,
        probes_reflected: counters.probes_reflected,
    }
}

pub(crate) fn bench_second(second: &BenchSecond) -> v1::BenchProgress {
    v1::BenchProgress {
        second: second.second,
        tx_pps: second.tx_pps,
        rx_pps: second.rx_pps,
        total: Some(bench_counters(&second.total)),
    }
}

pub(crate) fn port_counters(stats: &PortStats) -> v1::PortCounters {
    v1::PortCounters {
        ipackets: stats.ipackets,
        opackets: stats.opackets,
        ibytes: stats.ibytes,
        obytes: stats.obytes,
        imissed: stats.imissed,
        ierrors: stats.ierrors,
        oerrors: stats.oerrors,
        rx_nombuf: stats.rx_nombuf,
    }
}

pub(crate) fn bench_result(report: &BenchReport) -> v1::BenchResult {
    v1::BenchResult {
        counters: Some(bench_counters(&report.counters)),
        port: Some(port_counters(&report.port)),
        xstats: report
            .xstats
            .iter()
            .map(|(name, value)| v1::Xstat {
                name: name.clone(),
                value: *value,
            })
            .collect(),
        per_second: report.per_second.iter().map(bench_second).collect(),
        probe_rtt_histogram: if report.probe_rtt.is_empty() {
            Vec::new()
        } else {
            agent_proto::histogram::encode(&report.probe_rtt).unwrap_or_default()
        },
    }
}

pub(crate) fn selftest_check(check: &Check) -> v1::SelftestCheck {
    v1::SelftestCheck {
        name: check.name.clone(),
        ok: check.ok,
        detail: check.detail.clone(),
    }
}

/// What ReleasePort handed over, for its reply.
pub(crate) fn released(released: &crate::handover::Released) -> v1::ReleasePortReply {
    use crate::handover::ReleaseTarget;
    let is_pci = released.eal_args.iter().any(|arg| arg == "-a") || !released.ifname.is_empty();
    v1::ReleasePortReply {
        to: match released.to {
            ReleaseTarget::Kernel => v1::ReleaseTo::Kernel,
            ReleaseTarget::DpdkProcess => v1::ReleaseTo::DpdkProcess,
        } as i32,
        ifname: released.ifname.clone(),
        ip: released.cidr.clone(),
        pci_address: if is_pci {
            released.device.clone()
        } else {
            String::new()
        },
        mac: released.mac.clone(),
        eal_args: released.eal_args.clone(),
        free_hugepages: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_of_the_real_interval() {
        assert_eq!(rate(1000, Duration::from_secs(1)), 1000);
        assert_eq!(rate(1500, Duration::from_millis(1500)), 1000);
        assert_eq!(rate(5, Duration::ZERO), 5_000_000_000);
        assert_eq!(rate(u64::MAX, Duration::from_nanos(1)), u64::MAX);
    }
}
