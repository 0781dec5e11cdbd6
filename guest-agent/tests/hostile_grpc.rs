//! Hostile input: arbitrary field values at every RPC, in arbitrary order, plus
//! oversized messages and garbage on the socket. The agent answers every call with
//! a documented status (never an internal error or a panic), never exits, keeps the
//! one-workload rule, and its memory stays bounded.

mod grpc_common;

use std::io::Write;
use std::time::Duration;

use agent_proto::v1;
use agent_proto::v1::agent_client::AgentClient as RawClient;
use grpc_common::{Agent, AgentOptions};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tonic::transport::Channel;
use tonic::Code;

#[derive(Debug, Clone)]
enum Op {
    Info,
    Selftest(v1::SelftestRequest),
    PingPong(v1::PingPongRequest),
    Reflect,
    StopReflect,
    Bench(v1::BenchRequest),
    Stop,
    Telemetry(v1::TelemetryRequest),
}

fn ip_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("10.0.0.1".to_owned()),
        any::<[u8; 4]>().prop_map(|[a, b, c, d]| format!("{a}.{b}.{c}.{d}")),
        Just("255.255.255.255".to_owned()),
        Just("127.0.0.1".to_owned()),
        Just("::1".to_owned()),
        any::<u32>().prop_map(|n| n.to_string()),
        "\\PC{0,40}",
    ]
}

/// Mostly in the accepted range (so workloads really start), sometimes anything.
fn u64_in(range: std::ops::Range<u64>) -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => range,
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
}

fn u32_in(range: std::ops::Range<u32>) -> impl Strategy<Value = u32> {
    prop_oneof![
        8 => range,
        1 => Just(0u32),
        1 => Just(u32::MAX),
        1 => any::<u32>(),
    ]
}

fn mac_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(String::new()),
        2 => Just("52:54:00:00:00:02".to_owned()),
        1 => Just("ff:ff:ff:ff:ff:ff".to_owned()),
        1 => "\\PC{0,24}",
    ]
}

fn peer() -> impl Strategy<Value = String> {
    prop_oneof![3 => Just("10.0.0.1".to_owned()), 2 => ip_text()]
}

fn op() -> impl Strategy<Value = Op> {
    let selftest = (
        prop_oneof![3 => Just(String::new()), 1 => ip_text()],
        u64_in(1_000_000..500_000_000),
    )
        .prop_map(|(peer_ip, timeout_ns)| {
            Op::Selftest(v1::SelftestRequest {
                peer_ip,
                timeout_ns,
            })
        });
    let pingpong = (
        peer(),
        u64_in(1..5_000),
        u32_in(64..1515),
        u64_in(0..2_000_000),
        u32_in(1..1025),
        u64_in(1_000_000..100_000_000),
        any::<bool>(),
        (mac_text(), any::<bool>()),
    )
        .prop_map(
            |(
                peer_ip,
                count,
                size,
                interval_ns,
                window,
                timeout_ns,
                kernel,
                (peer_mac, through_dut),
            )| {
                Op::PingPong(v1::PingPongRequest {
                    peer_ip,
                    count,
                    size,
                    interval_ns,
                    window,
                    timeout_ns,
                    kernel,
                    peer_mac,
                    through_dut,
                })
            },
        );
    let bench = (
        prop_oneof![3 => 1..4i32, 1 => any::<i32>()],
        peer(),
        u32_in(64..1515),
        u64_in(0..1_000_000),
        u64_in(1..2_000_000_000),
        u64_in(1..100_000),
        u32_in(1..513),
        u64_in(1..1_000_000_000),
        u32_in(0..200_000),
        any::<bool>(),
        (mac_text(), any::<bool>()),
    )
        .prop_map(
            |(
                mode,
                peer_ip,
                size,
                rate_pps,
                duration_ns,
                count,
                burst,
                drain_ns,
                probe_rate_pps,
                probe_only,
                (peer_mac, through_dut),
            )| {
                Op::Bench(v1::BenchRequest {
                    mode,
                    peer_ip,
                    size,
                    rate_pps,
                    duration_ns,
                    count,
                    burst,
                    drain_ns,
                    probe_rate_pps,
                    probe_only,
                    peer_mac,
                    through_dut,
                })
            },
        );
    let telemetry = (
        prop_oneof![
            2 => Just("baseline".to_owned()),
            1 => Just("../../etc".to_owned()),
            1 => "\\PC{0,80}",
        ],
        prop_oneof![
            2 => Just("/ethdev/stats,0".to_owned()),
            1 => "\\PC{0,80}",
        ],
    )
        .prop_map(|(file_prefix, command)| {
            Op::Telemetry(v1::TelemetryRequest {
                file_prefix,
                command,
            })
        });
    prop_oneof![
        1 => Just(Op::Info),
        1 => telemetry,
        1 => selftest,
        4 => pingpong,
        2 => Just(Op::Reflect),
        1 => Just(Op::StopReflect),
        4 => bench,
        1 => Just(Op::Stop),
    ]
}

/// What the calls came back with, so the test can tell it exercised every path.
#[derive(Debug, Default)]
struct Tally {
    /// Calls that succeeded (streams that started a workload included).
    started: u64,
    invalid: u64,
    busy: u64,
    other: u64,
}

static TALLY: std::sync::Mutex<Tally> = std::sync::Mutex::new(Tally {
    started: 0,
    invalid: 0,
    busy: 0,
    other: 0,
});

fn tally(outcome: Result<(), &tonic::Status>) {
    let mut tally = TALLY.lock().unwrap();
    match outcome {
        Ok(()) => tally.started += 1,
        Err(status) if status.code() == Code::InvalidArgument => tally.invalid += 1,
        Err(status) if status.message().starts_with("busy: ") => tally.busy += 1,
        Err(_) => tally.other += 1,
    }
}

/// Codes the API documents for a call that did not succeed.
const DOCUMENTED: [Code; 6] = [
    Code::InvalidArgument,
    Code::FailedPrecondition,
    // Telemetry: no process at that prefix, or it failed to answer.
    Code::NotFound,
    Code::Unavailable,
    // Stop waits at most 10 s for a workload that cannot be interrupted (selftest).
    Code::DeadlineExceeded,
    // A stream we give up on.
    Code::Cancelled,
];

fn check(rpc: &str, status: &tonic::Status) -> Result<(), TestCaseError> {
    prop_assert!(
        DOCUMENTED.contains(&status.code()),
        "{rpc}: undocumented status {status:?}"
    );
    prop_assert!(!status.message().contains("panicked"), "{rpc}: {status:?}");
    if status.code() == Code::InvalidArgument {
        // "`field`: ..." names the field.
        prop_assert!(status.message().starts_with('`'), "{rpc}: {status:?}");
    }
    Ok(())
}

/// Reads a stream for a moment (a valid request may start a long workload), then
/// drops it, which cancels the workload.
async fn sample_stream<T>(
    rpc: &str,
    response: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> Result<(), TestCaseError> {
    let mut stream = match response {
        Ok(response) => response.into_inner(),
        Err(status) => {
            tally(Err(&status));
            return check(rpc, &status);
        }
    };
    tally(Ok(()));
    let read = async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(()),
                Err(status) => return check(rpc, &status),
            }
        }
    };
    match tokio::time::timeout(Duration::from_millis(200), read).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

async fn run(client: &mut RawClient<Channel>, op: Op) -> Result<(), TestCaseError> {
    let unary = |rpc: &'static str, result: Result<(), tonic::Status>| match result {
        Ok(()) => {
            tally(Ok(()));
            Ok(())
        }
        Err(status) => {
            tally(Err(&status));
            check(rpc, &status)
        }
    };
    match op {
        Op::Info => {
            client.info(v1::InfoRequest {}).await.map_err(|status| {
                TestCaseError::fail(format!("Info must always answer: {status:?}"))
            })?;
            Ok(())
        }
        Op::Selftest(request) => {
            let call = client.selftest(request);
            match tokio::time::timeout(Duration::from_millis(500), call).await {
                Ok(result) => unary("Selftest", result.map(drop)),
                Err(_) => Ok(()),
            }
        }
        Op::PingPong(request) => sample_stream("PingPong", client.ping_pong(request).await).await,
        Op::Bench(request) => sample_stream("Bench", client.bench(request).await).await,
        Op::Reflect => unary(
            "Reflect",
            client
                .reflect(v1::ReflectRequest { kernel: false })
                .await
                .map(drop),
        ),
        Op::StopReflect => unary(
            "StopReflect",
            client
                .stop_reflect(v1::StopReflectRequest {})
                .await
                .map(drop),
        ),
        Op::Stop => unary("Stop", client.stop(v1::StopRequest {}).await.map(drop)),
        Op::Telemetry(request) => unary("Telemetry", client.telemetry(request).await.map(drop)),
    }
}

#[test]
fn arbitrary_requests_never_break_the_agent() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let agent = Agent::start(AgentOptions {
        tls: false,
        ..AgentOptions::default()
    });
    let client = runtime.block_on(agent.serving());
    let raw = client.raw();
    // Warm up: one of each workload, so the baseline holds what a normal run holds.
    runtime.block_on(async {
        let mut raw = raw.clone();
        for op in [
            Op::PingPong(v1::PingPongRequest {
                peer_ip: "10.0.0.1".into(),
                count: 1000,
                ..Default::default()
            }),
            Op::Bench(v1::BenchRequest {
                mode: 3,
                peer_ip: "10.0.0.1".into(),
                count: 1000,
                ..Default::default()
            }),
            Op::Stop,
        ] {
            run(&mut raw, op).await.unwrap();
        }
    });
    let baseline = agent.rss_bytes();

    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..6), |ops| {
        runtime.block_on(async {
            let mut raw = raw.clone();
            for op in ops {
                run(&mut raw, op).await?;
            }
            // Whatever ran is stopped; the port is free again.
            let stopped = raw.stop(v1::StopRequest {}).await;
            if let Err(status) = &stopped {
                check("Stop", status)?;
            }
            let info = raw
                .info(v1::InfoRequest {})
                .await
                .map_err(|s| TestCaseError::fail(format!("Info: {s:?}")))?
                .into_inner();
            prop_assert_eq!(info.eal_state(), v1::EalState::Ready);
            Ok(())
        })?;
        prop_assert!(agent.is_running(), "the agent exited:\n{}", agent.log());
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}\nagent log:\n{}", agent.log());
    }

    // Oversized messages are refused before they are decoded.
    let huge = v1::PingPongRequest {
        peer_ip: "1".repeat(1 << 20),
        count: 1,
        ..Default::default()
    };
    let refused = runtime.block_on(raw.clone().ping_pong(huge));
    let status = refused.expect_err("a 1 MiB request is refused");
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );

    // Garbage on the socket: the connection dies, the agent does not.
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0xffu8; 4096][..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0",
    ] {
        let mut stream = std::net::TcpStream::connect(agent.addr).unwrap();
        let _ = stream.write_all(junk);
        drop(stream);
    }
    let info = runtime
        .block_on(raw.clone().info(v1::InfoRequest {}))
        .unwrap()
        .into_inner();
    assert_eq!(info.workload, "");
    assert!(agent.is_running(), "{}", agent.log());

    let after = agent.rss_bytes();
    assert!(
        after < baseline + (64 << 20),
        "resident set grew from {baseline} to {after} bytes"
    );
    println!("rss: {baseline} -> {after} bytes");
    let tally = TALLY.lock().unwrap();
    println!("{tally:?}");
    assert!(tally.started >= 5, "too few workloads started: {tally:?}");
    assert!(tally.invalid >= 5, "too few invalid requests: {tally:?}");
    assert!(tally.busy >= 1, "never hit a busy port: {tally:?}");
}
