//! The NoCloud seed disk (FAT, label CIDATA), made in memory: meta-data, user-data
//! (cloud-config as JSON), network-config, plus the agent binary, its sha256, its
//! configuration, TLS material and systemd unit as extra files that a `bootcmd` copies
//! into place (large files never go through user-data: cloud-init parses it many times).

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::net::Ipv4Addr;

use agent_proto::config::AgentConfig;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::assets::{AGENT_UNIT, INSTALL_AGENT, RUN_FROM_SEED};
use crate::keys::SshKeyPair;

/// The FAT volume label cloud-init looks for.
pub const LABEL: &[u8; 11] = b"CIDATA     ";

/// Where the agent binary is installed in the guest.
pub const AGENT_PATH: &str = "/usr/local/bin/dpdk-agent";

/// Why a seed could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The FAT image could not be written (too small, I/O in memory).
    #[error("writing {file} into the FAT seed image")]
    Fat {
        /// The file being written.
        file: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The management NIC's configuration inside the guest (static, so no DHCP wait).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MgmtNetwork {
    /// The NIC's MAC.
    pub mac: String,
    /// The interface name to give it.
    pub name: String,
    /// Its address.
    pub address: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
    /// Default gateway.
    pub gateway: Ipv4Addr,
    /// DNS servers.
    pub dns: Vec<Ipv4Addr>,
}

/// Everything one VM's seed carries.
#[derive(Debug, Clone)]
pub struct SeedSpec {
    /// Unique per seed: cloud-init runs its per-instance modules once per id.
    pub instance_id: String,
    /// Hostname (`vm1`).
    pub hostname: String,
    /// The sudo user.
    pub user: String,
    /// The user's authorized SSH key.
    pub authorized_key: String,
    /// Pre-generated SSH host key (pinned by the host).
    pub host_key: SshKeyPair,
    /// 2 MiB hugepages to reserve (also on the kernel command line for built images).
    pub hugepages: u32,
    /// Management NIC.
    pub network: MgmtNetwork,
    /// Grow the root partition (cloud images with a partition table).
    pub grow_partition: bool,
    /// The image runs the seed's install script right after local filesystems
    /// (dpdkhost-seed.service, built-in image): cloud-init's network configuration is
    /// then disabled, the script configures the management NIC. Other images (cloud
    /// images) get the same static configuration through cloud-init as well.
    pub image_runs_seed: bool,
    /// The dpdk-agent executable.
    pub agent_binary: Vec<u8>,
    /// /etc/dpdk-agent/agent.toml.
    pub agent_config: AgentConfig,
    /// The environment's CA certificate.
    pub ca_pem: String,
    /// The agent's server certificate.
    pub cert_pem: String,
    /// The agent's private key.
    pub key_pem: String,
}

/// The seed's `dpdkhost.env`: the VM's values for the install script
/// ([`crate::assets::INSTALL_AGENT`], which sources it), each quoted as one shell word.
pub fn install_env(hugepages: u32, net: &MgmtNetwork) -> String {
    let dns: Vec<String> = net.dns.iter().map(ToString::to_string).collect();
    let pairs = [
        ("HUGEPAGES", hugepages.to_string()),
        ("MGMT_MAC", net.mac.clone()),
        ("MGMT_ADDRESS", net.address.to_string()),
        ("MGMT_PREFIX", net.prefix.to_string()),
        ("MGMT_GATEWAY", net.gateway.to_string()),
        ("MGMT_DNS", dns.join(" ")),
    ];
    pairs
        .iter()
        .map(|(key, value)| {
            let value = crate::shell::quote(value).unwrap_or_else(|_| "''".to_owned());
            format!("{key}={value}\n")
        })
        .collect()
}

/// `user-data`: `#cloud-config` followed by JSON (valid YAML, no YAML writer needed).
pub fn user_data(spec: &SeedSpec) -> String {
    // The built-in image's early unit has run the seed long before cloud-init would get
    // to bootcmd; other images need bootcmd for it.
    let mut init_modules = if spec.image_runs_seed {
        vec![]
    } else {
        vec!["bootcmd"]
    };
    init_modules.extend([
        "set_hostname",
        "update_hostname",
        "update_etc_hosts",
        "users-groups",
        "ssh",
    ]);
    if spec.grow_partition {
        init_modules.push("growpart");
    }
    init_modules.push("resizefs");
    let mut doc = json!({
        "hostname": spec.hostname,
        "manage_etc_hosts": true,
        "locale": "C.utf8",
        "users": [{
            "name": spec.user,
            "gecos": "dpdkhost",
            "shell": "/bin/bash",
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "lock_passwd": true,
            "ssh_authorized_keys": [spec.authorized_key],
        }],
        "disable_root": true,
        "ssh_pwauth": false,
        "ssh_deletekeys": true,
        "ssh_genkeytypes": ["ed25519"],
        "ssh_keys": {
            "ed25519_private": spec.host_key.private,
            "ed25519_public": spec.host_key.public,
        },
        "resize_rootfs": "noblock",
        "cloud_init_modules": init_modules,
        "cloud_config_modules": [],
        "cloud_final_modules": ["scripts-user", "final-message"],
        "final_message": "dpdkhost: cloud-init finished after $UPTIME s",
    });
    if !spec.image_runs_seed {
        doc["bootcmd"] = json!([RUN_FROM_SEED]);
    }
    format!(
        "#cloud-config\n{}\n",
        serde_json::to_string_pretty(&doc).expect("json")
    )
}

/// `meta-data`.
pub fn meta_data(spec: &SeedSpec) -> String {
    let doc = json!({"instance-id": spec.instance_id, "local-hostname": spec.hostname});
    format!("{}\n", serde_json::to_string_pretty(&doc).expect("json"))
}

/// `network-config`. With the built-in image cloud-init's network configuration is
/// disabled: the install script configures the management NIC (static, by MAC) as soon
/// as local filesystems are up. Other images get the same static address through
/// cloud-init too (their network stack may wait for a configured link); the script's
/// `ip` commands then find it in place. The data NIC stays unconfigured for the agent.
pub fn network_config(spec: &SeedSpec) -> String {
    if spec.image_runs_seed {
        return "{\"config\": \"disabled\"}\n".to_owned();
    }
    let net = &spec.network;
    let doc = json!({
        "version": 1,
        "config": [{
            "type": "physical",
            "name": net.name,
            "mac_address": net.mac,
            "subnets": [{
                "type": "static",
                "address": format!("{}/{}", net.address, net.prefix),
                "gateway": net.gateway.to_string(),
                "dns_nameservers": net.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            }],
        }],
    });
    format!("{}\n", serde_json::to_string_pretty(&doc).expect("json"))
}

/// Every file of the seed, by name.
pub fn files(spec: &SeedSpec) -> BTreeMap<String, Vec<u8>> {
    let sha = hex::encode(Sha256::digest(&spec.agent_binary));
    let mut files = BTreeMap::new();
    files.insert("meta-data".to_owned(), meta_data(spec).into_bytes());
    files.insert("user-data".to_owned(), user_data(spec).into_bytes());
    files.insert(
        "network-config".to_owned(),
        network_config(spec).into_bytes(),
    );
    files.insert("dpdk-agent".to_owned(), spec.agent_binary.clone());
    files.insert(
        "dpdk-agent.sha256".to_owned(),
        format!("{sha}  dpdk-agent\n").into_bytes(),
    );
    files.insert(
        "agent.toml".to_owned(),
        spec.agent_config.to_toml().into_bytes(),
    );
    files.insert("ca.pem".to_owned(), spec.ca_pem.clone().into_bytes());
    files.insert("agent.pem".to_owned(), spec.cert_pem.clone().into_bytes());
    files.insert("agent.key".to_owned(), spec.key_pem.clone().into_bytes());
    files.insert(
        "dpdk-agent.service".to_owned(),
        AGENT_UNIT.as_bytes().to_vec(),
    );
    files.insert(
        "dpdkhost-install.sh".to_owned(),
        INSTALL_AGENT.as_bytes().to_vec(),
    );
    files.insert(
        "dpdkhost.env".to_owned(),
        install_env(spec.hugepages, &spec.network).into_bytes(),
    );
    files
}

/// The seed disk image: a FAT volume labelled CIDATA holding `files`.
pub fn build(spec: &SeedSpec) -> Result<Vec<u8>, SeedError> {
    fat_image(&files(spec))
}

/// A FAT image labelled CIDATA with `files` in its root directory.
pub fn fat_image(files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, SeedError> {
    let payload: u64 = files
        .values()
        .map(|f| (f.len() as u64).div_ceil(4096) * 4096)
        .sum();
    // Room for FAT tables and directory entries; whole MiB.
    let size = (payload + payload / 8 + (4 << 20)).div_ceil(1 << 20) * (1 << 20);
    let fat = |file: &str| {
        let file = file.to_owned();
        move |source| SeedError::Fat { file, source }
    };
    let mut disk = Cursor::new(vec![
        0u8;
        usize::try_from(size).expect("seed fits in memory")
    ]);
    fatfs::format_volume(
        &mut disk,
        fatfs::FormatVolumeOptions::new().volume_label(*LABEL),
    )
    .map_err(fat("(format)"))?;
    {
        let fs =
            fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new()).map_err(fat("(mount)"))?;
        let root = fs.root_dir();
        for (name, data) in files {
            let mut f = root.create_file(name).map_err(fat(name))?;
            f.truncate().map_err(fat(name))?;
            f.write_all(data).map_err(fat(name))?;
            f.flush().map_err(fat(name))?;
        }
        drop(root);
        fs.unmount().map_err(fat("(unmount)"))?;
    }
    Ok(disk.into_inner())
}

/// Reads a FAT seed image back: its volume label and every root file.
pub fn read_back(image: &[u8]) -> std::io::Result<(String, BTreeMap<String, Vec<u8>>)> {
    let mut disk = Cursor::new(image.to_vec());
    let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new())?;
    let label = fs.volume_label();
    let mut files = BTreeMap::new();
    for entry in fs.root_dir().iter() {
        let entry = entry?;
        if entry.is_file() {
            let mut data = Vec::new();
            entry.to_file().read_to_end(&mut data)?;
            files.insert(entry.file_name(), data);
        }
    }
    Ok((label.trim_end().to_owned(), files))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use agent_proto::config::{BindDriver, TlsPaths};

    pub(crate) fn spec() -> SeedSpec {
        SeedSpec {
            instance_id: "dpdkhost-t-vm1-0123abcd".into(),
            hostname: "vm1".into(),
            user: "dpdk".into(),
            authorized_key: "ssh-ed25519 AAAAuser dpdkhost-t".into(),
            host_key: SshKeyPair {
                private:
                    "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
                        .into(),
                public: "ssh-ed25519 AAAAhost root@vm1".into(),
            },
            hugepages: 64,
            network: MgmtNetwork {
                mac: "52:54:00:0a:01:01".into(),
                name: "ens16".into(),
                address: Ipv4Addr::new(10, 0, 2, 15),
                prefix: 24,
                gateway: Ipv4Addr::new(10, 0, 2, 2),
                dns: vec![Ipv4Addr::new(10, 0, 2, 3)],
            },
            grow_partition: false,
            image_runs_seed: true,
            agent_binary: (0..3_000_000u32).map(|i| (i % 251) as u8).collect(),
            agent_config: AgentConfig {
                listen: "10.0.2.15:50051".parse().unwrap(),
                data_mac: "52:54:00:0a:01:02".into(),
                data_ip: "10.0.1.4/24".into(),
                peer_ip: Some(Ipv4Addr::new(10, 0, 1, 6)),
                eal_args: vec![],
                bind_driver: BindDriver::Auto,
                tls: Some(TlsPaths {
                    ca: "/etc/dpdk-agent/ca.pem".into(),
                    cert: "/etc/dpdk-agent/agent.pem".into(),
                    key: "/etc/dpdk-agent/agent.key".into(),
                }),
            },
            ca_pem: "CA PEM".into(),
            cert_pem: "CERT PEM".into(),
            key_pem: "KEY PEM".into(),
        }
    }

    #[test]
    fn seed_image_reads_back_file_by_file() {
        let s = spec();
        let image = build(&s).unwrap();
        assert_eq!(image.len() % (1 << 20), 0);
        let (label, files) = read_back(&image).unwrap();
        assert_eq!(label, "CIDATA");
        assert_eq!(files, super::files(&s));
        assert_eq!(
            files.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "agent.key",
                "agent.pem",
                "agent.toml",
                "ca.pem",
                "dpdk-agent",
                "dpdk-agent.service",
                "dpdk-agent.sha256",
                "dpdkhost-install.sh",
                "dpdkhost.env",
                "meta-data",
                "network-config",
                "user-data"
            ]
        );
        assert_eq!(
            files["dpdk-agent"], s.agent_binary,
            "the binary survives byte for byte"
        );
        let sha = String::from_utf8(files["dpdk-agent.sha256"].clone()).unwrap();
        assert_eq!(
            sha.split_whitespace().next().unwrap(),
            hex::encode(Sha256::digest(&s.agent_binary))
        );
        let toml = String::from_utf8(files["agent.toml"].clone()).unwrap();
        let back: AgentConfig = toml::from_str(&toml).unwrap();
        assert_eq!(back, s.agent_config);
        assert_eq!(files["agent.key"], b"KEY PEM");
    }

    #[test]
    fn user_data_is_cloud_config_json_with_pinned_keys_and_no_binary() {
        let s = spec();
        let text = user_data(&s);
        let body = text
            .strip_prefix("#cloud-config\n")
            .expect("cloud-config header");
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(doc["hostname"], "vm1");
        assert_eq!(doc["manage_etc_hosts"], true);
        assert_eq!(doc["locale"], "C.utf8");
        assert_eq!(
            doc["ssh_genkeytypes"],
            json!(["ed25519"]),
            "schema: non-empty; the pinned key exists so nothing is generated"
        );
        assert_eq!(
            doc["ssh_keys"]["ed25519_public"],
            "ssh-ed25519 AAAAhost root@vm1"
        );
        assert_eq!(doc["users"][0]["name"], "dpdk");
        assert_eq!(doc["users"][0]["sudo"], "ALL=(ALL) NOPASSWD:ALL");
        assert_eq!(
            doc["users"][0]["ssh_authorized_keys"][0],
            "ssh-ed25519 AAAAuser dpdkhost-t"
        );
        assert_eq!(doc["cloud_config_modules"], json!([]));
        assert!(
            doc.get("bootcmd").is_none() && !body.contains("\"bootcmd\""),
            "the built-in image runs the seed from its early unit"
        );
        let cloud_image = SeedSpec {
            image_runs_seed: false,
            ..s.clone()
        };
        let cloud_text = user_data(&cloud_image);
        let cloud_doc: serde_json::Value =
            serde_json::from_str(cloud_text.strip_prefix("#cloud-config\n").unwrap()).unwrap();
        assert_eq!(cloud_doc["cloud_init_modules"][0], "bootcmd");
        let boot = cloud_doc["bootcmd"][0].as_str().unwrap();
        assert!(boot.contains("mount -o ro") && boot.contains("dpdkhost-install.sh"));
        let install = INSTALL_AGENT;
        assert!(install.contains("systemctl --no-block start dpdk-agent.service"));
        assert!(install.contains("/etc/systemd/system/multi-user.target.wants/dpdk-agent.service"));
        assert!(install.contains("sha256sum"));
        assert!(install.contains(r#"-ge "$HUGEPAGES" ]"#));
        assert!(install_env(64, &s.network).contains("HUGEPAGES=64\n"));
        assert!(
            text.len() < 16 * 1024,
            "user-data stays small: the binary travels as a file"
        );
    }

    #[test]
    fn scripts_are_valid_shell() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("install.sh", INSTALL_AGENT.to_owned()),
            ("run.sh", RUN_FROM_SEED.to_owned()),
            ("dpdkhost.env", install_env(64, &spec().network)),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, &text).unwrap();
            let status = std::process::Command::new("sh")
                .arg("-n")
                .arg(&path)
                .status()
                .unwrap();
            assert!(status.success(), "sh -n rejects {name}:\n{text}");
        }
    }

    #[test]
    fn meta_and_network_config() {
        let s = spec();
        let meta: serde_json::Value = serde_json::from_str(&meta_data(&s)).unwrap();
        assert_eq!(meta["instance-id"], "dpdkhost-t-vm1-0123abcd");
        assert_eq!(meta["local-hostname"], "vm1");
        let net: serde_json::Value = serde_json::from_str(&network_config(&s)).unwrap();
        assert_eq!(
            net["config"], "disabled",
            "the install script owns the management NIC"
        );
        let mut cloud = s.clone();
        cloud.image_runs_seed = false;
        let net: serde_json::Value = serde_json::from_str(&network_config(&cloud)).unwrap();
        assert_eq!(net["version"], 1);
        assert_eq!(
            net["config"].as_array().unwrap().len(),
            1,
            "only the management NIC"
        );
        assert_eq!(net["config"][0]["mac_address"], "52:54:00:0a:01:01");
        assert_eq!(net["config"][0]["subnets"][0]["address"], "10.0.2.15/24");
        assert_eq!(net["config"][0]["subnets"][0]["gateway"], "10.0.2.2");
        let env = install_env(64, &s.network);
        assert!(
            env.contains("MGMT_MAC=52:54:00:0a:01:01\n"),
            "found by MAC: {env}"
        );
        assert!(
            env.contains("MGMT_ADDRESS=10.0.2.15\nMGMT_PREFIX=24\n"),
            "{env}"
        );
        assert!(env.contains("MGMT_GATEWAY=10.0.2.2\n"), "{env}");
        assert!(env.contains("MGMT_DNS=10.0.2.3\n"), "{env}");
        let install = INSTALL_AGENT;
        assert!(install.contains(r#"if [ "$(cat "$d/address")" = "$MGMT_MAC" ]"#));
        assert!(install.contains(r#"ip addr add "$MGMT_ADDRESS/$MGMT_PREFIX" dev"#));
        assert!(install.contains(r#"ip route replace default via "$MGMT_GATEWAY""#));
        assert!(install.contains(r#"echo "nameserver $server" >>/etc/resolv.conf"#));
    }

    #[test]
    fn unit_starts_early_and_logs_to_the_console() {
        assert!(AGENT_UNIT.contains("DefaultDependencies=no"));
        assert!(AGENT_UNIT.contains("After=local-fs.target"));
        // On a reboot the enabled unit starts before udev has probed the data NIC.
        assert!(AGENT_UNIT.contains("systemd-udev-trigger.service"));
        assert!(AGENT_UNIT.contains("ExecStartPre=-/bin/udevadm settle"));
        assert!(AGENT_UNIT.contains("ExecStart=/usr/local/bin/dpdk-agent serve"));
        assert!(AGENT_UNIT.contains("Restart=on-failure"));
        assert!(AGENT_UNIT.contains("StandardOutput=journal+console"));
    }
}
