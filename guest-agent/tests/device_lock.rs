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
    let mut client = agent.serving().await;

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

    // The agent still has its port.
    let info = client.info().await.unwrap();
    assert_eq!(
        info.eal_state(),
        agent_proto::v1::EalState::Ready,
        "{info:?}"
    );
}
