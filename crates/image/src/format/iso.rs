//! ISO 9660 inspection: the primary volume descriptor gives the image size.
//!
//! Volume descriptors are 2048-byte sectors starting at sector 16 (byte
//! 0x8000); each has a type byte, the identifier `CD001` and a version. The
//! primary volume descriptor (type 1) stores the volume space size at byte
//! 80 and the logical block size at byte 128, each in both-endian form
//! (little-endian, then big-endian). The first 32 KiB (the system area) are
//! free for boot code, which is why hybrid ISOs can also carry an MBR.

use super::source::{field, invalid, ParseResult, Reader};
use super::{DiskFormat, Inspection};

const SECTOR_SIZE: u64 = 2048;
const FIRST_DESCRIPTOR: u64 = 16 * SECTOR_SIZE;
const IDENTIFIER: &[u8; 5] = b"CD001";
const TYPE_PRIMARY: u8 = 1;
const TYPE_TERMINATOR: u8 = 255;
/// Real discs have a handful of descriptors; the scan stops here so a hostile
/// image cannot make it read far.
const MAX_DESCRIPTORS: u64 = 64;

pub(super) fn probe(reader: &Reader<'_>) -> ParseResult<bool> {
    let descriptor = reader.read_up_to(FIRST_DESCRIPTOR, 8)?;
    Ok(descriptor.get(1..6) == Some(&IDENTIFIER[..]))
}

pub(super) fn inspect(reader: &Reader<'_>) -> ParseResult<Inspection> {
    for index in 0..MAX_DESCRIPTORS {
        let offset = FIRST_DESCRIPTOR + index * SECTOR_SIZE;
        let descriptor = reader.read_exact(offset, SECTOR_SIZE as usize, "volume descriptor")?;
        if &descriptor[1..6] != IDENTIFIER {
            return Err(invalid!(
                "volume descriptor at byte {offset} lacks the CD001 identifier before a \
                 primary volume descriptor was found"
            ));
        }
        match descriptor[0] {
            TYPE_PRIMARY => return primary_volume_size(&descriptor).map(inspection),
            TYPE_TERMINATOR => break,
            _ => continue,
        }
    }
    Err(invalid!("no primary volume descriptor found"))
}

fn inspection(virtual_size: u64) -> Inspection {
    Inspection::safe(DiskFormat::Iso, virtual_size)
}

fn primary_volume_size(descriptor: &[u8]) -> ParseResult<u64> {
    let blocks = field::le_u32(descriptor, 80);
    if blocks != field::be_u32(descriptor, 84) {
        return Err(invalid!(
            "the little-endian and big-endian copies of the volume space size differ"
        ));
    }
    let block_size = field::le_u16(descriptor, 128);
    if block_size != field::be_u16(descriptor, 130) {
        return Err(invalid!(
            "the little-endian and big-endian copies of the logical block size differ"
        ));
    }
    if !matches!(block_size, 512 | 1024 | 2048) {
        return Err(invalid!(
            "logical block size is {block_size}, expected 512, 1024 or 2048"
        ));
    }
    Ok(u64::from(blocks) * u64::from(block_size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::test_images::{self, put_le_u32};
    use crate::format::{inspect_bytes, PartitionTable};

    #[test]
    fn image_reports_volume_size() {
        let bytes = test_images::iso(2048 * 40);
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.format, DiskFormat::Iso);
        assert_eq!(inspection.virtual_size, 2048 * 40);
        assert_eq!(inspection.safety, Ok(()));
    }

    #[test]
    fn boot_record_before_primary_descriptor_is_skipped() {
        let mut bytes = test_images::iso(2048 * 40);
        let first = FIRST_DESCRIPTOR as usize;
        // Shift the primary descriptor and terminator one sector down, and
        // turn the old first sector into a boot record (type 0).
        bytes.copy_within(first..first + 4096, first + 2048);
        bytes[first] = 0;
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.virtual_size, 2048 * 40);
    }

    #[test]
    fn hybrid_iso_reports_mbr() {
        let mut bytes = test_images::iso(2048 * 40);
        bytes[510] = 0x55;
        bytes[511] = 0xAA;
        let inspection = inspect_bytes(&bytes[..]).unwrap();
        assert_eq!(inspection.format, DiskFormat::Iso);
        assert_eq!(inspection.partition_table, Some(PartitionTable::Mbr));
    }

    #[test]
    fn mismatched_both_endian_size_is_malformed() {
        let mut bytes = test_images::iso(2048 * 40);
        put_le_u32(&mut bytes, FIRST_DESCRIPTOR as usize + 80, 7);
        assert!(inspect_bytes(&bytes[..]).is_err());
    }

    #[test]
    fn missing_primary_descriptor_is_malformed() {
        let mut bytes = test_images::iso(2048 * 40);
        bytes[FIRST_DESCRIPTOR as usize] = TYPE_TERMINATOR;
        assert!(inspect_bytes(&bytes[..]).is_err());
    }

    #[test]
    fn truncated_descriptor_is_malformed() {
        let bytes = test_images::iso(2048 * 40);
        assert!(inspect_bytes(&bytes[..FIRST_DESCRIPTOR as usize + 100]).is_err());
    }
}
