//! What a guest is busy with: its load average and whether cloud-init still runs. Under
//! TCG each VM has one vCPU, so a guest still finishing its boot skews every figure:
//! `up` waits for cloud-init, and every saved run records this at its start.

use serde::{Deserialize, Serialize};

use crate::context::Context;

/// The probe run in the guest (`sh -c`): reads /proc/loadavg and cloud-init's files.
pub const PROBE: &str = crate::assets::GUEST_LOAD;

/// cloud-init's state in a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloudInit {
    /// Not installed in the image.
    Absent,
    /// Installed but disabled.
    Disabled,
    /// Still working through its stages.
    Running,
    /// Every stage finished without error.
    Done,
    /// Finished, with errors (see `cloud-init status --long` in the guest).
    Error,
}

impl CloudInit {
    /// Whether it still uses the guest's CPU.
    pub fn is_running(self) -> bool {
        self == CloudInit::Running
    }
}

impl std::fmt::Display for CloudInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CloudInit::Absent => "absent",
            CloudInit::Disabled => "disabled",
            CloudInit::Running => "running",
            CloudInit::Done => "done",
            CloudInit::Error => "error",
        })
    }
}

/// A guest's load when it was probed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestLoad {
    /// The VM.
    pub vm: String,
    /// Load average over 1 minute.
    pub load1: f64,
    /// Load average over 5 minutes.
    pub load5: f64,
    /// cloud-init's state.
    pub cloud_init: CloudInit,
}

/// The probe printed something other than its two lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{vm}: the load probe printed {output:?}, not `load A B C` and `cloud-init STATE`")]
pub struct ProbeOutputError {
    /// The VM.
    pub vm: String,
    /// What it printed.
    pub output: String,
}

impl GuestLoad {
    /// Parses what [`PROBE`] printed in `vm` (untrusted: it comes from the guest).
    pub fn parse(vm: &str, output: &str) -> Result<GuestLoad, ProbeOutputError> {
        let bad = || ProbeOutputError {
            vm: vm.to_owned(),
            output: output.chars().take(200).collect(),
        };
        let mut load = None;
        let mut cloud_init = None;
        for line in output.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["load", one, five, _fifteen] => {
                    let parse =
                        |w: &str| w.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
                    load = Some((parse(one).ok_or_else(bad)?, parse(five).ok_or_else(bad)?));
                }
                ["cloud-init", state] => {
                    cloud_init = Some(match *state {
                        "absent" => CloudInit::Absent,
                        "disabled" => CloudInit::Disabled,
                        "running" => CloudInit::Running,
                        "done" => CloudInit::Done,
                        "error" => CloudInit::Error,
                        _ => return Err(bad()),
                    });
                }
                _ => {}
            }
        }
        let ((load1, load5), cloud_init) = load.zip(cloud_init).ok_or_else(bad)?;
        Ok(GuestLoad {
            vm: vm.to_owned(),
            load1,
            load5,
            cloud_init,
        })
    }
}

/// Why a guest's load could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// ssh to the VM failed or timed out.
    #[error("{vm}: ssh")]
    Ssh {
        /// The VM.
        vm: String,
        /// What ssh said.
        #[source]
        source: crate::ssh::SshError,
    },
    /// The probe printed something else.
    #[error("unexpected probe output")]
    Output(#[from] ProbeOutputError),
    /// The probe's text could not be quoted (never: it is ours).
    #[error("the probe cannot be quoted")]
    Quote(#[source] crate::shell::NulInWord),
    /// A probe thread panicked.
    #[error("the load probe panicked")]
    Panicked,
}

/// How long one guest may take to answer the load probe over ssh.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Every VM's load and cloud-init state, probed over ssh at once.
pub fn guest_loads(
    ctx: &Context,
    state: &crate::state::State,
) -> Vec<Result<GuestLoad, ProbeError>> {
    std::thread::scope(|scope| {
        let probes: Vec<_> = state
            .vms
            .iter()
            .map(|vm| {
                scope.spawn(move || -> Result<GuestLoad, ProbeError> {
                    let mut cmd = crate::ssh::command(ctx, state, vm, true);
                    cmd.arg(crate::shell::join(&["sh", "-c", PROBE]).map_err(ProbeError::Quote)?);
                    let output =
                        crate::ssh::output_with_timeout(cmd, PROBE_TIMEOUT).map_err(|source| {
                            ProbeError::Ssh {
                                vm: vm.name.clone(),
                                source,
                            }
                        })?;
                    Ok(GuestLoad::parse(&vm.name, &output)?)
                })
            })
            .collect();
        probes
            .into_iter()
            .map(|probe| probe.join().unwrap_or(Err(ProbeError::Panicked)))
            .collect()
    })
}

/// One line for people: `vm1 load 0.42/0.80, cloud-init done`.
impl std::fmt::Display for GuestLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} load {:.2}/{:.2}, cloud-init {}",
            self.vm, self.load1, self.load5, self.cloud_init
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_probe_and_refuses_anything_else() {
        let g = GuestLoad::parse("vm1", "load 0.42 0.80 0.31\ncloud-init running\n").unwrap();
        assert_eq!(
            (g.load1, g.load5, g.cloud_init),
            (0.42, 0.80, CloudInit::Running)
        );
        assert!(g.cloud_init.is_running());
        assert_eq!(g.to_string(), "vm1 load 0.42/0.80, cloud-init running");
        for bad in [
            "",
            "load 0.1 0.2 0.3\n",
            "load x 0.2 0.3\ncloud-init done\n",
            "load 0.1 NaN 0.3\ncloud-init done\n",
            "load 0.1 0.2 0.3\ncloud-init $(reboot)\n",
        ] {
            assert!(GuestLoad::parse("vm1", bad).is_err(), "{bad:?}");
        }
    }

    /// The probe itself, run on this host: its output parses (this host has no
    /// cloud-init, or one that has finished).
    #[test]
    fn the_probe_runs_and_its_output_parses() {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(PROBE)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let load = GuestLoad::parse("host", &text).unwrap();
        assert!(!load.cloud_init.is_running(), "{text}");
    }
}
