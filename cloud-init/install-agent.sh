#!/bin/sh
# dpdkhost's install script, on the NoCloud seed as dpdkhost-install.sh. Run with the
# mounted seed directory as $1 by the built-in image's early dpdkhost-seed.service
# (right after local filesystems) and again by cloud-init's bootcmd (images without
# that unit). Every boot it reserves hugepages, makes sure the agent is installed from
# this seed (copied, sha256 verified; skipped when already done) and started without
# waiting (a blocking start from bootcmd hangs cloud-init), and configures the
# management NIC, found by MAC, with ip(8): the agent listens on that address, and
# nothing waits for cloud-init's Python start-up or ifupdown.
#
# The VM's values come from $1/dpdkhost.env (written by dpdkhost, each value quoted):
# HUGEPAGES, MGMT_MAC, MGMT_ADDRESS, MGMT_PREFIX, MGMT_GATEWAY, MGMT_DNS (space separated).
set -eu
seed="$1"
agent=/usr/local/bin/dpdk-agent
etc=/etc/dpdk-agent
# shellcheck source=/dev/null
. "$seed/dpdkhost.env"
: "${HUGEPAGES:?}" "${MGMT_MAC:?}" "${MGMT_ADDRESS:?}" "${MGMT_PREFIX:?}" "${MGMT_GATEWAY:?}"
MGMT_DNS=${MGMT_DNS:-}

[ "$(cat /proc/sys/vm/nr_hugepages)" -ge "$HUGEPAGES" ] || echo "$HUGEPAGES" >/proc/sys/vm/nr_hugepages
if cmp -s "$seed/dpdk-agent.sha256" "$etc/dpdk-agent.sha256" && cmp -s "$seed/agent.toml" "$etc/agent.toml" && [ -x "$agent" ]; then
  echo "dpdkhost: dpdk-agent already installed from this seed"
else
  mkdir -p "$etc"
  cp "$seed/dpdk-agent" "$agent.new"
  want=$(cut -d' ' -f1 "$seed/dpdk-agent.sha256")
  have=$(sha256sum "$agent.new" | cut -d' ' -f1)
  if [ "$want" != "$have" ]; then
    rm -f "$agent.new"
    echo "dpdkhost: dpdk-agent on the seed has sha256 $have, expected $want" >&2
    exit 1
  fi
  chmod 0755 "$agent.new"
  mv "$agent.new" "$agent"
  install -m 0644 "$seed/agent.toml" "$seed/ca.pem" "$seed/agent.pem" "$etc/"
  install -m 0600 "$seed/agent.key" "$etc/"
  install -m 0644 "$seed/dpdk-agent.service" /etc/systemd/system/dpdk-agent.service
  # What `systemctl enable` does for this unit, without its start-up (~2 s under TCG):
  # the agent also starts at boots that find no seed.
  mkdir -p /etc/systemd/system/multi-user.target.wants
  ln -sf /etc/systemd/system/dpdk-agent.service \
    /etc/systemd/system/multi-user.target.wants/dpdk-agent.service
  install -m 0644 "$seed/dpdk-agent.sha256" "$etc/dpdk-agent.sha256"
  echo "dpdkhost: dpdk-agent $have installed"
fi
systemctl --no-block start dpdk-agent.service

# Management NIC: by MAC, once udev has named it.
udevadm settle --timeout=20 || true
dev=
for _ in $(seq 1 100); do
  for d in /sys/class/net/*; do
    if [ "$(cat "$d/address")" = "$MGMT_MAC" ]; then
      dev=${d##*/}
      break 2
    fi
  done
  sleep 0.2
done
if [ -z "$dev" ]; then
  echo "dpdkhost: no NIC with MAC $MGMT_MAC" >&2
  exit 1
fi
ip link set dev "$dev" up
ip -4 -o addr show dev "$dev" | grep -q " $MGMT_ADDRESS/" || ip addr add "$MGMT_ADDRESS/$MGMT_PREFIX" dev "$dev"
ip route replace default via "$MGMT_GATEWAY" dev "$dev"
if [ ! -L /etc/resolv.conf ]; then
  : >/etc/resolv.conf
  for server in $MGMT_DNS; do echo "nameserver $server" >>/etc/resolv.conf; done
fi
echo "dpdkhost: management NIC $dev is $MGMT_ADDRESS/$MGMT_PREFIX, dpdk-agent started"
