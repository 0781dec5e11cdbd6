//! When EAL or the NIC binding fails, the agent keeps serving: health says
//! NOT_SERVING, Info says why, workloads are refused with that reason, Selftest
//! reports it, and SIGTERM still exits 0 (giving the NIC back).

mod grpc_common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use agent_proto::client::{AgentClient, Health};
use agent_proto::v1;
use grpc_common::{assert_status, assert_workloads_refused, Agent, AgentOptions};
use tonic::Code;

/// A PCI address no real machine has, so EAL on the test host touches nothing.
const BDF: &str = "0000:fe:1f.7";

/// What a client sees of an agent whose data port failed for `reason`: NOT_SERVING,
/// every workload refused (bad fields still named first), nothing to stop, and a
/// failing Selftest, returned for the caller's own checks.
async fn reports_the_failure(client: &mut AgentClient, reason: &str) -> v1::SelftestReply {
    assert_eq!(client.health().await.unwrap(), Health::NotServing);
    let expected = format!("data port unavailable: {reason}");
    assert_workloads_refused(client, "10.0.1.6", &expected).await;
    // Validation still comes first: a bad field is named even without a port.
    assert_status(
        client
            .pingpong(v1::PingPongRequest::default(), |_| {})
            .await,
        Code::InvalidArgument,
        "`peer_ip`",
    );
    assert_eq!(client.stop().await.unwrap(), "");
    let selftest = client
        .selftest(v1::SelftestRequest::default())
        .await
        .unwrap();
    assert!(!selftest.ok, "{selftest:?}");
    selftest
}

/// Waits until the agent has finished bringing its port up (and failed).
async fn failed_info(client: &mut AgentClient) -> v1::InfoReply {
    for _ in 0..200 {
        let info = client.info().await.unwrap();
        if info.eal_state() != v1::EalState::Unspecified {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the data port never left the starting state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eal_failure_keeps_the_server_up_and_refuses_workloads() {
    let mut agent = Agent::start(AgentOptions {
        extra: vec!["--eal-arg=--no-such-eal-option".into()],
        ..AgentOptions::default()
    });
    let mut client = agent.connect().await;
    let info = failed_info(&mut client).await;
    assert_eq!(info.eal_state(), v1::EalState::Failed, "{info:?}");
    assert!(info.eal_error.starts_with("EAL: "), "{}", info.eal_error);
    assert!(
        info.eal_error.contains("--no-such-eal-option"),
        "{}",
        info.eal_error
    );
    assert!(info.ports.is_empty());
    let selftest = reports_the_failure(&mut client, "EAL: ").await;
    let port_check = selftest
        .checks
        .iter()
        .find(|c| c.name == "data port")
        .unwrap();
    assert!(!port_check.ok);
    assert!(port_check.detail.contains("EAL"), "{port_check:?}");

    assert!(agent.is_running(), "{}", agent.log());
    let status = agent.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", agent.log());
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn config(dir: &Path, mac: &str) -> String {
    let path = dir.join("agent.toml");
    // The listen address here is overridden by --listen; the rest is what a VM gets.
    write(
        &path,
        &format!(
            "listen = \"127.0.0.1:50051\"\ndata_mac = \"{mac}\"\ndata_ip = \"10.0.1.4/24\"\nbind_driver = \"uio-pci-generic\"\n"
        ),
    );
    path.display().to_string()
}

/// An agent as a VM runs it (config file with the data NIC's `mac`, sysfs at `sys`,
/// binding record at `state`), with `extra` serve arguments.
fn vm_agent(dir: &Path, mac: &str, sys: &Path, state: &Path, extra: &[String]) -> Agent {
    let mut args = vec![
        "--config".into(),
        config(dir, mac),
        "--sysfs-root".into(),
        sys.display().to_string(),
        "--state-file".into(),
        state.display().to_string(),
    ];
    args.extend_from_slice(extra);
    Agent::start(AgentOptions {
        loopback: false,
        extra: args,
        ..AgentOptions::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nic_not_found_is_reported_and_the_agent_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    std::fs::create_dir_all(sys.join("class/net")).unwrap();
    let state = dir.path().join("binding.json");
    let mut agent = vm_agent(dir.path(), "52:54:00:aa:00:99", &sys, &state, &[]);
    let mut client = agent.connect().await;
    let info = failed_info(&mut client).await;
    assert_eq!(info.eal_state(), v1::EalState::Failed, "{info:?}");
    assert!(
        info.eal_error
            .starts_with("binding the data NIC: no network interface with MAC 52:54:00:aa:00:99"),
        "{}",
        info.eal_error
    );
    let selftest = reports_the_failure(&mut client, "binding the data NIC").await;
    // In VM mode Selftest also runs the system checks.
    assert!(selftest.checks.len() > 1, "{selftest:?}");
    let status = agent.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", agent.log());
}

/// A NIC the agent bound in an earlier run (recorded in its state file) is found
/// again; when EAL then fails the reason is reported, and SIGTERM hands the NIC
/// back to its original driver through sysfs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_gives_a_bound_nic_back_even_after_an_eal_failure() {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    let device = sys.join("devices/pci0000:00").join(BDF);
    write(&device.join("driver_override"), "uio_pci_generic\n");
    std::fs::create_dir_all(sys.join("class/net")).unwrap();
    std::fs::create_dir_all(sys.join("bus/pci/devices")).unwrap();
    symlink(
        format!("../../../devices/pci0000:00/{BDF}"),
        sys.join("bus/pci/devices").join(BDF),
    )
    .unwrap();
    for driver in ["uio_pci_generic", "virtio-pci"] {
        write(&sys.join("bus/pci/drivers").join(driver).join("unbind"), "");
        write(&sys.join("bus/pci/drivers").join(driver).join("bind"), "");
    }
    write(&sys.join("bus/pci/drivers_probe"), "");
    symlink(
        "../../../bus/pci/drivers/uio_pci_generic",
        device.join("driver"),
    )
    .unwrap();
    let state = dir.path().join("binding.json");
    write(
        &state,
        &format!(
            r#"{{"mac":"52:54:00:aa:00:02","pci_address":"{BDF}","ifname":"eth1","original_driver":"virtio-pci","driver":"uio-pci-generic"}}"#
        ),
    );
    // No hugepages on a test host, and a prefix of its own: EAL fails to find the
    // (fake) device or memory — either way a reported failure.
    let eal = [
        "--eal-arg=--no-huge".to_owned(),
        format!("--eal-arg=--file-prefix=agent-test-{}", std::process::id()),
    ];
    let mut agent = vm_agent(dir.path(), "52:54:00:aa:00:02", &sys, &state, &eal);
    let mut client = agent.connect().await;
    let info = failed_info(&mut client).await;
    assert_eq!(info.eal_state(), v1::EalState::Failed, "{info:?}");
    println!("eal_error: {}", info.eal_error);
    assert_eq!(info.kernel_driver, "virtio-pci");
    assert_eq!(info.bound_driver, "uio_pci_generic");
    assert!(
        info.eal_error.starts_with("EAL: ") || info.eal_error.starts_with("opening data port"),
        "{}",
        info.eal_error
    );

    // Selftest names the bound device (the check reads the real /sys, which has
    // no such device).
    let selftest = client
        .selftest(v1::SelftestRequest::default())
        .await
        .unwrap();
    let binding = selftest
        .checks
        .iter()
        .find(|c| c.name == "device binding")
        .unwrap();
    assert!(binding.detail.contains(BDF), "{binding:?}");

    // There is no kernel behind the fake tree, so the rebind cannot complete; what
    // counts is that the agent asked for it the way the kernel expects, and exits 0.
    let status = agent.terminate(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    let read = |rel: &str| std::fs::read_to_string(sys.join(rel)).unwrap();
    assert_eq!(
        read(&format!("devices/pci0000:00/{BDF}/driver_override")),
        "virtio-pci"
    );
    assert_eq!(read("bus/pci/drivers/uio_pci_generic/unbind"), BDF);
    assert!(
        agent.log().contains("cannot give the NIC back"),
        "{}",
        agent.log()
    );
}
