#!/usr/bin/env bash
# Packet rate of the agent's bench workload against dpdk-testpmd on the same virtual
# link: a net_memif pair between two processes (no hugepages), 64-byte frames, sender
# on CPU 0 and receiver on CPU 1. First agent tx -> agent rx, then testpmd txonly ->
# rxonly, each for DURATION seconds (testpmd with two lcores on one CPU each side). Rates are the median of the per-second rates
# (robust against the partial first and last seconds). Ends with the line
#   ratio agent/testpmd: tx=<x> rx=<y>
# A benchmark, not a test: figures on a shared 2-core machine are noisy.
#
# Both tools move BURST packets per tx and per rx burst (default 32, testpmd's default).
#
# Environment: DURATION (s, default 10), BURST (1..=64, default 32), ROUNDS (default 1; rounds alternate agent
# and testpmd, and the final figures are medians over rounds), AGENT (default target/release/dpdk-agent,
# built when missing), TESTPMD (default dpdk-testpmd, Debian package dpdk-dev).
# Stops by itself; on exit it kills only the processes it started.
set -euo pipefail

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-1}
BURST=${BURST:-32}
SIZE=64
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGENT=${AGENT:-$ROOT/target/release/dpdk-agent}
TESTPMD=${TESTPMD:-dpdk-testpmd}
WORK=$(mktemp -d /tmp/vs-testpmd.XXXXXX)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -x "$AGENT" ]; then
    echo "building $AGENT" >&2
    (cd "$ROOT" && cargo build --release -p dpdk-agent)
fi
if ! command -v "$TESTPMD" >/dev/null; then
    echo "error: $TESTPMD not found (Debian: apt-get install dpdk-dev)" >&2
    exit 1
fi

# Waits for a memif server's socket file: the client does not retry a connection.
wait_for_socket() {
    for _ in $(seq 1 300); do
        [ -S "$1" ] && return 0
        sleep 0.05
    done
    echo "error: no memif socket $1 after 15 s" >&2
    exit 1
}

# Records the peak RSS (VmHWM, kB) of a PID into a file until the PID exits.
sample_peak_rss() {
    local pid=$1 out=$2 peak=0 hwm
    while kill -0 "$pid" 2>/dev/null; do
        hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        if [ -n "$hwm" ] && [ "$hwm" -gt "$peak" ]; then peak=$hwm; fi
        echo "$peak" >"$out"
        sleep 0.2
    done
}

hugepages_free() { awk '/^HugePages_Free:/ {print $2}' /proc/meminfo; }
hugepage_kb() { awk '/^Hugepagesize:/ {print $2}' /proc/meminfo; }

# Median of the positive numbers on stdin (0 when none).
median() {
    python3 -c '
import statistics, sys
values = [float(v) for v in sys.stdin.read().split() if float(v) > 0]
print(int(statistics.median(values)) if values else 0)'
}

memif() { echo "net_memif0,role=$1,socket=$WORK/$2.sock,socket-abstract=no"; }
EAL_COMMON="--no-huge --no-pci -m 256"

AGENT_TX=() AGENT_RX=() TP_TX=() TP_RX=()

run_agent() {
    local round=$1
    echo "== round $round: agent bench tx -> bench rx, ${SIZE}-byte frames, burst ${BURST}, ${DURATION} s" >&2
    huge_before=$(hugepages_free)
    "$AGENT" bench --eal "$EAL_COMMON -l 1 --file-prefix=vs-agent-rx-$$-$round --vdev=$(memif server agent-$round)" \
        --device net_memif0 --ip 198.18.0.2/24 --mode rx --burst "$BURST" --duration $((DURATION + 4)) --json \
        >"$WORK/agent-rx.json" 2>"$WORK/agent-rx.log" &
    rx_pid=$!
    PIDS+=("$rx_pid")
    sample_peak_rss "$rx_pid" "$WORK/agent-rx.rss" &
    PIDS+=("$!")
    wait_for_socket "$WORK/agent-$round.sock"
    "$AGENT" bench --eal "$EAL_COMMON -l 0 --file-prefix=vs-agent-tx-$$-$round --vdev=$(memif client agent-$round)" \
        --device net_memif0 --ip 198.18.0.1/24 --mode tx --peer 198.18.0.2 --size "$SIZE" --burst "$BURST" \
        --duration "$DURATION" --json >"$WORK/agent-tx.json" 2>"$WORK/agent-tx.log" &
    tx_pid=$!
    PIDS+=("$tx_pid")
    sample_peak_rss "$tx_pid" "$WORK/agent-tx.rss" &
    PIDS+=("$!")
    huge_during=$(hugepages_free)
    wait "$tx_pid" || { echo "agent tx failed:" >&2; cat "$WORK/agent-tx.log" >&2; exit 1; }
    wait "$rx_pid" || { echo "agent rx failed:" >&2; cat "$WORK/agent-rx.log" >&2; exit 1; }

    agent_tx_pps=$(jq -r '.per_second[].tx_pps' "$WORK/agent-tx.json" | median)
    agent_rx_pps=$(jq -r '.per_second[].rx_pps' "$WORK/agent-rx.json" | median)
    agent_tx_total=$(jq -r '.counters.tx_packets' "$WORK/agent-tx.json")
    agent_rx_total=$(jq -r '.counters.rx_packets' "$WORK/agent-rx.json")
    agent_ring_full=$(jq -r '.counters.tx_ring_full' "$WORK/agent-tx.json")
    agent_rx_lost=$(jq -r '[.port.imissed, .port.rx_nombuf] | add' "$WORK/agent-rx.json")
    agent_gaps=$(jq -r '.counters.rx_seq_gaps' "$WORK/agent-rx.json")
    AGENT_TX+=("$agent_tx_pps")
    AGENT_RX+=("$agent_rx_pps")
}

run_testpmd() {
    local round=$1
    echo "== round $round: testpmd txonly -> rxonly, ${SIZE}-byte frames, burst ${BURST}, ${DURATION} s" >&2
    timeout -s INT $((DURATION + 4)) "$TESTPMD" $EAL_COMMON --lcores=0@1,1@1 \
        --file-prefix=vs-tp-rx-$$-$round --vdev="$(memif server testpmd-$round)" -- \
        --forward-mode=rxonly --burst="$BURST" --total-num-mbufs=16384 --stats-period=1 \
        </dev/null >"$WORK/testpmd-rx.log" 2>&1 &
    tp_rx_pid=$!
    PIDS+=("$tp_rx_pid")
    wait_for_socket "$WORK/testpmd-$round.sock"
    timeout -s INT "$DURATION" "$TESTPMD" $EAL_COMMON --lcores=0@0,1@0 \
        --file-prefix=vs-tp-tx-$$-$round --vdev="$(memif client testpmd-$round)" -- \
        --forward-mode=txonly --txpkts="$SIZE" --burst="$BURST" --total-num-mbufs=16384 --stats-period=1 \
        </dev/null >"$WORK/testpmd-tx.log" 2>&1 &
    tp_tx_pid=$!
    PIDS+=("$tp_tx_pid")
    wait "$tp_tx_pid" || true # timeout's status when it had to interrupt testpmd
    wait "$tp_rx_pid" || true

    # testpmd prints per-port "Rx-pps: N  Rx-bps: M" / "Tx-pps: ..." every second.
    tp_tx_pps=$(grep -a -o 'Tx-pps: *[0-9]*' "$WORK/testpmd-tx.log" | awk '{print $2}' | median)
    tp_rx_pps=$(grep -a -o 'Rx-pps: *[0-9]*' "$WORK/testpmd-rx.log" | awk '{print $2}' | median)
    if [ "$tp_tx_pps" = 0 ] || [ "$tp_rx_pps" = 0 ]; then
        echo "testpmd moved no packets; its logs:" >&2
        tail -20 "$WORK/testpmd-tx.log" "$WORK/testpmd-rx.log" >&2
        exit 1
    fi
    TP_TX+=("$tp_tx_pps")
    TP_RX+=("$tp_rx_pps")
}

for round in $(seq 1 "$ROUNDS"); do
    run_agent "$round"
    echo "round $round agent   tx: ${agent_tx_pps} pps (median of seconds), ${agent_tx_total} sent, ${agent_ring_full} packets refused by a full tx ring and offered again"
    echo "round $round agent   rx: ${agent_rx_pps} pps (median of seconds), ${agent_rx_total} received, ${agent_gaps} sequence gaps, ${agent_rx_lost} imissed+rx_nombuf"
    run_testpmd "$round"
    echo "round $round testpmd tx: ${tp_tx_pps} pps (median of seconds)"
    echo "round $round testpmd rx: ${tp_rx_pps} pps (median of seconds)"
done
agent_tx_pps=$(printf '%s\n' "${AGENT_TX[@]}" | median)
agent_rx_pps=$(printf '%s\n' "${AGENT_RX[@]}" | median)
tp_tx_pps=$(printf '%s\n' "${TP_TX[@]}" | median)
tp_rx_pps=$(printf '%s\n' "${TP_RX[@]}" | median)

rss_tx=$(cat "$WORK/agent-tx.rss" 2>/dev/null || echo 0)
rss_rx=$(cat "$WORK/agent-rx.rss" 2>/dev/null || echo 0)
huge_used=$(((${huge_before:-0} - ${huge_during:-0}) * $(hugepage_kb)))

echo "agent   (median of $ROUNDS rounds): tx ${agent_tx_pps} pps, rx ${agent_rx_pps} pps"
echo "testpmd (median of $ROUNDS rounds): tx ${tp_tx_pps} pps, rx ${tp_rx_pps} pps"
echo "agent memory: peak RSS tx $((rss_tx / 1024)) MiB, rx $((rss_rx / 1024)) MiB; hugepages used ${huge_used} kB (EAL runs with --no-huge here)"
python3 -c "print(f'ratio agent/testpmd: tx={$agent_tx_pps / $tp_tx_pps:.2f} rx={$agent_rx_pps / $tp_rx_pps:.2f}')"
