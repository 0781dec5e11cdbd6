//! A flood of idle TCP connections (what any host user can open through the VM's
//! 127.0.0.1 port forward) against a real mutual-TLS agent with a low file limit:
//! a valid client is still answered, and the agent does not spin on `accept`.

mod grpc_common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use agent_proto::client::AgentClient;
use grpc_common::{Agent, AgentOptions};

/// The agent's file limit: far fewer descriptors than the flood has connections.
const FILE_LIMIT: u32 = 128;
const IDLE_CONNECTIONS: usize = 300;
/// How long the valid client may take to get its Info answered.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);
/// CPU the agent may use while the flood sits idle, in cores (a spinning accept
/// loop uses 1.0).
const IDLE_CPU_LIMIT: f64 = 0.3;

/// utime + stime of `pid` in seconds, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after "(comm)": state is field 3, utime field 14, stime field 15.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let output = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    let per_second: f64 = String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ticks as f64 / per_second
}

/// Opens up to `count` idle TCP connections, stopping at the first that the agent's
/// listen backlog no longer takes (as it happens when the agent stops accepting).
fn open_idle(agent: &Agent, count: usize) -> Vec<TcpStream> {
    let mut open = Vec::with_capacity(count);
    for _ in 0..count {
        match TcpStream::connect_timeout(&agent.addr, Duration::from_secs(2)) {
            Ok(stream) => open.push(stream),
            Err(error) => {
                eprintln!("idle connection {} not taken: {error}", open.len() + 1);
                break;
            }
        }
    }
    open
}

/// Connects a fresh client and asks for Info, retrying until `within` has passed;
/// how long it took.
async fn info_answered(agent: &Agent, within: Duration) -> Duration {
    let start = Instant::now();
    let mut last_error = String::new();
    while start.elapsed() < within {
        let attempt = async {
            let mut client =
                AgentClient::connect(agent.addr, &agent.security, Duration::from_secs(3))
                    .await
                    .map_err(|error| error.to_string())?;
            client.info().await.map_err(|error| error.to_string())
        };
        match tokio::time::timeout(Duration::from_secs(4), attempt).await {
            Ok(Ok(info)) => {
                assert!(!info.agent_version.is_empty(), "{info:?}");
                return start.elapsed();
            }
            Ok(Err(error)) => last_error = error,
            Err(_) => last_error = "no answer within 4 s".into(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "no Info within {within:?} while {IDLE_CONNECTIONS} idle connections are open: {last_error}\n{}",
        agent.log()
    );
}

#[tokio::test]
async fn a_valid_client_is_answered_during_an_idle_connection_flood() {
    let agent = Agent::start(AgentOptions {
        nofile: Some(FILE_LIMIT),
        ..AgentOptions::default()
    });
    drop(agent.serving().await);

    let flood = open_idle(&agent, IDLE_CONNECTIONS);
    let took = info_answered(&agent, ANSWER_WITHIN).await;
    eprintln!("Info answered after {took:?} with {IDLE_CONNECTIONS} idle connections open");

    // The flood stays open and idle: the agent must not spin.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu_before, wall_before) = (cpu_seconds(agent.pid()), Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cores = (cpu_seconds(agent.pid()) - cpu_before) / wall_before.elapsed().as_secs_f64();
    eprintln!(
        "agent CPU while the flood sits idle: {:.0}% of a core",
        cores * 100.0
    );
    assert!(
        cores < IDLE_CPU_LIMIT,
        "the agent used {:.0}% of a core with {IDLE_CONNECTIONS} idle connections open",
        cores * 100.0
    );

    // A second wave on top of the first: still answered.
    let second = open_idle(&agent, IDLE_CONNECTIONS);
    info_answered(&agent, ANSWER_WITHIN).await;
    assert!(agent.is_running(), "{}", agent.log());
    // The agent kept accepting: every idle connection got in (and was closed by
    // the agent after its handshake timeout, not left in the backlog).
    assert_eq!(
        (flood.len(), second.len()),
        (IDLE_CONNECTIONS, IDLE_CONNECTIONS)
    );
    drop((flood, second));
}
