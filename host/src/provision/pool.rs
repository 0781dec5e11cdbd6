//! The directory storage pool (created when missing) and its volumes: uploads through
//! libvirt streams (QEMU may run as another user, so everything it reads lives here),
//! qcow2 overlays on the base image.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use virt::connect::Connect;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;

use super::domain::esc;
use super::{lookup, ProvisionError};
use crate::image::{DiskFormat, Progress};

/// The pool's XML.
pub fn pool_xml(name: &str, path: &Path) -> String {
    format!(
        "<pool type='dir'>\n  <name>{}</name>\n  <target>\n    <path>{}</path>\n    <permissions><mode>0755</mode></permissions>\n  </target>\n</pool>\n",
        esc(name),
        esc(&path.to_string_lossy())
    )
}

fn lv(what: impl Into<String>) -> impl FnOnce(virt::error::Error) -> ProvisionError {
    let what = what.into();
    move |source| ProvisionError::Libvirt { what, source }
}

/// The pool, defined, built and started when missing or inactive; one it defines is
/// marked as dpdkhost's (`owner::mark_pool`), so `down` may remove it.
pub fn ensure(conn: &Connect, name: &str, path: &Path) -> Result<StoragePool, ProvisionError> {
    let (pool, created) = match lookup(StoragePool::lookup_by_name(conn, name))? {
        Some(pool) => (pool, false),
        None => {
            let pool = StoragePool::define_xml(conn, &pool_xml(name, path), 0)
                .map_err(lv(format!("define pool {name}")))?;
            pool.build(0)
                .map_err(lv(format!("build pool {name} at {}", path.display())))?;
            (pool, true)
        }
    };
    if !pool.is_active().map_err(lv(format!("query pool {name}")))? {
        pool.create(0).map_err(lv(format!("start pool {name}")))?;
    }
    if created {
        super::owner::mark_pool(&pool)?;
    }
    Ok(pool)
}

/// The pool's target directory.
pub fn target_path(pool: &StoragePool) -> Result<PathBuf, ProvisionError> {
    let xml = pool.get_xml_desc(0).map_err(lv("read pool XML"))?;
    let start = xml.find("<path>").map(|i| i + 6);
    let end = xml.find("</path>");
    match (start, end) {
        (Some(s), Some(e)) if e > s => Ok(PathBuf::from(&xml[s..e])),
        _ => Err(ProvisionError::Unexpected(
            "pool XML has no target path".into(),
        )),
    }
}

/// Names of every volume in the pool.
pub fn volume_names(pool: &StoragePool) -> Result<Vec<String>, ProvisionError> {
    refresh(pool)?;
    pool.list_volumes().map_err(lv("list volumes"))
}

fn raw_volume_xml(name: &str, size: u64) -> String {
    format!(
        "<volume>\n  <name>{}</name>\n  <capacity unit='bytes'>{size}</capacity>\n  <allocation unit='bytes'>0</allocation>\n  <target>\n    <format type='raw'/>\n    <permissions><mode>0644</mode></permissions>\n  </target>\n</volume>\n",
        esc(name)
    )
}

/// An overlay volume's XML.
pub fn overlay_xml(
    name: &str,
    capacity_bytes: u64,
    backing: &Path,
    backing_format: DiskFormat,
) -> String {
    format!(
        "<volume>\n  <name>{}</name>\n  <capacity unit='bytes'>{capacity_bytes}</capacity>\n  <target>\n    <format type='qcow2'/>\n    <permissions><mode>0644</mode></permissions>\n  </target>\n  <backingStore>\n    <path>{}</path>\n    <format type='{}'/>\n  </backingStore>\n</volume>\n",
        esc(name),
        esc(&backing.to_string_lossy()),
        backing_format.as_str()
    )
}

/// Deletes volume `name` if present.
pub fn delete_volume(pool: &StoragePool, name: &str) -> Result<bool, ProvisionError> {
    match lookup(StorageVol::lookup_by_name(pool, name))? {
        Some(vol) => {
            // A volume still being written for a client that went away (a killed `up`)
            // cannot be deleted until libvirtd finishes with it: wait, bounded.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            loop {
                match vol.delete(0) {
                    Ok(()) => return Ok(true),
                    Err(err) if volume_busy(&err) && std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(250));
                    }
                    Err(err) => return Err(lv(format!("delete volume {name}"))(err)),
                }
            }
        }
        None => Ok(false),
    }
}

fn volume_busy(err: &virt::error::Error) -> bool {
    let text = err.to_string();
    [
        "asynchronous jobs running",
        "still being allocated",
        "still in use",
    ]
    .iter()
    .any(|busy| text.contains(busy))
}

fn create_raw(pool: &StoragePool, name: &str, size: u64) -> Result<StorageVol, ProvisionError> {
    delete_volume(pool, name)?;
    StorageVol::create_xml(pool, &raw_volume_xml(name, size), 0)
        .map_err(lv(format!("create volume {name}")))
}

fn send_all(stream: &Stream, mut data: &[u8], name: &str) -> Result<(), ProvisionError> {
    while !data.is_empty() {
        let n = stream
            .send(data)
            .map_err(lv(format!("upload into {name}")))?;
        data = &data[n..];
    }
    Ok(())
}

/// How volume contents get into the pool.
#[derive(Debug, Clone)]
pub enum Transfer {
    /// Through a libvirt stream (works for any connection).
    Stream,
    /// Written straight into the pool directory, which this process can write (a local
    /// connection): no RPC round trips, several times faster. libvirt sees the files
    /// after a pool refresh.
    Local(PathBuf),
}

impl Transfer {
    /// `Local` when `dir` is writable by this process, else `Stream`.
    pub fn choose(local_connection: bool, dir: &Path) -> Transfer {
        if !local_connection {
            return Transfer::Stream;
        }
        // access(2) rather than a probe file: a process killed mid-probe must not leave
        // a stray file that keeps the pool from being removed.
        let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
            return Transfer::Stream;
        };
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call;
        // access only reads it.
        let writable = unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0;
        if writable {
            Transfer::Local(dir.to_owned())
        } else {
            Transfer::Stream
        }
    }
}

fn write_local(
    pool: &StoragePool,
    dir: &Path,
    name: &str,
    src: &mut dyn Read,
    len: u64,
    progress: &dyn Progress,
) -> Result<(PathBuf, String), ProvisionError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    delete_volume(pool, name)?;
    let path = dir.join(name);
    let io = |source| ProvisionError::Io {
        path: path.clone(),
        source,
    };
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&path)
        .map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut done = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io)?;
        done += n as u64;
        progress.bytes(done, len);
    }
    out.flush().map_err(io)?;
    Ok((path, hex::encode(hasher.finalize())))
}

/// Makes the pool see files written into its directory.
pub fn refresh(pool: &StoragePool) -> Result<(), ProvisionError> {
    // libvirtd refuses to refresh while a volume job still runs, e.g. an upload from an
    // `up` that was killed: wait for it (bounded) rather than fail `down`.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        match pool.refresh(0) {
            Ok(_) => return Ok(()),
            Err(err) if volume_busy(&err) && std::time::Instant::now() < deadline => {
                tracing::info!("pool busy with a volume job; waiting");
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            Err(err) => return Err(lv("refresh pool")(err)),
        }
    }
}

/// Stores `bytes` as raw volume `name`; returns its path.
pub fn upload_bytes(
    conn: &Connect,
    pool: &StoragePool,
    transfer: &Transfer,
    name: &str,
    bytes: &[u8],
) -> Result<PathBuf, ProvisionError> {
    let len = bytes.len() as u64;
    if let Transfer::Local(dir) = transfer {
        let (path, _) = write_local(pool, dir, name, &mut &bytes[..], len, &crate::image::Quiet)?;
        return Ok(path);
    }
    let vol = create_raw(pool, name, len)?;
    let stream = Stream::new(conn, 0).map_err(lv("open a stream"))?;
    vol.upload(&stream, 0, len, 0)
        .map_err(lv(format!("start upload into {name}")))?;
    for chunk in bytes.chunks(1 << 20) {
        send_all(&stream, chunk, name)?;
    }
    stream
        .finish()
        .map_err(lv(format!("finish upload into {name}")))?;
    vol.get_path()
        .map(PathBuf::from)
        .map_err(lv(format!("path of {name}")))
}

/// Stores file `src` as volume `name`, checking its sha256 on the way; returns the path.
pub fn upload_file(
    conn: &Connect,
    pool: &StoragePool,
    transfer: &Transfer,
    name: &str,
    src: &Path,
    sha256: &str,
    progress: &dyn Progress,
) -> Result<PathBuf, ProvisionError> {
    let io = |source| ProvisionError::Io {
        path: src.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(src).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mismatch = |actual: String| ProvisionError::Checksum {
        path: src.to_owned(),
        expected: sha256.to_owned(),
        actual,
    };
    if let Transfer::Local(dir) = transfer {
        let (path, actual) = write_local(pool, dir, name, &mut file, len, progress)?;
        if actual != sha256 {
            let _ = std::fs::remove_file(&path);
            return Err(mismatch(actual));
        }
        return Ok(path);
    }
    let vol = create_raw(pool, name, len)?;
    let stream = Stream::new(conn, 0).map_err(lv("open a stream"))?;
    vol.upload(&stream, 0, len, 0)
        .map_err(lv(format!("start upload into {name}")))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        send_all(&stream, &buf[..n], name)?;
        done += n as u64;
        progress.bytes(done, len);
    }
    let actual = hex::encode(hasher.finalize());
    if actual != sha256 {
        let _ = stream.abort();
        let _ = delete_volume(pool, name);
        return Err(mismatch(actual));
    }
    stream
        .finish()
        .map_err(lv(format!("finish upload into {name}")))?;
    vol.get_path()
        .map(PathBuf::from)
        .map_err(lv(format!("path of {name}")))
}

/// Creates qcow2 overlay `name` on `backing`; returns its path.
pub fn create_overlay(
    pool: &StoragePool,
    name: &str,
    capacity_bytes: u64,
    backing: &Path,
    backing_format: DiskFormat,
) -> Result<PathBuf, ProvisionError> {
    delete_volume(pool, name)?;
    let vol = StorageVol::create_xml(
        pool,
        &overlay_xml(name, capacity_bytes, backing, backing_format),
        0,
    )
    .map_err(lv(format!("create overlay {name}")))?;
    vol.get_path()
        .map(PathBuf::from)
        .map_err(lv(format!("path of {name}")))
}

/// Stops, deletes and undefines the pool when it holds no volume.
pub fn remove_if_empty(pool: &StoragePool) -> Result<bool, ProvisionError> {
    let name = pool.get_name().unwrap_or_default();
    if pool.is_active().unwrap_or(false) {
        if !volume_names(pool)?.is_empty() {
            return Ok(false);
        }
        pool.destroy().map_err(lv(format!("stop pool {name}")))?;
    }
    // Removes the (empty) directory; fails harmlessly when it was never built.
    let _ = pool.delete(0);
    pool.undefine()
        .map_err(lv(format!("undefine pool {name}")))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_xml_names_its_backing_file() {
        let x = overlay_xml(
            "dpdkhost-t-vm1.qcow2",
            8 << 30,
            Path::new("/p/dpdkhost-t-base.qcow2"),
            DiskFormat::Qcow2,
        );
        assert!(x.contains("<capacity unit='bytes'>8589934592</capacity>"));
        assert!(x.contains("<path>/p/dpdkhost-t-base.qcow2</path>"));
        assert!(x.contains("<format type='qcow2'/>\n  </backingStore>"));
    }

    #[test]
    fn transfer_is_local_only_for_writable_local_directories() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Transfer::choose(true, dir.path()),
            Transfer::Local(_)
        ));
        assert!(matches!(
            Transfer::choose(false, dir.path()),
            Transfer::Stream
        ));
        assert!(matches!(
            Transfer::choose(true, Path::new("/nonexistent/pool")),
            Transfer::Stream
        ));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "choosing leaves no file behind"
        );
    }

    #[test]
    fn pool_lifecycle_on_the_test_driver() {
        virt::error::clear_error_callback();
        let conn = Connect::open(Some("test:///default")).unwrap();
        let pool = ensure(&conn, "dpdkhost-test", Path::new("/var/lib/dpdkhost-test")).unwrap();
        assert!(pool.is_active().unwrap());
        assert_eq!(
            target_path(&pool).unwrap(),
            PathBuf::from("/var/lib/dpdkhost-test")
        );
        // The test driver has no upload, but creates volumes.
        let vol =
            StorageVol::create_xml(&pool, &raw_volume_xml("dpdkhost-t-seed.img", 4096), 0).unwrap();
        drop(vol);
        let mut names = volume_names(&pool).unwrap();
        names.sort();
        assert_eq!(
            names,
            [super::super::owner::POOL_MARKER, "dpdkhost-t-seed.img"]
        );
        assert!(
            !remove_if_empty(&pool).unwrap(),
            "a pool with volumes stays"
        );
        assert!(delete_volume(&pool, "dpdkhost-t-seed.img").unwrap());
        assert!(!delete_volume(&pool, "dpdkhost-t-seed.img").unwrap());
        assert!(delete_volume(&pool, super::super::owner::POOL_MARKER).unwrap());
        assert!(remove_if_empty(&pool).unwrap());
        assert!(StoragePool::lookup_by_name(&conn, "dpdkhost-test").is_err());
    }
}
