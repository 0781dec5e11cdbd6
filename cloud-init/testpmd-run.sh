#!/usr/bin/env bash
# dpdkhost's testpmd baseline runner, sent to a VM over ssh (`bash -c SCRIPT`), run as
# root. Every value arrives as a positional argument, never spliced into this text.
#
# Usage: testpmd-run.sh elapsed SIGNAL_AFTER_US START_POLLS PROGRAM [ARG...]
#        testpmd-run.sh told    0               START_POLLS PROGRAM [ARG...]
#
# Starts PROGRAM (dpdk-testpmd) and prints each line it prints as
# `T<guest clock, us> <line>`; `READY <us>` at its first statistics block (forwarding
# has started); then waits (`elapsed`: until SIGNAL_AFTER_US after READY; `told`: until
# a line arrives on stdin), prints `STOP <us>`, sends SIGINT (testpmd stops forwarding
# at its next one-second wake-up, prints its totals and exits) and ends with
# `EXIT <testpmd's status>`. Waits use `read -t` on a fifo nobody writes (fd 4): a
# builtin, no fork, which under TCG next to a busy-polling testpmd can take a good part
# of a second.
set -u
if [ -z "${EPOCHREALTIME:-}" ]; then
  echo "FAILED: this bash has no EPOCHREALTIME (bash 5 needed)"
  exit 1
fi
if [ "$#" -lt 4 ]; then
  echo "FAILED: usage: testpmd-run.sh elapsed|told SIGNAL_AFTER_US START_POLLS PROGRAM [ARG...]"
  exit 2
fi
until_mode=$1
signal_after_us=$2
polls=$3
shift 3
case $until_mode in elapsed | told) ;; *) echo "FAILED: unknown mode $until_mode"; exit 2 ;; esac
case $signal_after_us$polls in *[!0-9]*) echo "FAILED: SIGNAL_AFTER_US and START_POLLS are numbers"; exit 2 ;; esac

d=$(mktemp -d /tmp/testpmd.XXXXXX)
mkfifo "$d/out" "$d/tick"
exec 4<>"$d/tick"
stdbuf -oL -eL "$@" </dev/null >"$d/out" 2>&1 &
pid=$!
trap 'kill -KILL "$pid" 2>/dev/null; rm -rf "$d"' EXIT
while IFS= read -r line; do
  t=${EPOCHREALTIME//[!0-9]/}
  printf "T%s %s\n" "$t" "$line"
  if [ ! -e "$d/ready" ]; then
    case $line in *"Port statistics"*) echo "$t" >"$d/ready"; echo "READY $t" ;; esac
  fi
done <"$d/out" &
reader=$!
n=0
until [ -s "$d/ready" ]; do
  kill -0 "$pid" 2>/dev/null || break
  n=$((n + 1))
  if [ "$n" -gt "$polls" ]; then
    echo "TIMEOUT waiting for forwarding"
    kill -KILL "$pid"
    break
  fi
  read -r -t 0.1 -u 4 _
done
if [ -s "$d/ready" ]; then
  read -r t0 <"$d/ready"
  case $until_mode in
    elapsed)
      left=$((t0 + signal_after_us - ${EPOCHREALTIME//[!0-9]/}))
      if [ "$left" -gt 0 ]; then
        printf -v frac %06d $((left % 1000000))
        read -r -t "$((left / 1000000)).$frac" -u 4 _
      fi
      ;;
    told) read -r _go ;;
  esac
  echo "STOP ${EPOCHREALTIME//[!0-9]/}"
  kill -INT "$pid" 2>/dev/null
  n=0
  while kill -0 "$pid" 2>/dev/null; do
    n=$((n + 1))
    if [ "$n" -gt 600 ]; then
      echo "KILLED: still running 60 s after SIGINT"
      kill -KILL "$pid"
      break
    fi
    read -r -t 0.1 -u 4 _
  done
fi
wait "$pid"
st=$?
wait "$reader"
echo "EXIT $st"
