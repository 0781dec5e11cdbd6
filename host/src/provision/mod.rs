//! libvirt provisioning through the virt crate (never virsh): finding an environment's
//! objects, applying a plan, and tearing an environment down. Every object name starts
//! with `dpdkhost-<env>-`; domains and networks also carry the environment in their
//! metadata, and a pool dpdkhost made holds its marker volume: only those are the
//! environment's (see `owner`).

mod apply;
pub mod domain;
pub mod network;
pub mod owner;
pub mod pool;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use virt::connect::Connect;
use virt::domain::Domain;
use virt::error::ErrorNumber;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;

use crate::accel::Accel;
pub use crate::lab::{Found, FoundDomain, Names};
use domain::VmMeta;
use owner::LeftAlone;

/// Why a libvirt operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// A libvirt call failed.
    #[error("libvirt: cannot {what}")]
    Libvirt {
        /// What was attempted.
        what: String,
        /// libvirt's error.
        #[source]
        source: virt::error::Error,
    },
    /// Reading a local file failed.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An uploaded file did not match its checksum.
    #[error(
        "{path}: sha256 is {actual}, expected {expected} (the cached image changed: rebuild it)"
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Expected.
        expected: String,
        /// Found.
        actual: String,
    },
    /// A seed could not be made.
    #[error("seed for {vm}")]
    Seed {
        /// The VM.
        vm: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// libvirt answered something unexpected.
    #[error("{0}")]
    Unexpected(String),
    /// An object has the name dpdkhost would give, but is not the environment's.
    #[error(
        "{} exists but is not this environment's ({}): dpdkhost neither uses nor replaces \
         it; rename or remove it yourself, or use another --env",
        .0.object,
        .0.reason
    )]
    NotOurs(LeftAlone),
}

/// `Ok(None)` for libvirt's "no such object" errors.
pub fn lookup<T>(r: Result<T, virt::error::Error>) -> Result<Option<T>, ProvisionError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if matches!(
                e.code(),
                ErrorNumber::NoDomain
                    | ErrorNumber::NoNetwork
                    | ErrorNumber::NoStoragePool
                    | ErrorNumber::NoStorageVolume
            ) =>
        {
            Ok(None)
        }
        Err(source) => Err(ProvisionError::Libvirt {
            what: "look up an object".into(),
            source,
        }),
    }
}

/// A domain's definition, state and whether it runs; on failure, which of them.
fn read_domain(
    dom: &Domain,
) -> Result<(String, virt::sys::virDomainState, bool), (&'static str, virt::error::Error)> {
    let xml = dom.get_xml_desc(0).map_err(|e| ("definition", e))?;
    let (state, _) = dom.get_state().map_err(|e| ("state", e))?;
    let active = dom.is_active().map_err(|e| ("state", e))?;
    Ok((xml, state, active))
}

fn state_name(state: virt::sys::virDomainState) -> &'static str {
    match state {
        virt::sys::VIR_DOMAIN_RUNNING => "running",
        virt::sys::VIR_DOMAIN_BLOCKED => "blocked",
        virt::sys::VIR_DOMAIN_PAUSED => "paused",
        virt::sys::VIR_DOMAIN_SHUTDOWN => "shutting down",
        virt::sys::VIR_DOMAIN_SHUTOFF => "shut off",
        virt::sys::VIR_DOMAIN_CRASHED => "crashed",
        virt::sys::VIR_DOMAIN_PMSUSPENDED => "suspended",
        _ => "unknown",
    }
}

/// Maps a libvirt error to what was being done.
fn libvirt(what: &'static str) -> impl FnOnce(virt::error::Error) -> ProvisionError {
    move |source| ProvisionError::Libvirt {
        what: what.into(),
        source,
    }
}

/// A libvirt connection (closed on drop).
pub struct Libvirt {
    conn: Connect,
    uri: String,
}

impl Drop for Libvirt {
    fn drop(&mut self) {
        let _ = self.conn.close();
    }
}

impl Libvirt {
    /// Connects to `uri`.
    pub fn open(uri: &str) -> Result<Libvirt, ProvisionError> {
        virt::error::clear_error_callback();
        let conn = Connect::open(Some(uri)).map_err(|source| ProvisionError::Libvirt {
            what: format!("connect to {uri} (is libvirtd running? scripts/start-libvirtd)"),
            source,
        })?;
        Ok(Libvirt {
            conn,
            uri: uri.to_owned(),
        })
    }

    /// The connection.
    pub fn conn(&self) -> &Connect {
        &self.conn
    }

    /// The URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Whether the connection is to this machine (so /dev/kvm and files here matter).
    pub fn is_local(&self) -> bool {
        let u = &self.uri;
        u.starts_with("test:") || !u.contains("://") || u.contains(":///")
    }

    /// One round trip to the daemon: whether it still answers.
    pub fn ping(&self) -> Result<(), ProvisionError> {
        self.conn
            .get_lib_version()
            .map(drop)
            .map_err(|source| ProvisionError::Libvirt {
                what: "ask libvirtd for its version".into(),
                source,
            })
    }

    /// The pool, if defined.
    pub fn pool(&self, name: &str) -> Result<Option<StoragePool>, ProvisionError> {
        lookup(StoragePool::lookup_by_name(&self.conn, name))
    }

    /// Everything of environment `env` (pool `pool_name`), and what only looks like it.
    pub fn find(&self, env: &str, pool_name: &str) -> Result<Found, ProvisionError> {
        let names = Names::new(env);
        let mut found = Found::default();
        let nets = self
            .conn
            .list_all_networks(0)
            .map_err(libvirt("list networks"))?;
        for net in nets {
            let Ok(name) = net.get_name() else { continue };
            if !names.owns_network(&name) {
                continue;
            }
            let read = net
                .get_xml_desc(0)
                .and_then(|xml| Ok((xml, net.is_active()?)));
            let (xml, active) = match read {
                Ok(read) => read,
                // Undefined since the listing.
                Err(e) if e.code() == ErrorNumber::NoNetwork => continue,
                Err(source) => {
                    return Err(ProvisionError::Libvirt {
                        what: format!("read network {name}"),
                        source,
                    })
                }
            };
            let env_in_xml = owner::network_env(&xml);
            if let Some(reason) = owner::metadata_reason(env_in_xml.as_deref(), env) {
                found
                    .left_alone
                    .push(LeftAlone::new("network", &name, reason));
                continue;
            }
            if !active {
                found.inactive_networks.push(name.clone());
            }
            if name == names.mgmt_network() {
                found.mgmt_network = Some(network::parse_mgmt(&xml));
            }
            found.networks.push(name);
        }
        found.networks.sort();
        found.inactive_networks.sort();
        let doms = self
            .conn
            .list_all_domains(0)
            .map_err(libvirt("list domains"))?;
        // Files the environment's domains use: in a pool dpdkhost did not make, only
        // these volumes are the environment's.
        let mut used_files: HashSet<PathBuf> = HashSet::new();
        for dom in doms {
            let Ok(name) = dom.get_name() else { continue };
            let index = names.domain_index(&name);
            if index.is_none() && !names.looks_like_domain(&name) {
                continue;
            }
            // An error here is not "stopped": read so, it would plan a start (or a
            // replacement) of a VM that runs. Only a domain undefined since the listing
            // is skipped.
            let (xml, state, active) = match read_domain(&dom) {
                Ok(read) => read,
                Err((_, e)) if e.code() == ErrorNumber::NoDomain => continue,
                Err((what, source)) => {
                    return Err(ProvisionError::Libvirt {
                        what: format!("read the {what} of domain {name}"),
                        source,
                    })
                }
            };
            let meta = VmMeta::parse(&xml);
            let reason = match (&meta, index) {
                (None, _) => owner::metadata_reason(None, env),
                (Some(m), _) if m.env != env => owner::metadata_reason(Some(&m.env), env),
                (Some(m), Some(i)) if m.index == i => None,
                (Some(m), _) => Some(format!(
                    "its dpdkhost metadata is VM {}'s, whose name is {}",
                    m.index,
                    names.domain(m.index)
                )),
            };
            let (Some(meta), Some(index), None) = (meta, index, &reason) else {
                found
                    .left_alone
                    .push(LeftAlone::new("domain", &name, reason.unwrap_or_default()));
                continue;
            };
            used_files.extend(owner::domain_files(&xml));
            let accel = domain::attr(&xml[..xml.find('>').unwrap_or(0)], "type")
                .and_then(|t| Accel::from_domain_type(&t));
            found.domains.push(FoundDomain {
                name,
                index,
                active,
                state: state_name(state).to_owned(),
                accel,
                meta,
            });
        }
        found.domains.sort_by_key(|d| d.index);
        if let Some(pool) = self.pool(pool_name)? {
            let active = pool.is_active().map_err(|source| ProvisionError::Libvirt {
                what: format!("read whether pool {pool_name} runs"),
                source,
            })?;
            let path = pool::target_path(&pool).unwrap_or_default();
            if active {
                self.find_volumes(&names, &pool, pool_name, used_files, &mut found)?;
            }
            found.pool = Some((active, path));
        }
        Ok(found)
    }

    /// The environment's volumes in (active) pool `pool`, and the look-alikes.
    fn find_volumes(
        &self,
        names: &Names,
        pool: &StoragePool,
        pool_name: &str,
        mut used_files: HashSet<PathBuf>,
        found: &mut Found,
    ) -> Result<(), ProvisionError> {
        let all = pool::volume_names(pool)?;
        found.pool_owned = all.iter().any(|v| v == owner::POOL_MARKER);
        let mut candidates = Vec::new();
        for v in all.into_iter().filter(|v| v != owner::POOL_MARKER) {
            found.pool_volume_count += 1;
            if names.owns_volume(&v) {
                candidates.push(v);
            } else if names.looks_like_volume(&v) {
                found.left_alone.push(LeftAlone::new(
                    "volume",
                    &v,
                    "its name is not one dpdkhost gives",
                ));
            }
        }
        if found.pool_owned {
            found.volumes = candidates;
        } else {
            // A volume is the environment's while one of its domains uses it, directly
            // or as the backing file of one it uses (the base image under the overlays).
            let mut files = Vec::new();
            for v in candidates {
                let Some(vol) = lookup(StorageVol::lookup_by_name(pool, &v))? else {
                    continue;
                };
                let path = vol.get_path().map(PathBuf::from).ok();
                let backing = vol
                    .get_xml_desc(0)
                    .ok()
                    .and_then(|x| owner::backing_file(&x));
                files.push((v, path, backing));
            }
            loop {
                let before = found.volumes.len();
                for (v, path, backing) in &files {
                    if !found.volumes.contains(v)
                        && path.as_ref().is_some_and(|p| used_files.contains(p))
                    {
                        found.volumes.push(v.clone());
                        used_files.extend(backing.clone());
                    }
                }
                if found.volumes.len() == before {
                    break;
                }
            }
            for (v, ..) in &files {
                if !found.volumes.contains(v) {
                    found.left_alone.push(LeftAlone::new(
                        "volume",
                        v,
                        format!(
                            "pool {pool_name} is not dpdkhost's and no domain of environment {} uses it",
                            names.env()
                        ),
                    ));
                }
            }
            found.left_alone.push(LeftAlone::new(
                "pool",
                pool_name,
                format!(
                    "dpdkhost did not create it: it holds no {} volume",
                    owner::POOL_MARKER
                ),
            ));
        }
        found.volumes.sort();
        Ok(())
    }

    /// The domain by name, if defined.
    pub fn domain(&self, name: &str) -> Result<Option<Domain>, ProvisionError> {
        lookup(Domain::lookup_by_name(&self.conn, name))
    }

    /// Removes everything of environment `env`: domains (destroyed and undefined),
    /// networks, volumes, and the pool when nothing else is in it. Returns what went.
    pub fn teardown(&self, env: &str, pool_name: &str) -> Result<Vec<String>, ProvisionError> {
        // A request libvirtd accepted from an `up` killed moments ago (a volume being
        // created) can land after a pass has listed the pool: sweep again, after a
        // pause, until a pass finds nothing more.
        let mut removed = self.teardown_pass(env, pool_name)?;
        for _ in 0..5 {
            std::thread::sleep(std::time::Duration::from_millis(500));
            let more = self.teardown_pass(env, pool_name)?;
            if more.is_empty() {
                break;
            }
            tracing::info!(?more, "removed objects that appeared during teardown");
            removed.extend(more);
        }
        Ok(removed)
    }

    fn teardown_pass(&self, env: &str, pool_name: &str) -> Result<Vec<String>, ProvisionError> {
        let mut removed = Vec::new();
        // Start an inactive pool to see (and delete) what is in it; one dpdkhost did not
        // make is stopped again afterwards. A never-built pool cannot start.
        let started_pool = match self.pool(pool_name)? {
            Some(pool) if !pool.is_active().unwrap_or(false) => pool.create(0).is_ok(),
            _ => false,
        };
        let found = self.find(env, pool_name)?;
        for d in &found.domains {
            if let Some(dom) = self.domain(&d.name)? {
                if dom.is_active().unwrap_or(false) {
                    if let Err(source) = dom.destroy() {
                        // It may have stopped by itself in between.
                        if dom.is_active().unwrap_or(false) {
                            return Err(ProvisionError::Libvirt {
                                what: format!("stop domain {}", d.name),
                                source,
                            });
                        }
                    }
                }
                dom.undefine_flags(
                    virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM
                        | virt::sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE,
                )
                .or_else(|_| dom.undefine())
                .map_err(|source| ProvisionError::Libvirt {
                    what: format!("undefine domain {}", d.name),
                    source,
                })?;
                removed.push(format!("domain {}", d.name));
            }
        }
        for n in &found.networks {
            if network::remove(&self.conn, n)? {
                removed.push(format!("network {n}"));
            }
        }
        if let Some(pool) = self.pool(pool_name)? {
            if pool.is_active().unwrap_or(false) {
                for v in &found.volumes {
                    if pool::delete_volume(&pool, v)? {
                        removed.push(format!("volume {v}"));
                    }
                }
            }
            let only_the_marker = || -> Result<bool, ProvisionError> {
                Ok(pool::volume_names(&pool)? == [owner::POOL_MARKER])
            };
            if found.pool_goes() && only_the_marker()? {
                pool::delete_volume(&pool, owner::POOL_MARKER)?;
                if pool::remove_if_empty(&pool)? {
                    removed.push(format!("pool {pool_name}"));
                }
            } else if started_pool && !found.pool_owned {
                let _ = pool.destroy();
            }
        }
        Ok(removed)
    }

    /// Path of the pool directory, when the pool exists.
    pub fn pool_dir(&self, pool_name: &str) -> Option<PathBuf> {
        self.pool(pool_name)
            .ok()
            .flatten()
            .and_then(|p| pool::target_path(&p).ok())
    }
}

/// Where libvirt's QEMU driver writes a domain's QEMU log (for "KVM internal error").
pub fn qemu_log_path(uri: &str, domain: &str) -> PathBuf {
    if uri.contains("session") {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        home.join(".cache/libvirt/qemu/log")
            .join(format!("{domain}.log"))
    } else {
        Path::new("/var/log/libvirt/qemu").join(format!("{domain}.log"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain_names(found: &Found) -> Vec<&str> {
        found.domains.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn names_are_prefixed_and_owned_exactly() {
        let n = Names::new("a");
        assert_eq!(n.domain(1), "dpdkhost-a-vm1");
        assert_eq!(n.overlay(2), "dpdkhost-a-vm2.qcow2");
        for v in [
            n.overlay(1),
            n.seed(3),
            n.console_log(8),
            n.base(),
            n.kernel(),
            n.initrd(),
        ] {
            assert!(n.owns_volume(&v), "{v}");
        }
        let other = Names::new("a-b");
        assert!(
            !n.owns_volume(&other.overlay(1)),
            "env a must not claim env a-b's volumes"
        );
        assert!(!n.owns_volume(&other.base()));
        assert!(!n.owns_volume("dpdkhost-a-vm.qcow2"));
        assert!(!n.owns_volume("other.qcow2"));
        assert_eq!(n.domain_index("dpdkhost-a-vm12"), Some(12));
        assert_eq!(n.domain_index("dpdkhost-a-b-vm1"), None);
        assert!(n.owns_network("dpdkhost-a-mgmt") && !n.owns_network("dpdkhost-a-b-mgmt"));
    }

    #[test]
    fn find_and_teardown_on_the_test_driver() {
        let lv = Libvirt::open("test:///default").unwrap();
        assert!(lv.is_local());
        lv.ping().unwrap();
        // test:///default has a domain "test" that is not ours.
        let before = lv.find("t", "dpdkhost").unwrap();
        assert!(before.is_empty() && before.pool.is_none());
        let spec = domain::tests::spec(Accel::Tcg, true);
        let mut spec_b = spec.clone();
        spec_b.name = "dpdkhost-t-vm2".into();
        spec_b.meta.index = 2;
        let mut foreign = spec.clone();
        foreign.name = "dpdkhost-t-vm3".into();
        foreign.meta.env = "other".into();
        for s in [&spec, &spec_b, &foreign] {
            Domain::define_xml(lv.conn(), &domain::domain_xml(s)).unwrap();
        }
        Domain::lookup_by_name(lv.conn(), "dpdkhost-t-vm1")
            .unwrap()
            .create()
            .unwrap();
        let qemu = pool::QemuAccount::of(lv.conn());
        let p = pool::ensure(lv.conn(), "dpdkhost", Path::new("/pool"), qemu).unwrap();
        for v in [
            "dpdkhost-t-vm1.qcow2",
            "dpdkhost-t-base.img",
            "dpdkhost-u-vm1.qcow2",
        ] {
            virt::storage_vol::StorageVol::create_xml(
                &p,
                &pool::overlay_xml(
                    v,
                    1 << 30,
                    Path::new("/x"),
                    crate::image::DiskFormat::Raw,
                    qemu,
                ),
                0,
            )
            .unwrap();
        }
        network::ensure(
            lv.conn(),
            "t",
            "dpdkhost-t-data",
            &network::data_xml("dpdkhost-t-data"),
        )
        .unwrap();

        let found = lv.find("t", "dpdkhost").unwrap();
        assert_eq!(domain_names(&found), ["dpdkhost-t-vm1", "dpdkhost-t-vm2"]);
        assert!(found.domain(1).unwrap().active);
        assert_eq!(found.domain(1).unwrap().state, "running");
        assert_eq!(found.domain(2).unwrap().state, "shut off");
        assert_eq!(found.domain(1).unwrap().accel, Some(Accel::Tcg));
        assert_eq!(
            found.domain(1).unwrap().meta.ssh,
            Some("127.0.0.1:40022".parse().unwrap())
        );
        assert_eq!(
            found.volumes,
            ["dpdkhost-t-base.img", "dpdkhost-t-vm1.qcow2"]
        );
        assert_eq!(found.networks, ["dpdkhost-t-data"]);
        assert!(found.inactive_networks.is_empty());
        // Stopped (as after a host reboot): still the environment's, and known stopped.
        virt::network::Network::lookup_by_name(lv.conn(), "dpdkhost-t-data")
            .unwrap()
            .destroy()
            .unwrap();
        let found = lv.find("t", "dpdkhost").unwrap();
        assert_eq!(found.networks, ["dpdkhost-t-data"]);
        assert_eq!(found.inactive_networks, ["dpdkhost-t-data"]);

        let removed = lv.teardown("t", "dpdkhost").unwrap();
        assert!(
            removed.contains(&"domain dpdkhost-t-vm1".to_string()),
            "{removed:?}"
        );
        assert!(removed.contains(&"network dpdkhost-t-data".to_string()));
        assert!(
            !removed.iter().any(|r| r.starts_with("pool")),
            "env u's volume keeps the pool"
        );
        let after = lv.find("t", "dpdkhost").unwrap();
        assert!(after.is_empty(), "{after:?}");
        assert!(
            lv.domain("dpdkhost-t-vm3").unwrap().is_some(),
            "another env's domain stays"
        );
        assert_eq!(
            after.left_alone,
            [LeftAlone::new(
                "domain",
                "dpdkhost-t-vm3",
                "its dpdkhost metadata names environment other"
            )]
        );
        let removed_u = lv.teardown("u", "dpdkhost").unwrap();
        assert_eq!(removed_u, ["volume dpdkhost-u-vm1.qcow2", "pool dpdkhost"]);
        assert!(lv.pool("dpdkhost").unwrap().is_none());
        // down twice is fine
        assert!(lv.teardown("t", "dpdkhost").unwrap().is_empty());
        lv.domain("dpdkhost-t-vm3")
            .unwrap()
            .unwrap()
            .undefine()
            .unwrap();
    }

    /// A domain as a person might define it: no dpdkhost metadata.
    fn person_domain(name: &str) -> String {
        format!(
            "<domain type='test'><name>{name}</name><memory>1048576</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64'>hvm</type></os></domain>"
        )
    }

    #[test]
    fn names_are_ours_only_as_dpdkhost_writes_them() {
        let n = Names::new("t");
        for name in ["dpdkhost-t-vm01", "dpdkhost-t-vm+2", "dpdkhost-t-vm0"] {
            assert_eq!(n.domain_index(name), None, "{name}");
            assert!(n.looks_like_domain(name), "{name}");
        }
        assert!(!n.looks_like_domain("dpdkhost-t-vm1") && !n.looks_like_domain("dpdkhost-t-b-vm1"));
        assert!(
            !n.owns_volume("dpdkhost-t-vm01.qcow2") && n.looks_like_volume("dpdkhost-t-vm01.qcow2")
        );
        assert!(
            n.owns_volume("dpdkhost-t-vm10-seed.img")
                && !n.looks_like_volume("dpdkhost-t-vm10-seed.img")
        );
        assert!(!n.looks_like_volume(owner::POOL_MARKER));
    }

    /// A person's look-alike domains and network, and a pool of theirs that `pool =`
    /// names, survive `down`; so do volumes in that pool that no domain of the
    /// environment uses. What the environment's domain uses goes.
    #[test]
    fn down_leaves_look_alikes_and_a_pool_it_did_not_make() {
        let lv = Libvirt::open("test:///default").unwrap();
        let env = "la";
        let names = Names::new(env);
        for name in ["dpdkhost-la-vm01", "dpdkhost-la-vm+2", "dpdkhost-la-vm3"] {
            Domain::define_xml(lv.conn(), &person_domain(name)).unwrap();
        }
        let foreign_net = names.mgmt_network();
        virt::network::Network::define_xml(lv.conn(), &network::data_xml(&foreign_net)).unwrap();
        // The person's pool, empty to begin with: not made by dpdkhost.
        let mine = StoragePool::define_xml(
            lv.conn(),
            &pool::pool_xml("mine", Path::new("/mine"), pool::QemuAccount::of(lv.conn())),
            0,
        )
        .unwrap();
        mine.build(0).unwrap();
        mine.create(0).unwrap();
        let before = lv.find(env, "mine").unwrap();
        assert!(before.is_empty() && !before.pool_goes(), "{before:?}");
        assert_eq!(lv.teardown(env, "mine").unwrap(), Vec::<String>::new());
        assert!(
            lv.pool("mine").unwrap().is_some(),
            "an empty pool dpdkhost did not make stays"
        );

        // The environment's VM 1 with its volumes in that pool, and volumes nobody uses.
        let mut spec = domain::tests::spec(Accel::Tcg, true);
        spec.name = names.domain(1);
        spec.meta.env = env.into();
        spec.disk = "/mine/dpdkhost-la-vm1.qcow2".into();
        spec.seed = "/mine/dpdkhost-la-vm1-seed.img".into();
        spec.boot = None;
        Domain::define_xml(lv.conn(), &domain::domain_xml(&spec)).unwrap();
        let raw = crate::image::DiskFormat::Raw;
        for (v, backing) in [
            ("dpdkhost-la-vm1.qcow2", "/mine/dpdkhost-la-base.img"),
            ("dpdkhost-la-base.img", "/x"),
            ("dpdkhost-la-vm1-seed.img", "/x"),
            ("dpdkhost-la-vm2.qcow2", "/mine/dpdkhost-la-base.img"),
            ("dpdkhost-la-vm01.qcow2", "/x"),
            ("photos.img", "/x"),
        ] {
            StorageVol::create_xml(
                &mine,
                &pool::overlay_xml(
                    v,
                    1 << 20,
                    Path::new(backing),
                    raw,
                    pool::QemuAccount::of(lv.conn()),
                ),
                0,
            )
            .unwrap();
        }
        let found = lv.find(env, "mine").unwrap();
        assert_eq!(domain_names(&found), ["dpdkhost-la-vm1"]);
        assert!(found.networks.is_empty());
        assert_eq!(
            found.volumes,
            [
                "dpdkhost-la-base.img",
                "dpdkhost-la-vm1-seed.img",
                "dpdkhost-la-vm1.qcow2"
            ],
            "what VM 1 uses, and the base under its overlay"
        );
        let mut left: Vec<String> = found.left_alone.iter().map(ToString::to_string).collect();
        left.sort();
        assert_eq!(
            left,
            [
                "domain dpdkhost-la-vm+2 (no dpdkhost metadata)",
                "domain dpdkhost-la-vm01 (no dpdkhost metadata)",
                "domain dpdkhost-la-vm3 (no dpdkhost metadata)",
                "network dpdkhost-la-mgmt (no dpdkhost metadata)",
                "pool mine (dpdkhost did not create it: it holds no dpdkhost-pool.marker volume)",
                "volume dpdkhost-la-vm01.qcow2 (its name is not one dpdkhost gives)",
                "volume dpdkhost-la-vm2.qcow2 (pool mine is not dpdkhost's and no domain of environment la uses it)",
            ]
        );
        assert!(!found.pool_goes());
        assert_eq!(
            found
                .not_ours_among(&[
                    "domain dpdkhost-la-vm3".into(),
                    "domain dpdkhost-la-vm1".into()
                ])
                .len(),
            1,
            "up may not make VM 3, whose name a person's domain has"
        );

        let removed = lv.teardown(env, "mine").unwrap();
        assert_eq!(
            removed,
            [
                "domain dpdkhost-la-vm1",
                "volume dpdkhost-la-base.img",
                "volume dpdkhost-la-vm1-seed.img",
                "volume dpdkhost-la-vm1.qcow2"
            ]
        );
        for name in ["dpdkhost-la-vm01", "dpdkhost-la-vm+2", "dpdkhost-la-vm3"] {
            let dom = lv
                .domain(name)
                .unwrap()
                .unwrap_or_else(|| panic!("{name} survives down"));
            dom.undefine().unwrap();
        }
        assert!(
            network::remove(lv.conn(), &foreign_net).unwrap(),
            "the network survives down"
        );
        let mut rest = pool::volume_names(&mine).unwrap();
        rest.sort();
        assert_eq!(
            rest,
            [
                "dpdkhost-la-vm01.qcow2",
                "dpdkhost-la-vm2.qcow2",
                "photos.img"
            ]
        );
        for v in rest {
            pool::delete_volume(&mine, &v).unwrap();
        }
        mine.destroy().unwrap();
        mine.undefine().unwrap();
    }

    /// A pool dpdkhost made goes with the last environment in it, even after its state
    /// is lost; and `apply` never replaces a domain that is not the environment's.
    #[test]
    fn a_pool_dpdkhost_made_carries_its_marker_and_goes_when_empty() {
        let lv = Libvirt::open("test:///default").unwrap();
        let qemu = pool::QemuAccount::of(lv.conn());
        let p = pool::ensure(lv.conn(), "made", Path::new("/made"), qemu).unwrap();
        assert_eq!(pool::volume_names(&p).unwrap(), [owner::POOL_MARKER]);
        let found = lv.find("mk", "made").unwrap();
        assert!(
            found.pool_owned && found.pool_goes() && found.left_alone.is_empty(),
            "{found:?}"
        );
        StorageVol::create_xml(
            &p,
            &pool::overlay_xml(
                "dpdkhost-mk-base.img",
                1 << 20,
                Path::new("/x"),
                crate::image::DiskFormat::Raw,
                qemu,
            ),
            0,
        )
        .unwrap();
        let found = lv.find("mk", "made").unwrap();
        assert_eq!(found.volumes, ["dpdkhost-mk-base.img"]);
        assert_eq!(
            lv.teardown("mk", "made").unwrap(),
            ["volume dpdkhost-mk-base.img", "pool made"]
        );
        assert!(lv.pool("made").unwrap().is_none());
    }
}
