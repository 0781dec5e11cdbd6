#!/usr/bin/env bash
# Builds a BIOS-bootable disk image shaped like a generic cloud image (think Ubuntu's
# cloud image, offline): an MBR partition table, a small FAT boot partition with the
# kernel, initrd and SYSLINUX, and an ext4 root filesystem labelled cloudimg-rootfs with
# cloud-init (NoCloud), sshd and growpart. It knows nothing about dpdkhost: user, SSH
# keys, hugepages, the agent and its unit must all come from the NoCloud seed.
#
# No loop devices and no mounts: mmdebstrap makes the rootfs, `mke2fs -d` the root
# filesystem, mkfs.vfat + `syslinux --install` (mtools) + mcopy the boot partition,
# sfdisk the table on a plain file, dd puts the pieces in place and SYSLINUX's mbr.bin
# in the first 440 bytes; last `qemu-img convert -c -O qcow2`.
#
#   tests/make-cloud-disk.sh OUT.qcow2     # root; ~2-3 min (mmdebstrap ~1 min)
#
# Needs: mmdebstrap, e2fsprogs, dosfstools, mtools, syslinux, syslinux-common, fdisk,
# qemu-utils.
set -euo pipefail

out=${1:?usage: $0 OUT.qcow2}
[ "$(id -u)" = 0 ] || { echo "make-cloud-disk: must run as root (mmdebstrap)" >&2; exit 1; }
for tool in mmdebstrap mke2fs mkfs.vfat mcopy syslinux sfdisk qemu-img; do
  command -v "$tool" >/dev/null || { echo "make-cloud-disk: $tool is missing (scripts/setup)" >&2; exit 1; }
done
mbr=/usr/lib/syslinux/mbr/mbr.bin
[ -f "$mbr" ] || { echo "make-cloud-disk: $mbr is missing (syslinux-common)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/make-cloud-disk.XXXXXX")
trap 'rm -rf "$work"' EXIT

# What a generic Debian/Ubuntu cloud image holds, no more (no DPDK: the agent links it
# statically). cloud-guest-utils + fdisk: growpart, which the seed asks for.
packages=linux-image-cloud-amd64,initramfs-tools,systemd-sysv,udev,cloud-init,cloud-guest-utils,fdisk
packages=$packages,openssh-server,iproute2,ifupdown,isc-dhcp-client,kmod,procps,sudo,python3,e2fsprogs

cat > "$work/customize.sh" <<'EOF'
#!/bin/sh
set -eu
root="$1"
# Like a cloud image's default list: NoCloud first, found by the CIDATA label.
printf 'datasource_list: [NoCloud, ConfigDrive, None]\n' > "$root/etc/cloud/cloud.cfg.d/90-datasources.cfg"
# Generic: no machine-id, no host keys, no hostname (each instance makes its own).
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_* "$root/etc/hostname"
printf 'LABEL=cloudimg-rootfs / ext4 defaults,discard,errors=remount-ro 0 1\n' > "$root/etc/fstab"
# A small initrd that finds the root by label on virtio-blk (TCG runs every byte of it).
printf 'MODULES=list\n' > "$root/etc/initramfs-tools/conf.d/cloudimg.conf"
printf 'virtio_pci\nvirtio_blk\next4\n' >> "$root/etc/initramfs-tools/modules"
chroot "$root" update-initramfs -u -k all >/dev/null 2>&1
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
EOF
chmod 755 "$work/customize.sh"

echo "make-cloud-disk: mmdebstrap bookworm rootfs"
mmdebstrap --quiet --variant=minbase --mode=root \
  --aptopt='APT::Install-Recommends "false"' \
  --include="$packages" --customize-hook="$work/customize.sh" \
  bookworm "$work/rootfs" >"$work/mmdebstrap.log" 2>&1 || {
  tail -n 30 "$work/mmdebstrap.log" >&2
  exit 1
}
kernel=$(ls "$work"/rootfs/boot/vmlinuz-* | sort | tail -n1)
initrd=$(ls "$work"/rootfs/boot/initrd.img-* | sort | tail -n1)

# Layout (512-byte sectors): MBR + gap up to 1 MiB, p1 FAT 64 MiB (active), p2 ext4
# 2 GiB to the end of the disk (growpart grows the last partition into the overlay).
boot_mib=64
root_mib=2048
boot_start=2048
root_start=$((boot_start + boot_mib * 2048))
total_mib=$((1 + boot_mib + root_mib))

echo "make-cloud-disk: root filesystem (mke2fs -d)"
mke2fs -q -F -t ext4 -L cloudimg-rootfs -E root_owner=0:0 -d "$work/rootfs" "$work/root.img" "${root_mib}M"

echo "make-cloud-disk: boot partition (FAT, SYSLINUX, kernel, initrd)"
cat > "$work/syslinux.cfg" <<'EOF'
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND root=LABEL=cloudimg-rootfs ro console=tty1 console=ttyS0,115200n8
EOF
truncate -s "${boot_mib}M" "$work/boot.img"
mkfs.vfat -n BOOT "$work/boot.img" >/dev/null
syslinux --install "$work/boot.img"
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
mcopy -i "$work/boot.img" "$work/vmlinuz" "$work/initrd.img" "$work/syslinux.cfg" ::/

echo "make-cloud-disk: partition table, MBR boot code, partitions"
truncate -s "${total_mib}M" "$work/disk.raw"
sfdisk --quiet --no-reread --no-tell-kernel "$work/disk.raw" <<EOF
label: dos
start=$boot_start, size=$((boot_mib * 2048)), type=c, bootable
start=$root_start, type=83
EOF
dd if="$mbr" of="$work/disk.raw" bs=440 count=1 conv=notrunc status=none
dd if="$work/boot.img" of="$work/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/root.img" of="$work/disk.raw" bs=1M seek=$((1 + boot_mib)) conv=notrunc,sparse status=none

echo "make-cloud-disk: qemu-img convert -c -O qcow2"
qemu-img convert -c -O qcow2 "$work/disk.raw" "$work/disk.qcow2"
mv "$work/disk.qcow2" "$out"
echo "make-cloud-disk: $out ($(du -m "$out" | cut -f1) MiB)"
