//! `dpdkhost inventory --list | --host H`: Ansible dynamic inventory (always JSON).

use std::process::ExitCode;

use anyhow::bail;
use serde_json::{json, Map, Value};

use crate::cli::InventoryArgs;
use crate::context::Context;
use crate::state::{State, VmState};
use crate::ui;

/// Host variables of one VM.
pub fn hostvars(ctx: &Context, state: &State, vm: &VmState) -> Value {
    let mut common = format!(
        "-o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -o HostKeyAlias={}",
        ctx.paths.known_hosts().display(),
        vm.domain
    );
    if state.ssh_identity.is_some() {
        common.push_str(" -o IdentitiesOnly=yes");
    }
    let mut v = json!({
        "ansible_host": vm.ssh.ip().to_string(),
        "ansible_port": vm.ssh.port(),
        "ansible_user": state.user,
        "ansible_become": true,
        "ansible_ssh_common_args": common,
        "dpdkhost_env": state.env,
        "dpdkhost_domain": vm.domain,
        "mgmt_ip": vm.mgmt_ip.to_string(),
        "data_ip": vm.data_ip,
        "data_mac": vm.data_mac,
        "peer": vm.peer,
        "peer_ip": vm.peer_ip.map(|ip| ip.to_string()),
        "agent_endpoint": vm.agent.to_string(),
    });
    if let Some(id) = &state.ssh_identity {
        v["ansible_ssh_private_key_file"] = json!(id);
    }
    v
}

/// The whole inventory.
pub fn list(ctx: &Context, state: &State) -> Value {
    let mut hostvars_map = Map::new();
    for vm in &state.vms {
        hostvars_map.insert(vm.name.clone(), hostvars(ctx, state, vm));
    }
    let hosts: Vec<&str> = state.vms.iter().map(|v| v.name.as_str()).collect();
    json!({
        "_meta": { "hostvars": hostvars_map },
        "all": { "children": ["ungrouped", "dpdk_vms"] },
        "dpdk_vms": { "hosts": hosts, "vars": { "dpdk_data_subnet": ctx.config.data_subnet.to_string() } },
    })
}

/// Runs `inventory`.
pub fn run(args: InventoryArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let state = ctx.require_state()?;
    if args.list {
        ui::print_json(&list(ctx, &state));
    } else if let Some(h) = &args.host {
        match state.vm(h) {
            Some(vm) => ui::print_json(&hostvars(ctx, &state, vm)),
            None => bail!("no host {h:?} in environment {}", ctx.env),
        }
    }
    Ok(ExitCode::SUCCESS)
}
