//! What is the environment's to remove. A name like `dpdkhost-<env>-vm1` proves
//! nothing: a person may make a domain `dpdkhost-t-vm01`, or point `pool =` at a pool
//! of their own. So a domain or network is the environment's only when dpdkhost's
//! metadata in it names the environment, and a pool only when dpdkhost made it, which
//! its marker volume says. Anything else that looks like ours is listed with the reason
//! and left alone, by `down` and by `up` (which refuses to replace it).
//!
//! Why a marker volume for pools: a pool's XML has no metadata or description, and the
//! state file is gone after a lost home directory or `down` of another environment that
//! shares the pool. A volume is a libvirt object (works over any connection, remote or
//! test driver), lives as long as the pool, and is listed with the others;
//! [`POOL_MARKER`] cannot be any environment's volume name (an environment name has no
//! `.`). A marker deleted by hand leaves the pool to its owner, the safe side.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;

use super::domain::esc;
use super::{lookup, ProvisionError};

/// The volume dpdkhost puts in a pool it created.
pub const POOL_MARKER: &str = "dpdkhost-pool.marker";

/// XML namespace of dpdkhost's network metadata.
pub const NETWORK_METADATA_NS: &str = "https://dpdkhost.invalid/xmlns/network/1";

/// An object that looks like the environment's but is not, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeftAlone {
    /// `domain dpdkhost-t-vm01`, `pool default`, ...
    pub object: String,
    /// Why it is not the environment's.
    pub reason: String,
}

impl fmt::Display for LeftAlone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.object, self.reason)
    }
}

impl LeftAlone {
    /// `kind name`, with the reason.
    pub fn new(kind: &str, name: &str, reason: impl Into<String>) -> LeftAlone {
        LeftAlone {
            object: format!("{kind} {name}"),
            reason: reason.into(),
        }
    }
}

/// Why a domain or network with metadata `env_in_metadata` is not environment `env`'s,
/// or `None` when it is.
pub fn metadata_reason(env_in_metadata: Option<&str>, env: &str) -> Option<String> {
    match env_in_metadata {
        None => Some("no dpdkhost metadata".into()),
        Some(e) if e != env => Some(format!("its dpdkhost metadata names environment {e}")),
        Some(_) => None,
    }
}

/// The `<metadata>` element of environment `env`'s networks.
pub fn network_metadata(env: &str) -> String {
    format!(
        "<metadata>\n    <dpdkhost:network xmlns:dpdkhost=\"{NETWORK_METADATA_NS}\" env=\"{}\"/>\n  </metadata>",
        esc(env)
    )
}

/// The environment a network's XML names in dpdkhost's metadata.
pub fn network_env(xml: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    doc.descendants()
        .find(|n| n.tag_name().namespace() == Some(NETWORK_METADATA_NS))
        .and_then(|n| n.attribute("env"))
        .map(str::to_owned)
}

/// The files a domain's XML uses: disks, kernel, initrd, serial and console logs.
pub fn domain_files(xml: &str) -> Vec<PathBuf> {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for n in doc.descendants() {
        match n.tag_name().name() {
            "kernel" | "initrd" => files.extend(n.text().map(PathBuf::from)),
            "source" => {
                let parent = n.parent().map(|p| p.tag_name().name());
                let attr = match parent {
                    Some("disk") => "file",
                    Some("serial" | "console") => "path",
                    _ => continue,
                };
                files.extend(n.attribute(attr).map(PathBuf::from));
            }
            _ => {}
        }
    }
    files
}

/// The backing file in a volume's XML, if any.
pub fn backing_file(volume_xml: &str) -> Option<PathBuf> {
    let doc = roxmltree::Document::parse(volume_xml).ok()?;
    let backing = doc.descendants().find(|n| n.has_tag_name("backingStore"))?;
    backing
        .children()
        .find(|n| n.has_tag_name("path"))
        .and_then(|n| n.text())
        .map(PathBuf::from)
}

/// Marks `pool` as made by dpdkhost (right after it is made).
pub fn mark_pool(pool: &StoragePool) -> Result<(), ProvisionError> {
    if lookup(StorageVol::lookup_by_name(pool, POOL_MARKER))?.is_some() {
        return Ok(());
    }
    let xml = format!(
        "<volume>\n  <name>{POOL_MARKER}</name>\n  <capacity unit='bytes'>0</capacity>\n  <target>\n    <format type='raw'/>\n    <permissions><mode>0600</mode></permissions>\n  </target>\n</volume>\n"
    );
    StorageVol::create_xml(pool, &xml, 0)
        .map(drop)
        .map_err(|source| ProvisionError::Libvirt {
            what: format!(
                "create the marker volume {POOL_MARKER} (it tells down the pool is dpdkhost's)"
            ),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_metadata_round_trips_and_names_the_environment() {
        let xml = format!(
            "<network>\n  <name>n</name>\n  {}\n</network>",
            network_metadata("t")
        );
        assert_eq!(network_env(&xml).as_deref(), Some("t"));
        assert_eq!(network_env("<network><name>n</name></network>"), None);
        assert_eq!(metadata_reason(Some("t"), "t"), None);
        assert_eq!(
            metadata_reason(None, "t").as_deref(),
            Some("no dpdkhost metadata")
        );
        assert_eq!(
            metadata_reason(Some("u"), "t").as_deref(),
            Some("its dpdkhost metadata names environment u")
        );
    }

    #[test]
    fn a_domains_files_are_its_disks_boot_files_and_logs() {
        let spec = super::super::domain::tests::spec(crate::accel::Accel::Tcg, true);
        let mut files = domain_files(&super::super::domain::domain_xml(&spec));
        files.sort();
        files.dedup();
        let mut expected = vec![
            spec.disk.clone(),
            spec.seed.clone(),
            spec.serial_log.clone(),
            spec.boot.as_ref().unwrap().kernel.clone(),
            spec.boot.as_ref().unwrap().initrd.clone(),
        ];
        expected.sort();
        assert_eq!(files, expected);
        let vol = "<volume><name>o</name><backingStore><path>/p/base.img</path><format type='raw'/></backingStore></volume>";
        assert_eq!(backing_file(vol), Some(PathBuf::from("/p/base.img")));
        assert_eq!(backing_file("<volume><name>o</name></volume>"), None);
    }
}
