//! Per-environment files: `state.json` (what `up` made, for `outputs`, `ssh`,
//! `inventory`), the environment's CA and client certificate, SSH keys and known_hosts.
//! libvirt's own objects stay the source of truth for `down`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use agent_proto::file_error::FileError;
use serde::{Deserialize, Serialize};

use crate::accel::Accel;
use crate::config::NetworkMode;

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// state.json is not valid.
    #[error("{path} is not a valid dpdkhost state file")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// No home directory to put state in.
    #[error("neither $DPDKHOST_STATE_DIR, $XDG_STATE_HOME nor $HOME is set")]
    NoHome,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let error = FileError::of(what, path);
    move |source| error(source).into()
}

/// Where an environment's files live.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `~/.local/state/dpdkhost/<env>` (or `$DPDKHOST_STATE_DIR/<env>`).
    pub state_dir: PathBuf,
    /// `~/.cache/dpdkhost/images` (or `$DPDKHOST_CACHE_DIR`).
    pub image_cache: PathBuf,
}

impl Paths {
    /// Paths for environment `env` from the process environment.
    pub fn for_env(env: &str) -> Result<Paths, StateError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let state_root = match (
            std::env::var_os("DPDKHOST_STATE_DIR"),
            std::env::var_os("XDG_STATE_HOME"),
            &home,
        ) {
            (Some(d), _, _) => PathBuf::from(d),
            (None, Some(x), _) => PathBuf::from(x).join("dpdkhost"),
            (None, None, Some(h)) => h.join(".local/state/dpdkhost"),
            _ => return Err(StateError::NoHome),
        };
        let image_cache = match (
            std::env::var_os("DPDKHOST_CACHE_DIR"),
            std::env::var_os("XDG_CACHE_HOME"),
            &home,
        ) {
            (Some(d), _, _) => PathBuf::from(d),
            (None, Some(x), _) => PathBuf::from(x).join("dpdkhost/images"),
            (None, None, Some(h)) => h.join(".cache/dpdkhost/images"),
            _ => return Err(StateError::NoHome),
        };
        Ok(Paths {
            state_dir: state_root.join(env),
            image_cache,
        })
    }

    /// `<state root>/<env>.lock`: beside the state directory, so it outlives `down`.
    pub fn lock_file(&self) -> PathBuf {
        let env = self.state_dir.file_name().unwrap_or_default();
        let mut name = env.to_os_string();
        name.push(".lock");
        self.state_dir.with_file_name(name)
    }
    /// state.json.
    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }
    /// The environment's CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.state_dir.join("ca.pem")
    }
    /// The environment's CA key.
    pub fn ca_key(&self) -> PathBuf {
        self.state_dir.join("ca.key")
    }
    /// The host's client certificate for the agents.
    pub fn client_cert(&self) -> PathBuf {
        self.state_dir.join("client.pem")
    }
    /// The host's client key.
    pub fn client_key(&self) -> PathBuf {
        self.state_dir.join("client.key")
    }
    /// The generated SSH private key.
    pub fn ssh_key(&self) -> PathBuf {
        self.state_dir.join("id_ed25519")
    }
    /// The generated SSH public key.
    pub fn ssh_pub(&self) -> PathBuf {
        self.state_dir.join("id_ed25519.pub")
    }
    /// Pinned host keys of the VMs (`HostKeyAlias` names).
    pub fn known_hosts(&self) -> PathBuf {
        self.state_dir.join("known_hosts")
    }
    /// VM `name`'s SSH host key (private, goes into its seed).
    pub fn host_key(&self, name: &str) -> PathBuf {
        self.state_dir.join(format!("ssh_host_ed25519_key.{name}"))
    }
}

/// What `up` recorded about one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmState {
    /// 1-based index.
    pub index: u8,
    /// Short name, also the hostname and the agent certificate's DNS name: `vm1`.
    pub name: String,
    /// libvirt domain name: `dpdkhost-<env>-vm1`.
    pub domain: String,
    /// Management address inside the guest.
    pub mgmt_ip: Ipv4Addr,
    /// Where the host reaches the guest's sshd.
    pub ssh: SocketAddr,
    /// Where the host reaches the guest's agent.
    pub agent: SocketAddr,
    /// Data address with prefix (`10.0.1.4/24`).
    pub data_ip: String,
    /// Management NIC MAC.
    pub mgmt_mac: String,
    /// Data NIC MAC.
    pub data_mac: String,
    /// The other end of the data link, when there is one.
    pub peer: Option<String>,
    /// The peer's data address.
    pub peer_ip: Option<Ipv4Addr>,
    /// user mode: this VM's UDP port for the data link on 127.0.0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_local: Option<u16>,
    /// user mode: the peer's UDP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_remote: Option<u16>,
    /// The guest's SSH host public key (pinned in known_hosts).
    pub host_key: String,
}

/// What `up` recorded about an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// Environment name.
    pub env: String,
    /// libvirt URI the environment lives on.
    pub libvirt_uri: String,
    /// Network mode.
    pub network: NetworkMode,
    /// Acceleration the domains were defined with.
    pub accel: Accel,
    /// Why that acceleration.
    pub accel_reason: String,
    /// The sudo user in each VM.
    pub user: String,
    /// The SSH private key to use, when dpdkhost generated it.
    pub ssh_identity: Option<PathBuf>,
    /// Storage pool.
    pub pool: String,
    /// Image name and sha256.
    pub image: String,
    /// sha256 of the base image.
    pub image_sha256: String,
    /// The VMs.
    pub vms: Vec<VmState>,
}

impl State {
    /// Current format version.
    pub const VERSION: u32 = 1;

    /// Reads state.json; `None` when there is none.
    pub fn load(paths: &Paths) -> Result<Option<State>, StateError> {
        let path = paths.state_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io("read", &path)(err)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| StateError::Parse { path, source })
    }

    /// Writes state.json atomically.
    pub fn save(&self, paths: &Paths) -> Result<(), StateError> {
        ensure_dir(&paths.state_dir)?;
        let text = serde_json::to_string_pretty(self).expect("State serializes");
        write_private(&paths.state_file(), text.as_bytes())
    }

    /// VM by 1-based index or short name.
    pub fn vm(&self, which: &str) -> Option<&VmState> {
        self.vms
            .iter()
            .find(|vm| vm.name == which || vm.index.to_string() == which || vm.domain == which)
    }
}

/// Creates `dir` (mode 0700) when missing. One that exists with looser modes (made by
/// hand, or by an older dpdkhost) is tightened, and so is every file in it: they hold
/// the CA key, the client key and the VMs' SSH keys.
pub fn ensure_dir(dir: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("create", dir))?;
    let tighten = |path: &Path, mode: u32| -> Result<(), StateError> {
        let meta = std::fs::symlink_metadata(path).map_err(io("inspect", path))?;
        if !meta.file_type().is_symlink() && meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(io("tighten the mode of", path))?;
        }
        Ok(())
    };
    tighten(dir, 0o700)?;
    for entry in std::fs::read_dir(dir).map_err(io("list", dir))? {
        let entry = entry.map_err(io("list", dir))?;
        let path = entry.path();
        let mode = if entry.file_type().map_err(io("inspect", &path))?.is_dir() {
            0o700
        } else {
            0o600
        };
        tighten(&path, mode)?;
    }
    Ok(())
}

/// A temp file beside `path`, unique to one write: `.<name>.tmp.<pid>.<random>`. Files
/// sharing a stem (`ca.key` and `ca.pem`) and two writers of one file (threads or
/// processes) never share a temp file, so a rename never installs another write's bytes.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(
        ".{name}.tmp.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ))
}

/// Writes a file readable by its owner only, atomically (temp file + rename).
pub fn write_private(path: &Path, data: &[u8]) -> Result<(), StateError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = temp_path(path);
    let written = (|| {
        // create_new: a name that exists is never reused, whoever made it.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        file.write_all(data).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io("rename into", path))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Reads a whole file as text.
pub fn read_text(path: &Path) -> Result<String, StateError> {
    std::fs::read_to_string(path).map_err(io("read", path))
}

/// Removes the environment's state directory (after `down`).
pub fn remove_all(paths: &Paths) -> Result<(), StateError> {
    match std::fs::remove_dir_all(&paths.state_dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io("remove", &paths.state_dir)(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            version: State::VERSION,
            env: "t".into(),
            libvirt_uri: "test:///default".into(),
            network: NetworkMode::User,
            accel: Accel::Tcg,
            accel_reason: "forced".into(),
            user: "dpdk".into(),
            ssh_identity: None,
            pool: "dpdkhost".into(),
            image: "debian-12".into(),
            image_sha256: "00".into(),
            vms: vec![VmState {
                index: 1,
                name: "vm1".into(),
                domain: "dpdkhost-t-vm1".into(),
                mgmt_ip: Ipv4Addr::new(10, 0, 2, 15),
                ssh: "127.0.0.1:40022".parse().unwrap(),
                agent: "127.0.0.1:40051".parse().unwrap(),
                data_ip: "10.0.1.4/24".into(),
                mgmt_mac: "52:54:00:00:00:01".into(),
                data_mac: "52:54:00:00:00:02".into(),
                peer: Some("vm2".into()),
                peer_ip: Some(Ipv4Addr::new(10, 0, 1, 6)),
                udp_local: Some(40100),
                udp_remote: Some(40101),
                host_key: "ssh-ed25519 AAAA".into(),
            }],
        }
    }

    #[test]
    fn a_loose_state_directory_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env");
        std::fs::create_dir(&env).unwrap();
        std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = env.join("ca.key");
        std::fs::write(&key, "secret").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        ensure_dir(&env).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&env), 0o700);
        assert_eq!(mode(&key), 0o600);
    }

    #[test]
    fn round_trip_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            state_dir: dir.path().join("env"),
            image_cache: dir.path().join("img"),
        };
        assert_eq!(State::load(&paths).unwrap(), None);
        sample().save(&paths).unwrap();
        let back = State::load(&paths).unwrap().unwrap();
        assert_eq!(back, sample());
        assert_eq!(back.vm("1").unwrap().name, "vm1");
        assert_eq!(back.vm("vm1").unwrap().index, 1);
        assert!(back.vm("2").is_none());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(paths.state_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        remove_all(&paths).unwrap();
        assert!(!paths.state_dir.exists());
        remove_all(&paths).unwrap();
    }

    #[test]
    fn files_sharing_a_stem_are_written_through_distinct_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let (key, pem) = (dir.path().join("ca.key"), dir.path().join("ca.pem"));
        assert_ne!(temp_path(&key), temp_path(&pem));
        assert_ne!(
            temp_path(&key),
            temp_path(&key),
            "two writes of one file too"
        );
        assert_eq!(temp_path(&key).parent(), Some(dir.path()), "same directory");
        // Two writers at once, as two `up`s writing one CA's key and another's
        // certificate: each file ends up with exactly what was written to it.
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for (path, what) in [(&key, "key"), (&pem, "pem")] {
                let barrier = &barrier;
                s.spawn(move || {
                    for round in 0..300 {
                        barrier.wait();
                        let text = format!("{what} {round}");
                        write_private(path, text.as_bytes()).unwrap();
                        barrier.wait();
                        assert_eq!(std::fs::read_to_string(path).unwrap(), text);
                    }
                });
            }
        });
        use std::os::unix::fs::PermissionsExt;
        for path in [&key, &pem] {
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "no temp file left behind: {names:?}");
    }
}
