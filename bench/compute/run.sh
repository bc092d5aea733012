#!/usr/bin/env bash
# Benchmarks `oxstack up --driver fake` with the peer lab's own client script
# and request mix (peers_bench.py, found beside the checkout or at PEERS_BENCH):
#   placement  100 resource providers with inventories, then
#              GET /allocation_candidates (n=200)
#   nova       POST /servers -> ACTIVE one at a time, then 50 servers in one
#              request (min_count = max_count = 50) -> all ACTIVE, then their
#              deletion; microversion 2.37 with `networks: none`, a 1 MiB raw
#              image, m1.tiny
#   cli        `openstack server list`, `token issue`, `flavor list`, median of 5
#
# The peer lab runs the same script against Placement 16.0.0 and Nova 34.0.0
# with its fake driver, and bench/README.md lists its figures beside these.
# The peer script requests Placement microversion 1.39, but OxStack supports
# at most 1.28, so the placement bench sends 1.28. The three requests it
# makes behave the same at both versions.
#
# Usage: bench/compute/run.sh [PORT] [BENCH...]   (needs the venv of tests/setup-python.sh)
#   BENCH              placement, nova, cli [default: all three]
#   BENCH_NOVA_SEQ     sequential boots [default here: 100, the peer lab ran 10]
#   PEERS_BENCH        path of peers_bench.py
#   OXSTACK_VENV       Python venv with the openstack client [default: .venv]
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
port=${1:-25010}
shift || true
if [ $# -gt 0 ]; then benches=("$@"); else benches=(placement nova cli); fi
venv=${OXSTACK_VENV:-$repo/.venv}
peers_bench=${PEERS_BENCH:-$repo/../shared/peers/bench/peers_bench.py}
[ -f "$peers_bench" ] || { echo "peers_bench.py not found at $peers_bench; set PEERS_BENCH" >&2; exit 1; }
[ -x "$venv/bin/python" ] || { echo "no venv at $venv; run tests/setup-python.sh" >&2; exit 1; }

cargo build --release -p oxstack --manifest-path "$repo/Cargo.toml" >&2
binary=$repo/target/release/oxstack

dir=$(mktemp -d /tmp/oxstack-bench.XXXXXX)
# The peer lab has no Neutron. With no dataplane and no bootstrap networks,
# nothing is plugged into the host here either.
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
export OS_AUTH_URL="http://127.0.0.1:$port/v3" OS_USERNAME=admin OS_PASSWORD=bench-admin-pw OS_PROJECT_NAME=admin \
    OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_IDENTITY_API_VERSION=3 \
    BENCH_NOVA_SEQ="${BENCH_NOVA_SEQ:-100}" OPENSTACK_CLI="$venv/bin/openstack"
# The peer lab raises Nova's quotas the same way to make room for the burst.
"$venv/bin/openstack" quota set --instances 1000 --cores 2000 --ram 2048000 admin
for bench in "${benches[@]}"; do
    "$venv/bin/python" - "$peers_bench" "$bench" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("peers_bench", sys.argv[1])
peers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peers)
peers.PLACEMENT_MV = {"OpenStack-API-Version": "placement 1.28"}
peers.BENCHES[sys.argv[2]](sys.argv[1:])
PY
done
echo "# server peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$pid/status")"
