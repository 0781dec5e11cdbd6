#!/bin/sh
# Ansible dynamic inventory: the dpdkhost lab named by $DPDKHOST_ENV (default
# "default"), through the dpdkhost binary named by $DPDKHOST (default: on PATH).
# Ansible calls it with --list or --host NAME.
set -eu
exec "${DPDKHOST:-dpdkhost}" --env "${DPDKHOST_ENV:-default}" inventory "$@"
