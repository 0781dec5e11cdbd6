#!/usr/bin/env bash
# End to end, offline: an image given by URL + sha256 that boots itself (BIOS, its own
# partition table and bootloader, like the Ubuntu cloud image). tests/make-cloud-disk.sh
# builds a generic cloud-style disk (cached beside dpdkhost's image cache, in
# ~/.cache/dpdkhost/test-fixtures/url-image, so a clean clone reuses it; rebuilt when the
# helper changes); it is served over HTTP on 127.0.0.1 only, and dpdkhost fetches it
# into a throwaway image cache. Checks: a wrong image_sha256 fails naming the key and
# leaves nothing; up --no-kvm to every agent SERVING; ssh; a ping-pong; down leaves
# nothing of the environment. Tears down on every exit path.
#
# Root; libvirtd running (scripts/start-libvirtd); release builds of dpdkhost and
# dpdk-agent; packages: mmdebstrap dosfstools mtools syslinux syslinux-common fdisk
# qemu-utils curl.
#
#   tests/url-image.sh            # env "urlimg"
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(realpath "${DPDKHOST_BIN:-target/release/dpdkhost}")
env_name=${URLIMG_ENV:-urlimg}
uri=qemu:///system
pool=dpdkhost
cache=${URLIMG_DISK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dpdkhost/test-fixtures/url-image}
step() { printf '\n=== url-image: %s\n' "$*"; }
started=$(date +%s)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/url-image.XXXXXX")
export DPDKHOST_CACHE_DIR=$tmp/images
dpdkhost() { "$bin" --env "$env_name" --config "$tmp/dpdkhost.toml" "$@"; }

label="url-image"
# leftovers, expect_nothing_left
source tests/lib.sh  # (the working directory is the repository root)

http_pid=
lab_locked=
on_exit() {
  status=$?
  set +e
  if [ -n "$lab_locked" ]; then
    if [ "$status" != 0 ]; then
      step "FAILED (exit $status): serial console tails"
      for vm in 1 2; do
        echo "--- vm$vm"
        dpdkhost logs "$vm" -n 80 2>&1
      done
    fi
    step "teardown"
    dpdkhost down -y >/dev/null 2>&1 || status=1
    expect_nothing_left || status=1
  fi
  if [ -n "$http_pid" ]; then
    kill "$http_pid" 2>/dev/null
    wait "$http_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
  echo "url-image: $( [ "$status" = 0 ] && echo passed || echo FAILED ) in $(( $(date +%s) - started )) s"
  exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

step "cloud-style disk (MBR, SYSLINUX, ext4 root, cloud-init; cached in $cache)"
mkdir -p "$cache"
stamp=$(sha256sum tests/make-cloud-disk.sh | cut -d' ' -f1)
if [ -f "$cache/cloudimg.qcow2" ] && [ "$(cat "$cache/cloudimg.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "url-image: cached $cache/cloudimg.qcow2"
else
  rm -f "$cache/cloudimg.qcow2" "$cache/cloudimg.stamp"
  tests/make-cloud-disk.sh "$cache/cloudimg.qcow2.new"
  mv "$cache/cloudimg.qcow2.new" "$cache/cloudimg.qcow2"
  echo "$stamp" > "$cache/cloudimg.stamp"
fi
sha=$(sha256sum "$cache/cloudimg.qcow2" | cut -d' ' -f1)
echo "url-image: sha256 $sha"

step "HTTP server on 127.0.0.1"
mkdir -p "$tmp/www"
ln "$cache/cloudimg.qcow2" "$tmp/www/cloudimg.qcow2" 2>/dev/null || cp "$cache/cloudimg.qcow2" "$tmp/www/"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$tmp/www" "$port" >"$tmp/http.log" 2>&1 &
http_pid=$!
url=http://127.0.0.1:$port/cloudimg.qcow2
for _ in $(seq 50); do curl -sfI "$url" >/dev/null && break; sleep 0.1; done
curl -sfI "$url" >/dev/null
echo "url-image: serving $url (pid $http_pid)"

config() {
  cat > "$tmp/dpdkhost.toml" <<EOF
image = "$url"
image_sha256 = "$1"
timeout_secs = 900
EOF
}

# One lab at a time per machine: two TCG labs on a small host starve each other.
exec 9>/tmp/dpdkhost-lab.lock
if ! flock -n 9; then
  echo "url-image: another lab holds /tmp/dpdkhost-lab.lock; waiting"
  flock 9
fi
wrong=$(printf '%s' "$sha" | tr '0-9a-f' '1-9a-f0')
config "$wrong"
lab_locked=1
dpdkhost down -y >/dev/null 2>&1 || true

step "wrong image_sha256: clear error naming the key, nothing made"
if dpdkhost up -y --no-kvm >"$tmp/wrong.out" 2>&1; then
  cat "$tmp/wrong.out"
  echo "url-image: up with a wrong sha256 succeeded" >&2
  exit 1
fi
cat "$tmp/wrong.out"
grep -q "image_sha256" "$tmp/wrong.out" || { echo "url-image: the error does not name image_sha256" >&2; exit 1; }
grep -q "$wrong" "$tmp/wrong.out" && grep -q "$sha" "$tmp/wrong.out" \
  || { echo "url-image: the error does not show both checksums" >&2; exit 1; }
if [ -n "$(ls -A "$DPDKHOST_CACHE_DIR" 2>/dev/null)" ]; then
  ls -la "$DPDKHOST_CACHE_DIR" >&2
  echo "url-image: a bad download left something in the image cache" >&2
  exit 1
fi
expect_nothing_left

step "up -y --no-kvm (fetch by URL, self-booting disk)"
config "$sha"
t0=$(date +%s%N)
dpdkhost up -y --no-kvm
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
printf 'url-image: up to every agent SERVING in %d.%01d s\n' $((ms / 1000)) $((ms % 1000 / 100))
compgen -G "$DPDKHOST_CACHE_DIR/url-*" >/dev/null || { echo "url-image: image not cached" >&2; exit 1; }

step "status --json: every agent SERVING"
dpdkhost status --json > "$tmp/status.json"
python3 - "$tmp/status.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
bad = [vm for vm in s["vms"] if vm["agent_health"] != "SERVING" or vm["state"] != "running"]
assert s["vms"] and not bad, bad
print("url-image: %d agents SERVING, accel %s" % (len(s["vms"]), s["accel"]))
PY

step "ssh 1 (host key pinned; the seed made the user and grew the root partition)"
dpdkhost ssh 1 -- true
dpdkhost ssh 2 -- 'set -e; test "$(hostname)" = vm2; test -x /usr/local/bin/dpdk-agent
  test "$(cat /proc/sys/vm/nr_hugepages)" -ge 1; test ! -e /etc/systemd/system/dpdkhost-seed.service
  findmnt -no SOURCE / | grep -q vda2; test "$(df -BG --output=size / | tail -n1 | tr -dc 0-9)" -ge 4'

step "run pingpong --count 200"
dpdkhost run pingpong --count 200 --json --results "$tmp/results" > "$tmp/pingpong.json"
python3 - "$tmp/pingpong.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["result"]["agent"]
assert run["sent"] == 200 and run["received"] == 200 and run["lost"] == 0, run
rtt = run["rtt"]
print(f"url-image: pingpong 200 packets, lost 0, p50 {rtt['p50_ns']/1000:.1f} us, p99 {rtt['p99_ns']/1000:.1f} us")
PY

step "down -y"
dpdkhost down -y
expect_nothing_left
lab_locked=

step "passed"
