//! One driver per device: a selftest started by hand on the device a serving agent
//! drives is refused, naming the agent, and the agent keeps serving.

mod grpc_common;

use std::process::{Command, Stdio};

use grpc_common::{Agent, AgentOptions};

#[tokio::test]
async fn a_selftest_on_the_serving_agents_device_is_refused_naming_it() {
    let socket_dir = tempfile::tempdir().unwrap();
    let spec = format!(
        "net_memif0,role=server,socket={},socket-abstract=no",
        socket_dir.path().join("memif.sock").display()
    );
    let agent = Agent::start(AgentOptions {
        loopback: false,
        extra: vec![
            "--vdev".into(),
            spec.clone(),
            "--data-ip".into(),
            "10.9.0.2/24".into(),
        ],
        ..AgentOptions::default()
    });
    // A memif server without its client: the port is open with its link down, so
    // health is NOT_SERVING; wait for the port itself.
    let mut client = agent.port_open().await;

    let eal = format!(
        "--no-huge --no-pci -l 0 -m 128 --file-prefix=lock-{} --vdev={spec}",
        std::process::id()
    );
    let output = Command::new(env!("CARGO_BIN_EXE_dpdk-agent"))
        .args([
            "--selftest",
            "--eal",
            &eal,
            "--device",
            "net_memif0",
            "--ip",
            "10.9.0.3/24",
        ])
        .env("DPDK_AGENT_RUN_DIR", agent.run_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    let holder = format!("pid {} (dpdk-agent serve) since ", agent.pid());
    assert!(
        stdout.contains("device lock") && stdout.contains(&holder),
        "the refusal should name the agent ({holder}):\n{stdout}"
    );
    assert!(!stdout.contains("\neal "), "EAL must not start:\n{stdout}");

    // The agent still has its port (down only for want of a memif client).
    let info = client.info().await.unwrap();
    assert_eq!(info.ports.len(), 1, "{info:?}");
    assert!(info.eal_error.contains("link is down"), "{info:?}");
}

/// `dpdk-agent --selftest` with no device asks the serving agent through its
/// control socket: every check passes (the ring loops the round trip back), and
/// the agent keeps its port.
#[tokio::test]
async fn a_selftest_without_a_device_runs_through_the_serving_agent() {
    let agent = Agent::start(AgentOptions::default());
    let mut client = agent.serving().await;
    let socket = agent.run_dir().join("agent.sock");
    let output = grpc_common::selftest_through_socket(&socket, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| check["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"serving agent"), "{stdout}");
    assert!(names.contains(&"packet round trip"), "{stdout}");
    let mode = std::fs::metadata(&socket).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let info = client.info().await.unwrap();
    assert_eq!(
        info.eal_state(),
        agent_proto::v1::EalState::Ready,
        "{info:?}"
    );
    assert!(info.workload.is_empty(), "{info:?}");
}
