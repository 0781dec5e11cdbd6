//! KVM or TCG: KVM only where /dev/kvm opens, answers the API version ioctl, and the CPU
//! exposes virtualisation (vmx/svm); otherwise TCG. The decision carries its reason.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::AccelChoice;

/// The acceleration a domain runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation (domain type `kvm`, cpu host-passthrough).
    Kvm,
    /// Software emulation (domain type `qemu`, cpu maximum).
    Tcg,
}

impl Accel {
    /// The libvirt domain type.
    pub fn domain_type(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "qemu",
        }
    }

    /// From a libvirt domain type.
    pub fn from_domain_type(t: &str) -> Option<Accel> {
        match t {
            "kvm" => Some(Accel::Kvm),
            "qemu" => Some(Accel::Tcg),
            _ => None,
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// What this machine offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvmProbe {
    /// `Ok` when /dev/kvm opens read-write and reports API version 12, else why not.
    pub device: Result<(), String>,
    /// `Ok` when /proc/cpuinfo lists vmx or svm, else why not.
    pub cpu: Result<(), String>,
}

impl KvmProbe {
    /// Probes /dev/kvm and /proc/cpuinfo.
    pub fn run() -> KvmProbe {
        KvmProbe {
            device: probe_device(),
            cpu: probe_cpu(std::fs::read_to_string("/proc/cpuinfo").ok()),
        }
    }

    /// `Ok` when KVM is usable, else the reasons.
    pub fn usable(&self) -> Result<(), String> {
        match (&self.device, &self.cpu) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(d), Ok(())) => Err(d.clone()),
            (Ok(()), Err(c)) => Err(c.clone()),
            (Err(d), Err(c)) => Err(format!("{d}; {c}")),
        }
    }
}

fn probe_device() -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm cannot be opened read-write ({e})"))?;
    let version = crate::sys::kvm_api_version(file.as_raw_fd());
    if version == 12 {
        Ok(())
    } else {
        Err(format!(
            "/dev/kvm answers KVM_GET_API_VERSION with {version}, expected 12"
        ))
    }
}

fn probe_cpu(cpuinfo: Option<String>) -> Result<(), String> {
    let Some(text) = cpuinfo else {
        return Err("/proc/cpuinfo is unreadable".into());
    };
    let has = text
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if has {
        Ok(())
    } else {
        Err("the CPU exposes no virtualisation (no vmx/svm flag in /proc/cpuinfo; nested KVM is off)".into())
    }
}

/// The acceleration chosen and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// KVM or TCG.
    pub accel: Accel,
    /// One sentence for the user.
    pub reason: String,
}

/// Why KVM was demanded but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("accel = \"kvm\" but KVM is not usable here: {reason}; use --no-kvm or accel = \"tcg\"")]
pub struct KvmUnavailable {
    /// Why.
    pub reason: String,
}

/// Picks KVM or TCG. `no_kvm` is the `--no-kvm` flag; `local` is false for remote
/// libvirt URIs, where this machine's /dev/kvm says nothing.
pub fn decide(
    choice: AccelChoice,
    no_kvm: bool,
    local: bool,
    probe: &KvmProbe,
) -> Result<Decision, KvmUnavailable> {
    if no_kvm {
        return Ok(Decision {
            accel: Accel::Tcg,
            reason: "--no-kvm given: TCG (software emulation)".into(),
        });
    }
    match choice {
        AccelChoice::Tcg => Ok(Decision {
            accel: Accel::Tcg,
            reason: "accel = \"tcg\" in the configuration".into(),
        }),
        AccelChoice::Kvm => {
            if local {
                probe.usable().map_err(|reason| KvmUnavailable { reason })?;
            }
            Ok(Decision {
                accel: Accel::Kvm,
                reason: "accel = \"kvm\" in the configuration".into(),
            })
        }
        AccelChoice::Auto if !local => Ok(Decision {
            accel: Accel::Kvm,
            reason: "remote libvirt URI: KVM assumed (set accel = \"tcg\" if the host lacks it)"
                .into(),
        }),
        AccelChoice::Auto => match probe.usable() {
            Ok(()) => Ok(Decision {
                accel: Accel::Kvm,
                reason: "/dev/kvm works and the CPU has vmx/svm: KVM".into(),
            }),
            Err(why) => Ok(Decision {
                accel: Accel::Tcg,
                reason: format!("TCG (software emulation): {why}"),
            }),
        },
    }
}

/// The hint printed when a QEMU log shows KVM failing at run time.
pub const KVM_INTERNAL_ERROR_HINT: &str =
    "QEMU reported \"KVM internal error\": nested KVM does not work on this machine; run `dpdkhost down -y` then `dpdkhost up --no-kvm` (or set accel = \"tcg\")";

/// Whether a QEMU log shows KVM failing at run time.
pub fn kvm_failed_in(log: &str) -> bool {
    log.contains("KVM internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(device: bool, cpu: bool) -> KvmProbe {
        KvmProbe {
            device: if device {
                Ok(())
            } else {
                Err("no /dev/kvm".into())
            },
            cpu: if cpu { Ok(()) } else { Err("no vmx".into()) },
        }
    }

    #[test]
    fn auto_needs_both_device_and_cpu_flag() {
        assert_eq!(
            decide(AccelChoice::Auto, false, true, &probe(true, true))
                .unwrap()
                .accel,
            Accel::Kvm
        );
        let d = decide(AccelChoice::Auto, false, true, &probe(true, false)).unwrap();
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.reason.contains("no vmx"), "{}", d.reason);
        let d = decide(AccelChoice::Auto, false, true, &probe(false, false)).unwrap();
        assert!(d.reason.contains("no /dev/kvm") && d.reason.contains("no vmx"));
    }

    #[test]
    fn no_kvm_and_tcg_win_and_kvm_demand_fails_clearly() {
        assert_eq!(
            decide(AccelChoice::Kvm, true, true, &probe(true, true))
                .unwrap()
                .accel,
            Accel::Tcg
        );
        assert_eq!(
            decide(AccelChoice::Tcg, false, true, &probe(true, true))
                .unwrap()
                .accel,
            Accel::Tcg
        );
        let err = decide(AccelChoice::Kvm, false, true, &probe(true, false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--no-kvm") && err.contains("no vmx"), "{err}");
    }

    #[test]
    fn cpu_flags_parse() {
        assert!(probe_cpu(Some("flags\t\t: fpu vme sse4_2 vmx\n".into())).is_ok());
        assert!(probe_cpu(Some("flags\t\t: fpu svm\n".into())).is_ok());
        assert!(probe_cpu(Some("flags\t\t: fpu vme sse4_2 hypervisor\n".into())).is_err());
        assert!(probe_cpu(None).is_err());
    }

    #[test]
    fn kvm_error_detection() {
        assert!(kvm_failed_in(
            "2026 KVM internal error. Suberror: 1\nemulation failure"
        ));
        assert!(!kvm_failed_in("char device redirected to /dev/pts/3"));
        assert_eq!(
            Accel::from_domain_type(Accel::Tcg.domain_type()),
            Some(Accel::Tcg)
        );
    }
}
