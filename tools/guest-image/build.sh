#!/bin/bash
# Build out/oxstack-guest.qcow2, the small BIOS-bootable test guest, from
# Debian packages: the Debian 12 cloud kernel, busybox-static and syslinux.
#
# The guest runs from an initramfs (busybox, the kernel modules it needs and
# the scripts under rootfs/). The disk contains an MBR with syslinux's boot
# code and one FAT16 partition with syslinux, the kernel and the initramfs.
# Nothing is mounted during the build, so it needs no loop devices. It
# installs missing build tools with apt-get, so it runs as root on Debian 12
# (amd64).
#
# Environment:
#   KERNEL_PACKAGE  kernel package to use instead of the one that
#                   linux-image-cloud-amd64 depends on
#   SOURCE_DATE_EPOCH  modification time of the files in the initramfs
#                   (default 0)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build_dir=$here/build
out_dir=$here/out
image=$out_dir/oxstack-guest.qcow2
source_date_epoch=${SOURCE_DATE_EPOCH:-0}

# Modules that the guest's boot script (rootfs/etc/init.d/rcS) loads with
# modprobe, in this order. build.sh copies them and their dependencies (from
# the kernel's modules.dep) into the initramfs.
# virtio_pci: virtio devices on QEMU's PCI bus. virtio_net, virtio_blk: NICs
# and disks (a VFAT config drive can be a virtio disk). virtio_scsi, sd_mod:
# disks on a virtio-scsi controller. ata_piix, sr_mod, isofs: a config drive
# on the IDE CD-ROM of QEMU's default "pc" machine (this kernel has no AHCI,
# so a SATA CD-ROM on "q35" is not supported). vfat and the nls_* modules:
# VFAT config drives (this kernel's default FAT iocharset is ascii, and its
# default codepage 437). button, evdev: the ACPI power button for acpid.
# virtio_rng: entropy from the host.
guest_modules=(
    virtio_pci
    virtio_net
    virtio_blk
    virtio_scsi
    sd_mod
    ata_piix
    ata_generic
    sr_mod
    isofs
    vfat
    nls_cp437
    nls_ascii
    nls_iso8859-1
    nls_utf8
    button
    evdev
    virtio_rng
)

log() {
    echo "build.sh: $*" >&2
}

fail() {
    echo "build.sh: error: $*" >&2
    exit 1
}

# Install the Debian packages that provide missing build tools.
install_build_tools() {
    local -A needed=()
    command -v apt-get >/dev/null || fail "apt-get not found; this script builds on Debian 12"
    command -v dpkg-deb >/dev/null || needed[dpkg]=1
    command -v cpio >/dev/null || needed[cpio]=1
    command -v gzip >/dev/null || needed[gzip]=1
    command -v depmod >/dev/null || needed[kmod]=1
    command -v mkfs.vfat >/dev/null || needed[dosfstools]=1
    command -v mcopy >/dev/null || needed[mtools]=1
    command -v syslinux >/dev/null || needed[syslinux]=1
    [ -f /usr/lib/syslinux/mbr/mbr.bin ] || needed[syslinux-common]=1
    command -v sfdisk >/dev/null || needed[fdisk]=1
    command -v qemu-img >/dev/null || needed[qemu-utils]=1

    if [ "${#needed[@]}" -eq 0 ]; then
        return
    fi
    [ "$(id -u)" -eq 0 ] || fail "missing packages ${!needed[*]}. Run as root or install them."
    log "installing ${!needed[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${!needed[@]}" >/dev/null
}

# Print the candidate version of PACKAGE in the apt package lists, or nothing.
candidate_version() {
    apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'
}

# Run apt-get update when the package lists are missing, as on a fresh
# container, or when they lack the packages the build downloads.
ensure_package_lists() {
    if [ -z "$(candidate_version busybox-static)" ] || [ -z "$(candidate_version linux-image-cloud-amd64)" ]; then
        log "updating the apt package lists"
        apt-get update -qq
    fi
}

# Print the versioned kernel package behind the linux-image-cloud-amd64
# metapackage, for example linux-image-6.1.0-57-cloud-amd64.
resolve_kernel_package() {
    if [ -n "${KERNEL_PACKAGE:-}" ]; then
        echo "$KERNEL_PACKAGE"
        return
    fi
    local package
    package=$(apt-cache depends linux-image-cloud-amd64 |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
    [ -n "$package" ] || fail "linux-image-cloud-amd64 not found in the apt package lists"
    echo "$package"
}

# Download PACKAGE into build/debs unless that version is already there, and
# print the path of the .deb file.
download_package() {
    local package=$1 version file
    version=$(candidate_version "$package")
    [ -n "$version" ] || fail "package $package not found in the apt package lists"
    # apt-get download names files PACKAGE_VERSION_ARCH.deb with ":" written as %3a.
    file=$build_dir/debs/${package}_${version//:/%3a}_amd64.deb
    if [ ! -f "$file" ]; then
        log "downloading $package $version"
        # The sandbox user _apt cannot write to a directory owned by root.
        if ! (cd "$build_dir/debs" && apt-get download -qq -o APT::Sandbox::User=root "$package=$version"); then
            fail "apt-get download $package=$version failed. If the mirror no longer has that version, run apt-get update and retry."
        fi
    fi
    [ -f "$file" ] || fail "apt-get download did not produce $file"
    echo "$file"
}

# Copy the modules in guest_modules and everything they depend on from the
# extracted kernel package to the initramfs tree, then index them with depmod.
install_modules() {
    local kernel_root=$1 kernel_version=$2 rootfs=$3
    local module_dir=$kernel_root/lib/modules/$kernel_version
    local target_dir=$rootfs/lib/modules/$kernel_version
    local module line path

    depmod -b "$kernel_root" "$kernel_version"
    mkdir -p "$target_dir"
    for module in "${guest_modules[@]}"; do
        # modules.dep lines read "kernel/path/name.ko: dependency.ko ...". File
        # names may use "-" where module names use "_".
        line=$(awk -v name="$module" '
            { file = $1; sub(/:$/, "", file); base = file; sub(/.*\//, "", base); sub(/\.ko(\.[a-z]+)?$/, "", base)
              gsub(/-/, "_", base); wanted = name; gsub(/-/, "_", wanted)
              if (base == wanted) { print; exit } }' "$module_dir/modules.dep")
        if [ -z "$line" ]; then
            grep -qE "/${module//_/[-_]}\.ko" "$module_dir/modules.builtin" ||
                fail "module $module is neither in modules.dep nor built into kernel $kernel_version"
            continue
        fi
        for path in ${line/:/}; do
            mkdir -p "$target_dir/$(dirname "$path")"
            cp "$module_dir/$path" "$target_dir/$path"
        done
    done
    cp "$module_dir/modules.order" "$module_dir/modules.builtin" "$module_dir/modules.builtin.modinfo" "$target_dir/"
    depmod -b "$rootfs" "$kernel_version"
    printf '%s\n' "${guest_modules[@]}" > "$rootfs/etc/modules"
}

build_rootfs() {
    local busybox_root=$1 rootfs=$2 applet

    cp -a "$here/rootfs/." "$rootfs/"
    mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,mnt,root,var/log}
    chmod 1777 "$rootfs/tmp"
    chmod 700 "$rootfs/root"
    # Set the modes here so that a checkout without executable bits still works.
    chmod 755 "$rootfs/init" "$rootfs/etc/init.d/rcS" "$rootfs/usr/share/udhcpc/default.script" \
        "$rootfs/etc/acpi/PWRF/00000080"
    ln -s ../run "$rootfs/var/run"

    cp "$busybox_root/bin/busybox" "$rootfs/bin/busybox"
    # --list-full prints each applet with its install path, e.g. usr/bin/awk.
    for applet in $("$rootfs/bin/busybox" --list-full); do
        [ -e "$rootfs/$applet" ] || ln -s /bin/busybox "$rootfs/$applet"
    done

    find "$rootfs" -exec touch -h -d "@$source_date_epoch" {} +
}

# Write the initramfs as a gzip-compressed newc cpio archive.
pack_initramfs() {
    local rootfs=$1 output=$2
    (cd "$rootfs" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
        gzip -9 -n > "$output"
}

write_syslinux_config() {
    cat > "$1" <<'EOF'
SERIAL 0 115200
DEFAULT oxstack
PROMPT 0
TIMEOUT 0
LABEL oxstack
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND console=tty0 console=ttyS0,115200 panic=10 quiet
EOF
}

# Build a raw disk: MBR boot code, one bootable FAT16 partition from 1 MiB,
# with syslinux, the kernel and the initramfs on it.
build_disk() {
    local kernel=$1 initramfs=$2 disk=$3
    local partition=$build_dir/partition.img config=$build_dir/syslinux.cfg
    local payload_mib partition_mib

    # Room for the files plus 4 MiB for syslinux, FAT tables and slack.
    payload_mib=$(( ($(stat -c %s "$kernel") + $(stat -c %s "$initramfs") + 1048575) / 1048576 ))
    partition_mib=$(( payload_mib + 4 ))
    [ "$partition_mib" -ge 16 ] || partition_mib=16

    rm -f "$partition" "$disk"
    # -h 2048: the boot sector's hidden-sector count, set to the partition's
    # first LBA as it would be for a file system made inside the partition.
    mkfs.vfat -C -F 16 -n OXSTACK -h 2048 -i 0ddc0ffe "$partition" $(( partition_mib * 1024 )) >/dev/null
    write_syslinux_config "$config"
    export MTOOLS_SKIP_CHECK=1
    mcopy -i "$partition" "$kernel" ::/vmlinuz
    mcopy -i "$partition" "$initramfs" ::/initrd.img
    mcopy -i "$partition" "$config" ::/syslinux.cfg
    syslinux --install "$partition"

    truncate -s $(( (partition_mib + 1) * 1048576 )) "$disk"
    printf 'label: dos\nlabel-id: 0x0ddc0ffe\nstart=2048, type=e, bootable\n' | sfdisk -q "$disk"
    dd if=/usr/lib/syslinux/mbr/mbr.bin of="$disk" bs=440 count=1 conv=notrunc status=none
    dd if="$partition" of="$disk" bs=1M seek=1 conv=notrunc status=none
}

main() {
    [ "$(uname -m)" = x86_64 ] || fail "build.sh runs the amd64 busybox to list its applets, so it needs an x86_64 host"
    install_build_tools
    ensure_package_lists
    mkdir -p "$build_dir/debs" "$out_dir"

    local kernel_package kernel_deb busybox_deb kernel_version
    kernel_package=$(resolve_kernel_package)
    kernel_deb=$(download_package "$kernel_package")
    busybox_deb=$(download_package busybox-static)

    rm -rf "$build_dir/kernel" "$build_dir/busybox" "$build_dir/rootfs"
    log "extracting $(basename "$kernel_deb") and $(basename "$busybox_deb")"
    dpkg-deb -x "$kernel_deb" "$build_dir/kernel"
    dpkg-deb -x "$busybox_deb" "$build_dir/busybox"
    kernel_version=$(ls "$build_dir/kernel/lib/modules")
    [ "$(echo "$kernel_version" | wc -l)" -eq 1 ] || fail "expected one kernel version in $kernel_deb, found: $kernel_version"

    mkdir -p "$build_dir/rootfs/etc"
    install_modules "$build_dir/kernel" "$kernel_version" "$build_dir/rootfs"
    build_rootfs "$build_dir/busybox" "$build_dir/rootfs"
    pack_initramfs "$build_dir/rootfs" "$build_dir/initrd.img"

    build_disk "$build_dir/kernel/boot/vmlinuz-$kernel_version" "$build_dir/initrd.img" "$build_dir/disk.raw"
    rm -f "$image"
    qemu-img convert -f raw -O qcow2 "$build_dir/disk.raw" "$image"

    log "kernel $kernel_version, initramfs $(( $(stat -c %s "$build_dir/initrd.img") / 1024 )) KiB"
    log "wrote $image ($(( $(stat -c %s "$image") / 1024 )) KiB, virtual size $(( $(stat -c %s "$build_dir/disk.raw") / 1048576 )) MiB)"
}

main "$@"
