#!/usr/bin/env bash
# Packet rate of the agent's bench workload against dpdk-testpmd on the same virtual
# link: a net_memif pair between two processes (no hugepages), 64-byte frames, sender
# on CPU 0 and receiver on CPU 1. Each round runs agent tx -> agent rx and testpmd
# txonly -> rxonly (two lcores on one CPU each side) back to back, DURATION seconds
# each, in alternating order, then each tool's sender alone into a net_null sink (one
# CPU, NULL_DURATION seconds; 0 skips it), which shows the sender's own cost per packet
# without the receiver and the shared ring setting the pace.
# A rate is the median of the per-second rates (robust against the partial first and
# last seconds); a round's ratio compares the two runs of that round, and the final
# ratios are the medians of the rounds' ratios. Ends with the line
#   ratio agent/testpmd: tx=<x> rx=<y>
# A benchmark, not a test: figures on a shared 2-core machine are noisy.
#
# Both tools move BURST packets per tx and per rx burst (default 32, testpmd's default).
#
# Environment: DURATION (s, 2..=600, default 4), ROUNDS (1..=100, default 5),
# NULL_DURATION (s, 0 or 2..=600, default 3), BURST (1..=64, default 32), AGENT
# (default target/release/dpdk-agent, built when missing), TESTPMD (default
# dpdk-testpmd, Debian package dpdk-dev).
# Stops by itself; on exit it kills only the processes it started.
set -euo pipefail

DURATION=${DURATION:-4}
ROUNDS=${ROUNDS:-5}
NULL_DURATION=${NULL_DURATION:-3}
BURST=${BURST:-32}
SIZE=64

# check_range, wait_for_socket, cleanup, ensure_agent
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"
# testpmd prints its first per-second rate after two seconds.
check_range DURATION "$DURATION" 2 600 " (testpmd's first per-second rate comes after 2 s)"
check_range ROUNDS "$ROUNDS" 1 100 ""
if [ "$NULL_DURATION" != 0 ]; then
    check_range NULL_DURATION "$NULL_DURATION" 2 600 ", or 0 to skip the net_null runs"
fi
check_range BURST "$BURST" 1 64 ""
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGENT=${AGENT:-$ROOT/target/release/dpdk-agent}
TESTPMD=${TESTPMD:-dpdk-testpmd}
WORK=$(mktemp -d /tmp/vs-testpmd.XXXXXX)
PIDS=()

export RUNTIME_PREFIX=vs
trap cleanup EXIT
trap 'exit 130' INT TERM
ensure_agent
if ! command -v "$TESTPMD" >/dev/null; then
    echo "error: $TESTPMD not found (Debian: apt-get install dpdk-dev)" >&2
    exit 1
fi

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
        tail -n 20 "$WORK/testpmd-tx.log" "$WORK/testpmd-rx.log" >&2
        exit 1
    fi
    TP_TX+=("$tp_tx_pps")
    TP_RX+=("$tp_rx_pps")
}

# Net_null sink, one CPU: what one packet costs the sender alone (allocate, build,
# hand to the driver, which frees it), with no receiver or shared ring in the way.
run_sender_alone() {
    local round=$1
    "$AGENT" bench --eal "$EAL_COMMON -l 0 --file-prefix=vs-agent-null-$$-$round --vdev=net_null0" \
        --device net_null0 --ip 198.18.0.1/24 --mode tx --peer 198.18.0.2 --peer-mac 02:00:00:00:00:02 \
        --size "$SIZE" --burst "$BURST" --duration "$NULL_DURATION" --json \
        >"$WORK/agent-null.json" 2>"$WORK/agent-null.log" || { cat "$WORK/agent-null.log" >&2; exit 1; }
    timeout -s INT "$NULL_DURATION" "$TESTPMD" $EAL_COMMON --lcores=0@0,1@0 \
        --file-prefix=vs-tp-null-$$-$round --vdev=net_null0 -- \
        --forward-mode=txonly --txpkts="$SIZE" --burst="$BURST" --total-num-mbufs=16384 --stats-period=1 \
        </dev/null >"$WORK/testpmd-null.log" 2>&1 || true
    null_agent=$(jq -r '.per_second[].tx_pps' "$WORK/agent-null.json" | median)
    null_tp=$(grep -a -o 'Tx-pps: *[0-9]*' "$WORK/testpmd-null.log" | awk '{print $2}' | median)
    NULL_AGENT+=("$null_agent")
    NULL_TP+=("$null_tp")
}

# A ratio per round, of runs made back to back, so that both sides of it met the same
# host: on a shared machine the rate of either tool drifts by a fifth between minutes.
# The order alternates between rounds, so neither tool always runs first.
RATIO_TX=() RATIO_RX=() NULL_AGENT=() NULL_TP=() NULL_RATIO=()
ratio() { python3 -c "print(f'{$1 / $2:.3f}' if $2 > 0 else 0)"; }
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then
        run_agent "$round"
        run_testpmd "$round"
    else
        run_testpmd "$round"
        run_agent "$round"
    fi
    echo "round $round agent   tx: ${agent_tx_pps} pps (median of seconds), ${agent_tx_total} sent, ${agent_ring_full} packets refused by a full tx ring and offered again"
    echo "round $round agent   rx: ${agent_rx_pps} pps (median of seconds), ${agent_rx_total} received, ${agent_gaps} sequence gaps, ${agent_rx_lost} imissed+rx_nombuf"
    echo "round $round testpmd tx: ${tp_tx_pps} pps (median of seconds)"
    echo "round $round testpmd rx: ${tp_rx_pps} pps (median of seconds)"
    RATIO_TX+=("$(ratio "$agent_tx_pps" "$tp_tx_pps")")
    RATIO_RX+=("$(ratio "$agent_rx_pps" "$tp_rx_pps")")
    echo "round $round ratio agent/testpmd: tx=${RATIO_TX[-1]} rx=${RATIO_RX[-1]}"
    if [ "$NULL_DURATION" != 0 ]; then
        run_sender_alone "$round"
        NULL_RATIO+=("$(ratio "$null_agent" "$null_tp")")
        echo "round $round sender alone (net_null): agent ${null_agent} pps, testpmd ${null_tp} pps, ratio ${NULL_RATIO[-1]}"
    fi
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
median_ratio() { python3 -c 'import statistics, sys; print(f"{statistics.median(float(v) for v in sys.argv[1:]):.2f}")' "$@"; }
spread() { python3 -c 'import sys; v = [float(x) for x in sys.argv[1:]]; print(f"{min(v):.2f}..{max(v):.2f}")' "$@"; }
echo "per-round ratios: tx $(spread "${RATIO_TX[@]}"), rx $(spread "${RATIO_RX[@]}")"
if [ "$NULL_DURATION" != 0 ]; then
    echo "sender alone on net_null (median of $ROUNDS rounds): agent $(printf '%s\n' "${NULL_AGENT[@]}" | median) pps, testpmd $(printf '%s\n' "${NULL_TP[@]}" | median) pps, ratio $(median_ratio "${NULL_RATIO[@]}")"
fi
echo "ratio agent/testpmd: tx=$(median_ratio "${RATIO_TX[@]}") rx=$(median_ratio "${RATIO_RX[@]}")"
