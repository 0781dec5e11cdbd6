#!/bin/sh
# The built-in image's root filesystem from mmdebstrap's tarball, run by
# `dpdkhost image build` after mmdebstrap: unpacks the tarball, copies the newest
# kernel and initrd out for direct kernel boot and makes the ext4 disk of the tree.
#   image-filesystem.sh ROOTFS.tar OUT_DIR DISK.raw SIZE
# Without root it runs in a user namespace (unshare --map-root-user --map-auto), where
# the tarball's owners (root, and the packages' system users) are mapped ids: mkfs.ext4
# -d records them as the namespace sees them, so the disk holds the same owners as one
# built by root. Device nodes are left out (no mknod in a user namespace; the guest's
# devtmpfs provides /dev).
set -eu
tarball="$1"
out="$2"
disk="$3"
size="$4"
# Beside the disk, never in OUT_DIR (that becomes the cached image). Removed on every
# way out: outside the namespace its subordinate-id owners keep the user from removing it.
tree="$(dirname "$disk")/rootfs"
rm -rf "$tree"
trap 'rm -rf "$tree"' EXIT
mkdir -m 0755 "$tree"
tar -xpf "$tarball" -C "$tree" --numeric-owner --exclude='./dev/*'
kernel=$(find "$tree/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)
initrd=$(find "$tree/boot" -maxdepth 1 -name 'initrd.img-*' | sort -V | tail -n 1)
[ -n "$kernel" ] || { echo "image-filesystem: no kernel (vmlinuz-*) in $tree/boot" >&2; exit 1; }
[ -n "$initrd" ] || { echo "image-filesystem: no initrd (initrd.img-*) in $tree/boot" >&2; exit 1; }
cp "$kernel" "$out/vmlinuz"
cp "$initrd" "$out/initrd.img"
chmod 0644 "$out/vmlinuz" "$out/initrd.img"
mkfs.ext4 -q -F -L root -E root_owner=0:0 -d "$tree" "$disk" "$size"
