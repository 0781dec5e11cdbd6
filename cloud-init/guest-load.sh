#!/bin/sh
# What a guest is busy with, for dpdkhost: `up` waits until cloud-init has finished, and
# every saved run records this at its start. Reads files only: starting cloud-init's
# own Python `status` command costs seconds of the guest's one vCPU under TCG.
# Prints two lines:
#   load <1 min> <5 min> <15 min>
#   cloud-init absent|disabled|running|done|error
set -u
read -r one five fifteen _ </proc/loadavg
echo "load $one $five $fifteen"
if ! command -v cloud-init >/dev/null 2>&1; then
  echo "cloud-init absent"
elif [ -e /run/cloud-init/disabled ]; then
  echo "cloud-init disabled"
elif [ -e /run/cloud-init/result.json ]; then
  # result.json is written when the final stage ends; its "errors" list is empty when
  # every stage succeeded.
  if tr -d ' \n' </run/cloud-init/result.json | grep -q '"errors":\[\]'; then
    echo "cloud-init done"
  else
    echo "cloud-init error"
  fi
elif [ "$(readlink /etc/systemd/system/cloud-final.service)" = /dev/null ]; then
  # The built-in image runs only cloud-init's init stage (customize-image.sh masks the
  # others), so no result.json comes: done when status.json shows that stage finished,
  # no stage running and no errors. (systemctl would need D-Bus for a user, and
  # cloud-init's own status command costs seconds of Python.)
  status=$(tr -d ' \n' </run/cloud-init/status.json 2>/dev/null || true)
  case $status in
    *'"errors":["'*) echo "cloud-init error" ;;
    *'"init":{"errors":[],"finished":'[0-9]*'"stage":null}}') echo "cloud-init done" ;;
    *) echo "cloud-init running" ;;
  esac
else
  echo "cloud-init running"
fi
