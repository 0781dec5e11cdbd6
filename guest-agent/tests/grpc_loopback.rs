//! The agent's gRPC API over real TCP with mutual TLS, against `dpdk-agent serve
//! --loopback` (a net_ring0 port that loops every frame back, no hugepages): what
//! the host sees when it drives an agent.

mod grpc_common;

use std::time::Duration;

use agent_proto::client::{AgentClient, ClientTls, Health, Security};
use agent_proto::v1;
use grpc_common::{assert_status, assert_workloads_refused, Agent, AgentOptions};
use tokio_stream::StreamExt;
use tonic::Code;

const OWN_IP: &str = "10.0.0.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_health_info_and_reflection_over_mutual_tls() {
    let agent = Agent::start(AgentOptions::default());
    let mut client = agent.serving().await;
    assert_eq!(client.health().await.unwrap(), Health::Serving);

    let info = client.info().await.unwrap();
    assert_eq!(info.eal_state(), v1::EalState::Ready, "{info:?}");
    assert_eq!(info.eal_error, "");
    assert!(info.dpdk_version.contains("22.11"), "{}", info.dpdk_version);
    assert_eq!(info.agent_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.workload, "");
    assert_eq!(info.ports.len(), 1, "{info:?}");
    assert_eq!(info.ports[0].device, "net_ring0");
    assert_eq!(info.ports[0].driver, "net_ring");
    assert_eq!(info.ports[0].ip, "10.0.0.1/24");
    assert!(info.ports[0].link_up);
    assert!(info.rss_bytes > 1 << 20, "rss {}", info.rss_bytes);
    assert!(info.hugepages.is_some());

    // grpc.health.v1 for the overall server too, as generic clients ask it.
    let (mut health, mut reflection) = raw_clients(&agent).await;
    let overall = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        overall.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    // Server reflection lists the agent, health and reflection services, and
    // serves the agent's descriptors.
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("dpdkhost.agent.v1.Agent".into()),
    ]
    .map(|message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    });
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        replies.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "dpdkhost.agent.v1.Agent",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.contains(&expected), "{names:?} lacks {expected}");
    }
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        replies.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected the agent's file descriptor");
    };
    let file: prost_types::FileDescriptorProto =
        prost::Message::decode(files.file_descriptor_proto[0].as_slice()).unwrap();
    assert_eq!(file.package(), "dpdkhost.agent.v1");
    let methods: Vec<&str> = file.service[0].method.iter().map(|m| m.name()).collect();
    assert_eq!(
        methods,
        [
            "Info",
            "Selftest",
            "PingPong",
            "Reflect",
            "StopReflect",
            "Bench",
            "Stop",
            "ReleasePort",
            "AcquirePort",
            "Telemetry"
        ]
    );
}

/// Health and reflection clients over the same mutual-TLS settings as the host's.
async fn raw_clients(
    agent: &Agent,
) -> (
    tonic_health::pb::health_client::HealthClient<tonic::transport::Channel>,
    tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient<
        tonic::transport::Channel,
    >,
) {
    let channel = tls_channel(agent, &agent.pki.as_ref().unwrap().client)
        .await
        .unwrap();
    (
        tonic_health::pb::health_client::HealthClient::new(channel.clone()),
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel),
    )
}

async fn tls_channel(
    agent: &Agent,
    tls: &ClientTls,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let mut config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
        .domain_name(tls.server_name.clone());
    if !tls.cert_pem.is_empty() {
        config = config.identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
    }
    Endpoint::from_shared(format!("https://{}", agent.addr))?
        .connect_timeout(Duration::from_secs(5))
        .tls_config(config)?
        .connect()
        .await
}

/// One Info call with `tls`; Err with the transport or status text.
async fn info_with(agent: &Agent, tls: &ClientTls) -> Result<v1::InfoReply, String> {
    let channel = tls_channel(agent, tls)
        .await
        .map_err(|e| agent_proto::client::error_chain(&e))?;
    let mut client = v1::agent_client::AgentClient::new(channel);
    tokio::time::timeout(Duration::from_secs(10), client.info(v1::InfoRequest {}))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map(tonic::Response::into_inner)
        .map_err(|status| format!("{status:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_certificate_from_the_ca_are_rejected() {
    let agent = Agent::start(AgentOptions::default());
    let pki = agent.pki.as_ref().unwrap();
    let good = pki.client.clone();
    agent.serving().await;
    info_with(&agent, &good)
        .await
        .expect("the host's own client works");

    // No client certificate at all.
    let anonymous = ClientTls {
        cert_pem: String::new(),
        key_pem: String::new(),
        ..good.clone()
    };
    let error = info_with(&agent, &anonymous).await.unwrap_err();
    println!("no certificate: {error}");

    // A certificate from another CA (another environment, or an attacker's).
    let other_ca = agent_proto::pki::CertificateAuthority::generate("someone else").unwrap();
    let stranger = other_ca.issue_client("dpdkhost").unwrap();
    let foreign = ClientTls {
        cert_pem: stranger.cert_pem,
        key_pem: stranger.key_pem,
        ..good.clone()
    };
    let error = info_with(&agent, &foreign).await.unwrap_err();
    println!("foreign certificate: {error}");

    // The agent presents its own certificate: a client that trusts another CA
    // refuses it.
    let wrong_trust = ClientTls {
        ca_pem: other_ca.cert_pem().to_owned(),
        ..good.clone()
    };
    let error = info_with(&agent, &wrong_trust).await.unwrap_err();
    println!("wrong CA on the client: {error}");
    // ... and it is the certificate for its name.
    let wrong_name = ClientTls {
        server_name: "vm2".into(),
        ..good.clone()
    };
    let error = info_with(&agent, &wrong_name).await.unwrap_err();
    println!("wrong server name: {error}");

    // No plaintext on a TLS agent.
    let plaintext =
        AgentClient::connect(agent.addr, &Security::Insecure, Duration::from_secs(5)).await;
    if let Ok(mut client) = plaintext {
        let reply = tokio::time::timeout(Duration::from_secs(10), client.info()).await;
        assert!(
            !matches!(reply, Ok(Ok(_))),
            "plaintext Info answered: {reply:?}"
        );
    }
    // The agent is still fine afterwards.
    info_with(&agent, &good).await.unwrap();
    assert!(agent.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pingpong_streams_progress_and_returns_every_round_trip() {
    let agent = Agent::start(AgentOptions::default());
    let mut client = agent.serving().await;
    let mac = client.info().await.unwrap().ports[0].mac.clone();
    let mut progress = Vec::new();
    // 1500 packets 1 ms apart: about 1.5 s, so at least one progress event.
    let result = client
        .pingpong(
            v1::PingPongRequest {
                peer_ip: OWN_IP.into(),
                count: 1500,
                size: 128,
                interval_ns: 1_000_000,
                ..Default::default()
            },
            |p| progress.push(*p),
        )
        .await
        .unwrap();
    assert_eq!(result.sent, 1500, "{result:?}");
    assert_eq!(result.received, 1500, "{result:?}");
    assert_eq!(result.lost, 0);
    assert_eq!(result.duplicates, 0);
    assert_eq!(result.size, 128);
    assert_eq!(result.peer_mac, mac, "net_ring0 answers for itself");
    let histogram = agent_proto::histogram::decode(&result.histogram).unwrap();
    assert_eq!(histogram.len(), 1500);
    let rtt = result.rtt.unwrap();
    assert_eq!(rtt.max_ns, histogram.max());
    assert_eq!(rtt.p50_ns, histogram.value_at_quantile(0.5));
    assert!(rtt.min_ns > 0 && rtt.min_ns <= rtt.p50_ns && rtt.p50_ns <= rtt.p99_ns);
    assert!(rtt.p99_ns <= rtt.max_ns);
    assert!(result.elapsed_ns >= 1_400_000_000, "{}", result.elapsed_ns);
    assert!(
        !progress.is_empty(),
        "no progress in {} ns",
        result.elapsed_ns
    );
    let last = progress.last().unwrap();
    assert!(last.sent > 0 && last.sent <= 1500, "{last:?}");
    assert!(progress.windows(2).all(|w| w[0].sent <= w[1].sent));

    // The port is free again right after the result.
    assert_eq!(client.info().await.unwrap().workload, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_both_ways_counts_match_the_port() {
    let agent = Agent::start(AgentOptions::default());
    let mut client = agent.serving().await;
    let mut seconds = Vec::new();
    let result = client
        .bench(
            v1::BenchRequest {
                mode: v1::BenchMode::Both.into(),
                peer_ip: OWN_IP.into(),
                count: 150_000,
                rate_pps: 100_000,
                ..Default::default()
            },
            |p| seconds.push(*p),
        )
        .await
        .unwrap();
    let counters = result.counters.unwrap();
    let port = result.port.unwrap();
    assert_eq!(counters.tx_packets, 150_000, "{counters:?}");
    assert_eq!(counters.tx_bytes, 150_000 * 64);
    // A ring loses nothing: every frame sent comes back.
    assert_eq!(counters.rx_packets, counters.tx_packets, "{counters:?}");
    assert_eq!(counters.rx_seq_gaps, 0);
    assert_eq!(port.opackets, counters.tx_packets, "{port:?}");
    // The port also counts what was not test traffic (an ARP frame, say).
    assert_eq!(
        port.ipackets,
        counters.rx_packets + counters.rx_other,
        "{port:?} {counters:?}"
    );
    assert_eq!(port.imissed + port.rx_nombuf + port.oerrors, 0, "{port:?}");
    assert!(!result.xstats.is_empty());
    assert!(!result.per_second.is_empty());
    // 1.5 s at 100 kpps: at least one streamed progress event, counting up.
    assert!(!seconds.is_empty());
    assert_eq!(seconds[0].second, 1);
    let first = seconds[0].total.unwrap();
    assert!(
        first.tx_packets > 0 && first.tx_packets < 150_000,
        "{first:?}"
    );
    // Paced at 100 kpps: the streamed rate says about that (loosely: a busy
    // 2-core test host).
    assert!(
        (30_000..=170_000).contains(&seconds[0].tx_pps),
        "{:?}",
        seconds[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_workload_at_a_time_and_stop_frees_the_port() {
    let agent = Agent::start(AgentOptions::default());
    let mut client = agent.serving().await;
    assert_eq!(client.stop().await.unwrap(), "", "nothing runs yet");
    assert_status(
        client.stop_reflect().await,
        Code::FailedPrecondition,
        "reflect is not running",
    );

    client.reflect().await.unwrap();
    let info = client.info().await.unwrap();
    assert!(info.workload.starts_with("reflect"), "{info:?}");
    assert_eq!(
        info.ports.len(),
        1,
        "Info still shows the port while it is busy"
    );

    assert_workloads_refused(&mut client, OWN_IP, "busy: reflect").await;
    assert_status(
        client.selftest(v1::SelftestRequest::default()).await,
        Code::FailedPrecondition,
        "busy: reflect",
    );

    // A ping-pong through our own reflector is not possible on one port, but the
    // reflector's counters are real: StopReflect returns them and frees the port.
    let counters = client.stop_reflect().await.unwrap();
    assert_eq!(counters.reflected, 0, "{counters:?}");
    assert_eq!(client.info().await.unwrap().workload, "");

    // Stop ends whatever runs, and says what it was.
    client.reflect().await.unwrap();
    let stopped = client.stop().await.unwrap();
    assert!(stopped.starts_with("reflect"), "{stopped}");
    assert_eq!(client.info().await.unwrap().workload, "");

    // Stop during a long ping-pong: the stream ends with the partial result.
    let mut stream = long_pingpong(&client).await;
    wait_for_workload(&mut client, "pingpong to 10.0.0.1").await;
    // Let some packets go first.
    while client.info().await.unwrap().workload.contains("(0/") {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = client.stop().await.unwrap();
    assert!(stopped.contains("/1000000 sent"), "{stopped}");
    let mut result = None;
    while let Some(event) = stream.message().await.unwrap() {
        if let Some(v1::ping_pong_event::Event::Result(r)) = event.event {
            result = Some(r);
        }
    }
    let result = result.expect("a stopped ping-pong still reports");
    assert!(result.sent > 0 && result.sent < 1_000_000, "{result:?}");
    assert!(result.received <= result.sent, "{result:?}");

    // And the selftest runs now that the port is free.
    let selftest = client
        .selftest(v1::SelftestRequest::default())
        .await
        .unwrap();
    assert!(selftest.ok, "{selftest:?}");
    assert!(selftest
        .checks
        .iter()
        .any(|c| c.name == "packet round trip" && c.ok));
}

/// A ping-pong of a million packets 1 ms apart, as a raw stream: it runs until it is
/// stopped, cancelled or the agent goes away.
async fn long_pingpong(client: &AgentClient) -> tonic::Streaming<v1::PingPongEvent> {
    client
        .raw()
        .ping_pong(v1::PingPongRequest {
            peer_ip: OWN_IP.into(),
            count: 1_000_000,
            interval_ns: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// Polls Info for 5 s until the workload is `wanted`; Err with the last one seen.
async fn poll_workload(
    client: &mut AgentClient,
    wanted: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let mut workload = String::new();
    for _ in 0..100 {
        workload = client.info().await.unwrap().workload;
        if wanted(&workload) {
            return Ok(workload);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(workload)
}

async fn wait_for_workload(client: &mut AgentClient, prefix: &str) -> String {
    poll_workload(client, |workload| workload.starts_with(prefix))
        .await
        .unwrap_or_else(|_| panic!("{prefix:?} never ran"))
}

async fn wait_idle(client: &mut AgentClient) {
    if let Err(workload) = poll_workload(client, str::is_empty).await {
        panic!("still busy: {workload}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_stream_stops_its_workload() {
    let agent = Agent::start(AgentOptions::default());
    let mut client = agent.serving().await;

    let mut raw = client.raw();
    let mut stream = raw
        .bench(v1::BenchRequest {
            mode: v1::BenchMode::Both.into(),
            peer_ip: OWN_IP.into(),
            duration_ns: 3_600_000_000_000,
            rate_pps: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(
        matches!(first.event, Some(v1::bench_event::Event::Progress(_))),
        "{first:?}"
    );
    assert!(client.info().await.unwrap().workload.starts_with("bench"));
    drop(stream);
    wait_idle(&mut client).await;

    // Same for a ping-pong whose client gives up waiting (its future is dropped
    // mid-stream, which resets the HTTP/2 stream).
    let mut stream = long_pingpong(&client).await;
    let read_all = async {
        while let Some(event) = stream.message().await.unwrap() {
            assert!(
                matches!(event.event, Some(v1::ping_pong_event::Event::Progress(_))),
                "{event:?}"
            );
        }
    };
    let gave_up = tokio::time::timeout(Duration::from_millis(1500), read_all).await;
    assert!(gave_up.is_err(), "the ping-pong ended by itself");
    assert!(client
        .info()
        .await
        .unwrap()
        .workload
        .starts_with("pingpong"));
    drop(stream);
    wait_idle(&mut client).await;
    // The port is usable again.
    client.reflect().await.unwrap();
    client.stop().await.unwrap();
}

/// How to spoil one field of a good request, and what the refusal must name.
type Spoiled<R> = (fn(&mut R), &'static str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_field_is_invalid_argument_naming_it() {
    let agent = Agent::start(AgentOptions::default());
    let mut client = agent.serving().await;
    let base = client.clone();
    let pingpong = |request: v1::PingPongRequest| {
        let mut client = base.clone();
        async move { client.pingpong(request, |_| {}).await.map(|_| ()) }
    };
    let good = v1::PingPongRequest {
        peer_ip: OWN_IP.into(),
        count: 10,
        ..Default::default()
    };
    let pingpong_cases: [Spoiled<v1::PingPongRequest>; 5] = [
        (|r| r.count = 0, "`count`: must be 1..="),
        (|r| r.size = 63, "`size`: must be 64..=1514"),
        (|r| r.window = 5000, "`window`: must be 1..=1024"),
        (
            |r| r.peer_ip = "ten.zero".into(),
            "`peer_ip`: must be a unicast IPv4 address",
        ),
        (|r| r.timeout_ns = 1, "`timeout_ns`"),
    ];
    for (spoil, needle) in pingpong_cases {
        let mut request = good.clone();
        spoil(&mut request);
        assert_status(pingpong(request).await, Code::InvalidArgument, needle);
    }
    let bench = |request: v1::BenchRequest| {
        let mut client = base.clone();
        async move { client.bench(request, |_| {}).await.map(|_| ()) }
    };
    let tx = v1::BenchRequest {
        mode: v1::BenchMode::Tx.into(),
        peer_ip: OWN_IP.into(),
        ..Default::default()
    };
    let bench_cases: [Spoiled<v1::BenchRequest>; 7] = [
        (|r| r.mode = 0, "`mode`: must be BENCH_MODE_TX"),
        (|r| r.peer_ip = String::new(), "`peer_ip`: required"),
        (|r| r.size = 9000, "`size`"),
        (|r| r.burst = 1000, "`burst`: must be 1..=64"),
        (|r| r.rate_pps = u64::MAX, "`rate_pps`"),
        (|r| r.duration_ns = u64::MAX, "`duration_ns`"),
        (|r| r.drain_ns = u64::MAX, "`drain_ns`"),
    ];
    for (spoil, needle) in bench_cases {
        let mut request = tx.clone();
        spoil(&mut request);
        assert_status(bench(request).await, Code::InvalidArgument, needle);
    }
    assert_status(
        client
            .selftest(v1::SelftestRequest {
                peer_ip: "300.1.1.1".into(),
                timeout_ns: 0,
            })
            .await,
        Code::InvalidArgument,
        "`peer_ip`",
    );
    // Nothing was started by any of it.
    assert_eq!(client.info().await.unwrap().workload, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_workload_and_exits_zero() {
    let mut agent = Agent::start(AgentOptions::default());
    let mut client = agent.serving().await;
    let mut stream = long_pingpong(&client).await;
    wait_for_workload(&mut client, "pingpong").await;
    let status = agent.terminate(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", agent.log());
    // The stream got its (partial) result before the server went away.
    let mut got_result = false;
    while let Ok(Some(event)) = stream.message().await {
        got_result |= matches!(event.event, Some(v1::ping_pong_event::Event::Result(_)));
    }
    assert!(got_result, "{}", agent.log());
    let log = agent.log();
    assert!(log.contains("shutting down"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_retrying_a_listen_address_that_is_not_ready_yet() {
    // Something else holds the address at first (in a VM: the management address
    // is not up yet when the agent starts early in boot).
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = squatter.local_addr().unwrap();
    let agent = Agent::start(AgentOptions {
        addr: Some(addr),
        ..AgentOptions::default()
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(agent.is_running(), "{}", agent.log());
    assert!(
        agent.log().contains("listen address not ready"),
        "{}",
        agent.log()
    );
    drop(squatter);
    let mut client = agent.serving().await;
    assert_eq!(client.health().await.unwrap(), Health::Serving);

    // With a short retry window and the address never free, it gives up.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut agent = Agent::start(AgentOptions {
        addr: Some(squatter.local_addr().unwrap()),
        extra: vec!["--listen-retry-secs".into(), "1".into()],
        ..AgentOptions::default()
    });
    let status = agent.wait_exit(Duration::from_secs(20));
    assert!(!status.success());
    assert!(agent.log().contains("cannot listen on"), "{}", agent.log());
}
