//! ReleasePort / AcquirePort and the kernel-socket baselines, host-side: two
//! `--loopback` agents (net_ring0, no hugepages) on loopback data addresses give
//! their ports away, run ping-pong through the kernel's UDP stack, refuse DPDK
//! workloads meanwhile, and take their ports back.

mod grpc_common;

use std::time::Duration;

use agent_proto::v1;
use grpc_common::{Agent, AgentOptions};

fn agent(data_ip: &str) -> Agent {
    Agent::start(AgentOptions {
        tls: false,
        extra: vec!["--data-ip".into(), data_ip.into()],
        ..AgentOptions::default()
    })
}

#[tokio::test]
async fn kernel_pingpong_between_two_released_agents_then_back_to_dpdk() {
    let (a, b) = (agent("127.0.7.2/8"), agent("127.0.7.3/8"));
    let (mut ca, mut cb) = (a.serving().await, b.serving().await);

    // Kernel workloads need the port released first.
    let error = cb.reflect_kernel().await.unwrap_err();
    assert_eq!(
        error.code(),
        Some(tonic::Code::FailedPrecondition),
        "{error}"
    );

    for client in [&mut ca, &mut cb] {
        let reply = client.release_port(v1::ReleaseTo::Kernel).await.unwrap();
        assert_eq!(reply.to, v1::ReleaseTo::Kernel as i32);
        let info = client.info().await.unwrap();
        assert_eq!(info.eal_state, v1::EalState::Released as i32);
        assert!(
            info.eal_error.contains("released to the kernel"),
            "{}",
            info.eal_error
        );
    }
    // Released twice to the same place: the same answer, nothing done.
    let again = ca.release_port(v1::ReleaseTo::Kernel).await.unwrap();
    assert_eq!(again.ip, "127.0.7.2/8");

    // DPDK workloads are refused while the port is away.
    let refused = ca
        .pingpong(
            v1::PingPongRequest {
                peer_ip: "10.0.0.9".into(),
                count: 1,
                ..Default::default()
            },
            |_| {},
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(tonic::Code::FailedPrecondition));
    assert!(
        refused.to_string().contains("port released to"),
        "{refused}"
    );

    cb.reflect_kernel().await.unwrap();
    let result = ca
        .pingpong(
            v1::PingPongRequest {
                peer_ip: "127.0.7.3".into(),
                count: 300,
                size: 128,
                window: 2,
                timeout_ns: 500_000_000,
                kernel: true,
                ..Default::default()
            },
            |_| {},
        )
        .await
        .unwrap();
    let counters = cb.stop_reflect().await.unwrap();
    assert_eq!((result.sent, result.received, result.lost), (300, 300, 0));
    assert_eq!(result.size, 128);
    let histogram = agent_proto::histogram::decode(&result.histogram).unwrap();
    assert_eq!(histogram.len(), 300);
    assert!(result.rtt.unwrap().p50_ns > 0);
    assert_eq!(counters.reflected, 301, "300 and the warm-up");

    // Back to DPDK: the ring port opens again and DPDK workloads run.
    for client in [&mut ca, &mut cb] {
        assert!(client.acquire_port().await.unwrap());
        assert!(
            !client.acquire_port().await.unwrap(),
            "second acquire is a no-op"
        );
        let info = client.info().await.unwrap();
        assert_eq!(info.eal_state, v1::EalState::Ready as i32, "{info:?}");
        assert_eq!(info.ports.len(), 1);
    }
    let error = ca.reflect_kernel().await.unwrap_err();
    assert_eq!(error.code(), Some(tonic::Code::FailedPrecondition));
    let selftest = ca.selftest(v1::SelftestRequest::default()).await.unwrap();
    assert!(selftest.ok, "{selftest:?}\n{}", a.log());
}

#[tokio::test]
async fn release_to_a_dpdk_process_names_the_device_and_refuses_while_busy() {
    let a = agent("10.9.0.1/24");
    let mut client = a.serving().await;
    client.reflect().await.unwrap();
    let busy = client
        .release_port(v1::ReleaseTo::DpdkProcess)
        .await
        .unwrap_err();
    assert_eq!(busy.code(), Some(tonic::Code::FailedPrecondition));
    assert!(busy.to_string().contains("busy"), "{busy}");
    client.stop_reflect().await.unwrap();

    let unspecified = client
        .release_port(v1::ReleaseTo::Unspecified)
        .await
        .unwrap_err();
    assert_eq!(unspecified.code(), Some(tonic::Code::InvalidArgument));

    let reply = client
        .release_port(v1::ReleaseTo::DpdkProcess)
        .await
        .unwrap();
    assert!(
        reply.eal_args.iter().any(|arg| arg == "--vdev=net_ring0"),
        "{reply:?}"
    );
    assert!(reply.eal_args.iter().any(|arg| arg == "--file-prefix"));
    // Released to a DPDK process, the port refuses kernel workloads too.
    let error = client.reflect_kernel().await.unwrap_err();
    assert_eq!(error.code(), Some(tonic::Code::FailedPrecondition));
    let other = client
        .release_port(v1::ReleaseTo::Kernel)
        .await
        .unwrap_err();
    assert_eq!(other.code(), Some(tonic::Code::FailedPrecondition));

    assert!(client.acquire_port().await.unwrap());
    client.reflect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.stop_reflect().await.unwrap();
}

#[tokio::test]
async fn sigterm_while_released_still_exits_cleanly() {
    for to in [v1::ReleaseTo::Kernel, v1::ReleaseTo::DpdkProcess] {
        let mut a = agent("127.0.7.9/8");
        let mut client = a.serving().await;
        client.release_port(to).await.unwrap();
        drop(client);
        let status = a.terminate(Duration::from_secs(20));
        assert!(status.success(), "{to:?}: {status:?}\n{}", a.log());
    }
}
