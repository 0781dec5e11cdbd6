//! Two agents over a real link (net_memif between two processes, the closest
//! host-side analogue to two VMs), driven over gRPC with mutual TLS; and an agent
//! against the same workload run directly from the command line: the counts agree.

mod grpc_common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use agent_proto::client::{AgentClient, ClientError};
use agent_proto::v1;
use grpc_common::{memif, memif_pair, memif_server};
use tokio::task::JoinHandle;

const SERVER_IP: &str = "10.8.0.2";
const CLIENT_IP: &str = "10.8.0.1";

/// The same workload, run directly by `dpdk-agent <workload> ... --json`.
fn direct(args: &[&str], socket: &Path, role: &str, ip: &str) -> Output {
    let eal = format!(
        "--no-huge --no-pci -l 0 -m 128 --file-prefix=direct-{}-{role} --vdev={}",
        std::process::id(),
        memif(socket, role)
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_dpdk-agent"));
    command
        .args(args)
        .args([
            "--eal",
            &eal,
            "--device",
            "net_memif0",
            "--ip",
            &format!("{ip}/24"),
            "--json",
        ])
        .stdin(Stdio::null());
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A counted Rx bench started on `receiver`, in its own task: running (Info shows
/// it) when this returns, so the sender's first frames are counted.
async fn receiving(
    receiver: &mut AgentClient,
    count: u64,
) -> JoinHandle<Result<v1::BenchResult, ClientError>> {
    let mut client = receiver.clone();
    let bench = tokio::spawn(async move {
        let request = v1::BenchRequest {
            mode: v1::BenchMode::Rx.into(),
            count,
            duration_ns: 30_000_000_000,
            ..Default::default()
        };
        client.bench(request, |_| {}).await
    });
    while !receiver.info().await.unwrap().workload.starts_with("bench") {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bench
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pingpong_and_bench_between_two_agents() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("link.sock");
    let (server, client) = memif_pair(&socket, SERVER_IP, CLIENT_IP);
    let mut reflector = server.serving().await;
    let mut initiator = client.serving().await;

    // Ping-pong through the peer's reflector.
    let (result, counters) =
        grpc_common::pingpong_through_reflector(&mut initiator, &mut reflector, SERVER_IP, 2000)
            .await;
    assert_eq!(result.sent, 2000, "{result:?}");
    assert_eq!(result.received, 2000, "{result:?}");
    assert_eq!(result.lost, 0);
    let server_mac = reflector.info().await.unwrap().ports[0].mac.clone();
    assert_eq!(result.peer_mac, server_mac);
    assert_eq!(counters.reflected, 2000, "{counters:?}");
    assert!(counters.arp_replies >= 1, "{counters:?}");
    assert_eq!(
        counters.received,
        counters.reflected + counters.arp_replies + counters.ignored,
        "{counters:?}"
    );
    let histogram = agent_proto::histogram::decode(&result.histogram).unwrap();
    assert_eq!(histogram.len(), 2000);

    // A counted bench: tx on one side, rx on the other, both over gRPC.
    const COUNT: u64 = 100_000;
    let receiver = receiving(&mut reflector, COUNT).await;
    let sent = initiator
        .bench(
            v1::BenchRequest {
                mode: v1::BenchMode::Tx.into(),
                peer_ip: SERVER_IP.into(),
                count: COUNT,
                rate_pps: 200_000,
                ..Default::default()
            },
            |_| {},
        )
        .await
        .unwrap();
    let received = receiver.await.unwrap().unwrap();
    let tx = sent.counters.unwrap();
    let rx = received.counters.unwrap();
    let port = received.port.unwrap();
    assert_eq!(tx.tx_packets, COUNT, "{tx:?}");
    assert_eq!(sent.port.unwrap().opackets, COUNT);
    let dropped = port.imissed + port.rx_nombuf + port.ierrors;
    assert_eq!(rx.rx_packets + dropped, COUNT, "{rx:?} {port:?}");
    assert_eq!(rx.rx_seq_gaps, dropped, "{rx:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_workloads_agree_with_the_same_workloads_run_directly() {
    let dir = tempfile::tempdir().unwrap();

    // gRPC reflector, direct ping-pong.
    let socket = dir.path().join("pingpong.sock");
    let server = memif_server(&socket, SERVER_IP);
    // Its link is down (NOT_SERVING) until the direct client connects.
    let mut reflector = server.port_open().await;
    reflector.reflect().await.unwrap();
    let report = {
        let socket = socket.clone();
        tokio::task::spawn_blocking(move || {
            json(&direct(
                &[
                    "pingpong",
                    "--peer",
                    SERVER_IP,
                    "--count",
                    "500",
                    "--window",
                    "4",
                    "--timeout-ms",
                    "2000",
                ],
                &socket,
                "client",
                CLIENT_IP,
            ))
        })
        .await
        .unwrap()
    };
    let counters = reflector.stop_reflect().await.unwrap();
    assert_eq!(report["sent"], 500, "{report}");
    assert_eq!(report["received"], 500, "{report}");
    assert_eq!(counters.reflected, 500, "{counters:?}");
    drop(reflector);
    drop(server);

    // gRPC receiver, direct sender.
    const COUNT: u64 = 50_000;
    let socket = dir.path().join("bench.sock");
    let server = memif_server(&socket, SERVER_IP);
    let mut receiver = server.port_open().await;
    let bench = receiving(&mut receiver, COUNT).await;
    let count = COUNT.to_string();
    let sent = tokio::task::spawn_blocking(move || {
        json(&direct(
            &[
                "bench", "--mode", "tx", "--peer", SERVER_IP, "--count", &count, "--rate", "200000",
            ],
            &socket,
            "client",
            CLIENT_IP,
        ))
    })
    .await
    .unwrap();
    let received = bench.await.unwrap().unwrap();
    let rx = received.counters.unwrap();
    let port = received.port.unwrap();
    assert_eq!(sent["counters"]["tx_packets"], COUNT, "{sent}");
    let dropped = port.imissed + port.rx_nombuf + port.ierrors;
    assert_eq!(rx.rx_packets + dropped, COUNT, "{rx:?} {port:?}");
}
