//! `dpdkhost status`: each VM's domain state, acceleration, addresses, agent health and
//! EAL state (asked over gRPC, a few seconds at most).

use std::process::ExitCode;
use std::time::Duration;

use agent_proto::client::{AgentClient, Health};
use agent_proto::v1::EalState;
use serde::Serialize;

use crate::context::{self, Context};
use crate::ui;

/// One row of `status`.
#[derive(Debug, Serialize)]
pub struct VmStatus {
    /// Short name.
    pub vm: String,
    /// libvirt domain.
    pub domain: String,
    /// Domain state (running, shut off, missing, ...).
    pub state: String,
    /// kvm or tcg.
    pub accel: Option<String>,
    /// Management address in the guest.
    pub mgmt_ip: String,
    /// Where the host reaches sshd.
    pub ssh: String,
    /// Where the host reaches the agent.
    pub agent: String,
    /// Data address.
    pub data_ip: String,
    /// SERVING, NOT_SERVING, UNKNOWN or UNREACHABLE.
    pub agent_health: String,
    /// Why the agent is unreachable, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_error: Option<String>,
    /// READY, FAILED, RELEASED or UNSPECIFIED (from Info), when the agent answered.
    pub eal_state: Option<String>,
    /// Why EAL failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eal_error: Option<String>,
    /// Who holds the data port: `agent`, `released` (to a DPDK application: `port
    /// release`, `exec --dpdk`, the testpmd baseline), `kernel` (handed to the kernel
    /// driver), or `none`.
    pub port_holder: Option<String>,
}

/// Who holds the data port, from the agent's Info.
pub fn port_holder(info: &agent_proto::v1::InfoReply) -> &'static str {
    match EalState::try_from(info.eal_state).unwrap_or(EalState::Unspecified) {
        EalState::Ready => "agent",
        EalState::Released
            if !info.kernel_driver.is_empty() && info.bound_driver == info.kernel_driver =>
        {
            "kernel"
        }
        EalState::Released => "released",
        EalState::Failed | EalState::Unspecified => "none",
    }
}

/// Runs `status`.
pub fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let state = ctx.require_state()?;
    let lv = ctx.connect()?;
    let found = lv.find(&ctx.env, &state.pool)?;
    let agents = ctx.agents()?;
    let rt = context::runtime()?;
    let answers = rt.block_on(futures::future::join_all(agents.iter().map(
        |a| async move {
            let mut client =
                match AgentClient::connect(a.addr, &a.security, Duration::from_secs(3)).await {
                    Ok(c) => c,
                    Err(e) => return Err(agent_proto::client::error_chain(&e)),
                };
            let health = match tokio::time::timeout(Duration::from_secs(5), client.health()).await {
                Ok(Ok(h)) => h,
                Ok(Err(e)) => return Err(agent_proto::client::error_chain(&e)),
                Err(_) => return Err("health check timed out".into()),
            };
            let info = tokio::time::timeout(Duration::from_secs(5), client.info())
                .await
                .ok()
                .and_then(Result::ok);
            Ok((health, info))
        },
    )));
    let rows: Vec<VmStatus> = state
        .vms
        .iter()
        .zip(answers)
        .map(|(vm, answer)| {
            let dom = found.domain(vm.index);
            let (health, err, eal, eal_err, holder) = match answer {
                Ok((h, info)) => {
                    let health = match h {
                        Health::Serving => "SERVING",
                        Health::NotServing => "NOT_SERVING",
                        Health::Unknown => "UNKNOWN",
                    };
                    let eal = info.as_ref().map(|i| {
                        EalState::try_from(i.eal_state)
                            .unwrap_or(EalState::Unspecified)
                            .as_str_name()
                            .trim_start_matches("EAL_STATE_")
                            .to_owned()
                    });
                    let holder = info.as_ref().map(|i| port_holder(i).to_owned());
                    let eal_err = info.map(|i| i.eal_error).filter(|e| !e.is_empty());
                    (health.to_owned(), None, eal, eal_err, holder)
                }
                Err(e) => ("UNREACHABLE".to_owned(), Some(e), None, None, None),
            };
            VmStatus {
                vm: vm.name.clone(),
                domain: vm.domain.clone(),
                state: dom.map_or("missing".into(), |d| d.state.clone()),
                accel: dom.and_then(|d| d.accel).map(|a| a.to_string()),
                mgmt_ip: vm.mgmt_ip.to_string(),
                ssh: vm.ssh.to_string(),
                agent: vm.agent.to_string(),
                data_ip: vm.data_ip.clone(),
                agent_health: health,
                agent_error: err,
                eal_state: eal,
                eal_error: eal_err,
                port_holder: holder,
            }
        })
        .collect();
    let all_serving = rows.iter().all(|r| r.agent_health == "SERVING");
    if ctx.json {
        ui::print_json(&serde_json::json!({
            "env": ctx.env, "network": state.network, "accel": state.accel, "accel_reason": state.accel_reason, "vms": rows
        }));
    } else {
        println!(
            "environment {} ({} network, {}: {})",
            ctx.env, state.network, state.accel, state.accel_reason
        );
        println!(
            "{:<5} {:<9} {:<5} {:<12} {:<16} {:<16} {:<12} {:<11} {:<9} PORT",
            "VM", "STATE", "ACCEL", "MGMT", "SSH", "AGENT", "DATA", "HEALTH", "EAL"
        );
        for r in &rows {
            println!(
                "{:<5} {:<9} {:<5} {:<12} {:<16} {:<16} {:<12} {:<11} {:<9} {}",
                r.vm,
                r.state,
                r.accel.as_deref().unwrap_or("-"),
                r.mgmt_ip,
                r.ssh,
                r.agent,
                r.data_ip,
                r.agent_health,
                r.eal_state.as_deref().unwrap_or("-"),
                r.port_holder.as_deref().unwrap_or("-")
            );
            if let Some(e) = &r.agent_error {
                println!("      agent: {e}");
            }
            if let Some(e) = &r.eal_error {
                println!("      EAL: {e}");
            }
            if r.state != "running" {
                let log = crate::provision::qemu_log_path(lv.uri(), &r.domain);
                if std::fs::read_to_string(&log).is_ok_and(|t| crate::accel::kvm_failed_in(&t)) {
                    println!("      {}", crate::accel::KVM_INTERNAL_ERROR_HINT);
                }
            }
        }
    }
    Ok(if all_serving {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
