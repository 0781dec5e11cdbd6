#!/usr/bin/env bash
# dpdkhost exec's runner, sent to a VM over ssh (`sudo env VARS... bash -c SCRIPT
# exec-run.sh ...`), run as root. Every value arrives as a positional argument.
#
# Usage: exec-run.sh run  ID COMMAND   record this shell's process group under ID, run
#                                      `bash -c COMMAND` in it and exit with its status
#                                      (128 + N when signal N ended it: ssh would turn
#                                      a remote command's death by signal into 255)
#        exec-run.sh stop ID [PREFIX]  end what `run ID` started, if it still runs:
#                                      SIGTERM to its process group, SIGKILL after 5 s;
#                                      prints `exited`, `terminated` or `killed`; then
#                                      removes what DPDK leaves of the file prefix
#                                      PREFIX (hugepage files, runtime directory)
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
prefix=${3:-}
if [ "$mode" = stop ] && [ -n "$prefix" ]; then
  case $prefix in *[!A-Za-z0-9_-]*) echo "exec-run.sh: bad prefix $prefix" >&2; exit 2 ;; esac
fi

# Hugepage files a process that did not unlink them leaves behind hold their pages
# until removed; the runtime directory holds its sockets.
remove_dpdk_leftovers() {
  [ -n "$prefix" ] || return 0
  rm -f /dev/hugepages/"$prefix"map_* 2>/dev/null
  rm -rf "/var/run/dpdk/$prefix"
}

group_alive() { kill -0 -- "-$1" 2>/dev/null; }
# Waits up to 5 s for process group $1 to be gone; fails if it is still there.
group_gone_within_5s() {
  for _ in $(seq 1 50); do
    group_alive "$1" || return 0
    sleep 0.1
  done
  ! group_alive "$1"
}

case $mode in
run)
  if [ "$#" -ne 3 ]; then
    echo "exec-run.sh: usage: exec-run.sh run ID COMMAND" >&2
    exit 2
  fi
  mkdir -p "$dir"
  pgid=$(ps -o pgid= -p "$$" | tr -d ' ')
  echo "$pgid" >"$record"
  bash -c "$3"
  exit $?
  ;;
stop)
  outcome=exited
  if [ -f "$record" ]; then
    pgid=$(cat "$record")
    rm -f "$record"
    case $pgid in '' | *[!0-9]*) pgid= ;; esac
    if [ -n "$pgid" ] && group_alive "$pgid"; then
      outcome=terminated
      kill -TERM -- "-$pgid" 2>/dev/null
      if ! group_gone_within_5s "$pgid"; then
        outcome=killed
        kill -KILL -- "-$pgid" 2>/dev/null
        group_gone_within_5s "$pgid" || true
      fi
    fi
  fi
  remove_dpdk_leftovers
  echo "$outcome"
  ;;
*)
  echo "exec-run.sh: unknown mode $mode" >&2
  exit 2
  ;;
esac
