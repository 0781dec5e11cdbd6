//! `dpdk-agent ping` as a user runs it in a VM: through the serving agent's control
//! socket, across the data link to a peer whose agent is idle (nothing started on
//! it). Two real agent processes on a net_memif link.

mod grpc_common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use grpc_common::memif_pair;

const A_IP: &str = "10.12.0.1";
const B_IP: &str = "10.12.0.2";
/// In the link's subnet, held by nobody.
const NOBODY_IP: &str = "10.12.0.77";

fn ping(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dpdk-agent"))
        .arg("ping")
        .args(args)
        .arg("--control-socket")
        .arg(socket)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_reaches_an_idle_peer_and_says_when_nobody_answers_arp() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link.sock");
    let (b, a) = memif_pair(&link, B_IP, A_IP);
    let (_a_client, mut b_client) = (a.serving().await, b.serving().await);
    let socket = a.run_dir().join("agent.sock");
    let logs = || format!("A:\n{}\nB:\n{}", a.log(), b.log());

    let output = ping(
        &socket,
        &[B_IP, "--count", "5", "--interval-ms", "50", "--json"],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\n{}",
        describe(&output),
        logs()
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (
            &report["sent"],
            &report["received"],
            &report["lost"],
            &report["ok"]
        ),
        (&5.into(), &5.into(), &0.into(), &true.into()),
        "{report}"
    );
    assert_eq!(report["peer_ip"], B_IP, "{report}");
    assert_eq!(report["peer_mac"].as_str().unwrap().len(), 17, "{report}");
    let rtt = &report["rtt_us"];
    let (min, p50, max) = (
        rtt["min"].as_f64().unwrap(),
        rtt["p50"].as_f64().unwrap(),
        rtt["max"].as_f64().unwrap(),
    );
    assert!(0.0 < min && min <= p50 && p50 <= max, "{report}");
    let info = b_client.info().await.unwrap();
    assert!(info.workload.is_empty(), "nothing ran on B: {info:?}");

    // The text form: ping(8)'s summary line.
    let output = ping(&socket, &[B_IP, "--count", "3", "--interval-ms", "10"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        stdout.contains("3 packets transmitted, 3 received, 0 lost, rtt min/p50/p99/max = "),
        "{stdout}"
    );

    // Nobody holds the address: ARP goes unanswered, exit status 1, said so.
    let output = ping(&socket, &[NOBODY_IP, "--count", "2"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stderr}");
    assert!(
        stderr.contains("ARP") && stderr.contains(NOBODY_IP),
        "{}",
        describe(&output)
    );
    // A's port is free again afterwards.
    let output = ping(&socket, &[B_IP, "--count", "1"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
}

#[test]
fn bad_arguments_exit_2_naming_the_argument_and_its_range() {
    let socket = Path::new("/nonexistent/agent.sock");
    for (args, needles) in [
        (
            &["10.0.1.6", "--count", "0"][..],
            &["--count", "1..=1000"][..],
        ),
        (&["10.0.1.6", "--count", "1001"], &["--count", "1..=1000"]),
        (
            &["10.0.1.6", "--interval-ms", "0"],
            &["--interval-ms", "1..=10000"],
        ),
        (
            &["10.0.1.6", "--timeout-ms", "60001"],
            &["--timeout-ms", "1..=60000"],
        ),
        (&["10.0.1.600"], &["PEER_IP", "IPv4"]),
        (&["fe80::1"], &["PEER_IP", "IPv4"]),
    ] {
        let output = ping(socket, args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            describe(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        for needle in needles {
            assert!(stderr.contains(needle), "{args:?}: {needle:?} in {stderr}");
        }
    }
}

#[test]
fn without_a_serving_agent_ping_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let output = ping(&socket, &["10.0.1.6"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let expected = format!(
        "no serving agent at {}; is dpdk-agent.service running?",
        socket.display()
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(&expected),
        "{}",
        describe(&output)
    );

    // A stale socket left by an agent that is gone: the same answer.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let output = ping(&socket, &["10.0.1.6"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(&expected),
        "{}",
        describe(&output)
    );
}
