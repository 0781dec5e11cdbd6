//! `dpdkhost port release N` / `port acquire N`: VM N's agent lets go of its data port
//! (the device stays bound for DPDK) so the user's own DPDK application can use it,
//! and takes it back. `release` prints what the application needs: EAL arguments that
//! fit the VM, the port's and the peer's addresses.

use std::process::ExitCode;

use agent_proto::v1;
use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::cli::PortArgs;
use crate::commands::workload_common::print_json;
use crate::context::{self, AgentEndpoint, Context};
use crate::drive::Agent;
use crate::testpmd::Handover;

/// The peer's end of the data link.
#[derive(Debug, Clone, Serialize)]
pub struct PeerPort {
    /// The peer VM.
    pub vm: String,
    /// Its data MAC.
    pub mac: String,
    /// Its data address.
    pub ip: String,
}

/// What an application needs to use a released data port.
#[derive(Debug, Clone, Serialize)]
pub struct PortGrant {
    /// The VM.
    pub vm: String,
    /// EAL arguments, one word each: the agent's (`-a`, IOVA mode, a free
    /// `--file-prefix`), `--huge-unlink`, `-m` within the hugepages left, and lcores
    /// for the VM's vCPUs.
    pub eal_args: Vec<String>,
    /// The same, quoted for a shell.
    pub eal: String,
    /// The port's MAC.
    pub mac: String,
    /// The port's data address (no prefix).
    pub ip: String,
    /// The data link's prefix length.
    pub prefix: u8,
    /// The peer across the data link, when there is one.
    pub peer: Option<PeerPort>,
    /// 2 MiB hugepages free for the application.
    pub free_hugepages: u64,
    /// The `--file-prefix` among the EAL arguments (what DPDK leaves behind is
    /// named by it).
    pub file_prefix: Option<String>,
}

impl PortGrant {
    /// The `DPDKHOST_*` variables `exec --dpdk` sets.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            ("DPDKHOST_EAL".to_owned(), self.eal.clone()),
            ("DPDKHOST_DATA_MAC".to_owned(), self.mac.clone()),
            ("DPDKHOST_DATA_IP".to_owned(), self.ip.clone()),
        ];
        if let Some(peer) = &self.peer {
            vars.push(("DPDKHOST_PEER_MAC".to_owned(), peer.mac.clone()));
            vars.push(("DPDKHOST_PEER_IP".to_owned(), peer.ip.clone()));
        }
        vars
    }
}

/// EAL lcores for `vcpus` vCPUs: every CPU, and with one vCPU a main and a worker
/// lcore sharing it (an application that needs a forwarding lcore besides the main
/// one, testpmd, still starts).
fn lcores(vcpus: u32) -> String {
    if vcpus <= 1 {
        "--lcores=0@0,1@0".to_owned()
    } else {
        format!("-l 0-{}", vcpus - 1)
    }
}

/// Asks `agent` to release its port to another DPDK process and builds the grant.
/// Refuses a port already released, naming how to take it back.
pub async fn release(ctx: &Context, agent: &mut Agent) -> anyhow::Result<PortGrant> {
    let name = agent.endpoint.name.clone();
    let info = agent.info().await?;
    if info.eal_state == v1::EalState::Released as i32 {
        bail!(
            "{name}'s data port is already released (`dpdkhost port acquire {}` takes it back)",
            agent.endpoint.index
        );
    }
    if info.eal_state != v1::EalState::Ready as i32 {
        bail!(
            "{name}'s agent has no data port to release (EAL state {}: {})",
            v1::EalState::try_from(info.eal_state)
                .map_or("unknown".to_owned(), |s| s.as_str_name().to_owned()),
            info.eal_error
        );
    }
    let reply = agent.release_port(v1::ReleaseTo::DpdkProcess).await?;
    let handover = match Handover::parse(&reply) {
        Ok(handover) => handover,
        Err(untrusted) => {
            // Nothing is handed over on a reply we cannot read: the agent takes it back.
            let _ = agent.acquire_port().await;
            return Err(
                anyhow::Error::new(untrusted).context(format!("{name}'s ReleasePort reply"))
            );
        }
    };
    if handover.free_hugepages == 0 {
        let _ = agent.acquire_port().await;
        bail!(
            "{name} has no 2 MiB hugepage free for an application (the agent took its port \
             back); a process that did not unlink its hugepage files may hold them: see \
             /dev/hugepages in the VM"
        );
    }
    grant(ctx, &agent.endpoint, &handover)
}

fn grant(
    ctx: &Context,
    endpoint: &AgentEndpoint,
    handover: &Handover,
) -> anyhow::Result<PortGrant> {
    let state = ctx.require_state()?;
    let vcpus = ctx.config.vcpus_for(state.accel.domain_type() == "kvm");
    let mut eal_args: Vec<String> = handover
        .eal_args
        .iter()
        .flat_map(crate::testpmd::EalArg::words)
        .collect();
    // The hugepage files go as soon as they are mapped, so a crashed application
    // leaves no pages behind for the next one.
    eal_args.push("--huge-unlink".to_owned());
    // 2 MiB pages.
    let megabytes = handover.free_hugepages * 2;
    eal_args.push("-m".to_owned());
    eal_args.push(megabytes.to_string());
    eal_args.extend(lcores(vcpus).split(' ').map(str::to_owned));
    let eal = crate::shell::join(&eal_args).context("an EAL argument holds a NUL byte")?;
    let peer = state
        .vm(&endpoint.name)
        .and_then(|vm| vm.peer.as_deref())
        .and_then(|peer| state.vm(peer))
        .zip(endpoint.peer_ip)
        .map(|(peer, peer_ip)| PeerPort {
            vm: peer.name.clone(),
            mac: peer.data_mac.clone(),
            ip: peer_ip.to_string(),
        });
    Ok(PortGrant {
        vm: endpoint.name.clone(),
        eal_args,
        eal,
        mac: agent_proto::config::format_mac(&handover.mac),
        ip: handover.ip.to_string(),
        prefix: endpoint.data_prefix,
        peer,
        free_hugepages: handover.free_hugepages,
        file_prefix: handover.eal_args.iter().find_map(|arg| match arg {
            crate::testpmd::EalArg::FilePrefix(prefix) => Some(prefix.clone()),
            _ => None,
        }),
    })
}

/// Runs `port release`.
pub fn run_release(args: PortArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let endpoint = ctx.agent(&args.vm)?;
    let rt = context::runtime()?;
    let grant = rt.block_on(async {
        let mut agent = Agent::connect(&endpoint).await?;
        release(ctx, &mut agent).await
    })?;
    if ctx.json {
        print_json(&grant)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}'s data port is released to your DPDK application; the agent no longer uses it.",
        grant.vm
    );
    println!("EAL arguments: {}", grant.eal);
    println!("port:  mac {}  ip {}/{}", grant.mac, grant.ip, grant.prefix);
    if let Some(peer) = &grant.peer {
        println!("peer:  {} mac {}  ip {}", peer.vm, peer.mac, peer.ip);
    }
    println!("hugepages free: {} x 2 MiB", grant.free_hugepages);
    println!(
        "when done: dpdkhost port acquire {}   (stop the application first)",
        endpoint.index
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `port acquire`.
pub fn run_acquire(args: PortArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let endpoint = ctx.agent(&args.vm)?;
    let rt = context::runtime()?;
    let was_released = rt.block_on(async {
        let mut agent = Agent::connect(&endpoint).await?;
        agent.acquire_port().await
    })?;
    if ctx.json {
        print_json(&serde_json::json!({ "vm": endpoint.name, "was_released": was_released }))?;
    } else if was_released {
        println!("{}'s agent holds its data port again", endpoint.name);
    } else {
        println!(
            "{}'s data port was not released; nothing to do",
            endpoint.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcores_fit_the_vcpus() {
        assert_eq!(lcores(1), "--lcores=0@0,1@0");
        assert_eq!(lcores(4), "-l 0-3");
    }
}
