#!/usr/bin/env bash
# The TCG smoke: the lab is booted once and every end-to-end check runs against it —
# status, ssh with pinned host keys, outputs and inventory, `up` again changes nothing,
# selftest, ping-pong, bench — then `down` and a check that nothing of the environment
# remains; last, `up` interrupted (SIGINT and SIGKILL) at several moments, each followed
# by `down` and the same check. Tears down on every exit path.
#
# Root; libvirtd running (scripts/start-libvirtd); release builds of dpdkhost and
# dpdk-agent (scripts/test builds them).
#
#   tests/smoke.sh                    # env "smoke", results under target/smoke-results
#   SMOKE_SKIP_KILL=1 tests/smoke.sh  # without the interrupted-up part
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${DPDKHOST_BIN:-target/release/dpdkhost}
env_name=${SMOKE_ENV:-smoke}
results=${SMOKE_RESULTS:-target/smoke-results}
uri=qemu:///system
pool=${SMOKE_POOL:-dpdkhost}
dpdkhost() { "$bin" --env "$env_name" "$@"; }
step() { printf '\n=== smoke: %s  [+%ds]\n' "$*" "$SECONDS"; }

# One lab at a time per machine: two TCG labs on a small host starve each other.
exec 9>/tmp/dpdkhost-lab.lock
if ! flock -n 9; then
  echo "smoke: another lab holds /tmp/dpdkhost-lab.lock; waiting"
  flock 9
fi

label=smoke
# leftovers, expect_nothing_left
source tests/lib.sh  # (the working directory is the repository root)

up_pid=
on_exit() {
  status=$?
  if [ -n "$up_pid" ]; then kill "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; fi
  if [ "$status" != 0 ]; then
    step "FAILED (exit $status): serial console tails (agent log lines included)"
    for vm in 1 2; do
      echo "--- vm$vm"
      dpdkhost logs "$vm" -n 60 2>&1 || true
    done
  fi
  step "teardown"
  dpdkhost down -y >/dev/null 2>&1 || status=1
  expect_nothing_left || status=1
  exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT TERM
mkdir -p "$results"

step "image build (cached after the first run)"
dpdkhost image build

step "up -y --no-kvm"
start=$(date +%s%N)
dpdkhost up -y --no-kvm --json > "$results/up.json"
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
printf 'smoke: up to every guest quiet in %d.%01d s\n' $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100))

step "up returned with the guests quiet (cloud-init finished in each)"
python3 - "$results/up.json" <<'PY'
import json, sys
up = json.load(open(sys.argv[1]))
guests = {g["vm"]: g for g in up["guests"]}
assert sorted(guests) == ["vm1", "vm2"], up
assert all(g["cloud_init"] in ("done", "disabled", "absent") for g in guests.values()), guests
assert up["quiet_after_s"] is not None and not up["warnings"], up
print("smoke: agents SERVING after %.1f s, guests quiet after %.1f s: %s" % (
    up["serving_after_s"], up["quiet_after_s"],
    "; ".join("%s load %.2f cloud-init %s" % (g["vm"], g["load1"], g["cloud_init"]) for g in guests.values())))
PY

step "secrets at rest: pool 0710, seeds 0600, unreadable to another user"
pool_dir=$(virsh -c "$uri" pool-dumpxml "$pool" | sed -n 's:.*<path>\(.*\)</path>.*:\1:p' | head -n 1)
seed="$pool_dir/dpdkhost-$env_name-vm1-seed.img"
test "$(stat -c %a "$pool_dir")" = 710
test "$(stat -c %a "$seed")" = 600
if runuser -u nobody -- cat "$seed" >/dev/null 2>&1; then
  echo "smoke: user nobody can read $seed" >&2; exit 1
fi
echo "smoke: $pool_dir is $(stat -c '%a %U:%G' "$pool_dir"), the seed $(stat -c '%a %U:%G' "$seed"); nobody cannot read it"

step "status --json: every agent SERVING"
dpdkhost status --json > "$results/status.json"
python3 - "$results/status.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
bad = [vm for vm in s["vms"] if vm["agent_health"] != "SERVING" or vm["state"] != "running"]
assert s["vms"] and not bad, bad
print("smoke: %d agents SERVING, accel %s" % (len(s["vms"]), s["accel"]))
PY

step "ssh (host keys pinned)"
dpdkhost ssh 1 -- true
dpdkhost ssh 2 -- 'test "$(hostname)" = vm2 && grep -q HugePages_Total /proc/meminfo'

step "outputs and inventory"
dpdkhost outputs --json | python3 -c 'import json,sys; o=json.load(sys.stdin); assert o["vm_names"]==["vm1","vm2"], o'
dpdkhost inventory --list | python3 -c 'import json,sys; i=json.load(sys.stdin); assert i["dpdk_vms"]["hosts"]==["vm1","vm2"], i'

step "ssh-config: plain ssh -F with the generated config, host keys pinned"
ssh_config=$(dpdkhost ssh-config --write --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])')
ssh -F "$ssh_config" -o BatchMode=yes "dpdk-$env_name-vm2" 'test "$(hostname)" = vm2'
grep -q "StrictHostKeyChecking yes" "$ssh_config"
echo "smoke: ssh -F $ssh_config dpdk-$env_name-vm2 ran with StrictHostKeyChecking yes"

step "cmake: the old lab's targets from a project including cmake/DpdkHost.cmake"
# local_vm_test and local_vm_full run the Ansible playbooks (hello_world,
# test_connectivity) through the dynamic inventory; local_vm_deploy's up finds the lab
# as it is and changes nothing.
abs_bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
cmake_build=$(mktemp -d /tmp/dpdkhost-smoke-cmake.XXXXXX)
cmake -S tests/cmake-project -B "$cmake_build" -DDPDKHOST_BIN="$abs_bin" -DDPDKHOST_ENV="$env_name" \
  -DDPDKHOST_UP_ARGS=--no-kvm >/dev/null
for target in local_vm_init local_vm_plan local_vm_deploy local_vm_outputs local_vm_test local_vm_full; do
  target_start=$(date +%s)
  if ! target_out=$(cmake --build "$cmake_build" --target "$target" 2>&1); then
    echo "$target_out" >&2
    echo "smoke: cmake target $target failed" >&2; exit 1
  fi
  case $target in
    local_vm_deploy | local_vm_full)
      grep -q "no changes" <<<"$target_out" || { echo "$target_out" >&2; echo "smoke: $target changed the lab" >&2; exit 1; } ;;
    local_vm_test)
      grep -q "test_connectivity" <<<"$target_out" || { echo "$target_out" >&2; exit 1; } ;;
  esac
  echo "smoke: cmake --build --target $target passed in $(( $(date +%s) - target_start )) s"
done
cmake --build "$cmake_build" --target local_vm_ssh2 </dev/null >/dev/null 2>&1 ||
  { echo "smoke: cmake target local_vm_ssh2 failed" >&2; exit 1; }
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["vm_names"]==["vm1","vm2"], o; print("smoke: cmake local_vm_deploy/outputs wrote", sys.argv[1])' "$cmake_build/local-deployment-outputs.json"
rm -rf "$cmake_build"

step "config drift is shown and not applied without -y"
drift_config=$(mktemp /tmp/dpdkhost-smoke-drift.XXXXXX.toml)
printf 'memory_mb = 1536\n' > "$drift_config"
drift_plan=$("$bin" --env "$env_name" --config "$drift_config" plan 2>&1)
grep -q "~ vm1: memory_mb 1024 -> 1536: replaces vm1" <<<"$drift_plan" || { echo "$drift_plan" >&2; exit 1; }
if drift_up=$("$bin" --env "$env_name" --config "$drift_config" up --no-kvm </dev/null 2>&1); then
  echo "smoke: up applied a memory_mb change without -y" >&2; exit 1
fi
rm -f "$drift_config"
grep -q "not applied: memory_mb changed" <<<"$drift_up" || { echo "$drift_up" >&2; exit 1; }
echo "smoke: plan names memory_mb 1024 -> 1536 per VM; up without -y refused"

step "up again: no changes"
out=$(dpdkhost up -y --no-kvm 2>&1)
echo "$out" | tail -n 3
if ! grep -q "no changes" <<<"$out"; then
  # The whole output names the actions planned; libvirt's view shows why.
  echo "smoke: second up changed something; its output:" >&2
  echo "$out" >&2
  virsh -c "$uri" list --all >&2 || true
  exit 1
fi

step "selftest (each agent through its peer's reflector)"
dpdkhost selftest

step "dpdk-agent --selftest inside vm1: through the serving agent, round trip via idle vm2"
selftest_out=$(dpdkhost ssh 1 -- sudo dpdk-agent --selftest 2>&1) || { echo "$selftest_out" >&2; exit 1; }
echo "$selftest_out" | tail -n 4
grep -qi "round trip" <<<"$selftest_out" || { echo "smoke: no round-trip check in: $selftest_out" >&2; exit 1; }

step "a second DPDK process on the agent's device is refused, naming the holder"
if hand_out=$(dpdkhost ssh 1 -- sudo dpdk-agent --selftest --device 0000:00:03.0 --ip 10.0.1.4/24 --peer 10.0.1.6 2>&1); then
  echo "smoke: a selftest on the serving agent's device was not refused: $hand_out" >&2; exit 1
fi
grep -q "dpdk-agent serve" <<<"$hand_out" || { echo "smoke: the refusal does not name the holder: $hand_out" >&2; exit 1; }
echo "smoke: $(grep -m1 "dpdk-agent serve" <<<"$hand_out")"

step "run pingpong --count 500 (right after the in-VM selftests: nothing lost)"
dpdkhost run pingpong --count 500 --json --results "$results" > "$results/pingpong.json"
python3 - "$results/pingpong.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["result"]["agent"]
assert run["sent"] == 500 and run["received"] == 500 and run["lost"] == 0, run
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
          f"lost {lost}: link {d['link_drops']}, imissed {d['imissed']}, rx_nombuf {d['rx_nombuf']}")
PY

step "bench --pps --rate 20000: paced within 2 % over the trial"
dpdkhost bench --pps --rate 20000 --duration 5 --json --results "$results" > "$results/bench-paced.json"
python3 - "$results/bench-paced.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["result"]["agent"][0]
assert d["target_pps"] == 20000 and abs(d["pacing_error"]) < 0.02, d
print(f"smoke: paced at 20000 pps: offered {d['offered_pps']:.0f} pps over {d['send_ns']/1e9:.3f} s, "
      f"pacing error {d['pacing_error']*100:+.2f} %")
PY

step "bench --pps --search --latency: NDR and PDR at 64 B, round trips at 0/10/50/90 % of PDR"
dpdkhost bench --pps --search --size 64 --precision 0.05 --final-trial 5s --latency --latency-duration 2s --json --results "$results" > "$results/bench-search.json"
ndr=$(python3 - "$results/bench-search.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["result"]
ndr, pdr = run["ndr_pps"], run["pdr_pps"]
assert ndr > 0 and pdr >= ndr, (ndr, pdr)
size = run["search"][0]
trials = [t for s in size["searches"] for t in s["trials"]] + [l["trial"] for l in size["latency"]]
for trial in trials:
    for d in trial["directions"]:
        lost = d["tx_packets"] - d["rx_packets"]
        counted = d["imissed"] + d["rx_nombuf"] + d["ierrors"] + d["link_drops"]
        # Every lost packet is seen by a counter (the link's socket also drops probes,
        # so the counters may see a few more than the load lost).
        assert d["unaccounted"] == 0 and lost <= counted, (trial["phase"], d)
finals = [t for t in size["searches"][0]["trials"] if t["phase"] == "final"]
# The search's own confirming trial: --final-trial 5s at the NDR, nothing lost.
assert any(t["target_pps"] in (None, ndr) and t["duration_ns"] == 5 * 10**9 and t["loss_ratio"] == 0
           for t in finals), finals
levels = [l["percent_of_pdr"] for l in size["latency"]]
assert levels == [0, 10, 50, 90], levels
for level in size["latency"]:
    latency = level["trial"]["directions"][0]["latency"]
    assert latency["returned"] > 0 and latency["rtt"]["p50_ns"] > 0, level
    assert "TSC" in latency["timestamp_source"]
print(f"{ndr:.0f}")
summary = ", ".join(f"{l['percent_of_pdr']} %: p50 {l['trial']['directions'][0]['latency']['rtt']['p50_ns']/1000:.0f} us"
                    for l in size["latency"])
print(f"smoke: NDR {ndr:.0f} pps, PDR {pdr:.0f} pps at 64 B in {len(trials)} trials; rtt {summary}", file=sys.stderr)
PY
)
ls "$results"/*-bench-64B-*pct-*.hgrm >/dev/null

# Under TCG the host's UDP socket drops a few packets now and then at any load, so a
# repeated trial at the NDR is held to the PDR's goal, and twice the NDR must lose more.
step "5 s again at the NDR ($ndr pps) stays within the PDR goal; at twice the NDR it loses more"
dpdkhost bench --pps --rate "$ndr" --duration 5 --json --results "$results" > "$results/bench-at-ndr.json"
dpdkhost bench --pps --rate "$((ndr * 2))" --duration 5 --json --results "$results" > "$results/bench-at-2ndr.json"
python3 - "$results/bench-at-ndr.json" "$results/bench-at-2ndr.json" <<'PY'
import json, sys
at, twice = (json.load(open(path))["result"]["agent"][0] for path in sys.argv[1:3])
lost = lambda d: d["tx_packets"] - d["rx_packets"]
assert lost(at) <= 0.005 * at["tx_packets"] and at["unaccounted"] == 0, at
assert lost(twice) > lost(at), (at, twice)
print(f"smoke: at NDR lost {lost(at)} of {at['tx_packets']}; at 2x NDR lost {lost(twice)} of {twice['tx_packets']} "
      f"(link {twice['link_drops']}, imissed {twice['imissed']}, unaccounted {twice['unaccounted']})")
PY

step "bench --expect-pps: the gate fails a rate below the floor, naming both numbers"
if dpdkhost bench --pps --duration 2 --expect-pps 1000000000 --results "$results" > "$results/gate.txt" 2>&1; then
  echo "smoke: the gate passed 1e9 pps" >&2; exit 1
fi
grep -q "gate FAILED: rx_pps .* < 950000000" "$results/gate.txt" || { cat "$results/gate.txt" >&2; exit 1; }
grep "gate FAILED" "$results/gate.txt"

step "run pingpong --baseline kernel (NICs to the kernel and back)"
dpdkhost run pingpong --count 200 --baseline kernel --json --results "$results" > "$results/pingpong-kernel.json"
python3 - "$results/pingpong-kernel.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["result"]
agent, kernel = run["agent"], run["baseline"]
assert kernel["method"] == "kernel" and kernel["received"] > 0, kernel
assert agent["received"] == agent["sent"] == 200, agent
a, k = agent["rtt"], kernel["rtt"]
print(f"smoke: agent p50 {a['p50_ns']/1000:.1f} us p99 {a['p99_ns']/1000:.1f} us; "
      f"kernel p50 {k['p50_ns']/1000:.1f} us p99 {k['p99_ns']/1000:.1f} us; "
      f"ratio agent/kernel p50 {a['p50_ns']/k['p50_ns']:.2f} p99 {a['p99_ns']/k['p99_ns']:.2f}")
PY

step "bench --pps --baseline testpmd --rounds 2 (alternating; port handed to dpdk-testpmd and back)"
dpdkhost bench --pps --duration 3 --baseline testpmd --rounds 2 --json --results "$results" > "$results/bench-testpmd.json"
python3 - "$results/bench-testpmd.json" <<'PY'
import json, statistics, sys
run = json.load(open(sys.argv[1]))["result"]
rounds = run["rounds"]
assert [r["first"] for r in rounds] == ["agent", "testpmd"], rounds
for r in rounds:
    agent, testpmd = r["agent"], r["testpmd"]
    assert testpmd["method"] == "testpmd" and testpmd["tx_packets"] > 0 and testpmd["rx_packets"] > 0, testpmd
    assert testpmd["unaccounted"] == 0, testpmd
    assert abs(r["rx_ratio"] - agent["rx_pps"] / testpmd["rx_pps"]) < 1e-9, r
    print(f"smoke: round {r['round']} ({r['first']} first): agent tx {agent['tx_pps']:.0f} rx {agent['rx_pps']:.0f} pps; "
          f"testpmd tx {testpmd['tx_pps']:.0f} rx {testpmd['rx_pps']:.0f} pps; ratio tx={r['tx_ratio']:.2f} rx={r['rx_ratio']:.2f}")
assert abs(run["median_rx_ratio"] - statistics.median(r["rx_ratio"] for r in rounds)) < 1e-9, run
print(f"smoke: ratio agent/testpmd, median of 2 rounds: tx={run['median_tx_ratio']:.2f} rx={run['median_rx_ratio']:.2f}")
PY

step "port release 2: EAL arguments, MAC and IP for an application; status shows who holds the port"
dpdkhost port release 2 --json > "$results/port-release.json"
python3 - "$results/port-release.json" <<'PY'
import json, sys
grant = json.load(open(sys.argv[1]))
assert grant["vm"] == "vm2" and "-a" in grant["eal_args"] and "-m" in grant["eal_args"], grant
assert any(a.startswith("--file-prefix") for a in grant["eal_args"]), grant
assert grant["peer"]["vm"] == "vm1" and grant["ip"] and grant["mac"], grant
print(f"smoke: vm2 released: EAL {grant['eal']}; peer {grant['peer']['vm']} {grant['peer']['mac']} {grant['peer']['ip']}")
PY
# status exits 3 while an agent is not SERVING, as vm2's is with its port released.
{ dpdkhost status --json || [ $? = 3 ]; } | python3 -c 'import json,sys; h=[v["port_holder"] for v in json.load(sys.stdin)["vms"]]; assert h == ["agent", "released"], h'
if dpdkhost port release 2 > "$results/port-twice.txt" 2>&1; then echo "smoke: a released port was released again" >&2; exit 1; fi
grep -q "already released" "$results/port-twice.txt" || { cat "$results/port-twice.txt" >&2; exit 1; }
dpdkhost port acquire 2
dpdkhost status --json | python3 -c 'import json,sys; h=[v["port_holder"] for v in json.load(sys.stdin)["vms"]]; assert h == ["agent", "agent"], h'

step "cp: a file into vm2 keeps its mode, and comes back out the same"
printf '#!/bin/sh\necho copied\n' > "$results/cp-probe.sh"
chmod 750 "$results/cp-probe.sh"
dpdkhost cp "$results/cp-probe.sh" 2:/tmp/
[ "$(dpdkhost exec 2 -- /tmp/cp-probe.sh)" = copied ] || { echo "smoke: the copied script did not run" >&2; exit 1; }
[ "$(dpdkhost exec 2 -- stat -c %a /tmp/cp-probe.sh)" = 750 ] || { echo "smoke: mode lost" >&2; exit 1; }
dpdkhost cp 2:/tmp/cp-probe.sh "$results/cp-back.sh"
cmp "$results/cp-probe.sh" "$results/cp-back.sh"
if dpdkhost cp 2:/nonexistent "$results/none" 2>"$results/cp-missing.txt"; then echo "smoke: a missing file was copied" >&2; exit 1; fi
[ ! -e "$results/none" ] || { echo "smoke: a failed copy left a file" >&2; exit 1; }

# The port is back with the agent: vm2's agent reflects vm1's ping-pong again.
port_is_back() {
  if dpdkhost exec 2 -- pgrep -x dpdk-testpmd; then echo "smoke: testpmd still runs in vm2" >&2; exit 1; fi
  dpdkhost status --json | python3 -c 'import json,sys; h=[v["port_holder"] for v in json.load(sys.stdin)["vms"]]; assert h == ["agent", "agent"], h'
  dpdkhost run pingpong --count 20 --json --results "$results" > "$results/pingpong-after-exec.json"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["result"]["agent"]; assert r["received"] == 20, r' "$results/pingpong-after-exec.json"
}
testpmd_cmd='dpdk-testpmd {eal} -- --total-num-mbufs=8192 --forward-mode=io --stats-period=1'
# Until testpmd in vm2 prints its statistics (it runs and forwards), at most 60 s.
wait_for_testpmd() {
  for _ in $(seq 1 60); do
    grep -q "Tx-pps" "$1" 2>/dev/null && return 0
    sleep 1
  done
  echo "smoke: testpmd did not start: $(cat "$1")" >&2; exit 1
}

step "exec 2 --dpdk: dpdk-testpmd on the released port; the port comes back after it exits"
dpdkhost exec 2 --dpdk -- 'test -n "$DPDKHOST_EAL" && test -n "$DPDKHOST_PEER_MAC" && dpdk-testpmd {eal} -- --total-num-mbufs=8192 --forward-mode=io </dev/null' > "$results/exec-exit.txt" 2>&1 \
  || { cat "$results/exec-exit.txt" >&2; exit 1; }
grep -q "Press enter to exit\|Bye" "$results/exec-exit.txt" || { cat "$results/exec-exit.txt" >&2; exit 1; }
port_is_back

step "exec 2 --dpdk: after the command crashes (SIGSEGV), the status is its and the port comes back"
set +e
dpdkhost exec 2 --dpdk -- "$testpmd_cmd & sleep 8; kill -SEGV \$!; wait \$!" > "$results/exec-crash.txt" 2>&1
status=$?
set -e
[ "$status" = 139 ] || { echo "smoke: exec after a crash exited $status, not 139" >&2; cat "$results/exec-crash.txt" >&2; exit 1; }
port_is_back

step "exec 2 --dpdk: after the command is killed from outside, and after its ssh is lost"
"$bin" --env "$env_name" exec 2 --dpdk -- "$testpmd_cmd" > "$results/exec-killed.txt" 2>&1 &
exec_pid=$!
wait_for_testpmd "$results/exec-killed.txt"
dpdkhost exec 2 -- sudo pkill -KILL -x dpdk-testpmd
set +e; wait "$exec_pid"; status=$?; set -e
[ "$status" = 137 ] || { echo "smoke: exec after kill exited $status" >&2; cat "$results/exec-killed.txt" >&2; exit 1; }
port_is_back
"$bin" --env "$env_name" exec 2 --dpdk -- "$testpmd_cmd" > "$results/exec-lost.txt" 2>&1 &
exec_pid=$!
wait_for_testpmd "$results/exec-lost.txt"
ssh_pid=$(pgrep -P "$exec_pid" -x ssh)
kill -KILL "$ssh_pid"
set +e; wait "$exec_pid"; status=$?; set -e
grep -q "exec: command \(exited\|terminated\|killed\); vm2's agent holds its data port again" "$results/exec-lost.txt" \
  || { echo "smoke: exit $status" >&2; cat "$results/exec-lost.txt" >&2; exit 1; }
port_is_back
"$bin" --env "$env_name" exec 2 --dpdk -- "$testpmd_cmd" > "$results/exec-int.txt" 2>&1 &
exec_pid=$!
wait_for_testpmd "$results/exec-int.txt"
kill -INT "$exec_pid"
set +e; wait "$exec_pid"; set -e
grep -q "interrupted" "$results/exec-int.txt" || { cat "$results/exec-int.txt" >&2; exit 1; }
port_is_back
echo "smoke: exec --dpdk gave the port back after exit, crash (139), kill (137), lost ssh and Ctrl-C"

step "exec: bad input is refused, the agents left serving"
if dpdkhost exec 2 --dpdk -- no-such-command-dpdkhost > "$results/exec-missing.txt" 2>&1; then echo "smoke: a missing command succeeded" >&2; exit 1; fi
port_is_back
if dpdkhost exec 9 -- true 2> "$results/exec-novm.txt"; then echo "smoke: exec on vm9" >&2; exit 1; fi
grep -q "vm1, vm2" "$results/exec-novm.txt" || { cat "$results/exec-novm.txt" >&2; exit 1; }

step "bench --through 2: dpdk-testpmd 5tswap in vm2 as the DUT, vm1's agent as the traffic generator"
dpdkhost bench --pps --through 2 --rate 10000 --duration 5 --json --results "$results" > "$results/bench-through.json"
python3 - "$results/bench-through.json" 5tswap <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["result"]
d, dut = run["agent"][0], run["dut"]
assert (d["from"], d["through"], d["to"]) == (1, 2, 1), d
assert d["tx_packets"] > 0 and d["rx_packets"] > 0 and d["unaccounted"] == 0, d
counters = d["dut"]["port"]
# The DUT received what the first leg delivered, and sent on what it did not drop.
assert counters["ipackets"] > 0 and counters["opackets"] >= d["rx_packets"], d
assert d["dut"]["source"].startswith("telemetry /ethdev/stats"), d
assert "forward-mode=" + sys.argv[2] in dut["command"] and dut["ended"] == "terminated", dut
assert "Set " + sys.argv[2] + " packet forwarding mode" in dut["output"], dut["output"]
lost = d["tx_packets"] - d["rx_packets"]
print(f"smoke: through testpmd {sys.argv[2]}: sent {d['tx_packets']} received {d['rx_packets']} lost {lost} "
      f"(link {d['link_drops']}, DUT imissed {counters['imissed']} rx_nombuf {counters['rx_nombuf']} "
      f"not forwarded {d['dut']['forward_drops']}, unaccounted {d['unaccounted']}); DUT rx {counters['ipackets']} tx {counters['opackets']}")
PY
port_is_back

step "bench --through 2 --app macswap --latency: only the MACs swapped, the probes still come back"
dpdkhost bench --pps --through 2 --rate 10000 --duration 3 --latency \
  --app 'dpdk-testpmd {eal} -- --total-num-mbufs=8192 --forward-mode=macswap' \
  --json --results "$results" > "$results/bench-through-macswap.json"
python3 - "$results/bench-through-macswap.json" macswap <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["result"]
d = run["agent"][0]
assert d["rx_packets"] > 0 and d["unaccounted"] == 0, d
assert "forward-mode=macswap" in run["dut"]["command"], run["dut"]
latency = d["latency"]
assert latency["returned"] > 0 and latency["rtt"]["p50_ns"] > 0, latency
print(f"smoke: through testpmd macswap: sent {d['tx_packets']} received {d['rx_packets']}, unaccounted 0; "
      f"{latency['returned']} of {latency['sent']} probes back, p50 {latency['rtt']['p50_ns']/1000:.0f} us")
PY

step "run pingpong --through 2: round trips through testpmd in vm2"
dpdkhost run pingpong --through 2 --count 200 --json --results "$results" > "$results/pingpong-through.json"
python3 - "$results/pingpong-through.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["result"]
side = run["agent"]
assert run["through"] == 2 and side["received"] > 0 and side["rtt"]["p50_ns"] > 0, run
print(f"smoke: pingpong through testpmd: {side['received']} of {side['sent']} back, "
      f"p50 {side['rtt']['p50_ns']/1000:.1f} us p99 {side['rtt']['p99_ns']/1000:.1f} us")
PY
port_is_back

step "bench --through: the DUT killed mid-bench stops the bench, saying so; bad input refused"
"$bin" --env "$env_name" bench --pps --through 2 --rate 5000 --duration 60 --results "$results" > "$results/through-killed.txt" 2>&1 &
through_pid=$!
for _ in $(seq 1 60); do
  grep -q "second" "$results/through-killed.txt" && break
  sleep 1
done
dpdkhost exec 2 -- sudo pkill -KILL -x dpdk-testpmd
set +e; wait "$through_pid"; status=$?; set -e
[ "$status" != 0 ] || { echo "smoke: the bench went on after its DUT was killed" >&2; exit 1; }
grep -q "the application in vm2 ended" "$results/through-killed.txt" || { cat "$results/through-killed.txt" >&2; exit 1; }
port_is_back
if dpdkhost bench --pps --through 1 --duration 2 > "$results/through-sender.txt" 2>&1; then echo "smoke: --through the sender ran" >&2; exit 1; fi
grep -q "names the sending VM" "$results/through-sender.txt" || { cat "$results/through-sender.txt" >&2; exit 1; }
if dpdkhost bench --pps --through 2 --duration 2 --app 'no-such-dut-dpdkhost {eal}' > "$results/through-missing.txt" 2>&1; then
  echo "smoke: a missing DUT application was measured" >&2; exit 1
fi
grep -q "did not come up" "$results/through-missing.txt" || { cat "$results/through-missing.txt" >&2; exit 1; }
port_is_back
echo "smoke: a killed DUT stopped the bench; --through the sender and a missing application refused, the port back each time"

step "one mutating command at a time: down while a bench runs is refused, naming it"
"$bin" --env "$env_name" bench --pps --duration 6 --results "$results" >/dev/null 2>&1 &
bench_pid=$!
# Only once this bench holds the lock (its own pid in the lock file): a down that came
# first would take the lab down.
lock_file=$HOME/.local/state/dpdkhost/$env_name.lock
for _ in $(seq 1 100); do
  grep -q "\"pid\":$bench_pid," "$lock_file" 2>/dev/null && break
  sleep 0.05
done
held=
for _ in $(seq 1 50); do
  if out=$(dpdkhost down -y 2>&1); then
    echo "smoke: down ran while a bench was running" >&2; kill "$bench_pid"; exit 1
  fi
  if grep -q "is busy" <<<"$out"; then held=$out; break; fi
  sleep 0.1
done
wait "$bench_pid"
if [ -z "$held" ]; then echo "smoke: down never reported the lock: $out" >&2; exit 1; fi
grep -q "bench" <<<"$held" || { echo "smoke: $held" >&2; exit 1; }
echo "smoke: $held"

step "agents still serving after the workloads"
dpdkhost status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert all(vm["agent_health"] == "SERVING" for vm in s["vms"]), s'

step "down -y"
dpdkhost down -y
expect_nothing_left

if [ -z "${SMOKE_SKIP_KILL:-}" ]; then
  step "up interrupted part-way, then down"
  # Fixed moments (image upload, seeds, domain start) and one at random, by SIGINT
  # (Ctrl-C) and by SIGKILL.
  for kill in INT:0.8 KILL:0.3 KILL:1.3 INT:5 KILL:$((RANDOM % 20 + 1)); do
    signal=${kill%%:*} delay=${kill#*:}
    # The binary itself in the background (not the shell function): $! is then its
    # PID, and the signal reaches up, not a subshell that would leave it running.
    "$bin" --env "$env_name" up -y --no-kvm >/dev/null 2>&1 &
    up_pid=$!
    sleep "$delay"
    kill -"$signal" "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
    up_pid=
    echo "smoke: SIG$signal to up after ${delay} s; before down: $(leftovers | tr '\n' ' ')"
    dpdkhost down -y >/dev/null
    expect_nothing_left
  done
fi

step "passed"
