#!/usr/bin/env bash
# Runs playbooks against the dpdkhost lab, like the old lab's runner:
#   examples/ansible/run_tests.sh [--local] PLAYBOOK...
# --local (the default, kept for the old command lines): the lab on this host, through
# `dpdkhost inventory`. $DPDKHOST names the dpdkhost binary, $DPDKHOST_ENV the lab.
# Exits non-zero as soon as a playbook fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

playbooks=()
for arg in "$@"; do
  case $arg in
    --local) ;;
    -h | --help)
      sed -n '2,6s/^# \{0,1\}//p' "$0"
      exit 0
      ;;
    -*) echo "run_tests.sh: unknown option $arg (only --local)" >&2; exit 2 ;;
    *) playbooks+=("$arg") ;;
  esac
done
if [ "${#playbooks[@]}" -eq 0 ]; then
  echo "run_tests.sh: name at least one playbook, e.g. hello_world.yml test_connectivity.yml" >&2
  exit 2
fi
command -v ansible-playbook >/dev/null || { echo "run_tests.sh: ansible-playbook is not installed (scripts/setup installs it)" >&2; exit 1; }

export ANSIBLE_CONFIG="$here/ansible.cfg"
for playbook in "${playbooks[@]}"; do
  case $playbook in /*) path=$playbook ;; *) path=$here/$playbook ;; esac
  [ -f "$path" ] || path=$playbook
  echo "=== run_tests: $playbook"
  ansible-playbook -i "$here/inventory.sh" "$path"
done
echo "=== run_tests: ${#playbooks[@]} playbook(s) passed"
