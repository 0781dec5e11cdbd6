# shellcheck shell=bash
# shellcheck disable=SC2154  # $uri, $env_name, $pool and $label: set by the sourcing script
# Shared by the end-to-end scripts that run a lab on the root namespace's libvirtd
# (tests/smoke.sh, tests/url-image.sh). Sourced; expects $uri, $env_name, $pool and
# $label (the scripts' output prefix) to be set.

# Every libvirt object of the environment, one per line (empty when none). virsh here
# checks dpdkhost from the outside; dpdkhost itself only uses the libvirt API.
leftovers() {
  virsh -c "$uri" list --all --name 2>/dev/null | grep "^dpdkhost-$env_name-" | sed 's/^/domain /' || true
  virsh -c "$uri" net-list --all --name 2>/dev/null | grep "^dpdkhost-$env_name-" | sed 's/^/network /' || true
  if virsh -c "$uri" pool-info "$pool" >/dev/null 2>&1; then
    virsh -c "$uri" vol-list "$pool" 2>/dev/null | awk 'NR>2 && $1 != "" {print $1}' \
      | grep "^dpdkhost-$env_name-" | sed 's/^/volume /' || true
  fi
}

# Fails, listing them, when objects of the environment remain.
expect_nothing_left() {
  local left
  left=$(leftovers)
  if [ -n "$left" ]; then
    echo "$label: left behind after down:" >&2
    echo "$left" >&2
    return 1
  fi
  echo "$label: nothing of env $env_name remains"
}
