#!/usr/bin/env bash
# Benchmarks token issue and validation of `oxstack up` with the same client
# script, the same request mix and the same defaults as the peer lab's
# Keystone benchmark (its peers_bench.py, found beside the checkout): sequential
# issue (n=100) and validation (n=300) latency, then 20 s of 8 concurrent
# clients each, a new TCP connection per request, all on 127.0.0.1.
#
# It runs twice: with OxStack's verified-password cache on (the default)
# and off, because the cache is what removes bcrypt from repeated logins.
# bcrypt cost is 12 in both runs, Keystone's default.
#
# Usage: bench/identity/run.sh [PORT]   (needs the venv of tests/setup-python.sh)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
port=${1:-25000}
venv=${OXSTACK_VENV:-$repo/.venv}
peers_bench=${PEERS_BENCH:-$repo/../shared/peers/bench/peers_bench.py}
[ -f "$peers_bench" ] || { echo "peers_bench.py not found at $peers_bench; set PEERS_BENCH" >&2; exit 1; }
[ -x "$venv/bin/python" ] || { echo "no venv at $venv; run tests/setup-python.sh" >&2; exit 1; }

cargo build --release -p oxstack --manifest-path "$repo/Cargo.toml" >&2
binary=$repo/target/release/oxstack

run_once() {
    local cache=$1 dir pid
    dir=$(mktemp -d /tmp/oxstack-bench.XXXXXX)
    printf '[identity]\npassword_cache = %s\n' "$cache" > "$dir/oxstack.toml"
    "$binary" up --config "$dir/oxstack.toml" --data-dir "$dir/data" --listen "127.0.0.1:$port" \
        --admin-password bench-admin-pw > "$dir/up.log" 2>&1 &
    pid=$!
    # shellcheck disable=SC2064
    trap "kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf '$dir'" RETURN
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/v3" > /dev/null && break
        sleep 0.1
    done
    echo "# password_cache = $cache"
    OS_AUTH_URL="http://127.0.0.1:$port/v3" OS_USERNAME=admin OS_PASSWORD=bench-admin-pw \
        OS_PROJECT_NAME=admin "$venv/bin/python" "$peers_bench" keystone
    echo "# server peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$pid/status")"
}

echo "# oxstack $(git -C "$repo" rev-parse --short HEAD) on $(nproc) cores, $(date -u +%FT%TZ)"
run_once true
run_once false
