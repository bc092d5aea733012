#!/usr/bin/env bash
# Runs Tempest's identity, image, network and compute API tests against one
# fresh `oxstack up --driver fake`.
#
# It starts oxstack on a free loopback port with its own data directory and a
# known admin password, and creates the external network `public` and the
# shared network `shared-private` with the admin token. It writes
# tempest.conf from tempest.conf.in, with the network extensions and the
# compute microversion range read from the running server.
# It runs `tempest run --regex REGEX` once and compares the failures of each
# service with its known-failures list (SERVICE-known-failures.txt). The exit
# status is non-zero only when a test fails that is not listed there (or when
# nothing could run).
#
# The server runs in the current directory, so started from the repository
# root it registers tools/guest-image/out/oxstack-guest.qcow2 as the public
# image oxstack-guest when that file exists.
#
# Usage: tests/tempest/run.sh
#   OXSTACK_BIN          oxstack binary [default: REPO/target/debug/oxstack]
#   OXSTACK_VENV         venv with tempest, from tests/setup-python.sh [default: REPO/.venv]
#   TEMPEST_WORKDIR      results, logs and the server's data [default: REPO/target/tempest];
#                        emptied at the start
#   TEMPEST_REGEX        test selection [default: the identity, image, network and
#                        compute API tests]
#   TEMPEST_CONCURRENCY  parallel test workers [default: 2]
#   TEMPEST_COUNTS_DIR   if set, receives identity.txt, image.txt, network.txt and compute.txt, each with
#                        "passed new_failed skipped known_failed"
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
oxstack="${OXSTACK_BIN:-$repo/target/debug/oxstack}"
venv="${OXSTACK_VENV:-$repo/.venv}"
work="${TEMPEST_WORKDIR:-$repo/target/tempest}"
default_regex='^tempest\.api\.(identity|image|network|compute)'
regex="${TEMPEST_REGEX:-$default_regex}"
concurrency="${TEMPEST_CONCURRENCY:-2}"

for tool in "$oxstack" "$venv/bin/tempest" "$venv/bin/stestr" "$venv/bin/python"; do
    if [[ ! -x "$tool" ]]; then
        echo "tempest: $tool is missing. Run 'cargo build -p oxstack' and tests/setup-python.sh first." >&2
        exit 1
    fi
done

rm -rf "$work"
mkdir -p "$work"
data_dir="$work/oxstack-data"
workspace="$work/workspace"
admin_password="tempest-admin-$RANDOM$RANDOM"

# Ask the kernel for free ports. Another process could take one before
# oxstack binds, and then oxstack exits with "cannot listen" and this run
# fails. Nothing listens on the second port, which tempest.conf uses in the
# http_image URL.
read -r port unused_port < <("$venv/bin/python" -c '
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))')
base_url="http://127.0.0.1:$port"

server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
trap stop_server EXIT

# This script creates the external network public itself, and the API tests
# need no host dataplane and no guest, so oxstack creates no bootstrap
# networks, plugs nothing into the host and runs servers on the fake driver.
config="$work/oxstack.toml"
printf '[network]\nbootstrap = false\n[netagent]\ndataplane = "none"\n[hypervisor]\ndriver = "fake"\n' > "$config"

echo "tempest: starting $oxstack on $base_url (data in $data_dir)"
"$oxstack" up --config "$config" --data-dir "$data_dir" --listen "127.0.0.1:$port" --admin-password "$admin_password" \
    > "$work/oxstack-stdout.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 300); do
    if curl -fs -o /dev/null "$base_url/v3"; then
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "tempest: oxstack exited before GET /v3 returned 200. Its output:" >&2
        cat "$work/oxstack-stdout.log" >&2
        exit 1
    fi
    sleep 0.2
done
if ! curl -fsS -o /dev/null "$base_url/v3"; then
    echo "tempest: GET $base_url/v3 timed out after 60 s. See $data_dir/logs/oxstack.log" >&2
    exit 1
fi

# Sends one request with the admin token and prints the response body. curl
# exits non-zero on a status of 400 or above, which fails the run.
admin_request() {
    local method="$1" path="$2" body="${3:-}"
    local args=(-fsS -X "$method" -H "X-Auth-Token: $admin_token" -H "Content-Type: application/json")
    if [[ -n "$body" ]]; then
        args+=(-d "$body")
    fi
    curl "${args[@]}" "$base_url$path"
}

admin_token="$(curl -fsS -D - -o /dev/null -H "Content-Type: application/json" -d '{"auth": {
    "identity": {"methods": ["password"], "password": {"user": {"name": "admin",
        "domain": {"id": "default"}, "password": "'"$admin_password"'"}}},
    "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}' \
    "$base_url/v3/auth/tokens" | tr -d '\r' | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p')"
if [[ -z "$admin_token" ]]; then
    echo "tempest: POST /v3/auth/tokens as admin returned no X-Subject-Token" >&2
    exit 1
fi

# The external network the floating IP and router gateway tests use.
public_network_id="$(admin_request POST /networking/v2.0/networks '{"network": {"name": "public",
    "router:external": true, "provider:network_type": "flat",
    "provider:physical_network": "public"}}' \
    | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["network"]["id"])')"
admin_request POST /networking/v2.0/subnets '{"subnet": {"name": "public_subnet",
    "network_id": "'"$public_network_id"'", "ip_version": 4, "cidr": "172.24.4.0/24",
    "enable_dhcp": false}}' > /dev/null

# The shared network servers boot on (tempest.conf [compute]
# fixed_network_name): Tempest creates no network per project here
# (create_isolated_networks = false), and without one servers get no ports
# and no addresses.
shared_network_id="$(admin_request POST /networking/v2.0/networks '{"network": {"name": "shared-private",
    "shared": true}}' \
    | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["network"]["id"])')"
admin_request POST /networking/v2.0/subnets '{"subnet": {"name": "shared-private-subnet",
    "network_id": "'"$shared_network_id"'", "ip_version": 4, "cidr": "10.200.0.0/16"}}' > /dev/null

# Tempest skips the tests of every extension not listed, so the list is
# exactly what the server reports.
network_extensions="$(admin_request GET /networking/v2.0/extensions \
    | "$venv/bin/python" -c 'import json, sys; print(",".join(e["alias"] for e in json.load(sys.stdin)["extensions"]))')"
read -r compute_min_microversion compute_max_microversion < <(admin_request GET /compute/v2.1/ \
    | "$venv/bin/python" -c 'import json, sys; v = json.load(sys.stdin)["version"]; print(v["min_version"], v["version"])')
if [[ -z "$network_extensions" || -z "${compute_max_microversion:-}" ]]; then
    echo "tempest: GET /networking/v2.0/extensions or GET /compute/v2.1/ returned no usable body" >&2
    exit 1
fi
image_ref="$(admin_request GET '/image/v2/images?name=oxstack-guest' \
    | "$venv/bin/python" -c 'import json, sys; print(next(i["id"] for i in json.load(sys.stdin)["images"]))')" || {
    echo "tempest: the image oxstack-guest is missing; build it with tools/guest-image/build.sh" >&2
    exit 1
}
echo "tempest: public network $public_network_id; compute microversions $compute_min_microversion to $compute_max_microversion"
echo "tempest: network extensions: $network_extensions"

"$venv/bin/tempest" init --workspace-path "$work/workspace.yaml" --name oxstack "$workspace" > /dev/null
mkdir -p "$workspace/logs"
sed -e "s|@IDENTITY_URI_V3@|$base_url/v3|" \
    -e "s|@ADMIN_PASSWORD@|$admin_password|" \
    -e "s|@LOG_DIR@|$workspace/logs|" \
    -e "s|@UNUSED_HTTP_URL@|http://127.0.0.1:$unused_port|" \
    -e "s|@PUBLIC_NETWORK_ID@|$public_network_id|" \
    -e "s|@NETWORK_EXTENSIONS@|$network_extensions|" \
    -e "s|@COMPUTE_MIN_MICROVERSION@|$compute_min_microversion|" \
    -e "s|@COMPUTE_MAX_MICROVERSION@|$compute_max_microversion|" \
    -e "s|@IMAGE_REF@|$image_ref|" \
    "$here/tempest.conf.in" > "$workspace/etc/tempest.conf"

echo "tempest: running '$regex' with concurrency $concurrency (log: $workspace/logs/tempest.log)"
started=$SECONDS
# Tempest exits non-zero when any test fails, so summarize.py decides the result instead.
(cd "$workspace" && "$venv/bin/tempest" run --workspace-path "$work/workspace.yaml" \
    --regex "$regex" --concurrency "$concurrency") > "$work/tempest-run.log" 2>&1 || true
echo "tempest: finished in $((SECONDS - started)) s; full output in $work/tempest-run.log"
tail -n 12 "$work/tempest-run.log"

stop_server

(cd "$workspace" && "$venv/bin/stestr" last --subunit) > "$work/results.subunit" || true
# Each service's failures are judged against its own list. A custom
# TEMPEST_REGEX may select one service only, so an empty selection passes then.
empty_args=()
if [[ -n "${TEMPEST_REGEX:-}" ]]; then
    empty_args=(--allow-empty)
fi
status=0
for service in identity image network compute; do
    echo
    echo "tempest: $service results"
    counts_args=()
    if [[ -n "${TEMPEST_COUNTS_DIR:-}" ]]; then
        mkdir -p "$TEMPEST_COUNTS_DIR"
        counts_args=(--counts "$TEMPEST_COUNTS_DIR/$service.txt")
    fi
    "$venv/bin/python" "$here/summarize.py" "$work/results.subunit" "$here/$service-known-failures.txt" \
        --prefix "tempest.api.$service." "${empty_args[@]}" "${counts_args[@]}" || status=1
done
exit $status
