//! `dpdkhost doctor`: is this machine ready for a lab? Each line a verdict and the fix.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use crate::accel::{self, KvmProbe};
use crate::config::{ImageSource, NetworkMode};
use crate::context::Context;
use crate::image::{self, ImageStore};
use crate::provision::Libvirt;
use crate::ui;

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Fine.
    #[serde(rename = "ok")]
    Pass,
    /// Works, but not the best way.
    Warn,
    /// `up` will fail.
    Fail,
}

/// One line of `doctor`.
#[derive(Debug, Serialize)]
pub struct Check {
    /// What was checked.
    pub check: &'static str,
    /// The outcome.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(
    check: &'static str,
    verdict: Verdict,
    detail: impl Into<String>,
    fix: Option<&str>,
) -> Check {
    Check {
        check,
        verdict,
        detail: detail.into(),
        fix: fix.map(str::to_owned),
    }
}

/// Free bytes on the filesystem holding `path` (or its nearest existing ancestor).
fn free_bytes(path: &Path) -> Option<(PathBuf, u64)> {
    let mut p = path.to_path_buf();
    while !p.exists() {
        p = p.parent()?.to_path_buf();
    }
    let s = nix::sys::statvfs::statvfs(&p).ok()?;
    Some((p, s.blocks_available() * s.fragment_size()))
}

// `which` looks in the sbin directories too: dnsmasq and iptables live there, a
// user's PATH often lacks them, and libvirtd finds them there.
use crate::image::which;

/// All checks.
pub fn checks(ctx: &Context) -> Vec<Check> {
    use Verdict::{Fail, Pass, Warn};
    let c = &ctx.config;
    let mut out = Vec::new();
    let lv = match Libvirt::open(&c.libvirt_uri) {
        Ok(lv) => {
            let v = lv.conn().get_lib_version().unwrap_or(0);
            out.push(check(
                "libvirtd",
                Pass,
                format!(
                    "{} answers (libvirt {}.{}.{}); {}",
                    c.libvirt_uri,
                    v / 1_000_000,
                    v / 1000 % 1000,
                    v % 1000,
                    c.connection_origin.reason()
                ),
                None,
            ));
            Some(lv)
        }
        Err(e) => {
            out.push(check(
                "libvirtd",
                Fail,
                format!(
                    "{} ({}): {}",
                    c.libvirt_uri,
                    c.connection_origin.reason(),
                    crate::context::chain(&e)
                ),
                Some("run scripts/start-libvirtd (or scripts/setup to install libvirt)"),
            ));
            None
        }
    };
    if let Some(lv) = &lv {
        match lv.pool(&c.pool) {
            Ok(Some(p)) => {
                let active = p.is_active().unwrap_or(false);
                let path = lv
                    .pool_dir(&c.pool)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                if active {
                    out.push(check(
                        "pool",
                        Pass,
                        format!("{} is active at {path}", c.pool),
                        None,
                    ));
                } else {
                    out.push(check(
                        "pool",
                        Warn,
                        format!("{} is defined but inactive ({path})", c.pool),
                        Some("`dpdkhost up` starts it"),
                    ));
                }
            }
            Ok(None) => out.push(check(
                "pool",
                Pass,
                format!(
                    "{} does not exist yet; `up` creates it at {}",
                    c.pool,
                    c.pool_path.display()
                ),
                None,
            )),
            Err(e) => out.push(check(
                "pool",
                Fail,
                crate::context::chain(&e),
                Some("check libvirtd's storage driver"),
            )),
        }
    }
    let probe = KvmProbe::run();
    let local = lv.as_ref().is_none_or(|l| l.is_local());
    match (accel::decide(c.accel, false, local, &probe), probe.usable()) {
        (Ok(d), Ok(())) => out.push(check("kvm", Pass, d.reason, None)),
        (Ok(d), Err(why)) => out.push(check(
            "kvm",
            Warn,
            format!("KVM not usable: {why}; up will use {}", d.accel),
            Some("TCG works but boots slower (1 vCPU per VM is fastest); for KVM enable VT-x/AMD-V or nested virtualisation"),
        )),
        (Err(e), _) => out.push(check("kvm", Fail, e.to_string(), Some("use --no-kvm or accel = \"tcg\""))),
    }
    let mem = c.memory_for(false);
    // Only the built-in image boots with dpdkhost's kernel command line; images that
    // boot themselves get their hugepages from the seed's install script.
    let how = match c.image {
        ImageSource::Builtin(_) => "at boot (kernel command line)",
        _ => "early in boot (the seed's install script)",
    };
    out.push(check(
        "hugepages",
        Pass,
        format!(
            "each guest reserves {} x 2 MiB = {} MiB of its {} MiB {how}; the host needs none",
            c.hugepages,
            c.hugepages * 2,
            mem
        ),
        None,
    ));
    let store = ImageStore::new(ctx.paths.image_cache.clone());
    if matches!(c.image, ImageSource::Builtin(_)) {
        out.push(match image::build_mode() {
            Ok(mode) => check("image build", Pass, mode, None),
            Err(e) => check(
                "image build",
                Warn,
                e.to_string(),
                Some("needed only when the image is not cached (or was made by an older dpdkhost)"),
            ),
        });
    }
    match &c.image {
        ImageSource::Builtin(name) => match store.manifest(name) {
            Ok(Some(m)) => {
                let disk = store.dir.join(name).join(&m.disk.file);
                match image::sha256_file(&disk) {
                    Ok(sha) if sha == m.disk.sha256 && !m.is_current_builtin() => out.push(check(
                        "image",
                        Warn,
                        format!(
                            "{name} cached, but {}: up builds it again (~90 s)",
                            image::STALE
                        ),
                        Some("dpdkhost image build"),
                    )),
                    Ok(sha) if sha == m.disk.sha256 => out.push(check(
                        "image",
                        Pass,
                        format!("{name} cached, {} MiB, sha256 verified", m.disk.size >> 20),
                        None,
                    )),
                    _ => out.push(check(
                        "image",
                        Fail,
                        format!("{name}: {} does not match its manifest", disk.display()),
                        Some("dpdkhost image build --force"),
                    )),
                }
            }
            _ => out.push(check(
                "image",
                Warn,
                format!("{name} is not built yet (up builds it, ~2 min)"),
                Some("dpdkhost image build"),
            )),
        },
        other => {
            let ready = store.is_ready(other);
            out.push(check(
                "image",
                if ready { Pass } else { Warn },
                format!(
                    "{other}: {}",
                    if ready {
                        "available"
                    } else {
                        "not cached yet; up fetches it"
                    }
                ),
                None,
            ));
        }
    }
    for (what, path, need) in [
        ("disk space (pool)", c.pool_path.clone(), 3u64 << 30),
        (
            "disk space (cache)",
            ctx.paths.image_cache.clone(),
            2u64 << 30,
        ),
    ] {
        match free_bytes(&path) {
            Some((fs, free)) if free >= need => out.push(check(
                what,
                Pass,
                format!("{} GiB free on {}", free >> 30, fs.display()),
                None,
            )),
            Some((fs, free)) => out.push(check(
                what,
                Fail,
                format!(
                    "only {} MiB free on {} (need {} GiB)",
                    free >> 20,
                    fs.display(),
                    need >> 30
                ),
                Some("free some space or set pool_path / DPDKHOST_CACHE_DIR elsewhere"),
            )),
            None => out.push(check(
                what,
                Warn,
                format!("cannot stat {}", path.display()),
                None,
            )),
        }
    }
    match crate::bring_up::find_agent(
        std::env::var_os("DPDKHOST_AGENT")
            .map(PathBuf::from)
            .as_deref(),
        c.agent.as_deref(),
    ) {
        Ok(p) => out.push(check("agent binary", Pass, p.display().to_string(), None)),
        Err(e) => out.push(check(
            "agent binary",
            Fail,
            e.to_string(),
            Some("cargo build --release -p dpdk-agent"),
        )),
    }
    // libvirt runs dnsmasq (DHCP, DNS) and iptables (NAT) for a nat-mode network.
    let nat_tools = [("dnsmasq", "dnsmasq-base"), ("iptables", "iptables")];
    let nat_mode = c.network == NetworkMode::Nat;
    for (program, package) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("ssh", "openssh-client"),
        ("mmdebstrap", "mmdebstrap"),
        ("qemu-img", "qemu-utils"),
    ]
    .into_iter()
    .chain(nat_tools.into_iter().filter(|_| nat_mode))
    {
        if which(program) {
            out.push(check("tools", Pass, format!("{program} found"), None));
        } else {
            out.push(check(
                "tools",
                Fail,
                format!("{program} missing"),
                Some(&format!("scripts/setup (Debian package {package})")),
            ));
        }
    }
    out
}

/// Runs `doctor`.
pub fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let all = checks(ctx);
    let failed = all.iter().any(|c| c.verdict == Verdict::Fail);
    if ctx.json {
        ui::print_json(&all);
    } else {
        for c in &all {
            let v = match c.verdict {
                Verdict::Pass => "ok  ",
                Verdict::Warn => "warn",
                Verdict::Fail => "FAIL",
            };
            match &c.fix {
                Some(fix) => println!("{v} {:<18} {} -> {fix}", c.check, c.detail),
                None => println!("{v} {:<18} {}", c.check, c.detail),
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
