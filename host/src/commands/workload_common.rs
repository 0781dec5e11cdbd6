//! What `run pingpong`, `bench` and `selftest` share: picking and connecting the two
//! VMs, the environment of a run record, saving runs.

use std::path::Path;

use anyhow::{bail, Context as _};

use crate::context::Context;
use crate::drive::Agent;
use crate::results::{Environment, RunRecord, SavedRun};

/// The two VMs of a workload, connected. Errors name the argument and what exists.
pub async fn connect_pair(ctx: &Context, from: &str, to: &str) -> anyhow::Result<(Agent, Agent)> {
    let agents = ctx.agents()?;
    if agents.len() < 2 {
        bail!(
            "environment {:?} has {} VM; a workload needs two (set vm_count = 2 or more and run `dpdkhost up`)",
            ctx.env,
            agents.len()
        );
    }
    let from_endpoint = ctx.agent(from).context("--from")?;
    let to_endpoint = ctx.agent(to).context("--to")?;
    if from_endpoint.index == to_endpoint.index {
        bail!(
            "--from and --to are both {}: pick two different VMs (1..={})",
            from_endpoint.name,
            agents.len()
        );
    }
    if from_endpoint.peer_ip.is_some() && from_endpoint.peer_ip != Some(to_endpoint.data_ip) {
        bail!(
            "{} and {} share no data link (VMs are linked in pairs 1-2, 3-4, ...)",
            from_endpoint.name,
            to_endpoint.name
        );
    }
    let (from, to) =
        tokio::try_join!(Agent::connect(&from_endpoint), Agent::connect(&to_endpoint))?;
    Ok((from, to))
}

/// The two agents a workload runs on: `from` and `to`, or with `--through` the
/// traffic generator `from` and the DUT's agent, with the DUT VM.
pub async fn connect_workload(
    ctx: &Context,
    from: &str,
    to: &str,
    through: Option<&str>,
) -> anyhow::Result<(Agent, Agent, Option<crate::state::VmState>)> {
    match through {
        Some(through) => {
            let (tg, dut_vm, dut) = connect_through(ctx, from, through).await?;
            Ok((tg, dut, Some(dut_vm)))
        }
        None => {
            let (from, to) = connect_pair(ctx, from, to).await?;
            Ok((from, to, None))
        }
    }
}

/// For `--through DUT`: the traffic generator (`from`, which must be at the other end
/// of the DUT's data link), the DUT VM and its agent, connected.
pub async fn connect_through(
    ctx: &Context,
    from: &str,
    through: &str,
) -> anyhow::Result<(Agent, crate::state::VmState, Agent)> {
    let state = ctx.require_state()?;
    let dut_vm = ctx.vm(&state, through).context("--through")?.clone();
    let tg = ctx.agent(from).context("--from")?;
    let Some(peer) = dut_vm.peer.clone() else {
        bail!(
            "--through {through}: {} has no peer on its data link, so no agent can send to it \
             (VMs are linked in pairs 1-2, 3-4, ...; use vm_count = 2 or more)",
            dut_vm.name
        );
    };
    if tg.name == dut_vm.name {
        bail!(
            "--through {through} names the sending VM (--from {from}): the DUT is the VM at \
             the other end of the sender's data link; use --through {peer}, or --from {peer} \
             --through {}",
            dut_vm.name
        );
    }
    if tg.name != peer {
        bail!(
            "--through {through}: {} is linked to {peer}, not to {} (--from); use --from {peer}",
            dut_vm.name,
            tg.name
        );
    }
    let dut_endpoint = ctx.agent(&dut_vm.name)?;
    let (tg, dut) = tokio::try_join!(Agent::connect(&tg), Agent::connect(&dut_endpoint))?;
    Ok((tg, dut_vm, dut))
}

/// Where the run happens: host facts, acceleration, the agent's versions, and what
/// every guest was busy with as the run started.
pub async fn environment(ctx: &Context, agent: &mut Agent) -> anyhow::Result<Environment> {
    let state = ctx.state()?;
    let accel = match &state {
        Some(state) => format!("{} ({})", state.accel.domain_type(), state.accel_reason),
        None => String::new(),
    };
    let mut environment = Environment::of_host(&ctx.env, &accel);
    let info = agent.info().await?;
    environment.agent_version = info.agent_version;
    environment.dpdk_version = info.dpdk_version;
    if let Some(state) = state {
        let (ctx, state) = (ctx.clone(), state.clone());
        let loads =
            tokio::task::spawn_blocking(move || crate::guest::guest_loads(&ctx, &state)).await?;
        environment.guests = loads
            .into_iter()
            .filter_map(|load| {
                load.map_err(|error| tracing::warn!(error = %crate::context::chain(&error), "cannot read a guest's load"))
                    .ok()
            })
            .collect();
        for guest in &environment.guests {
            if guest.cloud_init.is_running() {
                tracing::warn!(vm = %guest.vm, "cloud-init still runs in the guest: the figures of this run are skewed");
            }
        }
    }
    Ok(environment)
}

/// Now, RFC 3339 in UTC.
pub fn started_at() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Saves the run and says where (on stderr, so stdout stays JSON under --json).
pub fn save_and_report(record: &RunRecord, dir: &Path, json: bool) -> anyhow::Result<SavedRun> {
    let saved = record
        .save(dir)
        .with_context(|| format!("cannot save the run under {}", dir.display()))?;
    if json {
        eprintln!("saved {} and {}", saved.json.display(), saved.svg.display());
    }
    Ok(saved)
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
