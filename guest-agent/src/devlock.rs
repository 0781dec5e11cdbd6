//! One driver per device: whoever starts EAL on a device holds an exclusive lock on
//! it, so a second DPDK process of ours (a selftest or workload started by hand
//! while `serve` runs) fails at once, naming the holder, instead of taking the
//! device from under the running agent and leaving the lab broken while it looks
//! healthy.
//!
//! The lock is an `flock` on a file per device in the run directory
//! (`/run/dpdk-agent`, or `$DPDK_AGENT_RUN_DIR`), holding "pid command since".
//! The kernel drops it when the holder exits, however it exits. PCI devices are
//! keyed by their address; virtual devices by their whole spec, except those that
//! live inside the process (net_ring, net_null), which nobody else can take.
//! Processes that do not know this lock (dpdk-testpmd) are not stopped by it;
//! `serve` lets go of it when it hands its port to one (see handover.rs).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use agent_proto::lockfile::{LockFileError, TryLock};
use nix::errno::Errno;

/// Where locks and the control socket live unless `$DPDK_AGENT_RUN_DIR` says otherwise.
pub const DEFAULT_RUN_DIR: &str = "/run/dpdk-agent";
/// Overrides [`DEFAULT_RUN_DIR`] (tests give each agent its own).
pub const RUN_DIR_ENV: &str = "DPDK_AGENT_RUN_DIR";
/// Virtual-device drivers whose devices exist only inside their process.
const PRIVATE_VDEV_DRIVERS: &[&str] = &["net_ring", "net_null"];

/// The run directory: `$DPDK_AGENT_RUN_DIR` or [`DEFAULT_RUN_DIR`].
pub fn run_dir() -> PathBuf {
    std::env::var_os(RUN_DIR_ENV)
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_RUN_DIR), PathBuf::from)
}

/// Why a device could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process drives the device.
    #[error("{device} is in use by {holder} (lock {path}); stop it first, or run the selftest through the serving agent (dpdk-agent --selftest without --device)")]
    Held {
        /// The device.
        device: String,
        /// "pid N (command) since T", from the lock file.
        holder: String,
        /// The lock file.
        path: PathBuf,
    },
    /// The run directory or the lock file could not be made or opened.
    #[error("cannot open the lock file {path}")]
    Open {
        /// The file (or directory).
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// flock failed for a reason other than another holder.
    #[error("cannot lock {path}")]
    Lock {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Errno,
    },
}

/// An exclusive hold on one device; released when dropped (or the process exits).
#[derive(Debug)]
pub struct DeviceLock {
    device: String,
    _held: agent_proto::lockfile::Held,
}

impl DeviceLock {
    /// Locks `device` in `run_dir` for `command`, or says who holds it.
    pub fn acquire(run_dir: &Path, device: &str, command: &str) -> Result<DeviceLock, LockError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(run_dir)
            .map_err(|source| LockError::Open {
                path: run_dir.to_owned(),
                source,
            })?;
        let path = run_dir.join(lock_file_name(device));
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let record = format!("{} {since} {command}\n", std::process::id());
        let held = match agent_proto::lockfile::try_lock(&path, &record) {
            Ok(TryLock::Acquired(held)) => held,
            Ok(TryLock::Busy(holder)) => {
                return Err(LockError::Held {
                    device: device.to_owned(),
                    holder: describe_holder(holder.as_deref().unwrap_or_default()),
                    path,
                })
            }
            Err(LockFileError::Open(source)) => return Err(LockError::Open { path, source }),
            Err(LockFileError::Lock(source)) => return Err(LockError::Lock { path, source }),
        };
        Ok(DeviceLock {
            device: device.to_owned(),
            _held: held,
        })
    }

    /// The locked device.
    pub fn device(&self) -> &str {
        &self.device
    }
}

/// Locks on every device some EAL arguments name.
#[derive(Debug, Default)]
pub struct DeviceLocks {
    locks: Vec<DeviceLock>,
}

impl DeviceLocks {
    /// Locks each device `eal_args` name (`-a`/`--allow` PCI addresses and shared
    /// `--vdev`s), all or none.
    pub fn for_eal_args(
        eal_args: &[String],
        run_dir: &Path,
        command: &str,
    ) -> Result<DeviceLocks, LockError> {
        let locks = devices_in_eal_args(eal_args)
            .iter()
            .map(|device| DeviceLock::acquire(run_dir, device, command))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DeviceLocks { locks })
    }

    /// The locked devices.
    pub fn devices(&self) -> Vec<&str> {
        self.locks.iter().map(DeviceLock::device).collect()
    }
}

/// The devices EAL arguments make EAL drive: `-a`/`--allow` PCI addresses (without
/// their device arguments) and `--vdev` specs, less process-private vdevs.
pub fn devices_in_eal_args(args: &[String]) -> Vec<String> {
    let mut devices = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (kind, value) = match arg.as_str() {
            "-a" | "--allow" | "-w" => ("pci", args.next().cloned()),
            "--vdev" => ("vdev", args.next().cloned()),
            other => {
                if let Some(value) = other
                    .strip_prefix("--allow=")
                    .or_else(|| other.strip_prefix("-a"))
                {
                    ("pci", Some(value.to_owned()))
                } else if let Some(value) = other.strip_prefix("--vdev=") {
                    ("vdev", Some(value.to_owned()))
                } else {
                    continue;
                }
            }
        };
        let Some(value) = value.filter(|value| !value.is_empty()) else {
            continue;
        };
        let device = match kind {
            "pci" => value.split(',').next().unwrap_or_default().to_owned(),
            _ => {
                let name = value.split(',').next().unwrap_or_default();
                if PRIVATE_VDEV_DRIVERS
                    .iter()
                    .any(|driver| name.starts_with(driver))
                {
                    continue;
                }
                value
            }
        };
        if !devices.contains(&device) {
            devices.push(device);
        }
    }
    devices
}

/// A file name for `device`: a PCI address as it is; anything else by its first
/// part and a hash of the whole (specs hold paths and commas).
fn lock_file_name(device: &str) -> String {
    let plain = device
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-'));
    if plain && device.len() <= 64 {
        return format!("{device}.lock");
    }
    let name: String = device
        .split(',')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        .take(32)
        .collect();
    // FNV-1a: stable across runs and builds (DefaultHasher promises neither).
    let hash = device
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{name}-{hash:016x}.lock")
}

/// "pid 123 (dpdk-agent serve) since 2024-06-01 10:00:00 UTC" from "123 1717236000 dpdk-agent serve".
fn describe_holder(record: &str) -> String {
    let mut parts = record.trim().splitn(3, ' ');
    let pid = parts.next().and_then(|pid| pid.parse::<u32>().ok());
    let since = parts.next().and_then(|since| since.parse::<u64>().ok());
    let command = parts.next().unwrap_or_default();
    match (pid, since) {
        (Some(pid), Some(since)) => {
            format!("pid {pid} ({command}) since {}", format_utc(since))
        }
        _ => "another process (it has not recorded itself yet)".to_owned(),
    }
}

/// Seconds since the epoch as "YYYY-MM-DD HH:MM:SS UTC".
fn format_utc(seconds: u64) -> String {
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let rest = seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn a_second_holder_is_refused_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = DeviceLock::acquire(dir.path(), "0000:00:03.0", "dpdk-agent serve").unwrap();
        let error =
            DeviceLock::acquire(dir.path(), "0000:00:03.0", "dpdk-agent --selftest").unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, LockError::Held { .. }), "{error:?}");
        assert!(
            text.contains(&format!(
                "pid {} (dpdk-agent serve) since ",
                std::process::id()
            )),
            "{text}"
        );
        assert!(text.contains("0000:00:03.0"), "{text}");
        // Another device is free; the first one is once its holder lets go.
        let other = DeviceLock::acquire(dir.path(), "0000:00:04.0", "x").unwrap();
        drop(first);
        let again = DeviceLock::acquire(dir.path(), "0000:00:03.0", "dpdk-agent --selftest");
        assert!(again.is_ok(), "{again:?}");
        drop(other);
    }

    #[test]
    fn all_or_none_of_the_eal_devices_are_locked() {
        let dir = tempfile::tempdir().unwrap();
        let held = DeviceLock::acquire(dir.path(), "0000:00:04.0", "serve").unwrap();
        let args = strings(&["-l", "0", "-a", "0000:00:03.0", "-a", "0000:00:04.0"]);
        let error = DeviceLocks::for_eal_args(&args, dir.path(), "selftest").unwrap_err();
        assert!(error.to_string().contains("0000:00:04.0"), "{error}");
        // 0000:00:03.0 was let go again.
        DeviceLock::acquire(dir.path(), "0000:00:03.0", "x").unwrap();
        drop(held);
    }

    #[test]
    fn eal_arguments_name_their_devices() {
        let args = strings(&[
            "-l",
            "0",
            "-a",
            "0000:00:04.0,foo=1",
            "--allow=0000:00:05.0",
            "-a0000:00:06.0",
            "--vdev=net_ring0",
            "--vdev",
            "net_null0,size=64",
            "--vdev=net_memif0,role=server,socket=/tmp/x/memif.sock",
            "--file-prefix=a",
        ]);
        assert_eq!(
            devices_in_eal_args(&args),
            [
                "0000:00:04.0",
                "0000:00:05.0",
                "0000:00:06.0",
                "net_memif0,role=server,socket=/tmp/x/memif.sock"
            ]
        );
    }

    #[test]
    fn lock_files_are_plain_names() {
        assert_eq!(lock_file_name("0000:00:04.0"), "0000:00:04.0.lock");
        let memif = lock_file_name("net_memif0,role=server,socket=/tmp/x/memif.sock");
        assert!(
            memif.starts_with("net_memif0-") && !memif.contains('/'),
            "{memif}"
        );
        assert_ne!(
            memif,
            lock_file_name("net_memif0,role=client,socket=/tmp/x/memif.sock")
        );
    }

    #[test]
    fn holders_are_described() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_717_236_000), "2024-06-01 10:00:00 UTC");
        assert_eq!(
            describe_holder("123 1717236000 dpdk-agent serve\n"),
            "pid 123 (dpdk-agent serve) since 2024-06-01 10:00:00 UTC"
        );
        assert!(describe_holder("").contains("another process"));
    }
}
