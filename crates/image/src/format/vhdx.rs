//! VHDX inspection: virtual disk size and differencing-disk detection.
//!
//! Layout from Microsoft's VHDX specification (MS-VHDX) as read by qemu's
//! `block/vhdx.c`, little-endian throughout. The file starts with the
//! identifier `vhdxfile`. The region table at byte 192 KiB starts with
//! `regi` and lists up to 2047 32-byte entries (GUID, file offset, length);
//! the entry with the metadata region GUID locates the metadata region. That
//! region starts with a table (`metadata`, up to 2047 32-byte entries of
//! GUID, offset, length) that locates items such as the virtual disk size.
//! A differencing disk sets HasParent in the file parameters item and has a
//! parent locator item naming its parent file.

use super::source::{field, invalid, ParseResult, Reader};
use super::{DiskFormat, Inspection, UnsafeReason};

const SIGNATURE: &[u8; 8] = b"vhdxfile";
const REGION_TABLE_OFFSET: u64 = 192 * 1024;
const TABLE_LEN: usize = 64 * 1024;
const TABLE_HEADER_LEN: usize = 16;
const METADATA_TABLE_HEADER_LEN: usize = 32;
const ENTRY_LEN: usize = 32;
const MAX_ENTRIES: usize = 2047;

const FILE_PARAMETERS_HAS_PARENT: u32 = 1 << 1;

/// Encodes a GUID in the mixed-endian byte order Microsoft formats store
/// (the first three fields little-endian).
const fn guid(data1: u32, data2: u16, data3: u16, data4: [u8; 8]) -> [u8; 16] {
    let a = data1.to_le_bytes();
    let b = data2.to_le_bytes();
    let c = data3.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], data4[0], data4[1], data4[2], data4[3],
        data4[4], data4[5], data4[6], data4[7],
    ]
}

pub(super) const METADATA_REGION: [u8; 16] = guid(
    0x8b7c_a206,
    0x4790,
    0x4b9a,
    [0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e],
);
pub(super) const FILE_PARAMETERS: [u8; 16] = guid(
    0xcaa1_6737,
    0xfa36,
    0x4d43,
    [0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b],
);
pub(super) const VIRTUAL_DISK_SIZE: [u8; 16] = guid(
    0x2fa5_4224,
    0xcd1b,
    0x4876,
    [0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8],
);
const PARENT_LOCATOR: [u8; 16] = guid(
    0xa8d3_5f2d,
    0xb30b,
    0x454d,
    [0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c],
);

pub(super) fn probe(head: &[u8]) -> bool {
    head.starts_with(SIGNATURE)
}

/// Location of one metadata item, as an absolute file offset.
struct Item {
    offset: u64,
    len: u32,
}

pub(super) fn inspect(reader: &Reader<'_>) -> ParseResult<Inspection> {
    let (region_offset, region_len) = find_metadata_region(reader)?;
    let items = read_metadata_table(reader, region_offset, region_len)?;

    let find = |id: &[u8; 16]| {
        items
            .iter()
            .find(|(item_id, _)| item_id == id)
            .map(|(_, item)| item)
    };
    let size_item = find(&VIRTUAL_DISK_SIZE)
        .ok_or_else(|| invalid!("the metadata table has no virtual disk size item"))?;
    let virtual_size = read_item_u64(reader, size_item, "virtual disk size item")?;

    let mut safety = Ok(());
    if find(&PARENT_LOCATOR).is_some() {
        safety = Err(UnsafeReason::VhdxParent {
            detail: "it has a parent locator",
        });
    } else if let Some(parameters) = find(&FILE_PARAMETERS) {
        // File parameters: block size (u32), then flags (u32).
        let flags = (read_item_u64(reader, parameters, "file parameters item")? >> 32) as u32;
        if flags & FILE_PARAMETERS_HAS_PARENT != 0 {
            safety = Err(UnsafeReason::VhdxParent {
                detail: "its file parameters set HasParent",
            });
        }
    }
    Ok(Inspection::safe(DiskFormat::Vhdx, virtual_size).with_safety(safety))
}

fn find_metadata_region(reader: &Reader<'_>) -> ParseResult<(u64, u32)> {
    let table = reader.read_exact(REGION_TABLE_OFFSET, TABLE_LEN, "region table")?;
    if &table[..4] != b"regi" {
        return Err(invalid!(
            "the region table at byte {REGION_TABLE_OFFSET} lacks the regi signature"
        ));
    }
    let count = field::le_u32(&table, 8) as usize;
    if count > MAX_ENTRIES {
        return Err(invalid!(
            "the region table has {count} entries, more than {MAX_ENTRIES}"
        ));
    }
    for index in 0..count {
        let entry = TABLE_HEADER_LEN + index * ENTRY_LEN;
        if table[entry..entry + 16] == METADATA_REGION {
            return Ok((
                field::le_u64(&table, entry + 16),
                field::le_u32(&table, entry + 24),
            ));
        }
    }
    Err(invalid!("the region table has no metadata region entry"))
}

/// Returns every metadata item's GUID and location.
fn read_metadata_table(
    reader: &Reader<'_>,
    region_offset: u64,
    region_len: u32,
) -> ParseResult<Vec<([u8; 16], Item)>> {
    let table_len = TABLE_LEN.min(region_len as usize);
    let table = reader.read_exact(region_offset, table_len, "metadata table")?;
    if table.len() < METADATA_TABLE_HEADER_LEN || &table[..8] != b"metadata" {
        return Err(invalid!(
            "the metadata region at byte {region_offset} lacks the metadata signature"
        ));
    }
    let count = usize::from(field::le_u16(&table, 10));
    if count > MAX_ENTRIES || METADATA_TABLE_HEADER_LEN + count * ENTRY_LEN > table.len() {
        return Err(invalid!(
            "the metadata table has {count} entries, more than fit in it"
        ));
    }

    let mut items = Vec::with_capacity(count);
    for index in 0..count {
        let entry = METADATA_TABLE_HEADER_LEN + index * ENTRY_LEN;
        let mut id = [0u8; 16];
        id.copy_from_slice(&table[entry..entry + 16]);
        let item_offset = field::le_u32(&table, entry + 16);
        let len = field::le_u32(&table, entry + 20);
        if u64::from(item_offset) + u64::from(len) > u64::from(region_len) {
            return Err(invalid!(
                "metadata item {index} lies outside the metadata region"
            ));
        }
        let offset = region_offset + u64::from(item_offset);
        items.push((id, Item { offset, len }));
    }
    Ok(items)
}

fn read_item_u64(reader: &Reader<'_>, item: &Item, what: &str) -> ParseResult<u64> {
    if item.len < 8 {
        return Err(invalid!(
            "the {what} is {} bytes long, expected 8",
            item.len
        ));
    }
    let bytes = reader.read_exact(item.offset, 8, what)?;
    Ok(field::le_u64(&bytes, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::inspect_bytes;
    use crate::format::test_images::{self, put_le_u16, put_le_u32};

    #[test]
    fn image_reports_virtual_size() {
        let bytes = test_images::vhdx(10 << 20);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.format, DiskFormat::Vhdx);
        assert_eq!(inspection.virtual_size, 10 << 20);
        assert_eq!(inspection.safety, Ok(()));
    }

    #[test]
    fn has_parent_flag_is_unsafe() {
        let mut bytes = test_images::vhdx(10 << 20);
        let flags_at = test_images::VHDX_FILE_PARAMETERS_AT + 4;
        put_le_u32(&mut bytes, flags_at, FILE_PARAMETERS_HAS_PARENT);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert!(matches!(
            inspection.safety,
            Err(UnsafeReason::VhdxParent { .. })
        ));
    }

    #[test]
    fn parent_locator_item_is_unsafe() {
        let mut bytes = test_images::vhdx(10 << 20);
        test_images::vhdx_add_metadata_item(&mut bytes, PARENT_LOCATOR);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(
            inspection.safety,
            Err(UnsafeReason::VhdxParent {
                detail: "it has a parent locator"
            })
        );
    }

    #[test]
    fn oversized_entry_counts_are_malformed() {
        let mut bytes = test_images::vhdx(10 << 20);
        put_le_u32(&mut bytes, REGION_TABLE_OFFSET as usize + 8, u32::MAX);
        assert!(inspect_bytes(&bytes[..]).is_err());

        let mut bytes = test_images::vhdx(10 << 20);
        put_le_u16(&mut bytes, test_images::VHDX_METADATA_AT + 10, u16::MAX);
        assert!(inspect_bytes(&bytes[..]).is_err());
    }

    #[test]
    fn metadata_region_past_eof_is_malformed() {
        let mut bytes = test_images::vhdx(10 << 20);
        let entry = REGION_TABLE_OFFSET as usize + TABLE_HEADER_LEN;
        bytes[entry + 16..entry + 24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(inspect_bytes(&bytes[..]).is_err());
    }

    #[test]
    fn truncated_file_is_malformed() {
        let bytes = test_images::vhdx(10 << 20);
        assert!(inspect_bytes(&bytes[..100 * 1024]).is_err());
    }
}
