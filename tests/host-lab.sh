#!/usr/bin/env bash
# The host side on the real libvirtd (TCG, user mode): up -> status --json (every agent
# SERVING) -> ssh 1 -- true -> up again (no changes) -> down -> nothing of the
# environment left; then an `up` killed part-way, followed by `down`: nothing left.
# Tears everything down on every exit path. Root; libvirtd running; release builds of
# dpdkhost and dpdk-agent (cargo build --release -p dpdkhost -p dpdk-agent).
#
#   tests/host-lab.sh              # env "hostlab"
#   HOSTLAB_SKIP_KILL=1 tests/host-lab.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${DPDKHOST_BIN:-target/release/dpdkhost}
env_name=${HOSTLAB_ENV:-hostlab}
uri=qemu:///system
pool=${HOSTLAB_POOL:-dpdkhost}
dpdkhost() { "$bin" --env "$env_name" "$@"; }
step() { printf '\n=== host-lab: %s\n' "$*"; }

# Every libvirt object of the environment, one per line (empty when none).
leftovers() {
  virsh -c "$uri" list --all --name 2>/dev/null | grep "^dpdkhost-$env_name-vm" | sed 's/^/domain /' || true
  virsh -c "$uri" net-list --all --name 2>/dev/null | grep "^dpdkhost-$env_name-" | sed 's/^/network /' || true
  if virsh -c "$uri" pool-info "$pool" >/dev/null 2>&1; then
    virsh -c "$uri" vol-list "$pool" 2>/dev/null | awk 'NR>2 && $1 != "" {print $1}' \
      | grep "^dpdkhost-$env_name-" | sed 's/^/volume /' || true
    if [ -z "$(virsh -c "$uri" vol-list "$pool" 2>/dev/null | awk 'NR>2 && $1 != ""')" ]; then
      echo "pool $pool (empty)"
    fi
  fi
}

expect_nothing_left() {
  local left
  left=$(leftovers)
  if [ -n "$left" ]; then
    echo "host-lab: left behind after down:" >&2
    echo "$left" >&2
    return 1
  fi
  echo "host-lab: nothing of env $env_name remains"
}

up_pid=
on_exit() {
  status=$?
  if [ -n "$up_pid" ]; then kill "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; fi
  if [ "$status" != 0 ]; then
    step "FAILED (exit $status): console tails"
    for vm in 1 2; do dpdkhost logs "$vm" -n 40 2>&1 || true; done
  fi
  step "teardown"
  dpdkhost down -y || status=1
  expect_nothing_left || status=1
  exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

step "image build (cached after the first run)"
dpdkhost image build

step "up -y --no-kvm"
start=$(date +%s.%N)
dpdkhost up -y --no-kvm
printf 'host-lab: up to every agent SERVING in %.1f s\n' "$(echo "$(date +%s.%N) - $start" | bc)"

step "status --json: every agent SERVING"
dpdkhost status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
bad = [vm for vm in s["vms"] if vm["agent_health"] != "SERVING" or vm["state"] != "running"]
assert s["vms"] and not bad, bad
print("host-lab: %d agents SERVING, accel %s" % (len(s["vms"]), s["accel"]))'

step "ssh 1 -- true (host key pinned)"
dpdkhost ssh 1 -- true
dpdkhost ssh 2 -- 'test "$(hostname)" = vm2 && grep -q HugePages_Total /proc/meminfo'

step "outputs and inventory"
dpdkhost outputs --json | python3 -c 'import json,sys; o=json.load(sys.stdin); assert o["vm_names"]==["vm1","vm2"], o'
dpdkhost inventory --list | python3 -c 'import json,sys; i=json.load(sys.stdin); assert i["dpdk_vms"]["hosts"]==["vm1","vm2"], i'

step "up again: no changes"
out=$(dpdkhost up -y --no-kvm 2>&1)
echo "$out" | tail -n 3
echo "$out" | grep -q "no changes" || { echo "host-lab: second up changed something" >&2; exit 1; }

step "down -y"
dpdkhost down -y
expect_nothing_left

if [ -z "${HOSTLAB_SKIP_KILL:-}" ]; then
  step "up killed part-way, then down"
  # Fixed moments (image upload, seeds and domain start) and one at random.
  for delay in 0.3 0.8 1.3 5 $((RANDOM % 20 + 1)); do
    dpdkhost up -y --no-kvm >/dev/null 2>&1 &
    up_pid=$!
    sleep "$delay"
    kill -KILL "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
    up_pid=
    echo "host-lab: killed up after ${delay} s; left: $(leftovers | tr '\n' ' ')"
    dpdkhost down -y
    expect_nothing_left
  done
fi

step "passed"
