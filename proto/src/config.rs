//! `/etc/dpdk-agent/agent.toml`: written by dpdkhost into each VM's seed, read by
//! `dpdk-agent serve`. One type on both sides, so the two never disagree on a key.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::file_error::FileError;

/// Where the agent reads its configuration in a VM.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/dpdk-agent/agent.toml";

/// The agent's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Management address and port the gRPC server listens on (never 0.0.0.0 in a VM).
    pub listen: SocketAddr,
    /// MAC address of the data NIC, which the agent binds for DPDK.
    pub data_mac: String,
    /// The data NIC's address with prefix, e.g. `10.0.1.4/24`.
    pub data_ip: String,
    /// The other VM's data address, the default peer for selftest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_ip: Option<Ipv4Addr>,
    /// EAL arguments added after the ones the agent derives (`-l`, `-a <bdf>`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eal_args: Vec<String>,
    /// Which kernel driver to bind the data NIC to for DPDK.
    #[serde(default)]
    pub bind_driver: BindDriver,
    /// Mutual TLS material; without it the agent refuses to start unless `--insecure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsPaths>,
}

/// The kernel driver that hands the NIC to DPDK.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindDriver {
    /// vfio-pci with an IOMMU, vfio-pci in no-IOMMU mode where the kernel has it,
    /// otherwise uio_pci_generic.
    #[default]
    Auto,
    /// vfio-pci (needs an IOMMU or no-IOMMU mode).
    VfioPci,
    /// uio_pci_generic (works everywhere, IOVA as PA).
    UioPciGeneric,
}

/// PEM files for mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    /// The environment's CA: clients must present a certificate it signed.
    pub ca: PathBuf,
    /// The agent's certificate chain.
    pub cert: PathBuf,
    /// The agent's private key.
    pub key: PathBuf,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] FileError),
    /// The file is not valid TOML for this schema.
    #[error("{path} is not a valid agent configuration")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause, naming the key.
        #[source]
        source: toml::de::Error,
    },
    /// A value is out of its accepted range.
    #[error("`{field}`: {message}")]
    Invalid {
        /// The key.
        field: &'static str,
        /// What is accepted and what was given.
        message: String,
    },
}

impl AgentConfig {
    /// Reads and validates the configuration at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(FileError::of("read", path))?;
        let config: AgentConfig = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Renders the configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("AgentConfig always serializes")
    }

    /// The data MAC as bytes.
    pub fn data_mac_bytes(&self) -> Result<[u8; 6], ConfigError> {
        parse_mac(&self.data_mac).ok_or_else(|| ConfigError::Invalid {
            field: "data_mac",
            message: format!(
                "must be six hex bytes like 52:54:00:12:34:56, got {:?}",
                self.data_mac
            ),
        })
    }

    /// The data address and prefix length.
    pub fn data_addr(&self) -> Result<(Ipv4Addr, u8), ConfigError> {
        parse_cidr(&self.data_ip).ok_or_else(|| ConfigError::Invalid {
            field: "data_ip",
            message: format!(
                "must be an IPv4 address with a prefix length 1..=32 like 10.0.1.4/24, got {:?}",
                self.data_ip
            ),
        })
    }

    /// Checks every field that has a range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.data_mac_bytes()?;
        self.data_addr()?;
        if self.listen.port() == 0 {
            return Err(ConfigError::Invalid {
                field: "listen",
                message: "port must be 1..=65535, got 0".into(),
            });
        }
        Ok(())
    }
}

/// Parses `aa:bb:cc:dd:ee:ff` (case-insensitive).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    text.parse::<crate::MacAddr>().ok().map(|mac| mac.0)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    crate::MacAddr(*mac).to_string()
}

/// Parses `a.b.c.d/len` with len in 1..=32.
pub fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, len) = text.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    (1..=32).contains(&len).then_some((addr, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AgentConfig {
        AgentConfig {
            listen: "10.0.2.15:50051".parse().unwrap(),
            data_mac: "52:54:00:aa:00:02".into(),
            data_ip: "10.0.1.4/24".into(),
            peer_ip: Some("10.0.1.6".parse().unwrap()),
            eal_args: vec!["--log-level=7".into()],
            bind_driver: BindDriver::Auto,
            tls: Some(TlsPaths {
                ca: "/etc/dpdk-agent/ca.pem".into(),
                cert: "/etc/dpdk-agent/agent.pem".into(),
                key: "/etc/dpdk-agent/agent.key".into(),
            }),
        }
    }

    #[test]
    fn toml_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, sample().to_toml()).unwrap();
        assert_eq!(AgentConfig::load(&path).unwrap(), sample());
    }

    #[test]
    fn unknown_key_is_named() {
        let text = sample().to_toml() + "\nhugepage = 3\n";
        let err = toml::from_str::<AgentConfig>(&text).unwrap_err();
        assert!(err.to_string().contains("hugepage"), "{err}");
    }

    #[test]
    fn bad_values_name_their_field() {
        let mut config = sample();
        config.data_ip = "10.0.1.4".into();
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("data_ip"));
        let mut config = sample();
        config.data_mac = "52:54:00:aa:00".into();
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("data_mac"));
    }

    #[test]
    fn mac_and_cidr_parsing() {
        assert_eq!(
            parse_mac("52:54:00:AA:00:02"),
            Some([0x52, 0x54, 0, 0xaa, 0, 2])
        );
        assert_eq!(parse_mac("52:54:00:aa:00:02:00"), None);
        assert_eq!(
            format_mac(&[0x52, 0x54, 0, 0xaa, 0, 2]),
            "52:54:00:aa:00:02"
        );
        assert_eq!(
            parse_cidr("10.0.1.4/24"),
            Some(("10.0.1.4".parse().unwrap(), 24))
        );
        assert_eq!(parse_cidr("10.0.1.4/33"), None);
    }
}
