//! The `up` workflow: plan, confirm, apply, wait until every agent is SERVING and every
//! guest is quiet; returns a report that `dpdkhost up` prints. Progress goes to the
//! terminal (indicatif) as it happens; the plan is shown before the confirmation.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent_proto::client::AgentClient;
use agent_proto::config::{AgentConfig, BindDriver, TlsPaths};
use anyhow::{bail, Context as _};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::accel;
use crate::config::NetworkMode;
use crate::console;
use crate::context::{self, Context};
use crate::guest::GuestLoad;
use crate::image::{BaseImage, ImageStore, Progress};
use crate::keys;
use crate::plan::{Plan, VmPlan};
use crate::provision::{self, domain, Libvirt, Names, ProvisionError};
use crate::seed::{self, MgmtNetwork, SeedSpec};
use crate::state::{State, VmState};
use crate::ui::Spinner;

/// Where the agent binary is: `--agent`, `agent` in the configuration, next to this
/// executable, or in the release directory next to a debug build.
pub fn find_agent(flag: Option<&Path>, configured: Option<&Path>) -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = flag.or(configured) {
        if p.is_file() {
            return Ok(p.to_owned());
        }
        bail!(
            "the dpdk-agent binary {} does not exist; build it with `cargo build --release -p dpdk-agent`",
            p.display()
        );
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join("dpdk-agent"));
            candidates.push(dir.join("../release/dpdk-agent"));
        }
    }
    for c in &candidates {
        if c.is_file() {
            return Ok(c.canonicalize().unwrap_or_else(|_| c.clone()));
        }
    }
    bail!(
        "no dpdk-agent binary (looked at {}); build it with `cargo build --release -p dpdk-agent`, or pass --agent PATH",
        candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
    )
}

/// The agent as injected: without debug sections when binutils' `strip` is there (a
/// release build carries ~40 MB of DWARF that every guest would copy and hash under
/// TCG), else as built.
fn agent_payload(path: &Path) -> anyhow::Result<Vec<u8>> {
    // A unique name in the system's temporary directory: it always exists (the state
    // directory may not yet), and the binary is no secret.
    let stripped = crate::state::temp_path(&std::env::temp_dir().join("dpdk-agent.injected"));
    let ok = std::process::Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&stripped)
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let from = if ok { stripped.as_path() } else { path };
    let bytes = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    let _ = std::fs::remove_file(&stripped);
    Ok(bytes)
}

/// What `up` was asked for.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Apply without asking.
    pub yes: bool,
    /// Force TCG.
    pub no_kvm: bool,
    /// Seconds to wait for the agents (and the guests to be quiet); default from the config.
    pub timeout: Option<u64>,
    /// The agent binary to inject.
    pub agent: Option<PathBuf>,
}

/// How `up` ended.
#[derive(Debug)]
pub enum Outcome {
    /// The plan changes something and was not confirmed; nothing was done.
    Declined {
        /// Configuration keys that changed since the VMs were made.
        drift_keys: Vec<&'static str>,
    },
    /// Every agent serves.
    Up(Box<UpReport>),
}

/// One VM once its agent served.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VmUp {
    /// The VM.
    pub vm: String,
    /// Always SERVING here.
    pub agent_health: &'static str,
    /// Seconds from the start of `up`.
    pub serving_after_s: f64,
    /// Where the host reaches sshd.
    pub ssh: Option<std::net::SocketAddr>,
    /// Where the host reaches the agent.
    pub agent: Option<std::net::SocketAddr>,
}

/// What `up` did and found, everything `dpdkhost up` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UpReport {
    /// The environment.
    pub env: String,
    /// KVM or TCG.
    pub accel: accel::Accel,
    /// Why.
    pub accel_reason: String,
    /// What was applied.
    pub actions: Vec<crate::plan::Action>,
    /// Objects that only look like the environment's.
    pub left_alone: Vec<crate::provision::owner::LeftAlone>,
    /// Things to know (libvirtd gone, guests not quiet).
    pub warnings: Vec<String>,
    /// Seconds in all.
    pub seconds: f64,
    /// Seconds until every agent served.
    pub serving_after_s: f64,
    /// Seconds until every guest was quiet (None when the wait ran out).
    pub quiet_after_s: Option<f64>,
    /// Each guest's load once quiet.
    pub guests: Vec<GuestLoad>,
    /// The VMs.
    pub vms: Vec<VmUp>,
}

/// Runs the `up` workflow; `confirm` is asked when the plan changes something and
/// `yes` is not set.
pub fn bring_up(
    ctx: &Context,
    args: &UpOptions,
    confirm: &dyn Fn() -> bool,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let agent_path = find_agent(args.agent.as_deref(), ctx.config.agent.as_deref())?;
    let spinner = Spinner::new(ctx.json);

    let store = ImageStore::new(ctx.paths.image_cache.clone());
    let base = store
        .ensure(&ctx.config.image, &spinner)
        .with_context(|| format!("cannot prepare image {}", ctx.config.image))?;
    spinner.stage("looking at what libvirt holds");
    // The binary as built identifies the agent (what the seed carries is it stripped):
    // `plan` reads the same without stripping anything.
    let agent_sha256 = crate::image::sha256_file(&agent_path)
        .with_context(|| format!("cannot read {}", agent_path.display()))?;
    let prepared =
        crate::survey::prepare(ctx, args.no_kvm, Some(&base.sha256), Some(&agent_sha256))?;
    let (lv, plan) = (prepared.libvirt, prepared.plan);

    if !ctx.json {
        spinner.println(&format!(
            "{plan}{}",
            crate::survey::left_alone_lines(&prepared.left_alone)
        ));
    }
    if !plan.is_noop() && !args.yes && !confirm() {
        spinner.finish("nothing changed");
        let mut drift_keys: Vec<&'static str> = plan.drift.iter().map(|d| d.key).collect();
        drift_keys.dedup();
        return Ok(Outcome::Declined { drift_keys });
    }

    // Domains that stay were seeded with this environment's CA and host keys: without
    // them the host can neither verify nor reach those VMs.
    let kept: Vec<&str> = plan
        .vms
        .iter()
        .filter(|vm| {
            !plan
                .actions
                .contains(&crate::plan::Action::CreateVm(vm.index))
        })
        .map(|vm| vm.name.as_str())
        .collect();
    if !kept.is_empty() && !ctx.paths.ca_cert().exists() {
        bail!(
            "VMs {} of environment {} exist but its keys in {} are gone; run `dpdkhost --env {} down -y` and up again",
            kept.join(", "),
            ctx.env,
            ctx.paths.state_dir.display(),
            ctx.env
        );
    }
    // Keys and certificates first: the state file then names everything `up` may make.
    spinner.stage("keys: SSH user and host keys, the environment's CA");
    let (user_key, identity) = keys::user_key(&ctx.paths, &ctx.config.ssh_key, &ctx.env)?;
    let ca = keys::ensure_ca(&ctx.paths, &ctx.env)?;
    let mut host_keys = Vec::new();
    for vm in &plan.vms {
        host_keys.push(keys::host_key(&ctx.paths, &vm.name)?);
    }
    keys::write_known_hosts(
        &ctx.paths,
        &plan
            .vms
            .iter()
            .zip(&host_keys)
            .map(|(vm, k)| (vm.domain.clone(), k.public.clone()))
            .collect::<Vec<_>>(),
    )?;
    let state = state_of(ctx, &plan, &base, identity, &host_keys);
    state.save(&ctx.paths)?;

    let agent_binary = agent_payload(&agent_path)?;
    tracing::info!(agent = %agent_path.display(), bytes = agent_binary.len(), "agent binary for the seeds");
    let mut make_seed = |vm: &VmPlan| -> Result<Vec<u8>, ProvisionError> {
        let boxed = |e: Box<dyn std::error::Error + Send + Sync>| ProvisionError::Seed {
            vm: vm.name.clone(),
            source: e,
        };
        let cert = keys::issue_agent_cert(&ca, &vm.name, vm.mgmt_ip.into())
            .map_err(|e| boxed(Box::new(e)))?;
        let host_key = host_keys[usize::from(vm.index - 1)].clone();
        let spec = seed_spec(
            ctx,
            &plan,
            vm,
            &base,
            &user_key,
            host_key,
            &agent_binary,
            ca.cert_pem(),
            cert,
        );
        seed::build(&spec).map_err(|e| boxed(Box::new(e)))
    };
    let applied_at = Instant::now();
    lv.apply(&plan, &base, &mut make_seed, &spinner)
        .context("cannot apply the plan")?;
    if plan.is_noop() {
        spinner.finish("no changes; checking the agents");
    } else {
        spinner.finish(&format!(
            "applied {} action(s) in {:.1} s",
            plan.actions.len(),
            applied_at.elapsed().as_secs_f64()
        ));
    }

    let timeout = Duration::from_secs(args.timeout.unwrap_or(ctx.config.timeout_secs));
    let results = wait_for_agents(ctx, &lv, &plan, timeout)?;
    let failed: Vec<&WaitResult> = results.iter().filter(|r| r.error.is_some()).collect();
    if !failed.is_empty() {
        for r in &failed {
            report_failure(ctx, &lv, &plan, &state, r);
        }
        bail!(
            "{} of {} agent(s) not SERVING within {} s ({}); the lab is left up for inspection: `dpdkhost logs N`, `dpdkhost down -y`",
            failed.len(),
            results.len(),
            timeout.as_secs(),
            failed.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let serving_after = started.elapsed();
    let quiet = wait_for_quiet(ctx, &state, timeout.saturating_sub(serving_after));
    let total = started.elapsed();
    // The agents answer through QEMU, which outlives libvirtd: a daemon that died
    // meanwhile would go unnoticed until the next command that needs it.
    let mut warnings: Vec<String> = lv
        .ping()
        .err()
        .map(|err| libvirt_lost_warning(lv.uri(), &anyhow::Error::new(err)))
        .into_iter()
        .collect();
    warnings.extend(quiet.warning.clone());
    Ok(Outcome::Up(Box::new(UpReport {
        env: ctx.env.clone(),
        accel: plan.accel,
        accel_reason: plan.accel_reason.clone(),
        actions: plan.actions.clone(),
        left_alone: prepared.left_alone,
        warnings,
        seconds: total.as_secs_f64(),
        serving_after_s: serving_after.as_secs_f64(),
        quiet_after_s: quiet.warning.is_none().then_some(total.as_secs_f64()),
        guests: quiet.loads,
        vms: results
            .iter()
            .map(|r| VmUp {
                vm: r.name.clone(),
                agent_health: "SERVING",
                serving_after_s: r.after.as_secs_f64(),
                ssh: state.vm(&r.name).map(|v| v.ssh),
                agent: state.vm(&r.name).map(|v| v.agent),
            })
            .collect(),
    })))
}

/// The guests once cloud-init has finished in each (or the wait ran out).
struct Quiet {
    loads: Vec<GuestLoad>,
    warning: Option<String>,
}

/// How often `up` asks the guests whether cloud-init has finished.
const QUIET_POLL: Duration = Duration::from_secs(2);

/// Waits until cloud-init has finished in every guest, so that the lab `up` hands over
/// is idle: under TCG cloud-init goes on for half a minute after the agent serves, on
/// the guest's only vCPU, and a bench started then measures the guest's boot.
fn wait_for_quiet(ctx: &Context, state: &State, timeout: Duration) -> Quiet {
    let spinner = Spinner::new(ctx.json);
    let started = Instant::now();
    loop {
        let probed = crate::guest::guest_loads(ctx, state);
        let mut busy = Vec::new();
        let mut loads = Vec::new();
        for (vm, load) in state.vms.iter().zip(probed) {
            match load {
                Ok(load) if !load.cloud_init.is_running() => loads.push(load),
                Ok(load) => {
                    busy.push(format!("{} (cloud-init running)", vm.name));
                    loads.push(load);
                }
                Err(error) => busy.push(format!("{} ({})", vm.name, context::chain(&error))),
            }
        }
        if busy.is_empty() {
            spinner.finish(&format!(
                "guests quiet after {:.1} s more: cloud-init finished",
                started.elapsed().as_secs_f64()
            ));
            return Quiet {
                loads,
                warning: None,
            };
        }
        if started.elapsed() >= timeout {
            spinner.finish("guests not quiet");
            return Quiet {
                loads,
                warning: Some(format!(
                    "not quiet after {} s: {}; figures measured now are skewed by the guests' boot",
                    timeout.as_secs(),
                    busy.join(", ")
                )),
            };
        }
        spinner.stage(&format!(
            "waiting for the guests to be quiet: {}",
            busy.join(", ")
        ));
        std::thread::sleep(QUIET_POLL);
    }
}

/// Why a lab whose agents all serve may still be hard to manage: libvirtd at `uri`
/// stopped answering.
fn libvirt_lost_warning(uri: &str, error: &anyhow::Error) -> String {
    format!(
        "libvirtd ({uri}) no longer answers ({error:#}). The VMs run and their agents \
         serve, but `status`, `down` and the other libvirt commands fail until it is back \
         (no init system: `scripts/start-libvirtd`)"
    )
}

fn state_of(
    ctx: &Context,
    plan: &Plan,
    base: &BaseImage,
    identity: Option<PathBuf>,
    host_keys: &[keys::SshKeyPair],
) -> State {
    let ip_of = |i: u8| plan.vm(i).map(|v| v.data_ip);
    State {
        version: State::VERSION,
        env: ctx.env.clone(),
        libvirt_uri: ctx.config.libvirt_uri.clone(),
        network: plan.network,
        accel: plan.accel,
        accel_reason: plan.accel_reason.clone(),
        user: ctx.config.user.clone(),
        ssh_identity: identity,
        pool: plan.pool.clone(),
        image: base.name.clone(),
        image_sha256: base.sha256.clone(),
        vms: plan
            .vms
            .iter()
            .zip(host_keys)
            .map(|(vm, hk)| VmState {
                index: vm.index,
                name: vm.name.clone(),
                domain: vm.domain.clone(),
                mgmt_ip: vm.mgmt_ip,
                ssh: vm.ssh,
                agent: vm.agent,
                data_ip: format!("{}/{}", vm.data_ip, vm.data_prefix),
                mgmt_mac: vm.mgmt_mac.clone(),
                data_mac: vm.data_mac.clone(),
                peer: vm.peer.map(|p| format!("vm{p}")),
                peer_ip: vm.peer.and_then(ip_of),
                udp_local: vm.udp.map(|u| u.0),
                udp_remote: vm.udp.map(|u| u.1),
                host_key: hk.public.clone(),
            })
            .collect(),
    }
}

#[allow(clippy::too_many_arguments)]
fn seed_spec(
    ctx: &Context,
    plan: &Plan,
    vm: &VmPlan,
    base: &BaseImage,
    user_key: &str,
    host_key: keys::SshKeyPair,
    agent_binary: &[u8],
    ca_pem: &str,
    cert: agent_proto::pki::IssuedCert,
) -> SeedSpec {
    let dns = match plan.network {
        NetworkMode::User => vec![domain::USER_DNS],
        NetworkMode::Nat => vec![vm.mgmt_gateway],
    };
    let peer_ip = vm.peer.and_then(|p| plan.vm(p)).map(|p| p.data_ip);
    SeedSpec {
        instance_id: format!(
            "{}-{}",
            vm.domain,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        hostname: vm.name.clone(),
        user: ctx.config.user.clone(),
        authorized_key: user_key.to_owned(),
        host_key,
        hugepages: plan.hugepages,
        network: MgmtNetwork {
            mac: vm.mgmt_mac.clone(),
            name: domain::MGMT_IFNAME.into(),
            address: vm.mgmt_ip,
            prefix: vm.mgmt_prefix,
            gateway: vm.mgmt_gateway,
            dns,
        },
        grow_partition: base.boot.is_none(),
        image_runs_seed: base.boot.is_some(),
        agent_binary: agent_binary.to_vec(),
        agent_config: AgentConfig {
            listen: vm.agent_listen,
            data_mac: vm.data_mac.clone(),
            data_ip: format!("{}/{}", vm.data_ip, vm.data_prefix),
            peer_ip,
            eal_args: Vec::new(),
            bind_driver: BindDriver::Auto,
            tls: Some(TlsPaths {
                ca: "/etc/dpdk-agent/ca.pem".into(),
                cert: "/etc/dpdk-agent/agent.pem".into(),
                key: "/etc/dpdk-agent/agent.key".into(),
            }),
        },
        ca_pem: ca_pem.to_owned(),
        cert_pem: cert.cert_pem,
        key_pem: cert.key_pem,
    }
}

/// How one VM's wait ended.
struct WaitResult {
    name: String,
    index: u8,
    after: Duration,
    error: Option<String>,
}

/// Waits for every agent concurrently, one progress line per VM; stops early when a
/// domain dies (e.g. KVM internal error).
fn wait_for_agents(
    ctx: &Context,
    lv: &Libvirt,
    plan: &Plan,
    timeout: Duration,
) -> anyhow::Result<Vec<WaitResult>> {
    let agents = ctx.agents()?;
    let multi = if ctx.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    } else {
        MultiProgress::new()
    };
    let plain = !ctx.json && multi.is_hidden();
    let style = ProgressStyle::with_template("{spinner} {prefix:<5} [{elapsed:>3}] {msg}")
        .expect("template");
    let rt = context::runtime()?;
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let names = Names::new(&plan.env);
    let results = rt.block_on(async {
        let waits = agents.iter().map(|a| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(style.clone());
            bar.set_prefix(a.name.clone());
            bar.enable_steady_tick(Duration::from_millis(150));
            bar.set_message(format!("waiting for the agent at {}", a.addr));
            async move {
                let r = AgentClient::wait_serving(a.addr, &a.security, deadline, |last| {
                    bar.set_message(format!("not yet: {}", short(last)));
                })
                .await;
                let after = start.elapsed();
                let error = match r {
                    Ok(_) => {
                        bar.finish_with_message(format!("SERVING after {:.1} s", after.as_secs_f64()));
                        if plain {
                            eprintln!("{}: agent SERVING after {:.1} s", a.name, after.as_secs_f64());
                        }
                        None
                    }
                    Err(e) => {
                        let msg = agent_proto::client::error_chain(&e);
                        bar.abandon_with_message(format!("NOT SERVING: {}", short(&msg)));
                        Some(msg)
                    }
                };
                WaitResult { name: a.name.clone(), index: a.index, after, error }
            }
        });
        let all = futures::future::join_all(waits);
        tokio::pin!(all);
        let mut tick = tokio::time::interval(Duration::from_secs(3));
        loop {
            tokio::select! {
                results = &mut all => return results,
                _ = tick.tick() => {
                    // A domain that stopped will never serve: report it now.
                    if let Ok(found) = lv.find(&plan.env, &plan.pool) {
                        let dead: Vec<_> = plan.vms.iter().filter(|vm| found.domain(vm.index).is_none_or(|d| !d.active)).collect();
                        if !dead.is_empty() {
                            return plan.vms.iter().map(|vm| WaitResult {
                                name: vm.name.clone(),
                                index: vm.index,
                                after: start.elapsed(),
                                error: dead.iter().any(|d| d.index == vm.index).then(|| {
                                    format!("domain {} is {}", names.domain(vm.index),
                                        found.domain(vm.index).map_or("gone", |d| d.state.as_str()))
                                }),
                            }).filter(|r| r.error.is_some()).collect();
                        }
                    }
                }
            }
        }
    });
    Ok(results)
}

fn short(s: &str) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() > 100 {
        s.chars().take(100).collect::<String>() + "…"
    } else {
        s
    }
}

/// Prints why VM `r` did not come up: the last error, QEMU's KVM error if any, the
/// serial console tail, and cloud-init's status when ssh answers.
fn report_failure(ctx: &Context, lv: &Libvirt, plan: &Plan, state: &State, r: &WaitResult) {
    let names = Names::new(&plan.env);
    eprintln!("\n=== {}: {}", r.name, r.error.as_deref().unwrap_or("?"));
    let qemu_log = provision::qemu_log_path(lv.uri(), &names.domain(r.index));
    if let Ok(text) = std::fs::read_to_string(&qemu_log) {
        if accel::kvm_failed_in(&text) {
            eprintln!("{}", accel::KVM_INTERNAL_ERROR_HINT);
        }
    }
    if let Some(dir) = lv.pool_dir(&plan.pool) {
        let log = dir.join(names.console_log(r.index));
        match console::tail(&log, 40) {
            Ok(t) => eprintln!(
                "--- serial console, last 40 lines ({}):\n{t}",
                log.display()
            ),
            Err(e) => eprintln!("--- serial console {} unreadable: {e}", log.display()),
        }
    }
    if let Some(vm) = state.vm(&r.name) {
        let mut cmd = crate::ssh::command(ctx, state, vm, true);
        cmd.args(["sh", "-c"])
            .arg(crate::shell::quote(crate::assets::BOOT_REPORT).unwrap_or_default());
        match crate::ssh::output_with_timeout(cmd, Duration::from_secs(20)) {
            Ok(out) => eprintln!("--- cloud-init status (over ssh):\n{out}"),
            Err(e) => eprintln!(
                "--- cloud-init status unavailable: ssh to {} failed: {e}",
                vm.ssh
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_libvirtd_warning_names_the_daemon_the_cause_and_the_fix() {
        let cause =
            anyhow::anyhow!("End of file while reading data").context("cannot list domains");
        let warning = libvirt_lost_warning("qemu:///system", &cause);
        assert!(warning.contains("qemu:///system"), "{warning}");
        assert!(
            warning.contains("cannot list domains: End of file"),
            "{warning}"
        );
        assert!(warning.contains("scripts/start-libvirtd"), "{warning}");
    }
}
