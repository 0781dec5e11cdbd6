# Shared by the host benches (sourced): argument checks and memif set-up.
# shellcheck shell=bash

# Exits 2 unless $2 (named $1) is a whole number in $3..=$4; $5 adds why.
check_range() {
    local name=$1 value=$2 low=$3 high=$4 why=${5:-}
    if ! [[ "$value" =~ ^[0-9]+$ ]] || [ "$value" -lt "$low" ] || [ "$value" -gt "$high" ]; then
        echo "error: $name=$value: expected a whole number in $low..=$high$why" >&2
        exit 2
    fi
}

# Waits for a memif server's socket file: the client does not retry a connection.
wait_for_socket() {
    for _ in $(seq 1 300); do
        [ -S "$1" ] && return 0
        sleep 0.05
    done
    echo "error: no memif socket $1 after 15 s" >&2
    exit 1
}

# On exit: kills only the processes the bench started (PIDS), removes its work
# directory (WORK) and the runtime directories DPDK leaves behind for each
# --file-prefix, which the bench names "<RUNTIME_PREFIX>-*-<its pid>-*".
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
    rm -rf /var/run/dpdk/"$RUNTIME_PREFIX"-*-"$$"-*
}

# Builds the agent ($AGENT) when it is missing.
ensure_agent() {
    if [ ! -x "$AGENT" ]; then
        echo "building $AGENT" >&2
        (cd "$ROOT" && cargo build --release -p dpdk-agent)
    fi
}
