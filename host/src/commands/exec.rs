//! `dpdkhost exec N [--dpdk] -- CMD...`: runs a command in VM N over ssh (pinned host
//! key) and streams its output, exiting with its status. With `--dpdk` the agent
//! releases its data port first, `{eal}` in CMD becomes the EAL arguments for it,
//! `DPDKHOST_EAL`, `DPDKHOST_DATA_MAC`, `DPDKHOST_DATA_IP`, `DPDKHOST_PEER_MAC` and
//! `DPDKHOST_PEER_IP` are set, the command runs as root, and on every way out (exit,
//! crash, Ctrl-C, kill, lost ssh) whatever is left of it is stopped and the agent
//! takes its port back.

use std::io::IsTerminal;
use std::process::{ExitCode, Stdio};

use anyhow::{bail, Context as _};

use crate::cli::ExecArgs;
use crate::commands::port;
use crate::context::{self, Context};
use crate::drive::Agent;
use crate::dut::{command_text, runner_command as dpdk_remote};
use crate::ssh;

/// Runs `exec`.
pub fn run(args: ExecArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    if args.command.is_empty() {
        bail!("exec needs a command after `--` (e.g. dpdkhost exec 2 -- uname -a)");
    }
    let state = ctx.require_state()?;
    let vm = ctx.vm(&state, &args.vm)?.clone();
    // A terminal gets a remote terminal: Ctrl-C then reaches the command as it would
    // locally, and a lost connection hangs it up.
    let tty = std::io::stdin().is_terminal();
    let options: &[&str] = if tty { &["-tt"] } else { &["-T"] };
    if !args.dpdk {
        let status = ssh::command_with(ctx, &state, &vm, false, options)
            .arg(command_text(&args.command, None))
            .status()
            .context("cannot run ssh (openssh-client installed?)")?;
        return Ok(exit_code(status));
    }
    let endpoint = ctx.agent(&args.vm)?;
    let rt = context::runtime()?;
    rt.block_on(async {
        let mut agent = Agent::connect(&endpoint).await?;
        let grant = port::release(ctx, &mut agent).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let text = command_text(&args.command, Some(&grant));
        tracing::info!(vm = %vm.name, %text, "exec --dpdk");
        if !ctx.json {
            eprintln!(
                "exec: {}'s data port released; running as root: {text}",
                vm.name
            );
        }
        let outcome = async {
            let remote = dpdk_remote(&grant, &id, &text)?;
            let mut child =
                tokio::process::Command::from(ssh::command_with(ctx, &state, &vm, false, options))
                    .arg(remote)
                    .stdin(if tty { Stdio::inherit() } else { Stdio::null() })
                    .kill_on_drop(true)
                    .spawn()
                    .context("cannot run ssh (openssh-client installed?)")?;
            // Without a remote terminal, Ctrl-C here stops the command through the
            // runner (with one, ssh passes it on and this never fires first).
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let status = tokio::select! {
                status = child.wait() => status?,
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("exec: interrupted; stopping the command in {}", vm.name);
                    let _ = child.start_kill();
                    child.wait().await?
                }
                _ = terminate.recv() => {
                    eprintln!("exec: terminated; stopping the command in {}", vm.name);
                    let _ = child.start_kill();
                    child.wait().await?
                }
            };
            anyhow::Ok(status)
        }
        .await;
        // Every way out: what is left of the command stops before the port goes back.
        let stop_outcome =
            crate::dut::stop_remote(ctx, &state, &vm, &id, grant.file_prefix.as_deref()).await;
        let stop_note = match &stop_outcome {
            Ok(outcome) => outcome.as_str(),
            Err(error) => error.as_str(),
        };
        tracing::info!(vm = %vm.name, stop = %stop_note, "the command's processes");
        let acquired = agent.acquire_port().await;
        if !ctx.json {
            eprintln!(
                "exec: command {stop_note}; {}",
                match &acquired {
                    Ok(_) => format!("{}'s agent holds its data port again", vm.name),
                    Err(error) => format!("the agent could not take the port back: {error}"),
                }
            );
        }
        acquired.with_context(|| {
            format!(
                "{}'s agent could not take its port back (dpdkhost port acquire {})",
                vm.name, vm.index
            )
        })?;
        let status = outcome?;
        if let Err(error) = &stop_outcome {
            bail!("{}: {error}; the port was taken back anyway", vm.name);
        }
        Ok(exit_code(status))
    })
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::port::PortGrant;

    fn grant() -> PortGrant {
        PortGrant {
            vm: "vm2".into(),
            eal_args: vec!["-a".into(), "0000:00:03.0".into(), "--file-prefix=x".into()],
            eal: "-a 0000:00:03.0 --file-prefix=x".into(),
            mac: "52:54:00:00:00:02".into(),
            ip: "10.0.1.6".into(),
            prefix: 24,
            peer: None,
            free_hugepages: 32,
            file_prefix: Some("x".into()),
        }
    }

    #[test]
    fn eal_placeholders_become_the_grants_arguments() {
        let words = ["dpdk-testpmd", "{eal}", "--", "-i", "--eth-peer=0,{eal}x"].map(String::from);
        assert_eq!(
            command_text(&words, Some(&grant())),
            "dpdk-testpmd -a 0000:00:03.0 --file-prefix=x -- -i --eth-peer=0,-a 0000:00:03.0 --file-prefix=xx"
        );
        assert_eq!(command_text(&words, None), words.join(" "));
    }

    #[test]
    fn the_remote_command_quotes_every_value() {
        let mut hostile = grant();
        hostile.mac = "$(touch /tmp/pwned)".into();
        let text = dpdk_remote(&hostile, "abc-1", "echo hi").unwrap();
        assert!(
            text.contains("'DPDKHOST_DATA_MAC=$(touch /tmp/pwned)'"),
            "{text}"
        );
        // The shell reads it back into the same words.
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf '%s\\n' {text}")])
            .output()
            .unwrap();
        let words: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        assert!(words.contains(&"DPDKHOST_DATA_MAC=$(touch /tmp/pwned)".to_owned()));
        assert_eq!(words.last().map(String::as_str), Some("echo hi"));
    }
}
