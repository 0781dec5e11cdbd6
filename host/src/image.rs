//! Guest base images in the cache directory: the built-in Debian 12 image (mmdebstrap,
//! direct kernel boot), a cloud image fetched by URL and checked against its sha256, or
//! a local disk. Each cached image has a `manifest.json` with the sha256 of every file.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use agent_proto::file_error::FileError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{ImageSource, BUILTIN_IMAGE};

/// Packages of the built-in image (Debian 12, minbase, no recommends).
pub const DEBIAN_PACKAGES: &[&str] = &[
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "systemd-sysv",
    "udev",
    "cloud-init",
    "openssh-server",
    "iproute2",
    "ifupdown",
    "isc-dhcp-client",
    "pciutils",
    "kmod",
    "procps",
    "sudo",
    "python3",
    "e2fsprogs",
    "dpdk-dev",
    "librte-net-virtio23",
];

/// Kernel command line of the built-in image, before hugepage arguments.
pub const DEBIAN_CMDLINE: &str =
    "root=/dev/vda rw console=ttyS0,115200n8 quiet systemd.show_status=0";

/// What the built-in image is made from: its packages, kernel command line, customize
/// hook and the files the hook installs. A cached built-in image recorded with another
/// recipe is stale (built by an older dpdkhost) and is built again before use.
pub fn builtin_recipe() -> String {
    use crate::assets::{CUSTOMIZE_IMAGE, IMAGE_FILESYSTEM, RUN_FROM_SEED, SEED_UNIT};
    let mut hasher = Sha256::new();
    for part in DEBIAN_PACKAGES.iter().chain(&[
        DEBIAN_CMDLINE,
        CUSTOMIZE_IMAGE,
        IMAGE_FILESYSTEM,
        RUN_FROM_SEED,
        SEED_UNIT,
    ]) {
        // Length-prefixed, so that no two different lists hash alike.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..8])
}

/// Writes mmdebstrap's customize hook and the files it installs into `dir`; returns
/// the hook's path.
fn write_customize_hook(dir: &Path) -> Result<PathBuf, ImageError> {
    use crate::assets::{CUSTOMIZE_IMAGE, IMAGE_FILESYSTEM, RUN_FROM_SEED, SEED_UNIT};
    use std::os::unix::fs::PermissionsExt;
    for (name, text, mode) in [
        ("customize.sh", CUSTOMIZE_IMAGE, 0o755),
        ("image-filesystem.sh", IMAGE_FILESYSTEM, 0o755),
        ("run-from-seed.sh", RUN_FROM_SEED, 0o755),
        ("dpdkhost-seed.service", SEED_UNIT, 0o644),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io("write", &path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(io("chmod", &path))?;
    }
    Ok(dir.join("customize.sh"))
}

/// Who builds the built-in image, and so how its root tree is owned while it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builder {
    /// As root: mmdebstrap's root mode.
    Root,
    /// As a user with subordinate ids: mmdebstrap's unshare mode, and the tree unpacked
    /// in a user namespace of the same ids.
    Unprivileged,
}

impl Builder {
    fn for_this_user() -> Result<Self, ImageError> {
        let uid = nix::unistd::getuid();
        if uid.is_root() {
            return Ok(Self::Root);
        }
        require("newuidmap", "uidmap")?;
        require("unshare", "util-linux")?;
        let user = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            if !has_subordinate_range(&text, &user, uid.as_raw()) {
                return Err(ImageError::NoSubordinateIds {
                    user,
                    file: file.into(),
                });
            }
        }
        Ok(Self::Unprivileged)
    }

    fn mode(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Unprivileged => "unshare",
        }
    }

    /// `program`, run in a user namespace that maps the user to root and the
    /// subordinate ids after it when unprivileged.
    fn command(self, program: &str) -> Command {
        let mut cmd = match self {
            Self::Root => Command::new(program),
            Self::Unprivileged => {
                let mut cmd = Command::new("unshare");
                cmd.args(["--map-root-user", "--map-auto", "--"])
                    .arg(program);
                cmd
            }
        };
        cmd.env("PATH", tool_path());
        cmd
    }

    /// Removes a build tree; unprivileged, in the namespace whose ids own its files.
    fn remove_tree(self, dir: &Path) {
        if !dir.exists() {
            return;
        }
        let removed = match self {
            Self::Root => std::fs::remove_dir_all(dir).is_ok(),
            Self::Unprivileged => self
                .command("rm")
                .arg("-rf")
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success()),
        };
        if !removed {
            tracing::warn!(dir = %dir.display(), "could not remove the image build tree");
        }
    }
}

/// How `image build` would build the built-in image for this user, and why: root mode
/// as root, unshare mode (with the user's subordinate ids) without; the error says what
/// an unprivileged build lacks.
pub fn build_mode() -> Result<String, ImageError> {
    Ok(match Builder::for_this_user()? {
        Builder::Root => "mmdebstrap root mode (running as root)".to_owned(),
        Builder::Unprivileged => "mmdebstrap unshare mode: not root, so a user namespace \
             over this user's subordinate ids (/etc/subuid, /etc/subgid)"
            .to_owned(),
    })
}

/// Whether an /etc/subuid (or subgid) text gives `user` (by name or uid) a range of at
/// least 65536 ids, as a Debian rootfs needs (its system users and nobody).
fn has_subordinate_range(text: &str, user: &str, uid: u32) -> bool {
    text.lines().any(|line| {
        let mut fields = line.trim().split(':');
        let (Some(who), Some(_start), Some(count)) = (fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        (who == user || who == uid.to_string()) && count.parse::<u64>().is_ok_and(|n| n >= 65536)
    })
}

/// Why an image could not be built, fetched or used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// A helper program is missing.
    #[error("`{program}` is not installed; run scripts/setup (Debian package {package})")]
    MissingTool {
        /// The program.
        program: &'static str,
        /// Its package.
        package: &'static str,
    },
    /// A helper program failed.
    #[error("`{command}` failed ({status}); see {log}")]
    ToolFailed {
        /// What ran.
        command: String,
        /// Its exit status.
        status: String,
        /// Where its output is.
        log: String,
    },
    /// Building the image without root needs subordinate ids for mmdebstrap's unshare mode.
    #[error(
        "`dpdkhost image build` without root needs subordinate ids for {user:?} in {file} \
         (at least 65536, for mmdebstrap's unshare mode): as root, \
         `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}`"
    )]
    NoSubordinateIds {
        /// The user.
        user: String,
        /// /etc/subuid or /etc/subgid.
        file: PathBuf,
    },
    /// The image is not in the cache.
    #[error("image {name:?} is not built yet: run `dpdkhost image build`")]
    NotBuilt {
        /// The image.
        name: String,
    },
    /// The image's checksum is not the configured `image_sha256` (nothing is cached).
    #[error(
        "{image} has sha256 {actual}, but image_sha256 in the configuration is {expected}; \
         nothing was cached: correct image_sha256 (or the image)"
    )]
    Checksum {
        /// The URL or path.
        image: String,
        /// Expected.
        expected: String,
        /// Found.
        actual: String,
    },
    /// A manifest is unreadable.
    #[error("{path} is not a valid image manifest")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ImageError {
    let error = FileError::of(what, path);
    move |source| error(source).into()
}

/// Disk format of a base image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    /// qcow2.
    Qcow2,
    /// raw.
    Raw,
}

impl DiskFormat {
    /// The libvirt/QEMU name.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Raw => "raw",
        }
    }
}

/// One file of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFile {
    /// Name inside the image's cache directory.
    pub file: String,
    /// sha256, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// `manifest.json` of a cached image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Image name (`debian-12`, `url-<sha12>`).
    pub name: String,
    /// Where it came from (`mmdebstrap bookworm`, the URL).
    pub source: String,
    /// Unix time it was made.
    pub created: u64,
    /// The disk.
    pub disk: ImageFile,
    /// The disk's format.
    pub format: DiskFormat,
    /// Kernel for direct kernel boot, when the image has one outside the disk.
    pub kernel: Option<ImageFile>,
    /// Initrd for direct kernel boot.
    pub initrd: Option<ImageFile>,
    /// Kernel command line for direct kernel boot.
    pub cmdline: Option<String>,
    /// Packages installed (built images).
    #[serde(default)]
    pub packages: Vec<String>,
    /// The built-in image's [`builtin_recipe`] (none for other images, and for built-in
    /// images made before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
}

impl Manifest {
    /// Whether this built-in image was made by the current recipe.
    pub fn is_current_builtin(&self) -> bool {
        self.recipe.as_deref() == Some(builtin_recipe().as_str())
    }
}

/// What the cache holds of a built-in image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachedBuiltin {
    /// Nothing: `up` builds it.
    Missing,
    /// Made by another recipe (see [`STALE`]): `up` builds it again.
    Stale(Manifest),
    /// Made by this dpdkhost's recipe.
    Current(Manifest),
}

/// How a stale built-in image is described, after its name.
pub const STALE: &str = "was built by another recipe (an older dpdkhost)";

/// A base image ready to upload into a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    /// Name for display and state.
    pub name: String,
    /// The disk.
    pub disk: PathBuf,
    /// Its format.
    pub format: DiskFormat,
    /// Its sha256 (checked again while uploading).
    pub sha256: String,
    /// Kernel, initrd, and their checksums for direct kernel boot; `None` boots the disk.
    pub boot: Option<DirectBoot>,
}

/// Files for direct kernel boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectBoot {
    /// vmlinuz.
    pub kernel: PathBuf,
    /// sha256 of the kernel.
    pub kernel_sha256: String,
    /// initrd.img.
    pub initrd: PathBuf,
    /// sha256 of the initrd.
    pub initrd_sha256: String,
    /// Command line (without hugepages).
    pub cmdline: String,
}

/// Progress reports of long image operations.
pub trait Progress {
    /// A new stage began.
    fn stage(&self, message: &str);
    /// A line of tool output.
    fn detail(&self, line: &str);
    /// Bytes done out of total (total 0 = unknown).
    fn bytes(&self, done: u64, total: u64);
}

/// Progress that reports nothing.
pub struct Quiet;
impl Progress for Quiet {
    fn stage(&self, _: &str) {}
    fn detail(&self, _: &str) {}
    fn bytes(&self, _: u64, _: u64) {}
}

/// sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, ImageError> {
    let mut file = std::fs::File::open(path).map_err(io("open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn image_file(dir: &Path, name: &str) -> Result<ImageFile, ImageError> {
    let path = dir.join(name);
    let size = std::fs::metadata(&path).map_err(io("stat", &path))?.len();
    Ok(ImageFile {
        file: name.to_owned(),
        sha256: sha256_file(&path)?,
        size,
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// PATH for the image tools: the caller's, with the sbin directories after it. A
/// user's PATH on Debian lacks them, and mkfs.ext4 and chroot (the customize hook's)
/// live there.
pub fn tool_path() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for sbin in ["/usr/sbin", "/sbin"] {
        if !dirs.iter().any(|d| d == Path::new(sbin)) {
            dirs.push(sbin.into());
        }
    }
    std::env::join_paths(dirs).unwrap_or(path)
}

/// Whether `program` is on [`tool_path`].
pub fn which(program: &str) -> bool {
    std::env::split_paths(&tool_path()).any(|d| d.join(program).is_file())
}

fn require(program: &'static str, package: &'static str) -> Result<(), ImageError> {
    if which(program) {
        Ok(())
    } else {
        Err(ImageError::MissingTool { program, package })
    }
}

/// Runs `cmd`, appending its output to `log`, reporting each line as detail.
fn run_logged(mut cmd: Command, log: &Path, progress: &dyn Progress) -> Result<(), ImageError> {
    cmd.env("PATH", tool_path());
    let shown = format!("{cmd:?}").replace('"', "");
    let mut log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io("open", log))?;
    writeln!(log_file, "$ {shown}").map_err(io("write", log))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("run", Path::new(&shown)))?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let log_out = log_file.try_clone().map_err(io("open", log))?;
    let out_thread = std::thread::spawn(move || {
        let mut log_out = log_out;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = writeln!(log_out, "{line}");
        }
    });
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let _ = writeln!(log_file, "{line}");
        progress.detail(&line);
    }
    let _ = out_thread.join();
    let status = child.wait().map_err(io("wait for", Path::new(&shown)))?;
    if status.success() {
        Ok(())
    } else {
        Err(ImageError::ToolFailed {
            command: shown,
            status: status.to_string(),
            log: log.display().to_string(),
        })
    }
}

/// The image cache directory.
#[derive(Debug, Clone)]
pub struct ImageStore {
    /// `~/.cache/dpdkhost/images`.
    pub dir: PathBuf,
}

impl ImageStore {
    /// A store at `dir`.
    pub fn new(dir: PathBuf) -> ImageStore {
        ImageStore { dir }
    }

    fn manifest_path(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("manifest.json")
    }

    /// The manifest of cached image `name`, if present.
    pub fn manifest(&self, name: &str) -> Result<Option<Manifest>, ImageError> {
        let path = self.manifest_path(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &path)(e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| ImageError::Manifest { path, source })
    }

    /// What the cache holds of built-in image `name`.
    pub fn builtin(&self, name: &str) -> Result<CachedBuiltin, ImageError> {
        Ok(match self.manifest(name)? {
            None => CachedBuiltin::Missing,
            Some(m) if m.is_current_builtin() => CachedBuiltin::Current(m),
            Some(m) => CachedBuiltin::Stale(m),
        })
    }

    /// Every cached image.
    pub fn list(&self) -> Result<Vec<Manifest>, ImageError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &self.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if let Some(m) = self.manifest(&name)? {
                out.push(m);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Whether `source` is available without building or downloading.
    pub fn is_ready(&self, source: &ImageSource) -> bool {
        match source {
            ImageSource::Builtin(name) => {
                matches!(self.builtin(name), Ok(CachedBuiltin::Current(_)))
            }
            ImageSource::Url { sha256, .. } => {
                matches!(self.manifest(&url_name(sha256)), Ok(Some(_)))
            }
            ImageSource::Path { path, .. } => path.is_file(),
        }
    }

    /// The base image for `source`, building or fetching it when missing.
    pub fn ensure(
        &self,
        source: &ImageSource,
        progress: &dyn Progress,
    ) -> Result<BaseImage, ImageError> {
        match source {
            ImageSource::Builtin(name) => {
                let why = match self.builtin(name)? {
                    CachedBuiltin::Current(_) => None,
                    CachedBuiltin::Missing => Some("is not cached: building it".to_owned()),
                    CachedBuiltin::Stale(_) => Some(format!("{STALE}: building it again")),
                };
                if let Some(why) = why {
                    progress.stage(&format!("image {name} {why}"));
                    self.build_debian(progress)?;
                }
                self.cached(name)
            }
            ImageSource::Url { url, sha256 } => {
                let name = url_name(sha256);
                if self.manifest(&name)?.is_none() {
                    self.fetch(url, sha256, progress)?;
                }
                self.cached(&name)
            }
            ImageSource::Path { path, sha256 } => {
                if !path.is_file() {
                    return Err(io("open", path)(std::io::Error::from(
                        std::io::ErrorKind::NotFound,
                    )));
                }
                progress.stage(&format!("hashing {}", path.display()));
                let actual = sha256_file(path)?;
                if let Some(expected) = sha256 {
                    if *expected != actual {
                        return Err(ImageError::Checksum {
                            image: path.display().to_string(),
                            expected: expected.clone(),
                            actual,
                        });
                    }
                }
                Ok(BaseImage {
                    name: path.display().to_string(),
                    disk: path.clone(),
                    format: detect_format(path)?,
                    sha256: actual,
                    boot: None,
                })
            }
        }
    }

    /// A cached image as a [`BaseImage`].
    pub fn cached(&self, name: &str) -> Result<BaseImage, ImageError> {
        let m = self.manifest(name)?.ok_or_else(|| ImageError::NotBuilt {
            name: name.to_owned(),
        })?;
        let dir = self.dir.join(name);
        let boot = match (&m.kernel, &m.initrd) {
            (Some(k), Some(i)) => Some(DirectBoot {
                kernel: dir.join(&k.file),
                kernel_sha256: k.sha256.clone(),
                initrd: dir.join(&i.file),
                initrd_sha256: i.sha256.clone(),
                cmdline: m
                    .cmdline
                    .clone()
                    .unwrap_or_else(|| DEBIAN_CMDLINE.to_owned()),
            }),
            _ => None,
        };
        Ok(BaseImage {
            name: m.name.clone(),
            disk: dir.join(&m.disk.file),
            format: m.format,
            sha256: m.disk.sha256,
            boot,
        })
    }

    /// Builds the built-in Debian 12 image with mmdebstrap: in root mode as root, and
    /// without root in its unshare mode (a user namespace over the user's subordinate
    /// ids), so the image is the same either way.
    pub fn build_debian(&self, progress: &dyn Progress) -> Result<Manifest, ImageError> {
        require("mmdebstrap", "mmdebstrap")?;
        require("mkfs.ext4", "e2fsprogs")?;
        require("qemu-img", "qemu-utils")?;
        let builder = Builder::for_this_user()?;
        std::fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        let work = self
            .dir
            .join(format!(".build-{BUILTIN_IMAGE}-{}", std::process::id()));
        let result = self.build_debian_in(&work, builder, progress);
        builder.remove_tree(&work);
        result
    }

    fn build_debian_in(
        &self,
        work: &Path,
        builder: Builder,
        progress: &dyn Progress,
    ) -> Result<Manifest, ImageError> {
        builder.remove_tree(work);
        let out = work.join("out");
        std::fs::create_dir_all(&out).map_err(io("create", &out))?;
        let log = out.join("build.log");
        let hook = write_customize_hook(work)?;
        let tarball = work.join("rootfs.tar");

        progress.stage(&format!(
            "mmdebstrap ({} mode): Debian 12 (bookworm) minbase rootfs",
            builder.mode()
        ));
        let mut cmd = Command::new("mmdebstrap");
        cmd.arg("--variant=minbase")
            .arg(format!("--mode={}", builder.mode()))
            .arg("--aptopt=APT::Install-Recommends \"false\"")
            // A throwaway rootfs: no fsync per unpacked file (about a fifth of the
            // build's time on a small host).
            .arg("--dpkgopt=force-unsafe-io")
            .arg(format!("--include={}", DEBIAN_PACKAGES.join(",")))
            .arg(format!("--customize-hook={}", hook.display()))
            .arg("bookworm")
            .arg(&tarball)
            // Its temporary tree beside the tarball, not in a small /tmp.
            .env("TMPDIR", work);
        run_logged(cmd, &log, progress)?;

        progress.stage("mkfs.ext4 -d: root filesystem; kernel and initrd for direct boot");
        let raw = work.join("disk.raw");
        let mut cmd = builder.command("sh");
        cmd.arg(work.join("image-filesystem.sh"))
            .arg(&tarball)
            .arg(&out)
            .arg(&raw)
            .arg("2G");
        run_logged(cmd, &log, progress)?;
        std::fs::remove_file(&tarball).map_err(io("remove", &tarball))?;

        // Uncompressed: compressing took a quarter of the build (35 s here), and every
        // guest then decompressed each cluster it read, on its one TCG vCPU, at boot.
        progress.stage("qemu-img convert: qcow2");
        let mut cmd = Command::new("qemu-img");
        cmd.args(["convert", "-O", "qcow2"])
            .arg(&raw)
            .arg(out.join("disk.qcow2"));
        run_logged(cmd, &log, progress)?;
        std::fs::remove_file(&raw).map_err(io("remove", &raw))?;

        progress.stage("checksums and manifest");
        let manifest = Manifest {
            name: BUILTIN_IMAGE.to_owned(),
            source: "mmdebstrap --variant=minbase bookworm".into(),
            created: now(),
            disk: image_file(&out, "disk.qcow2")?,
            format: DiskFormat::Qcow2,
            kernel: Some(image_file(&out, "vmlinuz")?),
            initrd: Some(image_file(&out, "initrd.img")?),
            cmdline: Some(DEBIAN_CMDLINE.to_owned()),
            packages: DEBIAN_PACKAGES.iter().map(|s| s.to_string()).collect(),
            recipe: Some(builtin_recipe()),
        };
        self.install(&out, &manifest)?;
        Ok(manifest)
    }

    /// Writes the manifest and SHA256SUMS into `out` and moves it into place.
    fn install(&self, out: &Path, manifest: &Manifest) -> Result<(), ImageError> {
        let mut sums = String::new();
        for f in [
            Some(&manifest.disk),
            manifest.kernel.as_ref(),
            manifest.initrd.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            sums.push_str(&format!("{}  {}\n", f.sha256, f.file));
        }
        let sums_path = out.join("SHA256SUMS");
        std::fs::write(&sums_path, sums).map_err(io("write", &sums_path))?;
        let mpath = out.join("manifest.json");
        let text = serde_json::to_string_pretty(manifest).expect("manifest serializes");
        std::fs::write(&mpath, text).map_err(io("write", &mpath))?;
        let dest = self.dir.join(&manifest.name);
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(io("remove", &dest))?;
        }
        std::fs::rename(out, &dest).map_err(io("move into place", &dest))
    }

    /// Downloads a disk image by URL (curl) and checks its sha256.
    pub fn fetch(
        &self,
        url: &str,
        sha256: &str,
        progress: &dyn Progress,
    ) -> Result<Manifest, ImageError> {
        require("curl", "curl")?;
        require("qemu-img", "qemu-utils")?;
        let name = url_name(sha256);
        let work = self
            .dir
            .join(format!(".fetch-{name}-{}", std::process::id()));
        let out = work.join("out");
        std::fs::create_dir_all(&out).map_err(io("create", &out))?;
        let result = (|| {
            progress.stage(&format!("downloading {url}"));
            let disk = out.join("disk.img");
            let log = work.join("fetch.log");
            let mut cmd = Command::new("curl");
            cmd.args([
                "--fail",
                "--location",
                "--silent",
                "--show-error",
                "--output",
            ])
            .arg(&disk)
            .arg(url);
            run_logged(cmd, &log, progress)?;
            progress.stage("checking sha256");
            let actual = sha256_file(&disk)?;
            if actual != sha256 {
                return Err(ImageError::Checksum {
                    image: url.to_owned(),
                    expected: sha256.to_owned(),
                    actual,
                });
            }
            let manifest = Manifest {
                name: name.clone(),
                source: url.to_owned(),
                created: now(),
                disk: image_file(&out, "disk.img")?,
                format: detect_format(&disk)?,
                kernel: None,
                initrd: None,
                cmdline: None,
                packages: Vec::new(),
                recipe: None,
            };
            self.install(&out, &manifest)?;
            Ok(manifest)
        })();
        let _ = std::fs::remove_dir_all(&work);
        result
    }
}

/// Cache name of a URL image.
pub fn url_name(sha256: &str) -> String {
    format!("url-{}", &sha256[..12.min(sha256.len())])
}

/// qcow2 when the file starts with the qcow2 magic, else raw.
pub fn detect_format(path: &Path) -> Result<DiskFormat, ImageError> {
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(io("open", path))?;
    let n = f.read(&mut magic).map_err(io("read", path))?;
    Ok(if n == 4 && magic == *b"QFI\xfb" {
        DiskFormat::Qcow2
    } else {
        DiskFormat::Raw
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_listing_and_cached_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path().to_owned());
        assert!(store.list().unwrap().is_empty());
        assert!(matches!(
            store.cached("debian-12"),
            Err(ImageError::NotBuilt { .. })
        ));
        let out = dir.path().join(".tmp");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("disk.qcow2"), b"QFI\xfbrest").unwrap();
        std::fs::write(out.join("vmlinuz"), b"kernel").unwrap();
        std::fs::write(out.join("initrd.img"), b"initrd").unwrap();
        let m = Manifest {
            name: "debian-12".into(),
            source: "test".into(),
            created: 1,
            disk: image_file(&out, "disk.qcow2").unwrap(),
            format: detect_format(&out.join("disk.qcow2")).unwrap(),
            kernel: Some(image_file(&out, "vmlinuz").unwrap()),
            initrd: Some(image_file(&out, "initrd.img").unwrap()),
            cmdline: Some(DEBIAN_CMDLINE.into()),
            packages: vec![],
            recipe: None,
        };
        assert_eq!(m.format, DiskFormat::Qcow2);
        assert_eq!(
            m.kernel.as_ref().unwrap().sha256,
            hex::encode(Sha256::digest(b"kernel"))
        );
        store.install(&out, &m).unwrap();
        assert_eq!(store.list().unwrap(), vec![m.clone()]);
        // Made before recipes were recorded: stale, built again before use.
        assert!(!store.is_ready(&ImageSource::Builtin("debian-12".into())));
        assert_eq!(
            store.builtin("debian-12").unwrap(),
            CachedBuiltin::Stale(m.clone())
        );
        let current = Manifest {
            recipe: Some(builtin_recipe()),
            ..m.clone()
        };
        std::fs::write(
            dir.path().join("debian-12/manifest.json"),
            serde_json::to_string(&current).unwrap(),
        )
        .unwrap();
        assert!(store.is_ready(&ImageSource::Builtin("debian-12".into())));
        let other = Manifest {
            recipe: Some("0123456789abcdef".into()),
            ..m.clone()
        };
        assert!(!other.is_current_builtin());
        let base = store.cached("debian-12").unwrap();
        assert_eq!(base.disk, dir.path().join("debian-12/disk.qcow2"));
        assert_eq!(
            base.boot.unwrap().initrd_sha256,
            hex::encode(Sha256::digest(b"initrd"))
        );
        let sums = std::fs::read_to_string(dir.path().join("debian-12/SHA256SUMS")).unwrap();
        assert!(sums.contains("  vmlinuz\n"));
    }

    #[test]
    fn image_tools_are_found_in_sbin_with_a_users_path() {
        let path = tool_path();
        let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
        assert!(dirs.contains(&PathBuf::from("/usr/sbin")), "{path:?}");
        assert!(dirs.contains(&PathBuf::from("/sbin")), "{path:?}");
        let once = dirs.iter().filter(|d| *d == Path::new("/usr/sbin")).count();
        assert_eq!(once, 1, "{path:?}");
    }

    #[test]
    fn subordinate_ranges_are_found_by_name_or_uid_and_must_be_large_enough() {
        let text = "alice:100000:65536\n1002:165536:65536\nbob:231072:1000\n";
        assert!(has_subordinate_range(text, "alice", 1001));
        assert!(has_subordinate_range(text, "carol", 1002));
        assert!(!has_subordinate_range(text, "bob", 1003), "too few ids");
        assert!(!has_subordinate_range(text, "dave", 1004));
        assert!(!has_subordinate_range("alice:100000\n", "alice", 1001));
        assert!(!has_subordinate_range("alice:1:x\n", "alice", 1001));
    }

    #[test]
    fn customize_hook_is_valid_shell_and_installs_the_early_unit() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_customize_hook(dir.path()).unwrap();
        let hook = std::fs::read_to_string(&path).unwrap();
        let ok = std::process::Command::new("sh")
            .arg("-n")
            .arg(&path)
            .status()
            .unwrap();
        assert!(ok.success(), "sh -n rejects the hook:\n{hook}");
        assert!(hook.contains("systemctl enable dpdkhost-seed.service"));
        assert!(hook.contains(r#"install -m 0755 "$here/run-from-seed.sh""#));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("run-from-seed.sh")).unwrap(),
            crate::assets::RUN_FROM_SEED
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("dpdkhost-seed.service")).unwrap(),
            crate::assets::SEED_UNIT
        );
        assert!(hook.contains("MODULES=list"));
        assert!(hook.contains("datasource_list: [NoCloud, None]"));
        assert!(hook.contains(": > \"$root/etc/machine-id\""));
    }

    #[test]
    fn fetched_images_are_checked_and_cached() {
        if !which("curl") || !which("qemu-img") {
            eprintln!("curl or qemu-img missing: scripts/setup installs them");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path().join("cache"));
        let src = dir.path().join("cloud.img");
        std::fs::write(&src, b"QFI\xfbpretend qcow2").unwrap();
        let sha = hex::encode(Sha256::digest(b"QFI\xfbpretend qcow2"));
        let url = format!("file://{}", src.display());
        let bad = store.fetch(&url, &"0".repeat(64), &Quiet).unwrap_err();
        assert!(matches!(bad, ImageError::Checksum { .. }), "{bad}");
        let msg = bad.to_string();
        assert!(
            msg.contains("image_sha256") && msg.contains(&url) && msg.contains(&sha),
            "names the key, the URL and both checksums: {msg}"
        );
        assert!(
            store.list().unwrap().is_empty(),
            "a bad download is not cached"
        );
        let m = store.fetch(&url, &sha, &Quiet).unwrap();
        assert_eq!(
            (m.name.as_str(), m.format, m.disk.sha256.as_str()),
            (url_name(&sha).as_str(), DiskFormat::Qcow2, sha.as_str())
        );
        let source = ImageSource::Url {
            url,
            sha256: sha.clone(),
        };
        assert!(store.is_ready(&source));
        let base = store.ensure(&source, &Quiet).unwrap();
        assert!(base.boot.is_none(), "cloud images boot their own kernel");
        assert_eq!(std::fs::read(&base.disk).unwrap(), b"QFI\xfbpretend qcow2");
    }

    #[test]
    fn local_path_images_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path().join("cache"));
        let disk = dir.path().join("x.raw");
        std::fs::write(&disk, b"not qcow").unwrap();
        let good = hex::encode(Sha256::digest(b"not qcow"));
        let img = store
            .ensure(
                &ImageSource::Path {
                    path: disk.clone(),
                    sha256: Some(good.clone()),
                },
                &Quiet,
            )
            .unwrap();
        assert_eq!(
            (img.format, img.sha256.as_str(), img.boot.is_none()),
            (DiskFormat::Raw, good.as_str(), true)
        );
        let bad = ImageSource::Path {
            path: disk,
            sha256: Some("0".repeat(64)),
        };
        assert!(matches!(
            store.ensure(&bad, &Quiet),
            Err(ImageError::Checksum { .. })
        ));
    }
}
