#!/bin/sh
# mmdebstrap's customize hook for the built-in image, run with the rootfs as $1. The
# early unit's files lie beside this script (dpdkhost image build writes them there).
set -eu
root="$1"
here=$(dirname "$0")
# NoCloud only: no network datasource probing at boot.
printf 'datasource_list: [NoCloud, None]\n' > "$root/etc/cloud/cloud.cfg.d/90-dpdkhost.cfg"
# Every VM gets its own machine-id and SSH host keys (the seed carries pinned ones).
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' > "$root/etc/fstab"
rm -f "$root/etc/hostname"
# Nothing at boot that the lab does not need (TCG makes every unit expensive). Of
# cloud-init's four stages only init runs: it finds the NoCloud seed without the local
# stage (the seed's network-config is disabled: the early unit configures the NIC), and
# the config and final stages have nothing to do. Each stage costs a Python start-up of
# 10-60 s on the guest's one vCPU (guest-load.sh knows which stages are masked).
chroot "$root" systemctl mask getty@tty1.service serial-getty@ttyS0.service \
  e2scrub_reap.service dpdk.service apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_all.timer fstrim.timer dpkg-db-backup.timer systemd-pstore.service \
  systemd-binfmt.service proc-sys-fs-binfmt_misc.automount sys-kernel-debug.mount \
  sys-kernel-tracing.mount sys-kernel-config.mount modprobe@loop.service modprobe@fuse.service \
  modprobe@dm_mod.service modprobe@configfs.service modprobe@drm.service \
  cloud-init-local.service cloud-config.service cloud-final.service >/dev/null 2>&1
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
# A small initrd: only what mounts /dev/vda (TCG unpacks and runs every byte of it).
printf 'MODULES=list\n' > "$root/etc/initramfs-tools/conf.d/dpdkhost.conf"
printf 'virtio_pci\nvirtio_blk\n' >> "$root/etc/initramfs-tools/modules"
chroot "$root" update-initramfs -u -k all >/dev/null 2>&1
# Early agent start from the seed: the unit runs run-from-seed.sh right after local
# filesystems, long before cloud-init gets to bootcmd.
mkdir -p "$root/usr/local/sbin"
install -m 0755 "$here/run-from-seed.sh" "$root/usr/local/sbin/dpdkhost-seed"
install -m 0644 "$here/dpdkhost-seed.service" "$root/etc/systemd/system/dpdkhost-seed.service"
chroot "$root" systemctl enable dpdkhost-seed.service >/dev/null 2>&1
