//! A client of DPDK's telemetry socket (protocol v2): the agent asks the application
//! under test on its released port for its own counters (`/ethdev/stats,0`), which
//! only that process can read. The socket is a Unix SOCK_SEQPACKET one in the
//! process's runtime directory; on connect the process sends a greeting (JSON with
//! its version, pid and the most it will answer), then one JSON answer per command.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
use nix::sys::time::TimeVal;

/// Where DPDK processes run as root keep their runtime directories.
pub const RUNTIME_DIR: &str = "/var/run/dpdk";
/// The v2 socket's name in a runtime directory.
pub const SOCKET_NAME: &str = "dpdk_telemetry.v2";
/// Longest `--file-prefix` asked about.
pub const MAX_PREFIX_LEN: usize = 64;
/// Longest command DPDK's telemetry reads (its MAX_CMD_LEN, less the NUL).
pub const MAX_COMMAND_LEN: usize = 56;
/// Larger than any answer DPDK sends (it caps them at its max_output_len, 16 KiB).
const RECEIVE_BUFFER: usize = 64 * 1024;

/// Why a telemetry question got no answer.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The file prefix is not one a DPDK process could have.
    #[error(
        "file_prefix {0:?} must be 1..={MAX_PREFIX_LEN} of [A-Za-z0-9_.-], not starting with '.'"
    )]
    Prefix(String),
    /// The command is not a telemetry command.
    #[error("command {0:?} must be '/' then at most 55 of [A-Za-z0-9_/,.:=-]")]
    Command(String),
    /// Nothing listens there: the process has not started, has no telemetry, or is gone.
    #[error("no DPDK process answers at {}", path.display())]
    NoProcess {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// The socket failed mid-conversation, or the process took too long.
    #[error("telemetry at {} failed while {what}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// The process answered with something that is not text.
    #[error("telemetry at {} answered {what} that is not UTF-8", path.display())]
    NotText {
        /// The socket path.
        path: PathBuf,
        /// Which message.
        what: &'static str,
    },
}

/// What one question got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryAnswer {
    /// The greeting the process sent on connect.
    pub greeting: String,
    /// Its answer to the command.
    pub json: String,
}

/// The socket of the process started with `--file-prefix file_prefix`, after checking
/// the prefix cannot leave the runtime directory.
pub fn socket_path(file_prefix: &str) -> Result<PathBuf, TelemetryError> {
    let valid = !file_prefix.is_empty()
        && file_prefix.len() <= MAX_PREFIX_LEN
        && !file_prefix.starts_with('.')
        && file_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !valid {
        return Err(TelemetryError::Prefix(file_prefix.to_owned()));
    }
    Ok(Path::new(RUNTIME_DIR).join(file_prefix).join(SOCKET_NAME))
}

/// Checks `command` is shaped like a telemetry command (`/ethdev/stats,0`).
pub fn check_command(command: &str) -> Result<(), TelemetryError> {
    let valid = command.starts_with('/')
        && command.len() < MAX_COMMAND_LEN
        && command.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'/' | b',' | b'.' | b':' | b'=' | b'-')
        });
    if valid {
        Ok(())
    } else {
        Err(TelemetryError::Command(command.to_owned()))
    }
}

/// Connects to `path`, reads the greeting, sends `command` and reads its answer, each
/// step within `timeout`.
pub fn query(
    path: &Path,
    command: &str,
    timeout: Duration,
) -> Result<TelemetryAnswer, TelemetryError> {
    check_command(command)?;
    let io = |what: &'static str| {
        let path = path.to_owned();
        move |source| TelemetryError::Io { path, what, source }
    };
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io("opening a socket"))?;
    let wait = TimeVal::new(
        i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        i64::from(timeout.subsec_micros()),
    );
    socket::setsockopt(&fd, socket::sockopt::ReceiveTimeout, &wait)
        .map_err(io("setting the timeout"))?;
    socket::setsockopt(&fd, socket::sockopt::SendTimeout, &wait)
        .map_err(io("setting the timeout"))?;
    let address = UnixAddr::new(path).map_err(io("naming the socket"))?;
    socket::connect(fd.as_raw_fd(), &address).map_err(|source| match source {
        Errno::ENOENT | Errno::ECONNREFUSED | Errno::ENOTDIR => TelemetryError::NoProcess {
            path: path.to_owned(),
            source,
        },
        other => io("connecting")(other),
    })?;
    let mut buffer = vec![0u8; RECEIVE_BUFFER];
    let mut receive = |what: &'static str| -> Result<String, TelemetryError> {
        let len = socket::recv(fd.as_raw_fd(), &mut buffer, MsgFlags::empty()).map_err(io(what))?;
        String::from_utf8(buffer[..len].to_vec()).map_err(|_| TelemetryError::NotText {
            path: path.to_owned(),
            what,
        })
    };
    let greeting = receive("reading the greeting")?;
    socket::send(fd.as_raw_fd(), command.as_bytes(), MsgFlags::empty())
        .map_err(io("sending the command"))?;
    let json = receive("reading the answer")?;
    Ok(TelemetryAnswer { greeting, json })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_stay_inside_the_runtime_directory() {
        assert_eq!(
            socket_path("baseline").unwrap(),
            Path::new("/var/run/dpdk/baseline/dpdk_telemetry.v2")
        );
        for bad in ["", "..", ".hidden", "a/b", "a b", "$(x)", &"p".repeat(65)] {
            assert!(
                matches!(socket_path(bad), Err(TelemetryError::Prefix(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn commands_are_telemetry_paths() {
        for good in [
            "/",
            "/ethdev/list",
            "/ethdev/stats,0",
            "/ethdev/xstats,0,hide_zero=true",
        ] {
            check_command(good).unwrap();
        }
        for bad in [
            "ethdev/list",
            "/ethdev stats",
            "/x;reboot",
            "/\n",
            &format!("/{}", "a".repeat(56)),
        ] {
            assert!(check_command(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_process_is_told_apart_from_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let error = query(&dir.path().join("none"), "/", Duration::from_millis(100)).unwrap_err();
        assert!(matches!(error, TelemetryError::NoProcess { .. }), "{error}");
    }
}
