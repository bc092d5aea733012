//! VirtualBox VDI header inspection.
//!
//! Layout of the version 1.1 header, the only version qemu reads
//! (little-endian): signature 0xbeda107f at byte 0x40, version at 0x44,
//! image type at 0x4c and disk size in bytes at 0x170. Types 1 (normal,
//! dynamically allocated) and 2 (fixed) are self-contained; types 3 (undo)
//! and 4 (differencing) read data from a parent image.

use super::source::{field, invalid, ParseResult, Reader};
use super::{DiskFormat, Inspection, UnsafeReason};

const SIGNATURE_OFFSET: usize = 0x40;
const SIGNATURE: u32 = 0xbeda_107f;
const VERSION_1_1: u32 = 0x0001_0001;
const HEADER_LEN: usize = 512;

const TYPE_NORMAL: u32 = 1;
const TYPE_FIXED: u32 = 2;
const TYPE_UNDO: u32 = 3;
const TYPE_DIFFERENCING: u32 = 4;

pub(super) fn probe(head: &[u8]) -> bool {
    head.len() >= SIGNATURE_OFFSET + 4 && field::le_u32(head, SIGNATURE_OFFSET) == SIGNATURE
}

pub(super) fn inspect(reader: &Reader<'_>) -> ParseResult<Inspection> {
    let header = reader.read_exact(0, HEADER_LEN, "vdi header")?;
    let version = field::le_u32(&header, 0x44);
    if version != VERSION_1_1 {
        return Err(invalid!(
            "version is {version:#010x}, expected {VERSION_1_1:#010x} (1.1)"
        ));
    }
    let image_type = field::le_u32(&header, 0x4c);
    let virtual_size = field::le_u64(&header, 0x170);

    let safety = match image_type {
        TYPE_NORMAL | TYPE_FIXED => Ok(()),
        TYPE_UNDO | TYPE_DIFFERENCING => Err(UnsafeReason::VdiDifferencing { image_type }),
        other => return Err(invalid!("image type is {other}, expected 1 to 4")),
    };
    Ok(Inspection::safe(DiskFormat::Vdi, virtual_size).with_safety(safety))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::inspect_bytes;
    use crate::format::test_images::{self, put_le_u32};

    #[test]
    fn normal_image_reports_size() {
        let bytes = test_images::vdi(1 << 20);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.format, DiskFormat::Vdi);
        assert_eq!(inspection.virtual_size, 1 << 20);
        assert_eq!(inspection.safety, Ok(()));
    }

    #[test]
    fn differencing_image_is_unsafe() {
        let mut bytes = test_images::vdi(1 << 20);
        put_le_u32(&mut bytes, 0x4c, TYPE_DIFFERENCING);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(
            inspection.safety,
            Err(UnsafeReason::VdiDifferencing { image_type: 4 })
        );
    }

    #[test]
    fn unknown_type_and_version_are_malformed() {
        let mut bytes = test_images::vdi(1 << 20);
        put_le_u32(&mut bytes, 0x4c, 9);
        assert!(inspect_bytes(&bytes[..]).is_err());

        let mut bytes = test_images::vdi(1 << 20);
        put_le_u32(&mut bytes, 0x44, 0x0001_0000);
        assert!(inspect_bytes(&bytes[..]).is_err());
    }

    #[test]
    fn truncated_header_is_malformed() {
        let bytes = test_images::vdi(1 << 20);
        assert!(inspect_bytes(&bytes[..300]).is_err());
    }
}
