#!/usr/bin/env bash
# Pacing error of the agent's bench: a net_memif pair between two processes (no
# hugepages), 64-byte frames, receiver on CPU 1, sender on CPU 0 paced at each of RATES.
# First one unpaced trial gives the sender's maximum on this link; then each rate runs
# ROUNDS times. A trial's pacing error is (packets sent / time sent) / rate - 1, both
# from the sender's own counters (`counters.tx_packets`, `counters.send_elapsed`);
# a rate above the maximum is reported as unreachable rather than as an error.
# Ends with one line per rate:
#   rate <R> pps: offered <median> pps, pacing error median <e> % (min <a> %, max <b> %)
# A benchmark, not a test: a shared 2-core machine is noisy.
#
# Environment: RATES (pps, space-separated; default "10000 100000 1000000"), ROUNDS
# (1..=50, default 3), DURATION (s, 1..=600, default 3), AGENT (default
# target/release/dpdk-agent, built when missing).
# Stops by itself; on exit it kills only the processes it started.
set -euo pipefail

RATES=${RATES:-10000 100000 1000000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-3}

# check_range, wait_for_socket, cleanup, ensure_agent
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"
check_range ROUNDS "$ROUNDS" 1 50
check_range DURATION "$DURATION" 1 600
for rate in $RATES; do check_range "rate in RATES" "$rate" 1 100000000; done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGENT=${AGENT:-$ROOT/target/release/dpdk-agent}
WORK=$(mktemp -d /tmp/pacing.XXXXXX)
PIDS=()

export RUNTIME_PREFIX=pacing
trap cleanup EXIT
trap 'exit 130' INT TERM
ensure_agent

EAL_COMMON="--no-huge --no-pci -m 256"
memif_vdev() { echo "net_memif0,role=$1,socket=$2,socket-abstract=no"; }
trial=0

# One trial at rate $1 (0: unpaced); prints "<tx_packets> <send_seconds>".
run_trial() {
    local rate=$1 rate_args=()
    trial=$((trial + 1))
    [ "$rate" != 0 ] && rate_args=(--rate "$rate")
    local sock="$WORK/t$trial.sock"
    "$AGENT" bench --eal "$EAL_COMMON -l 1 --file-prefix=pacing-rx-$$-$trial --vdev=$(memif_vdev server "$sock")" \
        --device net_memif0 --ip 198.18.0.2/24 --mode rx --duration $((DURATION + 4)) --json \
        >"$WORK/rx.json" 2>"$WORK/rx.log" &
    local rx_pid=$!
    PIDS+=("$rx_pid")
    wait_for_socket "$sock"
    "$AGENT" bench --eal "$EAL_COMMON -l 0 --file-prefix=pacing-tx-$$-$trial --vdev=$(memif_vdev client "$sock")" \
        --device net_memif0 --ip 198.18.0.1/24 --mode tx --peer 198.18.0.2 --size 64 \
        "${rate_args[@]}" --duration "$DURATION" --json >"$WORK/tx.json" 2>"$WORK/tx.log" ||
        { echo "agent tx failed:" >&2; cat "$WORK/tx.log" >&2; exit 1; }
    wait "$rx_pid" || { echo "agent rx failed:" >&2; cat "$WORK/rx.log" >&2; exit 1; }
    jq -r '"\(.counters.tx_packets) \(.counters.send_elapsed)"' "$WORK/tx.json"
}

read -r max_packets max_secs < <(run_trial 0)
max_pps=$(python3 -c "print(round($max_packets / $max_secs))")
echo "sender maximum (unpaced, $DURATION s): $max_pps pps" >&2

for rate in $RATES; do
    errors=() offered=()
    for round in $(seq 1 "$ROUNDS"); do
        read -r packets secs < <(run_trial "$rate")
        pps=$(python3 -c "print(round($packets / $secs))")
        error=$(python3 -c "print(f'{($packets / $secs / $rate - 1) * 100:+.3f}')")
        echo "  rate $rate round $round: sent $packets in $secs s = $pps pps, pacing error $error %" >&2
        errors+=("$error") offered+=("$pps")
    done
    python3 - "$rate" "$max_pps" "${offered[*]}" "${errors[*]}" <<'PY'
import statistics, sys
rate, maximum = int(sys.argv[1]), int(sys.argv[2])
offered = [float(v) for v in sys.argv[3].split()]
errors = [float(v) for v in sys.argv[4].split()]
note = "" if rate <= maximum else f" (above the sender's maximum {maximum} pps: unreachable)"
print(f"rate {rate} pps: offered {statistics.median(offered):.0f} pps, pacing error median "
      f"{statistics.median(errors):+.3f} % (min {min(errors):+.3f} %, max {max(errors):+.3f} %){note}")
PY
done
