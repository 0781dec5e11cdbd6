#!/usr/bin/env bash
# `systemd-analyze verify` on every unit in cloud-init/, against a root laid out as the
# guest has it: the units in /etc/systemd/system and the programs they run at their
# guest paths (the release dpdk-agent, the seed runner, the shell).
set -euo pipefail
cd "$(dirname "$0")/.."

agent=${DPDK_AGENT_BIN:-target/release/dpdk-agent}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/usr/local/sbin" "$root/etc/systemd/system" "$root/bin"
install -m 0755 "$agent" "$root/usr/local/bin/dpdk-agent"
install -m 0755 cloud-init/run-from-seed.sh "$root/usr/local/sbin/dpdkhost-seed"
install -m 0755 "$(readlink -f /bin/sh)" "$root/bin/sh"
units=()
for unit in cloud-init/*.service; do
  install -m 0644 "$unit" "$root/etc/systemd/system/"
  units+=("$root/etc/systemd/system/${unit##*/}")
done
systemd-analyze verify --root="$root" "${units[@]}"
echo "verify-units: ${#units[@]} units pass systemd-analyze verify"
