//! `dpdkhost cp FILE N[:DEST]` and `dpdkhost cp N:SRC DEST`: a file into or out of VM
//! N over ssh with the pinned host key (the bytes go through ssh's stdin or stdout; no
//! scp or sftp setup in the guest). A file copied in keeps its permission bits, so a
//! binary stays executable.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use anyhow::{bail, Context as _};

use crate::cli::CpArgs;
use crate::context::Context;
use crate::state::State;

/// One side of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A path on this host.
    Local(PathBuf),
    /// A path in a VM (`None`: its user's home directory).
    Remote {
        /// The VM as given (index or name).
        vm: String,
        /// The path there.
        path: Option<String>,
    },
}

/// Reads `N`, `N:PATH`, `vmN:PATH` as a VM's path when N names one of `state`'s VMs;
/// anything else is a local path (so `./a:b` stays local).
pub fn parse_location(text: &str, state: &State) -> Location {
    let (vm, path) = match text.split_once(':') {
        Some((vm, path)) => (vm, Some(path)),
        None => (text, None),
    };
    if state.vm(vm).is_some() {
        return Location::Remote {
            vm: vm.to_owned(),
            path: path.filter(|p| !p.is_empty()).map(str::to_owned),
        };
    }
    Location::Local(PathBuf::from(text))
}

fn file_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .with_context(|| format!("{} names no file", path.display()))
}

/// Runs `cp`.
pub fn run(args: CpArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let state = ctx.require_state()?;
    let source = parse_location(&args.source, &state);
    let dest = parse_location(&args.dest, &state);
    let vm_of = |which: &str| ctx.vm(&state, which).cloned();
    match (source, dest) {
        (Location::Local(file), Location::Remote { vm, path }) => {
            let vm = vm_of(&vm)?;
            let metadata = std::fs::metadata(&file)
                .with_context(|| format!("SOURCE {}: cannot read it", file.display()))?;
            if !metadata.is_file() {
                bail!("SOURCE {} is not a regular file (cp copies one file)", file.display());
            }
            let name = file_name(&file)?;
            let target = match path {
                None => name,
                Some(dir) if dir.ends_with('/') => format!("{dir}{name}"),
                Some(path) => path,
            };
            let mode = format!("{:o}", metadata.permissions().mode() & 0o777);
            // `cat > T && chmod M T`, each value one quoted word.
            let remote = format!(
                "cat > {target} && chmod {mode} {target}",
                target = crate::shell::quote(&target).context("DEST holds a NUL byte")?,
                mode = crate::shell::quote(&mode).context("mode")?,
            );
            let input = std::fs::File::open(&file)
                .with_context(|| format!("SOURCE {}: cannot open it", file.display()))?;
            let output = crate::ssh::command(ctx, &state, &vm, true)
                .arg(remote)
                .stdin(Stdio::from(input))
                .output()
                .context("cannot run ssh (openssh-client installed?)")?;
            if !output.status.success() {
                bail!(
                    "copy to {}:{target} failed: {}",
                    vm.name,
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            if !ctx.json {
                println!("{} -> {}:{target} ({} bytes)", file.display(), vm.name, metadata.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        (Location::Remote { vm, path }, Location::Local(dest)) => {
            let vm = vm_of(&vm)?;
            let Some(path) = path else {
                bail!("SOURCE {}: give the file, e.g. {}:/var/log/app.log", args.source, vm.index);
            };
            let target = if dest.is_dir() {
                dest.join(file_name(Path::new(&path))?)
            } else {
                dest
            };
            // Written to a temporary name and renamed: a failed copy leaves no half file.
            let partial = target.with_extension("dpdkhost-partial");
            let file = std::fs::File::create(&partial)
                .with_context(|| format!("DEST {}: cannot create it", partial.display()))?;
            let remote = format!(
                "cat -- {}",
                crate::shell::quote(&path).context("SOURCE holds a NUL byte")?
            );
            let output = crate::ssh::command(ctx, &state, &vm, true)
                .arg(remote)
                .stdin(Stdio::null())
                .stdout(Stdio::from(file))
                .stderr(Stdio::piped())
                .output()
                .context("cannot run ssh (openssh-client installed?)")?;
            if !output.status.success() {
                let _ = std::fs::remove_file(&partial);
                bail!(
                    "copy from {}:{path} failed: {}",
                    vm.name,
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            std::fs::rename(&partial, &target)
                .with_context(|| format!("DEST {}: cannot write it", target.display()))?;
            if !ctx.json {
                println!("{}:{path} -> {}", vm.name, target.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        (Location::Local(_), Location::Local(_)) => bail!(
            "neither SOURCE nor DEST names a VM: one side is N:PATH (N a VM index or name, e.g. 2:/tmp/app)"
        ),
        (Location::Remote { .. }, Location::Remote { .. }) => {
            bail!("SOURCE and DEST are both in VMs: copy through this host, one side at a time")
        }
    }
}
