#!/usr/bin/env bash
# Times real boots of the test guest on `oxstack up --driver qemu
# --virt-type qemu` (software emulation): POST /servers -> ACTIVE, and ->
# the guest's DHCP line on its console, one server at a time on the
# bootstrap network `private`. Needs root, QEMU and the test guest
# (tools/guest-image/build.sh). The peers have no real hypervisor, so
# there is no peer figure to compare with.
#
# Usage: bench/compute/qemu.sh [COUNT] [PORT]   (needs the venv of tests/setup-python.sh)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
count=${1:-5}
port=${2:-25020}
venv=${OXSTACK_VENV:-$repo/.venv}
[ -x "$venv/bin/python" ] || { echo "no venv at $venv; run tests/setup-python.sh" >&2; exit 1; }
[ -f "$repo/tools/guest-image/out/oxstack-guest.qcow2" ] || { echo "build the test guest first: tools/guest-image/build.sh" >&2; exit 1; }

cargo build --release -p oxstack --manifest-path "$repo/Cargo.toml" >&2
binary=$repo/target/release/oxstack

dir=$(mktemp -d /tmp/oxstack-bench.XXXXXX)
printf '[hypervisor]\ndriver = "qemu"\nvirt_type = "qemu"\n[netagent]\nhost = "bench-qemu"\n' > "$dir/oxstack.toml"
(cd "$repo" && exec "$binary" up --config "$dir/oxstack.toml" --data-dir "$dir/data" --listen "127.0.0.1:$port" \
    --admin-password bench-admin-pw > "$dir/up.log" 2>&1) &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    "$binary" netagent teardown --data-dir "$dir/data" > /dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$port/v3" > /dev/null && break
    sleep 0.1
done

echo "# oxstack $(git -C "$repo" rev-parse --short HEAD) --driver qemu --virt-type qemu on $(nproc) cores, $(date -u +%FT%TZ)"
OS_AUTH_URL="http://127.0.0.1:$port/v3" OS_USERNAME=admin OS_PASSWORD=bench-admin-pw OS_PROJECT_NAME=admin \
    "$venv/bin/python" "$repo/bench/compute/qemu_boot.py" "$count"
