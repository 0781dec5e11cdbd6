//! Drives workloads across the lab's agents: the reflector and initiator of a
//! ping-pong, the receiver and transmitter of a bench (one way or both), and every
//! agent's selftest through its peer. Commands print; this module only talks to agents
//! and turns their answers into the records of [`crate::results`].

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use agent_proto::client::{AgentClient, ClientError};
use agent_proto::v1;

use crate::context::AgentEndpoint;
use crate::dut::{DutCounters, DutSession};
use crate::results::{self, udp_drops, BenchDirection, BenchSecond, Latency, PingPongSide};
use crate::units::nanos;

/// Why a workload could not be run.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// The agent did not answer.
    #[error("cannot reach the agent of {vm} at {addr}")]
    Connect {
        /// The VM.
        vm: String,
        /// Its agent's address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: ClientError,
    },
    /// The agent refused or failed the request.
    #[error("{vm}: {what}")]
    Agent {
        /// The VM.
        vm: String,
        /// What was asked of it.
        what: &'static str,
        /// The agent's answer.
        #[source]
        source: ClientError,
    },
    /// The agent's answer could not be read.
    #[error("{vm}: a latency histogram from the agent cannot be decoded")]
    Histogram {
        /// The VM.
        vm: String,
        /// The cause.
        #[source]
        source: agent_proto::histogram::HistogramCodecError,
    },
    /// Ctrl-C: the workloads were stopped and the agents left serving.
    #[error("interrupted; the agents' workloads were stopped")]
    Interrupted,
}

/// A connected agent and which VM it is.
pub struct Agent {
    /// The VM's endpoint.
    pub endpoint: AgentEndpoint,
    /// The connection.
    pub client: AgentClient,
}

impl Agent {
    /// Connects within a few seconds or says which VM did not answer.
    pub async fn connect(endpoint: &AgentEndpoint) -> Result<Agent, DriveError> {
        let client =
            AgentClient::connect(endpoint.addr, &endpoint.security, Duration::from_secs(5))
                .await
                .map_err(|source| DriveError::Connect {
                    vm: endpoint.name.clone(),
                    addr: endpoint.addr,
                    source,
                })?;
        Ok(Agent {
            endpoint: endpoint.clone(),
            client,
        })
    }

    fn fail(&self, what: &'static str) -> impl FnOnce(ClientError) -> DriveError + '_ {
        move |source| DriveError::Agent {
            vm: self.endpoint.name.clone(),
            what,
            source,
        }
    }

    /// Versions for the run record.
    pub async fn info(&mut self) -> Result<v1::InfoReply, DriveError> {
        let reply = self.client.info().await;
        reply.map_err(self.fail("Info"))
    }

    /// Hands the data port to the kernel or to another DPDK process.
    pub async fn release_port(
        &mut self,
        to: v1::ReleaseTo,
    ) -> Result<v1::ReleasePortReply, DriveError> {
        let reply = self.client.release_port(to).await;
        reply.map_err(self.fail("ReleasePort"))
    }

    /// Takes the data port back for DPDK.
    pub async fn acquire_port(&mut self) -> Result<bool, DriveError> {
        let reply = self.client.acquire_port().await;
        reply.map_err(self.fail("AcquirePort"))
    }

    async fn stop_quietly(&mut self) {
        if let Err(err) = self.client.stop().await {
            tracing::warn!(vm = %self.endpoint.name, "cannot stop the workload: {err}");
        }
    }
}

/// Runs `work` unless Ctrl-C comes first; on Ctrl-C stops the workloads on `agents`.
async fn interruptible<T>(
    agents: &mut [&mut Agent],
    work: impl std::future::Future<Output = Result<T, DriveError>>,
) -> Result<T, DriveError> {
    tokio::select! {
        outcome = work => outcome,
        _ = tokio::signal::ctrl_c() => {
            for agent in agents.iter_mut() {
                agent.stop_quietly().await;
            }
            Err(DriveError::Interrupted)
        }
    }
}

/// Ping-pong from `from` to the reflector on `to`. The reflector is stopped on every
/// path, so both agents are idle afterwards.
pub async fn pingpong(
    from: &mut Agent,
    to: &mut Agent,
    request: v1::PingPongRequest,
    on_progress: impl FnMut(&v1::PingPongProgress),
) -> Result<PingPongSide, DriveError> {
    to.client.reflect().await.map_err(to.fail("Reflect"))?;
    let result = against_reflector(from, to, request, on_progress).await?;
    pingpong_side("agent", &result, &from.endpoint.name)
}

/// Runs the initiator on `from` against the reflector already started on `to`, and
/// stops that reflector on every path, Ctrl-C included.
async fn against_reflector(
    from: &mut Agent,
    to: &mut Agent,
    request: v1::PingPongRequest,
    on_progress: impl FnMut(&v1::PingPongProgress),
) -> Result<v1::PingPongResult, DriveError> {
    let mut initiator = from.client.clone();
    let run = async {
        initiator
            .pingpong(request, on_progress)
            .await
            .map_err(from.fail("PingPong"))
    };
    let outcome = tokio::select! {
        outcome = run => outcome,
        _ = tokio::signal::ctrl_c() => {
            from.stop_quietly().await;
            Err(DriveError::Interrupted)
        }
    };
    let stopped = to
        .client
        .stop_reflect()
        .await
        .map_err(to.fail("StopReflect"));
    let result = outcome?;
    stopped?;
    Ok(result)
}

/// The same ping-pong through both guests' kernel UDP stacks: both agents give their
/// NICs back to the kernel (data IP, link up), the kernel reflector runs on `to`, the
/// kernel initiator on `from`, then both take their ports back — on every path.
pub async fn pingpong_kernel(
    from: &mut Agent,
    to: &mut Agent,
    mut request: v1::PingPongRequest,
    on_progress: impl FnMut(&v1::PingPongProgress),
) -> Result<PingPongSide, DriveError> {
    request.kernel = true;
    let outcome = async {
        let (released_from, released_to) = tokio::join!(
            from.release_port(v1::ReleaseTo::Kernel),
            to.release_port(v1::ReleaseTo::Kernel)
        );
        let (released_from, released_to) = (released_from?, released_to?);
        tracing::info!(
            from = %released_from.ifname, to = %released_to.ifname,
            "data NICs on their kernel drivers"
        );
        to.client
            .reflect_kernel()
            .await
            .map_err(to.fail("Reflect"))?;
        against_reflector(from, to, request, on_progress).await
    }
    .await;
    let (back_from, back_to) = tokio::join!(from.acquire_port(), to.acquire_port());
    let result = outcome?;
    back_from?;
    back_to?;
    pingpong_side("kernel", &result, &from.endpoint.name)
}

fn pingpong_side(
    method: &str,
    result: &v1::PingPongResult,
    vm: &str,
) -> Result<PingPongSide, DriveError> {
    let histogram = agent_proto::histogram::decode(&result.histogram).map_err(|source| {
        DriveError::Histogram {
            vm: vm.to_owned(),
            source,
        }
    })?;
    Ok(PingPongSide {
        method: method.to_owned(),
        sent: result.sent,
        received: result.received,
        lost: result.lost,
        duplicates: result.duplicates,
        reordered: result.reordered,
        size: result.size,
        elapsed_ns: result.elapsed_ns,
        rtt: Latency::of(&histogram),
        histogram_v2_base64: results::histogram_base64(&histogram),
    })
}

/// What a bench asks of the agents.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    /// Frame size.
    pub size: u32,
    /// Transmit duration.
    pub duration: Duration,
    /// Target rate per transmitter; 0 = as fast as possible.
    pub rate_pps: u64,
    /// Both directions at once.
    pub bidirectional: bool,
    /// Latency probes per second per transmitter alongside the load (0: none).
    pub probe_rate_pps: u32,
    /// Send the probes only, no load (latency at 0 % load).
    pub probe_only: bool,
}

impl BenchPlan {
    /// The rate the transmitters are paced at (`None`: as fast as they can, or no
    /// load at all with `probe_only`).
    pub fn target_pps(&self) -> Option<u64> {
        (self.rate_pps > 0 && !self.probe_only).then_some(self.rate_pps)
    }
}

/// How long receivers keep counting after the transmitters stop.
const DRAIN: Duration = Duration::from_millis(1000);
/// Receivers start before transmitters; this covers the gap.
const RX_HEAD_START: Duration = Duration::from_millis(1000);

fn udp_endpoint(endpoint: &AgentEndpoint) -> Option<SocketAddrV4> {
    endpoint
        .udp_local
        .map(|port| SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// Both ends' link drop counters now: in user mode each VM's UDP socket drops, `None`
/// where there is no such socket.
fn link_drops_now(a: &AgentEndpoint, b: &AgentEndpoint) -> [Option<u64>; 2] {
    [udp_endpoint(a), udp_endpoint(b)].map(|socket| socket.and_then(udp_drops::read_socket_drops))
}

/// What each end's socket dropped between two readings of [`link_drops_now`].
fn link_drops_between(before: [Option<u64>; 2], after: [Option<u64>; 2]) -> [u64; 2] {
    [0, 1].map(|i| match (before[i], after[i]) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => 0,
    })
}

/// A bench between `a` and `b`: a → b, and b → a too when bidirectional. Returns the
/// directions with each lost packet attributed to a counter where one saw it.
pub async fn bench(
    a: &mut Agent,
    b: &mut Agent,
    plan: &BenchPlan,
    mut on_progress: impl FnMut(&str, &v1::BenchProgress),
) -> Result<Vec<BenchDirection>, DriveError> {
    let size = plan.size;
    let drops_before = link_drops_now(&a.endpoint, &b.endpoint);
    let a_name = a.endpoint.name.clone();
    let b_name = b.endpoint.name.clone();
    let (a_result, b_result) = {
        let tx_request = |peer: Ipv4Addr, mode: v1::BenchMode| v1::BenchRequest {
            mode: mode as i32,
            peer_ip: peer.to_string(),
            size,
            rate_pps: plan.rate_pps,
            duration_ns: nanos(plan.duration),
            count: 0,
            burst: 0,
            drain_ns: nanos(DRAIN),
            probe_rate_pps: plan.probe_rate_pps,
            probe_only: plan.probe_only,
            ..v1::BenchRequest::default()
        };
        let (a_request, b_request) = if plan.bidirectional {
            (
                tx_request(b.endpoint.data_ip, v1::BenchMode::Both),
                tx_request(a.endpoint.data_ip, v1::BenchMode::Both),
            )
        } else {
            let mut rx = tx_request(a.endpoint.data_ip, v1::BenchMode::Rx);
            rx.peer_ip.clear();
            rx.probe_rate_pps = 0;
            rx.probe_only = false;
            rx.duration_ns = nanos(plan.duration + RX_HEAD_START);
            (tx_request(b.endpoint.data_ip, v1::BenchMode::Tx), rx)
        };
        // The receiver starts first so the transmitter's first packets are counted.
        let b_client = b.client.clone();
        let b_started = b_client.raw().bench(b_request).await;
        let mut b_stream = b_started
            .map_err(|status| DriveError::Agent {
                vm: b_name.clone(),
                what: "Bench",
                source: ClientError::Rpc {
                    rpc: "Bench",
                    status,
                },
            })?
            .into_inner();
        if !plan.bidirectional {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut a_client = a.client.clone();
        let progress = std::sync::Mutex::new(&mut on_progress);
        let a_run = async {
            a_client
                .bench(a_request, |p| {
                    (progress.lock().expect("progress"))(&a_name, p)
                })
                .await
                .map_err(|source| DriveError::Agent {
                    vm: a_name.clone(),
                    what: "Bench",
                    source,
                })
        };
        let b_run = async {
            use v1::bench_event::Event;
            loop {
                match b_stream.message().await {
                    Ok(Some(v1::BenchEvent {
                        event: Some(Event::Result(result)),
                    })) => return Ok(result),
                    Ok(Some(v1::BenchEvent {
                        event: Some(Event::Progress(p)),
                    })) => (progress.lock().expect("progress"))(&b_name, &p),
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(DriveError::Agent {
                            vm: b_name.clone(),
                            what: "Bench",
                            source: ClientError::Stream { rpc: "Bench" },
                        })
                    }
                    Err(status) => {
                        return Err(DriveError::Agent {
                            vm: b_name.clone(),
                            what: "Bench",
                            source: ClientError::Rpc {
                                rpc: "Bench",
                                status,
                            },
                        })
                    }
                }
            }
        };
        let both = async { tokio::try_join!(a_run, b_run) };
        interruptible(&mut [a, b], both).await?
    };
    let [a_drops, b_drops] =
        link_drops_between(drops_before, link_drops_now(&a.endpoint, &b.endpoint));
    let mut directions = vec![direction(
        (&a.endpoint, &a_result),
        (&b.endpoint, &b_result),
        plan,
        b_drops,
    )?];
    if plan.bidirectional {
        directions.push(direction(
            (&b.endpoint, &b_result),
            (&a.endpoint, &a_result),
            plan,
            a_drops,
        )?);
    }
    Ok(directions)
}

/// A bench through the application on a DUT: `tg` sends to the DUT's data port (its
/// MAC given, since a DUT answers no ARP) and counts what comes back on the same
/// port, both legs' link drops and the DUT's own port counters (read through its
/// telemetry before and after) locating the loss. Stops with the application's last
/// output if it ends during the trial.
pub async fn bench_through(
    tg: &mut Agent,
    dut_agent: &mut Agent,
    dut: &mut DutSession,
    plan: &BenchPlan,
    mut on_progress: impl FnMut(&str, &v1::BenchProgress),
) -> anyhow::Result<BenchDirection> {
    dut.check_running()?;
    let drops_before = link_drops_now(&tg.endpoint, &dut_agent.endpoint);
    let stats_before = dut.stats(dut_agent).await?;
    let xstats_before = dut.xstats(dut_agent).await.unwrap_or_default();
    let request = v1::BenchRequest {
        mode: v1::BenchMode::Both as i32,
        peer_ip: dut.grant.ip.clone(),
        peer_mac: dut.grant.mac.clone(),
        through_dut: true,
        size: plan.size,
        rate_pps: plan.rate_pps,
        duration_ns: nanos(plan.duration),
        drain_ns: nanos(DRAIN),
        probe_rate_pps: plan.probe_rate_pps,
        probe_only: plan.probe_only,
        ..v1::BenchRequest::default()
    };
    let tg_name = tg.endpoint.name.clone();
    let mut client = tg.client.clone();
    let run = client.bench(request, |progress| on_progress(&tg_name, progress));
    let result = while_dut_runs(tg, dut, "Bench", run).await?;
    dut.check_running()?;
    let stats = dut.stats(dut_agent).await?.since(&stats_before);
    let xstats_after = dut.xstats(dut_agent).await.unwrap_or_default();
    // Both legs: to the DUT, and back to the generator.
    let link_drops = link_drops_between(
        drops_before,
        link_drops_now(&tg.endpoint, &dut_agent.endpoint),
    )
    .iter()
    .sum();
    let mut direction = direction(
        (&tg.endpoint, &result),
        (&tg.endpoint, &result),
        plan,
        link_drops,
    )?;
    direction.through = Some(dut.vm_index());
    direction.dut = Some(DutCounters {
        vm: dut.vm_index(),
        source: format!("telemetry /ethdev/stats,{}", dut.port_id),
        forward_drops: stats.ipackets.saturating_sub(stats.opackets),
        port: stats,
        xstats: xstats_after
            .into_iter()
            .filter_map(|(name, after)| {
                let change = after.saturating_sub(xstats_before.get(&name).copied().unwrap_or(0));
                (change > 0).then_some((name, change))
            })
            .collect(),
    });
    direction.account();
    Ok(direction)
}

/// Ping-pong from `tg` through the application on a DUT (its frames returned by
/// it, see [`bench_through`]).
pub async fn pingpong_through(
    tg: &mut Agent,
    dut: &mut DutSession,
    mut request: v1::PingPongRequest,
    on_progress: impl FnMut(&v1::PingPongProgress),
) -> anyhow::Result<PingPongSide> {
    dut.check_running()?;
    request.peer_ip = dut.grant.ip.clone();
    request.peer_mac = dut.grant.mac.clone();
    request.through_dut = true;
    let mut client = tg.client.clone();
    let run = client.pingpong(request, on_progress);
    let result = while_dut_runs(tg, dut, "PingPong", run).await?;
    Ok(pingpong_side("agent", &result, &tg.endpoint.name)?)
}

/// Runs `rpc`, `tg`'s workload through the DUT, unless the DUT's application ends or
/// Ctrl-C comes first; then stops the workload and says which.
async fn while_dut_runs<T>(
    tg: &mut Agent,
    dut: &mut DutSession,
    what: &'static str,
    rpc: impl std::future::Future<Output = Result<T, ClientError>>,
) -> anyhow::Result<T> {
    let stopped_by = tokio::select! {
        result = rpc => return Ok(result.map_err(tg.fail(what))?),
        error = dut.ended() => error.context(format!("the {what} stopped")),
        _ = tokio::signal::ctrl_c() => DriveError::Interrupted.into(),
    };
    tg.stop_quietly().await;
    Err(stopped_by)
}

fn direction(
    (tx_vm, tx): (&AgentEndpoint, &v1::BenchResult),
    (rx_vm, rx): (&AgentEndpoint, &v1::BenchResult),
    plan: &BenchPlan,
    link_drops: u64,
) -> Result<BenchDirection, DriveError> {
    let (size, duration) = (plan.size, plan.duration);
    let tx_counters = tx.counters.unwrap_or_default();
    let rx_counters = rx.counters.unwrap_or_default();
    let rx_port = rx.port.unwrap_or_default();
    // The transmitter sends for exactly the planned duration; its elapsed time also
    // covers the drain, so rates are per planned second: totals over the time the
    // transmitter sent, the definition `BenchDirection::tx_pps` states and the testpmd
    // baseline shares (it measures testpmd's forwarding time instead of planning it).
    let seconds = duration.as_secs_f64().max(1e-9);
    let rx_by_second: std::collections::BTreeMap<u64, u64> =
        rx.per_second.iter().map(|s| (s.second, s.rx_pps)).collect();
    let per_second = tx
        .per_second
        .iter()
        .map(|s| BenchSecond {
            second: s.second,
            tx_pps: s.tx_pps,
            rx_pps: rx_by_second.get(&s.second).copied().unwrap_or(0),
        })
        .collect();
    let send_secs = tx_counters.send_ns as f64 / 1e9;
    let offered_pps = if send_secs > 0.0 {
        tx_counters.tx_packets as f64 / send_secs
    } else {
        0.0
    };
    let target_pps = plan.target_pps();
    let latency = if plan.probe_rate_pps > 0 {
        let histogram = if tx.probe_rtt_histogram.is_empty() {
            hdrhistogram::Histogram::new(3).expect("3 significant digits are valid")
        } else {
            agent_proto::histogram::decode(&tx.probe_rtt_histogram).map_err(|source| {
                DriveError::Histogram {
                    vm: tx_vm.name.clone(),
                    source,
                }
            })?
        };
        Some(results::ProbeLatency {
            timestamp_source: results::PROBE_TIMESTAMP_SOURCE.to_owned(),
            probe_rate_pps: plan.probe_rate_pps,
            sent: tx_counters.probes_sent,
            returned: tx_counters.probes_returned,
            rtt: Latency::of(&histogram),
            histogram_v2_base64: results::histogram_base64(&histogram),
        })
    } else {
        None
    };
    let mut direction = BenchDirection {
        method: "agent".to_owned(),
        from: u32::from(tx_vm.index),
        to: u32::from(rx_vm.index),
        size,
        duration_ns: nanos(duration),
        tx_packets: tx_counters.tx_packets,
        rx_packets: rx_counters.rx_packets,
        tx_ring_full: tx_counters.tx_ring_full,
        imissed: rx_port.imissed,
        rx_nombuf: rx_port.rx_nombuf,
        ierrors: rx_port.ierrors,
        link_drops,
        reordered: rx_counters.rx_reordered,
        through: None,
        dut: None,
        unaccounted: 0,
        tx_pps: tx_counters.tx_packets as f64 / seconds,
        rx_pps: rx_counters.rx_packets as f64 / seconds,
        rx_gbps: rx_counters.rx_bytes as f64 * 8.0 / seconds / 1e9,
        per_second,
        target_pps,
        send_ns: tx_counters.send_ns,
        offered_pps,
        pacing_error: target_pps.map(|target| offered_pps / target as f64 - 1.0),
        latency,
    };
    direction.account();
    Ok(direction)
}

/// Every agent's selftest, each through its peer's reflector (one at a time, so the
/// peer's port is free for it).
pub async fn selftest_all(
    agents: &mut [Agent],
) -> Result<Vec<(String, v1::SelftestReply)>, DriveError> {
    let mut replies = Vec::new();
    for index in 0..agents.len() {
        let peer_ip = agents[index].endpoint.peer_ip;
        let peer_index =
            peer_ip.and_then(|ip| agents.iter().position(|other| other.endpoint.data_ip == ip));
        if let Some(peer) = peer_index {
            let peer_agent = &mut agents[peer];
            peer_agent
                .client
                .reflect()
                .await
                .map_err(peer_agent.fail("Reflect"))?;
        }
        let agent = &mut agents[index];
        let request = v1::SelftestRequest {
            peer_ip: peer_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            timeout_ns: 0,
        };
        let reply = agent
            .client
            .selftest(request)
            .await
            .map_err(agent.fail("Selftest"));
        let name = agent.endpoint.name.clone();
        if let Some(peer) = peer_index {
            let peer_agent = &mut agents[peer];
            peer_agent
                .client
                .stop_reflect()
                .await
                .map_err(peer_agent.fail("StopReflect"))?;
        }
        replies.push((name, reply?));
    }
    Ok(replies)
}
