#!/usr/bin/env bash
# The TCG smoke: one lab, booted once, every end-to-end check against it, torn down on
# every exit path. Needs root, libvirtd running (scripts/start-libvirtd) and release
# builds of dpdkhost and dpdk-agent (scripts/test builds them).
#
#   tests/smoke.sh            # env "smoke", results under target/smoke-results
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${DPDKHOST_BIN:-target/release/dpdkhost}
env_name=${SMOKE_ENV:-smoke}
results=${SMOKE_RESULTS:-target/smoke-results}
dpdkhost() { "$bin" --env "$env_name" "$@"; }

step() { printf '\n=== smoke: %s\n' "$*"; }

on_exit() {
  status=$?
  if [ "$status" != 0 ]; then
    step "FAILED (exit $status): console tails and agent logs"
    for vm in 1 2; do
      echo "--- vm$vm serial console (last 60 lines)"
      dpdkhost logs "$vm" 2>&1 | tail -n 60 || true
    done
  fi
  step "teardown"
  dpdkhost down -y || true
  leftovers=$(virsh -c qemu:///system list --all --name 2>/dev/null | grep -c "^dpdkhost-$env_name-" || true)
  nets=$(virsh -c qemu:///system net-list --all --name 2>/dev/null | grep -c "^dpdkhost-$env_name-" || true)
  if [ "$leftovers" != 0 ] || [ "$nets" != 0 ]; then
    echo "smoke: teardown left $leftovers domain(s) and $nets network(s) of env $env_name" >&2
    [ "$status" != 0 ] || status=1
  fi
  exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

step "image build (cached after the first run)"
dpdkhost image build

step "up -y --no-kvm"
start=$(date +%s)
dpdkhost up -y --no-kvm
echo "smoke: up to every agent SERVING in $(( $(date +%s) - start )) s"

step "status --json: every agent SERVING"
mkdir -p "$results"
dpdkhost status --json > "$results/status.json"
python3 - "$results/status.json" <<'PY'
import json, sys
status = json.load(open(sys.argv[1]))
vms = status["vms"] if isinstance(status, dict) else status
bad = [vm for vm in vms if vm.get("agent_health") != "SERVING"]
assert vms and not bad, f"agents not SERVING: {bad}"
print(f"smoke: {len(vms)} agents SERVING")
PY

step "ssh 1 -- true"
dpdkhost ssh 1 -- true

step "selftest"
dpdkhost selftest

step "run pingpong --count 500"
dpdkhost run pingpong --count 500 --json --results "$results" > "$results/pingpong.json"
python3 - "$results/pingpong.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["result"]["agent"]
assert run["sent"] == 500 and run["lost"] == 0, run
rtt = run["rtt"]
print(f"smoke: pingpong 500 packets, lost 0, p50 {rtt['p50_ns']/1000:.1f} us, p99 {rtt['p99_ns']/1000:.1f} us")
PY

step "bench --pps --duration 5"
dpdkhost bench --pps --duration 5 --json --results "$results" > "$results/bench.json"
python3 - "$results/bench.json" <<'PY'
import json, sys
for d in json.load(open(sys.argv[1]))["result"]["agent"]:
    lost = d["tx_packets"] - d["rx_packets"]
    counted = d["imissed"] + d["rx_nombuf"] + d["ierrors"] + d["link_drops"]
    assert d["tx_packets"] > 0 and d["rx_packets"] > 0, d
    assert d["unaccounted"] == 0 and lost <= counted, d
    print(f"smoke: bench vm{d['from']}->vm{d['to']} tx {d['tx_pps']:.0f} pps, rx {d['rx_pps']:.0f} pps, "
          f"lost {lost} = imissed {d['imissed']} + rx_nombuf {d['rx_nombuf']} + link {d['link_drops']}")
PY

step "passed"
