#!/usr/bin/env bash
# dpdkhost exec's runner, sent to a VM over ssh (`sudo env VARS... bash -c SCRIPT
# exec-run.sh ...`), run as root. Every value arrives as a positional argument.
#
# Usage: exec-run.sh run  ID COMMAND   record this shell's process group under ID, then
#                                      become `bash -c COMMAND` (same pid and group,
#                                      so the command's status is this run's)
#        exec-run.sh stop ID           end what `run ID` started, if it still runs:
#                                      SIGTERM to its process group, SIGKILL after 5 s;
#                                      prints `exited`, `terminated` or `killed`
#
# The host calls `stop` after every way the command's ssh session ended (normal exit,
# crash, Ctrl-C, kill, lost connection), before the agent takes its port back: no
# process of the command may still hold the device then.
set -u
if [ "$#" -lt 2 ]; then
  echo "exec-run.sh: usage: exec-run.sh run ID COMMAND | stop ID" >&2
  exit 2
fi
mode=$1
id=$2
case $id in '' | *[!A-Za-z0-9-]*) echo "exec-run.sh: bad id $id" >&2; exit 2 ;; esac
dir=/run/dpdkhost-exec
record=$dir/$id.pgid

group_alive() { kill -0 -- "-$1" 2>/dev/null; }

case $mode in
run)
  if [ "$#" -ne 3 ]; then
    echo "exec-run.sh: usage: exec-run.sh run ID COMMAND" >&2
    exit 2
  fi
  mkdir -p "$dir"
  pgid=$(ps -o pgid= -p "$$" | tr -d ' ')
  echo "$pgid" >"$record"
  exec bash -c "$3"
  ;;
stop)
  [ -f "$record" ] || { echo exited; exit 0; }
  pgid=$(cat "$record")
  rm -f "$record"
  case $pgid in '' | *[!0-9]*) echo exited; exit 0 ;; esac
  if ! group_alive "$pgid"; then
    echo exited
    exit 0
  fi
  kill -TERM -- "-$pgid" 2>/dev/null
  for _ in $(seq 1 50); do
    if ! group_alive "$pgid"; then
      echo terminated
      exit 0
    fi
    sleep 0.1
  done
  kill -KILL -- "-$pgid" 2>/dev/null
  for _ in $(seq 1 50); do
    group_alive "$pgid" || break
    sleep 0.1
  done
  echo killed
  ;;
*)
  echo "exec-run.sh: unknown mode $mode" >&2
  exit 2
  ;;
esac
