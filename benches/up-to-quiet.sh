#!/usr/bin/env bash
# How long `up` takes until every agent serves and every guest is quiet (cloud-init
# finished), over ROUNDS fresh labs (image cached, TCG), and whether a bench started
# right after `up` measures what a later one does: per round, BENCHES benches of
# DURATION s back to back, each with the testpmd baseline, and the first's
# agent/testpmd ratio against the last's. Ends with the guests' boot as systemd saw it
# (systemd-analyze, blame, the seed unit) from the last round's vm1.
# A benchmark, not a test: on a shared 2-core host the figures are noisy.
#
# Root; libvirtd running; release builds of dpdkhost and dpdk-agent; the image built.
# Environment: ROUNDS (1..=10, default 3), BENCHES (2..=5, default 3), DURATION (2..=30,
# default 4), BENCH_ENV (default upbench). Tears the lab down on every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
BENCHES=${BENCHES:-3}
DURATION=${DURATION:-4}
env_name=${BENCH_ENV:-upbench}
bin=${DPDKHOST_BIN:-target/release/dpdkhost}
in_range() {
  case $2 in '' | *[!0-9]*) echo "up-to-quiet: $1 must be a whole number $3..=$4, got '$2'" >&2; exit 2 ;; esac
  if [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then
    echo "up-to-quiet: $1 must be $3..=$4, got $2" >&2; exit 2
  fi
}
in_range ROUNDS "$ROUNDS" 1 10
in_range BENCHES "$BENCHES" 2 5
in_range DURATION "$DURATION" 2 30
dpdkhost() { "$bin" --env "$env_name" "$@"; }

exec 9>/tmp/dpdkhost-lab.lock
flock 9
out=$(mktemp -d /tmp/dpdkhost-upbench.XXXXXX)
trap 'dpdkhost down -y >/dev/null 2>&1 || true; rm -rf "$out"' EXIT

for round in $(seq 1 "$ROUNDS"); do
  dpdkhost down -y >/dev/null 2>&1 || true
  dpdkhost up -y --no-kvm --json > "$out/up.json"
  for n in $(seq 1 "$BENCHES"); do
    dpdkhost bench --pps --duration "$DURATION" --baseline testpmd --json --results "$out/results" > "$out/bench$n.json"
  done
  python3 - "$out" "$round" "$BENCHES" <<'PY'
import json, sys
out, round_, benches = sys.argv[1], sys.argv[2], int(sys.argv[3])
up = json.load(open(f"{out}/up.json"))
def ratio(n):
    r = json.load(open(f"{out}/bench{n}.json"))["result"]
    a, t = r["agent"][0], r["baseline"][0]
    return a["tx_pps"] / t["tx_pps"], a["rx_pps"] / t["rx_pps"]
ratios = [ratio(n) for n in range(1, benches + 1)]
loads = ", ".join("%s %.2f" % (g["vm"], g["load1"]) for g in up["guests"])
print("round %s: SERVING %.1f s, quiet %s s (load %s); agent/testpmd per bench: %s; first/last rx %.2f"
      % (round_, up["serving_after_s"], "%.1f" % up["quiet_after_s"] if up["quiet_after_s"] else "never",
         loads, " ".join("%.2f/%.2f" % r for r in ratios), ratios[0][1] / ratios[-1][1]))
PY
done

echo "--- vm1's boot (last round), systemd-analyze"
dpdkhost ssh 1 -- sudo systemd-analyze || true
dpdkhost ssh 1 -- 'sudo systemd-analyze blame | head -n 12' || true
dpdkhost ssh 1 -- 'sudo systemd-analyze critical-chain dpdk-agent.service' || true
dpdkhost ssh 1 -- 'sudo journalctl -b -o short-monotonic -u dpdkhost-seed.service | tail -n 8' || true
