//! A lock file that names its holder, shared by the host's environment lock and the
//! agent's device locks: an exclusive, non-blocking flock on a file readable by its
//! owner only, with the holder's record written into it once it holds the lock. The
//! lock goes with the process, however it ends; the file stays (so does its record,
//! overwritten by the next holder).

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// A held lock file; released on drop, its record emptied first so the next reader
/// never takes a finished holder for the current one.
#[derive(Debug)]
pub struct Held(Flock<File>);

impl Drop for Held {
    fn drop(&mut self) {
        // Still locked here: nobody reads a half-emptied file.
        let _ = self.0.set_len(0);
    }
}

/// What trying a lock file came to.
#[derive(Debug)]
pub enum TryLock {
    /// Ours now, with our record in it.
    Acquired(Held),
    /// Someone else holds it: their record, or None when they have not written it
    /// within a moment of taking the lock.
    Busy(Option<String>),
}

/// Why a lock file could not be tried.
#[derive(Debug, thiserror::Error)]
pub enum LockFileError {
    /// The file could not be opened or created.
    #[error("cannot open the lock file")]
    Open(#[source] std::io::Error),
    /// flock failed other than by another holder.
    #[error("cannot lock the lock file")]
    Lock(#[source] Errno),
}

/// Tries `path` (created 0600 when missing); on success writes `record` into it.
pub fn try_lock(path: &Path, record: &str) -> Result<TryLock, LockFileError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(LockFileError::Open)?;
    let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => locked,
        Err((file, Errno::EWOULDBLOCK)) => return Ok(TryLock::Busy(read_record(&file))),
        Err((_, errno)) => return Err(LockFileError::Lock(errno)),
    };
    let written = file
        .set_len(0)
        .and_then(|()| file.write_all_at(record.as_bytes(), 0))
        .and_then(|()| file.flush());
    if let Err(error) = written {
        // The lock holds either way; only the holder's name is missing.
        tracing::warn!(path = %path.display(), %error, "cannot record the lock's holder");
    }
    Ok(TryLock::Acquired(Held(file)))
}

/// The holder's record. A holder writes it just after taking the lock, so a reader
/// that comes in between finds the file empty or half written: read again for a moment.
fn read_record(file: &File) -> Option<String> {
    let mut last = String::new();
    for _ in 0..25 {
        let mut buf = vec![0u8; 4096];
        let n = file.read_at(&mut buf, 0).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        // A record is one line; a complete one ends with its newline.
        if text.ends_with('\n') && text == last {
            return Some(text.trim_end().to_owned());
        }
        last = text;
        std::thread::sleep(Duration::from_millis(20));
    }
    (!last.trim().is_empty()).then(|| last.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_reads_the_first_ones_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let first = try_lock(&path, "first holder\n").unwrap();
        assert!(matches!(first, TryLock::Acquired(_)));
        match try_lock(&path, "second\n").unwrap() {
            TryLock::Busy(record) => assert_eq!(record.as_deref(), Some("first holder")),
            TryLock::Acquired(_) => panic!("locked twice"),
        }
        drop(first);
        assert!(matches!(
            try_lock(&path, "second\n").unwrap(),
            TryLock::Acquired(_)
        ));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
