#!/usr/bin/env bash
# The README's first command: on a fresh Debian 12 machine (as root, with
# Rust), installs what the cloud needs, builds OxStack and the test guest,
# starts `oxstack up`, boots the demo server `demo` from the unmodified
# `openstack` CLI, prints its address and console, and keeps the cloud
# running in the foreground until Ctrl-C.
#
# Usage: bash tools/demo.sh [OPTIONS FOR oxstack up]
#   OXSTACK_DATA_DIR  the cloud's data directory [default: /var/lib/oxstack]
#   OXSTACK_BIN       use this oxstack binary instead of building the release one
#   OXSTACK_DEMO_EXIT=1  once the demo server is ACTIVE and printed its
#                     address, delete it and its network and stop the cloud
#                     (CI runs it this way)
#
# A second run resumes the same cloud and boots `demo` again only when it
# is gone. Inside a virtual machine (the `hypervisor` CPU flag), KVM is
# nested and often slower than software emulation, so the script passes
# `--virt-type qemu` unless you pass a `--virt-type` yourself.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
data_dir="${OXSTACK_DATA_DIR:-/var/lib/oxstack}"
export OXSTACK_VENV="${OXSTACK_VENV:-$repo/.venv}"
log() { echo "demo: $*"; }

if [[ $(id -u) -ne 0 ]]; then
    echo "demo: run as root: QEMU's taps, the bridges and the DHCP namespaces need it" >&2
    exit 1
fi

# qemu-system-x86 runs the servers. dnsmasq-base serves DHCP in namespaces,
# and dnsmasq-utils releases the leases of deleted ports. nftables carries
# security groups and routers. genisoimage writes config drives, qemu-utils
# makes disk overlays, python3-venv holds the CLI and openssh-client makes
# the demo key pair.
packages=(qemu-system-x86 qemu-utils genisoimage dnsmasq-base dnsmasq-utils nftables kmod iproute2 openssh-client python3 python3-venv curl ca-certificates)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

log "preparing the openstack CLI (tests/setup-python.sh)"
bash tests/setup-python.sh > /dev/null
openstack="$OXSTACK_VENV/bin/openstack"

if [[ ! -f tools/guest-image/out/oxstack-guest.qcow2 ]]; then
    log "building the test guest (tools/guest-image/build.sh)"
    bash tools/guest-image/build.sh
fi

if [[ -n "${OXSTACK_BIN:-}" ]]; then
    oxstack="$OXSTACK_BIN"
else
    log "building oxstack (cargo build --release)"
    cargo build --release -p oxstack
    oxstack="$repo/target/release/oxstack"
fi

up_args=("$@")
if ! printf '%s\n' "${up_args[@]}" | grep -q -- '--virt-type' && grep -qw hypervisor /proc/cpuinfo; then
    log "this machine is a virtual machine; using software emulation (--virt-type qemu)"
    up_args+=(--virt-type qemu)
fi

mkdir -p "$data_dir"
log "starting oxstack up (output in $data_dir/demo-up.log)"
"$oxstack" up --data-dir "$data_dir" "${up_args[@]}" > "$data_dir/demo-up.log" 2>&1 &
up_pid=$!
stop_cloud() {
    if [[ "${OXSTACK_DEMO_EXIT:-}" == "1" && -f "$data_dir/openrc" ]] && kill -0 "$up_pid" 2>/dev/null; then
        remove_demo || true
    fi
    if kill -0 "$up_pid" 2>/dev/null; then
        kill -TERM "$up_pid"
        wait "$up_pid" 2>/dev/null || true
    fi
    # br-ex and anything the deletions above missed go with the cloud.
    if [[ "${OXSTACK_DEMO_EXIT:-}" == "1" ]]; then
        "$oxstack" netagent teardown --data-dir "$data_dir" || true
    fi
}
# In CI mode the script leaves the host as it found it: the demo server,
# the router and the networks go, the network agent removes their
# bridges, namespaces, dnsmasq and nftables rules before the cloud stops,
# and `oxstack netagent teardown` removes br-ex after it.
remove_demo() {
    log "OXSTACK_DEMO_EXIT=1: deleting the demo server, router1 and the networks, then stopping the cloud"
    os server delete --wait demo 2> /dev/null || true
    os router remove subnet router1 private-subnet 2> /dev/null || true
    os router delete router1 2> /dev/null || true
    os network delete private public demo-net 2> /dev/null || true
    sleep 3
}
trap stop_cloud EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 600); do
    grep -q "is ready" "$data_dir/demo-up.log" 2>/dev/null && break
    if ! kill -0 "$up_pid" 2>/dev/null; then
        cat "$data_dir/demo-up.log" >&2
        echo "demo: oxstack up exited; its output is above" >&2
        exit 1
    fi
    sleep 0.2
done
grep -q "is ready" "$data_dir/demo-up.log" || { echo "demo: oxstack up did not get ready in 120 s" >&2; exit 1; }

# shellcheck disable=SC1091
source "$data_dir/openrc"
os() { "$openstack" "$@"; }

# `oxstack up` creates the tenant network `private` on its first start,
# with a router to the external network `public`. A cloud without it gets
# the network demo-net.
network=private
if ! os network show "$network" > /dev/null 2>&1; then
    network=demo-net
    if ! os network show "$network" > /dev/null 2>&1; then
        log "creating network demo-net with subnet 192.168.77.0/24"
        os network create demo-net > /dev/null
        os subnet create --network demo-net --subnet-range 192.168.77.0/24 demo-subnet > /dev/null
    fi
fi
if ! os security group rule list default -f value -c "IP Protocol" | grep -qx icmp; then
    os security group rule create --protocol icmp default > /dev/null
    os security group rule create --protocol tcp --dst-port 22 default > /dev/null
fi
if ! os keypair show demo-key > /dev/null 2>&1; then
    key_file="$data_dir/demo-key"
    [[ -f "$key_file.pub" ]] || ssh-keygen -q -t ed25519 -N '' -f "$key_file" 2>/dev/null \
        || { echo "demo: ssh-keygen is missing; install openssh-client" >&2; exit 1; }
    os keypair create --public-key "$key_file.pub" demo-key > /dev/null
fi
if ! os server show demo > /dev/null 2>&1; then
    log "booting server demo: openstack server create --flavor m1.nano --image oxstack-guest --nic net-id=$network --security-group default --key-name demo-key --wait demo"
    os server create --flavor m1.nano --image oxstack-guest --nic "net-id=$network" \
        --security-group default --key-name demo-key --wait demo > /dev/null
fi
os server show demo -c id -c name -c status -c addresses -c flavor -c image
address="$(os server show demo -f value -c addresses | grep -oE '[0-9]+(\.[0-9]+){3}' | head -n 1)"

log "waiting for the guest's DHCP line on its console"
for _ in $(seq 1 120); do
    os console log show demo 2>/dev/null | grep -q " $address/" && break
    sleep 1
done
os console log show demo | grep "oxstack-guest:" || true

echo
echo "The demo server is ACTIVE at $address. Try:"
echo "  source $data_dir/openrc; $openstack server list"
echo "  ip netns exec qdhcp-\$($openstack network show $network -f value -c id) ping $address"
if [[ "${OXSTACK_DEMO_EXIT:-}" == "1" ]]; then
    os console log show demo | grep -q " $address/" || { echo "demo: the guest never printed its address" >&2; exit 1; }
    exit 0
fi
echo "The cloud keeps running; Ctrl-C stops it (servers keep running and are found again on the next start)."
wait "$up_pid"
