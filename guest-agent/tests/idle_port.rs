//! An agent whose port no workload holds answers on it like a host (ARP, test
//! frames), without busy-polling; and its health follows the port's link. Two real
//! agent processes on a net_memif link, the host-side analogue of two VMs whose
//! agents cannot reach each other's gRPC (user network mode).

mod grpc_common;

use std::process::Command;
use std::time::{Duration, Instant};

use agent_proto::client::{AgentClient, Health};
use agent_proto::v1;
use grpc_common::{memif_agent, memif_pair, memif_server, Agent};

const A_IP: &str = "10.11.0.1";
const B_IP: &str = "10.11.0.2";

/// The process's CPU time (user + system), from /proc/<pid>/stat.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis: state is the first, utime
    // the 12th, stime the 13th.
    let fields: Vec<u64> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    let ticks = fields[10] + fields[11];
    let output = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    let per_second: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selftest_round_trip_through_an_idle_peer_then_pingpong_through_its_reflector() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link.sock");
    let (b, a) = memif_pair(&link, B_IP, A_IP);
    let (mut a_client, mut b_client) = (a.serving().await, b.serving().await);

    // Nothing started on B: its idle port answers ARP and the test frames.
    let output =
        grpc_common::selftest_through_socket(&a.run_dir().join("agent.sock"), &["--peer", B_IP]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}\nA:\n{}\nB:\n{}",
        String::from_utf8_lossy(&output.stderr),
        a.log(),
        b.log()
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let round_trip = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["name"] == "packet round trip")
        .unwrap_or_else(|| panic!("no round-trip check: {stdout}"));
    assert_eq!(round_trip["ok"], true, "{stdout}");
    let detail = round_trip["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("3/3 back via reflector 10.11.0.2"),
        "{detail}"
    );
    let info = b_client.info().await.unwrap();
    assert!(info.workload.is_empty(), "nothing ran on B: {info:?}");

    // Then the lab as the host drives it: B's reflector started over gRPC, a
    // ping-pong from A that loses nothing.
    let (result, counters) =
        grpc_common::pingpong_through_reflector(&mut a_client, &mut b_client, B_IP, 2000).await;
    assert_eq!((result.sent, result.received, result.lost), (2000, 2000, 0));
    assert_eq!(counters.reflected, 2000, "{counters:?}");

    // Idle again, both agents stay off the CPU (under TCG the guest has one vCPU).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let window = Duration::from_secs(5);
    let before = (cpu_time(a.pid()), cpu_time(b.pid()));
    tokio::time::sleep(window).await;
    let after = (cpu_time(a.pid()), cpu_time(b.pid()));
    for (name, used) in [("A", after.0 - before.0), ("B", after.1 - before.1)] {
        let share = used.as_secs_f64() / window.as_secs_f64();
        println!("idle agent {name}: {:.2} % of a core", share * 100.0);
        assert!(
            share < 0.05,
            "idle agent {name} used {used:?} of CPU in {window:?}"
        );
    }
}

/// Polls health and Info until `done` holds for them; returns that Info.
async fn wait_until(
    client: &mut AgentClient,
    agent: &Agent,
    what: &str,
    done: impl Fn(Health, &v1::InfoReply) -> bool,
) -> v1::InfoReply {
    // The link is checked every 2 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let health = client.health().await.unwrap();
        let info = client.info().await.unwrap();
        if done(health, &info) {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "not {what}: {health:?} {info:?}\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn link_down(health: Health, info: &v1::InfoReply) -> bool {
    health == Health::NotServing
        && info.eal_state() == v1::EalState::Failed
        && info.eal_error.contains("link is down")
        && info.ports.len() == 1
}

fn serving(health: Health, info: &v1::InfoReply) -> bool {
    health == Health::Serving
        && info.eal_state() == v1::EalState::Ready
        && info.eal_error.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_data_link() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link.sock");
    let server = memif_server(&link, B_IP);

    // Alone, the memif server's link is down: the port is open, but not usable.
    let mut client = server.connect().await;
    let info = wait_until(&mut client, &server, "open with its link down", link_down).await;
    assert!(!info.ports[0].link_up, "{info:?}");

    // A peer connects: SERVING, READY.
    let peer = memif_agent(&link, "client", A_IP);
    wait_until(&mut client, &server, "serving", serving).await;

    // The peer goes away: the link drops, and health says so.
    drop(peer);
    wait_until(&mut client, &server, "down after the peer left", link_down).await;
    assert!(server.log().contains("data port fault"), "{}", server.log());

    // And back.
    let _peer = memif_agent(&link, "client", A_IP);
    wait_until(&mut client, &server, "serving again", serving).await;
}
