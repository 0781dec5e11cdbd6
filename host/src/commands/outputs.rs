//! `dpdkhost outputs`: VM names and addresses, as the old Terraform outputs were.

use std::collections::BTreeMap;
use std::process::ExitCode;

use crate::context::Context;
use crate::ui;

/// Runs `outputs`.
pub fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let state = ctx.require_state()?;
    let names: Vec<&str> = state.vms.iter().map(|v| v.name.as_str()).collect();
    let map = |f: &dyn Fn(&crate::state::VmState) -> String| -> BTreeMap<String, String> {
        state.vms.iter().map(|v| (v.name.clone(), f(v))).collect()
    };
    let out = serde_json::json!({
        "env": state.env,
        "vm_names": names,
        "vm_domains": map(&|v| v.domain.clone()),
        "vm_mgmt_ips": map(&|v| v.mgmt_ip.to_string()),
        "vm_data_ips": map(&|v| v.data_ip.clone()),
        "vm_data_macs": map(&|v| v.data_mac.clone()),
        "ssh_endpoints": map(&|v| v.ssh.to_string()),
        "agent_endpoints": map(&|v| v.agent.to_string()),
        "ssh_user": state.user,
        "ssh_identity": state.ssh_identity,
        "known_hosts": ctx.paths.known_hosts(),
        "ca_cert": ctx.paths.ca_cert(),
        "network": state.network,
        "accel": state.accel,
    });
    if ctx.json {
        ui::print_json(&out);
    } else {
        for v in &state.vms {
            println!(
                "{}: mgmt {} (ssh {}, agent {}), data {} ({})",
                v.name, v.mgmt_ip, v.ssh, v.agent, v.data_ip, v.data_mac
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
