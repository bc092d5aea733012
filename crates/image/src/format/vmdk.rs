//! VMDK inspection: sparse files with an embedded descriptor, standalone
//! text descriptors, and the old COWD sparse format.
//!
//! A VMDK4 sparse file starts with the 512-byte little-endian header
//! `KDMV`: version at byte 4, capacity in sectors at 12, descriptor offset
//! and size in sectors at 28 and 36, grain directory offset at 56. When the
//! grain directory offset is all ones (streamOptimized files), the header
//! that counts is the footer copy 1024 bytes before the end of the file.
//!
//! Only single-file images are accepted: createType monolithicSparse or
//! streamOptimized with one SPARSE extent. qemu's `block/vmdk.c` does two
//! things with a sparse file that can reach other files, so both are checked
//! here. It opens the embedded descriptor's extents as separate files
//! when the header capacity is 0. It also takes `parentFileNameHint` from
//! anywhere in the 10 KiB after byte 512 as a backing file.

use super::source::{field, invalid, printable_name, ParseResult, Reader};
use super::vmdk_descriptor::{self, Descriptor};
use super::{DiskFormat, Inspection, UnsafeReason};

const SPARSE_MAGIC: &[u8; 4] = b"KDMV";
const COWD_MAGIC: &[u8; 4] = b"COWD";
const SECTOR_SIZE: u64 = 512;
const HEADER_LEN: usize = 512;
const GD_AT_END: u64 = u64::MAX;
const FOOTER_REGION_LEN: usize = 1536;
const MARKER_FOOTER: u32 = 3;
const MARKER_END_OF_STREAM: u32 = 0;

/// Sector qemu reads a sparse file's descriptor from, whatever the header's
/// descriptor offset.
const DESCRIPTOR_SECTOR: u64 = 1;
/// qemu caps descriptors at 1 MiB.
const MAX_DESCRIPTOR_SECTORS: u64 = 2048;
/// Bytes from sector 1 that qemu searches for `parentFileNameHint`.
const PARENT_SCAN_LEN: usize = 20 * 512;
/// Bytes of a text descriptor file read to name its extents.
const MAX_TEXT_DESCRIPTOR_LEN: usize = 64 * 1024;

const ACCEPTED_CREATE_TYPES: [&str; 2] = ["monolithicSparse", "streamOptimized"];

pub(super) fn probe(head: &[u8]) -> bool {
    head.starts_with(SPARSE_MAGIC)
        || head.starts_with(COWD_MAGIC)
        || vmdk_descriptor::looks_like_descriptor(head)
}

pub(super) fn inspect(reader: &Reader<'_>, head: &[u8]) -> ParseResult<Inspection> {
    if head.starts_with(SPARSE_MAGIC) {
        inspect_sparse(reader)
    } else if head.starts_with(COWD_MAGIC) {
        inspect_cowd(reader)
    } else {
        inspect_text_descriptor(reader)
    }
}

fn inspect_sparse(reader: &Reader<'_>) -> ParseResult<Inspection> {
    let header = reader.read_exact(0, HEADER_LEN, "vmdk sparse header")?;
    let version = field::le_u32(&header, 4);
    if !(1..=3).contains(&version) {
        return Err(invalid!("version is {version}, expected 1 to 3"));
    }
    let descriptor_offset = field::le_u64(&header, 28);
    let descriptor_sectors = field::le_u64(&header, 36);
    // qemu checks the first header's capacity before it looks at a footer.
    let header_capacity = field::le_u64(&header, 12);
    if header_capacity == 0 && descriptor_offset != 0 {
        let detail = "has capacity 0, which makes qemu open the files named by its descriptor";
        return Ok(unsafe_vmdk(
            0,
            UnsafeReason::VmdkUnsupported {
                detail: detail.to_owned(),
            },
        ));
    }
    let capacity = if field::le_u64(&header, 56) == GD_AT_END {
        footer_capacity(reader)?
    } else {
        header_capacity
    };
    let virtual_size = capacity
        .checked_mul(SECTOR_SIZE)
        .ok_or_else(|| invalid!("capacity of {capacity} sectors overflows 64 bits"))?;
    if descriptor_offset != DESCRIPTOR_SECTOR {
        return Err(invalid!(
            "the embedded descriptor starts at sector {descriptor_offset}, but qemu reads it \
             from sector {DESCRIPTOR_SECTOR}"
        ));
    }
    if !(1..=MAX_DESCRIPTOR_SECTORS).contains(&descriptor_sectors) {
        return Err(invalid!(
            "the embedded descriptor is {descriptor_sectors} sectors long, expected 1 to \
             {MAX_DESCRIPTOR_SECTORS}"
        ));
    }

    if let Some(name) = scan_for_parent_hint(reader)? {
        return Ok(unsafe_vmdk(virtual_size, UnsafeReason::VmdkParent { name }));
    }
    let descriptor = read_embedded_descriptor(reader, descriptor_sectors)?;
    let safety = check_embedded_descriptor(&descriptor)?;
    Ok(Inspection::safe(DiskFormat::Vmdk, virtual_size).with_safety(safety))
}

fn unsafe_vmdk(virtual_size: u64, reason: UnsafeReason) -> Inspection {
    Inspection::safe(DiskFormat::Vmdk, virtual_size).with_safety(Err(reason))
}

/// Reads the capacity from the footer of a streamOptimized file: a footer
/// marker sector, a header copy, then an end-of-stream marker sector.
fn footer_capacity(reader: &Reader<'_>) -> ParseResult<u64> {
    let start = reader
        .size()
        .checked_sub(FOOTER_REGION_LEN as u64)
        .ok_or_else(|| invalid!("the file is too short for the footer its header announces"))?;
    let footer = reader.read_exact(start, FOOTER_REGION_LEN, "vmdk footer")?;
    let footer_marker_type = field::le_u32(&footer, 12);
    let end_marker_type = field::le_u32(&footer, 1024 + 12);
    if footer_marker_type != MARKER_FOOTER
        || &footer[512..516] != SPARSE_MAGIC
        || end_marker_type != MARKER_END_OF_STREAM
    {
        return Err(invalid!(
            "the footer at byte {start} is not a valid VMDK footer"
        ));
    }
    Ok(field::le_u64(&footer, 512 + 12))
}

/// Searches the region qemu searches for `parentFileNameHint`. Case is
/// ignored and NUL bytes do not end the search, so this finds at least what
/// qemu finds.
fn scan_for_parent_hint(reader: &Reader<'_>) -> ParseResult<Option<String>> {
    const KEY: &[u8] = b"parentfilenamehint";
    let region = reader.read_up_to(DESCRIPTOR_SECTOR * SECTOR_SIZE, PARENT_SCAN_LEN)?;
    let Some(position) = region
        .windows(KEY.len())
        .position(|window| window.eq_ignore_ascii_case(KEY))
    else {
        return Ok(None);
    };
    let after = &region[position + KEY.len()..];
    let line_end = after
        .iter()
        .position(|&byte| byte == b'\n')
        .unwrap_or(after.len());
    let value = after[..line_end]
        .iter()
        .copied()
        .filter(|&byte| byte != b'"' && byte != b'=')
        .collect::<Vec<u8>>();
    Ok(Some(printable_name(value.trim_ascii())))
}

fn read_embedded_descriptor(reader: &Reader<'_>, sectors: u64) -> ParseResult<Descriptor> {
    // At most MAX_DESCRIPTOR_SECTORS sectors, i.e. 1 MiB.
    let len = (sectors * SECTOR_SIZE) as usize;
    let bytes = reader.read_exact(DESCRIPTOR_SECTOR * SECTOR_SIZE, len, "vmdk descriptor")?;
    // The descriptor is a C string padded with zero bytes.
    let text_len = bytes
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(bytes.len());
    let text = std::str::from_utf8(&bytes[..text_len])
        .map_err(|_| invalid!("the embedded descriptor is not valid UTF-8 text"))?;
    vmdk_descriptor::parse(text).map_err(|reason| invalid!("embedded descriptor: {reason}"))
}

fn check_embedded_descriptor(descriptor: &Descriptor) -> ParseResult<Result<(), UnsafeReason>> {
    if let Some(name) = &descriptor.parent_file_name_hint {
        return Ok(Err(UnsafeReason::VmdkParent { name: name.clone() }));
    }
    let create_type = descriptor
        .create_type
        .as_deref()
        .ok_or_else(|| invalid!("the embedded descriptor has no createType"))?;
    if !ACCEPTED_CREATE_TYPES
        .iter()
        .any(|accepted| accepted.eq_ignore_ascii_case(create_type))
    {
        return Ok(Err(UnsafeReason::VmdkCreateType {
            create_type: printable_name(create_type.as_bytes()),
        }));
    }

    let [extent] = descriptor.extents.as_slice() else {
        let detail = format!("lists {} extents", descriptor.extents.len());
        return Ok(Err(UnsafeReason::VmdkExtent { detail }));
    };
    if !extent.kind.eq_ignore_ascii_case("SPARSE") {
        let detail = format!("has a {} extent", printable_name(extent.kind.as_bytes()));
        return Ok(Err(UnsafeReason::VmdkExtent { detail }));
    }
    // NOTE: the name cannot be compared with the uploaded file's own name,
    // which the upload does not carry. qemu ignores the extents of a sparse
    // file with a nonzero capacity. A name with a directory part is rejected
    // so that a tool that does follow extents stays in the image's directory.
    match extent.file_name.as_deref() {
        Some(name) if !name.is_empty() && !name.contains(['/', '\\']) => Ok(Ok(())),
        other => {
            let name = printable_name(other.unwrap_or_default().as_bytes());
            let detail = format!("has an extent naming the file \"{name}\"");
            Ok(Err(UnsafeReason::VmdkExtent { detail }))
        }
    }
}

fn inspect_cowd(reader: &Reader<'_>) -> ParseResult<Inspection> {
    let header = reader.read_exact(0, 16, "vmdk COWD header")?;
    let virtual_size = u64::from(field::le_u32(&header, 12)) * SECTOR_SIZE;
    let detail = "is a version 3 (COWD) sparse extent".to_owned();
    Ok(unsafe_vmdk(
        virtual_size,
        UnsafeReason::VmdkUnsupported { detail },
    ))
}

/// Marks a standalone descriptor unsafe, because its extents are always
/// other files. Parsing only serves the message and the size.
fn inspect_text_descriptor(reader: &Reader<'_>) -> ParseResult<Inspection> {
    let bytes = reader.read_up_to(0, MAX_TEXT_DESCRIPTOR_LEN)?;
    let text = String::from_utf8_lossy(&bytes);
    let descriptor = vmdk_descriptor::parse(&text).unwrap_or_default();
    let extent = descriptor
        .extents
        .iter()
        .find_map(|extent| extent.file_name.as_deref())
        .map(|name| printable_name(name.as_bytes()));
    let virtual_size = descriptor.extents.iter().fold(0u64, |total, extent| {
        total.saturating_add(extent.sectors.saturating_mul(SECTOR_SIZE))
    });
    Ok(unsafe_vmdk(
        virtual_size,
        UnsafeReason::VmdkDescriptorFile { extent },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::test_images::{self, put_le_u64};
    use crate::format::{inspect_bytes, InspectError};

    const SPARSE_DESCRIPTOR: &str = "# Disk DescriptorFile\nversion=1\nCID=4b56fca\n\
        parentCID=ffffffff\ncreateType=\"monolithicSparse\"\nRW 20480 SPARSE \"s.vmdk\"\n";

    fn sparse_with(descriptor: &str) -> Inspection {
        let bytes = test_images::vmdk_sparse(20480, descriptor);
        inspect_bytes(&bytes[..]).unwrap()
    }

    #[test]
    fn monolithic_sparse_is_safe_with_capacity() {
        let inspection = sparse_with(SPARSE_DESCRIPTOR);
        assert_eq!(inspection.format, DiskFormat::Vmdk);
        assert_eq!(inspection.virtual_size, 20480 * 512);
        assert_eq!(inspection.safety, Ok(()));
    }

    #[test]
    fn stream_optimized_footer_gives_capacity() {
        let descriptor = SPARSE_DESCRIPTOR.replace("monolithicSparse", "streamOptimized");
        let mut bytes = test_images::vmdk_sparse(1, &descriptor);
        put_le_u64(&mut bytes, 56, GD_AT_END);
        test_images::vmdk_append_footer(&mut bytes, 4096);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.virtual_size, 4096 * 512);
        assert_eq!(inspection.safety, Ok(()));
    }

    #[test]
    fn other_create_type_is_unsafe() {
        let inspection = sparse_with(&SPARSE_DESCRIPTOR.replace("monolithicSparse", "vmfsSparse"));
        assert!(matches!(
            inspection.safety,
            Err(UnsafeReason::VmdkCreateType { .. })
        ));
    }

    #[test]
    fn extent_naming_other_file_is_unsafe() {
        let inspection = sparse_with(&SPARSE_DESCRIPTOR.replace("\"s.vmdk\"", "\"/etc/shadow\""));
        assert!(matches!(
            inspection.safety,
            Err(UnsafeReason::VmdkExtent { .. })
        ));

        let flat = SPARSE_DESCRIPTOR.replace("SPARSE \"s.vmdk\"", "FLAT \"s.vmdk\" 0");
        assert!(sparse_with(&flat).safety.is_err());

        let two = format!("{SPARSE_DESCRIPTOR}RW 10 SPARSE \"t.vmdk\"\n");
        assert!(sparse_with(&two).safety.is_err());
    }

    #[test]
    fn parent_hint_is_unsafe_even_outside_descriptor() {
        let inspection = sparse_with(&format!(
            "{SPARSE_DESCRIPTOR}parentFileNameHint=\"/etc/passwd\"\n"
        ));
        assert_eq!(
            inspection.safety,
            Err(UnsafeReason::VmdkParent {
                name: "/etc/passwd".to_owned()
            })
        );

        // qemu searches 10 KiB whatever the declared descriptor length.
        let mut bytes = test_images::vmdk_sparse(
            20480,
            &format!(
                "{SPARSE_DESCRIPTOR}{}parentFileNameHint=\"/etc/passwd\"\n",
                " ".repeat(1536)
            ),
        );
        put_le_u64(&mut bytes, 36, 1);
        let inspection = inspect_bytes(&bytes).unwrap();
        assert!(matches!(
            inspection.safety,
            Err(UnsafeReason::VmdkParent { .. })
        ));

        // qemu's search stops at a NUL byte; this one does not, so that
        // other readers of the descriptor are covered too.
        let hidden = format!("{SPARSE_DESCRIPTOR}\0parentFileNameHint=\"/etc/passwd\"\n");
        assert!(matches!(
            sparse_with(&hidden).safety,
            Err(UnsafeReason::VmdkParent { .. })
        ));
    }

    #[test]
    fn zero_capacity_with_descriptor_is_unsafe() {
        let bytes = test_images::vmdk_sparse(0, SPARSE_DESCRIPTOR);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert!(matches!(
            inspection.safety,
            Err(UnsafeReason::VmdkUnsupported { .. })
        ));
    }

    #[test]
    fn hostile_descriptor_size_is_malformed() {
        let mut bytes = test_images::vmdk_sparse(20480, SPARSE_DESCRIPTOR);
        put_le_u64(&mut bytes, 36, u64::MAX);
        let error = inspect_bytes(&bytes[..]).unwrap_err();
        assert!(matches!(error, InspectError::Malformed { .. }), "{error:?}");

        let mut bytes = test_images::vmdk_sparse(20480, SPARSE_DESCRIPTOR);
        put_le_u64(&mut bytes, 28, 5000);
        assert!(inspect_bytes(&bytes[..]).is_err());
    }

    #[test]
    fn unparseable_descriptor_is_malformed() {
        let bytes = test_images::vmdk_sparse(20480, "createType=\"monolithicSparse\"\n!!!\n");
        assert!(inspect_bytes(&bytes[..]).is_err());
    }

    #[test]
    fn text_descriptor_is_unsafe_and_names_extent() {
        let text = "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n\
            RW 2048 FLAT \"/etc/shadow\" 0\n";
        let inspection = inspect_bytes(text.as_bytes()).unwrap();
        assert_eq!(inspection.format, DiskFormat::Vmdk);
        assert_eq!(inspection.virtual_size, 2048 * 512);
        assert_eq!(
            inspection.safety,
            Err(UnsafeReason::VmdkDescriptorFile {
                extent: Some("/etc/shadow".to_owned())
            })
        );
    }

    #[test]
    fn cowd_is_unsafe() {
        let mut bytes = vec![0u8; 512];
        bytes[..4].copy_from_slice(COWD_MAGIC);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert!(matches!(
            inspection.safety,
            Err(UnsafeReason::VmdkUnsupported { .. })
        ));
    }

    #[test]
    fn truncated_header_is_malformed() {
        let bytes = test_images::vmdk_sparse(20480, SPARSE_DESCRIPTOR);
        assert!(inspect_bytes(&bytes[..100]).is_err());
    }
}
