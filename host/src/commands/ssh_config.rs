//! `dpdkhost ssh-config [--write]`: the OpenSSH config blocks of the environment's VMs.

use std::process::ExitCode;

use crate::cli::SshConfigArgs;
use crate::context::Context;
use crate::ssh_config::{blocks, render};
use crate::state::write_private;
use crate::ui;

/// Runs `ssh-config`.
pub fn run(args: SshConfigArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let state = ctx.require_state()?;
    let blocks = blocks(ctx, &state);
    let text = render(&state.env, &blocks);
    let written = if args.write {
        let path = ctx.paths.state_dir.join("ssh_config");
        write_private(&path, text.as_bytes())?;
        Some(path)
    } else {
        None
    };
    if ctx.json {
        ui::print_json(&serde_json::json!({
            "env": state.env, "hosts": blocks, "path": written,
            "include": written.as_ref().map(|p| format!("Include {}", p.display())),
        }));
    } else if let Some(path) = written {
        println!(
            "wrote {}; add this line near the top of ~/.ssh/config:",
            path.display()
        );
        println!("Include {}", path.display());
        println!(
            "then: ssh {}",
            blocks.first().map_or("dpdk-vm1", |b| b.alias.as_str())
        );
    } else {
        print!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}
