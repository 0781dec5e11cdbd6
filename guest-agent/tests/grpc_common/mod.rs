//! Shared by the gRPC integration tests: start the real `dpdk-agent serve` binary on
//! a free loopback port (TLS material from agent_proto::pki in a temporary
//! directory), connect the host's client to it, and kill it by PID when done.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use agent_proto::client::{AgentClient, ClientTls, Security};
use agent_proto::pki::CertificateAuthority;

/// The DNS name in the agent's test certificate.
pub const SERVER_NAME: &str = "agent";

/// The environment's TLS material, written into a directory.
pub struct Pki {
    pub ca: CertificateAuthority,
    pub ca_path: PathBuf,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub client: ClientTls,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let ca = CertificateAuthority::generate("dpdkhost test CA").unwrap();
        let server = ca
            .issue_server(&[SERVER_NAME.to_owned()], &["127.0.0.1".parse().unwrap()])
            .unwrap();
        let client = ca.issue_client("dpdkhost").unwrap();
        let ca_path = dir.join("ca.pem");
        let cert_path = dir.join("agent.pem");
        let key_path = dir.join("agent.key");
        std::fs::write(&ca_path, ca.cert_pem()).unwrap();
        std::fs::write(&cert_path, &server.cert_pem).unwrap();
        std::fs::write(&key_path, &server.key_pem).unwrap();
        let client = ClientTls {
            ca_pem: ca.cert_pem().to_owned(),
            cert_pem: client.cert_pem,
            key_pem: client.key_pem,
            server_name: SERVER_NAME.to_owned(),
        };
        Pki {
            ca,
            ca_path,
            cert_path,
            key_path,
            client,
        }
    }
}

/// A free TCP port on 127.0.0.1 (the kernel picks; released before the agent binds).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How to start an agent.
pub struct AgentOptions {
    pub tls: bool,
    /// `serve` arguments after the ones every test agent gets.
    pub extra: Vec<String>,
    /// `--loopback` (default); false for agents that bring their own --vdev/--config.
    pub loopback: bool,
    /// Listen here instead of on a fresh free port.
    pub addr: Option<SocketAddr>,
    /// Start the agent under `prlimit --nofile=N:N` (a low file limit).
    pub nofile: Option<u32>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            tls: true,
            extra: Vec::new(),
            loopback: true,
            addr: None,
            nofile: None,
        }
    }
}

/// A running `dpdk-agent serve`; killed (by PID) and reaped on drop.
pub struct Agent {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub security: Security,
    pub dir: tempfile::TempDir,
    pub pki: Option<Pki>,
    log: PathBuf,
}

impl Agent {
    pub fn start(options: AgentOptions) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = options
            .addr
            .unwrap_or_else(|| format!("127.0.0.1:{}", free_port()).parse().unwrap());
        let mut args: Vec<String> = vec!["serve".into(), "--listen".into(), addr.to_string()];
        if options.loopback {
            args.push("--loopback".into());
        }
        let pki = options.tls.then(|| Pki::new(dir.path()));
        match &pki {
            Some(pki) => {
                for (flag, path) in [
                    ("--tls-ca", &pki.ca_path),
                    ("--tls-cert", &pki.cert_path),
                    ("--tls-key", &pki.key_path),
                ] {
                    args.push(flag.into());
                    args.push(path.display().to_string());
                }
            }
            None => args.push("--insecure".into()),
        }
        args.extend(options.extra);
        let log = dir.path().join("agent.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let agent = env!("CARGO_BIN_EXE_dpdk-agent");
        // prlimit execs the agent: the child's PID is the agent's.
        let mut command = match options.nofile {
            Some(limit) => {
                let mut command = Command::new("prlimit");
                command.arg(format!("--nofile={limit}:{limit}")).arg(agent);
                command
            }
            None => Command::new(agent),
        };
        let child = command
            .args(&args)
            .env("RUST_LOG", "info")
            // Device locks and the control socket: this agent's own.
            .env("DPDK_AGENT_RUN_DIR", dir.path().join("run"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let security = match &pki {
            Some(pki) => Security::Tls(pki.client.clone()),
            None => Security::Insecure,
        };
        Agent {
            child: Some(child),
            addr,
            security,
            dir,
            pki,
            log,
        }
    }

    /// The agent's run directory (device locks, control socket).
    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// What the agent printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Connects once the agent listens (whatever its health).
    pub async fn connect(&self) -> AgentClient {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match AgentClient::connect(self.addr, &self.security, Duration::from_secs(2)).await {
                Ok(mut client) => {
                    // A TLS connection is lazy about failing: make one call.
                    if client.health().await.is_ok() {
                        return client;
                    }
                }
                Err(error) if tokio::time::Instant::now() > deadline => {
                    panic!("agent never listened: {error}\n{}", self.log())
                }
                Err(_) => {}
            }
            assert!(self.is_running(), "agent exited:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Connects and waits for SERVING.
    pub async fn serving(&self) -> AgentClient {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        match AgentClient::wait_serving(self.addr, &self.security, deadline, |_| {}).await {
            Ok(client) => client,
            Err(error) => panic!("agent never SERVING: {error}\n{}", self.log()),
        }
    }

    /// Connects and waits until the data port is open, whatever its link (a memif
    /// server without its client is open with the link down, NOT_SERVING).
    pub async fn port_open(&self) -> AgentClient {
        let mut client = self.connect().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let info = client.info().await.unwrap();
            if !info.ports.is_empty() {
                return client;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the data port never opened: {info:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn is_running(&self) -> bool {
        // An exited, unreaped agent is a zombie: look at its /proc state.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()));
        match stat {
            Ok(stat) => !stat
                .rsplit(')')
                .next()
                .unwrap_or_default()
                .trim_start()
                .starts_with('Z'),
            Err(_) => false,
        }
    }

    /// Resident set of the agent process, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        kib * 1024
    }

    /// Waits for the agent to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        exit_status_within(child, within)
            .unwrap_or_else(|| panic!("agent still running after {within:?}:\n{}", self.log()))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        assert!(sigterm(self.pid()), "kill -TERM {}", self.pid());
        self.wait_exit(within)
    }
}

/// Sends SIGTERM to `pid`; whether `kill` succeeded.
fn sigterm(pid: u32) -> bool {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .is_ok_and(|status| status.success())
}

/// The child's exit status once it has exited, or None if it still runs after `within`.
fn exit_status_within(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Agent {
    /// SIGTERM first, so the agent shuts down as it would under systemd (and removes
    /// its EAL runtime directory); SIGKILL if it has not exited within 10 s. The
    /// agent gives open connections 5 s to close, and a test's connection cannot
    /// close while its runtime thread is blocked in this drop.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                if sigterm(child.id()) {
                    exit_status_within(&mut child, Duration::from_secs(10));
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Asserts `result` is an RPC error with `code` whose message contains `needle`.
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<T, agent_proto::client::ClientError>,
    code: tonic::Code,
    needle: &str,
) -> String {
    let error = result.expect_err("the call should fail");
    match &error {
        agent_proto::client::ClientError::Rpc { status, .. } => {
            assert_eq!(status.code(), code, "{status:?}");
            assert!(
                status.message().contains(needle),
                "{:?} should contain {needle:?}",
                status.message()
            );
            status.message().to_owned()
        }
        other => panic!("expected an RPC status {code:?}, got {other:?}"),
    }
}

/// Asserts that PingPong (to `peer_ip`), Bench and Reflect are each refused as a
/// FailedPrecondition whose message contains `needle`: what an agent answers while
/// its data port is busy or missing.
pub async fn assert_workloads_refused(client: &mut AgentClient, peer_ip: &str, needle: &str) {
    let code = tonic::Code::FailedPrecondition;
    let pingpong = agent_proto::v1::PingPongRequest {
        peer_ip: peer_ip.into(),
        count: 10,
        ..Default::default()
    };
    assert_status(client.pingpong(pingpong, |_| {}).await, code, needle);
    let bench = agent_proto::v1::BenchRequest {
        mode: agent_proto::v1::BenchMode::Rx.into(),
        ..Default::default()
    };
    assert_status(client.bench(bench, |_| {}).await, code, needle);
    assert_status(client.reflect().await, code, needle);
}

/// `dpdk-agent --selftest --json` through the serving agent's control socket (no
/// config file: only the socket and `extra` say what to test).
#[allow(dead_code)] // not every test binary that includes this module calls it
pub fn selftest_through_socket(socket: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dpdk-agent"))
        .args(["--selftest", "--json"])
        .args(extra)
        .arg("--control-socket")
        .arg(socket)
        .args(["--config", "/nonexistent/agent.toml"])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A ping-pong of `count` packets from `initiator` to `peer_ip` through `reflector`'s
/// Reflect, started and stopped around it, as the host drives it.
#[allow(dead_code)] // not every test binary that includes this module calls it
pub async fn pingpong_through_reflector(
    initiator: &mut AgentClient,
    reflector: &mut AgentClient,
    peer_ip: &str,
    count: u64,
) -> (
    agent_proto::v1::PingPongResult,
    agent_proto::v1::ReflectCounters,
) {
    reflector.reflect().await.unwrap();
    let result = initiator
        .pingpong(
            agent_proto::v1::PingPongRequest {
                peer_ip: peer_ip.into(),
                count,
                window: 8,
                timeout_ns: 2_000_000_000,
                ..Default::default()
            },
            |_| {},
        )
        .await
        .unwrap();
    let counters = reflector.stop_reflect().await.unwrap();
    (result, counters)
}

/// A net_memif vdev on `socket` in `role` (server or client).
#[allow(dead_code)] // not every test binary that includes this module calls it
pub fn memif(socket: &Path, role: &str) -> String {
    format!(
        "net_memif0,role={role},socket={},socket-abstract=no",
        socket.display()
    )
}

/// An agent serving a memif port in `role` on `socket`, data address `ip`/24.
#[allow(dead_code)] // not every test binary that includes this module calls it
pub fn memif_agent(socket: &Path, role: &str, ip: &str) -> Agent {
    Agent::start(AgentOptions {
        loopback: false,
        extra: vec![
            "--vdev".into(),
            memif(socket, role),
            "--data-ip".into(),
            format!("{ip}/24"),
        ],
        ..AgentOptions::default()
    })
}

/// The memif server agent at `ip` on `socket`, returned once the socket exists: the
/// memif client does not retry.
pub fn memif_server(socket: &Path, ip: &str) -> Agent {
    let server = memif_agent(socket, "server", ip);
    wait_for_socket(socket);
    server
}

/// Two agents on the memif link at `socket`: (server at `server_ip`, client at
/// `client_ip`).
pub fn memif_pair(socket: &Path, server_ip: &str, client_ip: &str) -> (Agent, Agent) {
    let server = memif_server(socket, server_ip);
    (server, memif_agent(socket, "client", client_ip))
}

/// The memif client does not retry: start it once the server's socket exists.
#[allow(dead_code)] // not every test binary that includes this module calls it
pub fn wait_for_socket(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "no memif socket {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
