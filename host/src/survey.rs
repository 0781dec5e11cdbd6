//! Before `plan` and `up` change anything: connect to libvirt, decide the acceleration,
//! read what the environment has, and plan; refuse a plan that would take a name an
//! object of someone else holds.

use anyhow::Context as _;

use crate::accel::{self, KvmProbe};
use crate::config::NetworkMode;
use crate::context::Context;
use crate::plan::{self, KernelPorts, Plan};
use crate::provision::owner::LeftAlone;
use crate::provision::{Found, Libvirt, Names, ProvisionError};

/// What `plan` and `up` both start from.
pub struct Prepared {
    /// The connection.
    pub libvirt: Libvirt,
    /// What to do.
    pub plan: Plan,
    /// What looks like the environment's but is not (neither used nor replaced).
    pub left_alone: Vec<LeftAlone>,
}

/// Refuses a plan that would make an object whose name is taken by one that is not the
/// environment's: `up` would replace a person's domain, or use their network.
fn check_not_ours(plan: &Plan, found: &Found) -> anyhow::Result<()> {
    let mut objects: Vec<String> = plan
        .vms
        .iter()
        .map(|vm| format!("domain {}", vm.domain))
        .collect();
    if plan.network == NetworkMode::Nat {
        let names = Names::new(&plan.env);
        objects.push(format!("network {}", names.mgmt_network()));
        objects.push(format!("network {}", names.data_network()));
    }
    let in_the_way: Vec<String> = found
        .not_ours_among(&objects)
        .into_iter()
        .map(|l| ProvisionError::NotOurs(l.clone()).to_string())
        .collect();
    if in_the_way.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", in_the_way.join("\n"))
    }
}

/// Connects, decides the acceleration, looks at what exists, and plans. `image_sha256`
/// is the base image `up` will use, `agent_sha256` the agent binary its seeds carry,
/// when known.
pub fn prepare(
    ctx: &Context,
    no_kvm: bool,
    image_sha256: Option<&str>,
    agent_sha256: Option<&str>,
) -> anyhow::Result<Prepared> {
    let libvirt = Libvirt::open(&ctx.config.libvirt_uri)?;
    let decision = accel::decide(
        ctx.config.accel,
        no_kvm,
        libvirt.is_local(),
        &KvmProbe::run(),
    )?;
    let found = libvirt
        .find(&ctx.env, &ctx.config.pool)
        .context("cannot list the environment's libvirt objects")?;
    plan::check_existing(&ctx.config, &ctx.env, &found).map_err(anyhow::Error::msg)?;
    let state = ctx.state()?;
    let image_matches = match (state.as_ref(), image_sha256) {
        (Some(s), Some(sha)) => s.image_sha256 == sha,
        _ => true,
    };
    let mut plan = plan::make(
        &ctx.config,
        &ctx.env,
        &decision,
        &ctx.config.image.to_string(),
        image_matches,
        &found,
        &mut KernelPorts::default(),
    );
    if let Some(sha) = agent_sha256 {
        plan::replace_for_agent(&mut plan, &found, sha);
    }
    check_not_ours(&plan, &found)?;
    Ok(Prepared {
        libvirt,
        plan,
        left_alone: found.left_alone,
    })
}

/// `  ! left alone: ...` lines, one per object that only looks like the environment's.
pub fn left_alone_lines(left_alone: &[LeftAlone]) -> String {
    left_alone
        .iter()
        .map(|l| format!("  ! left alone (not this environment's): {l}\n"))
        .collect()
}
