#!/bin/sh
# Mounts the NoCloud seed read-only, runs its install script, unmounts. The same text
# is cloud-init's bootcmd and the built-in image's /usr/local/sbin/dpdkhost-seed.
set -eu
seed=/run/dpdkhost-seed
mkdir -p "$seed"
dev=$(blkid -t LABEL=CIDATA -o device | head -n1)
[ -n "$dev" ] || dev=$(blkid -t LABEL=cidata -o device | head -n1)
[ -n "$dev" ] || { echo "dpdkhost: no CIDATA seed disk" >&2; exit 0; }
mountpoint -q "$seed" || mount -o ro "$dev" "$seed"
rc=0
sh "$seed/dpdkhost-install.sh" "$seed" || rc=$?
umount "$seed"
exit $rc
