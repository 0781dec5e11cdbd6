//! Request fields -> workload parameters. Every field is checked here with the
//! range the proto documents; a bad one is INVALID_ARGUMENT naming the field and
//! its accepted range. The workloads' own `validate()` runs after, for rules that
//! tie fields together.

use std::net::Ipv4Addr;
use std::time::Duration;

use agent_proto::v1;
use tonic::Status;

use crate::workload::{BenchMode, BenchParams, InvalidParam, PingPongParams};

/// Frame sizes without FCS, as dpdk-testpmd's `--txpkts`.
pub(crate) const FRAME_SIZES: std::ops::RangeInclusive<u64> = 64..=1514;
const DEFAULT_FRAME_SIZE: u16 = 64;
/// The proto says 100000000; the initiator keeps 9 bytes of state per packet, so the
/// workload caps a run at 10 million (90 MB) to keep the agent's memory bounded.
const MAX_PINGPONG_COUNT: u64 = crate::workload::pingpong::MAX_COUNT;
const MAX_WINDOW: u64 = 1024;
const MAX_INTERVAL_NS: u64 = 10_000_000_000;
const TIMEOUT_RANGE_NS: std::ops::RangeInclusive<u64> = 1_000_000..=60_000_000_000;
const DEFAULT_PINGPONG_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_RATE_PPS: u64 = 100_000_000;
const MAX_DURATION_NS: u64 = 3_600_000_000_000;
const DEFAULT_BENCH_DURATION: Duration = Duration::from_secs(10);
const MAX_BENCH_COUNT: u64 = 1_000_000_000_000;
// The workload keeps a burst in one fixed-size batch.
const BURSTS: std::ops::RangeInclusive<u64> = 1..=crate::mbuf::MAX_BURST as u64;
const DEFAULT_BURST: u16 = 32;
const MAX_DRAIN_NS: u64 = 60_000_000_000;
const DEFAULT_DRAIN: Duration = Duration::from_millis(500);
const DEFAULT_SELFTEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Selftest cannot be stopped half-way: keep it short.
const SELFTEST_TIMEOUT_RANGE_NS: std::ops::RangeInclusive<u64> = 1_000_000..=10_000_000_000;

fn invalid(field: &str, message: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("`{field}`: {message}"))
}

/// INVALID_ARGUMENT naming `field`, for checks made outside this module.
pub(crate) fn invalid_field(field: &str, message: impl std::fmt::Display) -> Status {
    invalid(field, message)
}

/// The workloads' own complaints, in the same shape.
pub(crate) fn invalid_param(error: InvalidParam) -> Status {
    invalid(error.field, error.message)
}

fn in_range(
    field: &str,
    value: u64,
    range: std::ops::RangeInclusive<u64>,
    unit: &str,
) -> Result<u64, Status> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            field,
            format!(
                "must be {}..={}{unit}, got {value}",
                range.start(),
                range.end()
            ),
        ))
    }
}

fn frame_size(size: u32) -> Result<u16, Status> {
    if size == 0 {
        return Ok(DEFAULT_FRAME_SIZE);
    }
    let size = in_range("size", u64::from(size), FRAME_SIZES, " bytes (0 = 64)")?;
    Ok(u16::try_from(size).expect("range fits u16"))
}

/// A unicast IPv4 address a workload can talk to.
fn peer_ip(field: &str, text: &str) -> Result<Ipv4Addr, Status> {
    let expected = "must be a unicast IPv4 address like 10.0.1.6";
    let ip: Ipv4Addr = text
        .trim()
        .parse()
        .map_err(|_| invalid(field, format!("{expected}, got {text:?}")))?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
        return Err(invalid(field, format!("{expected}, got {ip}")));
    }
    Ok(ip)
}

/// A peer for kernel sockets: the kernel routes loopback addresses too.
fn kernel_peer_ip(field: &str, text: &str) -> Result<Ipv4Addr, Status> {
    let ip: Ipv4Addr = text.trim().parse().map_err(|_| {
        invalid(
            field,
            format!("must be a unicast IPv4 address like 10.0.1.6, got {text:?}"),
        )
    })?;
    if ip.is_loopback() {
        return Ok(ip);
    }
    peer_ip(field, text)
}

fn timeout(
    field: &str,
    ns: u64,
    default: Duration,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, Status> {
    if ns == 0 {
        return Ok(default);
    }
    in_range(field, ns, range, " ns (0 = default)").map(Duration::from_nanos)
}

/// PingPongRequest -> PingPongParams.
pub(crate) fn pingpong(request: &v1::PingPongRequest) -> Result<PingPongParams, Status> {
    if request.peer_ip.is_empty() {
        return Err(invalid(
            "peer_ip",
            "required: the reflector's data address, like 10.0.1.6",
        ));
    }
    if request.kernel && (request.through_dut || !request.peer_mac.is_empty()) {
        return Err(invalid(
            "through_dut",
            "and peer_mac are for DPDK ports only, not with kernel",
        ));
    }
    let params = PingPongParams {
        peer_ip: if request.kernel {
            kernel_peer_ip("peer_ip", &request.peer_ip)?
        } else {
            peer_ip("peer_ip", &request.peer_ip)?
        },
        count: in_range("count", request.count, 1..=MAX_PINGPONG_COUNT, "")?,
        frame_size: frame_size(request.size)?,
        interval: match request.interval_ns {
            0 => None,
            ns => Some(Duration::from_nanos(in_range(
                "interval_ns",
                ns,
                0..=MAX_INTERVAL_NS,
                " ns",
            )?)),
        },
        window: match request.window {
            0 => 1,
            window => u32::try_from(in_range(
                "window",
                u64::from(window),
                1..=MAX_WINDOW,
                " (0 = 1)",
            )?)
            .expect("range fits u32"),
        },
        timeout: timeout(
            "timeout_ns",
            request.timeout_ns,
            DEFAULT_PINGPONG_TIMEOUT,
            TIMEOUT_RANGE_NS,
        )?,
        peer_mac: peer_mac(&request.peer_mac)?,
        through_dut: request.through_dut,
    };
    params.validate().map_err(invalid_param)?;
    Ok(params)
}

/// An optional MAC field: empty = none.
fn peer_mac(text: &str) -> Result<Option<crate::packet::MacAddr>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    crate::packet::parse_mac(text)
        .map(Some)
        .map_err(|error| invalid("peer_mac", format!("{error} (like 52:54:00:12:34:56)")))
}

fn bench_mode(mode: i32) -> Result<BenchMode, Status> {
    match v1::BenchMode::try_from(mode) {
        Ok(v1::BenchMode::Tx) => Ok(BenchMode::Tx),
        Ok(v1::BenchMode::Rx) => Ok(BenchMode::Rx),
        Ok(v1::BenchMode::Both) => Ok(BenchMode::Both),
        _ => Err(invalid(
            "mode",
            format!(
                "must be BENCH_MODE_TX (1), BENCH_MODE_RX (2) or BENCH_MODE_BOTH (3), got {mode}"
            ),
        )),
    }
}

/// BenchRequest -> BenchParams.
pub(crate) fn bench(request: &v1::BenchRequest) -> Result<BenchParams, Status> {
    let mode = bench_mode(request.mode)?;
    let peer_ip = match (mode, request.peer_ip.is_empty()) {
        (BenchMode::Rx, true) => None,
        (_, true) => {
            return Err(invalid(
                "peer_ip",
                "required for BENCH_MODE_TX and BENCH_MODE_BOTH: the receiver's data address, like 10.0.1.6",
            ))
        }
        (_, false) => Some(peer_ip("peer_ip", &request.peer_ip)?),
    };
    let count = match request.count {
        0 => None,
        count => Some(in_range(
            "count",
            count,
            1..=MAX_BENCH_COUNT,
            " (0 = no limit)",
        )?),
    };
    let duration = match (request.duration_ns, count) {
        (0, None) => Some(DEFAULT_BENCH_DURATION),
        (0, Some(_)) => None,
        (ns, _) => Some(Duration::from_nanos(in_range(
            "duration_ns",
            ns,
            1..=MAX_DURATION_NS,
            " ns (0 = 10 s, or until `count` when it is set)",
        )?)),
    };
    let params = BenchParams {
        through_dut: request.through_dut,
        mode,
        peer_ip,
        peer_mac: peer_mac(&request.peer_mac)?,
        frame_size: frame_size(request.size)?,
        rate_pps: match request.rate_pps {
            0 => None,
            pps => Some(in_range(
                "rate_pps",
                pps,
                1..=MAX_RATE_PPS,
                " (0 = as fast as possible)",
            )?),
        },
        duration,
        count,
        burst: match request.burst {
            0 => DEFAULT_BURST,
            burst => u16::try_from(in_range("burst", u64::from(burst), BURSTS, " (0 = 32)")?)
                .expect("range fits u16"),
        },
        drain: match request.drain_ns {
            0 => DEFAULT_DRAIN,
            ns => Duration::from_nanos(in_range(
                "drain_ns",
                ns,
                1..=MAX_DRAIN_NS,
                " ns (0 = 500 ms)",
            )?),
        },
        probe_rate_pps: match request.probe_rate_pps {
            0 => None,
            rate => Some(rate),
        },
        probe_only: request.probe_only,
    };
    params.validate().map_err(invalid_param)?;
    Ok(params)
}

/// SelftestRequest -> (peer, timeout).
pub(crate) fn selftest(
    request: &v1::SelftestRequest,
) -> Result<(Option<Ipv4Addr>, Duration), Status> {
    let peer = if request.peer_ip.is_empty() {
        None
    } else {
        Some(peer_ip("peer_ip", &request.peer_ip)?)
    };
    let timeout = timeout(
        "timeout_ns",
        request.timeout_ns,
        DEFAULT_SELFTEST_TIMEOUT,
        SELFTEST_TIMEOUT_RANGE_NS,
    )?;
    Ok((peer, timeout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn good_pingpong() -> v1::PingPongRequest {
        v1::PingPongRequest {
            peer_ip: "10.0.1.6".into(),
            count: 1000,
            ..Default::default()
        }
    }

    fn message(status: Status) -> String {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        status.message().to_owned()
    }

    #[test]
    fn pingpong_defaults() {
        let params = pingpong(&good_pingpong()).unwrap();
        assert_eq!(params.frame_size, 64);
        assert_eq!(params.window, 1);
        assert_eq!(params.interval, None);
        assert_eq!(params.timeout, Duration::from_secs(1));
    }

    #[test]
    fn pingpong_fields_are_named_with_their_range() {
        let cases: Vec<(v1::PingPongRequest, &str)> = vec![
            (
                v1::PingPongRequest {
                    count: 0,
                    ..good_pingpong()
                },
                "`count`: must be 1..=10000000, got 0",
            ),
            (
                v1::PingPongRequest {
                    size: 63,
                    ..good_pingpong()
                },
                "`size`: must be 64..=1514",
            ),
            (
                v1::PingPongRequest {
                    size: 1515,
                    ..good_pingpong()
                },
                "got 1515",
            ),
            (
                v1::PingPongRequest {
                    window: 1025,
                    ..good_pingpong()
                },
                "`window`: must be 1..=1024",
            ),
            (
                v1::PingPongRequest {
                    peer_ip: "10.0.1".into(),
                    ..good_pingpong()
                },
                "`peer_ip`",
            ),
            (
                v1::PingPongRequest {
                    peer_ip: "255.255.255.255".into(),
                    ..good_pingpong()
                },
                "`peer_ip`: must be a unicast",
            ),
            (
                v1::PingPongRequest {
                    peer_ip: String::new(),
                    ..good_pingpong()
                },
                "`peer_ip`: required",
            ),
            (
                v1::PingPongRequest {
                    timeout_ns: 5,
                    ..good_pingpong()
                },
                "`timeout_ns`: must be 1000000..=60000000000",
            ),
            (
                v1::PingPongRequest {
                    interval_ns: u64::MAX,
                    ..good_pingpong()
                },
                "`interval_ns`",
            ),
        ];
        for (request, expected) in cases {
            let text = message(pingpong(&request).unwrap_err());
            assert!(
                text.contains(expected),
                "{text:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn bench_modes_and_defaults() {
        let rx = bench(&v1::BenchRequest {
            mode: v1::BenchMode::Rx as i32,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(rx.peer_ip, None);
        assert_eq!(rx.duration, Some(Duration::from_secs(10)));
        assert_eq!(rx.burst, 32);
        assert_eq!(rx.drain, Duration::from_millis(500));
        let tx = bench(&v1::BenchRequest {
            mode: v1::BenchMode::Tx as i32,
            peer_ip: "10.0.1.6".into(),
            count: 5000,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(tx.duration, None);
        assert_eq!(tx.count, Some(5000));
        for mode in [0, 4, -1] {
            let text = message(
                bench(&v1::BenchRequest {
                    mode,
                    ..Default::default()
                })
                .unwrap_err(),
            );
            assert!(text.starts_with("`mode`:"), "{text}");
        }
        let text = message(
            bench(&v1::BenchRequest {
                mode: v1::BenchMode::Both as i32,
                ..Default::default()
            })
            .unwrap_err(),
        );
        assert!(text.starts_with("`peer_ip`: required"), "{text}");
        let text = message(
            bench(&v1::BenchRequest {
                mode: v1::BenchMode::Tx as i32,
                peer_ip: "10.0.1.6".into(),
                burst: 65,
                ..Default::default()
            })
            .unwrap_err(),
        );
        assert!(text.contains("`burst`: must be 1..=64"), "{text}");
        let text = message(
            bench(&v1::BenchRequest {
                mode: v1::BenchMode::Tx as i32,
                peer_ip: "10.0.1.6".into(),
                rate_pps: 100_000_001,
                ..Default::default()
            })
            .unwrap_err(),
        );
        assert!(text.contains("`rate_pps`"), "{text}");
        let text = message(
            bench(&v1::BenchRequest {
                mode: v1::BenchMode::Tx as i32,
                peer_ip: "10.0.1.6".into(),
                duration_ns: 3_600_000_000_001,
                ..Default::default()
            })
            .unwrap_err(),
        );
        assert!(text.contains("`duration_ns`"), "{text}");
    }
}
