//! One mutating command per environment. `up`, `down` and the workloads hold an
//! exclusive flock(2) on `<state root>/<env>.lock` for as long as they run; a second
//! one fails at once and says who holds it. Without it two `up`s at once each replace
//! the other's domains and mix two CAs' keys and certificates.
//!
//! The lock file lives beside the environment's state directory, not in it: `down`
//! removes that directory while holding the lock. It is never deleted (a process that
//! opened the old inode would lock a file nobody else sees); its content only says who
//! holds it now, and is read only while the lock is held by someone.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::state::{self, Paths, StateError};

/// Who holds an environment's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Its command line (`dpdkhost --env t up -y`).
    pub command: String,
    /// Its process id.
    pub pid: u32,
    /// When it took the lock (RFC 3339, UTC).
    pub since: String,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another command holds it.
    #[error("environment {env} is busy: {}", describe(.holder.as_ref(), .path))]
    Busy {
        /// The environment.
        env: String,
        /// Who holds it, when the lock file says so.
        holder: Option<Holder>,
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be made, opened or locked.
    #[error("cannot lock {path}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Its directory could not be made.
    #[error("lock directory")]
    Dir(#[from] StateError),
}

fn describe(holder: Option<&Holder>, path: &Path) -> String {
    match holder {
        Some(h) => format!("`{}` (pid {}) holds it since {}", h.command, h.pid, h.since),
        // Taken a moment ago, details not written yet.
        None => format!("another dpdkhost command holds {}", path.display()),
    }
}

/// An environment's lock, released on drop (or when the process ends, however).
#[derive(Debug)]
pub struct EnvLock {
    _held: agent_proto::lockfile::Held,
    path: PathBuf,
}

impl EnvLock {
    /// Takes environment `env`'s lock for `command`, or fails at once naming the holder.
    pub fn acquire(paths: &Paths, env: &str, command: &str) -> Result<EnvLock, LockError> {
        use agent_proto::lockfile::{try_lock, LockFileError, TryLock};
        let path = paths.lock_file();
        if let Some(dir) = path.parent() {
            state::ensure_dir(dir)?;
        }
        let holder = Holder {
            command: command.to_owned(),
            pid: std::process::id(),
            since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let record = format!(
            "{}\n",
            serde_json::to_string(&holder).expect("Holder serializes")
        );
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        match try_lock(&path, &record) {
            Ok(TryLock::Acquired(held)) => Ok(EnvLock { _held: held, path }),
            Ok(TryLock::Busy(record)) => Err(LockError::Busy {
                env: env.to_owned(),
                // A holder killed outright left its record: a dead pid names nobody.
                holder: record
                    .and_then(|text| serde_json::from_str::<Holder>(&text).ok())
                    .filter(|h| Path::new(&format!("/proc/{}", h.pid)).exists()),
                path,
            }),
            Err(LockFileError::Open(source)) => Err(io(source)),
            Err(LockFileError::Lock(errno)) => Err(io(std::io::Error::from(errno))),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// This process's command line as the user typed it: `dpdkhost` and its arguments.
pub fn command_line() -> String {
    let mut words = vec!["dpdkhost".to_owned()];
    words.extend(std::env::args().skip(1));
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path, env: &str) -> Paths {
        Paths {
            state_dir: dir.join("state").join(env),
            image_cache: dir.join("img"),
        }
    }

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_command_and_pid() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path(), "t");
        let first = EnvLock::acquire(&p, "t", "dpdkhost --env t up -y").unwrap();
        assert_eq!(first.path(), dir.path().join("state/t.lock"));
        let err = EnvLock::acquire(&p, "t", "dpdkhost --env t down -y").unwrap_err();
        let LockError::Busy { holder, .. } = &err else {
            panic!("{err:?}");
        };
        let holder = holder.as_ref().expect("the holder is named");
        assert_eq!(holder.command, "dpdkhost --env t up -y");
        assert_eq!(holder.pid, std::process::id());
        assert!(
            chrono::DateTime::parse_from_rfc3339(&holder.since).is_ok(),
            "{}",
            holder.since
        );
        let text = err.to_string();
        assert!(
            text.starts_with("environment t is busy: `dpdkhost --env t up -y` (pid ")
                && text.contains(" holds it since "),
            "{text}"
        );
        // Another environment is not held up.
        let other = EnvLock::acquire(&paths(dir.path(), "u"), "u", "dpdkhost up").unwrap();
        // The state directory may go (down) while the lock stays held and valid.
        std::fs::create_dir_all(&p.state_dir).unwrap();
        state::remove_all(&p).unwrap();
        assert!(EnvLock::acquire(&p, "t", "x").is_err());
        drop(first);
        let again = EnvLock::acquire(&p, "t", "dpdkhost --env t down -y").unwrap();
        drop((again, other));
    }
}
