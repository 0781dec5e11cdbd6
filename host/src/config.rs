//! `dpdkhost.toml`: every key optional, defaults as in the original lab. Unknown keys and
//! out-of-range values are errors that name the key and the accepted range.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use agent_proto::file_error::FileError;
use serde::{Deserialize, Serialize};

/// The file `dpdkhost` reads from the current directory when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "dpdkhost.toml";

/// The built-in guest image `dpdkhost image build` makes.
pub const BUILTIN_IMAGE: &str = "debian-12";

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] FileError),
    /// The file is not TOML of this schema (unknown key, wrong type).
    #[error("{path} is not a valid dpdkhost configuration")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause, naming the key.
        #[source]
        source: toml::de::Error,
    },
    /// A value is outside its range.
    #[error("`{key}`: {message}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// The accepted range and the value given.
        message: String,
    },
}

/// Hardware acceleration requested by the configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelChoice {
    /// KVM where /dev/kvm works and the CPU exposes virtualisation, otherwise TCG.
    #[default]
    Auto,
    /// KVM, or an error when it is not usable.
    Kvm,
    /// Software emulation.
    Tcg,
}

/// How the VMs are connected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// QEMU user-mode management NIC with hostfwd on 127.0.0.1, UDP socket data link.
    #[default]
    User,
    /// libvirt NAT management network with DHCP reservations, isolated data network.
    Nat,
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkMode::User => "user",
            NetworkMode::Nat => "nat",
        })
    }
}

/// The file as written: every key optional, integers wide so a negative value gets a
/// range message instead of a type error.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    vm_count: Option<i64>,
    vcpus: Option<i64>,
    memory_mb: Option<i64>,
    disk_gb: Option<i64>,
    hugepages: Option<i64>,
    accel: Option<AccelChoice>,
    network: Option<NetworkMode>,
    libvirt_uri: Option<String>,
    pool: Option<String>,
    pool_path: Option<PathBuf>,
    image: Option<String>,
    image_sha256: Option<String>,
    ssh_public_key: Option<String>,
    user: Option<String>,
    data_subnet: Option<String>,
    nat_subnet: Option<String>,
    agent: Option<PathBuf>,
    timeout_secs: Option<i64>,
}

/// An IPv4 subnet `a.b.c.d/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// The network address (host bits cleared).
    pub network: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl Subnet {
    /// The address `offset` after the network address.
    pub fn host(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + offset)
    }

    /// Number of addresses in the subnet.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The dotted netmask.
    pub fn netmask(&self) -> Ipv4Addr {
        let bits = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        Ipv4Addr::from(bits)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Where the base image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// Built locally by `dpdkhost image build` (Debian 12, direct kernel boot).
    Builtin(String),
    /// Downloaded and checked against a sha256 (e.g. the Ubuntu 24.04 cloud image).
    Url {
        /// The address.
        url: String,
        /// Expected sha256, lowercase hex.
        sha256: String,
    },
    /// A qcow2 or raw disk on this machine that boots by itself.
    Path {
        /// The file.
        path: PathBuf,
        /// Expected sha256, when given.
        sha256: Option<String>,
    },
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageSource::Builtin(name) => write!(f, "{name} (built locally)"),
            ImageSource::Url { url, .. } => write!(f, "{url}"),
            ImageSource::Path { path, .. } => write!(f, "{}", path.display()),
        }
    }
}

/// Where the SSH public key for the VMs' user comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshKeySource {
    /// An ed25519 key generated for the environment and kept in its state directory.
    Generated,
    /// The user's own key (`ssh_public_key` = a `.pub` file or the key text).
    Provided(String),
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Number of VMs (1..=8).
    pub vm_count: u8,
    /// vCPUs per VM; unset = 2 under KVM, 1 under TCG.
    pub vcpus: Option<u32>,
    /// Memory per VM in MiB; unset = 2048 under KVM, 1024 under TCG.
    pub memory_mb: Option<u32>,
    /// Disk size per VM in GiB (the overlay's virtual size).
    pub disk_gb: u32,
    /// 2 MiB hugepages reserved in each guest at boot.
    pub hugepages: u32,
    /// Requested acceleration.
    pub accel: AccelChoice,
    /// Network mode.
    pub network: NetworkMode,
    /// libvirt connection URI.
    pub libvirt_uri: String,
    /// Storage pool name.
    pub pool: String,
    /// Storage pool directory (QEMU must be able to read it).
    pub pool_path: PathBuf,
    /// Base image.
    pub image: ImageSource,
    /// SSH key for the VMs' user.
    pub ssh_key: SshKeySource,
    /// The sudo user created in each VM.
    pub user: String,
    /// Data subnet; VM n gets host address 2 + 2n (.4, .6, ...).
    pub data_subnet: Subnet,
    /// Management subnet of the NAT network (nat mode); VM n gets .10 + n.
    pub nat_subnet: Subnet,
    /// The dpdk-agent binary to inject (default: next to the dpdkhost executable).
    pub agent: Option<PathBuf>,
    /// Seconds `up` waits for every agent to report SERVING.
    pub timeout_secs: u64,
    /// Where `libvirt_uri` and `pool_path` came from.
    pub connection_origin: ConnectionOrigin,
}

/// Where the libvirt connection and the pool directory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionOrigin {
    /// dpdkhost.toml names them (one or both).
    Configured,
    /// Unset, and this process runs as root: the system daemon and its images directory.
    RootDefault,
    /// Unset, and this process is not root: the session daemon (it runs QEMU as this
    /// user and needs no privileges) and a pool in the user's data directory.
    UserDefault,
}

impl ConnectionOrigin {
    /// Why, in words (`doctor`).
    pub fn reason(self) -> &'static str {
        match self {
            ConnectionOrigin::Configured => "as dpdkhost.toml sets it",
            ConnectionOrigin::RootDefault => {
                "the default for root: the system daemon, pool under /var/lib/libvirt/images"
            }
            ConnectionOrigin::UserDefault => {
                "the default without root: the session daemon runs QEMU as you, \
                 pool in your data directory"
            }
        }
    }
}

/// The connection and pool directory a user gets when dpdkhost.toml names neither.
pub fn account_defaults(is_root: bool, data_home: Option<&Path>) -> (String, PathBuf) {
    if is_root {
        return (
            "qemu:///system".into(),
            PathBuf::from("/var/lib/libvirt/images/dpdkhost"),
        );
    }
    let pool = data_home.map_or_else(
        || PathBuf::from("/var/tmp/dpdkhost-pool"),
        |d| d.join("dpdkhost/pool"),
    );
    ("qemu:///session".into(), pool)
}

/// `$XDG_DATA_HOME`, else `~/.local/share`.
fn data_home() -> Option<PathBuf> {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
}

impl Default for Config {
    fn default() -> Self {
        Config::from_file(FileConfig::default()).expect("the defaults are valid")
    }
}

fn range<T>(
    key: &'static str,
    value: Option<i64>,
    min: i64,
    max: i64,
    default: T,
) -> Result<T, ConfigError>
where
    T: TryFrom<i64>,
{
    let Some(v) = value else { return Ok(default) };
    if v < min || v > max {
        return Err(ConfigError::Invalid {
            key,
            message: format!("must be {min}..={max}, got {v}"),
        });
    }
    T::try_from(v).map_err(|_| ConfigError::Invalid {
        key,
        message: format!("must be {min}..={max}, got {v}"),
    })
}

fn parse_subnet(key: &'static str, text: &str, max_prefix: u8) -> Result<Subnet, ConfigError> {
    let invalid = || ConfigError::Invalid {
        key,
        message: format!(
            "must be an IPv4 subnet a.b.c.d/len with len 8..={max_prefix}, got {text:?}"
        ),
    };
    let (addr, len) = text.split_once('/').ok_or_else(invalid)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
    let prefix: u8 = len.parse().map_err(|_| invalid())?;
    if !(8..=max_prefix).contains(&prefix) {
        return Err(invalid());
    }
    let mask = u32::MAX << (32 - u32::from(prefix));
    Ok(Subnet {
        network: Ipv4Addr::from(u32::from(addr) & mask),
        prefix,
    })
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Environment names end up in libvirt object names and file paths.
pub fn validate_env_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 24
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key: "--env",
            message: format!(
                "must be 1..=24 characters of a-z, 0-9 and '-', starting with a letter or digit, got {name:?}"
            ),
        })
    }
}

impl Config {
    /// Reads `path`, or the defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(FileError::of("read", path))?;
        Config::parse(&text).map_err(|err| match err {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_owned(),
                source,
            },
            other => other,
        })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            source,
        })?;
        Config::from_file(file)
    }

    fn from_file(f: FileConfig) -> Result<Config, ConfigError> {
        let vm_count = range("vm_count", f.vm_count, 1, 8, 2u8)?;
        let vcpus = match f.vcpus {
            None => None,
            v => Some(range("vcpus", v, 1, 64, 1u32)?),
        };
        let memory_mb = match f.memory_mb {
            None => None,
            v => Some(range("memory_mb", v, 512, 262_144, 1024u32)?),
        };
        let disk_gb = range("disk_gb", f.disk_gb, 2, 2048, 8u32)?;
        let hugepages = range("hugepages", f.hugepages, 0, 65_536, 64u32)?;
        let min_memory = memory_mb.unwrap_or(1024);
        if u64::from(hugepages) * 2 + 384 > u64::from(min_memory) {
            return Err(ConfigError::Invalid {
                key: "hugepages",
                message: format!(
                    "{hugepages} pages of 2 MiB leave less than 384 MiB of the VM's {min_memory} MiB; \
                     must be 0..={}",
                    (min_memory.saturating_sub(384)) / 2
                ),
            });
        }
        let timeout_secs = range("timeout_secs", f.timeout_secs, 10, 7200, 300u64)?;
        let data_subnet = parse_subnet(
            "data_subnet",
            f.data_subnet.as_deref().unwrap_or("10.0.1.0/24"),
            27,
        )?;
        let nat_subnet = parse_subnet(
            "nat_subnet",
            f.nat_subnet.as_deref().unwrap_or("192.168.150.0/24"),
            27,
        )?;
        if data_subnet.network == nat_subnet.network {
            return Err(ConfigError::Invalid {
                key: "nat_subnet",
                message: format!("must differ from data_subnet {data_subnet}"),
            });
        }
        let image = match (f.image, f.image_sha256) {
            (None, None) => ImageSource::Builtin(BUILTIN_IMAGE.into()),
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    key: "image_sha256",
                    message: "given without `image`".into(),
                })
            }
            (Some(image), sha) => {
                if let Some(s) = &sha {
                    if !is_sha256(s) {
                        return Err(ConfigError::Invalid {
                            key: "image_sha256",
                            message: format!("must be 64 hex digits, got {s:?}"),
                        });
                    }
                }
                let sha = sha.map(|s| s.to_ascii_lowercase());
                if image.starts_with("https://") || image.starts_with("http://") {
                    let sha256 = sha.ok_or(ConfigError::Invalid {
                        key: "image_sha256",
                        message: "required when `image` is a URL (64 hex digits)".into(),
                    })?;
                    ImageSource::Url { url: image, sha256 }
                } else if image.contains('/') {
                    ImageSource::Path {
                        path: PathBuf::from(image),
                        sha256: sha,
                    }
                } else if image == BUILTIN_IMAGE {
                    ImageSource::Builtin(image)
                } else {
                    return Err(ConfigError::Invalid {
                        key: "image",
                        message: format!(
                            "must be {BUILTIN_IMAGE:?}, an http(s) URL with image_sha256, or a path to a \
                             qcow2/raw disk, got {image:?}"
                        ),
                    });
                }
            }
        };
        let ssh_key = match f.ssh_public_key {
            None => SshKeySource::Generated,
            Some(value) => ssh_public_key(&value)?,
        };
        let user = f.user.unwrap_or_else(|| "dpdk".into());
        let user_ok = !user.is_empty()
            && user.len() <= 32
            && user.as_bytes()[0].is_ascii_lowercase()
            && user
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !user_ok || user == "root" {
            return Err(ConfigError::Invalid {
                key: "user",
                message: format!("must be a lowercase login name other than root (1..=32 of a-z 0-9 _ -), got {user:?}"),
            });
        }
        let pool = f.pool.unwrap_or_else(|| "dpdkhost".into());
        if pool.is_empty() || pool.contains('/') {
            return Err(ConfigError::Invalid {
                key: "pool",
                message: format!("must be a name without '/', got {pool:?}"),
            });
        }
        let is_root = nix::unistd::geteuid().is_root();
        let connection_origin = match (&f.libvirt_uri, &f.pool_path, is_root) {
            (None, None, true) => ConnectionOrigin::RootDefault,
            (None, None, false) => ConnectionOrigin::UserDefault,
            _ => ConnectionOrigin::Configured,
        };
        let (default_uri, default_pool) = account_defaults(is_root, data_home().as_deref());
        let pool_path = f.pool_path.unwrap_or(default_pool);
        if !pool_path.is_absolute() {
            return Err(ConfigError::Invalid {
                key: "pool_path",
                message: format!("must be an absolute path, got {}", pool_path.display()),
            });
        }
        let libvirt_uri = f.libvirt_uri.unwrap_or(default_uri);
        if !libvirt_uri.contains(':') {
            return Err(ConfigError::Invalid {
                key: "libvirt_uri",
                message: format!(
                    "must be a libvirt URI such as qemu:///system, got {libvirt_uri:?}"
                ),
            });
        }
        Ok(Config {
            vm_count,
            vcpus,
            memory_mb,
            disk_gb,
            hugepages,
            accel: f.accel.unwrap_or_default(),
            network: f.network.unwrap_or_default(),
            libvirt_uri,
            pool,
            pool_path,
            image,
            ssh_key,
            user,
            data_subnet,
            nat_subnet,
            agent: f.agent.map(|p| expand_home(&p.to_string_lossy())),
            connection_origin,
            timeout_secs,
        })
    }

    /// vCPUs per VM under the chosen acceleration.
    pub fn vcpus_for(&self, kvm: bool) -> u32 {
        self.vcpus.unwrap_or(if kvm { 2 } else { 1 })
    }

    /// Memory per VM under the chosen acceleration.
    pub fn memory_for(&self, kvm: bool) -> u32 {
        self.memory_mb.unwrap_or(if kvm { 2048 } else { 1024 })
    }

    /// VM n's data address (n from 1): host part 2 + 2n, so .4, .6, ...
    pub fn data_ip(&self, index: u8) -> Ipv4Addr {
        self.data_subnet.host(2 + 2 * u32::from(index))
    }

    /// VM n's management address on the NAT network: .10 + n.
    pub fn nat_ip(&self, index: u8) -> Ipv4Addr {
        self.nat_subnet.host(10 + u32::from(index))
    }
}

/// What `ssh_public_key` accepts, for its errors.
const SSH_KEY_ACCEPTED: &str = "one line `<type> <base64> [comment]`, type ssh-ed25519, \
    ssh-rsa, ecdsa-sha2-nistp256/384/521, sk-ssh-ed25519@openssh.com or \
    sk-ecdsa-sha2-nistp256@openssh.com, without authorized_keys options; or the path of a \
    .pub file holding that line";

/// `ssh_public_key`: the key text, or the path of a `.pub` file (a value without
/// whitespace, or starting with `/`, `~` or `.`). Either way one key line, parsed: the
/// line goes into every VM's authorized_keys, where a second line or an option such as
/// `command="..."` would be obeyed.
fn ssh_public_key(value: &str) -> Result<SshKeySource, ConfigError> {
    let trimmed = value.trim();
    let invalid = |message: String| ConfigError::Invalid {
        key: "ssh_public_key",
        message,
    };
    let is_path = trimmed.starts_with(['/', '~', '.']) || !trimmed.contains(char::is_whitespace);
    let (text, origin) = if is_path {
        let path = expand_home(trimmed);
        let text = std::fs::read_to_string(&path).map_err(|err| {
            invalid(format!(
                "cannot read {}: {err} (accepted: {SSH_KEY_ACCEPTED})",
                path.display()
            ))
        })?;
        (text, format!("{}", path.display()))
    } else {
        (value.to_owned(), "the key".to_owned())
    };
    authorized_key(&text)
        .map(SshKeySource::Provided)
        .map_err(|why| invalid(format!("{origin} {why} (accepted: {SSH_KEY_ACCEPTED})")))
}

/// One public key line as OpenSSH writes it (type, base64, comment), re-encoded from the
/// parsed key; `Err` says what is wrong with `text`.
pub fn authorized_key(text: &str) -> Result<String, String> {
    use ssh_key::Algorithm;
    // A .pub file's final newline is not a second line.
    let line = text.trim();
    if line.contains(['\n', '\r']) {
        return Err("holds more than one line".into());
    }
    if line.contains(char::is_control) {
        return Err("holds a control character".into());
    }
    let first = line.split_whitespace().next().unwrap_or_default();
    let known = [
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ];
    if !known.contains(&first) {
        return Err(format!(
            "starts with {first:?}, not an accepted key type (authorized_keys options \
             such as command=... are refused)"
        ));
    }
    let key = ssh_key::PublicKey::from_openssh(line)
        .map_err(|err| format!("is not a valid {first} key ({err})"))?;
    match key.algorithm() {
        Algorithm::Ed25519
        | Algorithm::Rsa { .. }
        | Algorithm::Ecdsa { .. }
        | Algorithm::SkEd25519
        | Algorithm::SkEcdsaSha2NistP256 => {}
        other => return Err(format!("has key type {}, not accepted", other.as_str())),
    }
    key.to_openssh()
        .map_err(|err| format!("cannot be re-encoded ({err})"))
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// The commented file `dpdkhost init` writes.
pub const DEFAULT_FILE: &str = r#"# dpdkhost configuration. Every key is optional; the values shown are the defaults.

# Number of VMs (1..=8). VMs are paired for the data link: 1-2, 3-4, ...
# vm_count = 2

# vCPUs and memory per VM. Unset: 2 vCPUs / 2048 MiB under KVM, 1 / 1024 under TCG
# (TCG emulates every vCPU on a host thread; one per VM boots fastest on small hosts).
# vcpus = 1          # 1..=64
# memory_mb = 1024   # 512..=262144

# Virtual disk size per VM in GiB (a qcow2 overlay on the base image), 2..=2048.
# disk_gb = 8

# 2 MiB hugepages reserved in each guest at boot (the agent's DPDK memory), 0..=65536.
# hugepages = 64

# Acceleration: auto (KVM when /dev/kvm works and the CPU exposes VT-x/AMD-V), kvm, tcg.
# accel = "auto"

# Network mode: "user" (QEMU user-mode management NIC forwarded on 127.0.0.1, UDP socket
# data link; needs no bridges) or "nat" (libvirt NAT management network with a DHCP
# reservation per VM plus an isolated data network).
# network = "user"

# libvirt connection and storage pool (a directory QEMU can read). Unset: as root the
# system daemon and /var/lib/libvirt/images/dpdkhost; as any other user the session
# daemon (QEMU runs as you) and ~/.local/share/dpdkhost/pool.
# libvirt_uri = "qemu:///system"
# pool = "dpdkhost"
# pool_path = "/var/lib/libvirt/images/dpdkhost"

# Base image: "debian-12" (dpdkhost image build), a local qcow2/raw path, or a URL with
# its sha256, e.g. the Ubuntu 24.04 cloud image:
# image = "https://cloud-images.ubuntu.com/releases/24.04/release/ubuntu-24.04-server-cloudimg-amd64.img"
# image_sha256 = "<64 hex digits>"
# image = "debian-12"

# SSH public key for the VMs' sudo user (a .pub file or the key itself). Unset: an
# ed25519 key generated for the environment.
# ssh_public_key = "~/.ssh/id_ed25519.pub"
# user = "dpdk"

# Data subnet (VMs get .4, .6, ...) and the NAT management subnet (nat mode; VMs .11, .12, ...).
# data_subnet = "10.0.1.0/24"
# nat_subnet = "192.168.150.0/24"

# The dpdk-agent binary to inject. Unset: next to the dpdkhost executable
# (cargo build --release -p dpdk-agent).
# agent = "target/release/dpdk-agent"

# Seconds `up` waits for every agent to report SERVING (10..=7200).
# timeout_secs = 300
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_lab_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.vm_count, 2);
        assert_eq!(c.network, NetworkMode::User);
        assert_eq!(c.accel, AccelChoice::Auto);
        let is_root = nix::unistd::geteuid().is_root();
        let expected = if is_root {
            "qemu:///system"
        } else {
            "qemu:///session"
        };
        assert_eq!(c.libvirt_uri, expected);
        assert_eq!(c.hugepages, 64);
        assert_eq!(c.image, ImageSource::Builtin("debian-12".into()));
        assert_eq!(c.ssh_key, SshKeySource::Generated);
        assert_eq!(c.data_ip(1), "10.0.1.4".parse::<Ipv4Addr>().unwrap());
        assert_eq!(c.data_ip(2), "10.0.1.6".parse::<Ipv4Addr>().unwrap());
        assert_eq!((c.vcpus_for(false), c.memory_for(false)), (1, 1024));
        assert_eq!((c.vcpus_for(true), c.memory_for(true)), (2, 2048));
        assert_eq!(c, Config::default());
    }

    #[test]
    fn without_root_the_defaults_are_the_session_daemon_and_a_pool_at_home() {
        assert_eq!(
            account_defaults(false, Some(Path::new("/home/u/.local/share"))),
            (
                "qemu:///session".to_owned(),
                PathBuf::from("/home/u/.local/share/dpdkhost/pool")
            )
        );
        assert_eq!(
            account_defaults(true, Some(Path::new("/root/.local/share"))),
            (
                "qemu:///system".to_owned(),
                PathBuf::from("/var/lib/libvirt/images/dpdkhost")
            )
        );
        let configured = Config::parse("libvirt_uri = \"qemu:///system\"").unwrap();
        assert_eq!(configured.connection_origin, ConnectionOrigin::Configured);
        assert_ne!(
            Config::default().connection_origin,
            ConnectionOrigin::Configured
        );
    }

    #[test]
    fn the_init_file_parses_to_the_defaults_and_every_commented_key_is_known() {
        assert_eq!(Config::parse(DEFAULT_FILE).unwrap(), Config::default());
        // Uncomment every `# key = value` line that has a plain value: each must parse.
        for line in DEFAULT_FILE.lines() {
            let Some(rest) = line.strip_prefix("# ") else {
                continue;
            };
            let Some((key, _)) = rest.split_once(" = ") else {
                continue;
            };
            if key.contains(' ')
                || rest.contains("<64 hex")
                || key == "ssh_public_key"
                || key == "image"
            {
                continue;
            }
            let value = rest.split('#').next().unwrap().trim();
            Config::parse(value).unwrap_or_else(|e| panic!("{value}: {e}"));
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("vm_cuont = 3\n").unwrap_err();
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(chain.contains("vm_cuont"), "{chain}");
    }

    #[test]
    fn out_of_range_names_key_and_range() {
        for (text, key, range) in [
            ("vm_count = 9", "vm_count", "1..=8"),
            ("vm_count = 0", "vm_count", "1..=8"),
            ("vcpus = -1", "vcpus", "1..=64"),
            ("memory_mb = 100", "memory_mb", "512..=262144"),
            ("disk_gb = 1", "disk_gb", "2..=2048"),
            ("timeout_secs = 1", "timeout_secs", "10..=7200"),
            ("data_subnet = \"10.0.1.0/30\"", "data_subnet", "8..=27"),
            ("hugepages = 1000", "hugepages", "0..=320"),
        ] {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(range), "{text}: {err}");
        }
    }

    #[test]
    fn wrong_type_and_enum_values_are_errors() {
        assert!(Config::parse("accel = \"xen\"").is_err());
        assert!(Config::parse("network = \"bridge\"").is_err());
        assert!(Config::parse("vm_count = \"two\"").is_err());
    }

    #[test]
    fn image_sources() {
        let c = Config::parse("image = \"https://example.invalid/x.img\"\nimage_sha256 = \"AB\"")
            .unwrap_err();
        assert!(c.to_string().contains("image_sha256"));
        let c = Config::parse("image = \"https://example.invalid/x.img\"").unwrap_err();
        assert!(c.to_string().contains("required"));
        let sha = "a".repeat(64);
        let c = Config::parse(&format!(
            "image = \"https://e.invalid/x.img\"\nimage_sha256 = \"{sha}\""
        ))
        .unwrap();
        assert!(matches!(c.image, ImageSource::Url { .. }));
        let c = Config::parse("image = \"/srv/x.qcow2\"").unwrap();
        assert!(matches!(c.image, ImageSource::Path { .. }));
        assert!(Config::parse("image = \"ubuntu\"")
            .unwrap_err()
            .to_string()
            .contains("image"));
    }

    #[test]
    fn subnet_math() {
        let s = parse_subnet("k", "10.0.1.77/24", 27).unwrap();
        assert_eq!(s.to_string(), "10.0.1.0/24");
        assert_eq!(s.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(s.size(), 256);
        let c = Config::parse("data_subnet = \"10.9.0.0/27\"\nvm_count = 8").unwrap();
        assert_eq!(c.data_ip(8), Ipv4Addr::new(10, 9, 0, 18));
    }

    #[test]
    fn ssh_public_key_is_one_parsed_key_line() {
        use ssh_key::{Algorithm, PrivateKey};
        let mut private = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519).unwrap();
        private.set_comment("me@host");
        let ed25519 = private.public_key().to_openssh().unwrap();
        let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC9h/Te02VIOp9KOQkV+FbvxrmCUQCSlVbRdS2+Cld99RsQq88f+5aGpISuj9v6XvtLiYd7Mnx8VYWkQ3AbbG0hBkUVB/p4PUyC4p5ECo+tfV0MwbNgoXzwflMp2bgc8rfUXQWWc/q5w6ZjVOBuDsHVogFu2hIcM8EU1qHHQ7dzkQ== rsa@test";
        let ecdsa = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBBElFx67CjItUblHLP08e6dX2stjlBl+2AQ3nSBv5TYRUBFDp/MZmGl3rOD0TG1wauI3aXwviYg7dhj9M+IEdAUtrZQG85jce9Yq2n4uy5jakni3FkcO9VrJyUJsCpyhYg== ec@test";
        let parse =
            |value: &str| Config::parse(&format!("ssh_public_key = {}", toml::Value::from(value)));
        for good in [ed25519.as_str(), rsa, ecdsa] {
            assert_eq!(
                parse(good).unwrap().ssh_key,
                SshKeySource::Provided(good.to_owned())
            );
        }
        // A .pub file: its final newline is fine, a second key line is not.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("id.pub");
        std::fs::write(&file, format!("{ed25519}\n")).unwrap();
        assert_eq!(
            parse(&file.to_string_lossy()).unwrap().ssh_key,
            SshKeySource::Provided(ed25519.clone())
        );
        std::fs::write(&file, format!("{ed25519}\n{rsa}\n")).unwrap();
        let err = parse(&file.to_string_lossy()).unwrap_err().to_string();
        assert!(err.contains("more than one line"), "{err}");
        std::fs::write(&file, format!("command=\"/bin/sh\" {ed25519}\n")).unwrap();
        let err = parse(&file.to_string_lossy()).unwrap_err().to_string();
        assert!(err.contains("command=") && err.contains("refused"), "{err}");

        let dsa = "ssh-dss AAAAB3NzaC1kc3MAAACBAKEI6a1KllRDWtHZHzEre1Z/gqezcNhR3VjWb7gaPgSSc4MzQrkZd75QaK5VBAsuRLhGN/snrQFsJglRAZ0fQAyS6L3K3LQ8F9TM+jI2PSIHUM8jvF58u9FglmPsSzua3Ni4BgXk/kjYJeGX7p2nRvPFUjokyaOHbeOxBLXeFlqfAAAAFQDzgE8GmcctZr14dcefEGioANKF6QAAAIBj3aOC0nRfKQj3dSLTnioty/bSQF8C4DfIUTN5NdzFz+XZuXrBMGjCiDI9ElzJsbBomur1/G8OmqO74F8F4TZJ7UFxHh5uugNv04dcq/S55sjWnK3mJn+ijitJ2RGRkGYzUfYsiP6uNN1ddPce6PJLgU3WaWkb4bqUZHhWlm2iuwAAAIEAl+0AiaXJXHoKAYzceXk9DPgWksEXyegsQGk38lEkH0jc4AqOhzOezZ8taNP1QCcev5Z7IJT6QbxvysrMjDWPay3EcMtf7+izHDZPw40g0ErWiwVNq0H8+UZ0MUpexa/Q2TWlzXc/T6nyFX8tnTH+tGsAo4KFrep6KgM0nt4XzGw= root@vm";
        for (bad, why) in [
            (
                format!("{ed25519}\nssh-ed25519 AAAA x"),
                "more than one line",
            ),
            (format!("{ed25519}\rssh-rsa AAAA"), "more than one line"),
            (format!("{ed25519} a\rb"), "more than one line"),
            (format!("command=\"curl x|sh\" {ed25519}"), "command="),
            (format!("no-pty {ed25519}"), "\"no-pty\""),
            (
                "ssh-ed25519 not!base64 me".to_owned(),
                "not a valid ssh-ed25519 key",
            ),
            (
                "ssh-ed25519 AAAA me".to_owned(),
                "not a valid ssh-ed25519 key",
            ),
            // The text names one type, the key inside another.
            (
                rsa.replacen("ssh-rsa", "ssh-ed25519", 1),
                "not a valid ssh-ed25519 key",
            ),
            (dsa.to_owned(), "\"ssh-dss\""),
        ] {
            let err = parse(&bad).unwrap_err().to_string();
            assert!(
                err.contains("`ssh_public_key`")
                    && err.contains(why)
                    && err.contains("accepted: one line"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn env_names() {
        validate_env_name("default").unwrap();
        validate_env_name("ci-2").unwrap();
        assert!(validate_env_name("").is_err());
        assert!(validate_env_name("Bad").is_err());
        assert!(validate_env_name("-x").is_err());
        assert!(validate_env_name("a/b").is_err());
    }
}
