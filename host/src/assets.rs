//! The guest-side files in cloud-init/ (scripts and systemd units), as they are: none of
//! them is templated. Per-VM values travel in the seed's `dpdkhost.env`
//! ([`crate::seed::install_env`]) or as a script's arguments, quoted by [`crate::shell`].

/// The agent's unit, installed from the seed.
pub const AGENT_UNIT: &str = include_str!("../../cloud-init/dpdk-agent.service");
/// The built-in image's early unit that runs [`RUN_FROM_SEED`] after local filesystems.
pub const SEED_UNIT: &str = include_str!("../../cloud-init/dpdkhost-seed.service");
/// The seed's install script (`dpdkhost-install.sh`).
pub const INSTALL_AGENT: &str = include_str!("../../cloud-init/install-agent.sh");
/// Mounts the seed and runs its install script: cloud-init's bootcmd, and the early
/// unit's program in the built-in image.
pub const RUN_FROM_SEED: &str = include_str!("../../cloud-init/run-from-seed.sh");
/// mmdebstrap's customize hook for the built-in image.
pub const CUSTOMIZE_IMAGE: &str = include_str!("../../cloud-init/customize-image.sh");
/// The built-in image's root filesystem from mmdebstrap's tarball (run on the host).
pub const IMAGE_FILESYSTEM: &str = include_str!("../../cloud-init/image-filesystem.sh");
/// The testpmd baseline's runner in the guest.
pub const TESTPMD_RUN: &str = include_str!("../../cloud-init/testpmd-run.sh");
/// `dpdkhost exec`'s runner in the guest: runs the command in a recorded process group
/// and stops that group afterwards.
pub const EXEC_RUN: &str = include_str!("../../cloud-init/exec-run.sh");
/// What `up` shows of a VM whose agent did not come up.
pub const BOOT_REPORT: &str = include_str!("../../cloud-init/boot-report.sh");
/// The guest load probe.
pub const GUEST_LOAD: &str = include_str!("../../cloud-init/guest-load.sh");

#[cfg(test)]
mod tests {
    use super::*;

    /// Every script is valid POSIX or bash shell as the guest runs it (the suite also
    /// runs shellcheck on cloud-init/).
    #[test]
    fn scripts_parse() {
        for (name, text, shell) in [
            ("install-agent.sh", INSTALL_AGENT, "sh"),
            ("run-from-seed.sh", RUN_FROM_SEED, "sh"),
            ("customize-image.sh", CUSTOMIZE_IMAGE, "sh"),
            ("image-filesystem.sh", IMAGE_FILESYSTEM, "sh"),
            ("guest-load.sh", GUEST_LOAD, "sh"),
            ("boot-report.sh", BOOT_REPORT, "sh"),
            ("testpmd-run.sh", TESTPMD_RUN, "bash"),
            ("exec-run.sh", EXEC_RUN, "bash"),
        ] {
            let status = std::process::Command::new(shell)
                .args(["-n", "-c", text])
                .status()
                .unwrap();
            assert!(status.success(), "{shell} -n rejects {name}");
        }
    }
}
