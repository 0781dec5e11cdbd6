//! `dpdk-agent ping`: the serving agent's PingPong, asked through its control socket
//! and printed like ping(8). The agent owns the data port, so this is the only way
//! to reach the peer over the DPDK link without stopping it.

use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use agent_proto::v1;
use agent_proto::v1::agent_client::AgentClient;
use anyhow::{anyhow, bail, Result};
use dpdk_agent::control::{self, ControlError};
use tonic::transport::Channel;

use crate::cli::PingArgs;

/// `ping`: exit status 0 when every echo came back, 1 when any was lost or the peer
/// did not answer ARP.
pub fn ping(args: &PingArgs) -> Result<ExitCode> {
    let socket = args
        .control_socket
        .clone()
        .unwrap_or_else(control::default_socket);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(run(args, &socket))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome.to_json(args))?);
    } else {
        print!("{}", outcome.render_summary(args.peer));
    }
    Ok(if outcome.all_answered() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What the agent streamed: its progress reports, then the result.
struct PingOutcome {
    progress: Vec<v1::PingPongProgress>,
    result: v1::PingPongResult,
    interrupted: bool,
}

fn micros(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

impl PingOutcome {
    fn all_answered(&self) -> bool {
        self.result.lost == 0 && self.result.received == self.result.sent
    }

    fn rtt(&self) -> v1::LatencySummary {
        self.result.rtt.unwrap_or_default()
    }

    /// ping(8)'s closing lines.
    fn render_summary(&self, peer: Ipv4Addr) -> String {
        let r = &self.result;
        let rtt = self.rtt();
        let (min_p50_p99_max, p90_p999_mean_stdev) = if r.received == 0 {
            ("-/-/-/-".to_owned(), "-/-/-/-".to_owned())
        } else {
            (
                format!(
                    "{:.1}/{:.1}/{:.1}/{:.1}",
                    micros(rtt.min_ns),
                    micros(rtt.p50_ns),
                    micros(rtt.p99_ns),
                    micros(rtt.max_ns)
                ),
                format!(
                    "{:.1}/{:.1}/{:.1}/{:.1}",
                    micros(rtt.p90_ns),
                    micros(rtt.p999_ns),
                    rtt.mean_ns / 1000.0,
                    rtt.stdev_ns / 1000.0
                ),
            )
        };
        let mut text = String::new();
        if self.interrupted {
            text.push_str("interrupted\n");
        }
        text.push_str(&format!(
            "--- {peer} ping statistics (peer mac {}, {}-byte frames) ---\n",
            if r.peer_mac.is_empty() {
                "unknown"
            } else {
                &r.peer_mac
            },
            r.size
        ));
        text.push_str(&format!(
            "{} packets transmitted, {} received, {} lost, rtt min/p50/p99/max = {min_p50_p99_max} us\n",
            r.sent, r.received, r.lost
        ));
        text.push_str(&format!(
            "{} duplicates, {} reordered, time {:.0} ms, rtt p90/p99.9/mean/stdev = {p90_p999_mean_stdev} us\n",
            r.duplicates,
            r.reordered,
            r.elapsed_ns as f64 / 1e6
        ));
        text
    }

    fn to_json(&self, args: &PingArgs) -> serde_json::Value {
        let r = &self.result;
        let rtt = self.rtt();
        serde_json::json!({
            "peer_ip": args.peer.to_string(),
            "peer_mac": r.peer_mac,
            "frame_size": r.size,
            "count": args.count,
            "interval_ms": args.interval_ms,
            "timeout_ms": args.timeout_ms,
            "interrupted": self.interrupted,
            "ok": self.all_answered(),
            "sent": r.sent,
            "received": r.received,
            "lost": r.lost,
            "duplicates": r.duplicates,
            "reordered": r.reordered,
            "elapsed_ms": r.elapsed_ns as f64 / 1e6,
            "rtt_us": {
                "min": micros(rtt.min_ns), "p50": micros(rtt.p50_ns), "p90": micros(rtt.p90_ns),
                "p99": micros(rtt.p99_ns), "p999": micros(rtt.p999_ns), "max": micros(rtt.max_ns),
                "mean": rtt.mean_ns / 1000.0, "stdev": rtt.stdev_ns / 1000.0,
            },
            "progress": self.progress.iter().map(|p| serde_json::json!({
                "elapsed_ms": p.elapsed_ns as f64 / 1e6,
                "sent": p.sent,
                "received": p.received,
                "lost": p.lost,
                "last_rtt_us": micros(p.last_rtt_ns),
            })).collect::<Vec<_>>(),
        })
    }
}

fn no_agent(socket: &Path) -> String {
    format!(
        "no serving agent at {}; is dpdk-agent.service running?",
        socket.display()
    )
}

fn not_root(socket: &Path) -> String {
    format!(
        "permission denied on {}: the control socket is root-only, run dpdk-agent ping as root",
        socket.display()
    )
}

/// The first I/O error kind in `error`'s chain.
fn io_error_kind(error: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cause = error.source();
    }
    None
}

async fn connect(socket: &Path) -> Result<AgentClient<Channel>> {
    match std::fs::symlink_metadata(socket) {
        Ok(_) => {}
        Err(error) if error.kind() == ErrorKind::PermissionDenied => bail!(not_root(socket)),
        Err(_) => bail!(no_agent(socket)),
    }
    control::connect(socket).await.map_err(|error| {
        let kind = match &error {
            ControlError::Connect { source, .. } => io_error_kind(source),
            _ => None,
        };
        match kind {
            Some(ErrorKind::PermissionDenied) => anyhow!(not_root(socket)),
            _ => anyhow::Error::new(error).context(no_agent(socket)),
        }
    })
}

/// The agent's refusal or failure (its message names the cause, e.g. "peer ... did
/// not answer ARP", or the workload the port is busy with).
fn agent_error(peer: Ipv4Addr, status: &tonic::Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument => {
            anyhow!("ping {peer}: {}", status.message())
        }
        code => anyhow!(
            "ping {peer}: the serving agent failed ({code:?}): {}",
            status.message()
        ),
    }
}

async fn run(args: &PingArgs, socket: &Path) -> Result<PingOutcome> {
    let mut client = connect(socket).await?;
    let request = v1::PingPongRequest {
        peer_ip: args.peer.to_string(),
        count: args.count,
        size: 0,
        interval_ns: duration_ns(Duration::from_millis(args.interval_ms)),
        window: 1,
        timeout_ns: duration_ns(Duration::from_millis(args.timeout_ms)),
        ..v1::PingPongRequest::default()
    };
    if !args.json {
        println!(
            "PING {} over the DPDK data link of the agent at {}: {} echoes, every {} ms, {} ms timeout",
            args.peer,
            socket.display(),
            args.count,
            args.interval_ms,
            args.timeout_ms
        );
    }
    let mut stream = client
        .ping_pong(request)
        .await
        .map_err(|status| agent_error(args.peer, &status))?
        .into_inner();
    let mut progress = Vec::new();
    let mut interrupted = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let result = loop {
        tokio::select! {
            message = stream.message() => {
                let event = message.map_err(|status| agent_error(args.peer, &status))?;
                match event.and_then(|event| event.event) {
                    Some(v1::ping_pong_event::Event::Progress(report)) => {
                        if !args.json {
                            println!(
                                "{:>5.1} s: {} sent, {} received, {} lost, last rtt {:.1} us",
                                report.elapsed_ns as f64 / 1e9,
                                report.sent,
                                report.received,
                                report.lost,
                                micros(report.last_rtt_ns)
                            );
                        }
                        progress.push(report);
                    }
                    Some(v1::ping_pong_event::Event::Result(result)) => break result,
                    None => bail!("ping {}: the serving agent ended the stream without a result", args.peer),
                }
            }
            // Like ping(8): Ctrl-C ends the run early and still prints what came back.
            // Stop makes the agent end the workload and stream its partial result.
            signal = &mut ctrl_c, if !interrupted => {
                signal?;
                interrupted = true;
                client.clone().stop(v1::StopRequest {}).await
                    .map_err(|status| agent_error(args.peer, &status))?;
            }
        }
    };
    Ok(PingOutcome {
        progress,
        result,
        interrupted,
    })
}

fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
