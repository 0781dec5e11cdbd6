#!/usr/bin/env bash
# nat network mode on a real libvirtd, never in the root network namespace: the test
# makes its own network and mount namespaces, mounts private libvirt runtime, state,
# cache, log and config directories there, starts its own virtlogd and libvirtd inside,
# and runs the lab with `network = "nat"` (a libvirt NAT management network with a DHCP
# reservation per VM, an isolated data network): up, status, ssh, pingpong, down, and a
# check that nothing of the environment remains. Bridges, taps, dnsmasq, iptables rules
# and every NAT address exist only inside that namespace.
#
# Teardown on every exit path: `down`, the two daemons killed by PID, the private mounts
# unmounted, the temporary directory removed; then, from the root namespace, any process
# still in the test's namespaces (QEMU or dnsmasq left by a daemon that died) is killed by
# PID and the test checks that no process, mount or network device of it remains.
#
# Root; release builds of dpdkhost and dpdk-agent; dnsmasq-base (scripts/setup). Shares
# the guest image cache and the lab lock with tests/smoke.sh.
#
#   tests/nat-netns.sh              # env "nat", results under target/nat-results
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."

bin=$(realpath "${DPDKHOST_BIN:-target/release/dpdkhost}")
env_name=${NAT_ENV:-nat}
pool=dpdkhost-nat
results=$(realpath -m "${NAT_RESULTS:-target/nat-results}")
step() { printf '\n=== nat: %s\n' "$*"; }
ns_of() { readlink "/proc/$1/ns/$2" 2>/dev/null || true; }

# Every process (PID) in network namespace $1 or mount namespace $2, except this shell.
ns_members() {
  local p pid
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = "$$" ] && continue
    if [ "$(ns_of "$pid" net)" = "$1" ] || [ "$(ns_of "$pid" mnt)" = "$2" ]; then
      echo "$pid"
    fi
  done
}

# ---------------------------------------------------------------------------------------
# Inside the namespaces (run by the outer part through unshare).
if [ "${1:-}" = --inside ]; then
  tmp=$2
  echo "$(ns_of $$ net) $(ns_of $$ mnt)" > "$tmp/namespaces"
  export DPDKHOST_STATE_DIR=$tmp/state
  config=$tmp/dpdkhost.toml
  dpdkhost() { "$bin" --env "$env_name" --config "$config" "$@"; }
  mounted=() daemons=()

  leftovers() {
    local uri=qemu:///system
    virsh -c $uri list --all --name | grep "^dpdkhost-$env_name-" | sed 's/^/domain /' || true
    virsh -c $uri net-list --all --name | grep "^dpdkhost-$env_name-" | sed 's/^/network /' || true
    if virsh -c $uri pool-info "$pool" >/dev/null 2>&1; then
      echo "pool $pool"
      virsh -c $uri vol-list "$pool" | awk 'NR>2 && $1 != "" {print "volume " $1}' || true
    fi
  }

  # Stops a daemon this test started, by PID: TERM, then KILL after 10 s.
  stop_daemon() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || return 0
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
  }

  on_exit() {
    status=$?
    set +e
    if [ "$status" != 0 ]; then
      step "FAILED (exit $status): status, serial console tails (agent log lines included)"
      timeout 30 "$bin" --env "$env_name" --config "$config" status 2>&1
      for vm in 1 2; do
        echo "--- vm$vm"
        # From the file when libvirtd no longer answers.
        timeout 20 "$bin" --env "$env_name" --config "$config" logs "$vm" -n 60 2>/dev/null \
          || tail -n 60 "$tmp/pool/dpdkhost-$env_name-vm$vm.console.log" 2>/dev/null || true
      done
      echo "--- libvirtd (last 20 lines)"
      grep -v "ethtool ioctl error" "$tmp/libvirtd.log" 2>/dev/null | tail -n 20
    fi
    step "teardown"
    if timeout 300 "$bin" --env "$env_name" --config "$config" down -y >/dev/null 2>&1; then
      left=$(leftovers)
      if [ -n "$left" ]; then
        echo "nat: left behind after down:" >&2
        echo "$left" >&2
        status=1
      fi
    else
      echo "nat: down failed (libvirtd gone?); the outer part kills what is left in the namespace" >&2
      [ "$status" != 0 ] || status=1
    fi
    # The daemons' and QEMU's logs, for a look afterwards.
    mkdir -p "$results/logs"
    cp "$tmp"/*.log /var/log/libvirt/qemu/*.log "$results/logs/" 2>/dev/null
    for pid in "${daemons[@]}"; do stop_daemon "$pid"; done
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
      # Busy when a dead libvirtd left QEMU running: detached now, gone with the
      # namespace once the outer part has killed what is left in it.
      umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" || status=1
    done
    exit "$status"
  }
  trap on_exit EXIT
  trap 'exit 130' INT TERM

  step "private namespace: lo up; tmpfs over /run, /var/lib|cache|log/libvirt; a copy of /etc/libvirt"
  ip link set lo up
  # The directory skeleton (owners and modes) of what gets a tmpfs, taken before it does.
  skeleton=$(find /var/lib/libvirt /var/cache/libvirt /var/log/libvirt -maxdepth 2 -type d \
    ! -path '/var/lib/libvirt/images/*' ! -name 'domain-*' -printf '%p %u %g %m\n')
  # /etc/libvirt without the root daemon's persistent domains, networks, pools, secrets.
  mkdir "$tmp/etc-libvirt"
  cp -a /etc/libvirt/. "$tmp/etc-libvirt/"
  rm -rf "$tmp/etc-libvirt/qemu" "$tmp/etc-libvirt/storage" "$tmp/etc-libvirt/secrets"
  mkdir -p "$tmp/etc-libvirt/qemu/networks/autostart" "$tmp/etc-libvirt/storage" "$tmp/etc-libvirt/secrets"
  # /run whole: libvirtd.pid, virtlogd.pid, /run/libvirt (sockets, dnsmasq pids), /run/lock.
  for dir in /run /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
    mount -t tmpfs -o mode=0755 "tmpfs-dpdkhost-nat" "$dir"
    mounted+=("$dir")
  done
  mount --bind "$tmp/etc-libvirt" /etc/libvirt
  mounted+=(/etc/libvirt)
  while read -r dir owner group mode; do
    install -d -o "$owner" -g "$group" -m "$mode" "$dir"
  done <<<"$skeleton"
  mkdir -p /run/lock
  chmod 1777 /run/lock

  step "virtlogd and libvirtd of the namespace"
  # Without the lab lock's descriptor: a daemon must never hold the lock.
  virtlogd >"$tmp/virtlogd.log" 2>&1 9>&- &
  daemons+=($!)
  libvirtd >"$tmp/libvirtd.log" 2>&1 9>&- &
  daemons+=($!)
  echo "${daemons[*]}" > "$tmp/daemons"
  for _ in $(seq 1 100); do
    virsh -c qemu:///system version >/dev/null 2>&1 && break
    sleep 0.2
  done
  virsh -c qemu:///system version | grep 'Running hypervisor'
  echo "nat: virtlogd pid ${daemons[0]}, libvirtd pid ${daemons[1]}, network namespace $(ns_of $$ net)"

  cat > "$config" <<EOF
network = "nat"
pool = "$pool"
pool_path = "$tmp/pool"
vm_count = 1
EOF

  step "up -y --no-kvm (network = \"nat\", vm_count = 1)"
  start=$(date +%s%N)
  dpdkhost up -y --no-kvm
  elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf 'nat: up to every agent SERVING in %d.%01d s\n' $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100))

  step "status --json: every agent SERVING on its NAT address"
  dpdkhost status --json > "$results/status.json"
  python3 - "$results/status.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
bad = [vm for vm in s["vms"] if vm["agent_health"] != "SERVING" or vm["state"] != "running"]
assert s["vms"] and not bad, bad
want = {"vm1": "192.168.150.11", "vm2": "192.168.150.12"}
for vm in s["vms"]:
    assert vm["mgmt_ip"] == want[vm["vm"]], vm
    assert vm["agent"] == want[vm["vm"]] + ":50051", vm
print("nat: %d agents SERVING on %s" % (len(s["vms"]), ", ".join(vm["agent"] for vm in s["vms"])))
PY

  step "vm_count = 2: up reserves vm2's address in the existing NAT network and adds vm2"
  sed -i 's/^vm_count = 1$/vm_count = 2/' "$config"
  out=$(dpdkhost up -y --no-kvm 2>&1) || { echo "$out"; exit 1; }
  echo "$out" | grep -E "^ +[+>]|SERVING|is up"
  grep -q "vm2: management address reserved in dpdkhost-$env_name-mgmt" <<<"$out"
  dpdkhost status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
got = {vm["vm"]: (vm["agent_health"], vm["mgmt_ip"]) for vm in s["vms"]}
assert got == {"vm1": ("SERVING", "192.168.150.11"), "vm2": ("SERVING", "192.168.150.12")}, got
print("nat: vm2 added, both SERVING on their reserved addresses")'

  step "nat_subnet moved under an existing network: plan refuses and says how to recover"
  cp "$config" "$config.keep"
  echo 'nat_subnet = "192.168.177.0/24"' >> "$config"
  if out=$(dpdkhost plan 2>&1); then echo "nat: plan accepted a moved subnet: $out" >&2; exit 1; fi
  echo "$out" | tail -n 2
  grep -q "nat_subnet is 192.168.177.0/24" <<<"$out" && grep -q "down -y" <<<"$out"
  mv "$config.keep" "$config"

  step "libvirt networks: NAT with a DHCP reservation per VM, isolated data"
  mgmt=$(virsh -c qemu:///system net-dumpxml "dpdkhost-$env_name-mgmt")
  data=$(virsh -c qemu:///system net-dumpxml "dpdkhost-$env_name-data")
  grep -q "<forward mode='nat'" <<<"$mgmt"
  [ "$(grep -c "<host mac=" <<<"$mgmt")" = 2 ]
  if grep -q "<forward\|<ip" <<<"$data"; then echo "nat: data network not isolated: $data" >&2; exit 1; fi
  virsh -c qemu:///system net-list --name | grep "^dpdkhost-$env_name-"

  step "up again: no changes"
  out=$(dpdkhost up -y --no-kvm 2>&1)
  echo "$out" | tail -n 3
  grep -q "no changes" <<<"$out" || { echo "nat: second up changed something" >&2; exit 1; }

  step "ssh 1 -- true (host keys pinned, over the NAT network)"
  dpdkhost ssh 1 -- true
  dpdkhost ssh 2 -- 'ip -4 -o addr show dev ens16 | grep -q " 192.168.150.12/24"'

  step "DHCP on the NAT network offers each VM its reserved address"
  for vm in 1 2; do
    # -sf /bin/true: ask for a lease only, leave the NIC's static configuration alone.
    lease=$(dpdkhost ssh "$vm" -- "sudo timeout 60 dhclient -1 -sf /bin/true -lf /tmp/dhcp.lease -pf /tmp/dhclient.pid ens16 2>/dev/null; sudo dhclient -x -sf /bin/true -pf /tmp/dhclient.pid ens16 2>/dev/null; grep -m1 -o 'fixed-address [0-9.]*' /tmp/dhcp.lease")
    echo "nat: vm$vm offered $lease"
    [ "$lease" = "fixed-address 192.168.150.1$vm" ]
  done

  step "run pingpong --count 200: no loss over the isolated data network"
  dpdkhost run pingpong --count 200 --json --results "$results" > "$results/pingpong.json"
  python3 - "$results/pingpong.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["result"]["agent"]
assert run["sent"] == 200 and run["received"] == 200 and run["lost"] == 0, run
rtt = run["rtt"]
print(f"nat: pingpong 200 packets, lost 0, p50 {rtt['p50_ns']/1000:.1f} us, p99 {rtt['p99_ns']/1000:.1f} us")
PY

  step "after a host reboot (VMs and networks stopped, no autostart): up starts everything again"
  for vm in 1 2; do virsh -c qemu:///system destroy "dpdkhost-$env_name-vm$vm" >/dev/null; done
  for n in mgmt data; do virsh -c qemu:///system net-destroy "dpdkhost-$env_name-$n" >/dev/null; done
  dpdkhost up -y --no-kvm
  dpdkhost status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert all(vm["agent_health"] == "SERVING" for vm in s["vms"]), s
print("nat: agents SERVING again after the restart")'
  dpdkhost run pingpong --count 50 --json --results "$results" | python3 -c '
import json, sys
run = json.load(sys.stdin)["result"]["agent"]
assert run["sent"] == 50 and run["received"] == 50, run
print("nat: pingpong 50 packets over the restarted data network, lost 0")'

  step "down -y: no domain, network, volume or pool of env $env_name remains"
  dpdkhost down -y
  left=$(leftovers)
  if [ -n "$left" ]; then
    echo "nat: left behind after down:" >&2
    echo "$left" >&2
    exit 1
  fi
  echo "nat: nothing of env $env_name remains"
  exit 0
fi

# ---------------------------------------------------------------------------------------
# Outside: the root namespace. Host-side traffic from here goes to 127.0.0.0/8 only.
if [ "$(id -u)" != 0 ]; then
  echo "tests/nat-netns.sh: run as root (it makes namespaces and starts libvirtd)" >&2
  exit 1
fi
command -v dnsmasq >/dev/null || { echo "nat: dnsmasq missing (scripts/setup installs dnsmasq-base)" >&2; exit 1; }

# One lab at a time per machine (the smoke and other labs take the same lock).
exec 9>/tmp/dpdkhost-lab.lock
if ! flock -n 9; then
  echo "nat: another lab holds /tmp/dpdkhost-lab.lock; waiting"
  flock 9
fi

tmp=$(mktemp -d /tmp/dpdkhost-nat.XXXXXX)
chmod 0755 "$tmp" # QEMU (libvirt-qemu) reads the pool below it
mkdir -p "$results"
links_before=$(ip -o link show | awk -F': ' '{print $2}' | sort)
started=$(date +%s)

on_exit() {
  status=$?
  set +e
  if [ -s "$tmp/namespaces" ]; then
    read -r netns mntns < "$tmp/namespaces"
    # What a dead daemon left running in the test's namespaces (QEMU, dnsmasq): by PID.
    left=$(ns_members "$netns" "$mntns")
    if [ -n "$left" ]; then
      echo "nat: processes left in the test's namespaces, killed: $(ps -o pid=,comm= -p "$(echo $left | tr ' ' ,)" | tr -s ' \n' ' ')"
      kill -KILL $left 2>/dev/null
      sleep 1
    fi
    step "root namespace: no process, mount or network device of the test remains"
    left=$(ns_members "$netns" "$mntns")
    if [ -n "$left" ]; then
      echo "nat: processes still in the test's namespaces: $left" >&2
      status=1
    fi
    if grep -q "tmpfs-dpdkhost-nat\|$tmp" /proc/self/mountinfo; then
      echo "nat: a mount of the test is visible in the root namespace" >&2
      status=1
    fi
    links_after=$(ip -o link show | awk -F': ' '{print $2}' | sort)
    if [ "$links_after" != "$links_before" ]; then
      echo "nat: network devices of the root namespace changed:" >&2
      diff <(echo "$links_before") <(echo "$links_after") >&2
      status=1
    fi
    echo "nat: namespaces $netns $mntns gone, root namespace untouched"
  fi
  rm -rf "$tmp"
  [ "$status" = 0 ] && step "passed in $(( $(date +%s) - started )) s"
  exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

step "image build (cached; from the root namespace, which has the package mirror)"
"$bin" image build

# unshare execs the inner part: its PID is this child's, its namespaces the new ones.
unshare --net --mount --propagation private -- "$self" --inside "$tmp"
