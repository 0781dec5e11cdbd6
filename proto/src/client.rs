//! The client the host drives agents with: mutual-TLS connect, waiting for SERVING
//! with backoff, and helpers that turn the streaming RPCs into progress callbacks and
//! one final result.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::v1;
use crate::v1::agent_client::AgentClient as RawClient;

/// TLS material for talking to an agent.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The environment's CA, which signed the agent's certificate.
    pub ca_pem: String,
    /// The host's client certificate, signed by the same CA.
    pub cert_pem: String,
    /// Its key.
    pub key_pem: String,
    /// A DNS name in the agent's certificate (the VM's short name, e.g. `vm1`).
    pub server_name: String,
}

/// How to reach an agent.
#[derive(Debug, Clone)]
pub enum Security {
    /// Mutual TLS (every VM).
    Tls(ClientTls),
    /// Plain HTTP/2, for agents started with `--insecure` (host-side tests, demos).
    Insecure,
}

/// The agent's grpc.health.v1 answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Listening, EAL up, ready for workloads.
    Serving,
    /// Listening, but EAL or the NIC binding failed (Info says why).
    NotServing,
    /// Anything else the health service said.
    Unknown,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Health::Serving => "SERVING",
            Health::NotServing => "NOT_SERVING",
            Health::Unknown => "UNKNOWN",
        })
    }
}

/// Why a call to an agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS material could not be used or no connection was made.
    #[error("cannot connect to the agent at {addr}")]
    Connect {
        /// The agent's address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The agent answered with an error status.
    #[error("{rpc} failed: {}: {}", .status.code(), .status.message())]
    Rpc {
        /// The RPC.
        rpc: &'static str,
        /// The agent's status.
        status: tonic::Status,
    },
    /// The agent did not become SERVING in time.
    #[error("the agent at {addr} was not SERVING within the deadline (last: {last})")]
    Deadline {
        /// The agent's address.
        addr: SocketAddr,
        /// The last status or error seen.
        last: String,
    },
    /// A streaming RPC ended without its final result.
    #[error("{rpc} ended without a result")]
    Stream {
        /// The RPC.
        rpc: &'static str,
    },
}

impl ClientError {
    /// The gRPC status code, when the agent answered with one.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ClientError::Rpc { status, .. } => Some(status.code()),
            _ => None,
        }
    }
}

fn rpc_err(rpc: &'static str) -> impl FnOnce(tonic::Status) -> ClientError {
    move |status| ClientError::Rpc { rpc, status }
}

/// A connection to one agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    addr: SocketAddr,
    agent: RawClient<Channel>,
    health: HealthClient<Channel>,
}

impl AgentClient {
    /// Connects to the agent at `addr`, failing after `timeout`.
    pub async fn connect(
        addr: SocketAddr,
        security: &Security,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let connect_err = |source| ClientError::Connect { addr, source };
        let endpoint = match security {
            Security::Insecure => Endpoint::from_shared(format!("http://{addr}")),
            Security::Tls(_) => Endpoint::from_shared(format!("https://{addr}")),
        }
        .map_err(connect_err)?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
        let endpoint = match security {
            Security::Insecure => endpoint,
            Security::Tls(tls) => endpoint
                .tls_config(
                    ClientTlsConfig::new()
                        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
                        .domain_name(tls.server_name.clone()),
                )
                .map_err(connect_err)?,
        };
        let channel = endpoint.connect().await.map_err(connect_err)?;
        Ok(Self {
            addr,
            agent: RawClient::new(channel.clone()),
            health: HealthClient::new(channel),
        })
    }

    /// Connects and polls health, backing off from 200 ms to 2 s between attempts,
    /// until the agent is SERVING or `deadline` passes. `on_attempt` hears the last
    /// status or error after every failed attempt.
    pub async fn wait_serving(
        addr: SocketAddr,
        security: &Security,
        deadline: Instant,
        mut on_attempt: impl FnMut(&str),
    ) -> Result<Self, ClientError> {
        let mut backoff = Duration::from_millis(200);
        let mut last = String::from("no attempt yet");
        let mut client: Option<AgentClient> = None;
        while Instant::now() < deadline {
            if client.is_none() {
                match Self::connect(addr, security, Duration::from_secs(3)).await {
                    Ok(connected) => client = Some(connected),
                    Err(err) => last = error_chain(&err),
                }
            }
            if let Some(connected) = client.as_mut() {
                match tokio::time::timeout(Duration::from_secs(5), connected.health()).await {
                    Ok(Ok(Health::Serving)) => return Ok(client.take().expect("connected")),
                    Ok(Ok(other)) => last = format!("health {other}"),
                    Ok(Err(err)) => {
                        last = error_chain(&err);
                        client = None;
                    }
                    Err(_) => {
                        last = "health check timed out".into();
                        client = None;
                    }
                }
            }
            on_attempt(&last);
            let remaining = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(backoff.min(remaining)).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        Err(ClientError::Deadline { addr, last })
    }

    /// The address this client talks to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The generated client, for calls these helpers do not cover.
    pub fn raw(&self) -> RawClient<Channel> {
        self.agent.clone()
    }

    /// grpc.health.v1 Check for the agent service.
    pub async fn health(&mut self) -> Result<Health, ClientError> {
        let reply = self
            .health
            .check(HealthCheckRequest {
                service: crate::HEALTH_SERVICE_NAME.into(),
            })
            .await
            .map_err(rpc_err("Health.Check"))?
            .into_inner();
        Ok(match ServingStatus::try_from(reply.status) {
            Ok(ServingStatus::Serving) => Health::Serving,
            Ok(ServingStatus::NotServing) => Health::NotServing,
            _ => Health::Unknown,
        })
    }

    /// Info.
    pub async fn info(&mut self) -> Result<v1::InfoReply, ClientError> {
        Ok(self
            .agent
            .info(v1::InfoRequest {})
            .await
            .map_err(rpc_err("Info"))?
            .into_inner())
    }

    /// Selftest.
    pub async fn selftest(
        &mut self,
        request: v1::SelftestRequest,
    ) -> Result<v1::SelftestReply, ClientError> {
        Ok(self
            .agent
            .selftest(request)
            .await
            .map_err(rpc_err("Selftest"))?
            .into_inner())
    }

    /// Starts the reflector.
    pub async fn reflect(&mut self) -> Result<(), ClientError> {
        self.agent
            .reflect(v1::ReflectRequest { kernel: false })
            .await
            .map_err(rpc_err("Reflect"))?;
        Ok(())
    }

    /// Starts the kernel-socket UDP reflector (the port must be released to the kernel).
    pub async fn reflect_kernel(&mut self) -> Result<(), ClientError> {
        self.agent
            .reflect(v1::ReflectRequest { kernel: true })
            .await
            .map_err(rpc_err("Reflect"))?;
        Ok(())
    }

    /// Hands the data NIC to the kernel or to another DPDK process.
    pub async fn release_port(
        &mut self,
        to: v1::ReleaseTo,
    ) -> Result<v1::ReleasePortReply, ClientError> {
        Ok(self
            .agent
            .release_port(v1::ReleasePortRequest { to: to as i32 })
            .await
            .map_err(rpc_err("ReleasePort"))?
            .into_inner())
    }

    /// Takes the data NIC back for DPDK; true when it was released.
    pub async fn acquire_port(&mut self) -> Result<bool, ClientError> {
        Ok(self
            .agent
            .acquire_port(v1::AcquirePortRequest {})
            .await
            .map_err(rpc_err("AcquirePort"))?
            .into_inner()
            .was_released)
    }

    /// Asks the DPDK process started with `--file-prefix file_prefix` in the agent's VM
    /// one telemetry `command` (`/ethdev/stats,0`); its JSON answer, untrusted.
    pub async fn telemetry(
        &mut self,
        file_prefix: &str,
        command: &str,
    ) -> Result<v1::TelemetryReply, ClientError> {
        Ok(self
            .agent
            .telemetry(v1::TelemetryRequest {
                file_prefix: file_prefix.to_owned(),
                command: command.to_owned(),
            })
            .await
            .map_err(rpc_err("Telemetry"))?
            .into_inner())
    }

    /// Stops the reflector and returns its counters.
    pub async fn stop_reflect(&mut self) -> Result<v1::ReflectCounters, ClientError> {
        Ok(self
            .agent
            .stop_reflect(v1::StopReflectRequest {})
            .await
            .map_err(rpc_err("StopReflect"))?
            .into_inner()
            .counters
            .unwrap_or_default())
    }

    /// Stops whatever runs; returns what was stopped (empty when idle).
    pub async fn stop(&mut self) -> Result<String, ClientError> {
        Ok(self
            .agent
            .stop(v1::StopRequest {})
            .await
            .map_err(rpc_err("Stop"))?
            .into_inner()
            .stopped)
    }

    /// Runs a ping-pong, calling `on_progress` for every progress event.
    pub async fn pingpong(
        &mut self,
        request: v1::PingPongRequest,
        mut on_progress: impl FnMut(&v1::PingPongProgress),
    ) -> Result<v1::PingPongResult, ClientError> {
        use v1::ping_pong_event::Event;
        let mut stream = self
            .agent
            .ping_pong(request)
            .await
            .map_err(rpc_err("PingPong"))?
            .into_inner();
        while let Some(event) = stream.message().await.map_err(rpc_err("PingPong"))? {
            match event.event {
                Some(Event::Progress(progress)) => on_progress(&progress),
                Some(Event::Result(result)) => return Ok(result),
                None => {}
            }
        }
        Err(ClientError::Stream { rpc: "PingPong" })
    }

    /// Runs a bench, calling `on_progress` for every per-second event.
    pub async fn bench(
        &mut self,
        request: v1::BenchRequest,
        mut on_progress: impl FnMut(&v1::BenchProgress),
    ) -> Result<v1::BenchResult, ClientError> {
        use v1::bench_event::Event;
        let mut stream = self
            .agent
            .bench(request)
            .await
            .map_err(rpc_err("Bench"))?
            .into_inner();
        while let Some(event) = stream.message().await.map_err(rpc_err("Bench"))? {
            match event.event {
                Some(Event::Progress(progress)) => on_progress(&progress),
                Some(Event::Result(result)) => return Ok(result),
                None => {}
            }
        }
        Err(ClientError::Stream { rpc: "Bench" })
    }
}

pub use crate::error_chain;
