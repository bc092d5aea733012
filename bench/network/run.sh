#!/usr/bin/env bash
# Benchmarks the port life cycle of `oxstack up --driver fake`: create a
# port, bind it to the network agent's host (PUT binding:host_id), delete it.
# port_bench.py measures sequential cycles (median and p99 of the cycle and of
# each request, ports per second), then 8 concurrent clients for 20 s.
#
# The server runs with `[netagent] dataplane = "none"`: the agent reports
# and ports bind as on any host, but nothing is plugged into this machine,
# so the figures are the API, IPAM, binding and database cost alone. It
# creates no bootstrap networks; the client makes its own network.
#
# Usage: bench/network/run.sh [PORT]   (needs the venv of tests/setup-python.sh)
#   BENCH_PORT_SEQ       sequential cycles [default: 200]
#   BENCH_PORT_CLIENTS   concurrent clients [default: 8]
#   BENCH_PORT_DURATION  seconds of the concurrent phase [default: 20]
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
port=${1:-25020}
venv=${OXSTACK_VENV:-$repo/.venv}
[ -x "$venv/bin/python" ] || { echo "no venv at $venv; run tests/setup-python.sh" >&2; exit 1; }

cargo build --release -p oxstack --manifest-path "$repo/Cargo.toml" >&2
binary=$repo/target/release/oxstack

dir=$(mktemp -d /tmp/oxstack-bench.XXXXXX)
printf '[network]\nbootstrap = false\n[netagent]\ndataplane = "none"\n' > "$dir/oxstack.toml"
"$binary" up --driver fake --config "$dir/oxstack.toml" --data-dir "$dir/data" --listen "127.0.0.1:$port" \
    --admin-password bench-admin-pw > "$dir/up.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$port/v3" > /dev/null && break
    sleep 0.1
done

echo "# oxstack $(git -C "$repo" rev-parse --short HEAD) --driver fake, dataplane none, on $(nproc) cores, $(date -u +%FT%TZ)"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
OS_AUTH_URL="http://127.0.0.1:$port/v3" OS_USERNAME=admin OS_PASSWORD=bench-admin-pw OS_PROJECT_NAME=admin \
    "$venv/bin/python" "$repo/bench/network/port_bench.py"
echo "# server peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$pid/status")"
