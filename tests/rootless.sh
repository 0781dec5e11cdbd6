#!/usr/bin/env bash
# A user without root runs the lab with no configuration at all: the defaults are then
# the session libvirt daemon (QEMU runs as that user) and a pool in the user's data
# directory, and the image is built in mmdebstrap's unshare mode. image build -> up ->
# run pingpong -> down as a throwaway user this script creates. Tears down on every
# exit path: the lab, the session daemon it spawned (by PID), the user and its home.
#
# Root; release builds of dpdkhost and dpdk-agent; uidmap (scripts/setup).
set -euo pipefail
cd "$(dirname "$0")/.."

user=${ROOTLESS_USER:-dpdkhost-rootless}
step() { printf '\n=== rootless: %s\n' "$*"; }

exec 9>/tmp/dpdkhost-lab.lock
if ! flock -n 9; then
  echo "rootless: another lab holds /tmp/dpdkhost-lab.lock; waiting"
  flock 9
fi

home=
as_user() {
  runuser -u "$user" -- env -i HOME="$home" PATH=/usr/local/bin:/usr/bin:/bin \
    LANG=C.UTF-8 "$home/bin/dpdkhost" "$@"
}

on_exit() {
  status=$?
  if [ -n "$home" ]; then
    if [ "$status" != 0 ]; then
      step "FAILED (exit $status): serial console tails"
      as_user logs 1 -n 40 2>&1 || true
    fi
    step "teardown"
    as_user down -y >/dev/null 2>&1 || status=1
    # The session daemon this user's dpdkhost spawned, and its helpers.
    for pid in $(pgrep -u "$user" 2>/dev/null || true); do kill "$pid" 2>/dev/null || true; done
    sleep 1
    for pid in $(pgrep -u "$user" 2>/dev/null || true); do kill -KILL "$pid" 2>/dev/null || true; done
    userdel -r "$user" >/dev/null 2>&1 || status=1
  fi
  exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

step "a throwaway user with the binaries and subordinate ids"
if id "$user" >/dev/null 2>&1; then
  echo "rootless: user $user exists already; remove it first (userdel -r $user)" >&2
  home=
  exit 1
fi
home=$(mktemp -d /var/tmp/dpdkhost-rootless.XXXXXX)
useradd --home-dir "$home" --no-create-home --shell /bin/bash "$user"
# useradd gives a new user subordinate ids where /etc/subuid exists; else, a range here.
for file in /etc/subuid /etc/subgid; do
  if ! grep -q "^$user:" "$file" 2>/dev/null; then
    usermod --add-subuids 1000000-1065535 --add-subgids 1000000-1065535 "$user"
    break
  fi
done
chmod 0711 "$home"
mkdir -p "$home/bin"
cp target/release/dpdkhost target/release/dpdk-agent "$home/bin/"
chown -R "$user:" "$home"

step "image build without root: mmdebstrap's unshare mode"
build_start=$(date +%s)
as_user image build 2>&1 | tee "$home/image-build.txt" | tail -n 3
grep -q "mmdebstrap (unshare mode)" "$home/image-build.txt"
echo "rootless: image built as $user in $(( $(date +%s) - build_start )) s"

step "doctor names the session daemon as the default without root, and the unshare-mode image build"
as_user doctor 2>&1 | tee "$home/doctor.txt" | grep -i "libvirt" || true
grep -q "qemu:///session" "$home/doctor.txt"
grep -q "default without root" "$home/doctor.txt"
grep -q "mmdebstrap unshare mode" "$home/doctor.txt"

step "up -y --no-kvm with no configuration"
as_user up -y --no-kvm
test -d "$home/.local/share/dpdkhost/pool"

step "run pingpong --count 300"
as_user run pingpong --count 300 --json --results "$home/results" > "$home/pingpong.json"
python3 - "$home/pingpong.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["result"]["agent"]
assert run["sent"] == 300 and run["received"] == 300 and run["lost"] == 0, run
print("rootless: pingpong 300/300, lost 0, p50 %.1f us" % (run["rtt"]["p50_ns"] / 1000))
PY

step "down -y"
as_user down -y
if [ -n "$(runuser -u "$user" -- virsh -c qemu:///session list --all --name 2>/dev/null | grep dpdkhost || true)" ]; then
  echo "rootless: domains left behind" >&2; exit 1
fi
step "passed"
