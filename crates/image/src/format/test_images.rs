//! Minimal valid images of every format, built byte by byte, for unit tests
//! that then corrupt single fields. Only the structures the inspector reads
//! are filled in; these are not complete images that qemu could open.

use super::vhdx::{FILE_PARAMETERS, METADATA_REGION, VIRTUAL_DISK_SIZE};

pub(crate) fn put_be_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

pub(crate) fn put_be_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_be_bytes());
}

pub(crate) fn put_le_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn put_le_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn put_le_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

fn qcow2(version: u32, virtual_size: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; 4096];
    bytes[..4].copy_from_slice(b"QFI\xfb");
    put_be_u32(&mut bytes, 4, version);
    put_be_u32(&mut bytes, 20, 16);
    put_be_u64(&mut bytes, 24, virtual_size);
    put_be_u32(&mut bytes, 36, 1);
    put_be_u64(&mut bytes, 40, 0x30000);
    put_be_u64(&mut bytes, 48, 0x10000);
    put_be_u32(&mut bytes, 56, 1);
    if version == 3 {
        put_be_u32(&mut bytes, 96, 4);
        put_be_u32(&mut bytes, 100, 104);
    }
    bytes
}

pub(crate) fn qcow2_v2(virtual_size: u64) -> Vec<u8> {
    qcow2(2, virtual_size)
}

pub(crate) fn qcow2_v3(virtual_size: u64) -> Vec<u8> {
    qcow2(3, virtual_size)
}

pub(crate) fn qcow2_with_backing(name: &[u8]) -> Vec<u8> {
    let mut bytes = qcow2_v3(1 << 20);
    put_be_u64(&mut bytes, 8, 512);
    put_be_u32(&mut bytes, 16, name.len() as u32);
    bytes[512..512 + name.len()].copy_from_slice(name);
    bytes
}

/// Writes one header extension right after a version 3 header that has none.
pub(crate) fn qcow2_add_extension(bytes: &mut [u8], extension_type: u32, data: &[u8]) {
    put_be_u32(bytes, 104, extension_type);
    put_be_u32(bytes, 108, data.len() as u32);
    bytes[112..112 + data.len()].copy_from_slice(data);
}

pub(crate) fn qed(virtual_size: u64, backing: Option<&[u8]>) -> Vec<u8> {
    let mut bytes = vec![0u8; 4096];
    bytes[..4].copy_from_slice(b"QED\0");
    put_le_u32(&mut bytes, 4, 65536);
    put_le_u32(&mut bytes, 8, 4);
    put_le_u32(&mut bytes, 12, 1);
    put_le_u64(&mut bytes, 48, virtual_size);
    if let Some(name) = backing {
        put_le_u64(&mut bytes, 16, 1);
        put_le_u32(&mut bytes, 56, 64);
        put_le_u32(&mut bytes, 60, name.len() as u32);
        bytes[64..64 + name.len()].copy_from_slice(name);
    }
    bytes
}

pub(crate) fn ploop(sectors: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; 4096];
    bytes[..16].copy_from_slice(b"WithouFreSpacExt");
    put_le_u32(&mut bytes, 16, 2);
    put_le_u32(&mut bytes, 20, 16);
    put_le_u32(&mut bytes, 28, 2048);
    put_le_u32(&mut bytes, 32, 1);
    put_le_u64(&mut bytes, 36, sectors);
    put_le_u32(&mut bytes, 48, 2048);
    bytes
}

pub(crate) fn vdi(virtual_size: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; 1024];
    let text = b"<<< Oracle VM VirtualBox Disk Image >>>\n";
    bytes[..text.len()].copy_from_slice(text);
    put_le_u32(&mut bytes, 0x40, 0xbeda_107f);
    put_le_u32(&mut bytes, 0x44, 0x0001_0001);
    put_le_u32(&mut bytes, 0x48, 0x190);
    put_le_u32(&mut bytes, 0x4c, 1);
    put_le_u32(&mut bytes, 0x154, 0x200);
    put_le_u32(&mut bytes, 0x158, 0x400);
    put_le_u32(&mut bytes, 0x168, 512);
    put_le_u64(&mut bytes, 0x170, virtual_size);
    put_le_u32(&mut bytes, 0x178, 1 << 20);
    put_le_u32(&mut bytes, 0x180, 1);
    bytes
}

/// Builds an ISO 9660 image of `total_len` bytes (a multiple of 2048, at
/// least 40 KiB) with a primary volume descriptor and a terminator.
pub(crate) fn iso(total_len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; total_len];
    let blocks = (total_len / 2048) as u32;
    let primary = 0x8000;
    bytes[primary] = 1;
    bytes[primary + 1..primary + 6].copy_from_slice(b"CD001");
    bytes[primary + 6] = 1;
    put_le_u32(&mut bytes, primary + 80, blocks);
    put_be_u32(&mut bytes, primary + 84, blocks);
    put_le_u16(&mut bytes, primary + 128, 2048);
    bytes[primary + 130..primary + 132].copy_from_slice(&2048u16.to_be_bytes());
    let terminator = primary + 2048;
    bytes[terminator] = 255;
    bytes[terminator + 1..terminator + 6].copy_from_slice(b"CD001");
    bytes[terminator + 6] = 1;
    bytes
}

fn vhd_footer(virtual_size: u64, disk_type: u32, data_offset: u64) -> Vec<u8> {
    let mut footer = vec![0u8; 512];
    footer[..8].copy_from_slice(b"conectix");
    put_be_u32(&mut footer, 8, 2);
    put_be_u32(&mut footer, 12, 0x0001_0000);
    put_be_u64(&mut footer, 16, data_offset);
    footer[28..32].copy_from_slice(b"qemu");
    put_be_u64(&mut footer, 40, virtual_size);
    put_be_u64(&mut footer, 48, virtual_size);
    put_be_u32(&mut footer, 60, disk_type);
    set_vhd_checksum(&mut footer);
    footer
}

fn set_vhd_checksum(footer: &mut [u8]) {
    put_be_u32(footer, 64, 0);
    let sum = footer
        .iter()
        .fold(0u32, |sum, byte| sum.wrapping_add(u32::from(*byte)));
    put_be_u32(footer, 64, !sum);
}

pub(crate) fn vhd_fixed(virtual_size: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; virtual_size];
    bytes.extend(vhd_footer(virtual_size as u64, 2, u64::MAX));
    bytes
}

/// Builds a dynamic disk: footer copy, dynamic disk header at byte 512, footer.
pub(crate) fn vhd_dynamic(virtual_size: u64) -> Vec<u8> {
    let footer = vhd_footer(virtual_size, 3, 512);
    let mut header = vec![0u8; 1024];
    header[..8].copy_from_slice(b"cxsparse");
    put_be_u64(&mut header, 8, u64::MAX);
    put_be_u64(&mut header, 16, 1536);
    put_be_u32(&mut header, 24, 0x0001_0000);
    put_be_u32(&mut header, 28, 5);
    put_be_u32(&mut header, 32, 2 << 20);

    let mut bytes = footer.clone();
    bytes.extend(header);
    bytes.extend(footer);
    bytes
}

/// Sets a big-endian u32 in both footer copies and fixes their checksums.
pub(crate) fn vhd_set_footer_field(bytes: &mut [u8], at: usize, value: u32) {
    let tail = bytes.len() - 512;
    for start in [0, tail] {
        let footer = &mut bytes[start..start + 512];
        put_be_u32(footer, at, value);
        set_vhd_checksum(footer);
    }
}

pub(crate) const VHDX_METADATA_AT: usize = 256 * 1024;
const VHDX_METADATA_LEN: usize = 128 * 1024;
const VHDX_ITEMS_OFFSET: usize = 64 * 1024;
pub(crate) const VHDX_FILE_PARAMETERS_AT: usize = VHDX_METADATA_AT + VHDX_ITEMS_OFFSET;

/// Builds a VHDX whose region table at 192 KiB lists a metadata region at
/// 256 KiB, whose table lists file parameters and the virtual disk size.
pub(crate) fn vhdx(virtual_size: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; VHDX_METADATA_AT + VHDX_METADATA_LEN];
    bytes[..8].copy_from_slice(b"vhdxfile");

    let region_table = 192 * 1024;
    bytes[region_table..region_table + 4].copy_from_slice(b"regi");
    put_le_u32(&mut bytes, region_table + 8, 1);
    let entry = region_table + 16;
    bytes[entry..entry + 16].copy_from_slice(&METADATA_REGION);
    put_le_u64(&mut bytes, entry + 16, VHDX_METADATA_AT as u64);
    put_le_u32(&mut bytes, entry + 24, VHDX_METADATA_LEN as u32);
    put_le_u32(&mut bytes, entry + 28, 1);

    bytes[VHDX_METADATA_AT..VHDX_METADATA_AT + 8].copy_from_slice(b"metadata");
    vhdx_add_metadata_item(&mut bytes, FILE_PARAMETERS);
    vhdx_add_metadata_item(&mut bytes, VIRTUAL_DISK_SIZE);
    put_le_u32(&mut bytes, VHDX_FILE_PARAMETERS_AT, 32 << 20);
    put_le_u64(&mut bytes, VHDX_FILE_PARAMETERS_AT + 8, virtual_size);
    bytes
}

/// Appends a metadata table entry; the n-th item's 8 bytes of data sit at
/// 8 * n bytes past the start of the items area.
pub(crate) fn vhdx_add_metadata_item(bytes: &mut [u8], id: [u8; 16]) {
    let count_at = VHDX_METADATA_AT + 10;
    let count = u16::from_le_bytes([bytes[count_at], bytes[count_at + 1]]);
    let entry = VHDX_METADATA_AT + 32 + usize::from(count) * 32;
    bytes[entry..entry + 16].copy_from_slice(&id);
    put_le_u32(
        bytes,
        entry + 16,
        (VHDX_ITEMS_OFFSET + usize::from(count) * 8) as u32,
    );
    put_le_u32(bytes, entry + 20, 8);
    put_le_u16(bytes, count_at, count + 1);
}

/// Builds a monolithicSparse-style file: header, then `descriptor` in sectors
/// 1 to 20.
pub(crate) fn vmdk_sparse(capacity_sectors: u64, descriptor: &str) -> Vec<u8> {
    let mut bytes = vec![0u8; 512 + 20 * 512 + 1024];
    bytes[..4].copy_from_slice(b"KDMV");
    put_le_u32(&mut bytes, 4, 1);
    put_le_u32(&mut bytes, 8, 3);
    put_le_u64(&mut bytes, 12, capacity_sectors);
    put_le_u64(&mut bytes, 20, 128);
    put_le_u64(&mut bytes, 28, 1);
    put_le_u64(&mut bytes, 36, 20);
    put_le_u32(&mut bytes, 44, 512);
    put_le_u64(&mut bytes, 48, 21);
    put_le_u64(&mut bytes, 56, 22);
    put_le_u64(&mut bytes, 64, 128);
    bytes[73..77].copy_from_slice(b"\n \r\n");
    bytes[512..512 + descriptor.len()].copy_from_slice(descriptor.as_bytes());
    bytes
}

/// Appends a streamOptimized footer: footer marker, header copy with
/// `capacity_sectors`, end-of-stream marker.
pub(crate) fn vmdk_append_footer(bytes: &mut Vec<u8>, capacity_sectors: u64) {
    let mut marker = vec![0u8; 512];
    put_le_u32(&mut marker, 12, 3);
    let mut header = bytes[..512].to_vec();
    put_le_u64(&mut header, 12, capacity_sectors);
    put_le_u64(&mut header, 56, 22);
    bytes.extend(marker);
    bytes.extend(header);
    bytes.extend(vec![0u8; 512]);
}

/// Returns one valid image of every format, for tests that mutate them.
pub(crate) fn all() -> Vec<(&'static str, Vec<u8>)> {
    let descriptor = "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\n\
        createType=\"monolithicSparse\"\nRW 2048 SPARSE \"disk.vmdk\"\n";
    vec![
        ("qcow2 v2", qcow2_v2(1 << 20)),
        ("qcow2 v3", qcow2_v3(1 << 20)),
        ("qcow2 backing", qcow2_with_backing(b"/etc/shadow")),
        ("qed", qed(1 << 20, Some(b"base.img"))),
        ("ploop", ploop(2048)),
        ("vdi", vdi(1 << 20)),
        ("iso", iso(2048 * 24)),
        ("vhd fixed", vhd_fixed(4096)),
        ("vhd dynamic", vhd_dynamic(1 << 20)),
        ("vhdx", vhdx(1 << 20)),
        ("vmdk sparse", vmdk_sparse(2048, descriptor)),
        ("vmdk text", descriptor.as_bytes().to_vec()),
    ]
}
