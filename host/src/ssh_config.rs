//! An OpenSSH config block per VM of an environment, with the pinned host keys, so
//! plain `ssh -F`, `scp -F`, `rsync -e 'ssh -F ...'` and editors' remote plugins reach
//! the VMs as `dpdkhost ssh` does: StrictHostKeyChecking yes against the known_hosts
//! `up` wrote, the host key looked up by the VM's domain name.

use serde::Serialize;

use crate::context::Context;
use crate::state::State;

/// One VM's block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostBlock {
    /// The `Host` alias: `dpdk-vm1` (`dpdk-<env>-vm1` outside the default environment).
    pub alias: String,
    /// Where sshd is reached.
    pub hostname: String,
    /// Its port.
    pub port: u16,
    /// The VMs' sudo user.
    pub user: String,
    /// The environment's key, when dpdkhost made it.
    pub identity_file: Option<String>,
    /// The pinned host keys.
    pub known_hosts: String,
    /// The name the host key is pinned under.
    pub host_key_alias: String,
}

/// The alias of `vm` in environment `env`.
pub fn alias(env: &str, vm: &str) -> String {
    if env == "default" {
        format!("dpdk-{vm}")
    } else {
        format!("dpdk-{env}-{vm}")
    }
}

/// Every VM's block.
pub fn blocks(ctx: &Context, state: &State) -> Vec<HostBlock> {
    state
        .vms
        .iter()
        .map(|vm| HostBlock {
            alias: alias(&state.env, &vm.name),
            hostname: vm.ssh.ip().to_string(),
            port: vm.ssh.port(),
            user: state.user.clone(),
            identity_file: state.ssh_identity.as_ref().map(|p| p.display().to_string()),
            known_hosts: ctx.paths.known_hosts().display().to_string(),
            host_key_alias: vm.domain.clone(),
        })
        .collect()
}

/// The config text. Paths are quoted: ssh_config splits unquoted values on spaces.
pub fn render(env: &str, blocks: &[HostBlock]) -> String {
    let mut text = format!("# dpdkhost environment {env}: written by `dpdkhost ssh-config`\n");
    for b in blocks {
        text.push_str(&format!(
            "\nHost {}\n  HostName {}\n  Port {}\n  User {}\n",
            b.alias, b.hostname, b.port, b.user
        ));
        if let Some(id) = &b.identity_file {
            text.push_str(&format!("  IdentityFile \"{id}\"\n  IdentitiesOnly yes\n"));
        }
        text.push_str(&format!(
            "  UserKnownHostsFile \"{}\"\n  HostKeyAlias {}\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n",
            b.known_hosts, b.host_key_alias
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(alias: &str) -> HostBlock {
        HostBlock {
            alias: alias.into(),
            hostname: "127.0.0.1".into(),
            port: 40022,
            user: "dpdk".into(),
            identity_file: Some("/s/t/id_ed25519".into()),
            known_hosts: "/s/t/known hosts".into(),
            host_key_alias: "dpdkhost-t-vm1".into(),
        }
    }

    #[test]
    fn aliases_name_the_environment_outside_the_default_one() {
        assert_eq!(alias("default", "vm1"), "dpdk-vm1");
        assert_eq!(alias("smoke", "vm2"), "dpdk-smoke-vm2");
    }

    /// ssh itself reads the block: `ssh -G` prints the options it would use.
    #[test]
    fn ssh_reads_the_block_with_strict_pinned_host_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, render("t", &[block("dpdk-t-vm1")])).unwrap();
        let out = std::process::Command::new("ssh")
            .arg("-G")
            .arg("-F")
            .arg(&path)
            .arg("dpdk-t-vm1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen = String::from_utf8_lossy(&out.stdout);
        for line in [
            "hostname 127.0.0.1",
            "port 40022",
            "user dpdk",
            "stricthostkeychecking true",
            "hostkeyalias dpdkhost-t-vm1",
            "userknownhostsfile /s/t/known hosts",
            "identityfile /s/t/id_ed25519",
        ] {
            assert!(seen.lines().any(|l| l == line), "no {line:?} in:\n{seen}");
        }
    }
}
