//! `dpdkhost logs N`: the VM's serial console log (kernel, systemd, cloud-init, agent).

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::LogsArgs;
use crate::console;
use crate::context::{Context, ContextError};
use crate::provision::{self, Names};

/// Runs `logs`.
pub fn run(args: LogsArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let names = Names::new(&ctx.env);
    let index: u8 =
        args.vm
            .trim_start_matches("vm")
            .parse()
            .map_err(|_| ContextError::NoSuchVm {
                which: args.vm.clone(),
                env: ctx.env.clone(),
                known: "1, 2, ...".into(),
            })?;
    let lv = ctx.connect()?;
    let path = if args.qemu {
        provision::qemu_log_path(lv.uri(), &names.domain(index))
    } else {
        let pool = ctx
            .state()?
            .map(|s| s.pool)
            .unwrap_or_else(|| ctx.config.pool.clone());
        let dir = lv
            .pool_dir(&pool)
            .with_context(|| format!("pool {pool} does not exist: is the environment up?"))?;
        dir.join(names.console_log(index))
    };
    let text = console::tail(&path, args.lines.unwrap_or(usize::MAX))
        .with_context(|| format!("cannot read {}", path.display()))?;
    if ctx.json {
        crate::ui::print_json(
            &serde_json::json!({ "vm": format!("vm{index}"), "path": path, "log": text }),
        );
    } else {
        println!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}
