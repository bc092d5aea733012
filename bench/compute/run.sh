#!/usr/bin/env bash
# Benchmarks server boots of `oxstack up --driver fake` with the peer lab's
# own client script and request mix (peers_bench.py nova, found beside the
# checkout): POST /servers -> ACTIVE one at a time, then 50 servers in one
# request (min_count = max_count = 50) -> all ACTIVE, then their deletion;
# microversion 2.37 with `networks: none`, a 1 MiB raw image, m1.tiny.
#
# The peer lab runs this against Nova 34.0.0 with its fake driver; compare
# with ../shared/peers/RESULTS.md (bench d).
#
# Usage: bench/compute/run.sh [PORT]   (needs the venv of tests/setup-python.sh)
#   BENCH_NOVA_SEQ    sequential boots [default here: 100, for a p99]
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
port=${1:-25010}
venv=${OXSTACK_VENV:-$repo/.venv}
peers_bench=${PEERS_BENCH:-$repo/../shared/peers/bench/peers_bench.py}
[ -f "$peers_bench" ] || { echo "peers_bench.py not found at $peers_bench; set PEERS_BENCH" >&2; exit 1; }
[ -x "$venv/bin/python" ] || { echo "no venv at $venv; run tests/setup-python.sh" >&2; exit 1; }

cargo build --release -p oxstack --manifest-path "$repo/Cargo.toml" >&2
binary=$repo/target/release/oxstack

dir=$(mktemp -d /tmp/oxstack-bench.XXXXXX)
"$binary" up --driver fake --data-dir "$dir/data" --listen "127.0.0.1:$port" \
    --admin-password bench-admin-pw > "$dir/up.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$port/v3" > /dev/null && break
    sleep 0.1
done

echo "# oxstack $(git -C "$repo" rev-parse --short HEAD) --driver fake on $(nproc) cores, $(date -u +%FT%TZ)"
OS_AUTH_URL="http://127.0.0.1:$port/v3" OS_USERNAME=admin OS_PASSWORD=bench-admin-pw OS_PROJECT_NAME=admin \
    BENCH_NOVA_SEQ="${BENCH_NOVA_SEQ:-100}" "$venv/bin/python" "$peers_bench" nova
echo "# server peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$pid/status")"
