//! `apply`: makes what a plan says, in its order.

use virt::domain::Domain;

use super::domain::VmMeta;
use super::owner::{self, LeftAlone};
use super::{domain, network, pool, Libvirt, Names, ProvisionError};
use crate::image::{BaseImage, Progress};
use crate::plan::{Action, Plan, VmPlan};

impl Libvirt {
    /// Applies `plan`: pool, base image, networks, then per VM overlay + seed + domain,
    /// then starts what is not running. `make_seed` renders VM n's seed image.
    pub fn apply(
        &self,
        plan: &Plan,
        base: &BaseImage,
        make_seed: &mut dyn FnMut(&VmPlan) -> Result<Vec<u8>, ProvisionError>,
        progress: &dyn Progress,
    ) -> Result<(), ProvisionError> {
        let names = Names::new(&plan.env);
        let qemu = pool::QemuAccount::of(&self.conn);
        let pool = pool::ensure(&self.conn, &plan.pool, &plan.pool_path, qemu)?;
        let dir = pool::target_path(&pool)?;
        let path = |n: &str| dir.join(n);
        let transfer =
            pool::Transfer::choose(self.is_local() && !self.uri.starts_with("test:"), &dir);
        if let pool::Transfer::Local(dir) = &transfer {
            pool::tighten(dir, qemu, &names.prefix())?;
        }
        let dest = pool::Destination {
            pool: &pool,
            transfer: &transfer,
            qemu,
        };
        for action in &plan.actions {
            match action {
                Action::CreatePool => {}
                Action::UploadImage => {
                    progress.stage(&format!(
                        "uploading base image {} into pool {}",
                        base.name, plan.pool
                    ));
                    pool::upload_file(
                        &self.conn,
                        &dest,
                        &names.base(),
                        &base.disk,
                        &base.sha256,
                        progress,
                    )?;
                    if let Some(boot) = &base.boot {
                        pool::upload_file(
                            &self.conn,
                            &dest,
                            &names.kernel(),
                            &boot.kernel,
                            &boot.kernel_sha256,
                            progress,
                        )?;
                        pool::upload_file(
                            &self.conn,
                            &dest,
                            &names.initrd(),
                            &boot.initrd,
                            &boot.initrd_sha256,
                            progress,
                        )?;
                    }
                    pool::refresh(&pool)?;
                }
                Action::CreateNetworks => {
                    progress.stage("creating the NAT management and isolated data networks");
                    let hosts: Vec<network::Reservation> =
                        plan.vms.iter().map(VmPlan::mgmt_reservation).collect();
                    network::ensure(
                        &self.conn,
                        &plan.env,
                        &names.mgmt_network(),
                        &network::mgmt_xml(&names.mgmt_network(), &plan.nat_subnet, &hosts),
                    )?;
                    network::ensure(
                        &self.conn,
                        &plan.env,
                        &names.data_network(),
                        &network::data_xml(&names.data_network()),
                    )?;
                }
                Action::ReserveAddress(index) => {
                    let vm = plan.vm(*index).ok_or_else(|| {
                        ProvisionError::Unexpected(format!("no VM {index} in plan"))
                    })?;
                    progress.stage(&format!(
                        "reserving {} for {} in {}",
                        vm.mgmt_ip,
                        vm.name,
                        names.mgmt_network()
                    ));
                    network::reserve(&self.conn, &names.mgmt_network(), &[vm.mgmt_reservation()])?;
                }
                Action::CreateVm(index) => {
                    let vm = plan.vm(*index).ok_or_else(|| {
                        ProvisionError::Unexpected(format!("no VM {index} in plan"))
                    })?;
                    progress.stage(&format!("{}: overlay, seed, domain", vm.name));
                    // A domain on an outdated base image is replaced, not patched; one
                    // that is not the environment's is never touched.
                    if let Some(old) = self.domain(&vm.domain)? {
                        let xml =
                            old.get_xml_desc(0)
                                .map_err(|source| ProvisionError::Libvirt {
                                    what: format!("read domain {}", vm.domain),
                                    source,
                                })?;
                        let meta = VmMeta::parse(&xml);
                        let env_in_xml = meta.as_ref().map(|m| m.env.as_str());
                        if let Some(reason) = owner::metadata_reason(env_in_xml, &plan.env) {
                            return Err(ProvisionError::NotOurs(LeftAlone::new(
                                "domain", &vm.domain, reason,
                            )));
                        }
                        if old.is_active().unwrap_or(false) {
                            old.destroy().map_err(|source| ProvisionError::Libvirt {
                                what: format!("stop domain {} to replace it", vm.domain),
                                source,
                            })?;
                        }
                        old.undefine().map_err(|source| ProvisionError::Libvirt {
                            what: format!("undefine domain {} to replace it", vm.domain),
                            source,
                        })?;
                    }
                    let base_path = path(&names.base());
                    pool::create_overlay(
                        &pool,
                        &names.overlay(vm.index),
                        plan.disk_bytes,
                        &base_path,
                        base.format,
                        qemu,
                    )?;
                    let seed = make_seed(vm)?;
                    pool::upload_bytes(&self.conn, &dest, &names.seed(vm.index), &seed)?;
                    pool::refresh(&pool)?;
                    let spec = plan.domain_spec(vm, &dir, base.boot.is_some());
                    Domain::define_xml(&self.conn, &domain::domain_xml(&spec)).map_err(
                        |source| ProvisionError::Libvirt {
                            what: format!("define domain {}", vm.domain),
                            source,
                        },
                    )?;
                }
                Action::StartVm(index) => {
                    let vm = plan.vm(*index).ok_or_else(|| {
                        ProvisionError::Unexpected(format!("no VM {index} in plan"))
                    })?;
                    progress.stage(&format!("{}: starting", vm.name));
                    let dom = self.domain(&vm.domain)?.ok_or_else(|| {
                        ProvisionError::Unexpected(format!("domain {} vanished", vm.domain))
                    })?;
                    if !dom.is_active().unwrap_or(false) {
                        dom.create().map_err(|source| ProvisionError::Libvirt {
                            what: format!("start domain {}", vm.domain),
                            source,
                        })?;
                    }
                }
            }
        }
        Ok(())
    }
}
