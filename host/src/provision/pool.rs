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

/// The account QEMU runs as, which must read (and write) the pool's files. Seeds hold
/// the agent's TLS key and the VM's SSH host key, so nobody else may read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QemuAccount {
    /// Its user id.
    pub uid: u32,
    /// Its group id.
    pub gid: u32,
}

/// The pool directory's mode: its owner (root, or the session's user) does everything,
/// QEMU's group may only pass through to files it is given by name.
pub const POOL_DIR_MODE: u32 = 0o710;
/// Every volume's mode: read and write for its owner (QEMU's account) alone.
pub const VOLUME_MODE: u32 = 0o600;

impl QemuAccount {
    /// What libvirt says QEMU runs as: the DAC security model's base label in the
    /// host capabilities (`+64055:+64055` on Debian's qemu:///system). Without one
    /// (qemu:///session, the test driver), QEMU runs as this process's user.
    pub fn of(conn: &Connect) -> QemuAccount {
        let this_process = QemuAccount {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        };
        // Without root nothing can be given to another account, and the session
        // daemon runs QEMU as this user anyway.
        if !nix::unistd::geteuid().is_root() {
            return this_process;
        }
        conn.get_capabilities()
            .ok()
            .and_then(|xml| Self::from_capabilities(&xml))
            .unwrap_or(this_process)
    }

    fn from_capabilities(xml: &str) -> Option<QemuAccount> {
        let doc = roxmltree::Document::parse(xml).ok()?;
        let secmodel = doc.descendants().find(|node| {
            node.has_tag_name("secmodel")
                && node
                    .children()
                    .any(|c| c.has_tag_name("model") && c.text() == Some("dac"))
        })?;
        let label = secmodel
            .children()
            .filter(|c| c.has_tag_name("baselabel"))
            .find(|c| matches!(c.attribute("type"), Some("qemu") | Some("kvm")))?
            .text()?;
        let (uid, gid) = label.split_once(':')?;
        let id = |part: &str| part.trim().trim_start_matches('+').parse().ok();
        Some(QemuAccount {
            uid: id(uid)?,
            gid: id(gid)?,
        })
    }

    fn permissions_xml(&self, mode: u32, owner: u32) -> String {
        format!(
            "<permissions><mode>{mode:04o}</mode><owner>{owner}</owner><group>{}</group></permissions>",
            self.gid
        )
    }

    /// `<permissions>` of a volume: QEMU's account owns it, mode 0600.
    fn volume_permissions(&self) -> String {
        self.permissions_xml(VOLUME_MODE, self.uid)
    }
}

/// The pool's XML.
pub fn pool_xml(name: &str, path: &Path, qemu: QemuAccount) -> String {
    let owner = nix::unistd::geteuid().as_raw();
    format!(
        "<pool type='dir'>\n  <name>{}</name>\n  <target>\n    <path>{}</path>\n    {}\n  </target>\n</pool>\n",
        esc(name),
        esc(&path.to_string_lossy()),
        qemu.permissions_xml(POOL_DIR_MODE, owner)
    )
}

/// Tightens a pool directory that an older dpdkhost (or a person) made readable to
/// everyone, and the files of environment `prefix` in it: the directory to
/// [`POOL_DIR_MODE`] with QEMU's group, each file to [`VOLUME_MODE`] (its owner is
/// left as it is: libvirt gives a running VM's disks to QEMU and back).
pub fn tighten(dir: &Path, qemu: QemuAccount, prefix: &str) -> Result<(), ProvisionError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ProvisionError::Io { path, source }
    };
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    if meta.permissions().mode() & 0o7777 != POOL_DIR_MODE {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(POOL_DIR_MODE))
            .map_err(io(dir))?;
    }
    if nix::unistd::geteuid().is_root() {
        use std::os::unix::fs::MetadataExt;
        if meta.gid() != qemu.gid {
            std::os::unix::fs::chown(dir, None, Some(qemu.gid)).map_err(io(dir))?;
        }
    }
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let meta = entry.metadata().map_err(io(&path))?;
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(VOLUME_MODE))
                .map_err(io(&path))?;
        }
    }
    Ok(())
}

fn lv(what: impl Into<String>) -> impl FnOnce(virt::error::Error) -> ProvisionError {
    let what = what.into();
    move |source| ProvisionError::Libvirt { what, source }
}

/// The pool, defined, built and started when missing or inactive; one it defines is
/// marked as dpdkhost's (`owner::mark_pool`), so `down` may remove it.
pub fn ensure(
    conn: &Connect,
    name: &str,
    path: &Path,
    qemu: QemuAccount,
) -> Result<StoragePool, ProvisionError> {
    let (pool, created) = match lookup(StoragePool::lookup_by_name(conn, name))? {
        Some(pool) => (pool, false),
        None => {
            let pool = StoragePool::define_xml(conn, &pool_xml(name, path, qemu), 0)
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

fn raw_volume_xml(name: &str, size: u64, qemu: QemuAccount) -> String {
    format!(
        "<volume>\n  <name>{}</name>\n  <capacity unit='bytes'>{size}</capacity>\n  <allocation unit='bytes'>0</allocation>\n  <target>\n    <format type='raw'/>\n    {}\n  </target>\n</volume>\n",
        esc(name),
        qemu.volume_permissions()
    )
}

/// An overlay volume's XML.
pub fn overlay_xml(
    name: &str,
    capacity_bytes: u64,
    backing: &Path,
    backing_format: DiskFormat,
    qemu: QemuAccount,
) -> String {
    format!(
        "<volume>\n  <name>{}</name>\n  <capacity unit='bytes'>{capacity_bytes}</capacity>\n  <target>\n    <format type='qcow2'/>\n    {}\n  </target>\n  <backingStore>\n    <path>{}</path>\n    <format type='{}'/>\n  </backingStore>\n</volume>\n",
        esc(name),
        qemu.volume_permissions(),
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

fn create_raw(
    pool: &StoragePool,
    name: &str,
    size: u64,
    qemu: QemuAccount,
) -> Result<StorageVol, ProvisionError> {
    delete_volume(pool, name)?;
    StorageVol::create_xml(pool, &raw_volume_xml(name, size, qemu), 0)
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
        let writable = nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok();
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
    qemu: QemuAccount,
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
        .mode(VOLUME_MODE)
        .open(&path)
        .map_err(io)?;
    // Written by root for QEMU's account, as libvirt would have made the volume.
    if nix::unistd::geteuid().as_raw() != qemu.uid {
        std::os::unix::fs::fchown(&out, Some(qemu.uid), Some(qemu.gid)).map_err(io)?;
    }
    let sha256 = copy_hashed(src, len, progress, io, |chunk| {
        out.write_all(chunk).map_err(io)
    })?;
    out.flush().map_err(io)?;
    Ok((path, sha256))
}

/// Copies `src` into `sink` in 4 MiB chunks, reporting progress against `len`, and
/// returns the sha256 of what it copied: the check costs no second read of a
/// multi-gigabyte image.
fn copy_hashed(
    src: &mut dyn Read,
    len: u64,
    progress: &dyn Progress,
    read_error: impl Fn(std::io::Error) -> ProvisionError,
    mut sink: impl FnMut(&[u8]) -> Result<(), ProvisionError>,
) -> Result<String, ProvisionError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut done = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(&read_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        sink(&buf[..n])?;
        done += n as u64;
        progress.bytes(done, len);
    }
    Ok(hex::encode(hasher.finalize()))
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

/// Where an upload goes: the pool, how its files are written, and for whom.
pub struct Destination<'a> {
    /// The pool.
    pub pool: &'a StoragePool,
    /// Through libvirt or straight into its directory.
    pub transfer: &'a Transfer,
    /// The account that owns the volume.
    pub qemu: QemuAccount,
}

/// A new raw volume `name` of `len` bytes and a libvirt stream uploading into it.
fn start_upload(
    conn: &Connect,
    pool: &StoragePool,
    name: &str,
    len: u64,
    qemu: QemuAccount,
) -> Result<(StorageVol, Stream), ProvisionError> {
    let vol = create_raw(pool, name, len, qemu)?;
    let stream = Stream::new(conn, 0).map_err(lv("open a stream"))?;
    vol.upload(&stream, 0, len, 0)
        .map_err(lv(format!("start upload into {name}")))?;
    Ok((vol, stream))
}

/// Ends an upload; the volume's path.
fn finish_upload(stream: Stream, vol: &StorageVol, name: &str) -> Result<PathBuf, ProvisionError> {
    stream
        .finish()
        .map_err(lv(format!("finish upload into {name}")))?;
    vol.get_path()
        .map(PathBuf::from)
        .map_err(lv(format!("path of {name}")))
}

/// Stores `bytes` as raw volume `name`; returns its path.
pub fn upload_bytes(
    conn: &Connect,
    dest: &Destination<'_>,
    name: &str,
    bytes: &[u8],
) -> Result<PathBuf, ProvisionError> {
    let len = bytes.len() as u64;
    // Reading a slice cannot fail.
    let io = |source| ProvisionError::Io {
        path: PathBuf::from(name),
        source,
    };
    let unchecked = |_| Ok(());
    store(
        conn,
        dest,
        name,
        &mut &bytes[..],
        len,
        &crate::image::Quiet,
        io,
        unchecked,
    )
}

/// Stores file `src` as volume `name`, checking its sha256 on the way; returns the path.
pub fn upload_file(
    conn: &Connect,
    dest: &Destination<'_>,
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
    let matches = |actual: String| {
        if actual == sha256 {
            return Ok(());
        }
        Err(ProvisionError::Checksum {
            path: src.to_owned(),
            expected: sha256.to_owned(),
            actual,
        })
    };
    store(conn, dest, name, &mut file, len, progress, io, matches)
}

/// Copies `src` (`len` bytes) into volume `name` by the destination's transfer;
/// returns the volume's path. `accept` judges the sha256 of what was copied before
/// the volume is kept: refused, the volume is removed and its Err returned.
#[allow(clippy::too_many_arguments)]
fn store(
    conn: &Connect,
    dest: &Destination<'_>,
    name: &str,
    src: &mut dyn Read,
    len: u64,
    progress: &dyn Progress,
    read_error: impl Fn(std::io::Error) -> ProvisionError,
    accept: impl FnOnce(String) -> Result<(), ProvisionError>,
) -> Result<PathBuf, ProvisionError> {
    let Destination {
        pool,
        transfer,
        qemu,
    } = *dest;
    if let Transfer::Local(dir) = transfer {
        let (path, actual) = write_local(pool, dir, name, src, len, progress, qemu)?;
        if let Err(refused) = accept(actual) {
            let _ = std::fs::remove_file(&path);
            return Err(refused);
        }
        return Ok(path);
    }
    let (vol, stream) = start_upload(conn, pool, name, len, qemu)?;
    let actual = copy_hashed(src, len, progress, read_error, |chunk| {
        send_all(&stream, chunk, name)
    })?;
    if let Err(refused) = accept(actual) {
        let _ = stream.abort();
        let _ = delete_volume(pool, name);
        return Err(refused);
    }
    finish_upload(stream, &vol, name)
}

/// Creates qcow2 overlay `name` on `backing`; returns its path.
pub fn create_overlay(
    pool: &StoragePool,
    name: &str,
    capacity_bytes: u64,
    backing: &Path,
    backing_format: DiskFormat,
    qemu: QemuAccount,
) -> Result<PathBuf, ProvisionError> {
    delete_volume(pool, name)?;
    let vol = StorageVol::create_xml(
        pool,
        &overlay_xml(name, capacity_bytes, backing, backing_format, qemu),
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

    const QEMU: QemuAccount = QemuAccount {
        uid: 64055,
        gid: 64055,
    };

    #[test]
    fn qemu_account_comes_from_the_dac_base_label() {
        let caps = "<capabilities><host><secmodel><model>none</model><doi>0</doi></secmodel>\
            <secmodel><model>dac</model><doi>0</doi>\
            <baselabel type='kvm'>+64055:+994</baselabel>\
            <baselabel type='qemu'>+64055:+994</baselabel></secmodel></host></capabilities>";
        assert_eq!(
            QemuAccount::from_capabilities(caps),
            Some(QemuAccount {
                uid: 64055,
                gid: 994
            })
        );
        assert_eq!(
            QemuAccount::from_capabilities("<capabilities><host/></capabilities>"),
            None
        );
    }

    #[test]
    fn pool_and_volumes_are_private_to_qemu() {
        let pool = pool_xml("dpdkhost", Path::new("/p"), QEMU);
        let pool = roxmltree::Document::parse(&pool).unwrap();
        let text = |doc: &roxmltree::Document, tag: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name(tag))
                .and_then(|n| n.text())
                .map(str::to_owned)
        };
        assert_eq!(text(&pool, "mode").as_deref(), Some("0710"));
        assert_eq!(text(&pool, "group").as_deref(), Some("64055"));
        for xml in [
            raw_volume_xml("dpdkhost-t-vm1-seed.img", 4096, QEMU),
            overlay_xml("v", 1 << 30, Path::new("/p/b"), DiskFormat::Raw, QEMU),
        ] {
            let doc = roxmltree::Document::parse(&xml).unwrap();
            assert_eq!(text(&doc, "mode").as_deref(), Some("0600"), "{xml}");
            assert_eq!(text(&doc, "owner").as_deref(), Some("64055"), "{xml}");
        }
    }

    #[test]
    fn a_loose_pool_directory_and_the_environments_files_are_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let seed = dir.path().join("dpdkhost-t-vm1-seed.img");
        let other = dir.path().join("someone-elses.img");
        for file in [&seed, &other] {
            std::fs::write(file, b"x").unwrap();
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let me = QemuAccount {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        };
        tighten(dir.path(), me, "dpdkhost-t-").unwrap();
        assert_eq!(mode(dir.path()), 0o710);
        assert_eq!(mode(&seed), 0o600);
        assert_eq!(
            mode(&other),
            0o644,
            "files of others are not ours to change"
        );
    }

    #[test]
    fn overlay_xml_names_its_backing_file() {
        let x = overlay_xml(
            "dpdkhost-t-vm1.qcow2",
            8 << 30,
            Path::new("/p/dpdkhost-t-base.qcow2"),
            DiskFormat::Qcow2,
            QEMU,
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

    /// A connection to the test driver and pool `name` made on it, its directory
    /// /var/lib/`name` (which the test driver does not create).
    fn test_driver_pool(name: &str) -> (Connect, StoragePool) {
        virt::error::clear_error_callback();
        let conn = Connect::open(Some("test:///default")).unwrap();
        let pool = ensure(&conn, name, &Path::new("/var/lib").join(name), QEMU).unwrap();
        (conn, pool)
    }

    /// The test driver has no upload streams: this covers the local transfer.
    #[test]
    fn local_uploads_keep_only_what_matches_its_sha256() {
        let (conn, pool) = test_driver_pool("dpdkhost-upload-test");
        let dir = tempfile::tempdir().unwrap();
        let transfer = Transfer::Local(dir.path().to_owned());
        let dest = Destination {
            pool: &pool,
            transfer: &transfer,
            qemu: QEMU,
        };
        let seed = upload_bytes(&conn, &dest, "dpdkhost-t-seed.img", b"seed").unwrap();
        assert_eq!(seed, dir.path().join("dpdkhost-t-seed.img"));
        assert_eq!(std::fs::read(&seed).unwrap(), b"seed");

        let src = dir.path().join("image.raw");
        std::fs::write(&src, b"image").unwrap();
        let sha256 = hex::encode(Sha256::digest(b"image"));
        let quiet = &crate::image::Quiet;
        let base = upload_file(&conn, &dest, "dpdkhost-t-base.raw", &src, &sha256, quiet);
        assert_eq!(std::fs::read(base.unwrap()).unwrap(), b"image");
        let wrong = "0".repeat(64);
        let error = upload_file(&conn, &dest, "dpdkhost-t-bad.raw", &src, &wrong, quiet);
        assert!(
            matches!(error, Err(ProvisionError::Checksum { ref actual, .. }) if *actual == sha256),
            "{error:?}"
        );
        assert!(!dir.path().join("dpdkhost-t-bad.raw").exists(), "removed");
    }

    #[test]
    fn pool_lifecycle_on_the_test_driver() {
        let (conn, pool) = test_driver_pool("dpdkhost-test");
        assert!(pool.is_active().unwrap());
        assert_eq!(
            target_path(&pool).unwrap(),
            PathBuf::from("/var/lib/dpdkhost-test")
        );
        // The test driver has no upload, but creates volumes.
        let vol =
            StorageVol::create_xml(&pool, &raw_volume_xml("dpdkhost-t-seed.img", 4096, QEMU), 0)
                .unwrap();
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
