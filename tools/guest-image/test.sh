#!/bin/bash
# Boot out/oxstack-guest.qcow2 under QEMU (TCG) and check its boot contract
# on the serial console. Builds the image first when it is missing and
# installs QEMU and genisoimage with apt-get when they are missing (as root).
#
# Scenarios:
#   config-drive      ISO 9660 config drive labelled config-2 on the IDE
#                     CD-ROM and one NIC on QEMU user networking. After the
#                     login prompt, an ACPI power-button press must power the
#                     guest off.
#   metadata-service  no config drive; meta_data.json over HTTP from
#                     169.254.169.254 (a QEMU guestfwd to busybox httpd), two
#                     NICs, no user data.
#   tap               a tap device in a network namespace made for the test:
#                     DHCP from busybox udhcpd, metadata from busybox httpd on
#                     169.254.169.254 behind the DHCP router, a user_data that
#                     is not a script, and the guest must reply to ping.
#                     Skipped unless run as root with "ip netns" working.
# User networking uses restrict=on, so the guest reaches nothing outside QEMU.
#
# Environment:
#   GUEST_IMAGE   image to test (default: out/oxstack-guest.qcow2)
#   BOOT_TIMEOUT  seconds each boot may take to show every expected line
#                 (default 120)
#   KEEP_LOGS     directory to copy the serial console logs to
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
image=${GUEST_IMAGE:-$here/out/oxstack-guest.qcow2}
boot_timeout=${BOOT_TIMEOUT:-120}

work=""
qemu_pid=""
udhcpd_pid=""
httpd_pid=""
netns=""
passed=0
failed=0
skipped=0

log() {
    echo "test.sh: $*" >&2
}

die() {
    echo "test.sh: error: $*" >&2
    exit 1
}

stop_qemu() {
    if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
    fi
    qemu_pid=""
}

cleanup() {
    stop_qemu
    local pid
    for pid in $udhcpd_pid $httpd_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [ -z "$netns" ] || ip netns delete "$netns" 2>/dev/null || true
    if [ -n "$work" ]; then
        if [ -n "${KEEP_LOGS:-}" ]; then
            mkdir -p "$KEEP_LOGS"
            cp "$work"/*.log "$KEEP_LOGS/" 2>/dev/null || true
        fi
        rm -rf "$work"
    fi
}

install_test_tools() {
    local -a needed=()
    # qemu-utils goes along with qemu-system-x86 because apt removes a
    # qemu-utils of another QEMU version (such as one from backports) when it
    # installs qemu-system-x86.
    if ! command -v qemu-system-x86_64 >/dev/null || ! command -v qemu-img >/dev/null; then
        needed+=(qemu-system-x86 qemu-utils)
    fi
    command -v genisoimage >/dev/null || needed+=(genisoimage)
    [ "${#needed[@]}" -eq 0 ] && return
    [ "$(id -u)" -eq 0 ] || die "missing packages ${needed[*]}. Run as root or install them."
    log "installing ${needed[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
    local tool
    for tool in qemu-system-x86_64 qemu-img genisoimage; do
        command -v "$tool" >/dev/null || die "$tool still missing after apt-get install ${needed[*]}"
    done
}

# Print the path of a busybox binary for the host side of the tests (httpd,
# udhcpd, ping): the one build.sh extracted, the host's, or a fresh download.
find_busybox() {
    if [ -x "$here/build/busybox/bin/busybox" ]; then
        echo "$here/build/busybox/bin/busybox"
    elif command -v busybox >/dev/null; then
        command -v busybox
    else
        (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root busybox-static &&
            dpkg-deb -x busybox-static_*.deb busybox-static) >&2
        echo "$work/busybox-static/bin/busybox"
    fi
}

# Start QEMU for scenario NAME with the test image (through a throw-away
# overlay) and the extra arguments. The serial console goes to $work/NAME.log
# and the QEMU monitor reads commands from the FIFO $work/NAME.monitor.
# PREFIX is a command to run QEMU under (e.g. "ip netns exec NS"), or "".
start_qemu() {
    local name=$1 prefix=$2
    shift 2
    local overlay=$work/$name.qcow2 monitor=$work/$name.monitor

    qemu-img create -q -f qcow2 -b "$image" -F qcow2 "$overlay"
    mkfifo "$monitor"
    # $prefix is split into words on purpose.
    # shellcheck disable=SC2086
    $prefix qemu-system-x86_64 -accel tcg -m 128 -no-reboot \
        -display none -serial "file:$work/$name.log" -monitor stdio \
        -drive "file=$overlay,if=virtio" "$@" \
        < "$monitor" > "$work/$name.qemu.log" 2>&1 &
    qemu_pid=$!
    # Keep the FIFO open for writing so QEMU does not read end-of-file.
    exec 3> "$monitor"
    boot_started=$(date +%s.%N)
}

# Wait until the console log of scenario NAME contains every LINE (fixed
# strings), at most $boot_timeout seconds. Prints what is missing on failure.
wait_for_lines() {
    local name=$1
    shift
    local console=$work/$name.log deadline=$(( $(date +%s) + boot_timeout ))
    local line missing

    while true; do
        missing=()
        for line in "$@"; do
            grep -aqF -- "$line" "$console" 2>/dev/null || missing+=("$line")
        done
        [ "${#missing[@]}" -eq 0 ] && return 0

        if ! kill -0 "$qemu_pid" 2>/dev/null; then
            log "$name: QEMU exited before the guest printed every expected line"
            break
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "$name: timed out after $boot_timeout s"
            break
        fi
        sleep 0.5
    done

    for line in "${missing[@]}"; do
        log "$name: missing console line: $line"
    done
    log "$name: QEMU output:"
    # The monitor prompt has no line end.
    { sed 's/^/    /' "$work/$name.qemu.log"; echo; } >&2 || true
    log "$name: last 40 lines of the serial console:"
    tr -d '\r' < "$console" 2>/dev/null | tail -n 40 | sed 's/^/    /' >&2 || true
    return 1
}

# Print the seconds since start_qemu, with one decimal.
elapsed_since_start() {
    awk -v start="$boot_started" -v now="$(date +%s.%N)" 'BEGIN { printf "%.1f", now - start }'
}

pass() {
    log "PASS $1: $2"
    passed=$((passed + 1))
}

fail() {
    log "FAIL $1: $2"
    failed=$((failed + 1))
}

# Write a meta_data.json and optional user_data under DIR/openstack/latest.
write_metadata() {
    local dir=$1/openstack/latest meta_data=$2 user_data=${3:-}
    mkdir -p "$dir"
    printf '%s\n' "$meta_data" > "$dir/meta_data.json"
    if [ -n "$user_data" ]; then
        printf '%s\n' "$user_data" > "$dir/user_data"
    fi
}

test_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOxStackGuestImageTestKey test@oxstack"

scenario_config_drive() {
    local name=config-drive user_data
    # shellcheck disable=SC2016 # the guest expands these.
    user_data='#!/bin/sh
echo "oxstack-guest-test: user-data ran as uid $(id -u) on $(hostname), $(wc -l < /root/.ssh/authorized_keys) authorized key"
exit 7'
    write_metadata "$work/config-drive" \
        '{"uuid": "0b3a6e52-8d0c-4f43-9b7e-2f4b0c6f0001", "name": "OxStack Test VM",
          "hostname": "oxstack-test.novalocal", "launch_index": 0,
          "public_keys": {"test": "'"$test_key"'\n"},
          "keys": [{"name": "test", "type": "ssh", "data": "'"$test_key"'\n"}]}' \
        "$user_data"
    genisoimage -quiet -V config-2 -r -J -o "$work/config-drive.iso" "$work/config-drive"

    start_qemu "$name" "" \
        -drive "file=$work/config-drive.iso,media=cdrom,readonly=on" \
        -netdev user,id=n0,restrict=on \
        -device virtio-net-pci,netdev=n0,mac=fa:16:3e:00:00:01

    if ! wait_for_lines "$name" \
        "oxstack-guest: eth0 fa:16:3e:00:00:01 10.0.2.15/24" \
        "oxstack-guest: metadata source config-drive /dev/sr0" \
        "oxstack-guest: name OxStack Test VM" \
        "oxstack-guest: hostname oxstack-test" \
        "oxstack-guest: ssh-key ${test_key:0:40}" \
        "oxstack-guest-test: user-data ran as uid 0 on oxstack-test, 1 authorized key" \
        "oxstack-guest: user-data exit 7" \
        "oxstack-test login:"; then
        fail "$name" "boot contract lines missing"
        stop_qemu
        return
    fi
    local boot_seconds
    boot_seconds=$(elapsed_since_start)

    # QEMU's system_powerdown presses the ACPI power button.
    echo system_powerdown >&3
    local deadline=$(( $(date +%s) + 60 ))
    while kill -0 "$qemu_pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
        sleep 0.5
    done
    if kill -0 "$qemu_pid" 2>/dev/null; then
        fail "$name" "guest did not power off within 60 s of the ACPI power button"
        stop_qemu
        return
    fi
    wait "$qemu_pid" 2>/dev/null || true
    qemu_pid=""
    pass "$name" "login prompt after $boot_seconds s, powered off on the ACPI power button"
}

scenario_metadata_service() {
    local name=metadata-service busybox
    busybox=$(find_busybox)
    # No "hostname" key: the guest derives its host name from "name".
    write_metadata "$work/metadata-service" \
        '{"uuid": "0b3a6e52-8d0c-4f43-9b7e-2f4b0c6f0002", "name": "Second Test VM",
          "public_keys": {"test": "'"$test_key"'"}}'

    # guestfwd only accepts addresses inside the user network, so this NIC's
    # network is 169.254.169.0/24 and QEMU hands each connection to
    # 169.254.169.254:80 to a new "busybox httpd -i".
    start_qemu "$name" "" \
        -netdev "user,id=n0,restrict=on,net=169.254.169.0/24,guestfwd=tcp:169.254.169.254:80-cmd:$busybox httpd -i -h $work/metadata-service" \
        -device virtio-net-pci,netdev=n0,mac=fa:16:3e:00:00:01 \
        -netdev user,id=n1,restrict=on,net=10.0.3.0/24 \
        -device virtio-net-pci,netdev=n1,mac=fa:16:3e:00:00:02

    if ! wait_for_lines "$name" \
        "oxstack-guest: eth0 fa:16:3e:00:00:01 169.254.169.15/24" \
        "oxstack-guest: eth1 fa:16:3e:00:00:02 10.0.3.15/24" \
        "oxstack-guest: metadata source http://169.254.169.254/openstack/latest" \
        "oxstack-guest: hostname second-test-vm" \
        "oxstack-guest: ssh-key ${test_key:0:40}" \
        "oxstack-guest: user-data none" \
        "second-test-vm login:"; then
        fail "$name" "boot contract lines missing"
        stop_qemu
        return
    fi
    pass "$name" "login prompt after $(elapsed_since_start) s"
    stop_qemu
}

scenario_tap() {
    local name=tap busybox
    if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null; then
        log "SKIP $name: needs root and iproute2"
        skipped=$((skipped + 1))
        return
    fi
    netns=oxstack-guest-test-$$
    if ! ip netns add "$netns" 2>/dev/null; then
        log "SKIP $name: ip netns add failed"
        netns=""
        skipped=$((skipped + 1))
        return
    fi
    busybox=$(find_busybox)

    # Only the "keys" list carries the SSH key here.
    write_metadata "$work/tap" \
        '{"uuid": "0b3a6e52-8d0c-4f43-9b7e-2f4b0c6f0003", "name": "Tap Test VM", "hostname": "tap-vm",
          "keys": [{"name": "test", "type": "ssh", "data": "'"$test_key"'"}]}' \
        '#cloud-config
hostname: not-applied'

    # 192.0.2.0/24 (TEST-NET-1) and 169.254.169.254 exist only inside this
    # namespace. The guest reaches the metadata address through its default
    # route, as it would through a cloud's router.
    ip -n "$netns" link set lo up
    ip -n "$netns" addr add 169.254.169.254/32 dev lo
    ip -n "$netns" tuntap add dev tap0 mode tap
    ip -n "$netns" addr add 192.0.2.1/24 dev tap0
    ip -n "$netns" link set tap0 up
    cat > "$work/udhcpd.conf" <<EOF
start 192.0.2.100
end 192.0.2.110
interface tap0
lease_file $work/udhcpd.leases
pidfile $work/udhcpd.pid
static_lease fa:16:3e:00:00:03 192.0.2.10
option subnet 255.255.255.0
option router 192.0.2.1
EOF
    : > "$work/udhcpd.leases"
    ip netns exec "$netns" "$busybox" udhcpd -f "$work/udhcpd.conf" > "$work/udhcpd.out" 2>&1 &
    udhcpd_pid=$!
    ip netns exec "$netns" "$busybox" httpd -f -p 169.254.169.254:80 -h "$work/tap" > "$work/httpd.out" 2>&1 &
    httpd_pid=$!

    start_qemu "$name" "ip netns exec $netns" \
        -netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
        -device virtio-net-pci,netdev=n0,mac=fa:16:3e:00:00:03

    if ! wait_for_lines "$name" \
        "oxstack-guest: eth0 fa:16:3e:00:00:03 192.0.2.10/24" \
        "oxstack-guest: metadata source http://169.254.169.254/openstack/latest" \
        "oxstack-guest: hostname tap-vm" \
        "oxstack-guest: ssh-key ${test_key:0:40}" \
        "oxstack-guest: user-data ignored: it does not start with #!" \
        "tap-vm login:"; then
        fail "$name" "boot contract lines missing"
        stop_qemu
        return
    fi
    local boot_seconds
    boot_seconds=$(elapsed_since_start)

    if ip netns exec "$netns" "$busybox" ping -c 3 -W 5 192.0.2.10 > "$work/ping.out" 2>&1; then
        pass "$name" "login prompt after $boot_seconds s, guest replies to ping"
    else
        sed 's/^/    /' "$work/ping.out" >&2
        fail "$name" "guest 192.0.2.10 does not reply to ping"
    fi
    stop_qemu
}

main() {
    [ "$(uname -m)" = x86_64 ] || die "this test runs the amd64 guest on an x86_64 host"
    install_test_tools
    if [ ! -f "$image" ]; then
        [ -z "${GUEST_IMAGE:-}" ] || die "image $image not found"
        log "$image not found; building it"
        "$here/build.sh"
    fi

    trap cleanup EXIT
    # Exit through the EXIT trap on a signal too, so QEMU and the namespace go.
    trap 'exit 130' INT
    trap 'exit 143' TERM
    work=$(mktemp -d /tmp/oxstack-guest-test.XXXXXX)

    scenario_config_drive
    scenario_metadata_service
    scenario_tap

    echo "guest-image: $passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ]
}

main "$@"
